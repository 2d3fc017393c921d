//! What the runner and the coordinator exchange: the runner's self-description, job update
//! bodies, and the meaning of each answer.

use std::time::Duration;

use serde::Serialize;

use super::job::Job;
use crate::secret::Secret;

/// Whether the coordinator wants a running job stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CancelState {
    /// Keep going.
    #[default]
    None,
    /// `Job-Status: canceling`: stop the script, after_script still runs.
    Graceful,
    /// 403/404 or `Job-Status: canceled|cancelled|failed`: stop now, still clean up.
    Now,
}

/// What the runner tells about itself (`info` in register and job requests).
#[derive(Debug, Clone, Serialize)]
pub struct RunnerInfo {
    pub name: String,
    pub version: String,
    pub revision: String,
    pub platform: String,
    pub architecture: String,
    pub executor: String,
    pub features: Features,
}

/// The job features the runner supports (`info.features`).
#[derive(Debug, Clone, Serialize)]
pub struct Features {
    pub variables: bool,
    pub image: bool,
    pub services: bool,
    pub artifacts: bool,
    pub cache: bool,
    pub upload_multiple_artifacts: bool,
    pub trace_checksum: bool,
    pub cancelable: bool,
}

impl Default for RunnerInfo {
    fn default() -> Self {
        RunnerInfo {
            name: "alloy-runner".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: option_env!("ALLOY_RUNNER_GIT_REVISION")
                .unwrap_or("unknown")
                .to_string(),
            platform: std::env::consts::OS.to_string(),
            architecture: std::env::consts::ARCH.to_string(),
            executor: "kubernetes".to_string(),
            features: Features {
                variables: true,
                image: true,
                services: true,
                artifacts: true,
                cache: true,
                upload_multiple_artifacts: false,
                trace_checksum: true,
                cancelable: true,
            },
        }
    }
}

/// What `register` sends besides the registration token.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub description: String,
    pub tags: Vec<String>,
    pub run_untagged: bool,
    pub locked: bool,
}

/// A runner the coordinator has just registered.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: u64,
    /// The runner token to store in config.toml.
    pub token: Secret,
}

/// What `POST /jobs/request` gave.
#[derive(Debug)]
pub enum JobRequest {
    /// 204: nothing to do; ask again after `check_interval`.
    NoJob,
    /// 201 with a job that decoded and passed the checks.
    Job(Box<Job>),
    /// 201 with a body that cannot be run. The coordinator already marked the job running, so
    /// the caller fails it ([`Client::fail_unparseable`]) when `id` and `token` are known.
    Unparseable {
        id: Option<u64>,
        token: Option<Secret>,
        message: String,
    },
    /// 401 (AlloyCI) or 403 (GitLab): the runner token is not accepted.
    Unhealthy { status: u16 },
}

/// A job's state in `PUT /jobs/:id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Success,
    Failed,
}

/// `failure_reason` of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    ScriptFailure,
    RunnerSystemFailure,
    JobExecutionTimeout,
    StuckOrTimeoutFailure,
    UnknownFailure,
}

/// `output` of the final update: lets GitLab check it holds the whole trace.
#[derive(Debug, Clone, Serialize)]
pub struct TraceOutput {
    /// `crc32:%08x` of the whole trace.
    pub checksum: String,
    pub bytesize: u64,
}

/// The body of `PUT /jobs/:id` without the token.
#[derive(Debug, Clone, Serialize)]
pub struct JobUpdate {
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<FailureReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<TraceOutput>,
}

impl JobUpdate {
    /// A `running` update: tells the coordinator the job is alive.
    pub fn running() -> Self {
        JobUpdate {
            state: JobState::Running,
            failure_reason: None,
            exit_code: None,
            trace: None,
            output: None,
        }
    }
}

/// How the coordinator took a job update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// 200.
    Accepted,
    /// 202: accepted but not finished; send it again after the update interval.
    NotFinished,
    /// 412: the trace checksum did not match; resend the whole trace, then the update.
    ChecksumMismatch,
    /// 403 or 404: the job is gone; stop it.
    Stopped { status: u16 },
}

/// The coordinator's answer to a job update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateAnswer {
    pub outcome: UpdateOutcome,
    /// From 403/404 or the `Job-Status` header.
    pub cancel: CancelState,
    /// `X-GitLab-Trace-Update-Interval`, capped at 3 min.
    pub update_interval: Option<Duration>,
}

/// How the coordinator took a trace patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOutcome {
    /// 202: the bytes are stored; the next patch starts at `next_offset`.
    Accepted { next_offset: u64 },
    /// 416: the coordinator holds `server_size` bytes; resend from there.
    RangeMismatch { server_size: u64 },
    /// 403 or 404: the job is gone; stop it.
    Stopped { status: u16 },
}

/// The coordinator's answer to a trace patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchAnswer {
    pub outcome: PatchOutcome,
    pub cancel: CancelState,
    pub update_interval: Option<Duration>,
}
