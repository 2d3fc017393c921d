//! Injected faults: failing the next requests of a verb, latency, refused watches, expired
//! watches, and exec streams cut after some bytes.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::status::ApiError;

/// How an injected failure answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 500 InternalError.
    ServerError,
    /// 429 TooManyRequests with `Retry-After` in seconds, a Status body.
    TooManyRequests { retry_after: u64 },
    /// 429 with `Retry-After` and a plain-text body, as API priority and fairness answers.
    Throttled { retry_after: u64 },
    /// 410 Expired, as an HTTP answer on any verb.
    Expired,
    /// The request takes effect, then the answer is 504 Timeout (a create that may have
    /// happened: the client must look before it tries again).
    TimeoutAfterCommit,
}

impl Failure {
    /// The error answered for this failure.
    pub fn error(self) -> ApiError {
        match self {
            Failure::ServerError => ApiError::internal("injected failure"),
            Failure::TooManyRequests { retry_after } => ApiError::too_many_requests(retry_after),
            Failure::Throttled { retry_after } => {
                let mut e = ApiError::too_many_requests(retry_after);
                e.plain_text = true;
                e
            }
            Failure::Expired => ApiError::expired(0),
            Failure::TimeoutAfterCommit => ApiError::timeout(),
        }
    }
}

/// How watch requests are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchMode {
    /// Watches work; a too-old version ends the stream with an ERROR event carrying 410.
    #[default]
    Normal,
    /// Watches work; a too-old version is an HTTP 410 answer.
    ExpiredAsHttp,
    /// Every watch is refused with 405 MethodNotAllowed (clients must poll).
    Refuse,
    /// Every watch answers 200 and ends at once with no event.
    CloseAtOnce,
}

#[derive(Debug, Clone)]
struct Pending {
    verb: String,
    remaining: u32,
    failure: Failure,
}

#[derive(Debug, Default)]
struct State {
    pending: Vec<Pending>,
    latency: Duration,
    watch: WatchMode,
    exec_drop_after: Option<u64>,
}

/// The fault switchboard shared by every connection.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers the next `count` requests of `verb` (`get`, `list`, `watch`, `create`, `delete`,
    /// `exec`, or `*` for any) with `failure`.
    pub fn fail_next(&self, verb: &str, count: u32, failure: Failure) {
        let pending = Pending {
            verb: verb.to_string(),
            remaining: count,
            failure,
        };
        self.lock().pending.push(pending);
    }

    /// Takes one injected failure for a request of `verb`, if any is armed.
    pub fn take_failure(&self, verb: &str) -> Option<Failure> {
        let mut state = self.lock();
        let slot = state
            .pending
            .iter_mut()
            .find(|p| p.remaining > 0 && (p.verb == verb || p.verb == "*"))?;
        slot.remaining -= 1;
        let failure = slot.failure;
        state.pending.retain(|p| p.remaining > 0);
        Some(failure)
    }

    /// Delay added before every API answer.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The delay added before every API answer.
    pub fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// Changes how watches are served.
    pub fn set_watch_mode(&self, mode: WatchMode) {
        self.lock().watch = mode;
    }

    /// How watches are served.
    pub fn watch_mode(&self) -> WatchMode {
        self.lock().watch
    }

    /// Cuts every new exec WebSocket after this many output bytes (`None`: never).
    pub fn set_exec_drop_after(&self, bytes: Option<u64>) {
        self.lock().exec_drop_after = bytes;
    }

    /// The exec cut-off, if set.
    pub fn exec_drop_after(&self) -> Option<u64> {
        self.lock().exec_drop_after
    }

    /// Clears every fault.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_answers_exactly_the_next_count_requests_of_its_verb() {
        let f = Faults::default();
        f.fail_next("create", 2, Failure::TooManyRequests { retry_after: 3 });
        assert!(f.take_failure("get").is_none());
        let e = f.take_failure("create").unwrap().error();
        assert_eq!(e.code, 429);
        assert_eq!(
            e.headers,
            vec![("Retry-After".to_string(), "3".to_string())]
        );
        assert!(f.take_failure("create").is_some());
        assert!(f.take_failure("create").is_none());
    }
}
