//! A pod as the kubelet holds it: its spec, its status record and its sandbox.

use super::env::Launch;
use super::sandbox::Sandbox;
use super::status::{ContainerRecord, ContainerState, PodRecord, Scheduling};
use super::{ExecRefusal, Inner};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ChildStdin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A pod the kubelet runs.
pub struct Pod {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) spec: Value,
    pub(super) dir: PathBuf,
    pub(super) state: Mutex<State>,
    pub(super) wake: Condvar,
    pub(super) publishing: Mutex<()>,
    pub(super) worker: Mutex<Option<JoinHandle<()>>>,
    pub(super) waiters: Mutex<Vec<JoinHandle<()>>>,
}

pub(super) struct State {
    pub(super) record: PodRecord,
    pub(super) stopping: bool,
    pub(super) gone: bool,
    pub(super) sandbox: Option<Arc<Sandbox>>,
    pub(super) launches: HashMap<String, Launch>,
    pub(super) oom_killed: Vec<String>,
    /// Open stdin pipes of containers with `stdin: true`, so they do not see EOF.
    pub(super) stdins: Vec<ChildStdin>,
}

impl Pod {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Sleeps `d` unless the pod is being stopped; answers whether to go on.
    pub(super) fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            if state.stopping || now >= deadline {
                return !state.stopping;
            }
            state = match self.wake.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Hands the current status to the sink, in order, without holding the state lock.
    pub(super) fn publish(&self, inner: &Inner) {
        let _order = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        let status = {
            let mut state = self.lock();
            if state.gone {
                return;
            }
            state.record.render()
        };
        if let Some(sink) = inner.live_sink() {
            sink.set_status(&self.namespace, &self.name, status);
        }
    }

    pub(super) fn event(&self, inner: &Inner, kind: &str, reason: &str, message: &str) {
        if let Some(sink) = inner.live_sink() {
            sink.event(&self.namespace, &self.name, kind, reason, message);
        }
    }

    pub(super) fn set_state(&self, container: &str, state: ContainerState) {
        if let Some(c) = self.lock().record.container_mut(container) {
            c.state = state;
        }
    }

    /// Waits until a container terminated and answers its exit code; None when stopping.
    pub(super) fn wait_terminated(&self, name: &str) -> Option<i32> {
        let mut state = self.lock();
        loop {
            if state.stopping {
                return None;
            }
            let container = state.record.all_containers().find(|c| c.name == name);
            if let Some(code) = container.and_then(|c| c.exit_code()) {
                return Some(code);
            }
            state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The path of a container's log (stdout and stderr together).
    pub fn log_path(&self, container: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{container}.log"))
    }

    /// The sandbox, launch and name of the container an exec targets, or why not.
    pub fn exec_target(
        &self,
        container: &str,
    ) -> Result<(Arc<Sandbox>, Launch, String), ExecRefusal> {
        let state = self.lock();
        let names = |list: &[ContainerRecord]| -> Vec<String> {
            list.iter().map(|c| c.name.clone()).collect()
        };
        let (regular, init) = (
            names(&state.record.containers),
            names(&state.record.init_containers),
        );
        let pod = &self.name;
        let container = match (container, regular.as_slice()) {
            ("", [only]) => only.to_string(),
            ("", _) => {
                let mut msg = format!(
                    "a container name must be specified for pod {pod}, choose one of: [{}]",
                    regular.join(" ")
                );
                if !init.is_empty() {
                    msg.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                return Err(ExecRefusal::bad_request(msg));
            }
            (name, _) if !regular.iter().chain(&init).any(|n| n == name) => {
                let msg = format!("container {name} is not valid for pod {pod}");
                return Err(ExecRefusal::bad_request(msg));
            }
            (name, _) => name.to_string(),
        };
        if state.record.scheduling != Scheduling::Scheduled {
            let msg = format!("pod {pod} does not have a host assigned");
            return Err(ExecRefusal::bad_request(msg));
        }
        if state.record.is_terminal() {
            let phase = state.record.phase();
            let msg = format!(
                "cannot exec into a container in a completed pod; current phase is {phase}"
            );
            return Err(ExecRefusal::bad_request(msg));
        }
        let running = state
            .record
            .all_containers()
            .any(|c| c.name == container && c.is_running());
        let sandbox = state.sandbox.clone().filter(|_| running);
        let launch = state.launches.get(&container).cloned();
        match (sandbox, launch) {
            (Some(sandbox), Some(launch)) => Ok((sandbox, launch, container)),
            _ => {
                let msg =
                    format!("unable to upgrade connection: container not found (\"{container}\")");
                Err(ExecRefusal::bad_request(msg))
            }
        }
    }
}
