//! Helpers shared by the simulator's integration tests: a tiny HTTP client and temp folders.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube_sim::{Sim, SimHandle, SimOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};

/// An answer: code, headers (lower-case names), body (de-chunked).
pub struct Answer {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON lines of a watch stream.
    pub fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A simulator with default options.
pub fn sim() -> SimHandle {
    Sim::start(SimOptions::default()).expect("simulator starts")
}

/// One request over a fresh plain connection (`Connection: close`).
pub fn call(sim: &SimHandle, method: &str, path: &str, body: Option<&Value>) -> Answer {
    call_with(sim.addr(), method, path, &[], body)
}

/// One request with extra headers over a fresh plain connection.
pub fn call_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let mut tcp = TcpStream::connect(addr).expect("connect to the simulator");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    exchange(&mut tcp, method, path, headers, body)
}

/// One request over TLS trusting the test CA, optionally with the test client certificate.
pub fn call_tls(
    sim: &SimHandle,
    client_cert: bool,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, std::io::Error> {
    let roots = {
        let mut store = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_file(sim.ca_pem_path().unwrap()).unwrap();
        store.add(ca).unwrap();
        store
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client_cert {
        false => builder.with_no_client_auth(),
        true => {
            let (cert, key) = sim.client_cert_paths().unwrap();
            let cert = CertificateDer::from_pem_file(cert).unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(vec![cert], key).unwrap()
        }
    };
    let name = ServerName::try_from(sim.addr().ip().to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(sim.addr())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    Ok(exchange(&mut tls, method, path, headers, None))
}

fn exchange(
    stream: &mut impl ReadWrite,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // A TLS peer that closes without close_notify reads as an error after the data.
    let _ = stream.read_to_end(&mut raw);
    parse_answer(&raw)
}

pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn parse_answer(raw: &[u8]) -> Answer {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Answer {
        code,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(at) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..at]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[at + 2..at + 2 + size]);
        raw = &raw[at + 2 + size + 2..];
    }
    out
}

/// A pod manifest with one container running `script`.
pub fn pod(name: &str, script: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "x"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "c", "image": "alpine", "command": ["sh", "-c", script]}]
        }
    })
}

/// Creates a pod through the API and waits for it to run.
pub fn create_running(sim: &SimHandle, ns: &str, name: &str) -> Value {
    let answer = call(
        sim,
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods"),
        Some(&pod(name, "sleep 300")),
    );
    assert_eq!(
        answer.code,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let running = sim.wait_for_pod(ns, name, Duration::from_secs(20), |p| {
        p.is_some_and(|p| p["status"]["phase"] == "Running")
    });
    assert!(running, "pod {name} runs: {:?}", sim.pod(ns, name));
    sim.pod(ns, name).unwrap()
}

/// A unique temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "kube-sim-test-{tag}-{}-{}",
            std::process::id(),
            kube_sim::util::random_suffix(6)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads a watch event by event until `done` holds for one (or the stream ends) and returns
/// the events read; the stream is dropped then.
pub fn watch_until(sim: &SimHandle, path: &str, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    use std::io::BufRead;
    let mut tcp = TcpStream::connect(sim.addr()).expect("connect to the simulator");
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: sim\r\n\r\n").unwrap();
    let mut reader = std::io::BufReader::new(tcp);
    let mut line = String::new();
    // Skip the head.
    while reader.read_line(&mut line).unwrap_or(0) > 2 {
        line.clear();
    }
    let mut events = Vec::new();
    let mut pending = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return events;
        }
        let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
        if size == 0 {
            return events;
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        pending.extend_from_slice(&chunk[..size]);
        while let Some(at) = pending.iter().position(|b| *b == b'\n') {
            let event: Value = serde_json::from_slice(&pending[..at]).unwrap();
            pending.drain(..=at);
            let stop = done(&event);
            events.push(event);
            if stop {
                return events;
            }
        }
    }
}
