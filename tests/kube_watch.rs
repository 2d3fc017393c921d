//! The pod watch thread against a loopback HTTPS server: re-watches, bookmarks, expiry, polling.

mod kube_support;

use std::time::Duration;

use alloy_runner::kube::{KubeError, PodEvent, PodWatch};
use kube_support::{server_tls, status_body, token_client, ApiServer, HttpRequest, Reply};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

fn pod(version: &str, phase: &str) -> Value {
    json!({"kind": "Pod", "metadata": {"name": "ci-1", "namespace": "ci",
           "resourceVersion": version}, "status": {"phase": phase}})
}

fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

fn is_watch(req: &HttpRequest) -> bool {
    req.query("watch").as_deref() == Some("true")
}

/// The events until the watch ends, as (kind, resourceVersion, phase).
fn drain(watch: &mut PodWatch) -> (Vec<(String, String, String)>, KubeError) {
    let mut seen = Vec::new();
    loop {
        let (kind, pod) = match watch.next(WAIT) {
            Ok(Some(PodEvent::Updated(pod))) => ("updated", pod),
            Ok(Some(PodEvent::Deleted(pod))) => ("deleted", pod),
            Ok(None) => panic!("no event within {WAIT:?} after {seen:?}"),
            Err(e) => return (seen, e),
        };
        let field = |p: &str| {
            pod.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        seen.push((
            kind.to_string(),
            field("/metadata/resourceVersion"),
            field("/status/phase"),
        ));
    }
}

fn owned(events: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn sends_the_current_state_then_events_and_stops_after_deleted() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |req, _| {
        if !is_watch(req) {
            return Reply::json(200, pod("1", "Pending"));
        }
        Reply::events(
            &[
                event("MODIFIED", pod("2", "Running")),
                event(
                    "BOOKMARK",
                    json!({"kind": "Pod", "metadata": {"resourceVersion": "3"}}),
                ),
                event("DELETED", pod("4", "Running")),
            ],
            Duration::from_millis(20),
        )
    });
    let mut watch = token_client(&server.url(), "t")
        .watch_pod("ci", "ci-1")
        .expect("watch");

    let (seen, end) = drain(&mut watch);
    assert_eq!(
        seen,
        owned(&[
            ("updated", "1", "Pending"),
            ("updated", "2", "Running"),
            ("deleted", "4", "Running")
        ])
    );
    assert!(matches!(end, KubeError::WatchStopped { .. }), "{end:?}");

    let watch_req = &server.requests()[1];
    assert_eq!(watch_req.path(), "/api/v1/namespaces/ci/pods");
    assert_eq!(
        watch_req.query("fieldSelector").as_deref(),
        Some("metadata.name=ci-1")
    );
    assert_eq!(watch_req.query("resourceVersion").as_deref(), Some("1"));
    assert_eq!(
        watch_req.query("allowWatchBookmarks").as_deref(),
        Some("true")
    );
    assert_eq!(watch_req.header("authorization"), Some("Bearer t"));
}

#[test]
fn a_watch_that_ends_cleanly_is_started_again_from_the_last_version() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |req, n| match n {
        0 => Reply::json(200, pod("1", "Pending")),
        1 => Reply::events(
            &[event("MODIFIED", pod("5", "Running"))],
            Duration::from_millis(1),
        ),
        2 => Reply::events(
            &[event(
                "BOOKMARK",
                json!({"metadata": {"resourceVersion": "8"}}),
            )],
            Duration::from_millis(1),
        ),
        _ if is_watch(req) => Reply::events(
            &[event("DELETED", pod("9", "Succeeded"))],
            Duration::from_millis(1),
        ),
        _ => Reply::json(500, status_body(500, "InternalError", "unexpected")),
    });
    let mut watch = token_client(&server.url(), "t")
        .watch_pod("ci", "ci-1")
        .expect("watch");
    let (seen, _) = drain(&mut watch);
    assert_eq!(
        seen,
        owned(&[
            ("updated", "1", "Pending"),
            ("updated", "5", "Running"),
            ("deleted", "9", "Succeeded")
        ])
    );
    let versions: Vec<_> = server.requests()[1..]
        .iter()
        .map(|r| r.query("resourceVersion"))
        .collect();
    assert_eq!(
        versions,
        [Some("1".into()), Some("5".into()), Some("8".into())]
    );
}

#[test]
fn an_expired_version_leads_to_a_fresh_get_then_a_new_watch() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |req, n| match n {
        0 => Reply::json(200, pod("1", "Pending")),
        1 => Reply::events(
            &[event(
                "ERROR",
                status_body(410, "Expired", "too old resource version: 1 (40)"),
            )],
            Duration::from_millis(1),
        ),
        2 => Reply::json(200, pod("40", "Running")),
        3 => Reply::json(
            410,
            status_body(410, "Gone", "too old resource version: 40 (50)"),
        ),
        4 => Reply::json(200, pod("50", "Running")),
        _ if is_watch(req) => Reply::events(
            &[event("DELETED", pod("51", "Running"))],
            Duration::from_millis(1),
        ),
        _ => Reply::json(500, status_body(500, "InternalError", "unexpected")),
    });
    let mut watch = token_client(&server.url(), "t")
        .watch_pod("ci", "ci-1")
        .expect("watch");
    let (seen, _) = drain(&mut watch);
    assert_eq!(
        seen,
        owned(&[
            ("updated", "1", "Pending"),
            ("updated", "40", "Running"),
            ("updated", "50", "Running"),
            ("deleted", "51", "Running"),
        ])
    );
    let kinds: Vec<_> = server.requests().iter().map(is_watch).collect();
    assert_eq!(kinds, [false, true, false, true, false, true]);
    assert_eq!(
        server.requests()[5].query("resourceVersion").as_deref(),
        Some("50")
    );
}

#[test]
fn a_refused_watch_falls_back_to_polling_until_the_pod_is_gone() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |req, n| {
        if is_watch(req) {
            return Reply::json(403, status_body(403, "Forbidden", "cannot watch pods"));
        }
        match n {
            0 | 2 => Reply::json(200, pod("1", "Pending")),
            3 => Reply::json(200, pod("2", "Running")),
            _ => Reply::json(404, status_body(404, "NotFound", "pods \"ci-1\" not found")),
        }
    });
    let mut watch = token_client(&server.url(), "t")
        .watch_pod("ci", "ci-1")
        .expect("watch");
    watch.set_poll_interval(Duration::from_millis(30));
    let (seen, _) = drain(&mut watch);
    assert_eq!(
        seen,
        owned(&[
            ("updated", "1", "Pending"),
            ("updated", "2", "Running"),
            ("deleted", "2", "Running")
        ])
    );
    assert_eq!(server.requests().iter().filter(|r| is_watch(r)).count(), 1);
}

// Regression: watches that a server (or a proxy) ends at once without any event used to be
// started again from the same version forever, so the pod's changes were never seen.
#[test]
fn watches_that_end_at_once_lead_to_fresh_gets_and_each_change_once() {
    let gets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = gets.clone();
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), move |req, _| {
        if is_watch(req) {
            return Reply::events(&[], Duration::from_millis(1));
        }
        match counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 | 1 => Reply::json(200, pod("1", "Pending")),
            2 => Reply::json(200, pod("2", "Running")),
            _ => Reply::json(404, status_body(404, "NotFound", "pods \"ci-1\" not found")),
        }
    });
    let mut watch = token_client(&server.url(), "t")
        .watch_pod("ci", "ci-1")
        .expect("watch");
    let (seen, _) = drain(&mut watch);
    assert_eq!(
        seen,
        owned(&[
            ("updated", "1", "Pending"),
            ("updated", "2", "Running"),
            ("deleted", "2", "Running")
        ])
    );
}

#[test]
fn a_missing_pod_is_an_error_naming_it() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |_, _| {
        Reply::json(404, status_body(404, "NotFound", "pods \"ci-1\" not found"))
    });
    let mut watch = token_client(&server.url(), "t")
        .watch_pod("ci", "ci-1")
        .expect("watch");
    let err = watch.next(WAIT).expect_err("no such pod");
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        "get pod ci-1 in namespace ci: pods \"ci-1\" not found (http 404, NotFound)"
    );
}
