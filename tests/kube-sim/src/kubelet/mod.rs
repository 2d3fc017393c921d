//! The simulated kubelet: runs each pod's containers as local processes in a sandbox of its
//! own (see `sandbox`), reports their status like a real kubelet, and runs exec'd commands.
//!
//! Images are never pulled; the host's userland stands in for every image, and some image
//! names script a fate instead (see `fate` and `FATES.md`). Needs root (mount namespaces).

mod env;
mod fate;
mod lifecycle;
mod pod;
mod sandbox;
mod spawn;
mod status;
mod teardown;
mod volumes;

pub use fate::Fate;
pub use status::{rfc3339, POD_IP};

use pod::Pod;
use sandbox::Job;
use serde_json::Value;
use spawn::Spawner;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The name of the one node the simulated kubelet is.
pub const NODE_NAME: &str = "sim-node";

/// Where the kubelet reports to (the API server's store).
///
/// The kubelet never calls the sink while it holds a lock of its own, so the sink may call
/// back into the kubelet.
pub trait StatusSink: Send + Sync {
    /// The pod's new `status` object.
    fn set_status(&self, namespace: &str, name: &str, status: Value);
    /// The pod was stopped and torn down; it may be removed from the store.
    fn pod_gone(&self, namespace: &str, name: &str);
    /// An event about a pod; `kind` is `Normal` or `Warning`.
    fn event(&self, namespace: &str, pod: &str, kind: &str, reason: &str, message: &str);
    /// A stored object of `kind` (`secrets` or `configmaps`), if it exists.
    fn lookup(&self, namespace: &str, kind: &str, name: &str) -> Option<Value>;
}

/// Why an exec was refused before it started, as the API server answers it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecRefusal {
    /// HTTP status code (404, 400 or 500).
    pub code: u16,
    /// Status reason (`NotFound`, `BadRequest`, `InternalError`).
    pub reason: String,
    /// The Status message, worded as the API server words it.
    pub message: String,
}

impl ExecRefusal {
    fn new(code: u16, reason: &str, message: String) -> Self {
        ExecRefusal {
            code,
            reason: reason.to_string(),
            message,
        }
    }

    fn bad_request(message: String) -> Self {
        Self::new(400, "BadRequest", message)
    }
}

impl fmt::Display for ExecRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exec refused ({} {}): {}",
            self.code, self.reason, self.message
        )
    }
}

impl std::error::Error for ExecRefusal {}

/// How an exec'd process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitOutcome {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitOutcome {
    /// The exit code a container runtime reports: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ExitOutcome::Code(c) => c,
            ExitOutcome::Signal(s) => 128 + s,
        }
    }
}

/// A running exec'd command; take its pipes, then `wait`. Dropping it reaps the process in
/// the background without killing it.
#[derive(Debug)]
pub struct ExecProcess {
    /// The process's stdin, when stdin was asked for.
    pub stdin: Option<ChildStdin>,
    /// The process's stdout (always piped).
    pub stdout: Option<ChildStdout>,
    /// The process's stderr (always piped).
    pub stderr: Option<ChildStderr>,
    child: Option<Child>,
}

impl ExecProcess {
    /// The host pid of the process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for the process to end.
    pub fn wait(&mut self) -> io::Result<ExitOutcome> {
        use std::os::unix::process::ExitStatusExt;
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| io::Error::other("already reaped"))?;
        let status = child.wait()?;
        self.child = None;
        match (status.code(), status.signal()) {
            (Some(code), _) => Ok(ExitOutcome::Code(code)),
            (None, Some(signal)) => Ok(ExitOutcome::Signal(signal)),
            (None, None) => Err(io::Error::other(format!("unknown exit status {status}"))),
        }
    }

    /// Sends SIGKILL to the process.
    pub fn kill(&mut self) -> io::Result<()> {
        match self.child.as_mut() {
            Some(child) => child.kill(),
            None => Ok(()),
        }
    }
}

impl From<Child> for ExecProcess {
    /// Wraps a process started elsewhere (tests of the exec stream run host commands).
    fn from(mut child: Child) -> Self {
        ExecProcess {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child: Some(child),
        }
    }
}

impl Drop for ExecProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                thread::spawn(move || child.wait());
            }
        }
    }
}

/// The simulated kubelet of one node; `shutdown` (or drop) kills and removes everything.
pub struct Kubelet {
    inner: Arc<Inner>,
}

struct Inner {
    state_dir: PathBuf,
    node_labels: BTreeMap<String, String>,
    sink: Arc<dyn StatusSink>,
    pods: Mutex<HashMap<(String, String), Arc<Pod>>>,
    spawner: Spawner,
    stoppers: Mutex<Vec<JoinHandle<()>>>,
    /// Set by `shutdown`: from then on the sink hears nothing more.
    closed: AtomicBool,
}

impl Inner {
    /// The pod of that namespace and name, if the kubelet runs it.
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        let key = (namespace.to_string(), name.to_string());
        self.pods.lock().ok()?.get(&key).cloned()
    }

    /// The sink, unless the kubelet is shut down.
    fn live_sink(&self) -> Option<&dyn StatusSink> {
        (!self.closed.load(Ordering::SeqCst)).then_some(self.sink.as_ref())
    }
}

impl Kubelet {
    /// A kubelet keeping all its state (sandboxes, volumes, claims, logs) under `state_dir`.
    ///
    /// Panics if the spawning thread cannot start (no threads or no /proc: no kubelet).
    pub fn new(
        state_dir: PathBuf,
        node_labels: BTreeMap<String, String>,
        sink: Arc<dyn StatusSink>,
    ) -> Kubelet {
        let spawner = Spawner::start().expect("the kubelet needs /proc and a thread to spawn");
        let inner = Inner {
            state_dir,
            node_labels,
            sink,
            pods: Mutex::new(HashMap::new()),
            spawner,
            stoppers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        };
        Kubelet {
            inner: Arc::new(inner),
        }
    }

    /// Starts running a pod (an object as stored, with `metadata.namespace`); returns at
    /// once, the status then moves through `StatusSink::set_status`.
    pub fn start_pod(&self, pod: &Value) {
        lifecycle::start(&self.inner, pod.clone());
    }

    /// Stops a pod: SIGTERM to every container, SIGKILL after `grace`, sandbox torn down,
    /// then `StatusSink::pod_gone`. Returns at once; an unknown pod is reported gone.
    pub fn stop_pod(&self, namespace: &str, name: &str, grace: Duration) {
        let inner = Arc::clone(&self.inner);
        let Some(pod) = self.inner.pod(namespace, name) else {
            // Nothing runs here: the pod is gone already (told from a thread, like a stop).
            let (namespace, name) = (namespace.to_string(), name.to_string());
            thread::spawn(move || {
                if let Some(sink) = inner.live_sink() {
                    sink.pod_gone(&namespace, &name);
                }
            });
            return;
        };
        let handle = thread::spawn(move || teardown::stop(&inner, &pod, grace));
        if let Ok(mut stoppers) = self.inner.stoppers.lock() {
            stoppers.retain(|h| !h.is_finished());
            stoppers.push(handle);
        }
    }

    /// Starts `command` in a running container of a pod, with that container's environment,
    /// root and working folder; stdout and stderr are always piped, stdin when asked.
    pub fn exec(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        command: &[String],
        stdin: bool,
    ) -> Result<ExecProcess, ExecRefusal> {
        let pod = self.inner.pod(namespace, name).ok_or_else(|| {
            ExecRefusal::new(404, "NotFound", format!("pods \"{name}\" not found"))
        })?;
        let (sandbox, launch, container) = pod.exec_target(container)?;
        if command.is_empty() {
            let msg = "you must specify at least one command for the container".to_string();
            return Err(ExecRefusal::bad_request(msg));
        }
        let job = Job {
            container: &container,
            argv: command,
            env: &launch.env,
            working_dir: &launch.working_dir,
            user: launch.user,
            stdin: if stdin { Stdio::piped() } else { Stdio::null() },
            stdout: Stdio::piped(),
            stderr: Stdio::piped(),
        };
        let child = sandbox
            .spawn(&self.inner.spawner, job)
            .map_err(|e| ExecRefusal::new(500, "InternalError", exec_failure(&command[0], &e)))?;
        Ok(ExecProcess::from(child))
    }

    /// What a container wrote to stdout and stderr so far (its log), if the pod is known.
    pub fn logs(&self, namespace: &str, name: &str, container: &str) -> Option<Vec<u8>> {
        let pod = self.inner.pod(namespace, name)?;
        std::fs::read(pod.log_path(container)).ok()
    }

    /// Kills every process and removes every sandbox; the kubelet runs nothing and reports
    /// nothing afterwards. Waits for pending `stop_pod`s and pod threads, so the caller must
    /// not hold a lock the sink needs.
    pub fn shutdown(&self) {
        teardown::shutdown(&self.inner);
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How runc words a program it could not start.
fn exec_cause(program: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => {
            format!("exec: \"{program}\": executable file not found in $PATH")
        }
        _ => format!("exec: \"{program}\": {e}"),
    }
}

fn exec_failure(program: &str, e: &io::Error) -> String {
    let cause = exec_cause(program, e);
    format!(
        "error executing command in container: failed to exec in container: OCI runtime exec \
         failed: exec failed: unable to start container process: {cause}: unknown"
    )
}
