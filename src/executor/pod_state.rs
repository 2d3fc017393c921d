//! Reading a pod's status: is it ready for the first stage, still starting, or failed for a
//! reason that will not go away? Pure functions over the pod JSON, so every rule is tested
//! without a cluster.

use serde_json::Value;

/// Waiting reasons that never clear on their own: fail the job at first sight.
const FATAL_WAITING_REASONS: &[&str] = &[
    "InvalidImageName",
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
    "PreStartHookError",
];

/// What the pod's status says while the runner waits for it to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartState {
    /// Running, and the `build` and `helper` containers are running: stages may begin.
    Ready,
    /// Still starting; the text says what it waits for (printed when it changes).
    Starting(String),
    /// Not schedulable yet; the scheduler's message. Fails only at `poll_timeout`.
    Unschedulable(String),
    /// A failure that will not clear: fail the job now with this message.
    Failed(String),
}

/// What the pod's status says while stages run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Nothing wrong.
    Healthy,
    /// The pod or one of its containers is gone or dying: the job fails with this message.
    Broken(String),
}

/// Classifies a pod while waiting for it to start.
pub fn start_state(pod: &Value) -> StartState {
    if let Some(message) = deletion_or_eviction(pod) {
        return StartState::Failed(message);
    }
    if let Some(message) = failed_phase(pod) {
        return StartState::Failed(message);
    }
    for status in all_container_statuses(pod) {
        if let Some(message) = fatal_container_state(status) {
            return StartState::Failed(message);
        }
    }
    if let Some(message) = unschedulable(pod) {
        return StartState::Unschedulable(message);
    }
    ready_or_starting(pod)
}

/// Classifies a pod while the job's stages run: any terminated container, a deletion, an
/// eviction or a failed phase breaks the job.
pub fn run_state(pod: &Value) -> RunState {
    if let Some(message) = deletion_or_eviction(pod) {
        return RunState::Broken(message);
    }
    if let Some(message) = failed_phase(pod) {
        return RunState::Broken(message);
    }
    for status in container_statuses(pod, "containerStatuses") {
        if let Some(terminated) = status.pointer("/state/terminated") {
            return RunState::Broken(terminated_message(status, terminated));
        }
    }
    RunState::Healthy
}

/// The message for a pod that vanished from the API while the job ran.
pub fn deleted_message(name: &str) -> String {
    format!("pod {name} was deleted while the job was running")
}

fn ready_or_starting(pod: &Value) -> StartState {
    let phase = str_at(pod, "/status/phase").unwrap_or("Pending");
    if phase != "Running" {
        return StartState::Starting(waiting_summary(pod, phase));
    }
    let statuses: Vec<&Value> = container_statuses(pod, "containerStatuses").collect();
    let not_running: Vec<&str> = ["build", "helper"]
        .into_iter()
        .filter(|name| !container_running(&statuses, name))
        .collect();
    if not_running.is_empty() {
        StartState::Ready
    } else {
        StartState::Starting(format!(
            "waiting for containers {} to run",
            not_running.join(", ")
        ))
    }
}

fn container_running(statuses: &[&Value], name: &str) -> bool {
    statuses.iter().any(|status| {
        str_at(status, "/name") == Some(name) && status.pointer("/state/running").is_some()
    })
}

fn waiting_summary(pod: &Value, phase: &str) -> String {
    let waiting: Vec<String> = all_container_statuses(pod)
        .filter_map(|status| {
            let reason = str_at(status, "/state/waiting/reason")?;
            Some(format!(
                "{}: {reason}",
                str_at(status, "/name").unwrap_or("?")
            ))
        })
        .collect();
    if waiting.is_empty() {
        format!("pod is {phase}")
    } else {
        format!("pod is {phase} ({})", waiting.join(", "))
    }
}

fn deletion_or_eviction(pod: &Value) -> Option<String> {
    let name = str_at(pod, "/metadata/name").unwrap_or("?");
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Some(format!("pod {name} is being deleted"));
    }
    let conditions = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)?;
    let disruption = conditions.iter().find(|c| {
        str_at(c, "/type") == Some("DisruptionTarget") && str_at(c, "/status") == Some("True")
    })?;
    let reason = str_at(disruption, "/reason").unwrap_or("DisruptionTarget");
    let message = str_at(disruption, "/message").unwrap_or("");
    Some(join_message(
        &format!("pod {name} is being evicted ({reason})"),
        message,
    ))
}

fn failed_phase(pod: &Value) -> Option<String> {
    let phase = str_at(pod, "/status/phase")?;
    if phase != "Failed" && phase != "Succeeded" {
        return None;
    }
    let name = str_at(pod, "/metadata/name").unwrap_or("?");
    let reason = str_at(pod, "/status/reason");
    let message = str_at(pod, "/status/message").unwrap_or("");
    let head = match (phase, reason) {
        (_, Some("Evicted")) => format!("pod {name} was evicted"),
        ("Failed", Some(reason)) => format!("pod {name} failed ({reason})"),
        ("Failed", None) => format!("pod {name} failed"),
        _ => format!("pod {name} ended (phase {phase})"),
    };
    Some(join_message(&head, message))
}

fn fatal_container_state(status: &Value) -> Option<String> {
    let name = str_at(status, "/name").unwrap_or("?");
    if let Some(terminated) = status.pointer("/state/terminated") {
        return Some(terminated_message(status, terminated));
    }
    let reason = str_at(status, "/state/waiting/reason")?;
    if !FATAL_WAITING_REASONS.contains(&reason) {
        return None;
    }
    let message = str_at(status, "/state/waiting/message").unwrap_or("");
    let image = str_at(status, "/image").unwrap_or("");
    let head = if image.is_empty() {
        format!("container {name} cannot start: {reason}")
    } else {
        format!("container {name} (image {image}) cannot start: {reason}")
    };
    Some(join_message(&head, message))
}

fn terminated_message(status: &Value, terminated: &Value) -> String {
    let name = str_at(status, "/name").unwrap_or("?");
    let code = terminated.get("exitCode").and_then(Value::as_i64);
    let reason = str_at(terminated, "/reason");
    let message = str_at(terminated, "/message").unwrap_or("");
    let head = match (code, reason) {
        (Some(code), Some(reason)) => {
            format!("container {name} terminated: exit code {code}, reason {reason}")
        }
        (Some(code), None) => format!("container {name} terminated (exit code {code})"),
        (None, Some(reason)) => format!("container {name} terminated: reason {reason}"),
        (None, None) => format!("container {name} terminated"),
    };
    join_message(&head, message)
}

fn unschedulable(pod: &Value) -> Option<String> {
    let conditions = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)?;
    let scheduled = conditions
        .iter()
        .find(|c| str_at(c, "/type") == Some("PodScheduled"))?;
    if str_at(scheduled, "/status") != Some("False") {
        return None;
    }
    let reason = str_at(scheduled, "/reason").unwrap_or("Unschedulable");
    let message = str_at(scheduled, "/message").unwrap_or("");
    Some(join_message(
        &format!("pod cannot be scheduled ({reason})"),
        message,
    ))
}

fn all_container_statuses(pod: &Value) -> impl Iterator<Item = &Value> {
    container_statuses(pod, "initContainerStatuses")
        .chain(container_statuses(pod, "containerStatuses"))
}

fn container_statuses<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod.get("status")
        .and_then(|status| status.get(field))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn join_message(head: &str, message: &str) -> String {
    if message.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {message}")
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "ci-1"}, "status": status})
    }

    #[test]
    fn invalid_image_name_fails_at_first_sight_with_reason_and_message() {
        let p = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "build",
            "image": "node:10:16.0", "state": {"waiting": {"reason": "InvalidImageName",
            "message": "couldn't parse image reference \"node:10:16.0\""}}}]}),
        );
        assert_eq!(
            start_state(&p),
            StartState::Failed(
                "container build (image node:10:16.0) cannot start: InvalidImageName: \
                 couldn't parse image reference \"node:10:16.0\""
                    .into()
            )
        );
    }

    #[test]
    fn create_container_config_error_in_init_container_fails() {
        let p = pod(
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "init",
            "state": {"waiting": {"reason": "CreateContainerConfigError",
            "message": "secret \"x\" not found"}}}]}),
        );
        assert_eq!(
            start_state(&p),
            StartState::Failed(
                "container init cannot start: CreateContainerConfigError: secret \"x\" not found"
                    .into()
            )
        );
    }

    #[test]
    fn container_creating_is_still_starting() {
        let p = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "build",
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(
            start_state(&p),
            StartState::Starting("pod is Pending (build: ContainerCreating)".into())
        );
    }

    #[test]
    fn build_terminated_before_running_fails_at_once() {
        let p = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "build",
            "state": {"terminated": {"exitCode": 1}}}]}),
        );
        assert_eq!(
            start_state(&p),
            StartState::Failed("container build terminated (exit code 1)".into())
        );
    }

    #[test]
    fn unschedulable_reports_the_scheduler_message() {
        let p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available"}]}),
        );
        assert_eq!(
            start_state(&p),
            StartState::Unschedulable(
                "pod cannot be scheduled (Unschedulable): 0/3 nodes are available".into()
            )
        );
    }

    #[test]
    fn running_with_build_and_helper_running_is_ready() {
        let p = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "build", "state": {"running": {}}},
            {"name": "helper", "state": {"running": {}}}]}));
        assert_eq!(start_state(&p), StartState::Ready);
    }

    #[test]
    fn running_without_helper_running_keeps_waiting() {
        let p = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "build", "state": {"running": {}}},
            {"name": "helper", "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(
            start_state(&p),
            StartState::Starting("waiting for containers helper to run".into())
        );
    }

    #[test]
    fn oom_killed_service_breaks_a_running_job() {
        let p = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "build", "state": {"running": {}}},
            {"name": "svc-0", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}));
        assert_eq!(
            run_state(&p),
            RunState::Broken("container svc-0 terminated: exit code 137, reason OOMKilled".into())
        );
    }

    #[test]
    fn eviction_breaks_a_running_job() {
        let p = pod(json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory."}));
        assert_eq!(
            run_state(&p),
            RunState::Broken("pod ci-1 was evicted: The node was low on resource: memory.".into())
        );
    }

    #[test]
    fn disruption_target_condition_breaks_a_running_job() {
        let p = pod(
            json!({"phase": "Running", "conditions": [{"type": "DisruptionTarget",
            "status": "True", "reason": "EvictionByEvictionAPI"}]}),
        );
        assert_eq!(
            run_state(&p),
            RunState::Broken("pod ci-1 is being evicted (EvictionByEvictionAPI)".into())
        );
    }

    #[test]
    fn deletion_timestamp_breaks_a_running_job() {
        let mut p = pod(json!({"phase": "Running"}));
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(
            run_state(&p),
            RunState::Broken("pod ci-1 is being deleted".into())
        );
    }

    #[test]
    fn healthy_running_pod_is_healthy() {
        let p = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "build", "state": {"running": {}}}]}));
        assert_eq!(run_state(&p), RunState::Healthy);
    }
}
