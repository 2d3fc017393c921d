//! Injected faults, bearer tokens, client certificates and 403 answers.

mod common;

use std::time::{Duration, Instant};

use common::{call, call_tls, call_with, create_running, pod, sim};
use kube_sim::{Failure, Rule, Sim, SimOptions, TokenSpec};
use serde_json::json;

fn runner_token() -> TokenSpec {
    TokenSpec {
        token: "runner-token".into(),
        user: "system:serviceaccount:ci:runner".into(),
        rules: Some(vec![
            Rule::new(&["ci"], &["pods"], &["get", "list", "create"]),
            Rule::new(&["ci"], &["pods/exec"], &["get"]),
        ]),
    }
}

fn with_tokens() -> kube_sim::SimHandle {
    let options = SimOptions {
        tokens: vec![runner_token(), TokenSpec::admin("admin-token", "admin")],
        ..SimOptions::default()
    };
    Sim::start(options).unwrap()
}

#[test]
fn the_next_requests_of_a_verb_fail_with_500_then_succeed() {
    let sim = sim();
    sim.fail_next("create", 2, Failure::ServerError);
    let path = "/api/v1/namespaces/ci/configmaps";
    let body = json!({"metadata": {"name": "a"}});
    assert_eq!(call(&sim, "GET", path, None).code, 200);
    let first = call(&sim, "POST", path, Some(&body));
    assert_eq!(first.code, 500);
    assert_eq!(first.json()["reason"], "InternalError");
    assert_eq!(call(&sim, "POST", path, Some(&body)).code, 500);
    assert_eq!(call(&sim, "POST", path, Some(&body)).code, 201);
}

#[test]
fn throttling_answers_429_with_retry_after() {
    let sim = sim();
    sim.fail_next("get", 1, Failure::TooManyRequests { retry_after: 2 });
    let answer = call(&sim, "GET", "/api/v1/namespaces/ci/pods/x", None);
    assert_eq!(answer.code, 429);
    assert_eq!(answer.header("retry-after"), Some("2"));
    assert_eq!(answer.json()["reason"], "TooManyRequests");
    assert_eq!(
        call(&sim, "GET", "/api/v1/namespaces/ci/pods/x", None).code,
        404
    );
}

#[test]
fn latency_delays_every_answer() {
    let sim = sim();
    sim.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    call(&sim, "GET", "/version", None);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn admin_paths_inject_faults_too() {
    let sim = sim();
    let armed = call(
        &sim,
        "POST",
        "/__sim/faults/fail",
        Some(&json!({"verb": "list", "count": 1, "code": 429, "retryAfter": 4})),
    );
    assert_eq!(armed.code, 200);
    let answer = call(&sim, "GET", "/api/v1/namespaces/ci/pods", None);
    assert_eq!(answer.header("retry-after"), Some("4"));
    assert_eq!(
        call(&sim, "GET", "/__sim/requests", None).json()[0]["code"],
        429
    );
}

#[test]
fn a_pod_deleted_from_outside_disappears() {
    let sim = sim();
    create_running(&sim, "ci", "gone");
    assert_eq!(
        call(
            &sim,
            "POST",
            "/__sim/pods/ci/gone/delete",
            Some(&json!({"graceSeconds": 0}))
        )
        .code,
        200
    );
    assert!(sim.pod("ci", "gone").is_none());
    assert!(!sim.delete_pod("ci", "gone", Duration::ZERO));
}

#[test]
fn no_token_or_an_unknown_one_is_401() {
    let sim = with_tokens();
    let none = call(&sim, "GET", "/api/v1/namespaces/ci/pods", None);
    assert_eq!(none.code, 401);
    assert_eq!(none.json()["reason"], "Unauthorized");
    let wrong = call_with(
        sim.addr(),
        "GET",
        "/version",
        &[("Authorization", "Bearer nope")],
        None,
    );
    assert_eq!(wrong.code, 401);
}

#[test]
fn a_rotated_token_is_refused_and_its_successor_accepted() {
    let sim = with_tokens();
    let get = |token: &str| {
        call_with(
            sim.addr(),
            "GET",
            "/api/v1/namespaces/ci/pods",
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
        .code
    };
    assert_eq!(get("runner-token"), 200);
    assert!(sim.rotate_token("runner-token", "runner-token-2"));
    assert_eq!(get("runner-token"), 401);
    assert_eq!(get("runner-token-2"), 200);
}

#[test]
fn a_verb_outside_the_tokens_rules_is_403_in_the_authorizers_words() {
    let sim = with_tokens();
    let auth = [("Authorization", "Bearer runner-token")];
    let answer = call_with(
        sim.addr(),
        "POST",
        "/api/v1/namespaces/other/pods",
        &auth,
        Some(&pod("p", "true")),
    );
    assert_eq!(answer.code, 403);
    assert_eq!(
        answer.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods is forbidden: User \"system:serviceaccount:ci:runner\" cannot \
                           create resource \"pods\" in API group \"\" in the namespace \"other\"",
               "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403})
    );
    let delete = call_with(
        sim.addr(),
        "DELETE",
        "/api/v1/namespaces/ci/pods/p",
        &auth,
        None,
    );
    assert_eq!(
        delete.json()["details"],
        json!({"kind": "pods", "name": "p"})
    );
    let secret = call_with(
        sim.addr(),
        "GET",
        "/api/v1/namespaces/ci/secrets/s",
        &auth,
        None,
    );
    assert_eq!(secret.code, 403);
}

#[test]
fn exec_needs_create_as_well_as_get_on_pods_exec() {
    let sim = with_tokens();
    let admin = [("Authorization", "Bearer admin-token")];
    call_with(
        sim.addr(),
        "POST",
        "/api/v1/namespaces/ci/pods",
        &admin,
        Some(&pod("p", "sleep 30")),
    );
    let auth = [("Authorization", "Bearer runner-token")];
    let answer = call_with(
        sim.addr(),
        "GET",
        "/api/v1/namespaces/ci/pods/p/exec?command=true&stdout=true",
        &auth,
        None,
    );
    assert_eq!(answer.code, 403);
    let message = answer.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("cannot create resource \"pods/exec\""),
        "{message}"
    );
}

#[test]
fn the_request_log_hides_the_authorization_header() {
    let sim = with_tokens();
    call_with(
        sim.addr(),
        "GET",
        "/version",
        &[("Authorization", "Bearer admin-token")],
        None,
    );
    let entry = &sim.requests()[0];
    assert_eq!(entry.user, "admin");
    assert!(entry.header("authorization").is_none());
}

#[test]
fn https_accepts_the_test_client_certificate_and_bearer_tokens() {
    let options = SimOptions {
        tls: true,
        client_cert_auth: true,
        tokens: vec![runner_token()],
        ..SimOptions::default()
    };
    let sim = Sim::start(options).unwrap();
    assert!(sim.url().starts_with("https://127.0.0.1:"));
    let with_cert = call_tls(&sim, true, "GET", "/api/v1/namespaces/ci/secrets", &[]).unwrap();
    assert_eq!(with_cert.code, 200);
    let with_token = call_tls(
        &sim,
        false,
        "GET",
        "/api/v1/namespaces/ci/pods",
        &[("Authorization", "Bearer runner-token")],
    )
    .unwrap();
    assert_eq!(with_token.code, 200);
    let anonymous = call_tls(&sim, false, "GET", "/api/v1/namespaces/ci/pods", &[]).unwrap();
    assert_eq!(anonymous.code, 401);
    assert_eq!(sim.requests()[0].user, "sim-admin");
}

#[test]
fn https_serves_on_ipv6_loopback_with_the_certificates_san() {
    let options = SimOptions {
        tls: true,
        client_cert_auth: true,
        bind: "[::1]:0".parse().unwrap(),
        ..SimOptions::default()
    };
    let sim = Sim::start(options).unwrap();
    assert!(sim.url().starts_with("https://[::1]:"));
    let answer = call_tls(&sim, true, "GET", "/version", &[]).unwrap();
    assert_eq!(answer.code, 200);
}

#[test]
fn a_create_that_times_out_may_still_have_created_the_pod() {
    let sim = sim();
    sim.fail_next("create", 1, Failure::TimeoutAfterCommit);
    let answer = call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("slow", "true")),
    );
    assert_eq!(answer.code, 504);
    assert_eq!(answer.json()["reason"], "Timeout");
    assert!(sim.pod("ci", "slow").is_some());
    let again = call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("slow", "true")),
    );
    assert_eq!(again.code, 409);
}

#[test]
fn flow_control_throttling_is_plain_text_with_retry_after() {
    let sim = sim();
    sim.fail_next("*", 1, Failure::Throttled { retry_after: 5 });
    let answer = call(&sim, "GET", "/api/v1/namespaces/ci/pods", None);
    assert_eq!(answer.code, 429);
    assert_eq!(answer.header("retry-after"), Some("5"));
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(answer.body, b"Too many requests, please try again later.");
}

#[test]
fn every_admin_path_answers_and_takes_effect() {
    let sim = with_tokens();
    let admin = |path: &str, body: serde_json::Value| call(&sim, "POST", path, Some(&body)).code;
    assert_eq!(admin("/__sim/faults/watch", json!({"mode": "refuse"})), 200);
    let auth = [("Authorization", "Bearer admin-token")];
    let watch = call_with(
        sim.addr(),
        "GET",
        "/api/v1/namespaces/ci/pods?watch=1",
        &auth,
        None,
    );
    assert_eq!(watch.code, 405);
    assert_eq!(
        admin("/__sim/faults/watch", json!({"mode": "sideways"})),
        400
    );
    assert_eq!(admin("/__sim/faults/latency", json!({"millis": 200})), 200);
    let started = Instant::now();
    call_with(sim.addr(), "GET", "/version", &auth, None);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(admin("/__sim/faults/reset", json!({})), 200);
    assert_eq!(
        admin("/__sim/faults/exec", json!({"dropAfterBytes": 5})),
        200
    );
    assert_eq!(
        admin(
            "/__sim/tokens/rotate",
            json!({"old": "admin-token", "new": "t2"})
        ),
        200
    );
    assert_eq!(
        call_with(sim.addr(), "GET", "/version", &auth, None).code,
        401
    );
    assert_eq!(
        admin("/__sim/tokens/rotate", json!({"old": "gone", "new": "t3"})),
        404
    );
    assert_eq!(admin("/__sim/compact", json!({})), 200);
    assert_eq!(call(&sim, "DELETE", "/__sim/requests", None).code, 200);
    assert!(sim.requests().is_empty());
    assert_eq!(call(&sim, "GET", "/__sim/nothing", None).code, 404);
}
