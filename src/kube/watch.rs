//! Following one pod: a watch on its own thread, handing the pod's states over a channel.
//!
//! The thread GETs the pod first (its state and resourceVersion), then watches from there:
//! a watch that ends cleanly is started again from the last resourceVersion (one that ends at
//! once without an event after a fresh GET), BOOKMARK events only move that version on, and an expired version (HTTP 410 or an ERROR event with code 410)
//! leads to a fresh GET. When the server refuses watches (403, 405), the thread GETs the pod
//! every poll interval instead. Watch events: `staging/src/k8s.io/apimachinery/pkg/watch/
//! watch.go`; expiry: `staging/src/k8s.io/apiserver/pkg/storage/errors.go`.

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::{KubeError, Status};
use super::rest::{encode, Req};
use super::Client;

/// How long the server keeps one watch open before it ends it cleanly (240 s).
pub const WATCH_SECONDS: u64 = 240;
/// Default interval of the GET fallback when watches are refused (3 s).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(3);
/// Most bytes read from one watch request (16 MiB); the watch then starts again.
const MAX_WATCH_BYTES: u64 = 16 << 20;

/// A change of the watched pod.
#[derive(Debug, Clone, PartialEq)]
pub enum PodEvent {
    /// The pod's current state (first the state when the watch started).
    Updated(Value),
    /// The pod is gone; its last known state. No event follows.
    Deleted(Value),
}

/// The receiving end of a pod watch. Dropping it stops the watch thread at its next event, poll
/// or read timeout (at most about 90 s later).
pub struct PodWatch {
    pod: String,
    events: Receiver<Result<PodEvent, KubeError>>,
    poll_ms: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        // The thread may have nothing to send for a long time: tell it nobody listens.
        self.closed.store(true, Ordering::Relaxed);
    }
}

impl PodWatch {
    /// The next event, waiting at most `timeout`; `Ok(None)` when nothing came in time. After
    /// [`PodEvent::Deleted`] or an error, the watch is over ([`KubeError::WatchStopped`]).
    pub fn next(&mut self, timeout: Duration) -> Result<Option<PodEvent>, KubeError> {
        match self.events.recv_timeout(timeout) {
            Ok(Ok(event)) => Ok(Some(event)),
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(KubeError::WatchStopped {
                pod: self.pod.clone(),
            }),
        }
    }

    /// Sets the interval of the GET fallback used when the server refuses watches (default 3 s).
    pub fn set_poll_interval(&self, interval: Duration) {
        let ms = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.poll_ms.store(ms, Ordering::Relaxed);
    }
}

/// Starts the watch thread of pod `name`.
pub(crate) fn start(client: &Client, ns: &str, name: &str) -> Result<PodWatch, KubeError> {
    let (tx, rx) = mpsc::channel();
    let poll_ms = Arc::new(AtomicU64::new(DEFAULT_POLL_INTERVAL.as_millis() as u64));
    let closed = Arc::new(AtomicBool::new(false));
    let mut watcher = Watcher {
        closed: closed.clone(),
        client: client.clone(),
        ns: ns.to_string(),
        name: name.to_string(),
        tx,
        poll_ms: poll_ms.clone(),
        last: None,
        version: None,
    };
    thread::Builder::new()
        .name(format!("watch-{name}"))
        .spawn(move || watcher.run())
        .map_err(|source| KubeError::Spawn {
            what: format!("the watch of pod {name}"),
            source,
        })?;
    Ok(PodWatch {
        pod: name.to_string(),
        events: rx,
        poll_ms,
        closed,
    })
}

/// What to do after one watch request.
enum Flow {
    /// Watch again (from `version`, or after a GET when it is `None`).
    Again,
    /// The pod is gone or nobody listens any more.
    Stop,
}

struct Watcher {
    client: Client,
    ns: String,
    name: String,
    tx: Sender<Result<PodEvent, KubeError>>,
    poll_ms: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
    last: Option<Value>,
    version: Option<String>,
}

impl Watcher {
    fn run(&mut self) {
        if let Err(e) = self.follow() {
            let _ = self.tx.send(Err(e));
        }
    }

    fn follow(&mut self) -> Result<(), KubeError> {
        let policy = self.client.inner.transport.retry;
        let mut failures = 0;
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return Ok(());
            }
            if self.version.is_none() && matches!(self.refresh()?, Flow::Stop) {
                return Ok(());
            }
            match self.watch_once() {
                Ok(Flow::Again) => failures = 0,
                Ok(Flow::Stop) => return Ok(()),
                Err(e) if is_refused(&e) => {
                    log::debug!("watch of pod {} refused ({e}), polling instead", self.name);
                    return self.poll();
                }
                Err(e) if e.status().is_some_and(Status::is_expired) => self.version = None,
                Err(e) => {
                    failures += 1;
                    if failures >= policy.tries {
                        return Err(e);
                    }
                    log::debug!("watch of pod {} failed ({e}), starting it again", self.name);
                    thread::sleep(policy.min_backoff.saturating_mul(failures));
                }
            }
        }
    }

    /// GETs the pod and sends its state; a pod seen before and now missing was deleted.
    fn refresh(&mut self) -> Result<Flow, KubeError> {
        match self.client.get_pod(&self.ns, &self.name) {
            Ok(pod) => {
                self.version = resource_version(&pod);
                let seen = self.last.as_ref().and_then(resource_version);
                if self.version.is_some() && self.version == seen {
                    return Ok(Flow::Again);
                }
                Ok(self.send_update(pod))
            }
            Err(e) if e.is_not_found() && self.last.is_some() => Ok(self.send_deleted(None)),
            Err(e) => Err(e),
        }
    }

    /// One watch request, read to its end.
    fn watch_once(&mut self) -> Result<Flow, KubeError> {
        let started = Instant::now();
        let req = self.watch_request();
        let stream = self.client.inner.transport.stream(&req)?;
        let mut lines = 0;
        for line in stream.take(MAX_WATCH_BYTES).split(b'\n') {
            let line = match line {
                Ok(line) => line,
                Err(e) => {
                    log::debug!("watch of pod {} ended: {e}", self.name);
                    break;
                }
            };
            lines += 1;
            if let Flow::Stop = self.handle_line(&line)? {
                return Ok(Flow::Stop);
            }
            if self.version.is_none() {
                return Ok(Flow::Again);
            }
        }
        if lines == 0 && started.elapsed() < Duration::from_secs(1) {
            // A watch closed at once says nothing about the pod (some proxies end every watch
            // early): read the pod before watching again, after a pause.
            thread::sleep(self.client.inner.transport.retry.min_backoff);
            self.version = None;
        }
        Ok(Flow::Again)
    }

    fn watch_request(&self) -> Req<'static> {
        let mut query = vec![
            ("fieldSelector", format!("metadata.name={}", self.name)),
            ("watch", "true".to_string()),
            ("timeoutSeconds", WATCH_SECONDS.to_string()),
            ("allowWatchBookmarks", "true".to_string()),
        ];
        if let Some(version) = &self.version {
            query.push(("resourceVersion", version.clone()));
        }
        Req {
            method: "GET",
            path: format!("/api/v1/namespaces/{}/pods", encode(&self.ns)),
            query,
            body: None,
            action: format!("watch pod {} in namespace {}", self.name, self.ns),
        }
    }

    /// One event line: forwards pod states, follows versions, reports errors.
    fn handle_line(&mut self, line: &[u8]) -> Result<Flow, KubeError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(Flow::Again);
        }
        let event: Value = serde_json::from_slice(line).map_err(|source| KubeError::Decode {
            url: format!("watch of pod {}", self.name),
            source,
        })?;
        let object = event.get("object").cloned().unwrap_or(Value::Null);
        match event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "ADDED" | "MODIFIED" => {
                self.version = resource_version(&object).or(self.version.take());
                Ok(self.send_update(object))
            }
            "DELETED" => Ok(self.send_deleted(Some(object))),
            "BOOKMARK" => {
                self.version = resource_version(&object).or(self.version.take());
                Ok(Flow::Again)
            }
            "ERROR" => self.watch_error(&object),
            other => {
                log::debug!("watch of pod {}: ignoring event type {other:?}", self.name);
                Ok(Flow::Again)
            }
        }
    }

    fn watch_error(&mut self, object: &Value) -> Result<Flow, KubeError> {
        let status = Status::from_value(object).unwrap_or_default();
        if status.is_expired() {
            log::debug!(
                "watch of pod {}: resourceVersion expired, reading the pod",
                self.name
            );
            self.version = None;
            return Ok(Flow::Again);
        }
        Err(KubeError::Api {
            action: format!("watch pod {}", self.name),
            status: Box::new(status),
        })
    }

    /// The fallback when watches are refused: a GET every poll interval.
    fn poll(&mut self) -> Result<(), KubeError> {
        loop {
            thread::sleep(Duration::from_millis(self.poll_ms.load(Ordering::Relaxed)));
            if self.closed.load(Ordering::Relaxed) {
                return Ok(());
            }
            let before = self.version.clone();
            match self.client.get_pod(&self.ns, &self.name) {
                Ok(pod) => {
                    self.version = resource_version(&pod);
                    if self.version.is_some() && self.version == before {
                        continue;
                    }
                    if let Flow::Stop = self.send_update(pod) {
                        return Ok(());
                    }
                }
                Err(e) if e.is_not_found() => {
                    self.send_deleted(None);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn send_update(&mut self, pod: Value) -> Flow {
        self.last = Some(pod.clone());
        match self.tx.send(Ok(PodEvent::Updated(pod))) {
            Ok(()) => Flow::Again,
            Err(_) => Flow::Stop,
        }
    }

    fn send_deleted(&mut self, pod: Option<Value>) -> Flow {
        let pod = pod.or_else(|| self.last.take()).unwrap_or(Value::Null);
        let _ = self.tx.send(Ok(PodEvent::Deleted(pod)));
        Flow::Stop
    }
}

fn resource_version(object: &Value) -> Option<String> {
    let version = object.pointer("/metadata/resourceVersion")?.as_str()?;
    (!version.is_empty()).then(|| version.to_string())
}

/// Whether the server does not allow watching (so polling is the way).
fn is_refused(e: &KubeError) -> bool {
    e.status()
        .is_some_and(|s| matches!(s.code, 403 | 405 | 501))
}
