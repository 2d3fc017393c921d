//! coordinator-sim: a loopback double of an AlloyCI or GitLab coordinator (runner API v4) for
//! alloy-runner's tests and demo. Never shipped.
//!
//! It hands out jobs from fixture payloads or from an `.alloy-ci.json` pipeline over a local
//! git repository, checks strictly what the runner sends (recording violations), records
//! traces, states and artifacts, and injects faults on demand.

mod git_http;
mod http;
mod multipart;
mod pipeline_run;
mod record;
mod server;
mod state;

use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

pub use alloy_runner::pipeline::Dialect;
pub use pipeline_run::{PipelineRun, PipelineSource};
pub use record::{crc32, JobRecord, JobState, RegisteredRunner, Update};

use state::{Retry, Shared};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct Options {
    pub dialect: Dialect,
    /// The token `POST /runners` must carry.
    pub registration_token: String,
    /// Where to listen; default `127.0.0.1:0` (any free port).
    pub addr: SocketAddr,
    /// Where uploaded artifacts go; default a fresh folder under the system temp folder,
    /// removed when the handle is dropped.
    pub data_dir: Option<PathBuf>,
    /// Largest artifacts upload accepted (request body and file part), in bytes (default
    /// 100 MiB); more answers 413.
    pub max_artifact_bytes: u64,
    /// `X-GitLab-Trace-Update-Interval` sent on trace PATCHes (GitLab dialect), in seconds.
    pub trace_update_interval: Option<u64>,
    /// `runner_info.timeout` of pipeline jobs, in seconds (default 3600).
    pub job_timeout_secs: u64,
    /// Answer artifact downloads with 302 to a simulated object storage, as GitLab may.
    pub artifacts_redirect: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dialect: Dialect::GitLab,
            registration_token: "sim-registration-token".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            max_artifact_bytes: 100 * 1024 * 1024,
            trace_update_interval: None,
            job_timeout_secs: 3600,
            artifacts_redirect: false,
        }
    }
}

/// A runner API endpoint, for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Register,
    Verify,
    Unregister,
    RequestJob,
    UpdateJob,
    PatchTrace,
    UploadArtifacts,
    DownloadArtifacts,
}

/// How a cancelled job tells the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelMode {
    /// The next PATCH/PUT answers as usual plus `Job-Status: canceled` (AlloyCI: `cancelled`).
    JobStatusHeader,
    /// `Job-Status: canceling` (GitLab's graceful cancel: after_script still runs).
    Canceling,
    /// The next PATCH/PUT answers 403.
    Forbidden,
}

/// Why the simulator could not start or take a job.
#[derive(Debug)]
pub enum SimError {
    /// Binding, the data folder, or a fixture file.
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A git command on the pipeline's repository failed.
    Git { repo: PathBuf, detail: String },
    /// The pipeline file was rejected.
    Pipeline(alloy_runner::pipeline::PipelineError),
    /// A fixture payload is not a JSON object.
    Payload(String),
    /// `Options::addr` is not a loopback address: the simulator serves this machine only.
    NotLoopback(SocketAddr),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Io { what, source } => write!(f, "{what}: {source}"),
            SimError::Git { repo, detail } => {
                write!(f, "git repository {}: {detail}", repo.display())
            }
            SimError::Pipeline(err) => write!(f, "pipeline: {err}"),
            SimError::Payload(detail) => write!(f, "job payload: {detail}"),
            SimError::NotLoopback(addr) => {
                write!(
                    f,
                    "listen address {addr}: only loopback addresses are served"
                )
            }
        }
    }
}

impl std::error::Error for SimError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SimError::Io { source, .. } => Some(source),
            SimError::Pipeline(err) => Some(err),
            _ => None,
        }
    }
}

/// The simulator's entry point.
pub struct Sim;

impl Sim {
    /// Binds, starts serving on a background thread, and returns the handle that controls it.
    pub fn start(options: Options) -> Result<SimHandle, SimError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| SimError::Io { what, source }
        };
        if !options.addr.ip().is_loopback() {
            return Err(SimError::NotLoopback(options.addr));
        }
        let listener = TcpListener::bind(options.addr).map_err(io("bind"))?;
        let addr = listener.local_addr().map_err(io("bind"))?;
        let (data_dir, owns_data_dir) = match &options.data_dir {
            Some(dir) => (dir.clone(), false),
            None => (unique_temp_dir(), true),
        };
        std::fs::create_dir_all(&data_dir).map_err(io(&data_dir.display().to_string()))?;

        let url = format!("http://{addr}");
        let shared = Arc::new(Shared::new(options, url.clone(), data_dir.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler_shared = Arc::clone(&shared);
        let handler: Arc<http::Handler> = Arc::new(move |req| server::handle(&handler_shared, req));
        let thread_stop = Arc::clone(&stop);
        thread::spawn(move || http::serve(listener, handler, thread_stop));
        Ok(SimHandle {
            shared,
            url,
            addr,
            stop,
            data_dir,
            owns_data_dir,
        })
    }
}

fn unique_temp_dir() -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!("coordinator-sim-{}-{n}", std::process::id()))
}

/// A running simulator; dropping it stops the server and removes its own data folder.
pub struct SimHandle {
    shared: Arc<Shared>,
    url: String,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    data_dir: PathBuf,
    owns_data_dir: bool,
}

impl SimHandle {
    /// The base URL the runner's config names, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The folder uploaded artifacts are stored in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Queues a job payload (a fixture); keeps its `id` and `token` when present and unused,
    /// else assigns them. Returns the job id.
    pub fn enqueue_payload(&self, payload: serde_json::Value) -> Result<u64, SimError> {
        self.shared.lock().enqueue_payload(payload)
    }

    /// Queues a job payload read from a JSON file.
    pub fn enqueue_payload_file(&self, path: &Path) -> Result<u64, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            what: path.display().to_string(),
            source,
        })?;
        let payload = serde_json::from_str(&text)
            .map_err(|err| SimError::Payload(format!("{}: {err}", path.display())))?;
        self.enqueue_payload(payload)
    }

    /// Builds one pipeline from `.alloy-ci.json` text over the repository's HEAD and hands
    /// its jobs out stage by stage.
    pub fn enqueue_pipeline(
        &self,
        pipeline_json: &str,
        repo: &Path,
    ) -> Result<PipelineRun, SimError> {
        self.enqueue_pipeline_from(pipeline_json, PipelineSource::new(repo))
    }

    /// [`SimHandle::enqueue_pipeline`] with a chosen ref, tag flag or repository URL.
    pub fn enqueue_pipeline_from(
        &self,
        pipeline_json: &str,
        source: PipelineSource,
    ) -> Result<PipelineRun, SimError> {
        let parsed = alloy_runner::pipeline::parse(pipeline_json).map_err(SimError::Pipeline)?;
        let commit = source.read_commit()?;
        Ok(self.shared.lock().enqueue_pipeline(parsed, &source, commit))
    }

    /// Registers a runner token directly, as if `POST /runners` had returned it.
    pub fn add_runner(&self, token: &str) -> u64 {
        let runner = RegisteredRunner {
            id: 0,
            description: String::new(),
            tags: Vec::new(),
            run_untagged: true,
            locked: false,
            info: serde_json::Value::Null,
        };
        self.shared.lock().add_runner(token, runner)
    }

    /// Deletes a runner, as an administrator would on the coordinator; its token is refused
    /// from then on. False when no runner has that id.
    pub fn remove_runner(&self, id: u64) -> bool {
        let mut state = self.shared.lock();
        let before = state.runners.len();
        state.runners.retain(|r| r.public.id != id);
        state.runners.len() < before
    }

    /// The runners that are registered now (unregistered ones are gone), without tokens.
    pub fn runners(&self) -> Vec<RegisteredRunner> {
        self.shared
            .lock()
            .runners
            .iter()
            .map(|r| r.public.clone())
            .collect()
    }

    /// How many requests reached the endpoint so far, faulted ones included.
    pub fn requests(&self, endpoint: Endpoint) -> usize {
        self.shared
            .lock()
            .requests
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// A copy of the job's record.
    pub fn job(&self, id: u64) -> Option<JobRecord> {
        self.shared.lock().record(id)
    }

    /// Every job's record, by id.
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.shared.lock().records()
    }

    /// Waits until the job is done (see [`JobRecord::is_done`]); `None` on timeout.
    pub fn wait_for_job_finished(&self, id: u64, timeout: Duration) -> Option<JobRecord> {
        self.wait_for_job(id, timeout, JobRecord::is_done)
    }

    /// Waits until the job's record satisfies `done`; `None` on timeout or unknown job.
    pub fn wait_for_job(
        &self,
        id: u64,
        timeout: Duration,
        done: impl Fn(&JobRecord) -> bool,
    ) -> Option<JobRecord> {
        self.shared.wait_for(id, timeout, done)
    }

    /// What the runner sent that breaks the API, one sentence each; empty when it behaved.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Records of jobs as they finish, for the binary and for streaming checks.
    pub fn subscribe(&self) -> mpsc::Receiver<JobRecord> {
        let (sender, receiver) = mpsc::channel();
        self.shared.lock().subscribers.push(sender);
        receiver
    }

    /// The next `count` requests to `endpoint` answer `status` (a 5xx, 409, ...).
    pub fn fail_next(&self, endpoint: Endpoint, count: u32, status: u16) {
        self.shared.lock().add_fault(endpoint, count, status, None);
    }

    /// The next `count` requests to `endpoint` answer 429 with `Retry-After: <seconds>`.
    pub fn throttle_next(&self, endpoint: Endpoint, count: u32, retry_after_secs: u64) {
        self.shared
            .lock()
            .add_fault(endpoint, count, 429, Some(Retry::After(retry_after_secs)));
    }

    /// The next `count` requests to `endpoint` answer 429 with `RateLimit-ResetTime` set
    /// `reset_in_secs` seconds ahead (an HTTP date) and no `Retry-After`.
    pub fn throttle_next_until_reset(&self, endpoint: Endpoint, count: u32, reset_in_secs: u64) {
        let retry = Some(Retry::ResetIn(reset_in_secs));
        self.shared.lock().add_fault(endpoint, count, 429, retry);
    }

    /// Queues a job whose body is sent as is with 201, for the case of a coordinator that
    /// marked a job running but sent a body the runner cannot parse. The job keeps the body's
    /// `id` (when unused) and `token`, if it has them. Returns the job id.
    pub fn enqueue_raw_payload(&self, body: &str) -> u64 {
        self.shared.lock().enqueue_raw(body)
    }

    /// The next trace PATCH of the job answers 416 with the real size.
    pub fn reject_next_trace_range(&self, id: u64) {
        self.shared
            .lock()
            .with_job(id, |job| job.reject_next_range = true);
    }

    /// The next PUT of the job answers 202 (accepted, not finished).
    pub fn accept_next_update(&self, id: u64) {
        self.shared
            .lock()
            .with_job(id, |job| job.accept_next_put = true);
    }

    /// Cancels the job; the runner learns it on its next PATCH or PUT.
    pub fn cancel_job(&self, id: u64, mode: CancelMode) {
        self.shared.lock().cancel(id, mode);
        self.shared.notify();
    }

    /// Number of job ids waiting to be handed out.
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if self.owns_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}
