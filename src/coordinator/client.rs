//! The blocking runner API v4 client: register, verify, unregister, request a job, update it,
//! append to its trace.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::backoff;
use super::error::CoordinatorError;
use super::messages::{
    CancelState, FailureReason, JobRequest, JobState, JobUpdate, PatchAnswer, PatchOutcome,
    Registered, Registration, RunnerInfo, TraceOutput, UpdateAnswer, UpdateOutcome,
};
use super::payload;
use crate::secret::Secret;

/// How long to wait for a TCP (and TLS) connection to the coordinator.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one socket read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Cap on `X-GitLab-Trace-Update-Interval`.
pub const MAX_UPDATE_INTERVAL: Duration = Duration::from_secs(180);
/// Largest JSON answer read into memory (a job payload with many variables stays far below).
const MAX_JSON_ANSWER: u64 = 16 * 1024 * 1024;

/// Connection settings of a [`Client`].
#[derive(Clone)]
pub struct ClientOptions {
    /// TCP/TLS connect timeout (default 30 s).
    pub connect_timeout: Duration,
    /// Timeout of each socket read or write (default 60 s).
    pub io_timeout: Duration,
    /// TLS settings (a private CA, a client certificate); `None` uses the public web roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Tries of an artifacts upload (default 3).
    pub upload_attempts: u32,
    /// Wait between two tries of an artifacts call (default 1 s).
    pub artifacts_retry_wait: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: CONNECT_TIMEOUT,
            io_timeout: IO_TIMEOUT,
            tls: None,
            upload_attempts: 3,
            artifacts_retry_wait: Duration::from_secs(1),
        }
    }
}

/// A client for one coordinator. Cheap to clone; clones share connections and the last
/// `X-GitLab-Last-Update` seen.
#[derive(Clone)]
pub struct Client {
    pub(super) agent: ureq::Agent,
    /// `<url>/api/v4/`.
    pub(super) base: String,
    pub(super) options: ClientOptions,
    last_update: Arc<Mutex<Option<String>>>,
}

#[derive(Serialize)]
struct TokenBody<'a> {
    token: &'a str,
}

#[derive(Serialize)]
struct RegisterBody<'a> {
    token: &'a str,
    description: &'a str,
    tag_list: String,
    run_untagged: bool,
    locked: bool,
    info: &'a RunnerInfo,
}

#[derive(Deserialize)]
struct RegisterAnswer {
    id: u64,
    token: Secret,
}

#[derive(Serialize)]
struct RequestBody<'a> {
    token: &'a str,
    info: &'a RunnerInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_update: Option<String>,
}

#[derive(Serialize)]
struct UpdateBody<'a> {
    token: &'a str,
    #[serde(flatten)]
    update: &'a JobUpdate,
}

impl Client {
    /// A client for the coordinator at `url` (`https://alloy.example/`, a trailing `/ci` is
    /// accepted) with the default timeouts.
    pub fn new(url: &str) -> Result<Client, CoordinatorError> {
        Client::with_options(url, ClientOptions::default())
    }

    /// A client with explicit timeouts and TLS settings.
    pub fn with_options(url: &str, options: ClientOptions) -> Result<Client, CoordinatorError> {
        let base = api_base(url)?;
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(options.connect_timeout)
            .timeout_read(options.io_timeout)
            .timeout_write(options.io_timeout)
            .redirects(0)
            .user_agent(&user_agent());
        if let Some(tls) = &options.tls {
            builder = builder.tls_config(tls.clone());
        }
        let agent = builder.build();
        Ok(Client {
            agent,
            base,
            options,
            last_update: Arc::new(Mutex::new(None)),
        })
    }

    /// The full URL of an API path such as `jobs/request`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /runners`: registers a runner with a registration token; 403 means a bad token.
    pub fn register(
        &self,
        registration_token: &Secret,
        registration: &Registration,
        info: &RunnerInfo,
    ) -> Result<Registered, CoordinatorError> {
        let url = self.endpoint("runners");
        let body = RegisterBody {
            token: registration_token.expose(),
            description: &registration.description,
            tag_list: registration.tags.join(","),
            run_untagged: registration.run_untagged,
            locked: registration.locked,
            info,
        };
        let response = self.send_json("POST", &url, &body)?;
        match response.status() {
            201 => {
                let answer: RegisterAnswer = decode_json(&url, response)?;
                Ok(Registered {
                    id: answer.id,
                    token: answer.token,
                })
            }
            401 | 403 => Err(CoordinatorError::Forbidden {
                url,
                status: response.status(),
            }),
            _ => Err(status_error(url, &response)),
        }
    }

    /// `POST /runners/verify`: `Ok(false)` only when the coordinator answers 403 (the runner was
    /// deleted); any other answer is logged and counts as alive.
    pub fn verify(&self, token: &Secret) -> Result<bool, CoordinatorError> {
        let url = self.endpoint("runners/verify");
        let response = self.send_json(
            "POST",
            &url,
            &TokenBody {
                token: token.expose(),
            },
        )?;
        match response.status() {
            200 => Ok(true),
            403 => Ok(false),
            status => {
                log::warn!("{url} answered {status} to a verify; the runner counts as alive");
                Ok(true)
            }
        }
    }

    /// `DELETE /runners`: 204 done; 403 means the token is unknown.
    pub fn unregister(&self, token: &Secret) -> Result<(), CoordinatorError> {
        let url = self.endpoint("runners");
        let response = self.send_json(
            "DELETE",
            &url,
            &TokenBody {
                token: token.expose(),
            },
        )?;
        match response.status() {
            200 | 204 => Ok(()),
            401 | 403 => Err(CoordinatorError::Forbidden {
                url,
                status: response.status(),
            }),
            _ => Err(status_error(url, &response)),
        }
    }

    /// `POST /jobs/request`. Transient answers (409, 429, 5xx, network) are errors whose
    /// [`CoordinatorError::is_transient`] is true; back off and poll again.
    pub fn request_job(
        &self,
        token: &Secret,
        info: &RunnerInfo,
    ) -> Result<JobRequest, CoordinatorError> {
        let url = self.endpoint("jobs/request");
        let last_update = self.last_update.lock().map(|v| v.clone()).unwrap_or(None);
        let body = RequestBody {
            token: token.expose(),
            info,
            last_update,
        };
        let response = self.send_json("POST", &url, &body)?;
        self.remember_last_update(&response);
        match response.status() {
            201 => Ok(job_from_response(&url, response)),
            204 => Ok(JobRequest::NoJob),
            status @ (401 | 403) => Ok(JobRequest::Unhealthy { status }),
            _ => Err(status_error(url, &response)),
        }
    }

    /// `PUT /jobs/:id` with the job token in the body.
    pub fn update_job(
        &self,
        job_id: u64,
        job_token: &Secret,
        update: &JobUpdate,
    ) -> Result<UpdateAnswer, CoordinatorError> {
        let url = self.endpoint(&format!("jobs/{job_id}"));
        let body = UpdateBody {
            token: job_token.expose(),
            update,
        };
        let response = self.send_json("PUT", &url, &body)?;
        let outcome = match response.status() {
            200 => UpdateOutcome::Accepted,
            202 => UpdateOutcome::NotFinished,
            412 => UpdateOutcome::ChecksumMismatch,
            status @ (403 | 404) => UpdateOutcome::Stopped { status },
            _ => return Err(status_error(url, &response)),
        };
        let cancel = match outcome {
            UpdateOutcome::Stopped { .. } => CancelState::Now,
            _ => cancel_from_header(&response),
        };
        Ok(UpdateAnswer {
            outcome,
            cancel,
            update_interval: update_interval(&response),
        })
    }

    /// `PATCH /jobs/:id/trace`: appends `bytes` at `offset` (inclusive `Content-Range`).
    pub fn patch_trace(
        &self,
        job_id: u64,
        job_token: &Secret,
        offset: u64,
        bytes: &[u8],
    ) -> Result<PatchAnswer, CoordinatorError> {
        let url = self.endpoint(&format!("jobs/{job_id}/trace"));
        let end = (offset + bytes.len() as u64).saturating_sub(1);
        let result = self
            .agent
            .request("PATCH", &url)
            .set("JOB-TOKEN", job_token.expose())
            .set("Content-Type", "text/plain")
            .set("Content-Range", &format!("{offset}-{end}"))
            .send_bytes(bytes);
        let response = answer(&url, result)?;
        let outcome = match response.status() {
            202 => PatchOutcome::Accepted {
                next_offset: offset + bytes.len() as u64,
            },
            416 => PatchOutcome::RangeMismatch {
                server_size: range_end(&response).unwrap_or(0),
            },
            status @ (403 | 404) => PatchOutcome::Stopped { status },
            _ => return Err(status_error(url, &response)),
        };
        let cancel = match outcome {
            PatchOutcome::Stopped { .. } => CancelState::Now,
            _ => cancel_from_header(&response),
        };
        Ok(PatchAnswer {
            outcome,
            cancel,
            update_interval: update_interval(&response),
        })
    }

    /// Fails a job whose payload could not be run: `failed` + `runner_system_failure`, with a
    /// trace that says why. The trace is PATCHed first: GitLab shows only PATCHed traces and
    /// checks the update's `output` checksum against them.
    pub fn fail_unparseable(
        &self,
        job_id: u64,
        job_token: &Secret,
        message: &str,
    ) -> Result<UpdateAnswer, CoordinatorError> {
        let trace = format!("ERROR: the runner could not use this job: {message}\n");
        let patched = self.patch_trace(job_id, job_token, 0, trace.as_bytes());
        // A 416 naming the trace's own size means an earlier try already stored it.
        let stored = match patched.map(|answer| answer.outcome) {
            Ok(PatchOutcome::Accepted { .. }) => true,
            Ok(PatchOutcome::RangeMismatch { server_size }) => server_size == trace.len() as u64,
            _ => false,
        };
        // Without a stored copy to compare with, a checksum would only earn a 412.
        let output = stored.then(|| TraceOutput {
            checksum: format!("crc32:{:08x}", crate::checksum::crc32(trace.as_bytes())),
            bytesize: trace.len() as u64,
        });
        let update = JobUpdate {
            state: JobState::Failed,
            failure_reason: Some(FailureReason::RunnerSystemFailure),
            exit_code: None,
            output,
            trace: Some(trace),
        };
        self.update_job(job_id, job_token, &update)
    }

    fn send_json(
        &self,
        method: &str,
        url: &str,
        body: &impl Serialize,
    ) -> Result<ureq::Response, CoordinatorError> {
        let result = self.agent.request(method, url).send_json(body);
        answer(url, result)
    }

    fn remember_last_update(&self, response: &ureq::Response) {
        let Some(value) = response.header("X-GitLab-Last-Update") else {
            return;
        };
        if let Ok(mut last) = self.last_update.lock() {
            *last = Some(value.to_string()).filter(|v| !v.is_empty());
        }
    }
}

/// `alloy-runner <version> (<os>/<arch>)`.
pub fn user_agent() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "alloy-runner {version} ({}/{})",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// `<url>/api/v4/` with a trailing `/` and a trailing `/ci` removed from `url` first.
pub fn api_base(url: &str) -> Result<String, CoordinatorError> {
    let trimmed = url.trim();
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let trimmed = trimmed.strip_suffix("/ci").unwrap_or(trimmed);
    let host = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match host {
        Some(host) if !host.is_empty() && !host.starts_with('/') => {
            Ok(format!("{trimmed}/api/v4/"))
        }
        _ => Err(CoordinatorError::InvalidUrl {
            url: url.to_string(),
        }),
    }
}

/// Turns ureq's "error on 4xx/5xx" into a plain response; only transport failures stay errors.
pub(super) fn answer(
    url: &str,
    result: Result<ureq::Response, ureq::Error>,
) -> Result<ureq::Response, CoordinatorError> {
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => Ok(response),
        Err(ureq::Error::Transport(source)) => Err(CoordinatorError::Transport {
            url: url.to_string(),
            source: Box::new(source),
        }),
    }
}

/// An unexpected status as an error, with the wait a 429 asked for.
pub(super) fn status_error(url: String, response: &ureq::Response) -> CoordinatorError {
    let status = response.status();
    let retry_after = if status == 429 {
        backoff::retry_after(
            response.header("Retry-After"),
            response.header("RateLimit-ResetTime"),
            SystemTime::now(),
        )
    } else {
        None
    };
    log::debug!("{url} answered {status}");
    CoordinatorError::Status {
        url,
        status,
        retry_after,
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(
    url: &str,
    response: ureq::Response,
) -> Result<T, CoordinatorError> {
    let text = read_json_text(response).map_err(|source| CoordinatorError::Decode {
        url: url.to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| CoordinatorError::Decode {
        url: url.to_string(),
        source: e.into(),
    })
}

/// The body of a JSON answer; an error when the Content-Type is not `application/json`.
fn read_json_text(response: ureq::Response) -> std::io::Result<String> {
    let content_type = response.content_type().to_ascii_lowercase();
    if content_type != "application/json" {
        let message = format!("expected application/json, got {content_type:?}");
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            message,
        ));
    }
    let mut text = String::new();
    response
        .into_reader()
        .take(MAX_JSON_ANSWER)
        .read_to_string(&mut text)?;
    Ok(text)
}

fn job_from_response(url: &str, response: ureq::Response) -> JobRequest {
    match read_json_text(response) {
        Ok(text) => payload::decode(&text),
        Err(e) => JobRequest::Unparseable {
            id: None,
            token: None,
            message: format!("cannot read the job answer of {url}: {e}"),
        },
    }
}

/// `Job-Status: canceled|cancelled|failed` means stop now, `canceling` stop gracefully.
fn cancel_from_header(response: &ureq::Response) -> CancelState {
    match response
        .header("Job-Status")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("canceled" | "cancelled" | "failed") => CancelState::Now,
        Some("canceling" | "cancelling") => CancelState::Graceful,
        _ => CancelState::None,
    }
}

/// `X-GitLab-Trace-Update-Interval` in seconds, capped at 3 min; ignored when not positive.
fn update_interval(response: &ureq::Response) -> Option<Duration> {
    let secs: u64 = response
        .header("X-GitLab-Trace-Update-Interval")?
        .trim()
        .parse()
        .ok()?;
    (secs > 0).then(|| Duration::from_secs(secs).min(MAX_UPDATE_INTERVAL))
}

/// The end of a `Range: 0-<n>` header.
fn range_end(response: &ureq::Response) -> Option<u64> {
    let range = response.header("Range")?;
    let (_, end) = range.trim().trim_start_matches("bytes=").split_once('-')?;
    end.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_drops_a_trailing_slash_and_ci() {
        let expected = "https://alloy.example/api/v4/";
        assert_eq!(api_base("https://alloy.example").unwrap(), expected);
        assert_eq!(api_base("https://alloy.example/").unwrap(), expected);
        assert_eq!(api_base("https://alloy.example/ci").unwrap(), expected);
        assert_eq!(api_base("https://alloy.example/ci/").unwrap(), expected);
        assert_eq!(
            api_base("http://h:8080/gitlab/").unwrap(),
            "http://h:8080/gitlab/api/v4/"
        );
    }

    #[test]
    fn api_base_rejects_urls_without_a_scheme_or_host() {
        assert!(api_base("alloy.example").is_err());
        assert!(api_base("https://").is_err());
        assert!(api_base("ftp://alloy.example").is_err());
    }

    #[test]
    fn user_agent_names_version_os_and_arch() {
        let agent = user_agent();
        assert!(agent.starts_with(&format!("alloy-runner {} (", env!("CARGO_PKG_VERSION"))));
        assert!(agent.ends_with(&format!(
            "{}/{})",
            std::env::consts::OS,
            std::env::consts::ARCH
        )));
    }

    #[test]
    fn update_body_puts_the_token_beside_the_fields_and_leaves_out_empty_ones() {
        let update = JobUpdate {
            state: JobState::Failed,
            failure_reason: Some(FailureReason::ScriptFailure),
            exit_code: Some(2),
            trace: None,
            output: None,
        };
        let body = UpdateBody {
            token: "tok",
            update: &update,
        };
        let json = serde_json::to_value(&body).unwrap();
        let expected = serde_json::json!({
            "token": "tok", "state": "failed", "failure_reason": "script_failure", "exit_code": 2
        });
        assert_eq!(json, expected);
    }
}
