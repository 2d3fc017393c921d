//! Taking jobs from the coordinator and running them: the loop behind `run` and `run-single`,
//! and the glue from one job payload to its pod, its trace and its final state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::RunnerConfig;
use crate::coordinator::job::Job;
use crate::coordinator::messages::{CancelState, FailureReason};
use crate::coordinator::poller::Poller;
use crate::coordinator::trace_sender::{
    CancelWatch, JobResult, TraceOptions, TraceSender, TraceSource,
};
use crate::coordinator::Client as Coordinator;
use crate::coordinator::CoordinatorError;
use crate::executor::job::{run_job, FailureKind, JobIo, JobOutcome, JobSpec};
use crate::executor::sources::Sources;
use crate::executor::supervisor::CancelSource;
use crate::executor::variables::masked_values;
use crate::kube::{Client as Kube, KubeError};
use crate::secret::Secret;
use crate::trace::{Spool, TraceWriter};

/// How long a runner that is shutting down keeps trying to report a job's final state.
const SHUTDOWN_REPORT_DEADLINE: Duration = Duration::from_secs(30);

/// A failure that stops a runner entry from taking jobs.
#[derive(Debug)]
pub enum ServiceError {
    /// The entry lacks what talking to the coordinator needs.
    Incomplete {
        runner: String,
        missing: &'static str,
    },
    /// The coordinator URL cannot be used.
    Coordinator {
        runner: String,
        source: CoordinatorError,
    },
    /// No Kubernetes credentials could be set up.
    Kubernetes { runner: String, source: KubeError },
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Incomplete { runner, missing } => {
                write!(f, "runner {runner:?} has no {missing} in the config file")
            }
            ServiceError::Coordinator { runner, source } => {
                write!(f, "runner {runner:?}: {source}")
            }
            ServiceError::Kubernetes { runner, source } => {
                write!(f, "runner {runner:?}: kubernetes credentials: {source}")
            }
        }
    }
}

impl std::error::Error for ServiceError {}

/// One `[[runners]]` entry ready to take jobs.
pub struct Runner {
    pub config: RunnerConfig,
    pub coordinator: Coordinator,
    pub kube: Kube,
    token: Secret,
}

impl Runner {
    /// Sets up the coordinator and Kubernetes clients of `config`.
    pub fn new(config: RunnerConfig) -> Result<Runner, ServiceError> {
        let name = config.name.clone();
        let url = config.url.clone().ok_or(ServiceError::Incomplete {
            runner: name.clone(),
            missing: "url",
        })?;
        let token =
            config
                .token
                .clone()
                .filter(|t| !t.is_empty())
                .ok_or(ServiceError::Incomplete {
                    runner: name.clone(),
                    missing: "token",
                })?;
        let coordinator = Coordinator::new(&url).map_err(|source| ServiceError::Coordinator {
            runner: name.clone(),
            source,
        })?;
        let kube =
            Kube::from_config(&config.kubernetes).map_err(|source| ServiceError::Kubernetes {
                runner: name,
                source,
            })?;
        Ok(Runner {
            config,
            coordinator,
            kube,
            token,
        })
    }

    /// A poller that asks the coordinator for this entry's jobs every `check_interval`.
    pub fn poller(&self, check_interval: Duration) -> Poller {
        Poller::new(
            self.coordinator.clone(),
            &self.config.name,
            self.token.clone(),
            check_interval,
        )
    }

    /// Runs `job` to its end and reports its result; returns the outcome.
    pub fn process(&self, job: &Job, concurrent_id: u32, shutdown: &AtomicBool) -> JobOutcome {
        log::info!(
            "job {} ({}): starting on runner {:?}",
            job.id,
            job.job_info.name,
            self.config.name
        );
        let spool = match Spool::new() {
            Ok(spool) => spool,
            Err(err) => return self.report_without_trace(job, err),
        };
        let trace = TraceWriter::new(spool.clone(), job_masks(job), self.config.output_limit);
        let source: Arc<dyn TraceSource> = spool.clone();
        let sender = match TraceSender::start(
            self.coordinator.clone(),
            job.id,
            job.token.clone(),
            source,
            TraceOptions::default(),
        ) {
            Ok(sender) => sender,
            Err(err) => return self.report_without_trace(job, err),
        };
        let cancel = CoordinatorCancel(sender.cancel_watch());
        let spec = JobSpec {
            runner: &self.config,
            job,
            client: &self.kube,
            concurrent_id,
            sources: Sources::Git,
        };
        let outcome = run_job(
            &spec,
            &JobIo {
                trace: &trace,
                cancel: &cancel,
                shutdown,
            },
        );
        trace.flush_pending();
        log::info!("job {}: {}", job.id, describe(&outcome));
        // A runner shutting down still reports the job, but does not wait minutes for it.
        let deadline = shutdown
            .load(Ordering::SeqCst)
            .then_some(SHUTDOWN_REPORT_DEADLINE);
        if let Err(err) = sender.finish_within(result_of(&outcome), deadline) {
            log::error!(
                "job {}: the coordinator did not take the final state: {err}",
                job.id
            );
        }
        outcome
    }

    fn report_without_trace(&self, job: &Job, err: std::io::Error) -> JobOutcome {
        let message = format!("the runner cannot keep the job's log: {err}");
        log::error!("job {}: {message}", job.id);
        if let Err(err) = self
            .coordinator
            .fail_unparseable(job.id, &job.token, &message)
        {
            log::error!("job {}: reporting the failure failed: {err}", job.id);
        }
        JobOutcome::Failed {
            kind: FailureKind::System,
            exit_code: None,
            message,
        }
    }
}

/// The masks of a job: its masked variables, plus its own token, always.
fn job_masks(job: &Job) -> Vec<String> {
    let mut masks = masked_values(&job.variables);
    if !job.token.is_empty() {
        masks.push(job.token.expose().to_string());
    }
    masks
}

struct CoordinatorCancel(CancelWatch);

impl CancelSource for CoordinatorCancel {
    fn canceled(&self) -> Option<bool> {
        match self.0.get() {
            CancelState::None => None,
            CancelState::Graceful => Some(true),
            CancelState::Now => Some(false),
        }
    }
}

/// The coordinator's view of an outcome.
pub fn result_of(outcome: &JobOutcome) -> JobResult {
    match outcome {
        JobOutcome::Success => JobResult::success(),
        JobOutcome::Failed {
            kind, exit_code, ..
        } => {
            let reason = match kind {
                FailureKind::Script => FailureReason::ScriptFailure,
                FailureKind::System => FailureReason::RunnerSystemFailure,
                FailureKind::Timeout => FailureReason::JobExecutionTimeout,
                FailureKind::Canceled => FailureReason::UnknownFailure,
            };
            JobResult::failed(reason, *exit_code)
        }
    }
}

/// One line for the runner's own log.
pub fn describe(outcome: &JobOutcome) -> String {
    match outcome {
        JobOutcome::Success => "succeeded".to_string(),
        JobOutcome::Failed { message, .. } => format!("failed: {message}"),
    }
}

/// Slots for concurrent jobs over all runners (`concurrent`); each slot's index is the job's
/// `CI_CONCURRENT_ID`.
pub struct Slots {
    used: Mutex<Vec<bool>>,
    freed: Condvar,
}

impl Slots {
    /// `count` free slots.
    pub fn new(count: u32) -> Slots {
        Slots {
            used: Mutex::new(vec![false; count.max(1) as usize]),
            freed: Condvar::new(),
        }
    }

    /// Takes a free slot, if any.
    pub fn try_take(&self) -> Option<u32> {
        let mut used = self.lock();
        let index = used.iter().position(|u| !u)?;
        used[index] = true;
        u32::try_from(index).ok()
    }

    /// Gives a slot back.
    pub fn give_back(&self, index: u32) {
        if let Some(slot) = self.lock().get_mut(index as usize) {
            *slot = false;
        }
        self.freed.notify_all();
    }

    /// Waits until a slot is freed or `timeout` passes.
    pub fn wait_for_free(&self, timeout: Duration) {
        let used = self.lock();
        if used.iter().any(|u| !u) {
            return;
        }
        let _ = self.freed.wait_timeout(used, timeout);
    }

    /// Whether any slot is in use.
    pub fn busy(&self) -> bool {
        self.lock().iter().any(|u| *u)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<bool>> {
        // A bool per slot cannot be left half-written; keep using it after a panic elsewhere.
        self.used
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sleeps up to `duration`, waking early when `shutdown` is raised.
pub fn sleep_unless(shutdown: &AtomicBool, duration: Duration) {
    let until = Instant::now() + duration;
    while !shutdown.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_hand_out_each_index_once() {
        let slots = Slots::new(2);
        assert_eq!(slots.try_take(), Some(0));
        assert_eq!(slots.try_take(), Some(1));
        assert_eq!(slots.try_take(), None);
        slots.give_back(0);
        assert_eq!(slots.try_take(), Some(0));
    }

    #[test]
    fn outcomes_map_to_failure_reasons() {
        let failed = |kind| JobOutcome::Failed {
            kind,
            exit_code: Some(3),
            message: String::new(),
        };
        assert_eq!(result_of(&JobOutcome::Success), JobResult::success());
        assert_eq!(
            result_of(&failed(FailureKind::Script)),
            JobResult::failed(FailureReason::ScriptFailure, Some(3))
        );
        assert_eq!(
            result_of(&failed(FailureKind::Timeout)).failure_reason,
            Some(FailureReason::JobExecutionTimeout)
        );
    }
}
