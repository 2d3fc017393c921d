//! Shared pieces of the client tests against the Kubernetes simulator: starting it over HTTPS,
//! clients with each kind of credentials, a running pod, and exec runs collected in memory.

#![allow(dead_code)]

use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_runner::config::KubernetesConfig;
use alloy_runner::kube::{AbortHandle, Client, ExecError, ExecIo, ExecOutcome, ExecRequest};
use alloy_runner::kube::{KubeError, RetryPolicy};
use alloy_runner::secret::Secret;
use kube_sim::{Sim, SimHandle, SimOptions, TokenSpec};
use serde_json::{json, Value};

/// The namespace every test works in.
pub const NS: &str = "ci";
/// The admin token of [`https_sim`].
pub const TOKEN: &str = "runner-token";

/// A temporary folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "alloy-kube-sim-test-{}-{name}-{n}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).expect("temp dir is writable");
        TempDir(dir)
    }

    pub fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, content).expect("temp file is writable");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A simulator over HTTPS accepting only [`TOKEN`], with `change` applied to the options.
pub fn https_sim(change: impl FnOnce(&mut SimOptions)) -> SimHandle {
    let mut options = SimOptions {
        tls: true,
        tokens: vec![TokenSpec::admin(TOKEN, "system:serviceaccount:ci:runner")],
        ..SimOptions::default()
    };
    change(&mut options);
    Sim::start(options).expect("simulator starts")
}

/// Retries with millisecond waits (a server's Retry-After is cut to 50 ms).
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_millis(50),
        ..RetryPolicy::default()
    }
}

/// A client of `sim` trusting its CA, with `token` as bearer token.
pub fn token_client(sim: &SimHandle, token: &str) -> Client {
    let cfg = KubernetesConfig {
        host: Some(sim.url()),
        ca_file: sim.ca_pem_path(),
        bearer_token: Some(Secret::new(token)),
        ..KubernetesConfig::default()
    };
    Client::from_config(&cfg)
        .expect("client builds")
        .with_retry_policy(fast_retries())
}

/// The pod every exec test uses: one `build` container sleeping.
pub fn sleeping_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"job": "1"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "build", "image": "alpine", "command": ["sleep", "600"]}]
        }
    })
}

/// Creates `name` through `client` and waits (at most 20 s) until the simulator runs it.
pub fn running_pod(sim: &SimHandle, client: &Client, name: &str) {
    client
        .create_pod(NS, &sleeping_pod(name))
        .expect("pod created");
    let running = sim.wait_for_pod(NS, name, Duration::from_secs(20), |p| {
        p.is_some_and(|p| p["status"]["phase"] == "Running")
    });
    assert!(running, "pod {name} runs: {:?}", sim.pod(NS, name));
}

/// An exec of `command` in the `build` container of `pod`.
pub fn request(pod: &str, command: &[&str]) -> ExecRequest {
    ExecRequest {
        namespace: NS.into(),
        pod: pod.into(),
        container: "build".into(),
        command: command.iter().map(|s| s.to_string()).collect(),
    }
}

/// A shell command line as an exec request.
pub fn shell(pod: &str, script: &str) -> ExecRequest {
    request(pod, &["sh", "-c", script])
}

/// What one exec gave back.
pub struct Run {
    pub result: Result<ExecOutcome, ExecError>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    /// The exit code, failing the test with the error otherwise.
    pub fn exit_code(&self) -> i32 {
        match &self.result {
            Ok(outcome) => outcome.exit_code,
            Err(e) => panic!("exec gave no exit code: {e}"),
        }
    }
}

/// Runs `req` with `stdin` (none when `None`) and collects both outputs.
pub fn run_exec(
    client: &Client,
    req: &ExecRequest,
    stdin: Option<&[u8]>,
    abort: Option<AbortHandle>,
) -> Run {
    let input = stdin.map(|s| Box::new(Cursor::new(s.to_vec())) as Box<dyn Read + Send>);
    run_exec_with(client, req, input, abort)
}

/// Runs `req` with any stdin reader and collects both outputs.
pub fn run_exec_with(
    client: &Client,
    req: &ExecRequest,
    stdin: Option<Box<dyn Read + Send>>,
    abort: Option<AbortHandle>,
) -> Run {
    let (stdout, stderr) = (Sink::default(), Sink::default());
    let io = ExecIo {
        stdin,
        stdout: Box::new(stdout.clone()),
        stderr: Box::new(stderr.clone()),
        abort,
    };
    let result = client.exec(req, io);
    Run {
        result,
        stdout: stdout.bytes(),
        stderr: stderr.bytes(),
    }
}

/// A sink collecting everything written to it, shareable between threads.
#[derive(Clone, Default)]
pub struct Sink(pub Arc<Mutex<Vec<u8>>>);

impl Sink {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that only counts: bytes, writes, the largest write, and bytes other than `expected`.
#[derive(Clone, Default)]
pub struct Counter {
    pub bytes: Arc<AtomicU64>,
    pub largest_write: Arc<AtomicU64>,
    pub unexpected: Arc<AtomicU64>,
    pub expected: u8,
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let odd = buf.iter().filter(|&&b| b != self.expected).count();
        self.unexpected.fetch_add(odd as u64, Ordering::Relaxed);
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.largest_write
            .fetch_max(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The API error's Status message, failing the test on any other error.
pub fn api_message(e: &KubeError) -> (u16, String, String) {
    match e.status() {
        Some(status) => (status.code, status.reason.clone(), status.message.clone()),
        None => panic!("expected an API error, got: {e}"),
    }
}

/// Writes the in-cluster service account folder: `token`, `ca.crt` and `namespace`.
pub fn service_account(dir: &TempDir, sim: &SimHandle, token: &str) -> PathBuf {
    let ca = fs::read(sim.ca_pem_path().expect("https sim")).expect("ca readable");
    dir.write("ca.crt", &ca);
    dir.write("namespace", format!("{NS}\n").as_bytes());
    dir.write("token", token.as_bytes());
    dir.0.clone()
}
