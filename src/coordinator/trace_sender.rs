//! Sends a running job's log to the coordinator: incremental PATCHes on a thread of their own,
//! then, on [`TraceSender::finish`], the last bytes and the final `PUT` with the whole trace.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::backoff::{Backoff, BACKOFF_MIN};
use super::client::Client;
use super::error::CoordinatorError;
use super::messages::{
    CancelState, FailureReason, JobState, JobUpdate, PatchOutcome, TraceOutput, UpdateAnswer,
    UpdateOutcome,
};
use crate::checksum::Crc32;
use crate::secret::Secret;

/// Default wait between two patches while output grows.
pub const PATCH_INTERVAL: Duration = Duration::from_secs(3);
/// Longest silence towards the coordinator: past it a `running` update is sent.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Largest body of one trace patch (1 MiB).
pub const MAX_PATCH_BYTES: usize = 1024 * 1024;
/// How long [`TraceSender::finish`] keeps trying before it gives up on the final update.
pub const FINAL_UPDATE_DEADLINE: Duration = Duration::from_secs(600);

/// The job's log as the output pipeline fills it: append-only bytes readable at any offset.
pub trait TraceSource: Send + Sync {
    /// Bytes written so far.
    fn len(&self) -> u64;

    /// Reads bytes from `offset` into `buf`; 0 at the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Whether nothing was written yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TraceSource for Mutex<Vec<u8>> {
    fn len(&self) -> u64 {
        self.lock().map_or(0, |bytes| bytes.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let bytes = self
            .lock()
            .map_err(|_| io::Error::other("trace buffer lock poisoned"))?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let n = buf.len().min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        Ok(n)
    }
}

/// Timings of a [`TraceSender`]; the defaults are the protocol's, tests shorten them.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Wait between two patches while output grows (default 3 s); the coordinator may change
    /// it with `X-GitLab-Trace-Update-Interval`.
    pub patch_interval: Duration,
    /// Longest silence before a `running` update (default 30 s).
    pub keepalive_interval: Duration,
    /// Largest patch body in bytes (default 1 MiB).
    pub max_patch_bytes: usize,
    /// Total time `finish` may spend before giving up (default 10 min).
    pub final_update_deadline: Duration,
    /// Longest wait between two tries after a failure (default 60 s).
    pub max_retry_wait: Duration,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            patch_interval: PATCH_INTERVAL,
            keepalive_interval: KEEPALIVE_INTERVAL,
            max_patch_bytes: MAX_PATCH_BYTES,
            final_update_deadline: FINAL_UPDATE_DEADLINE,
            max_retry_wait: super::backoff::BACKOFF_MAX,
        }
    }
}

/// Whether the job succeeded or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultState {
    Success,
    Failed,
}

/// How a job ended, as reported in the final update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobResult {
    pub state: ResultState,
    /// Why it failed (sent only with `Failed`; `unknown_failure` when `None`).
    pub failure_reason: Option<FailureReason>,
    /// The script's exit code, sent only for a script failure with a non-zero code.
    pub exit_code: Option<i32>,
}

impl JobResult {
    /// A successful job.
    pub fn success() -> Self {
        JobResult {
            state: ResultState::Success,
            failure_reason: None,
            exit_code: None,
        }
    }

    /// A failed job.
    pub fn failed(reason: FailureReason, exit_code: Option<i32>) -> Self {
        JobResult {
            state: ResultState::Failed,
            failure_reason: Some(reason),
            exit_code,
        }
    }

    fn to_update(self) -> JobUpdate {
        let mut update = JobUpdate::running();
        if self.state == ResultState::Success {
            update.state = JobState::Success;
            return update;
        }
        let reason = self.failure_reason.unwrap_or(FailureReason::UnknownFailure);
        update.state = JobState::Failed;
        update.failure_reason = Some(reason);
        if reason == FailureReason::ScriptFailure {
            update.exit_code = self.exit_code.filter(|code| *code != 0);
        }
        update
    }
}

/// A cloneable view of the coordinator's wish to stop the job, for the threads running it.
#[derive(Clone)]
pub struct CancelWatch {
    shared: Arc<Shared>,
}

impl CancelWatch {
    /// The strongest cancel seen so far.
    pub fn get(&self) -> CancelState {
        self.shared.cancel()
    }
}

struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
    cancel: AtomicU8,
}

impl Shared {
    fn cancel(&self) -> CancelState {
        match self.cancel.load(Ordering::SeqCst) {
            0 => CancelState::None,
            1 => CancelState::Graceful,
            _ => CancelState::Now,
        }
    }

    /// Records a cancel; a stronger one is never weakened.
    fn raise_cancel(&self, state: CancelState) {
        let level = match state {
            CancelState::None => return,
            CancelState::Graceful => 1,
            CancelState::Now => 2,
        };
        self.cancel.fetch_max(level, Ordering::SeqCst);
    }

    /// Sleeps up to `wait`; true when asked to stop.
    fn wait_for_stop(&self, wait: Duration) -> bool {
        let Ok(stop) = self.stop.lock() else {
            return true;
        };
        match self.wake.wait_timeout_while(stop, wait, |stop| !*stop) {
            Ok((stop, _)) => *stop,
            Err(_) => true,
        }
    }

    fn request_stop(&self) {
        if let Ok(mut stop) = self.stop.lock() {
            *stop = true;
        }
        self.wake.notify_all();
    }
}

/// Sends one job's trace. Started with the job; [`TraceSender::finish`] ends it.
pub struct TraceSender {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Patcher>>,
    /// A patcher starting from nothing sent, used if the thread died.
    spare: Option<Patcher>,
}

impl TraceSender {
    /// Starts the patch thread for job `job_id`, reading the log from `source`.
    pub fn start(
        client: Client,
        job_id: u64,
        job_token: Secret,
        source: Arc<dyn TraceSource>,
        options: TraceOptions,
    ) -> io::Result<TraceSender> {
        let shared = Arc::new(Shared {
            stop: Mutex::new(false),
            wake: Condvar::new(),
            cancel: AtomicU8::new(0),
        });
        let patcher = Patcher::new(client, job_id, job_token, source, options, shared.clone());
        let spare = patcher.fresh();
        let thread = thread::Builder::new()
            .name(format!("trace-{job_id}"))
            .spawn(move || patcher.run())?;
        Ok(TraceSender {
            shared,
            thread: Some(thread),
            spare: Some(spare),
        })
    }

    /// The strongest cancel the coordinator has asked for so far.
    pub fn cancel_state(&self) -> CancelState {
        self.shared.cancel()
    }

    /// A handle other threads can poll for a cancel.
    pub fn cancel_watch(&self) -> CancelWatch {
        CancelWatch {
            shared: self.shared.clone(),
        }
    }

    /// Sends what is left of the log, then the final update carrying the whole trace; keeps
    /// trying until the coordinator acknowledges or the final-update deadline passes.
    pub fn finish(self, result: JobResult) -> Result<(), CoordinatorError> {
        self.finish_within(result, None)
    }

    /// [`TraceSender::finish`], giving up on the final update after `deadline` when it is
    /// shorter than the configured one (a runner shutting down does not wait minutes).
    pub fn finish_within(
        mut self,
        result: JobResult,
        deadline: Option<Duration>,
    ) -> Result<(), CoordinatorError> {
        self.shared.request_stop();
        let joined = self.thread.take().map(JoinHandle::join);
        let spare = self
            .spare
            .take()
            .expect("spare is set in start and only taken here");
        let mut patcher = match joined {
            Some(Ok(patcher)) => patcher,
            _ => {
                log::warn!(
                    "job {}: the trace thread died; resending the trace",
                    spare.job_id
                );
                spare
            }
        };
        if let Some(deadline) = deadline {
            let configured = &mut patcher.options.final_update_deadline;
            *configured = (*configured).min(deadline);
        }
        patcher.finish(result)
    }
}

impl Drop for TraceSender {
    fn drop(&mut self) {
        // A sender dropped without finish (the job thread unwound) still stops its thread.
        self.shared.request_stop();
    }
}

/// The state of the sending side, owned by the patch thread and then by `finish`.
struct Patcher {
    client: Client,
    job_id: u64,
    token: Secret,
    source: Arc<dyn TraceSource>,
    options: TraceOptions,
    shared: Arc<Shared>,
    /// Bytes the coordinator holds.
    sent: u64,
    interval: Duration,
    last_contact: Instant,
    backoff: Backoff,
    /// Set after a failure: wait this long before the next try.
    retry_wait: Option<Duration>,
    /// The coordinator said the job is gone (403/404): no more patches.
    gone: bool,
}

impl Patcher {
    fn new(
        client: Client,
        job_id: u64,
        token: Secret,
        source: Arc<dyn TraceSource>,
        options: TraceOptions,
        shared: Arc<Shared>,
    ) -> Patcher {
        Patcher {
            backoff: Backoff::new(
                BACKOFF_MIN.min(options.max_retry_wait),
                options.max_retry_wait,
            ),
            interval: options.patch_interval,
            client,
            job_id,
            token,
            source,
            options,
            shared,
            sent: 0,
            last_contact: Instant::now(),
            retry_wait: None,
            gone: false,
        }
    }

    /// A copy starting from nothing sent, kept in case the thread dies.
    fn fresh(&self) -> Patcher {
        let (client, token) = (self.client.clone(), self.token.clone());
        let (source, shared) = (self.source.clone(), self.shared.clone());
        Patcher::new(
            client,
            self.job_id,
            token,
            source,
            self.options.clone(),
            shared,
        )
    }

    /// The thread's loop: a tick every interval until asked to stop.
    fn run(mut self) -> Patcher {
        loop {
            let wait = self.retry_wait.take().unwrap_or(self.interval);
            if self.shared.wait_for_stop(wait) {
                return self;
            }
            self.tick();
        }
    }

    fn tick(&mut self) {
        if self.gone {
            return;
        }
        let result = if self.source.len() > self.sent {
            self.send_pending()
        } else if self.last_contact.elapsed() >= self.options.keepalive_interval {
            self.keepalive()
        } else {
            Ok(())
        };
        if let Err(e) = result {
            self.note_failure(&e);
        }
    }

    /// Patches what was written when called, chunk by chunk (output that keeps arriving waits
    /// for the next tick, so a stop request is never held up).
    fn send_pending(&mut self) -> Result<(), CoordinatorError> {
        let target = self.source.len();
        while !self.gone && target > self.sent {
            self.send_chunk()?;
        }
        Ok(())
    }

    fn send_chunk(&mut self) -> Result<(), CoordinatorError> {
        let chunk = self.read_chunk()?;
        let answer = self
            .client
            .patch_trace(self.job_id, &self.token, self.sent, &chunk)?;
        self.contact(answer.cancel, answer.update_interval);
        match answer.outcome {
            PatchOutcome::Accepted { next_offset } => self.sent = next_offset,
            PatchOutcome::RangeMismatch { server_size } => {
                let resync = server_size.min(self.source.len());
                log::debug!(
                    "job {}: trace resync from {} to {resync}",
                    self.job_id,
                    self.sent
                );
                self.sent = resync;
            }
            PatchOutcome::Stopped { status } => {
                log::info!(
                    "job {}: the coordinator answered {status} to a trace patch",
                    self.job_id
                );
                self.gone = true;
            }
        }
        Ok(())
    }

    fn read_chunk(&self) -> Result<Vec<u8>, CoordinatorError> {
        let available = self.source.len().saturating_sub(self.sent);
        let size = usize::try_from(available)
            .unwrap_or(usize::MAX)
            .min(self.options.max_patch_bytes);
        let mut chunk = vec![0; size];
        let mut filled = 0;
        while filled < size {
            let n = self
                .source
                .read_at(self.sent + filled as u64, &mut chunk[filled..])
                .map_err(|source| self.source_error(source))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        chunk.truncate(filled);
        Ok(chunk)
    }

    fn source_error(&self, source: io::Error) -> CoordinatorError {
        let path = format!("trace of job {}", self.job_id).into();
        CoordinatorError::File { path, source }
    }

    /// A `running` update so the coordinator knows the job is alive.
    fn keepalive(&mut self) -> Result<(), CoordinatorError> {
        let answer = self
            .client
            .update_job(self.job_id, &self.token, &JobUpdate::running())?;
        self.contact(answer.cancel, answer.update_interval);
        if let UpdateOutcome::Stopped { .. } = answer.outcome {
            self.gone = true;
        }
        Ok(())
    }

    /// Bookkeeping after any answer.
    fn contact(&mut self, cancel: CancelState, interval: Option<Duration>) {
        self.last_contact = Instant::now();
        self.backoff.reset();
        self.shared.raise_cancel(cancel);
        if let Some(interval) = interval {
            self.interval = interval;
        }
    }

    fn note_failure(&mut self, error: &CoordinatorError) {
        let wait = self.backoff.next_delay(error.retry_after());
        log::warn!(
            "job {}: trace update failed, retrying in {wait:?}: {error}",
            self.job_id
        );
        self.retry_wait = Some(wait);
    }

    /// Flushes the rest of the log and sends the final update until acknowledged.
    fn finish(mut self, result: JobResult) -> Result<(), CoordinatorError> {
        let started = Instant::now();
        let deadline = started + self.options.final_update_deadline;
        self.flush(deadline);
        let mut update = result.to_update();
        let (trace, output) = self.whole_trace()?;
        update.trace = Some(trace);
        update.output = Some(output);
        self.send_final(&update, deadline)
            .map_err(|last| self.gave_up(last, started.elapsed()))
    }

    /// Logs why the final update did not go through, naming the job.
    fn gave_up(&self, last: CoordinatorError, elapsed: Duration) -> CoordinatorError {
        let job = self.job_id;
        if let CoordinatorError::JobGone { status, .. } = &last {
            log::warn!("job {job}: the coordinator refused the final update (status {status})");
            return last;
        }
        log::error!("job {job}: giving up on the final update after {elapsed:?}: {last}");
        CoordinatorError::GaveUp {
            job,
            elapsed,
            last: Box::new(last),
        }
    }

    /// Patches the rest of the log, retrying failures until `deadline`.
    fn flush(&mut self, deadline: Instant) {
        while !self.gone && self.source.len() > self.sent && Instant::now() < deadline {
            if let Err(e) = self.send_pending() {
                self.note_failure(&e);
                sleep_until_at_most(self.retry_wait.take().unwrap_or_default(), deadline);
            }
        }
    }

    /// The final `PUT` until the coordinator says 200; 202 waits, 412 resends the trace.
    fn send_final(
        &mut self,
        update: &JobUpdate,
        deadline: Instant,
    ) -> Result<(), CoordinatorError> {
        loop {
            let not_yet = match self.client.update_job(self.job_id, &self.token, update) {
                Ok(answer) => self.final_answer(answer, deadline)?,
                Err(e) if e.is_transient() => {
                    self.note_failure(&e);
                    sleep_until_at_most(self.retry_wait.take().unwrap_or_default(), deadline);
                    Some(e)
                }
                Err(e) => return Err(e),
            };
            let Some(last) = not_yet else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(last);
            }
        }
    }

    /// What an answer to the final update means: done (`None`), stop (an error), or try again
    /// (`Some` reason), after waiting or resending as the answer asks.
    fn final_answer(
        &mut self,
        answer: UpdateAnswer,
        deadline: Instant,
    ) -> Result<Option<CoordinatorError>, CoordinatorError> {
        self.contact(answer.cancel, answer.update_interval);
        let url = self.client.endpoint(&format!("jobs/{}", self.job_id));
        let status = match answer.outcome {
            UpdateOutcome::Accepted => return Ok(None),
            UpdateOutcome::Stopped { status } => {
                return Err(CoordinatorError::JobGone { url, status })
            }
            UpdateOutcome::NotFinished => {
                sleep_until_at_most(self.interval, deadline);
                202
            }
            UpdateOutcome::ChecksumMismatch => {
                self.resend_all(deadline);
                412
            }
        };
        Ok(Some(CoordinatorError::Status {
            url,
            status,
            retry_after: None,
        }))
    }

    /// After a 412: the whole trace again, from offset 0.
    fn resend_all(&mut self, deadline: Instant) {
        log::warn!(
            "job {}: trace checksum mismatch, resending the whole trace",
            self.job_id
        );
        self.sent = 0;
        self.flush(deadline);
    }

    /// The whole log as text for the final update, with its checksum over the raw bytes.
    // TODO: the final update holds the whole trace in memory (bounded by the runner's
    // output_limit, 4 MiB by default) because the JSON body is built before it is sent;
    // streaming the JSON would lift that bound for runners with a very large output_limit.
    fn whole_trace(&self) -> Result<(String, TraceOutput), CoordinatorError> {
        let size = self.source.len();
        let mut bytes = vec![0; usize::try_from(size).unwrap_or(usize::MAX)];
        let mut filled = 0;
        while filled < bytes.len() {
            let n = self
                .source
                .read_at(filled as u64, &mut bytes[filled..])
                .map_err(|source| self.source_error(source))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        bytes.truncate(filled);
        let mut crc = Crc32::new();
        crc.update(&bytes);
        let output = TraceOutput {
            checksum: format!("crc32:{:08x}", crc.value()),
            bytesize: filled as u64,
        };
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok((text, output))
    }
}

fn sleep_until_at_most(wait: Duration, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    thread::sleep(wait.min(left));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vec_source_reads_at_any_offset() {
        let source = Mutex::new(b"hello world".to_vec());
        let mut buf = [0u8; 5];
        assert_eq!(source.read_at(6, &mut buf).unwrap(), 5);
        assert_eq!(&buf, b"world");
        assert_eq!(source.read_at(11, &mut buf).unwrap(), 0);
        assert_eq!(source.read_at(99, &mut buf).unwrap(), 0);
        assert_eq!(TraceSource::len(&source), 11);
    }

    #[test]
    fn exit_code_goes_only_with_a_script_failure() {
        let update = JobResult::failed(FailureReason::ScriptFailure, Some(3)).to_update();
        assert_eq!(
            (update.state, update.exit_code),
            (JobState::Failed, Some(3))
        );
        let update = JobResult::failed(FailureReason::JobExecutionTimeout, Some(3)).to_update();
        assert_eq!(update.exit_code, None);
        assert_eq!(
            update.failure_reason,
            Some(FailureReason::JobExecutionTimeout)
        );
        let update = JobResult::success().to_update();
        assert_eq!(
            (update.state, update.failure_reason),
            (JobState::Success, None)
        );
    }

    #[test]
    fn a_failure_without_reason_is_reported_as_unknown() {
        let result = JobResult {
            state: ResultState::Failed,
            failure_reason: None,
            exit_code: None,
        };
        assert_eq!(
            result.to_update().failure_reason,
            Some(FailureReason::UnknownFailure)
        );
    }
}
