//! Shared pieces of the tests against the coordinator simulator: a simulator with one runner,
//! the runner's client pointed at it, a temporary folder, and job helpers.

#![allow(dead_code)] // each test file uses a different part

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_runner::coordinator::job::Job;
use alloy_runner::coordinator::trace_sender::TraceOptions;
use alloy_runner::coordinator::{
    Client, ClientOptions, FailureReason, JobRequest, JobResult, Poller, RunnerInfo, TraceSender,
};
use alloy_runner::secret::Secret;
use coordinator_sim::{Dialect, Options, SimHandle};
use serde_json::Value;

/// The runner token the simulator knows.
pub const RUNNER_TOKEN: &str = "sim-runner-token-0001";
/// Bound on every wait for the simulator to see something.
pub const WAIT: Duration = Duration::from_secs(30);
/// The poll period of test pollers.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// A simulator, a client of it and a temporary folder, removed when dropped.
pub struct World {
    pub sim: SimHandle,
    pub client: Client,
    pub dialect: Dialect,
    pub dir: TempDir,
}

impl World {
    /// A simulator in `dialect` with [`RUNNER_TOKEN`] registered.
    pub fn start(dialect: Dialect) -> World {
        World::start_with(Options {
            dialect,
            ..Options::default()
        })
    }

    /// A simulator with chosen options and [`RUNNER_TOKEN`] registered.
    pub fn start_with(options: Options) -> World {
        let dialect = options.dialect;
        let sim = coordinator_sim::Sim::start(options).expect("the coordinator simulator starts");
        sim.add_runner(RUNNER_TOKEN);
        let client_options = ClientOptions {
            artifacts_retry_wait: Duration::from_millis(20),
            ..ClientOptions::default()
        };
        let client = Client::with_options(sim.url(), client_options).expect("a loopback url");
        World {
            sim,
            client,
            dialect,
            dir: TempDir::new("coordinator-sim"),
        }
    }

    /// The dialect's fixture payload (`fixtures/jobs/sim-<dialect>-basic.json`).
    pub fn fixture_payload(&self) -> Value {
        let text = match self.dialect {
            Dialect::AlloyCi => include_str!("../../fixtures/jobs/sim-alloyci-basic.json"),
            Dialect::GitLab => include_str!("../../fixtures/jobs/sim-gitlab-basic.json"),
        };
        serde_json::from_str(text).expect("the fixture payload is JSON")
    }

    /// The job token of the fixture payload.
    pub fn fixture_token(&self) -> String {
        let payload = self.fixture_payload();
        payload["token"]
            .as_str()
            .expect("the fixture has a token")
            .into()
    }

    /// Queues the fixture payload, declaring artifacts (AlloyCI refuses uploads otherwise);
    /// returns the job id.
    pub fn enqueue_fixture(&self) -> u64 {
        let mut payload = self.fixture_payload();
        payload["artifacts"] = serde_json::json!([{
            "name": "rel", "untracked": false, "paths": ["out/"], "when": "on_success",
            "expire_in": "7d"
        }]);
        self.sim
            .enqueue_payload(payload)
            .expect("the fixture is queued")
    }

    /// Queues the fixture and takes it, as the runner does: the job is running.
    pub fn running_job(&self) -> Box<Job> {
        let id = self.enqueue_fixture();
        let answer = self
            .client
            .request_job(&Secret::new(RUNNER_TOKEN), &RunnerInfo::default());
        match answer {
            Ok(JobRequest::Job(job)) if job.id == id => job,
            other => panic!("expected job {id}, got {other:?}"),
        }
    }

    /// A poller for [`RUNNER_TOKEN`] polling every [`CHECK_INTERVAL`].
    pub fn poller(&self) -> Poller {
        let token = Secret::new(RUNNER_TOKEN);
        Poller::new(self.client.clone(), "sim", token, CHECK_INTERVAL)
    }

    /// Starts a trace sender for `job` reading `source`, with short intervals.
    pub fn trace_sender(&self, job: &Job, source: Arc<Mutex<Vec<u8>>>) -> TraceSender {
        let client = self.client.clone();
        TraceSender::start(client, job.id, job.token.clone(), source, fast_trace())
            .expect("the trace thread starts")
    }

    /// Sends `log` as the job's whole trace and reports `result`.
    pub fn finish(&self, job: &Job, log: &[u8], result: JobResult) {
        let source = Arc::new(Mutex::new(log.to_vec()));
        let sender = self.trace_sender(job, source);
        sender
            .finish(result)
            .expect("the final update is acknowledged");
    }

    /// Writes `bytes` to `name` in the temporary folder.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.0.join(name);
        std::fs::write(&path, bytes).expect("a temp file");
        path
    }

    /// Fails the test with the simulator's findings, if any.
    pub fn assert_no_violations(&self) {
        let violations = self.sim.violations();
        assert!(
            violations.is_empty(),
            "the runner broke the API: {violations:#?}"
        );
    }
}

/// Trace timings for tests: patches every 20 ms, retries within 200 ms.
pub fn fast_trace() -> TraceOptions {
    TraceOptions {
        patch_interval: Duration::from_millis(20),
        final_update_deadline: WAIT,
        max_retry_wait: Duration::from_millis(200),
        ..TraceOptions::default()
    }
}

pub fn success() -> JobResult {
    JobResult::success()
}

pub fn failed_script(code: i32) -> JobResult {
    JobResult::failed(FailureReason::ScriptFailure, Some(code))
}

/// Numbered lines of ASCII text with ANSI colours and CRLF, `size` bytes in all.
pub fn log_text(size: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(size + 64);
    let mut n = 0u64;
    while text.len() < size {
        text.extend_from_slice(format!("line {n:08} \x1b[32mok\x1b[0m\r\n").as_bytes());
        n += 1;
    }
    text.truncate(size);
    text
}

/// `size` bytes that are not text (every byte value), standing in for a zip archive.
pub fn zip_like(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 % 256) as u8).collect()
}

/// A fresh folder under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("alloy-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp folder");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
