//! The client's errors and the API server's `Status` answers they carry.
//!
//! Status shape: `staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go` (`Status`,
//! `StatusDetails`, `StatusCause`).

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::Deserialize;

/// Longest raw text kept from a failure body that is not a `Status` (in bytes).
const MAX_RAW_MESSAGE: usize = 2048;

/// A failure answer of the API server, read from its `Status` body or, when the body is not a
/// Status (a 429 from flow control, a proxy's page), from the HTTP code and the raw text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// HTTP code (`code` of the body, else the response's); 0 when unknown (exec channel 3).
    pub code: u16,
    /// The `status` field: `Success` or `Failure`; empty when the body was not a Status.
    pub outcome: String,
    /// Machine-readable reason (`NotFound`, `Forbidden`, `Expired`, ...); may be empty.
    pub reason: String,
    /// The server's message, verbatim.
    pub message: String,
    /// `details.causes`, in the server's order.
    pub causes: Vec<StatusCause>,
}

/// One entry of `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusCause {
    /// `reason` (`FieldValueRequired`, `ExitCode`, ...).
    pub reason: String,
    /// `message`.
    pub message: String,
    /// `field`, the JSON path of the offending field; empty when absent.
    pub field: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawStatus {
    kind: String,
    status: String,
    message: String,
    reason: String,
    code: u16,
    details: Option<RawDetails>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDetails {
    causes: Vec<RawCause>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCause {
    reason: String,
    message: String,
    field: String,
}

impl Status {
    /// Reads a failure answer: a `Status` JSON body when there is one, else the code and the raw
    /// text (cut to 2 KiB).
    pub fn parse(http_code: u16, body: &[u8]) -> Status {
        let parsed = serde_json::from_slice::<RawStatus>(body)
            .ok()
            .filter(|raw| raw.kind == "Status" || !raw.status.is_empty());
        match parsed {
            Some(raw) => {
                let mut status = Status::from_raw(raw);
                if status.code == 0 {
                    status.code = http_code;
                }
                status
            }
            None => Status::plain(http_code, body),
        }
    }

    /// Reads a `Status` object already decoded (a watch ERROR event, the exec error channel);
    /// `None` when the value does not have a Status's shape.
    pub fn from_value(value: &serde_json::Value) -> Option<Status> {
        let raw = RawStatus::deserialize(value).ok()?;
        (raw.kind == "Status" || !raw.status.is_empty()).then(|| Status::from_raw(raw))
    }

    /// Whether the server said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code == 404 || self.reason == "NotFound"
    }

    /// Whether the server said a watch's resourceVersion is too old (HTTP 410 `Expired`/`Gone`).
    pub fn is_expired(&self) -> bool {
        self.code == 410 || self.reason == "Expired" || self.reason == "Gone"
    }

    fn from_raw(raw: RawStatus) -> Status {
        let causes = raw.details.map(|d| d.causes).unwrap_or_default();
        Status {
            code: raw.code,
            outcome: raw.status,
            reason: raw.reason,
            message: raw.message,
            causes: causes
                .into_iter()
                .map(|c| StatusCause {
                    reason: c.reason,
                    message: c.message,
                    field: c.field,
                })
                .collect(),
        }
    }

    fn plain(http_code: u16, body: &[u8]) -> Status {
        let text = String::from_utf8_lossy(body);
        let mut message = text.trim().to_string();
        if message.len() > MAX_RAW_MESSAGE {
            let mut cut = MAX_RAW_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Status {
            code: http_code,
            message,
            ..Status::default()
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = if self.message.is_empty() {
            "no message"
        } else {
            &self.message
        };
        f.write_str(message)?;
        match (self.code, self.reason.is_empty()) {
            (0, true) => Ok(()),
            (0, false) => write!(f, " ({})", self.reason),
            (code, true) => write!(f, " (http {code})"),
            (code, false) => write!(f, " (http {code}, {})", self.reason),
        }
    }
}

/// Everything that can fail between the runner and the Kubernetes API (except exec, see
/// [`super::ExecError`]).
#[derive(Debug)]
pub enum KubeError {
    /// No `host` is configured and the in-cluster environment variables are not set.
    NoCluster,
    /// The configured settings do not fit together (a key without its certificate, ...).
    Config { detail: String },
    /// The API server address cannot be used.
    InvalidHost { host: String, detail: String },
    /// A credentials file cannot be read; `what` says which (`CA certificate`, `token`, ...).
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A PEM file does not hold what it should.
    ParsePem { path: PathBuf, detail: String },
    /// The client certificate and key were refused by the TLS library.
    ClientCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    /// The TLS handshake failed, usually because the server's certificate does not verify.
    Tls { host: String, source: rustls::Error },
    /// The connection to the API server could not be set up.
    Connect {
        url: String,
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The request was sent (or partly sent) and the answer was lost or timed out.
    Transfer {
        url: String,
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The API server answered with a failure.
    Api { action: String, status: Box<Status> },
    /// The answer is not the JSON it should be.
    Decode {
        url: String,
        source: serde_json::Error,
    },
    /// A helper thread could not be started.
    Spawn { what: String, source: io::Error },
    /// The pod watch ended (its thread stopped).
    WatchStopped { pod: String },
}

impl KubeError {
    /// The API's Status when the server answered with a failure.
    pub fn status(&self) -> Option<&Status> {
        match self {
            KubeError::Api { status, .. } => Some(status),
            _ => None,
        }
    }

    /// Whether the server said the object does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        self.status().is_some_and(Status::is_not_found)
    }
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeError::NoCluster => f.write_str(
                "no kubernetes host configured and not in a cluster \
                 (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set)",
            ),
            KubeError::Config { detail } => write!(f, "kubernetes settings: {detail}"),
            KubeError::InvalidHost { host, detail } => {
                write!(f, "invalid kubernetes host {host:?}: {detail}")
            }
            KubeError::ReadFile { what, path, source } => {
                write!(f, "cannot read {what} {}: {source}", path.display())
            }
            KubeError::ParsePem { path, detail } => {
                write!(f, "cannot use PEM file {}: {detail}", path.display())
            }
            KubeError::ClientCertificate { path, source } => {
                write!(f, "client certificate {} refused: {source}", path.display())
            }
            KubeError::Tls { host, source } => write!(f, "tls with {host} failed: {source}"),
            KubeError::Connect { url, source } => write!(f, "cannot connect to {url}: {source}"),
            KubeError::Transfer { url, source } => write!(f, "request to {url} failed: {source}"),
            KubeError::Api { action, status } => write!(f, "{action}: {status}"),
            KubeError::Decode { url, source } => {
                write!(f, "cannot decode the answer of {url}: {source}")
            }
            KubeError::Spawn { what, source } => write!(f, "cannot start {what}: {source}"),
            KubeError::WatchStopped { pod } => write!(f, "the watch of pod {pod} stopped"),
        }
    }
}

impl StdError for KubeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            KubeError::ReadFile { source, .. } | KubeError::Spawn { source, .. } => Some(source),
            KubeError::ClientCertificate { source, .. } | KubeError::Tls { source, .. } => {
                Some(source)
            }
            KubeError::Connect { source, .. } | KubeError::Transfer { source, .. } => {
                Some(source.as_ref())
            }
            KubeError::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_invalid_status_with_its_field_causes() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"Pod \"ci-1\" is invalid: spec.containers[0].image: Required value",
            "reason":"Invalid","details":{"name":"ci-1","kind":"Pod","causes":[{"reason":
            "FieldValueRequired","message":"Required value","field":"spec.containers[0].image"}]},
            "code":422}"#;
        let status = Status::parse(422, body);
        assert_eq!(status.code, 422);
        assert_eq!(status.reason, "Invalid");
        assert_eq!(status.outcome, "Failure");
        assert_eq!(
            status.message,
            "Pod \"ci-1\" is invalid: spec.containers[0].image: Required value"
        );
        assert_eq!(status.causes.len(), 1);
        assert_eq!(status.causes[0].field, "spec.containers[0].image");
        assert_eq!(status.causes[0].reason, "FieldValueRequired");
    }

    #[test]
    fn falls_back_to_code_and_text_for_a_plain_body() {
        let status = Status::parse(429, b"Too many requests, please try again later.\n");
        assert_eq!(status.code, 429);
        assert_eq!(status.reason, "");
        assert_eq!(status.message, "Too many requests, please try again later.");
        assert_eq!(
            status.to_string(),
            "Too many requests, please try again later. (http 429)"
        );
    }

    #[test]
    fn json_that_is_not_a_status_is_kept_as_text() {
        let status = Status::parse(500, br#"{"error":"boom"}"#);
        assert_eq!(status.message, r#"{"error":"boom"}"#);
        assert_eq!(status.code, 500);
    }

    #[test]
    fn cuts_a_long_plain_body_on_a_character_boundary() {
        let body = "é".repeat(MAX_RAW_MESSAGE);
        let status = Status::parse(502, body.as_bytes());
        assert!(status.message.len() <= MAX_RAW_MESSAGE);
        assert!(status.message.chars().all(|c| c == 'é'));
    }

    #[test]
    fn status_code_from_http_when_the_body_has_none() {
        let status = Status::parse(403, br#"{"status":"Failure","message":"denied"}"#);
        assert_eq!(status.code, 403);
        assert_eq!(status.to_string(), "denied (http 403)");
    }

    #[test]
    fn api_error_message_names_the_action_and_keeps_the_message_verbatim() {
        let body = br#"{"kind":"Status","status":"Failure","message":"pods is forbidden: User \"system:serviceaccount:ci:runner\" cannot create resource \"pods\"","reason":"Forbidden","code":403}"#;
        let err = KubeError::Api {
            action: "create pod in namespace ci".into(),
            status: Box::new(Status::parse(403, body)),
        };
        assert_eq!(
            err.to_string(),
            "create pod in namespace ci: pods is forbidden: User \
             \"system:serviceaccount:ci:runner\" cannot create resource \"pods\" \
             (http 403, Forbidden)"
        );
        assert!(!err.is_not_found());
    }

    #[test]
    fn recognises_expired_and_not_found() {
        let gone = Status::from_value(&serde_json::json!({
            "kind": "Status", "status": "Failure", "reason": "Expired", "code": 410,
            "message": "too old resource version: 1 (5)"
        }));
        assert!(gone.is_some_and(|s| s.is_expired()));
        assert!(Status::parse(404, b"").is_not_found());
        assert!(Status::from_value(&serde_json::json!({"kind": "Pod"})).is_none());
    }
}
