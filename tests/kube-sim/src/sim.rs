//! Starting and driving a simulator from tests: options, the handle, faults, snapshots.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

use crate::api::Ctx;
use crate::auth::{Auth, TokenSpec};
use crate::faults::{Failure, Faults, WatchMode};
use crate::kubelet::Kubelet;
use crate::node::StoreSink;
use crate::record::{RecordedRequest, Recorder};
use crate::server::{self, Connections};
use crate::store::Store;
use crate::{kubeconfig, tls, util};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Serve HTTPS with the test CA's server certificate (default false).
    pub tls: bool,
    /// Accept client certificates signed by the test CA (HTTPS only; default false).
    pub client_cert_auth: bool,
    /// Bearer tokens; when any is set (or client certificates are on), anonymous requests get 401.
    pub tokens: Vec<TokenSpec>,
    /// Offer only the v4 exec protocol, as an older server does (default false: v5 and v4).
    pub v4_only_exec: bool,
    /// Labels of the single node, matched against nodeSelector.
    pub node_labels: BTreeMap<String, String>,
    /// Where to listen; must be a loopback address (default 127.0.0.1, port 0 = any).
    pub bind: SocketAddr,
    /// Folder for sandboxes and TLS files (default: a fresh temporary folder, removed on drop).
    pub state_dir: Option<PathBuf>,
    /// Idle time after which a watch that allows bookmarks gets one (default 1 s).
    pub bookmark_interval: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            tls: false,
            client_cert_auth: false,
            tokens: Vec::new(),
            v4_only_exec: false,
            node_labels: BTreeMap::new(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// Why a simulator could not start.
#[derive(Debug)]
pub enum SimError {
    /// The bind address is not a loopback address.
    NotLoopback(SocketAddr),
    /// Binding the listener failed.
    Bind(SocketAddr, io::Error),
    /// The TLS material did not load.
    Tls(rustls::Error),
    /// The state folder could not be prepared.
    StateDir(PathBuf, io::Error),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::NotLoopback(addr) => {
                write!(f, "bind address {addr} is not a loopback address")
            }
            SimError::Bind(addr, e) => write!(f, "binding {addr}: {e}"),
            SimError::Tls(e) => write!(f, "loading the test TLS material: {e}"),
            SimError::StateDir(path, e) => {
                write!(f, "preparing state folder {}: {e}", path.display())
            }
        }
    }
}

impl std::error::Error for SimError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SimError::Bind(_, e) | SimError::StateDir(_, e) => Some(e),
            SimError::Tls(e) => Some(e),
            SimError::NotLoopback(_) => None,
        }
    }
}

/// What credentials a written kubeconfig carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// None.
    Anonymous,
    /// A bearer token.
    Token(String),
    /// The test client certificate (user `sim-admin`).
    ClientCert,
}

/// Entry point.
pub struct Sim;

impl Sim {
    /// Starts a simulator listening on `options.bind`; it serves until the handle drops.
    pub fn start(options: SimOptions) -> Result<SimHandle, SimError> {
        if !options.bind.ip().is_loopback() {
            return Err(SimError::NotLoopback(options.bind));
        }
        let (state_dir, owns_state_dir) = prepare_state_dir(options.state_dir.clone())?;
        let tls_config = match options.tls {
            true => Some(tls::server_config(options.client_cert_auth).map_err(SimError::Tls)?),
            false => None,
        };
        if options.tls {
            write_tls_files(&state_dir)?;
        }
        let listener =
            TcpListener::bind(options.bind).map_err(|e| SimError::Bind(options.bind, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| SimError::Bind(options.bind, e))?;

        let store = Arc::new(Store::default());
        let sink = Arc::new(StoreSink::new(store.clone()));
        let node = Kubelet::new(state_dir.join("kubelet"), options.node_labels.clone(), sink);
        let auth_required = !options.tokens.is_empty() || (options.tls && options.client_cert_auth);
        let ctx = Arc::new(Ctx {
            store,
            faults: Faults::default(),
            recorder: Recorder::default(),
            auth: Auth::new(options.tokens.clone(), auth_required),
            node: Arc::new(node),
            node_labels: options.node_labels.clone(),
            v4_only_exec: options.v4_only_exec,
            bookmark_interval: options.bookmark_interval,
            stopping: AtomicBool::new(false),
        });
        let connections = Arc::new(Connections::default());
        let accept = {
            let (ctx, connections) = (ctx.clone(), connections.clone());
            thread::spawn(move || server::accept_loop(listener, ctx, tls_config, connections))
        };
        Ok(SimHandle {
            ctx,
            addr,
            tls: options.tls,
            credentials: default_credentials(&options),
            state_dir,
            owns_state_dir,
            connections,
            accept: Some(accept),
        })
    }
}

fn prepare_state_dir(asked: Option<PathBuf>) -> Result<(PathBuf, bool), SimError> {
    let (dir, owned) = match asked {
        Some(dir) => (dir, false),
        None => {
            let name = format!("kube-sim-{}-{}", std::process::id(), util::random_suffix(8));
            (std::env::temp_dir().join(name), true)
        }
    };
    fs::create_dir_all(&dir).map_err(|e| SimError::StateDir(dir.clone(), e))?;
    Ok((dir, owned))
}

fn write_tls_files(state_dir: &Path) -> Result<(), SimError> {
    let dir = state_dir.join("tls");
    let write = |name: &str, text: &str| fs::write(dir.join(name), text);
    fs::create_dir_all(&dir)
        .and_then(|_| write("ca.crt", tls::CA_CERT))
        .and_then(|_| write("client.crt", tls::CLIENT_CERT))
        .and_then(|_| write("client.key", tls::CLIENT_KEY))
        .map_err(|e| SimError::StateDir(dir.clone(), e))
}

/// The first token if any, else the client certificate when HTTPS checks them, else none.
fn default_credentials(options: &SimOptions) -> Credentials {
    match options.tokens.first() {
        Some(spec) => Credentials::Token(spec.token.clone()),
        None if options.tls && options.client_cert_auth => Credentials::ClientCert,
        None => Credentials::Anonymous,
    }
}

/// A running simulator; dropping it stops the server and kills every pod process.
pub struct SimHandle {
    ctx: Arc<Ctx>,
    addr: SocketAddr,
    tls: bool,
    credentials: Credentials,
    state_dir: PathBuf,
    owns_state_dir: bool,
    connections: Arc<Connections>,
    accept: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The base URL, e.g. `https://127.0.0.1:40123` or `http://[::1]:40123`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The test CA certificate file (PEM), when serving HTTPS.
    pub fn ca_pem_path(&self) -> Option<PathBuf> {
        self.tls.then(|| self.state_dir.join("tls/ca.crt"))
    }

    /// The test client certificate and key files (PEM), when serving HTTPS.
    pub fn client_cert_paths(&self) -> Option<(PathBuf, PathBuf)> {
        let dir = self.state_dir.join("tls");
        self.tls
            .then(|| (dir.join("client.crt"), dir.join("client.key")))
    }

    /// Writes a kubeconfig for this simulator with `namespace` as the context's namespace.
    pub fn write_kubeconfig(
        &self,
        path: &Path,
        credentials: &Credentials,
        namespace: &str,
    ) -> io::Result<()> {
        let text = kubeconfig::render(
            &self.url(),
            self.ca_pem_path().as_deref(),
            credentials,
            self.client_cert_paths(),
            namespace,
        );
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, text)
    }

    /// The credentials [`SimHandle::kubeconfig`] writes: the first token, else the client
    /// certificate (when checked), else none.
    pub fn default_credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Writes a kubeconfig for namespace `default` with the first token, else the client
    /// certificate (when checked), else no credentials.
    pub fn kubeconfig(&self, path: &Path) -> io::Result<()> {
        self.write_kubeconfig(path, &self.credentials, "default")
    }

    /// Every request answered so far (admin paths excluded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.ctx.recorder.all()
    }

    /// Forgets the requests answered so far.
    pub fn clear_requests(&self) {
        self.ctx.recorder.clear();
    }

    /// Answers the next `count` requests of `verb` (`get`, `list`, `watch`, `create`,
    /// `delete`, `exec`, `*`) with `failure`.
    pub fn fail_next(&self, verb: &str, count: u32, failure: Failure) {
        self.ctx.faults.fail_next(verb, count, failure);
    }

    /// Delays every API answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.ctx.faults.set_latency(latency);
    }

    /// Changes how watches are served (refused, closed at once, 410 as HTTP).
    pub fn set_watch_mode(&self, mode: WatchMode) {
        self.ctx.faults.set_watch_mode(mode);
    }

    /// Cuts new exec WebSockets after `bytes` of output (`None`: never).
    pub fn drop_exec_after(&self, bytes: Option<u64>) {
        self.ctx.faults.set_exec_drop_after(bytes);
    }

    /// Clears every fault.
    pub fn reset_faults(&self) {
        self.ctx.faults.reset();
    }

    /// Replaces a bearer token; the old one gets 401 from now on. False if `old` is unknown.
    pub fn rotate_token(&self, old: &str, new: &str) -> bool {
        self.ctx.auth.rotate(old, new)
    }

    /// Adds a bearer token.
    pub fn add_token(&self, spec: TokenSpec) {
        self.ctx.auth.add(spec);
    }

    /// Deletes a pod "from outside" (an admin, an eviction) with a grace period; false if absent.
    pub fn delete_pod(&self, namespace: &str, name: &str, grace: Duration) -> bool {
        match self.ctx.store.get("pods", namespace, name) {
            Some(pod) => {
                crate::pods::delete_pod(&self.ctx, &pod, grace.as_secs());
                true
            }
            None => false,
        }
    }

    /// A snapshot of the pods of a namespace.
    pub fn pods(&self, namespace: &str) -> Vec<Value> {
        self.ctx.store.list("pods", Some(namespace)).0
    }

    /// A snapshot of one pod.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.ctx.store.get("pods", namespace, name)
    }

    /// A snapshot of the events of a namespace.
    pub fn events(&self, namespace: &str) -> Vec<Value> {
        self.ctx.store.list("events", Some(namespace)).0
    }

    /// Stores an object as if created through the API, e.g. a Secret a pod refers to.
    pub fn put_object(&self, resource: &str, mut object: Value) -> Option<Value> {
        object["kind"] = Value::String(crate::objects::kind_of(resource).to_string());
        object["apiVersion"] = Value::String("v1".into());
        self.ctx.store.create(resource, object).ok()
    }

    /// The latest resource version.
    pub fn resource_version(&self) -> u64 {
        self.ctx.store.current_rv()
    }

    /// Forgets the change history: any watch from an older version gets 410.
    pub fn compact_history(&self) {
        self.ctx.store.compact();
    }

    /// Waits until `check` holds for the pod (or it is gone, passing `None`); false on timeout.
    pub fn wait_for_pod(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
        check: impl Fn(Option<&Value>) -> bool,
    ) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if check(self.pod(namespace, name).as_ref()) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.ctx.stopping.store(true, Ordering::Relaxed);
        // One connection wakes the accept loop so it sees the flag; without it, do not wait.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        self.ctx.store.wake_all();
        self.connections.close_all();
        self.ctx.node.shutdown();
        if let Some(accept) = self.accept.take().filter(|_| woke) {
            let _ = accept.join();
        }
        if self.owns_state_dir {
            let _ = fs::remove_dir_all(&self.state_dir);
        }
    }
}
