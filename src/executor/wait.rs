//! Waiting for the job's pod to run: a watch (or a GET every `poll_interval` when the cluster
//! refuses watches), failing at once on a failure that will not clear, and at `poll_timeout`
//! on a pod that never starts.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::executor::pod_state::{start_state, StartState};
use crate::executor::stop::StopSignal;
use crate::kube::{Client, KubeError, PodEvent};
use crate::trace::TraceWriter;

/// How long one wait on the watch lasts before the deadline and stop signal are checked.
const WATCH_TICK: Duration = Duration::from_millis(200);

/// Why the pod did not come up.
#[derive(Debug)]
pub enum WaitError {
    /// A failure that will not clear (bad image, missing secret, terminated container).
    Failed(String),
    /// The pod vanished or failed for a reason outside the job's control (eviction, deletion).
    Lost(String),
    /// `poll_timeout` passed; the last thing the pod was waiting for.
    Timeout { waited: Duration, last: String },
    /// The job was stopped while waiting.
    Stopped,
    /// The API failed.
    Api(KubeError),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Failed(message) | WaitError::Lost(message) => f.write_str(message),
            WaitError::Timeout { waited, last } => write!(
                f,
                "timed out after {}s waiting for the pod to start: {last}",
                waited.as_secs()
            ),
            WaitError::Stopped => f.write_str("stopped while waiting for the pod to start"),
            WaitError::Api(err) => write!(f, "waiting for the pod: {err}"),
        }
    }
}

impl std::error::Error for WaitError {}

/// What the wait needs to know.
pub struct WaitFor<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub poll_interval: Duration,
    pub poll_timeout: Duration,
}

/// Waits until the pod runs with its `build` and `helper` containers up, and returns it.
pub fn wait_for_pod(
    w: &WaitFor,
    trace: &TraceWriter,
    stop: &StopSignal,
) -> Result<Value, WaitError> {
    let started = Instant::now();
    let deadline = started + w.poll_timeout;
    let mut watch = w
        .client
        .watch_pod(w.namespace, w.pod)
        .map_err(WaitError::Api)?;
    watch.set_poll_interval(w.poll_interval);
    let mut last = String::from("pod is Pending");
    loop {
        if stop.reason().is_some() {
            return Err(WaitError::Stopped);
        }
        if Instant::now() >= deadline {
            print_warning_events(w, trace);
            return Err(WaitError::Timeout {
                waited: started.elapsed(),
                last,
            });
        }
        let event = watch.next(WATCH_TICK).map_err(WaitError::Api)?;
        let pod = match event {
            None => continue,
            Some(PodEvent::Deleted(_)) => {
                return Err(WaitError::Lost(format!(
                    "pod {} was deleted before it ran",
                    w.pod
                )))
            }
            Some(PodEvent::Updated(pod)) => pod,
        };
        match start_state(&pod) {
            StartState::Ready => return Ok(pod),
            StartState::Starting(text) | StartState::Unschedulable(text) => {
                if text != last {
                    trace.say(&format!(
                        "Waiting for pod {}/{}: {text}",
                        w.namespace, w.pod
                    ));
                    last = text;
                }
            }
            StartState::Failed(message) => {
                print_warning_events(w, trace);
                return Err(classify_failure(&pod, message));
            }
        }
    }
}

/// Prints the pod's Warning events, which often say more than its status.
pub fn print_warning_events(w: &WaitFor, trace: &TraceWriter) {
    let events = match w.client.list_events(w.namespace, w.pod) {
        Ok(events) => events,
        Err(err) => {
            log::debug!("cannot list events of pod {}/{}: {err}", w.namespace, w.pod);
            return;
        }
    };
    for event in events.iter().filter(|e| e["type"] == "Warning") {
        let reason = event["reason"].as_str().unwrap_or("");
        let message = event["message"].as_str().unwrap_or("");
        trace.say(&format!("WARNING: pod event {reason}: {message}"));
    }
}

fn classify_failure(pod: &Value, message: String) -> WaitError {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting || phase == Some("Failed") {
        WaitError::Lost(message)
    } else {
        WaitError::Failed(message)
    }
}
