//! Shared harness of the kubelet tests: a recording sink and a node in a temp folder.
#![allow(dead_code)]

use kube_sim::kubelet::{ExecProcess, ExitOutcome, Kubelet, StatusSink};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Long enough for any pod to start on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One recorded event: pod, kind, reason, message.
pub type Event = (String, String, String, String);

#[derive(Default)]
struct Log {
    statuses: Vec<(String, Value)>,
    gone: Vec<String>,
    events: Vec<Event>,
    objects: HashMap<(String, String, String), Value>,
}

/// A StatusSink that records everything and lets tests wait for a status.
#[derive(Default)]
pub struct Recorder {
    log: Mutex<Log>,
    changed: Condvar,
}

impl StatusSink for Recorder {
    fn set_status(&self, _namespace: &str, name: &str, status: Value) {
        self.log
            .lock()
            .unwrap()
            .statuses
            .push((name.to_string(), status));
        self.changed.notify_all();
    }

    fn pod_gone(&self, _namespace: &str, name: &str) {
        self.log.lock().unwrap().gone.push(name.to_string());
        self.changed.notify_all();
    }

    fn event(&self, _namespace: &str, pod: &str, kind: &str, reason: &str, message: &str) {
        let event = (
            pod.to_string(),
            kind.to_string(),
            reason.to_string(),
            message.to_string(),
        );
        self.log.lock().unwrap().events.push(event);
        self.changed.notify_all();
    }

    fn lookup(&self, namespace: &str, kind: &str, name: &str) -> Option<Value> {
        let key = (namespace.to_string(), kind.to_string(), name.to_string());
        self.log.lock().unwrap().objects.get(&key).cloned()
    }
}

impl Recorder {
    /// Stores a Secret or ConfigMap for `lookup`.
    pub fn put(&self, kind: &str, name: &str, object: Value) {
        let key = ("ci".to_string(), kind.to_string(), name.to_string());
        self.log.lock().unwrap().objects.insert(key, object);
    }

    /// Waits for a status of `pod` that satisfies `want` and answers the first such; panics
    /// with the last status after a while.
    pub fn wait_status(&self, pod: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        let mut log = self.log.lock().unwrap();
        loop {
            let found = log.statuses.iter().find(|(p, s)| p == pod && want(s));
            if let Some((_, status)) = found {
                return status.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let last = log.statuses.iter().rev().find(|(p, _)| p == pod);
                panic!("no wanted status for pod {pod}; last: {last:#?}");
            }
            log = self.changed.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// Waits for the phase `phase`.
    pub fn wait_phase(&self, pod: &str, phase: &str) -> Value {
        self.wait_status(pod, |s| s["phase"] == phase)
    }

    /// Waits until `pod_gone` was called for `pod`.
    pub fn wait_gone(&self, pod: &str) {
        let deadline = Instant::now() + PATIENCE;
        let mut log = self.log.lock().unwrap();
        while !log.gone.iter().any(|p| p == pod) {
            let now = Instant::now();
            assert!(now < deadline, "pod {pod} never gone");
            log = self.changed.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// Every status recorded for `pod`, oldest first.
    pub fn statuses(&self, pod: &str) -> Vec<Value> {
        let log = self.log.lock().unwrap();
        log.statuses
            .iter()
            .filter(|(p, _)| p == pod)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Every event recorded for `pod`.
    pub fn events(&self, pod: &str) -> Vec<Event> {
        self.log
            .lock()
            .unwrap()
            .events
            .iter()
            .filter(|e| e.0 == pod)
            .cloned()
            .collect()
    }

    /// Whether `pod_gone` was called for `pod`.
    pub fn is_gone(&self, pod: &str) -> bool {
        self.log.lock().unwrap().gone.iter().any(|p| p == pod)
    }
}

/// A kubelet with its state in a fresh temp folder, removed on drop.
pub struct Node {
    pub dir: PathBuf,
    pub sink: Arc<Recorder>,
    pub kubelet: Kubelet,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Node {
    pub fn new() -> Node {
        let labels = BTreeMap::from([("disk".to_string(), "ssd".to_string())]);
        Node::with_labels(labels)
    }

    pub fn with_labels(labels: BTreeMap<String, String>) -> Node {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("kubelet-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sink = Arc::new(Recorder::default());
        let kubelet = Kubelet::new(dir.clone(), labels, sink.clone());
        Node { dir, sink, kubelet }
    }

    /// Execs `sh -c script` in a container and collects stdout, stderr and the outcome.
    pub fn sh(&self, pod: &str, container: &str, script: &str) -> (String, String, ExitOutcome) {
        let command = ["sh".to_string(), "-c".to_string(), script.to_string()];
        let process = self
            .kubelet
            .exec("ci", pod, container, &command, false)
            .unwrap();
        collect(process)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kubelet.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads both pipes to the end (on two threads) and waits for the process.
pub fn collect(mut process: ExecProcess) -> (String, String, ExitOutcome) {
    let mut stderr = process.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let mut out = String::new();
    process
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let err = err.join().unwrap();
    (out, err, process.wait().unwrap())
}

/// A pod in namespace `ci` with the given containers and volumes.
pub fn pod(name: &str, containers: Value, volumes: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ci", "uid": format!("{name}-0000-1111-2222")},
        "spec": {"containers": containers, "volumes": volumes, "restartPolicy": "Never"},
    })
}

/// A container that sleeps (so it stays Running) with the given image.
pub fn sleeper(name: &str, image: &str) -> Value {
    json!({"name": name, "image": image, "command": ["sleep", "3600"]})
}

/// Whether a process with that host pid still exists (zombies count as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// The mount table of this process (the host's view).
pub fn host_mounts() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// The pids of the processes in a sandbox under `state_dir` (their root is there) whose
/// command line starts with `needle`.
pub fn pids_running(state_dir: &std::path::Path, needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(root) = std::fs::read_link(format!("/proc/{pid}/root")) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if root.starts_with(state_dir) && cmd.starts_with(needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}
