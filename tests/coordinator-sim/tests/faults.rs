//! Injected faults: 5xx, 429 with Retry-After, 416, 202 on PUT, cancel.

mod common;

use std::time::Duration;

use common::*;
use coordinator_sim::{CancelMode, Dialect, Endpoint, JobState};
use serde_json::json;

fn running_job(sim: &coordinator_sim::SimHandle) -> (u64, String) {
    let id = sim
        .enqueue_payload(fixture("sim-gitlab-basic.json"))
        .unwrap();
    let token = request_job(sim).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    (id, token)
}

#[test]
fn next_requests_fail_then_the_endpoint_recovers() {
    let sim = start(Dialect::GitLab);
    sim.enqueue_payload(fixture("sim-gitlab-basic.json"))
        .unwrap();
    sim.fail_next(Endpoint::RequestJob, 2, 502);
    assert_eq!(request_job(&sim).status, 502);
    assert_eq!(request_job(&sim).status, 502);

    // The faulted requests took nothing from the queue.
    assert_eq!(sim.queued(), 1);
    assert_eq!(request_job(&sim).status, 201);
    assert_eq!(sim.requests(Endpoint::RequestJob), 3);
    assert_eq!(sim.requests(Endpoint::UpdateJob), 0);
}

#[test]
fn throttled_requests_carry_retry_after() {
    let sim = start(Dialect::AlloyCi);
    sim.throttle_next(Endpoint::Verify, 1, 9);
    let body = json!({"token": RUNNER_TOKEN});
    let reply = send_json(&sim, "POST", "runners/verify", &body);
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("9"));
    assert_eq!(send_json(&sim, "POST", "runners/verify", &body).status, 200);
}

#[test]
fn faults_touch_only_their_endpoint() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim);
    sim.fail_next(Endpoint::UpdateJob, 1, 503);
    assert_eq!(patch(&sim, id, &token, 0, b"x").status, 202);
    assert_eq!(
        update(&sim, id, json!({"token": token, "state": "success"})).status,
        503
    );
    assert_eq!(sim.job(id).unwrap().state, JobState::Running);
    assert_eq!(
        update(&sim, id, json!({"token": token, "state": "success"})).status,
        200
    );
}

#[test]
fn injected_416_reports_the_size_and_the_resend_is_accepted() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim);
    patch(&sim, id, &token, 0, b"abcd");
    sim.reject_next_trace_range(id);
    let rejected = patch(&sim, id, &token, 4, b"ef");
    assert_eq!(rejected.status, 416);
    assert_eq!(rejected.header("range"), Some("0-4"));
    assert_eq!(patch(&sim, id, &token, 4, b"ef").status, 202);
    assert_eq!(sim.job(id).unwrap().trace_incremental, b"abcdef");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn accepted_put_is_not_final() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim);
    sim.accept_next_update(id);
    assert_eq!(
        update(&sim, id, json!({"token": token, "state": "success"})).status,
        202
    );
    assert_eq!(sim.job(id).unwrap().state, JobState::Running);
    assert_eq!(
        update(&sim, id, json!({"token": token, "state": "success"})).status,
        200
    );
    let record = sim.job(id).unwrap();
    assert_eq!(record.state, JobState::Success);
    let statuses: Vec<u16> = record.updates.iter().map(|u| u.status).collect();
    assert_eq!(statuses, [202, 200]);
}

#[test]
fn cancel_is_told_by_job_status_header_in_each_spelling() {
    for (dialect, spelling) in [
        (Dialect::GitLab, "canceled"),
        (Dialect::AlloyCi, "cancelled"),
    ] {
        let sim = start(dialect);
        let mut payload = fixture("sim-gitlab-basic.json");
        payload["id"] = json!(5);
        let id = sim.enqueue_payload(payload).unwrap();
        let token = request_job(&sim).json()["token"]
            .as_str()
            .unwrap()
            .to_string();
        sim.cancel_job(id, CancelMode::JobStatusHeader);
        assert_eq!(sim.job(id).unwrap().state, JobState::Canceled);

        let reply = patch(&sim, id, &token, 0, b"x");
        assert_eq!(reply.header("job-status"), Some(spelling), "{dialect:?}");
        let reply = update(
            &sim,
            id,
            json!({"token": token, "state": "failed",
                                            "failure_reason": "script_failure", "exit_code": 1}),
        );
        assert_eq!(reply.header("job-status"), Some(spelling));
        let record = sim
            .wait_for_job_finished(id, Duration::from_secs(5))
            .unwrap();
        assert_eq!(record.state, JobState::Canceled);
        assert_eq!(record.reported_state.as_deref(), Some("failed"));
    }
}

#[test]
fn graceful_cancel_says_canceling_and_keeps_the_job_running() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim);
    sim.cancel_job(id, CancelMode::Canceling);
    assert_eq!(
        patch(&sim, id, &token, 0, b"x").header("job-status"),
        Some("canceling")
    );
    assert_eq!(sim.job(id).unwrap().state, JobState::Running);
}

#[test]
fn forbidden_cancel_answers_403() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim);
    sim.cancel_job(id, CancelMode::Forbidden);
    assert_eq!(patch(&sim, id, &token, 0, b"x").status, 403);
    assert_eq!(
        update(&sim, id, json!({"token": token, "state": "running"})).status,
        403
    );
}

#[test]
fn cancelled_queued_job_is_never_handed_out() {
    let sim = start(Dialect::GitLab);
    let id = sim
        .enqueue_payload(fixture("sim-gitlab-basic.json"))
        .unwrap();
    sim.cancel_job(id, CancelMode::JobStatusHeader);
    assert_eq!(request_job(&sim).status, 204);
}

#[test]
fn throttle_until_reset_sends_an_http_date() {
    let sim = start(Dialect::GitLab);
    sim.throttle_next_until_reset(Endpoint::RequestJob, 1, 30);
    let reply = request_job(&sim);
    assert_eq!(reply.status, 429);
    assert!(reply.header("retry-after").is_none());
    let reset = reply.header("ratelimit-resettime").unwrap();
    assert!(reset.ends_with(" GMT") && reset.len() == 29, "{reset}");
}

#[test]
fn raw_payload_is_sent_as_is_and_marks_the_job_running() {
    let sim = start(Dialect::GitLab);
    let id = sim.enqueue_raw_payload(r#"{"id": "not a number", "#);
    let reply = request_job(&sim);
    assert_eq!(reply.status, 201);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body, br#"{"id": "not a number", "#);
    assert_eq!(sim.job(id).unwrap().state, JobState::Running);
}

#[test]
fn raw_payload_keeps_the_id_and_token_it_carries() {
    let sim = start(Dialect::GitLab);
    let id = sim.enqueue_raw_payload(r#"{"id": 4321, "token": "rawT0ken", "steps": 7}"#);
    assert_eq!(id, 4321);
    assert_eq!(request_job(&sim).status, 201);
    let body = json!({"token": "rawT0ken", "state": "failed",
                      "failure_reason": "runner_system_failure"});
    assert_eq!(update(&sim, id, body).status, 200);
    assert_eq!(sim.job(id).unwrap().state, JobState::Failed);
}
