//! The two watchers beside a running job: a watchdog for the deadline, a cancel from the
//! coordinator and a runner shutdown, and a pod monitor that notices a dead container, an
//! eviction or a deletion while the script runs. Either one stops the current phase.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::executor::pod_state::{deleted_message, run_state, RunState};
use crate::executor::stop::{StopReason, StopSignal};
use crate::kube::{Client, PodEvent, PodWatch};

/// How often the watchdog looks at the clock, the cancel state and the shutdown flag.
const WATCHDOG_TICK: Duration = Duration::from_millis(100);

/// Tells whether the coordinator cancelled the job.
pub trait CancelSource: Send + Sync {
    /// `Some(true)` for a graceful cancel (after_script may run), `Some(false)` for an
    /// immediate one, `None` while the job is wanted.
    fn canceled(&self) -> Option<bool>;
}

/// A source that never cancels, for jobs run without a coordinator.
pub struct NeverCanceled;

impl CancelSource for NeverCanceled {
    fn canceled(&self) -> Option<bool> {
        None
    }
}

struct Phase {
    signal: StopSignal,
    deadline: Instant,
}

/// Shared state of the watchers and the job thread.
pub struct Supervisor {
    phase: Mutex<Phase>,
    broken: Mutex<Option<String>>,
    done: AtomicBool,
}

impl Supervisor {
    /// A supervisor whose first phase ends at `deadline`.
    pub fn new(deadline: Instant) -> Supervisor {
        Supervisor {
            phase: Mutex::new(Phase {
                signal: StopSignal::new(),
                deadline,
            }),
            broken: Mutex::new(None),
            done: AtomicBool::new(false),
        }
    }

    /// The stop signal of the current phase.
    pub fn signal(&self) -> StopSignal {
        lock(&self.phase).signal.clone()
    }

    /// Starts a new phase (after_script) with its own deadline and a fresh signal. A broken pod
    /// stays broken: the new signal is raised at once.
    pub fn begin_phase(&self, deadline: Instant) -> StopSignal {
        let signal = StopSignal::new();
        if let Some(message) = lock(&self.broken).clone() {
            signal.stop(StopReason::PodBroken(message));
        }
        *lock(&self.phase) = Phase {
            signal: signal.clone(),
            deadline,
        };
        signal
    }

    /// The pod's failure, once the monitor saw one.
    pub fn broken(&self) -> Option<String> {
        lock(&self.broken).clone()
    }

    /// Ends both watchers.
    pub fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    /// Runs the watchdog until [`Supervisor::finish`].
    pub fn watchdog(&self, cancel: &dyn CancelSource, shutdown: &AtomicBool) {
        while !self.done.load(Ordering::SeqCst) {
            let (signal, deadline) = {
                let phase = lock(&self.phase);
                (phase.signal.clone(), phase.deadline)
            };
            if shutdown.load(Ordering::SeqCst) {
                signal.stop(StopReason::Shutdown);
            } else if let Some(graceful) = cancel.canceled() {
                signal.stop(StopReason::Canceled { graceful });
            } else if Instant::now() >= deadline {
                signal.stop(StopReason::Timeout);
            }
            std::thread::sleep(WATCHDOG_TICK);
        }
    }

    /// Watches the pod until [`Supervisor::finish`]; a failure stops the current phase. A watch
    /// that fails is started again after `poll_interval`.
    pub fn monitor(&self, client: &Client, namespace: &str, pod: &str, poll_interval: Duration) {
        while !self.done.load(Ordering::SeqCst) {
            match client.watch_pod(namespace, pod) {
                Ok(mut watch) => {
                    watch.set_poll_interval(poll_interval);
                    if let Some(message) = self.follow(&mut watch, pod) {
                        self.mark_broken(message);
                        return;
                    }
                }
                Err(err) => {
                    log::warn!("cannot watch pod {namespace}/{pod} while the job runs: {err}");
                }
            }
            std::thread::sleep(poll_interval);
        }
    }

    /// Reads the watch until the pod breaks (its message), the job ends or the watch fails
    /// (`None` both times).
    fn follow(&self, watch: &mut PodWatch, pod: &str) -> Option<String> {
        while !self.done.load(Ordering::SeqCst) {
            match watch.next(WATCHDOG_TICK) {
                Ok(None) => continue,
                Ok(Some(PodEvent::Updated(value))) => match run_state(&value) {
                    RunState::Healthy => continue,
                    RunState::Broken(message) => return Some(message),
                },
                Ok(Some(PodEvent::Deleted(_))) => return Some(deleted_message(pod)),
                Err(err) if err.is_not_found() => return Some(deleted_message(pod)),
                Err(err) => {
                    log::warn!("watching pod {pod} failed, starting the watch again: {err}");
                    return None;
                }
            }
        }
        None
    }

    /// Looks at the pod once more after a stage ended with a failing exit code: a pod that is
    /// being deleted, was evicted or lost a container killed the script, which is then no
    /// script failure. Returns that problem (the pod is marked broken), `None` when healthy.
    pub fn pod_problem(&self, client: &Client, namespace: &str, pod: &str) -> Option<String> {
        if let Some(message) = self.broken() {
            return Some(message);
        }
        let message = match client.get_pod(namespace, pod) {
            Ok(value) => match run_state(&value) {
                RunState::Healthy => return None,
                RunState::Broken(message) => message,
            },
            Err(err) if err.is_not_found() => deleted_message(pod),
            Err(err) => {
                log::debug!("cannot read pod {namespace}/{pod} after a failed stage: {err}");
                return None;
            }
        };
        self.mark_broken(message.clone());
        Some(message)
    }

    fn mark_broken(&self, message: String) {
        *lock(&self.broken) = Some(message.clone());
        lock(&self.phase)
            .signal
            .stop(StopReason::PodBroken(message));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values stay consistent even if a holder panicked; keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
