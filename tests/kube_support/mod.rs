//! Loopback doubles of the API server for the Kubernetes client tests: a small HTTPS server
//! answering from a closure, and a WebSocket exec server playing a script. Both use the test PKI
//! in `fixtures/kube-client/tls` (see its `regenerate.sh`).

#![allow(dead_code)]

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use alloy_runner::config::KubernetesConfig;
use alloy_runner::kube::{Client, RetryPolicy};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::{Message, WebSocket};

pub type ServerStream = StreamOwned<ServerConnection, TcpStream>;

/// A fixture file of the test PKI.
pub fn pki(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/kube-client/tls")
        .join(name)
}

/// A temporary folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("alloy-kube-test-{}-{name}-{n}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir is writable");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, content).expect("temp file is writable");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Server TLS settings with the test server certificate; with `client_ca`, client
/// certificates signed by the test CA are required.
pub fn server_tls(require_client_cert: bool) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki("server.crt"))
        .expect("server.crt readable")
        .collect::<Result<_, _>>()
        .expect("server.crt parses");
    let key = PrivateKeyDer::from_pem_file(pki("server.key")).expect("server.key parses");
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions");
    let builder = if require_client_cert {
        let mut roots = RootCertStore::empty();
        let ca = CertificateDer::from_pem_file(pki("ca.crt")).expect("ca.crt parses");
        roots.add(ca).expect("ca.crt is a CA");
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .expect("client verifier builds");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(
        builder
            .with_single_cert(certs, key)
            .expect("server cert and key match"),
    )
}

/// A fast retry policy for tests (same number of tries, millisecond waits).
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    }
}

/// A client of `url` trusting the test CA, with a bearer token.
pub fn token_client(url: &str, token: &str) -> Client {
    let cfg = KubernetesConfig {
        host: Some(url.to_string()),
        ca_file: Some(pki("ca.crt")),
        bearer_token: Some(alloy_runner::secret::Secret::new(token)),
        ..KubernetesConfig::default()
    };
    Client::from_config(&cfg)
        .expect("client builds")
        .with_retry_policy(fast_retries())
}

/// One request as the test server saw it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// A query parameter, percent-decoded (`+` as space).
    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| decode(v))
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex digits"));
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 query")
}

/// What the test server answers.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Body parts, written one after the other with `pause` between them; the connection
    /// closes after the last (so the body needs no length).
    pub parts: Vec<Vec<u8>>,
    pub pause: Duration,
    /// Wait this long before answering at all.
    pub delay: Duration,
    /// Close the connection without any answer.
    pub hang_up: bool,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::text(status, &body.to_string())
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            parts: vec![body.as_bytes().to_vec()],
            ..Reply::default()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Whether the body is delimited by the end of the connection.
    fn is_streamed(&self) -> bool {
        self.parts.len() != 1 || self.pause > Duration::ZERO
    }

    pub fn hang_up() -> Reply {
        Reply {
            hang_up: true,
            ..Reply::default()
        }
    }

    /// A watch body: one JSON event per line, each written separately.
    pub fn events(events: &[serde_json::Value], pause: Duration) -> Reply {
        let parts = events
            .iter()
            .map(|e| format!("{e}\n").into_bytes())
            .collect();
        Reply {
            status: 200,
            parts,
            pause,
            ..Reply::default()
        }
    }
}

/// A Kubernetes `Status` failure body.
pub fn status_body(code: u16, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    })
}

type Handler = dyn Fn(&HttpRequest, usize) -> Reply + Send + Sync;

/// A loopback HTTPS server answering every request from a closure (given the request and its
/// number, from 0), recording what it received.
pub struct ApiServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
}

impl ApiServer {
    pub fn start(
        bind: &str,
        tls: Arc<ServerConfig>,
        handler: impl Fn(&HttpRequest, usize) -> Reply + Send + Sync + 'static,
    ) -> ApiServer {
        let listener = TcpListener::bind(bind).expect("loopback port free");
        let addr = listener.local_addr().expect("bound address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (tls, handler, seen) = (tls.clone(), handler.clone(), seen.clone());
                thread::spawn(move || serve(tcp, tls, &*handler, &seen));
            }
        });
        ApiServer { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().expect("no panic while held").clone()
    }
}

fn serve(
    tcp: TcpStream,
    tls: Arc<ServerConfig>,
    handler: &Handler,
    seen: &Mutex<Vec<HttpRequest>>,
) {
    let Ok(conn) = ServerConnection::new(tls) else {
        return;
    };
    let mut stream = BufReader::new(StreamOwned::new(conn, tcp));
    while let Ok(Some(request)) = read_request(&mut stream) {
        let number = {
            let mut all = seen.lock().expect("no panic while held");
            all.push(request.clone());
            all.len() - 1
        };
        let reply = handler(&request, number);
        thread::sleep(reply.delay);
        if reply.hang_up || write_reply(stream.get_mut(), &reply).is_err() {
            return;
        }
        if reply.is_streamed() {
            return;
        }
    }
}

fn read_request(stream: &mut impl BufRead) -> io::Result<Option<HttpRequest>> {
    let mut line = String::new();
    if stream.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        stream.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok(Some(HttpRequest {
        method,
        target,
        headers,
        body,
    }))
}

fn write_reply(stream: &mut impl Write, reply: &Reply) -> io::Result<()> {
    let streamed = reply.is_streamed();
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\n",
        reply.status
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if streamed {
        head.push_str("Connection: close\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", reply.parts[0].len()));
    }
    stream.write_all(head.as_bytes())?;
    stream.flush()?;
    for (i, part) in reply.parts.iter().enumerate() {
        if i > 0 {
            thread::sleep(reply.pause);
        }
        stream.write_all(part)?;
        stream.flush()?;
    }
    Ok(())
}

/// How the exec server answers the upgrade.
#[derive(Clone)]
pub enum Upgrade {
    /// Accept, choosing the first offered protocol in this list.
    Accept(Vec<&'static str>),
    /// Refuse with this HTTP code and body.
    Reject(u16, String),
    /// Accept v5 only with this `Authorization` value, else refuse with 401.
    RequireToken(&'static str),
}

/// What the exec server saw of the upgrade request.
#[derive(Debug, Clone, Default)]
pub struct UpgradeSeen {
    pub uri: String,
    pub offered: String,
    pub authorization: Option<String>,
}

type Script = dyn Fn(&mut WebSocket<ServerStream>) + Send + Sync;

/// A loopback WebSocket exec server: TLS, the upgrade, then the script.
pub struct ExecServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<UpgradeSeen>>>,
}

impl ExecServer {
    pub fn start(
        upgrade: Upgrade,
        script: impl Fn(&mut WebSocket<ServerStream>) + Send + Sync + 'static,
    ) -> ExecServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("loopback port free");
        let addr = listener.local_addr().expect("bound address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let (seen2, tls) = (seen.clone(), server_tls(false));
        thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (tls, script, seen, upgrade) =
                    (tls.clone(), script.clone(), seen2.clone(), upgrade.clone());
                thread::spawn(move || serve_exec(tcp, tls, upgrade, &*script, &seen));
            }
        });
        ExecServer { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<UpgradeSeen> {
        self.seen.lock().expect("no panic while held").clone()
    }
}

// tungstenite's upgrade callback fixes the error type (a whole HTTP response).
#[allow(clippy::result_large_err)]
fn serve_exec(
    tcp: TcpStream,
    tls: Arc<ServerConfig>,
    upgrade: Upgrade,
    script: &Script,
    seen: &Mutex<Vec<UpgradeSeen>>,
) {
    let Ok(conn) = ServerConnection::new(tls) else {
        return;
    };
    let stream = StreamOwned::new(conn, tcp);
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let offered = header("Sec-WebSocket-Protocol")
            .unwrap_or_default()
            .to_string();
        seen.lock().expect("no panic while held").push(UpgradeSeen {
            uri: req.uri().to_string(),
            offered: offered.clone(),
            authorization: header("Authorization").map(str::to_string),
        });
        let upgrade = match &upgrade {
            Upgrade::RequireToken(expected) if header("Authorization") == Some(*expected) => {
                Upgrade::Accept(vec!["v5.channel.k8s.io"])
            }
            Upgrade::RequireToken(_) => Upgrade::Reject(401, "Unauthorized".into()),
            other => other.clone(),
        };
        match &upgrade {
            Upgrade::RequireToken(_) => unreachable!("turned into Accept or Reject above"),
            Upgrade::Reject(code, body) => {
                let mut error = ErrorResponse::new(Some(body.clone()));
                *error.status_mut() = tungstenite::http::StatusCode::from_u16(*code).expect("code");
                Err(error)
            }
            Upgrade::Accept(supported) => {
                let chosen = offered
                    .split(',')
                    .map(str::trim)
                    .find(|p| supported.contains(p));
                if let Some(chosen) = chosen {
                    let value = chosen.parse().expect("protocol is a header value");
                    resp.headers_mut().insert("Sec-WebSocket-Protocol", value);
                }
                Ok(resp)
            }
        }
    };
    if let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) {
        script(&mut ws);
    }
}

/// Sends one message on a channel.
pub fn send(ws: &mut WebSocket<ServerStream>, channel: u8, data: &[u8]) {
    let mut frame = vec![channel];
    frame.extend_from_slice(data);
    ws.send(Message::binary(frame)).expect("client is reading");
}

/// Sends the exit status of `code` on channel 3 (Success for 0).
pub fn send_exit(ws: &mut WebSocket<ServerStream>, code: i32) {
    let status = if code == 0 {
        r#"{"metadata":{},"status":"Success"}"#.to_string()
    } else {
        format!(
            r#"{{"metadata":{{}},"status":"Failure","message":"command terminated with non-zero exit code: command terminated with exit code {code}","reason":"NonZeroExitCode","details":{{"causes":[{{"reason":"ExitCode","message":"{code}"}}]}}}}"#
        )
    };
    send(ws, 3, status.as_bytes());
}

/// Closes properly (Close 1000) and waits for the client's answer.
pub fn close(ws: &mut WebSocket<ServerStream>) {
    let _ = ws.close(None);
    while ws.read().is_ok() {}
}

/// Reads binary messages until one matches `done`, returning them all.
pub fn read_until(ws: &mut WebSocket<ServerStream>, done: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    while let Ok(message) = ws.read() {
        if let Message::Binary(data) = message {
            let last = done(&data);
            all.push(data.to_vec());
            if last {
                break;
            }
        }
    }
    all
}

/// A shared byte sink for stdout/stderr.
#[derive(Clone, Default)]
pub struct Sink(pub Arc<Mutex<Vec<u8>>>);

impl Sink {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().expect("no panic while held").clone()
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("no panic while held")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads all of a reader (for tests that check a body).
pub fn read_all(mut reader: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("readable");
    out
}
