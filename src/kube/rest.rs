//! REST calls on ureq: authentication, timeouts, `Status` errors and client-go's retry rules.
//!
//! Retry rules (`staging/src/k8s.io/client-go/rest/request.go`, `with_retry.go`): reads and
//! deletes are retried on connection errors, 429 and 5xx, waiting `Retry-After` when the server
//! gives one; a create is retried only when it certainly did not happen, or after a GET showed
//! it did not; a 401 makes the token file be read again once.

use std::error::Error as StdError;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls::ClientConfig;
use serde_json::Value;

use super::credentials::{Auth, Endpoint};
use super::error::{KubeError, Status};

/// Time allowed to set up a TCP and TLS connection (10 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for one whole REST request, answer included (30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence accepted on a watch before it is started again (90 s).
pub const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(90);
/// How many times a request is tried at most (5, like the anchor runner).
pub const RETRY_TRIES: u32 = 5;
/// First wait between two tries (0.5 s), doubled each time.
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between two tries without `Retry-After` (2 s).
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Longest `Retry-After` honoured (10 s); a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Largest success body read (64 MiB) and largest failure body kept (64 KiB).
const MAX_BODY: u64 = 64 << 20;
const MAX_ERROR_BODY: u64 = 64 << 10;

/// How often and how patiently requests are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (default 5).
    pub tries: u32,
    /// Wait before the second try, doubled after each (default 0.5 s).
    pub min_backoff: Duration,
    /// Cap of the doubled wait (default 2 s).
    pub max_backoff: Duration,
    /// Cap of a server's `Retry-After` (default 10 s).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            tries: RETRY_TRIES,
            min_backoff: MIN_BACKOFF,
            max_backoff: MAX_BACKOFF,
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1-based).
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.min_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// One REST request.
pub(crate) struct Req<'a> {
    pub method: &'static str,
    /// Path under the server's base URL, starting with `/api`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<&'a Value>,
    /// What the request does, for error messages (`get pod ci-1 in namespace ci`).
    pub action: String,
}

/// Why one try failed, sorted by what a retry may do.
enum Failed {
    /// The server answered with a failure.
    Status {
        status: Status,
        retry_after: Option<Duration>,
    },
    /// Nothing reached the server (DNS, refused connection): any request may be sent again.
    NotSent(KubeError),
    /// The request went out and the answer was lost: it may have been carried out.
    Lost(KubeError),
    /// Retrying cannot help (the certificate does not verify, bad URL).
    Fatal(KubeError),
}

impl Failed {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failed::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether a read (or a delete, which is idempotent) may be tried again.
    fn retryable_read(&self) -> bool {
        match self {
            Failed::Status { status, .. } => status.code == 429 || status.code >= 500,
            Failed::NotSent(_) | Failed::Lost(_) => true,
            Failed::Fatal(_) => false,
        }
    }

    fn into_error(self, action: &str) -> KubeError {
        match self {
            Failed::Status { status, .. } => KubeError::Api {
                action: action.to_string(),
                status: Box::new(status),
            },
            Failed::NotSent(e) | Failed::Lost(e) | Failed::Fatal(e) => e,
        }
    }
}

/// What a failed create tells about whether the object exists.
enum CreateFate {
    /// Certainly not created: send it again.
    NotCreated,
    /// Perhaps created: look before sending it again.
    Unknown,
    /// Give up with this error.
    Final,
}

/// What a look for an object whose create had an unknown outcome found.
pub(crate) enum Lookup {
    /// The object exists: the earlier create went through.
    Found(Value),
    /// It does not exist: the create may be sent again.
    Absent,
    /// There is no way to look (a generated name without labels): do not create again.
    CannotTell,
    /// The look itself failed; the create is tried again (a duplicate is refused with 409).
    Failed(KubeError),
}

/// The shared HTTP side of a [`super::Client`].
#[derive(Clone)]
pub(crate) struct Transport {
    pub endpoint: Endpoint,
    pub tls: Arc<ClientConfig>,
    pub auth: Auth,
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    agent: ureq::Agent,
    watch_agent: ureq::Agent,
}

impl Transport {
    pub fn new(endpoint: Endpoint, tls: Arc<ClientConfig>, auth: Auth) -> Transport {
        let mut transport = Transport {
            agent: ureq::Agent::new(),
            watch_agent: ureq::Agent::new(),
            endpoint,
            tls,
            auth,
            retry: RetryPolicy::default(),
            connect_timeout: CONNECT_TIMEOUT,
        };
        transport.set_timeouts(CONNECT_TIMEOUT, REQUEST_TIMEOUT);
        transport
    }

    /// Rebuilds the agents with new timeouts (a fresh connection pool).
    pub fn set_timeouts(&mut self, connect: Duration, request: Duration) {
        self.connect_timeout = connect;
        self.agent = self
            .builder()
            .timeout_connect(connect)
            .timeout(request)
            .build();
        self.watch_agent = self
            .builder()
            .timeout_connect(connect)
            .timeout_read(WATCH_READ_TIMEOUT.max(request))
            .timeout_write(request)
            .build();
    }

    fn builder(&self) -> ureq::AgentBuilder {
        // No redirects: the API server never sends one, and following it could carry the token
        // elsewhere. No proxy from the environment either (ureq's default).
        ureq::AgentBuilder::new()
            .tls_config(self.tls.clone())
            .redirects(0)
            .user_agent(concat!("alloy-runner/", env!("CARGO_PKG_VERSION")))
    }

    /// Sends a read or a delete, retrying as client-go does; returns the decoded answer.
    pub fn call(&self, req: &Req) -> Result<Value, KubeError> {
        let mut reloaded = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failed = match self.send(&self.agent, req) {
                Ok(response) => return self.decode(response, req),
                Err(failed) => failed,
            };
            if !reloaded && self.should_reload(&failed) {
                reloaded = true;
                continue;
            }
            if attempt >= self.retry.tries || !failed.retryable_read() {
                return Err(failed.into_error(&req.action));
            }
            self.pause(&req.action, attempt, failed.retry_after());
        }
    }

    /// Sends a create. When the outcome is unknown (timeout, 5xx), `lookup` is asked whether
    /// the object exists before the create is sent again.
    pub fn create(&self, req: &Req, lookup: &dyn Fn() -> Lookup) -> Result<Value, KubeError> {
        let mut reloaded = false;
        let mut uncertain = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failed = match self.send(&self.agent, req) {
                Ok(response) => return self.decode(response, req),
                Err(failed) => failed,
            };
            if !reloaded && self.should_reload(&failed) {
                reloaded = true;
                continue;
            }
            if uncertain && is_already_exists(&failed) {
                // Our earlier try went through after all.
                if let Lookup::Found(found) = lookup() {
                    return Ok(found);
                }
            }
            let fate = create_fate(&failed);
            if matches!(fate, CreateFate::Final) {
                return Err(failed.into_error(&req.action));
            }
            // Even after the last try: the object may exist, and then the create succeeded.
            if matches!(fate, CreateFate::Unknown) {
                uncertain = true;
                log::debug!(
                    "{}: outcome unknown, looking before trying again",
                    req.action
                );
                match lookup() {
                    Lookup::Found(found) => return Ok(found),
                    Lookup::Absent => {}
                    Lookup::Failed(e) => log::debug!("{}: lookup failed: {e}", req.action),
                    Lookup::CannotTell => return Err(failed.into_error(&req.action)),
                }
            }
            if attempt >= self.retry.tries {
                return Err(failed.into_error(&req.action));
            }
            self.pause(&req.action, attempt, failed.retry_after());
        }
    }

    /// Opens a watch (or any streamed GET) and hands back the body, one JSON event per line.
    pub fn stream(&self, req: &Req) -> Result<Box<dyn BufRead + Send>, KubeError> {
        let mut reloaded = false;
        loop {
            match self.send(&self.watch_agent, req) {
                Ok(response) => {
                    return Ok(Box::new(BufReader::with_capacity(
                        64 << 10,
                        response.into_reader(),
                    )))
                }
                Err(failed) if !reloaded && self.should_reload(&failed) => reloaded = true,
                Err(failed) => return Err(failed.into_error(&req.action)),
            }
        }
    }

    fn should_reload(&self, failed: &Failed) -> bool {
        let unauthorized = matches!(failed, Failed::Status { status, .. } if status.code == 401);
        if unauthorized && self.auth.reload_after_unauthorized() {
            log::info!("the api server refused the token, trying again with the new token file");
            return true;
        }
        false
    }

    fn pause(&self, action: &str, attempt: u32, retry_after: Option<Duration>) {
        let wait = self.retry.delay(attempt, retry_after);
        log::debug!(
            "{action}: try {attempt} failed, trying again in {} ms",
            wait.as_millis()
        );
        thread::sleep(wait);
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.endpoint.base_url, path)
    }

    fn send(&self, agent: &ureq::Agent, req: &Req) -> Result<ureq::Response, Failed> {
        let url = self.url(&req.path);
        let mut request = agent
            .request(req.method, &url)
            .set("Accept", "application/json");
        for (key, value) in &req.query {
            request = request.query(key, value);
        }
        if let Some(token) = self.auth.token() {
            request = request.set("Authorization", &format!("Bearer {}", token.expose()));
        }
        log::trace!("{} {url}", req.method);
        let result = match (req.method, req.body) {
            // A JSON merge patch (RFC 7386): only the fields in the body change.
            ("PATCH", Some(body)) => request
                .set("Content-Type", "application/merge-patch+json")
                .send_string(&body.to_string()),
            (_, Some(body)) => request.send_json(body),
            (_, None) => request.call(),
        };
        result.map_err(|e| self.classify(e, &url))
    }

    fn classify(&self, error: ureq::Error, url: &str) -> Failed {
        match error {
            ureq::Error::Status(code, response) => {
                let retry_after = response.header("Retry-After").and_then(parse_retry_after);
                let mut body = Vec::new();
                // A body cut short still says something; the code is what matters.
                let _ = response
                    .into_reader()
                    .take(MAX_ERROR_BODY)
                    .read_to_end(&mut body);
                Failed::Status {
                    status: Status::parse(code, &body),
                    retry_after,
                }
            }
            ureq::Error::Transport(transport) => self.classify_transport(transport, url),
        }
    }

    fn classify_transport(&self, transport: ureq::Transport, url: &str) -> Failed {
        if let Some(source) = find_tls_error(&transport) {
            return Failed::Fatal(KubeError::Tls {
                host: self.endpoint.authority.clone(),
                source,
            });
        }
        let url = url.to_string();
        match transport.kind() {
            ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed => {
                Failed::NotSent(KubeError::Connect {
                    url,
                    source: Box::new(transport),
                })
            }
            ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => {
                Failed::Fatal(KubeError::Connect {
                    url,
                    source: Box::new(transport),
                })
            }
            _ => Failed::Lost(KubeError::Transfer {
                url,
                source: Box::new(transport),
            }),
        }
    }

    fn decode(&self, response: ureq::Response, req: &Req) -> Result<Value, KubeError> {
        let url = self.url(&req.path);
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .map_err(|e| KubeError::Transfer {
                url: url.clone(),
                source: Box::new(e),
            })?;
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|source| KubeError::Decode { url, source })
    }
}

fn is_already_exists(failed: &Failed) -> bool {
    matches!(failed, Failed::Status { status, .. } if status.code == 409)
}

/// Whether a failed create may have created the object.
fn create_fate(failed: &Failed) -> CreateFate {
    match failed {
        Failed::NotSent(_) => CreateFate::NotCreated,
        Failed::Status { status, .. } if status.code == 429 => CreateFate::NotCreated,
        Failed::Status { status, .. } if status.code >= 500 || status.reason == "ServerTimeout" => {
            CreateFate::Unknown
        }
        Failed::Lost(_) => CreateFate::Unknown,
        _ => CreateFate::Final,
    }
}

/// `Retry-After` in seconds; the HTTP-date form is not used by the API server.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The rustls error behind a failed connection, when the TLS handshake is what failed.
fn find_tls_error(error: &(dyn StdError + 'static)) -> Option<rustls::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        let inner = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref());
        if let Some(tls) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Some(tls.clone());
        }
        current = e.source();
    }
    None
}

/// Percent-encodes a path segment or a query value (everything but RFC 3986 unreserved).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_up_to_two() {
        let policy = RetryPolicy::default();
        let waits: Vec<_> = (1..=4).map(|a| policy.delay(a, None).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 2000]);
    }

    #[test]
    fn retry_after_wins_over_backoff_up_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(600))),
            MAX_RETRY_AFTER
        );
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn create_is_resent_only_when_it_certainly_did_not_happen() {
        let status = |code, reason: &str| Failed::Status {
            status: Status {
                code,
                reason: reason.into(),
                ..Status::default()
            },
            retry_after: None,
        };
        assert!(matches!(
            create_fate(&status(429, "")),
            CreateFate::NotCreated
        ));
        assert!(matches!(
            create_fate(&status(504, "Timeout")),
            CreateFate::Unknown
        ));
        assert!(matches!(
            create_fate(&status(500, "InternalError")),
            CreateFate::Unknown
        ));
        assert!(matches!(
            create_fate(&status(403, "Forbidden")),
            CreateFate::Final
        ));
        assert!(matches!(
            create_fate(&status(422, "Invalid")),
            CreateFate::Final
        ));
    }

    #[test]
    fn encodes_everything_but_unreserved_characters() {
        assert_eq!(encode("metadata.name=ci-1"), "metadata.name%3Dci-1");
        assert_eq!(encode("echo 'é'&"), "echo%20%27%C3%A9%27%26");
    }
}
