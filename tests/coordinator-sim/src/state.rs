//! The simulator's state: runners, jobs and their records, the queue, faults, violations.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{mpsc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::pipeline_run::RunState;
use crate::record::{JobRecord, JobState, RegisteredRunner};
use crate::{CancelMode, Dialect, Endpoint, Options, SimError};

/// State shared by the server threads and the handle.
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    pub options: Options,
    pub data_dir: PathBuf,
}

impl Shared {
    pub fn new(options: Options, url: String, data_dir: PathBuf) -> Shared {
        let seed = seed();
        Shared {
            state: Mutex::new(State::new(&options, &url, seed)),
            changed: Condvar::new(),
            options,
            data_dir,
        }
    }

    /// Locks the state; a panic in another holder does not make the state unusable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes the waiters after a change.
    pub fn notify(&self) {
        self.changed.notify_all();
    }

    pub fn wait_for(
        &self,
        id: u64,
        timeout: Duration,
        done: impl Fn(&JobRecord) -> bool,
    ) -> Option<JobRecord> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            let record = state.record(id)?;
            if done(&record) {
                return Some(record);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = match self.changed.wait_timeout(state, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32) | 1
}

pub(crate) struct Runner {
    pub token: String,
    pub public: RegisteredRunner,
}

pub(crate) struct JobEntry {
    pub token: String,
    /// `None` until a pipeline stage opens and the payload is built.
    pub payload: Option<Value>,
    /// A body sent as is instead of `payload` (a job the runner cannot parse).
    pub raw_body: Option<String>,
    pub record: JobRecord,
    pub tags: Vec<String>,
    pub artifacts_declared: bool,
    pub cancel: Option<CancelMode>,
    pub accept_next_put: bool,
    pub reject_next_range: bool,
    /// Index into `State::runs` for pipeline jobs.
    pub run: Option<usize>,
}

struct Fault {
    endpoint: Endpoint,
    remaining: u32,
    status: u16,
    retry: Option<Retry>,
}

/// When a throttled runner may come back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Retry {
    /// `Retry-After: <seconds>`.
    After(u64),
    /// `RateLimit-ResetTime: <HTTP date that many seconds from now>`.
    ResetIn(u64),
}

/// An injected answer: status and an optional retry hint.
pub(crate) struct FaultAnswer {
    pub status: u16,
    pub retry: Option<Retry>,
}

pub(crate) struct State {
    pub dialect: Dialect,
    pub server_url: String,
    pub job_timeout_secs: u64,
    pub runners: Vec<Runner>,
    pub jobs: BTreeMap<u64, JobEntry>,
    pub queue: VecDeque<u64>,
    pub runs: Vec<RunState>,
    /// Repositories served over git's dumb HTTP protocol, by index.
    pub repos: Vec<PathBuf>,
    pub violations: Vec<String>,
    pub subscribers: Vec<mpsc::Sender<JobRecord>>,
    /// Bumped whenever the queue changes; sent as `X-GitLab-Last-Update`.
    pub last_update: u64,
    /// Requests received per endpoint, faulted ones included.
    pub requests: HashMap<Endpoint, usize>,
    faults: Vec<Fault>,
    next_job_id: u64,
    next_runner_id: u64,
    rng: u64,
}

impl State {
    fn new(options: &Options, url: &str, seed: u64) -> State {
        State {
            dialect: options.dialect,
            server_url: url.to_string(),
            repos: Vec::new(),
            job_timeout_secs: options.job_timeout_secs,
            runners: Vec::new(),
            jobs: BTreeMap::new(),
            queue: VecDeque::new(),
            runs: Vec::new(),
            violations: Vec::new(),
            subscribers: Vec::new(),
            last_update: 1,
            requests: HashMap::new(),
            faults: Vec::new(),
            next_job_id: 1,
            next_runner_id: 1,
            rng: seed,
        }
    }

    /// A random token of `len` letters and digits (xorshift: good enough for a test double).
    pub fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                ALPHABET[(self.rng % ALPHABET.len() as u64) as usize] as char
            })
            .collect()
    }

    pub fn violation(&mut self, text: String) {
        log::warn!("violation: {text}");
        self.violations.push(text);
    }

    /// Adds a runner; its `id` is assigned here. Returns the id.
    pub fn add_runner(&mut self, token: &str, mut runner: RegisteredRunner) -> u64 {
        runner.id = self.next_runner_id;
        self.next_runner_id += 1;
        let id = runner.id;
        self.runners.push(Runner {
            token: token.to_string(),
            public: runner,
        });
        id
    }

    /// Counts a request to the endpoint.
    pub fn count(&mut self, endpoint: Endpoint) {
        *self.requests.entry(endpoint).or_insert(0) += 1;
    }

    pub fn runner(&self, token: &str) -> Option<&Runner> {
        self.runners.iter().find(|r| r.token == token)
    }

    pub fn new_job_id(&mut self) -> u64 {
        while self.jobs.contains_key(&self.next_job_id) {
            self.next_job_id += 1;
        }
        let id = self.next_job_id;
        self.next_job_id += 1;
        id
    }

    pub fn enqueue_payload(&mut self, mut payload: Value) -> Result<u64, SimError> {
        if !payload.is_object() {
            return Err(SimError::Payload("not a JSON object".into()));
        }
        let id = match payload["id"].as_u64() {
            Some(id) if !self.jobs.contains_key(&id) => id,
            _ => self.new_job_id(),
        };
        let token = match payload["token"].as_str() {
            Some(token) if !token.is_empty() => token.to_string(),
            _ => self.token(20),
        };
        payload["id"] = Value::from(id);
        payload["token"] = Value::from(token.clone());

        let name = payload["job_info"]["name"]
            .as_str()
            .unwrap_or("job")
            .to_string();
        let entry = JobEntry {
            token,
            tags: Vec::new(),
            artifacts_declared: declares_artifacts(&payload),
            payload: Some(payload),
            raw_body: None,
            record: JobRecord::new(id, name),
            cancel: None,
            accept_next_put: false,
            reject_next_range: false,
            run: None,
        };
        self.jobs.insert(id, entry);
        self.push_queue(id);
        Ok(id)
    }

    pub fn push_queue(&mut self, id: u64) {
        self.queue.push_back(id);
        self.last_update += 1;
    }

    /// Takes the first queued job this runner may run, marks it running and returns the body
    /// to send.
    pub fn take_job(&mut self, runner_tags: &[String], run_untagged: bool) -> Option<String> {
        let position = self.queue.iter().position(|id| {
            self.jobs.get(id).is_some_and(|job| {
                let tagged_ok = job.tags.iter().all(|t| runner_tags.contains(t));
                tagged_ok && (run_untagged || !job.tags.is_empty())
            })
        })?;
        let id = self.queue.remove(position)?;
        self.last_update += 1;
        let job = self.jobs.get_mut(&id)?;
        job.record.state = JobState::Running;
        match &job.raw_body {
            Some(raw) => Some(raw.clone()),
            None => job.payload.as_ref().map(Value::to_string),
        }
    }

    /// Queues a body that is sent as is, for a job payload the runner cannot parse. A body
    /// that still carries an unused `id` and a `token` (as a coordinator's would) keeps them,
    /// so the runner can report the job failed.
    pub fn enqueue_raw(&mut self, body: &str) -> u64 {
        let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let id = match value["id"].as_u64() {
            Some(id) if !self.jobs.contains_key(&id) => id,
            _ => self.new_job_id(),
        };
        let token = value["token"].as_str().unwrap_or_default().to_string();
        let entry = JobEntry {
            token,
            payload: None,
            raw_body: Some(body.to_string()),
            record: JobRecord::new(id, "unparsable".into()),
            tags: Vec::new(),
            artifacts_declared: false,
            cancel: None,
            accept_next_put: false,
            reject_next_range: false,
            run: None,
        };
        self.jobs.insert(id, entry);
        self.push_queue(id);
        id
    }

    pub fn record(&self, id: u64) -> Option<JobRecord> {
        self.jobs.get(&id).map(|job| job.record.clone())
    }

    pub fn records(&self) -> Vec<JobRecord> {
        self.jobs.values().map(|job| job.record.clone()).collect()
    }

    pub fn with_job(&mut self, id: u64, change: impl FnOnce(&mut JobEntry)) {
        if let Some(job) = self.jobs.get_mut(&id) {
            change(job);
        }
    }

    pub fn cancel(&mut self, id: u64, mode: CancelMode) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.cancel = Some(mode);
        if mode != CancelMode::Canceling {
            job.record.state = JobState::Canceled;
        }
        self.queue.retain(|queued| *queued != id);
        self.job_changed(id);
    }

    /// Publishes a finished job and lets its pipeline go on.
    pub fn job_changed(&mut self, id: u64) {
        self.publish(id);
        if let Some(run) = self.jobs.get(&id).and_then(|job| job.run) {
            crate::pipeline_run::advance(self, run);
        }
    }

    /// Sends the job's record to the subscribers once it is done.
    pub fn publish(&mut self, id: u64) {
        let Some(record) = self.jobs.get(&id).map(|job| job.record.clone()) else {
            return;
        };
        if record.is_done() {
            self.subscribers.retain(|s| s.send(record.clone()).is_ok());
        }
    }

    pub fn add_fault(&mut self, endpoint: Endpoint, count: u32, status: u16, retry: Option<Retry>) {
        let fault = Fault {
            endpoint,
            remaining: count,
            status,
            retry,
        };
        self.faults.push(fault);
    }

    /// Uses up one injected answer for the endpoint, if any is pending.
    pub fn take_fault(&mut self, endpoint: Endpoint) -> Option<FaultAnswer> {
        let fault = self
            .faults
            .iter_mut()
            .find(|f| f.endpoint == endpoint && f.remaining > 0)?;
        fault.remaining -= 1;
        let answer = FaultAnswer {
            status: fault.status,
            retry: fault.retry,
        };
        self.faults.retain(|f| f.remaining > 0);
        Some(answer)
    }
}

/// Whether a payload's `artifacts` list has a real entry (AlloyCI sends `[null]` for none).
pub(crate) fn declares_artifacts(payload: &Value) -> bool {
    payload["artifacts"]
        .as_array()
        .is_some_and(|list| list.iter().any(Value::is_object))
}
