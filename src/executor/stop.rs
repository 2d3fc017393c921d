//! Why a running job must stop early, shared between the job's thread, its watchdog and the
//! pod monitor. The first reason set wins; setting it aborts every exec in flight.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::kube::AbortHandle;

/// Why a job stops before its stages finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// `runner_info.timeout` passed.
    Timeout,
    /// The coordinator cancelled the job; `graceful` when after_script may still run.
    Canceled { graceful: bool },
    /// The pod or one of its containers died or vanished; the message says how.
    PodBroken(String),
    /// The runner itself is shutting down (SIGTERM, SIGINT).
    Shutdown,
}

#[derive(Default)]
struct Inner {
    reason: Option<StopReason>,
    aborts: Vec<AbortHandle>,
}

/// A shared, clonable stop flag with the exec abort handles it must trigger.
#[derive(Clone, Default)]
pub struct StopSignal {
    inner: Arc<Mutex<Inner>>,
}

impl StopSignal {
    /// A signal nobody has raised.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Raises the signal with `reason` (ignored when already raised) and aborts every
    /// registered exec.
    pub fn stop(&self, reason: StopReason) {
        let mut inner = self.lock();
        if inner.reason.is_some() {
            return;
        }
        inner.reason = Some(reason);
        for handle in inner.aborts.drain(..) {
            handle.abort();
        }
    }

    /// The reason, once raised.
    pub fn reason(&self) -> Option<StopReason> {
        self.lock().reason.clone()
    }

    /// Registers an exec to abort on stop; aborts it at once when already stopped.
    pub fn register(&self, handle: &AbortHandle) {
        let mut inner = self.lock();
        if inner.reason.is_some() {
            handle.abort();
        } else {
            inner.aborts.push(handle.clone());
        }
    }

    /// Forgets the registered execs (the stage that owned them has ended).
    pub fn clear_execs(&self) {
        self.lock().aborts.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked while holding it; the data (a
        // reason and a list of handles) stays consistent, so keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
