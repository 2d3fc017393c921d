//! Asking the coordinator for jobs on behalf of one runner entry: the poll period, backoff on
//! failures, the pause after repeated unhealthy answers, and failing jobs that cannot be run.

use std::thread;
use std::time::Duration;

use super::backoff::{Backoff, BACKOFF_MAX, BACKOFF_MIN};
use super::client::Client;
use super::job::Job;
use super::messages::{JobRequest, RunnerInfo};
use crate::secret::Secret;

/// Default poll period (`check_interval`).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(3);
/// Unhealthy answers in a row after which the runner entry pauses.
pub const UNHEALTHY_LIMIT: u32 = 3;
/// How long a runner entry pauses after [`UNHEALTHY_LIMIT`] unhealthy answers (1 h).
pub const UNHEALTHY_PAUSE: Duration = Duration::from_secs(3600);
/// Tries to report a job whose payload could not be used.
const FAIL_UNPARSEABLE_ATTEMPTS: u32 = 3;

/// What one poll gave, and how long to wait before the next one.
#[derive(Debug)]
pub struct Poll {
    /// A job to run, if any.
    pub job: Option<Box<Job>>,
    /// Wait this long before polling again.
    pub next_poll_in: Duration,
}

/// Polls `POST /jobs/request` for one runner entry.
pub struct Poller {
    client: Client,
    name: String,
    token: Secret,
    info: RunnerInfo,
    check_interval: Duration,
    backoff: Backoff,
    unhealthy: u32,
}

impl Poller {
    /// A poller for the runner `name` (for logs) with its token; polls every `check_interval`.
    pub fn new(client: Client, name: &str, token: Secret, check_interval: Duration) -> Poller {
        Poller {
            client,
            name: name.to_string(),
            token,
            info: RunnerInfo::default(),
            check_interval,
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            unhealthy: 0,
        }
    }

    /// Asks once. A job that came back unusable is failed on the coordinator here
    /// (`runner_system_failure`), so it is never lost silently.
    pub fn poll(&mut self) -> Poll {
        let answer = self.client.request_job(&self.token, &self.info);
        if !matches!(answer, Ok(JobRequest::Unhealthy { .. })) {
            self.unhealthy = 0;
        }
        match answer {
            Ok(JobRequest::Job(job)) => self.healthy(Some(job), Duration::ZERO),
            Ok(JobRequest::NoJob) => self.healthy(None, self.check_interval),
            Ok(JobRequest::Unparseable { id, token, message }) => {
                self.fail_unparseable(id, token, &message);
                self.healthy(None, Duration::ZERO)
            }
            Ok(JobRequest::Unhealthy { status }) => self.unhealthy(status),
            Err(error) => {
                let wait = self
                    .backoff
                    .next_delay(error.retry_after())
                    .max(self.check_interval);
                log::warn!(
                    "runner {:?}: job request failed, next in {wait:?}: {error}",
                    self.name
                );
                Poll {
                    job: None,
                    next_poll_in: wait,
                }
            }
        }
    }

    fn healthy(&mut self, job: Option<Box<Job>>, next_poll_in: Duration) -> Poll {
        self.backoff.reset();
        Poll { job, next_poll_in }
    }

    fn unhealthy(&mut self, status: u16) -> Poll {
        self.unhealthy += 1;
        log::error!(
            "runner {:?}: the coordinator refused the runner token (status {status}, {} in a row)",
            self.name,
            self.unhealthy
        );
        if self.unhealthy < UNHEALTHY_LIMIT {
            let wait = self.backoff.next_delay(None).max(self.check_interval);
            return Poll {
                job: None,
                next_poll_in: wait,
            };
        }
        self.unhealthy = 0;
        log::error!("runner {:?}: pausing for {UNHEALTHY_PAUSE:?}", self.name);
        Poll {
            job: None,
            next_poll_in: UNHEALTHY_PAUSE,
        }
    }

    fn fail_unparseable(&self, id: Option<u64>, token: Option<Secret>, message: &str) {
        let (Some(id), Some(token)) = (id, token) else {
            log::error!(
                "runner {:?}: got a job it cannot use or report: {message}",
                self.name
            );
            return;
        };
        log::error!("runner {:?}: job {id} cannot be run: {message}", self.name);
        for attempt in 1..=FAIL_UNPARSEABLE_ATTEMPTS {
            match self.client.fail_unparseable(id, &token, message) {
                Ok(_) => return,
                Err(e) if e.is_transient() && attempt < FAIL_UNPARSEABLE_ATTEMPTS => {
                    log::warn!("job {id}: cannot report the failure yet: {e}");
                    thread::sleep(Duration::from_secs(1));
                }
                Err(e) => {
                    log::error!("job {id}: cannot report the failure: {e}");
                    return;
                }
            }
        }
    }
}
