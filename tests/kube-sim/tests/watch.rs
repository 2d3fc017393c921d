//! Watches: initial state, changes after a version, timeouts, bookmarks, 410 in both forms.

mod common;

use std::time::{Duration, Instant};

use common::{call, pod, sim, watch_until};
use kube_sim::{Sim, SimOptions, WatchMode};
use serde_json::json;

#[test]
fn a_watch_without_version_starts_with_a_synthetic_added() {
    let sim = sim();
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("w1", "sleep 30")),
    );
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("w2", "sleep 30")),
    );
    let answer = call(
        &sim,
        "GET",
        "/api/v1/namespaces/ci/pods?watch=true&fieldSelector=metadata.name%3Dw1&timeoutSeconds=1",
        None,
    );
    assert_eq!(answer.code, 200);
    assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
    let events = answer.lines();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "w1");
    assert!(events
        .iter()
        .all(|e| e["object"]["metadata"]["name"] == "w1"));
}

#[test]
fn a_watch_from_a_version_replays_later_changes_and_ends_at_its_timeout() {
    let sim = sim();
    let created = call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/configmaps",
        Some(&json!({"metadata": {"name": "a"}})),
    )
    .json();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/configmaps",
        Some(&json!({"metadata": {"name": "b"}})),
    );
    call(&sim, "DELETE", "/api/v1/namespaces/ci/configmaps/a", None);
    let started = Instant::now();
    let answer = call(
        &sim,
        "GET",
        &format!("/api/v1/namespaces/ci/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1"),
        None,
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    let events = answer.lines();
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["object"]["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![("ADDED".into(), "b".into()), ("DELETED".into(), "a".into())]
    );
}

#[test]
fn a_pod_watch_sees_the_kubelet_move_it_to_running() {
    let sim = sim();
    let created = call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("w3", "sleep 30")),
    )
    .json();
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap();
    let path = format!(
        "/api/v1/namespaces/ci/pods?watch=true&resourceVersion={rv}&timeoutSeconds=60\
         &fieldSelector=metadata.name%3Dw3"
    );
    let events = watch_until(&sim, &path, |e| e["object"]["status"]["phase"] == "Running");
    assert!(events.iter().all(|e| e["type"] == "MODIFIED"));
    assert!(
        events
            .iter()
            .any(|e| e["object"]["status"]["phase"] == "Running"),
        "{events:?}"
    );
}

#[test]
fn bookmarks_come_when_allowed_and_the_watch_is_idle() {
    let options = SimOptions {
        bookmark_interval: Duration::from_millis(200),
        ..SimOptions::default()
    };
    let sim = Sim::start(options).unwrap();
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/configmaps",
        Some(&json!({"metadata": {"name": "a"}})),
    );
    let rv = sim.resource_version();
    let base = format!("/api/v1/namespaces/ci/configmaps?watch=true&resourceVersion={rv}");
    let with = call(
        &sim,
        "GET",
        &format!("{base}&timeoutSeconds=1&allowWatchBookmarks=true"),
        None,
    );
    let events = with.lines();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["type"] == "BOOKMARK"));
    assert_eq!(events[0]["object"]["kind"], "ConfigMap");
    assert_eq!(
        events[0]["object"]["metadata"]["resourceVersion"],
        rv.to_string()
    );
    let without = call(
        &sim,
        "GET",
        &format!(
            "/api/v1/namespaces/ci/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        ),
        None,
    );
    assert!(without.lines().is_empty());
}

#[test]
fn a_too_old_version_ends_the_watch_with_an_expired_error_event() {
    let sim = sim();
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/configmaps",
        Some(&json!({"metadata": {"name": "a"}})),
    );
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/configmaps",
        Some(&json!({"metadata": {"name": "b"}})),
    );
    sim.compact_history();
    let answer = call(
        &sim,
        "GET",
        "/api/v1/namespaces/ci/configmaps?watch=true&resourceVersion=1&timeoutSeconds=5",
        None,
    );
    assert_eq!(answer.code, 200);
    let events = answer.lines();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[test]
fn a_too_old_version_can_be_an_http_410() {
    let sim = sim();
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/configmaps",
        Some(&json!({"metadata": {"name": "a"}})),
    );
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/configmaps",
        Some(&json!({"metadata": {"name": "b"}})),
    );
    sim.compact_history();
    sim.set_watch_mode(WatchMode::ExpiredAsHttp);
    let answer = call(
        &sim,
        "GET",
        "/api/v1/namespaces/ci/configmaps?watch=true&resourceVersion=1",
        None,
    );
    assert_eq!(answer.code, 410);
    assert_eq!(answer.json()["reason"], "Expired");
    // The current version is still fine.
    let rv = sim.resource_version();
    let ok = call(
        &sim,
        "GET",
        &format!(
            "/api/v1/namespaces/ci/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        ),
        None,
    );
    assert_eq!(ok.code, 200);
}

#[test]
fn refused_watches_answer_405_and_closing_ones_end_at_once() {
    let sim = sim();
    sim.set_watch_mode(WatchMode::Refuse);
    let refused = call(&sim, "GET", "/api/v1/namespaces/ci/pods?watch=true", None);
    assert_eq!(refused.code, 405);
    assert_eq!(
        call(&sim, "GET", "/api/v1/namespaces/ci/pods", None).code,
        200
    );
    sim.set_watch_mode(WatchMode::CloseAtOnce);
    let started = Instant::now();
    let closed = call(
        &sim,
        "GET",
        "/api/v1/namespaces/ci/pods?watch=true&timeoutSeconds=30",
        None,
    );
    assert_eq!(closed.code, 200);
    assert!(closed.lines().is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_table_watch_wraps_each_object_in_a_table() {
    let sim = sim();
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("t1", "sleep 30")),
    );
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let answer = common::call_with(
        sim.addr(),
        "GET",
        "/api/v1/namespaces/ci/pods?watch=true&timeoutSeconds=1",
        &[("Accept", accept)],
        None,
    );
    let events = answer.lines();
    assert_eq!(events[0]["object"]["kind"], "Table");
    assert_eq!(events[0]["object"]["rows"][0]["cells"][0], "t1");
}

#[test]
fn a_pod_leaving_a_field_selection_reads_as_deleted() {
    let sim = sim();
    let created = call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("w4", "sleep 30")),
    );
    let rv = created.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!(
        "/api/v1/namespaces/ci/pods?watch=true&resourceVersion={rv}&timeoutSeconds=60\
         &fieldSelector=status.phase%3DPending"
    );
    let events = watch_until(&sim, &path, |e| e["type"] == "DELETED");
    let last = events.last().expect("an event");
    assert_eq!(last["type"], "DELETED");
    assert_eq!(last["object"]["status"]["phase"], "Running");
}
