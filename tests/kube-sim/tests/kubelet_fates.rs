//! The scripted pod fates of the simulated kubelet (needs root).

mod kubelet_common;

use kubelet_common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn waiting_reason(status: &Value, index: usize) -> Option<&str> {
    status["containerStatuses"][index]["state"]["waiting"]["reason"].as_str()
}

fn has_event(node: &Node, pod: &str, kind: &str, reason: &str, message: &str) -> bool {
    let events = node.sink.events(pod);
    events
        .iter()
        .any(|e| e.1 == kind && e.2 == reason && e.3.contains(message))
}

#[test]
fn an_unparsable_image_waits_in_invalid_image_name() {
    let node = Node::new();
    node.kubelet.start_pod(&pod(
        "bad-image",
        json!([sleeper("build", "node:10:16.0")]),
        json!([]),
    ));
    let status = node.sink.wait_status("bad-image", |s| {
        waiting_reason(s, 0).is_some_and(|r| r != "ContainerCreating")
    });

    assert_eq!(waiting_reason(&status, 0), Some("InvalidImageName"));
    let message = status["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("couldn't parse image reference \"node:10:16.0\""),
        "{message}"
    );
    assert_eq!(status["phase"], "Pending");
    assert!(has_event(
        &node,
        "bad-image",
        "Warning",
        "Failed",
        "InvalidImageName"
    ));
}

#[test]
fn a_pull_error_turns_into_image_pull_backoff() {
    let node = Node::new();
    node.kubelet.start_pod(&pod(
        "pull",
        json!([sleeper("build", "sim/pull-error")]),
        json!([]),
    ));

    let first = node
        .sink
        .wait_status("pull", |s| waiting_reason(s, 0) == Some("ErrImagePull"));
    assert_eq!(first["phase"], "Pending");
    let later = node
        .sink
        .wait_status("pull", |s| waiting_reason(s, 0) == Some("ImagePullBackOff"));
    let message = later["containerStatuses"][0]["state"]["waiting"]["message"].as_str();
    assert_eq!(message, Some("Back-off pulling image \"sim/pull-error\""));
    assert!(has_event(
        &node,
        "pull",
        "Warning",
        "Failed",
        "Error: ErrImagePull"
    ));
    assert!(has_event(
        &node,
        "pull",
        "Warning",
        "Failed",
        "Error: ImagePullBackOff"
    ));
    assert!(has_event(
        &node,
        "pull",
        "Normal",
        "BackOff",
        "Back-off pulling image"
    ));
}

#[test]
fn a_missing_secret_is_a_config_error_until_it_appears() {
    let node = Node::new();
    let container = json!({"name": "build", "image": "alpine", "command": ["sleep", "3600"],
        "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "x", "key": "t"}}}]});
    node.kubelet
        .start_pod(&pod("cfg", json!([container]), json!([])));

    let status = node.sink.wait_status("cfg", |s| {
        waiting_reason(s, 0) == Some("CreateContainerConfigError")
    });
    let message = status["containerStatuses"][0]["state"]["waiting"]["message"].as_str();
    assert_eq!(message, Some("secret \"x\" not found"));
    assert!(has_event(
        &node,
        "cfg",
        "Warning",
        "Failed",
        "Error: secret \"x\" not found"
    ));

    node.sink
        .put("secrets", "x", json!({"data": {"t": "dG9rZW4="}}));
    node.sink.wait_phase("cfg", "Running");
    let (out, _, _) = node.sh("cfg", "build", "printf %s \"$T\"");
    assert_eq!(out, "token");
}

#[test]
fn a_missing_config_map_volume_is_a_config_error() {
    let node = Node::new();
    let container = json!({"name": "build", "image": "alpine", "command": ["sleep", "3600"],
        "volumeMounts": [{"name": "cm", "mountPath": "/cm"}]});
    let volumes = json!([{"name": "cm", "configMap": {"name": "settings"}}]);
    node.kubelet
        .start_pod(&pod("cfgvol", json!([container]), volumes));

    let status = node.sink.wait_status("cfgvol", |s| {
        waiting_reason(s, 0) == Some("CreateContainerConfigError")
    });
    let message = status["containerStatuses"][0]["state"]["waiting"]["message"].as_str();
    assert_eq!(message, Some("configmap \"settings\" not found"));
}

#[test]
fn a_node_selector_that_matches_no_label_leaves_the_pod_unschedulable() {
    let node = Node::new();
    let mut spec = pod("unsched", json!([sleeper("build", "alpine")]), json!([]));
    spec["spec"]["nodeSelector"] = json!({"disk": "hdd"});
    node.kubelet.start_pod(&spec);

    let status = node.sink.wait_phase("unsched", "Pending");
    let condition = &status["conditions"][0];
    assert_eq!(condition["type"], "PodScheduled");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "Unschedulable");
    assert_eq!(
        condition["message"],
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    );
    assert!(status.get("containerStatuses").is_none());
    assert!(has_event(
        &node,
        "unsched",
        "Warning",
        "FailedScheduling",
        "0/1 nodes"
    ));
    let refused = node
        .kubelet
        .exec("ci", "unsched", "build", &["true".into()], false);
    assert_eq!(
        refused.unwrap_err().message,
        "pod unsched does not have a host assigned"
    );

    let mut fits = pod("fits", json!([sleeper("build", "alpine")]), json!([]));
    fits["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    node.kubelet.start_pod(&fits);
    node.sink.wait_phase("fits", "Running");
}

#[test]
fn a_slow_start_stays_container_creating_for_its_delay() {
    let node = Node::new();
    let started = Instant::now();
    node.kubelet.start_pod(&pod(
        "slow",
        json!([sleeper("build", "sim/slow-start:1")]),
        json!([]),
    ));
    node.sink.wait_phase("slow", "Running");

    assert!(started.elapsed() >= Duration::from_secs(1));
    let statuses = node.sink.statuses("slow");
    assert_eq!(waiting_reason(&statuses[0], 0), Some("ContainerCreating"));
}

#[test]
fn oom_after_kills_the_container_with_reason_oom_killed() {
    let node = Node::new();
    let containers = json!([
        sleeper("build", "alpine"),
        sleeper("svc-0", "sim/oom-after:0.3")
    ]);
    node.kubelet.start_pod(&pod("oom", containers, json!([])));

    let status = node.sink.wait_status("oom", |s| {
        s["containerStatuses"][1]["state"]["terminated"].is_object()
    });
    let term = &status["containerStatuses"][1]["state"]["terminated"];
    assert_eq!(term["reason"], "OOMKilled");
    assert_eq!(term["exitCode"], 137);
    assert_eq!(status["phase"], "Running");
    assert!(status["containerStatuses"][0]["state"]["running"].is_object());
}

#[test]
fn evict_after_fails_the_pod_as_evicted() {
    let node = Node::new();
    node.kubelet.start_pod(&pod(
        "evict",
        json!([sleeper("build", "sim/evict-after:0.3")]),
        json!([]),
    ));
    node.sink.wait_phase("evict", "Running");

    let status = node.sink.wait_phase("evict", "Failed");
    assert_eq!(status["reason"], "Evicted");
    assert_eq!(status["message"], "The node was low on resource: memory.");
    let disruption = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "DisruptionTarget" && c["status"] == "True");
    assert!(disruption, "{status:#}");
    assert!(has_event(
        &node,
        "evict",
        "Warning",
        "Evicted",
        "low on resource: memory"
    ));
    let ended = node.sink.wait_status("evict", |s| {
        s["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    });
    assert_eq!(ended["phase"], "Failed");
}

#[test]
fn exit_fate_terminates_the_container_before_the_pod_runs() {
    let node = Node::new();
    let containers = json!([sleeper("build", "sim/exit:3"), sleeper("helper", "alpine")]);
    node.kubelet.start_pod(&pod("early", containers, json!([])));

    let status = node.sink.wait_status("early", |s| {
        s["containerStatuses"][0]["state"]["terminated"].is_object()
    });
    let term = &status["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].as_i64(), term["reason"].as_str()),
        (Some(3), Some("Error"))
    );
    assert_eq!(status["phase"], "Pending");
    assert_eq!(waiting_reason(&status, 1), Some("ContainerCreating"));
}

#[test]
fn an_init_container_with_a_missing_secret_shows_the_config_error() {
    let node = Node::new();
    let init = json!({"name": "prepare", "image": "alpine", "command": ["true"],
        "envFrom": [{"secretRef": {"name": "creds"}}]});
    let mut spec = pod("init-cfg", json!([sleeper("build", "alpine")]), json!([]));
    spec["spec"]["initContainers"] = json!([init]);
    node.kubelet.start_pod(&spec);

    let status = node.sink.wait_status("init-cfg", |s| {
        s["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let waiting = &status["initContainerStatuses"][0]["state"]["waiting"];
    assert_eq!(waiting["message"], "secret \"creds\" not found");
    assert_eq!(waiting_reason(&status, 0), Some("PodInitializing"));
    assert_eq!(status["phase"], "Pending");
}

#[test]
fn a_command_that_cannot_start_is_a_start_error() {
    let node = Node::new();
    let container = json!({"name": "build", "image": "alpine", "command": ["no-such-program-xyz"]});
    node.kubelet
        .start_pod(&pod("nostart", json!([container]), json!([])));

    let status = node.sink.wait_phase("nostart", "Failed");
    let term = &status["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["reason"], "StartError");
    assert_eq!(term["exitCode"], 128);
    let message = term["message"].as_str().unwrap();
    assert!(message.contains("exec: \"no-such-program-xyz\": executable file not found in $PATH"));
    assert!(has_event(
        &node,
        "nostart",
        "Warning",
        "Failed",
        "executable file not found"
    ));
}
