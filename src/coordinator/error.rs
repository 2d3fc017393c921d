//! The one error type of the coordinator boundary.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong talking to the coordinator. Messages name the URL (which names the job) and
/// never carry a token.
#[derive(Debug)]
pub enum CoordinatorError {
    /// The configured coordinator URL is not a usable `http`/`https` URL.
    InvalidUrl { url: String },
    /// The request did not get an HTTP answer (DNS, connect, TLS, timeout, broken body).
    Transport {
        url: String,
        source: Box<ureq::Transport>,
    },
    /// The coordinator answered a status the runner does not accept here.
    Status {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    /// The coordinator refused the token (403, or 401 from AlloyCI).
    Forbidden { url: String, status: u16 },
    /// The job is gone or was stopped by the coordinator (403, 404 or a `Job-Status` header).
    JobGone { url: String, status: u16 },
    /// The coordinator refused an upload as too large (413).
    TooLarge { url: String },
    /// The coordinator has no such object (404 on an artifacts download).
    NotFound { url: String },
    /// An answer body could not be read or decoded.
    Decode { url: String, source: io::Error },
    /// A local file (artifacts) could not be read or written.
    File { path: PathBuf, source: io::Error },
    /// The final update of a job was never acknowledged within the allowed time.
    GaveUp {
        job: u64,
        elapsed: Duration,
        last: Box<CoordinatorError>,
    },
}

impl CoordinatorError {
    /// Whether trying again later may succeed (network errors, 409, 429, 5xx, other 4xx).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CoordinatorError::Transport { .. } | CoordinatorError::Status { .. }
        )
    }

    /// The wait the coordinator asked for (429 with `Retry-After` or `RateLimit-ResetTime`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CoordinatorError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for CoordinatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoordinatorError::InvalidUrl { url } => {
                write!(
                    f,
                    "invalid coordinator url {url:?}: expected http:// or https://"
                )
            }
            CoordinatorError::Transport { url, source } => {
                write!(f, "cannot reach {url}: {source}")
            }
            CoordinatorError::Status { url, status, .. } => {
                write!(f, "{url} answered unexpected status {status}")
            }
            CoordinatorError::Forbidden { url, status } => {
                write!(f, "{url} refused the token (status {status})")
            }
            CoordinatorError::JobGone { url, status } => {
                write!(f, "{url}: the job is gone or was stopped (status {status})")
            }
            CoordinatorError::TooLarge { url } => {
                write!(f, "{url} refused the upload as too large")
            }
            CoordinatorError::NotFound { url } => write!(f, "{url} answered 404: not found"),
            CoordinatorError::Decode { url, source } => {
                write!(f, "cannot decode the answer of {url}: {source}")
            }
            CoordinatorError::File { path, source } => write!(f, "{}: {source}", path.display()),
            CoordinatorError::GaveUp { job, elapsed, last } => write!(
                f,
                "gave up updating job {job} after {}s: {last}",
                elapsed.as_secs()
            ),
        }
    }
}

impl std::error::Error for CoordinatorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CoordinatorError::Transport { source, .. } => Some(source.as_ref()),
            CoordinatorError::Decode { source, .. } | CoordinatorError::File { source, .. } => {
                Some(source)
            }
            CoordinatorError::GaveUp { last, .. } => Some(last.as_ref()),
            _ => None,
        }
    }
}
