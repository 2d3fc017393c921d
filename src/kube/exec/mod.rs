//! `pods/exec` over a WebSocket on our own TCP and TLS stream, so that timeouts can be set and
//! the socket shut down from another thread. The upgrade is ours too ([`upgrade`]), so that a
//! refusal's Status body is read whole; tungstenite takes over from the first frame.
//!
//! One loop owns the socket: it sends queued stdin chunks, pings when idle, and copies each
//! output message straight to its sink (raw bytes, no UTF-8 assumption). Stdin is read on its
//! own thread and handed over a bounded channel, so memory stays bounded either way.
//!
//! Under `v4.channel.k8s.io` stdin EOF cannot be sent: a command that waits for it would wait
//! forever, so callers must pass their input in `command` or as a file instead.

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::WebSocket;

mod session;
mod socket;
mod upgrade;

use super::channel::ExecProtocol;
use super::error::Status;
use super::rest::{encode, Transport};
use session::Session;
use socket::Socket;
use upgrade::UpgradeError;

/// How often the client pings a quiet connection (5 s, like kubectl).
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// Silence after which the connection is given up (61 s, like kubectl).
pub const IDLE_LIMIT: Duration = Duration::from_secs(61);
/// Longest wait for a blocked socket write (30 s).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest WebSocket message accepted (16 MiB; the kubelet sends at most 32 KiB at a time).
const MAX_MESSAGE: usize = 16 << 20;
/// Most bytes tungstenite asks the TLS stream for at once (16 KiB, one TLS record's plaintext).
/// It zeroes that much before every read, and a TLS read gives at most a record or so: its
/// 128 KiB default meant zeroing about eight times the bytes received.
const WS_READ_BUFFER: usize = 16 << 10;

type TlsStream = StreamOwned<ClientConnection, Socket>;

/// What to run: `command` (argv, no shell) in `container` of `pod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
}

/// Where the command's streams go. The sinks get raw bytes as they arrive. `stdin` is read on
/// its own thread until EOF or an error; a reader that never returns keeps that thread alive
/// after the exec ends. Under v4 its EOF cannot reach the command (see the module doc).
pub struct ExecIo {
    pub stdin: Option<Box<dyn Read + Send>>,
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
    pub abort: Option<AbortHandle>,
}

/// How an exec ended when the server reported the command's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The command's exit code, 0 to 255.
    pub exit_code: i32,
    /// The subprotocol the server chose.
    pub protocol: ExecProtocol,
}

/// Stops a running exec from any thread: the socket is shut down and the exec returns
/// [`ExecError::Aborted`]. Once aborted, a handle stays aborted (later execs stop at once).
#[derive(Clone, Default)]
pub struct AbortHandle(Arc<AbortState>);

#[derive(Default)]
struct AbortState {
    aborted: AtomicBool,
    socket: Mutex<Option<TcpStream>>,
}

impl AbortHandle {
    /// A handle not yet aborted.
    pub fn new() -> AbortHandle {
        AbortHandle::default()
    }

    /// Aborts the exec using this handle, now or when it starts.
    pub fn abort(&self) {
        self.0.aborted.store(true, Ordering::SeqCst);
        let socket = self.0.socket.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(socket) = socket.as_ref() {
            // Already closed is fine: the exec is ending anyway.
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Whether [`AbortHandle::abort`] was called.
    pub fn is_aborted(&self) -> bool {
        self.0.aborted.load(Ordering::SeqCst)
    }

    /// Remembers the exec's socket; false when the handle was aborted already.
    fn register(&self, socket: Option<TcpStream>) -> bool {
        *self.0.socket.lock().unwrap_or_else(|p| p.into_inner()) = socket;
        !self.is_aborted()
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("aborted", &self.is_aborted())
            .finish()
    }
}

/// Why an exec gave no exit code.
#[derive(Debug)]
pub enum ExecError {
    /// No TCP connection to the API server.
    Connect { url: String, source: io::Error },
    /// The TLS handshake failed (usually a server certificate that does not verify).
    Tls { host: String, source: rustls::Error },
    /// The WebSocket upgrade failed without an HTTP answer to show.
    Handshake { pod: String, detail: String },
    /// The server refused the exec before the upgrade (404 pod, 400 container, 403, ...).
    Rejected { pod: String, status: Box<Status> },
    /// The connection ended without the exit status: the command's fate is unknown.
    LostStatus { pod: String, detail: String },
    /// The server reported a failure that carries no exit code.
    Failure { pod: String, message: String },
    /// The exit status could not be read.
    InvalidStatus { pod: String, detail: String },
    /// [`AbortHandle::abort`] was called.
    Aborted { pod: String },
    /// Nothing came from the server, not even a pong, for this long.
    Idle { pod: String, silence: Duration },
    /// The connection failed while setting up.
    Io { pod: String, source: io::Error },
    /// A sink refused the output.
    Output { pod: String, source: io::Error },
    /// Reading stdin failed.
    Input { pod: String, source: io::Error },
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Connect { url, source } => write!(f, "cannot connect to {url}: {source}"),
            ExecError::Tls { host, source } => write!(f, "tls with {host} failed: {source}"),
            ExecError::Handshake { pod, detail } => {
                write!(f, "exec in pod {pod}: websocket upgrade failed: {detail}")
            }
            ExecError::Rejected { pod, status } => write!(f, "exec in pod {pod} refused: {status}"),
            ExecError::LostStatus { pod, detail } => write!(
                f,
                "exec in pod {pod}: the connection ended without the command's exit status \
                 ({detail})"
            ),
            ExecError::Failure { pod, message } => write!(f, "exec in pod {pod} failed: {message}"),
            ExecError::InvalidStatus { pod, detail } => {
                write!(f, "exec in pod {pod}: unreadable exit status: {detail}")
            }
            ExecError::Aborted { pod } => write!(f, "exec in pod {pod} aborted"),
            ExecError::Idle { pod, silence } => write!(
                f,
                "exec in pod {pod}: no answer from the api server for {} s",
                silence.as_secs()
            ),
            ExecError::Io { pod, source } => write!(f, "exec in pod {pod}: {source}"),
            ExecError::Output { pod, source } => {
                write!(f, "exec in pod {pod}: cannot write the output: {source}")
            }
            ExecError::Input { pod, source } => {
                write!(f, "exec in pod {pod}: cannot read stdin: {source}")
            }
        }
    }
}

impl StdError for ExecError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ExecError::Connect { source, .. }
            | ExecError::Io { source, .. }
            | ExecError::Output { source, .. }
            | ExecError::Input { source, .. } => Some(source),
            ExecError::Tls { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Runs one exec; a 401 answer makes the token file be read again and the exec tried once more,
/// and an upgrade the server could not serve now (429, 5xx, no connection) is tried again.
pub(crate) fn run(
    transport: &Transport,
    req: &ExecRequest,
    mut io: ExecIo,
) -> Result<ExecOutcome, ExecError> {
    let target = exec_target(transport, req, io.stdin.is_some());
    let ws = open_with_retries(transport, &target, &req.pod, io.abort.as_ref())?;
    let (ws, protocol) = ws;
    log::debug!("exec in pod {} attached ({protocol:?})", req.pod);

    let stdin = match io.stdin.take() {
        Some(reader) => Some(session::spawn_stdin(reader, &req.pod)?),
        None => None,
    };
    let abort = io.abort.clone();
    let session = Session::new(ws, protocol, req.pod.clone(), io, stdin);
    let result = session.run();
    if let Some(handle) = &abort {
        handle.register(None);
    }
    result
}

/// Opens the stream. The command has not started while the upgrade is refused, so answers
/// that mean "not now" are tried again with backoff; a 401 reloads the token once.
fn open_with_retries(
    transport: &Transport,
    target: &str,
    pod: &str,
    abort: Option<&AbortHandle>,
) -> Result<(WebSocket<TlsStream>, ExecProtocol), ExecError> {
    let policy = transport.retry;
    let mut backoff = policy.min_backoff;
    let mut tries = 1;
    let mut reloaded = false;
    loop {
        match open(transport, target, pod, abort) {
            Err(ExecError::Rejected { status, .. })
                if status.code == 401
                    && !reloaded
                    && transport.auth.reload_after_unauthorized() =>
            {
                log::info!("exec in pod {pod}: token refused, trying again with the new token");
                reloaded = true;
            }
            Err(e) if tries < policy.tries && not_started_yet(&e) => {
                log::debug!("exec in pod {pod} could not start ({e}), trying again");
                std::thread::sleep(backoff);
                backoff = backoff.saturating_mul(2).min(policy.max_backoff);
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Whether the exec failed before its command could start, for a reason that may pass.
fn not_started_yet(e: &ExecError) -> bool {
    match e {
        ExecError::Rejected { status, .. } => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        ExecError::Connect { .. } => true,
        _ => false,
    }
}

/// Path and query of the exec call, under the endpoint's prefix.
fn exec_target(transport: &Transport, req: &ExecRequest, stdin: bool) -> String {
    let mut target = format!(
        "{}/api/v1/namespaces/{}/pods/{}/exec?",
        transport.endpoint.prefix,
        encode(&req.namespace),
        encode(&req.pod)
    );
    for arg in &req.command {
        target.push_str(&format!("command={}&", encode(arg)));
    }
    target.push_str(&format!("container={}", encode(&req.container)));
    if stdin {
        target.push_str("&stdin=true");
    }
    target.push_str("&stdout=true&stderr=true");
    target
}

/// Connects, does TLS and the WebSocket upgrade.
fn open(
    transport: &Transport,
    target: &str,
    pod: &str,
    abort: Option<&AbortHandle>,
) -> Result<(WebSocket<TlsStream>, ExecProtocol), ExecError> {
    let endpoint = &transport.endpoint;
    let url = format!("https://{}{target}", endpoint.authority);
    // Errors name the URL without its query: the command may hold a whole script.
    let shown = url.split('?').next().unwrap_or_default().to_string();
    let tcp = connect(&endpoint.host, endpoint.port, transport.connect_timeout)
        .map_err(|source| ExecError::Connect { url: shown, source })?;
    if let Some(handle) = abort {
        if !handle.register(tcp.try_clone().ok()) {
            return Err(ExecError::Aborted {
                pod: pod.to_string(),
            });
        }
    }
    let aborted = || abort.is_some_and(AbortHandle::is_aborted);

    let tls = tls_handshake(transport, tcp).map_err(|e| match e {
        _ if aborted() => ExecError::Aborted {
            pod: pod.to_string(),
        },
        TlsFailure::Tls(source) => ExecError::Tls {
            host: endpoint.authority.clone(),
            source,
        },
        TlsFailure::Io(source) => ExecError::Io {
            pod: pod.to_string(),
            source,
        },
    })?;

    let mut tls = tls;
    let key = tungstenite::handshake::client::generate_key();
    let token = transport.auth.token();
    let upgraded = upgrade::upgrade(&mut tls, &endpoint.authority, target, &key, token.as_ref());
    let upgraded = match upgraded {
        Ok(upgraded) => upgraded,
        Err(_) if aborted() => {
            return Err(ExecError::Aborted {
                pod: pod.to_string(),
            })
        }
        Err(e) => return Err(upgrade_error(e, pod)),
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = WebSocket::from_partially_read(tls, upgraded.tail, Role::Client, Some(config));
    Ok((ws, upgraded.protocol))
}

fn upgrade_error(error: UpgradeError, pod: &str) -> ExecError {
    let pod = pod.to_string();
    match error {
        UpgradeError::Refused(status) => ExecError::Rejected {
            pod,
            status: Box::new(status),
        },
        UpgradeError::Invalid(detail) => ExecError::Handshake { pod, detail },
        UpgradeError::Io(e) if is_timeout(&e) => {
            let detail = "timed out waiting for the upgrade answer".into();
            ExecError::Handshake { pod, detail }
        }
        UpgradeError::Io(source) => ExecError::Io { pod, source },
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

enum TlsFailure {
    Tls(rustls::Error),
    Io(io::Error),
}

/// Runs the TLS handshake to its end, so that a certificate problem is told apart.
fn tls_handshake(transport: &Transport, tcp: TcpStream) -> Result<TlsStream, TlsFailure> {
    let name = transport
        .endpoint
        .server_name()
        .map_err(|e| TlsFailure::Io(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;
    let mut conn = ClientConnection::new(transport.tls.clone(), name).map_err(TlsFailure::Tls)?;
    tcp.set_read_timeout(Some(transport.connect_timeout))
        .map_err(TlsFailure::Io)?;
    tcp.set_write_timeout(Some(WRITE_TIMEOUT))
        .map_err(TlsFailure::Io)?;
    let mut socket = Socket::new(tcp);
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut socket) {
            let tls = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            return Err(match tls {
                Some(tls) => TlsFailure::Tls(tls.clone()),
                None => TlsFailure::Io(e),
            });
        }
    }
    Ok(StreamOwned::new(conn, socket))
}
