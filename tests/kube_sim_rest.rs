//! REST calls and pod watches against the simulator: refusals shown verbatim, retries on
//! injected failures, a create whose answer was lost, and watches that are refused or expire.

mod kube_sim_support;

use std::time::Duration;

use alloy_runner::kube::{Client, PodEvent, PodWatch};
use kube_sim::{Failure, SimHandle, WatchMode};
use kube_sim_support::{
    api_message, https_sim, running_pod, sleeping_pod, token_client, NS, TOKEN,
};
use serde_json::{json, Value};

/// Codes the simulator answered to `method` requests on `path`, in order.
fn codes(sim: &SimHandle, method: &str, path: &str) -> Vec<u16> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == method && r.path == path && r.param("watch").is_none())
        .map(|r| r.code)
        .collect()
}

fn watch_codes(sim: &SimHandle) -> Vec<u16> {
    sim.requests()
        .into_iter()
        .filter(|r| r.param("watch") == Some("true"))
        .map(|r| r.code)
        .collect()
}

const PODS: &str = "/api/v1/namespaces/ci/pods";

#[test]
fn invalid_pod_is_refused_with_the_servers_422_message_and_causes() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);
    let mut pod = sleeping_pod("bad");
    pod["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");

    let e = client.create_pod(NS, &pod).unwrap_err();
    let (code, reason, message) = api_message(&e);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        message,
        "Pod \"bad\" is invalid: spec.containers[0].image: Required value"
    );
    let causes = &e.status().unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, "spec.containers[0].image");
    assert_eq!(causes[0].reason, "FieldValueRequired");
    assert!(e.to_string().contains(&message), "{e}");
    assert_eq!(codes(&sim, "POST", PODS), [422], "a 422 is not tried again");
}

#[test]
fn create_succeeds_after_two_injected_500s() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);
    sim.fail_next("create", 2, Failure::ServerError);

    let pod = client.create_pod(NS, &sleeping_pod("flaky")).unwrap();
    assert_eq!(pod["metadata"]["name"], "flaky");
    assert_eq!(codes(&sim, "POST", PODS), [500, 500, 201]);
    assert_eq!(sim.pods(NS).len(), 1);
}

#[test]
fn get_succeeds_after_429s_with_retry_after() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);
    running_pod(&sim, &client, "busy");
    sim.clear_requests();
    sim.fail_next("get", 1, Failure::TooManyRequests { retry_after: 1 });
    sim.fail_next("list", 1, Failure::Throttled { retry_after: 1 });

    let pod = client.get_pod(NS, "busy").unwrap();
    assert_eq!(pod["metadata"]["name"], "busy");
    assert_eq!(
        codes(&sim, "GET", "/api/v1/namespaces/ci/pods/busy"),
        [429, 200]
    );
    let pods = client.list_pods(NS, "job=1").unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(codes(&sim, "GET", PODS), [429, 200]);
}

#[test]
fn retries_stop_after_five_tries_with_the_last_error() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);
    sim.fail_next("get", 10, Failure::ServerError);

    let e = client.get_pod(NS, "never").unwrap_err();
    let (code, reason, _) = api_message(&e);
    assert_eq!((code, reason.as_str()), (500, "InternalError"));
    assert_eq!(
        codes(&sim, "GET", "/api/v1/namespaces/ci/pods/never").len(),
        5
    );
}

// The 504 came after the pod was stored: the client finds it instead of creating it twice.
#[test]
fn create_answered_504_after_commit_returns_the_stored_pod_without_a_second_create() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);
    sim.fail_next("create", 1, Failure::TimeoutAfterCommit);

    let pod = client.create_pod(NS, &sleeping_pod("once")).unwrap();
    let stored = sim.pod(NS, "once").expect("pod stored");
    assert_eq!(pod["metadata"]["uid"], stored["metadata"]["uid"]);
    assert_eq!(codes(&sim, "POST", PODS), [504]);
    assert_eq!(sim.pods(NS).len(), 1);
}

#[test]
fn delete_of_a_missing_pod_is_fine() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);

    client.delete_pod(NS, "gone", Some(0)).unwrap();
    assert_eq!(
        codes(&sim, "DELETE", "/api/v1/namespaces/ci/pods/gone"),
        [404]
    );
}

/// Reads events until one passes `wanted` (at most 20 s); the events seen on the way.
fn wait_event(watch: &mut PodWatch, wanted: impl Fn(&PodEvent) -> bool) -> Vec<PodEvent> {
    let mut seen = Vec::new();
    while let Some(event) = watch.next(Duration::from_secs(20)).expect("watch works") {
        let done = wanted(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
    panic!("no awaited event within 20 s; saw {seen:?}");
}

fn running(event: &PodEvent) -> bool {
    matches!(event, PodEvent::Updated(pod) if pod["status"]["phase"] == "Running")
}

fn deleted(event: &PodEvent) -> bool {
    matches!(event, PodEvent::Deleted(_))
}

fn start_watch(client: &Client, name: &str) -> PodWatch {
    client.create_pod(NS, &sleeping_pod(name)).unwrap();
    client.watch_pod(NS, name).unwrap()
}

#[test]
fn watch_sees_the_pod_run_and_then_deleted() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);
    let mut watch = start_watch(&client, "w");

    wait_event(&mut watch, running);
    client.delete_pod(NS, "w", Some(0)).unwrap();
    let events = wait_event(&mut watch, deleted);
    let Some(PodEvent::Deleted(last)) = events.last() else {
        unreachable!("wait_event ends on the awaited event")
    };
    assert_eq!(last["metadata"]["name"], "w");
    assert!(watch_codes(&sim).iter().all(|&c| c == 200));
}

#[test]
fn refused_watch_falls_back_to_polling_and_sees_an_outside_delete() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);
    sim.set_watch_mode(WatchMode::Refuse);
    let mut watch = start_watch(&client, "polled");
    watch.set_poll_interval(Duration::from_millis(50));

    wait_event(&mut watch, running);
    assert!(sim.delete_pod(NS, "polled", Duration::from_secs(0)));
    wait_event(&mut watch, deleted);
    assert_eq!(
        watch_codes(&sim),
        [405],
        "one refused watch, then only GETs"
    );
    assert!(codes(&sim, "GET", "/api/v1/namespaces/ci/pods/polled").len() >= 2);
}

/// Makes the watch of `name` come back with a version older than the compacted history:
/// watches end at once meanwhile, then `mode` serves the expired version.
fn expire_the_watch(sim: &SimHandle, mode: WatchMode) {
    sim.put_object(
        "configmaps",
        json!({"metadata": {"name": "bump", "namespace": NS}}),
    )
    .expect("configmap stored");
    sim.compact_history();
    sim.set_watch_mode(mode);
}

fn pod_gets(sim: &SimHandle, name: &str) -> usize {
    codes(sim, "GET", &format!("{PODS}/{name}")).len()
}

fn watch_across_expiry(mode: WatchMode) -> (SimHandle, Vec<Value>) {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);
    running_pod(&sim, &client, "old");
    sim.set_watch_mode(WatchMode::CloseAtOnce);
    let mut watch = client.watch_pod(NS, "old").unwrap();
    wait_event(&mut watch, running);
    assert_eq!(pod_gets(&sim, "old"), 1);

    expire_the_watch(&sim, mode);
    client.delete_pod(NS, "old", Some(0)).unwrap();
    let events = wait_event(&mut watch, deleted);
    let pods = events
        .into_iter()
        .map(|e| match e {
            PodEvent::Updated(pod) | PodEvent::Deleted(pod) => pod,
        })
        .collect();
    (sim, pods)
}

// An expired version ends the watch with an ERROR event carrying 410: the client GETs the pod
// again and watches from the new version.
#[test]
fn watch_recovers_from_a_410_error_event() {
    let (sim, pods) = watch_across_expiry(WatchMode::Normal);
    assert!(pod_gets(&sim, "old") >= 2, "the pod was read again");
    assert_eq!(pods.last().unwrap()["metadata"]["name"], "old");
}

#[test]
fn watch_recovers_from_an_http_410() {
    let (sim, pods) = watch_across_expiry(WatchMode::ExpiredAsHttp);
    assert!(watch_codes(&sim).contains(&410));
    assert!(pod_gets(&sim, "old") >= 2, "the pod was read again");
    assert_eq!(pods.last().unwrap()["metadata"]["name"], "old");
}
