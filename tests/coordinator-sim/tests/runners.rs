//! Register, verify and unregister, in both dialects.

mod common;

use common::*;
use coordinator_sim::Dialect;
use serde_json::json;

fn register_body(token: &str) -> serde_json::Value {
    json!({"token": token, "description": "test runner", "tag_list": "k8s,linux",
           "run_untagged": true, "locked": false,
           "info": {"name": "alloy-runner", "version": "0.1.0", "executor": "kubernetes"}})
}

#[test]
fn gitlab_register_returns_a_runner_token_that_verifies() {
    let sim = start(Dialect::GitLab);
    let reply = send_json(&sim, "POST", "runners", &register_body(REGISTRATION_TOKEN));
    assert_eq!(reply.status, 201);
    let token = reply.json()["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 20);
    assert!(reply.json()["id"].as_u64().is_some());

    let verify = send_json(&sim, "POST", "runners/verify", &json!({"token": token}));
    assert_eq!(verify.status, 200);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());

    // The registration is recorded as sent (the test's own runner comes first).
    let runners = sim.runners();
    assert_eq!(runners.len(), 2);
    assert_eq!(runners[1].description, "test runner");
    assert_eq!(runners[1].tags, ["k8s", "linux"]);
    assert!(runners[1].run_untagged);
    assert_eq!(runners[1].info["executor"], "kubernetes");
}

#[test]
fn alloyci_runner_tokens_are_14_characters() {
    let sim = start(Dialect::AlloyCi);
    let reply = send_json(&sim, "POST", "runners", &register_body(REGISTRATION_TOKEN));
    assert_eq!(reply.status, 201);
    let token = reply.json()["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 14);
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn wrong_registration_token_is_forbidden_in_both_dialects() {
    for dialect in [Dialect::GitLab, Dialect::AlloyCi] {
        let sim = start(dialect);
        let reply = send_json(&sim, "POST", "runners", &register_body("wrong"));
        assert_eq!(reply.status, 403, "{dialect:?}");
    }
}

#[test]
fn alloyci_register_without_info_answers_500() {
    let sim = start(Dialect::AlloyCi);
    let body = json!({"token": REGISTRATION_TOKEN, "description": "no info"});
    assert_eq!(send_json(&sim, "POST", "runners", &body).status, 500);
    assert_eq!(sim.violations().len(), 1);

    let gitlab = start(Dialect::GitLab);
    assert_eq!(send_json(&gitlab, "POST", "runners", &body).status, 201);
}

#[test]
fn registered_tags_restrict_tagged_jobs() {
    let sim = start(Dialect::GitLab);
    let reply = send_json(&sim, "POST", "runners", &register_body(REGISTRATION_TOKEN));
    let tagged_runner = reply.json()["token"].as_str().unwrap().to_string();
    let pipeline = r#"{"tagged": {"script": ["true"], "tags": ["k8s"]}}"#;
    let repo = TempDir::new("tags");
    init_repo(&repo.0);
    let run = sim.enqueue_pipeline(pipeline, &repo.0).unwrap();

    // The untagged runner never gets it; the one registered with `k8s` does.
    assert_eq!(request_job(&sim).status, 204);
    let body = json!({"token": tagged_runner, "info": {}});
    let reply = send_json(&sim, "POST", "jobs/request", &body);
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["id"], run.job_id("tagged").unwrap());
}

#[test]
fn verify_and_unregister_reject_unknown_tokens() {
    let sim = start(Dialect::GitLab);
    assert_eq!(
        send_json(&sim, "POST", "runners/verify", &json!({"token": "nope"})).status,
        403
    );
    assert_eq!(
        send_json(&sim, "DELETE", "runners", &json!({"token": "nope"})).status,
        403
    );
}

#[test]
fn unregistered_runner_no_longer_verifies_or_gets_jobs() {
    for dialect in [Dialect::GitLab, Dialect::AlloyCi] {
        let sim = start(dialect);
        let body = json!({"token": RUNNER_TOKEN});
        assert_eq!(send_json(&sim, "DELETE", "runners", &body).status, 204);
        assert_eq!(send_json(&sim, "POST", "runners/verify", &body).status, 403);
        let expected = if dialect == Dialect::AlloyCi {
            401
        } else {
            403
        };
        assert_eq!(request_job(&sim).status, expected);
    }
}

#[test]
fn runner_token_outside_the_body_is_a_violation() {
    let sim = start(Dialect::GitLab);
    let reply = send_json(&sim, "POST", "jobs/request", &json!({"info": {}}));
    assert_eq!(reply.status, 403);
    assert_eq!(
        sim.violations(),
        ["POST /api/v4/jobs/request: no `token` in the body"]
    );
}

#[test]
fn missing_user_agent_is_a_violation() {
    let sim = start(Dialect::GitLab);
    let url = format!("{}/api/v4/runners/verify", sim.url());
    // ureq sends its own User-Agent unless told to send an empty one.
    let _ = ureq::post(&url)
        .set("User-Agent", "")
        .send_json(json!({"token": RUNNER_TOKEN}));
    let violations = sim.violations();
    assert_eq!(
        violations,
        ["POST /api/v4/runners/verify: no User-Agent header"]
    );
}

#[test]
fn unknown_paths_are_404_and_violations() {
    let sim = start(Dialect::GitLab);
    let url = format!("{}/ci/api/v4/jobs/request", sim.url());
    let result = ureq::post(&url)
        .set("User-Agent", USER_AGENT)
        .send_json(json!({}));
    assert!(matches!(result, Err(ureq::Error::Status(404, _))));
    assert_eq!(
        sim.violations(),
        ["unexpected request POST /ci/api/v4/jobs/request"]
    );
}

#[test]
fn start_refuses_a_non_loopback_address() {
    let options = coordinator_sim::Options {
        addr: "0.0.0.0:0".parse().unwrap(),
        ..options()
    };
    let err = coordinator_sim::Sim::start(options).err().unwrap();
    assert_eq!(
        err.to_string(),
        "listen address 0.0.0.0:0: only loopback addresses are served"
    );
}
