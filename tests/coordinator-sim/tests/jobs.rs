//! Job request, update and trace, in both dialects, with the checks on what the runner sends.

mod common;

use std::time::Duration;

use common::*;
use coordinator_sim::{crc32, Dialect, JobState};
use serde_json::json;

/// Queues the dialect's fixture job and hands it out; returns (id, token).
fn running_job(sim: &coordinator_sim::SimHandle, dialect: Dialect) -> (u64, String) {
    let name = match dialect {
        Dialect::GitLab => "sim-gitlab-basic.json",
        Dialect::AlloyCi => "sim-alloyci-basic.json",
    };
    let id = sim.enqueue_payload(fixture(name)).unwrap();
    let reply = request_job(sim);
    assert_eq!(reply.status, 201);
    let token = reply.json()["token"].as_str().unwrap().to_string();
    (id, token)
}

#[test]
fn request_hands_out_the_fixture_then_no_content() {
    let sim = start(Dialect::GitLab);
    let id = sim
        .enqueue_payload(fixture("sim-gitlab-basic.json"))
        .unwrap();
    assert_eq!(id, 1234);

    let reply = request_job(&sim);
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["id"], 1234);
    assert_eq!(reply.json()["token"], "3Jd9a0QkLw2ZpA");
    let first_update = reply.header("x-gitlab-last-update").unwrap().to_string();
    assert_eq!(sim.job(1234).unwrap().state, JobState::Running);

    let none = request_job(&sim);
    assert_eq!(none.status, 204);
    assert!(none.header("x-gitlab-last-update").is_some());
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    assert_ne!(first_update, "");
}

#[test]
fn enqueue_assigns_a_fresh_id_when_the_fixture_id_is_taken() {
    let sim = start(Dialect::GitLab);
    let first = sim
        .enqueue_payload(fixture("sim-gitlab-basic.json"))
        .unwrap();
    let second = sim
        .enqueue_payload(fixture("sim-gitlab-basic.json"))
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(sim.queued(), 2);
}

#[test]
fn bad_runner_token_is_401_in_alloyci_and_403_in_gitlab() {
    for (dialect, status) in [(Dialect::AlloyCi, 401), (Dialect::GitLab, 403)] {
        let sim = start(dialect);
        let reply = send_json(
            &sim,
            "POST",
            "jobs/request",
            &json!({"token": "nope", "info": {}}),
        );
        assert_eq!(reply.status, status, "{dialect:?}");
    }
}

#[test]
fn incremental_trace_and_success_are_recorded() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);

    let first = patch(&sim, id, &token, 0, b"hello ");
    assert_eq!(first.status, 202);
    assert_eq!(first.header("range"), Some("0-6"));
    assert_eq!(first.header("job-status"), Some("running"));
    let second = patch(&sim, id, &token, 6, b"world\n");
    assert_eq!(second.header("range"), Some("0-12"));

    let trace = b"hello world\n";
    let output = json!({"checksum": format!("crc32:{:08x}", crc32(trace)), "bytesize": 12});
    let reply = update(
        &sim,
        id,
        json!({"token": token, "state": "success", "output": output}),
    );
    assert_eq!(reply.status, 200);

    let record = sim
        .wait_for_job_finished(id, Duration::from_secs(5))
        .unwrap();
    assert_eq!(record.state, JobState::Success);
    assert_eq!(record.trace_incremental, trace);
    assert_eq!(record.trace_final, None);
    assert_eq!(record.patches, 2);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn failed_state_keeps_reason_and_exit_code() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    let body = json!({"token": token, "state": "failed", "failure_reason": "script_failure",
                      "exit_code": 3, "trace": "boom\n"});
    assert_eq!(update(&sim, id, body).status, 200);
    let record = sim.job(id).unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(record.exit_code, Some(3));
    assert_eq!(record.trace_final.as_deref(), Some(&b"boom\n"[..]));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn gitlab_rejects_an_unknown_failure_reason_with_400() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    let body = json!({"token": token, "state": "failed", "failure_reason": "oops"});
    assert_eq!(update(&sim, id, body).status, 400);
    assert_eq!(sim.job(id).unwrap().state, JobState::Running);
    assert_eq!(
        sim.violations(),
        ["PUT job 1234: unknown failure_reason `oops`"]
    );
}

#[test]
fn alloyci_ignores_the_failure_reason_but_records_the_violation() {
    let sim = start(Dialect::AlloyCi);
    let (id, token) = running_job(&sim, Dialect::AlloyCi);
    let body = json!({"token": token, "state": "failed", "failure_reason": "oops"});
    assert_eq!(update(&sim, id, body).status, 200);
    assert_eq!(sim.job(id).unwrap().state, JobState::Failed);
    assert_eq!(sim.violations().len(), 1);
}

#[test]
fn unknown_state_is_500_in_alloyci_and_400_in_gitlab() {
    for (dialect, status) in [(Dialect::AlloyCi, 500), (Dialect::GitLab, 400)] {
        let sim = start(dialect);
        let (id, token) = running_job(&sim, dialect);
        let reply = update(&sim, id, json!({"token": token, "state": "done"}));
        assert_eq!(reply.status, status, "{dialect:?}");
        assert_eq!(
            sim.violations(),
            [format!("PUT job {id}: unknown state `done`")]
        );
    }
}

#[test]
fn gitlab_answers_412_to_a_wrong_checksum() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    patch(&sim, id, &token, 0, b"abc");
    let wrong = json!({"checksum": format!("crc32:{:08x}", crc32(b"abd")), "bytesize": 3});
    let reply = update(
        &sim,
        id,
        json!({"token": token, "state": "success", "output": wrong}),
    );
    assert_eq!(reply.status, 412);
    let record = sim.job(id).unwrap();
    assert_eq!(record.state, JobState::Running);
    assert_eq!(record.updates[0].status, 412);

    let short = json!({"checksum": format!("crc32:{:08x}", crc32(b"abc")), "bytesize": 2});
    let reply = update(
        &sim,
        id,
        json!({"token": token, "state": "success", "output": short}),
    );
    assert_eq!(reply.status, 412);
}

#[test]
fn alloyci_keeps_the_last_put_trace_as_the_log() {
    let sim = start(Dialect::AlloyCi);
    let (id, token) = running_job(&sim, Dialect::AlloyCi);
    patch(&sim, id, &token, 0, b"partial");
    update(
        &sim,
        id,
        json!({"token": token, "state": "running", "trace": "partial"}),
    );
    let body = json!({"token": token, "state": "success", "trace": "partial and whole\n",
                      "output": {"checksum": "crc32:00000000", "bytesize": 1}});
    assert_eq!(update(&sim, id, body).status, 200);
    let record = sim.job(id).unwrap();
    assert_eq!(record.log(), b"partial and whole\n");
    assert_eq!(record.trace_incremental, b"partial");
}

#[test]
fn put_checks_the_job_token_in_the_body() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    assert_eq!(
        update(&sim, id, json!({"token": "wrong", "state": "running"})).status,
        403
    );

    let req = request(&sim, "PUT", &format!("jobs/{id}")).set("JOB-TOKEN", &token);
    let reply = send(
        req.set("Content-Type", "application/json"),
        br#"{"state":"running"}"#,
    );
    assert_eq!(reply.status, 403);
    assert_eq!(
        sim.violations(),
        ["PUT /api/v4/jobs/1234: token in the JOB-TOKEN header, not the body"]
    );
    assert_eq!(
        update(&sim, 999, json!({"token": token, "state": "running"})).status,
        404
    );
}

#[test]
fn put_after_the_end_is_forbidden() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    update(&sim, id, json!({"token": token, "state": "success"}));
    assert_eq!(
        update(&sim, id, json!({"token": token, "state": "failed"})).status,
        403
    );
    assert_eq!(patch(&sim, id, &token, 0, b"late").status, 403);
    assert_eq!(sim.job(id).unwrap().state, JobState::Success);
}

#[test]
fn exit_code_rules_are_checked() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    update(
        &sim,
        id,
        json!({"token": token, "state": "running", "exit_code": 2}),
    );
    update(
        &sim,
        id,
        json!({"token": token, "state": "success", "exit_code": 0}),
    );
    assert_eq!(
        sim.violations(),
        [
            "PUT job 1234: exit_code 2 with state `running`",
            "PUT job 1234: exit_code 0 sent (leave it out)",
        ]
    );
}

#[test]
fn gitlab_patch_out_of_order_answers_416_with_the_real_size() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    patch(&sim, id, &token, 0, b"0123456789");
    let gap = patch(&sim, id, &token, 12, b"xy");
    assert_eq!(gap.status, 416);
    assert_eq!(gap.header("range"), Some("0-10"));
    let overlap = patch(&sim, id, &token, 5, b"56789ab");
    assert_eq!(overlap.status, 416);
    assert_eq!(sim.job(id).unwrap().trace_incremental, b"0123456789");
    assert_eq!(sim.violations().len(), 2);
}

#[test]
fn gitlab_patch_sends_the_update_interval_when_configured() {
    let sim = start_with(coordinator_sim::Options {
        trace_update_interval: Some(7),
        ..options()
    });
    let (id, token) = running_job(&sim, Dialect::GitLab);
    let reply = patch(&sim, id, &token, 0, b"x");
    assert_eq!(reply.header("x-gitlab-trace-update-interval"), Some("7"));
}

#[test]
fn gitlab_patch_without_job_token_is_forbidden() {
    let sim = start(Dialect::GitLab);
    let (id, _) = running_job(&sim, Dialect::GitLab);
    let req = request(&sim, "PATCH", &format!("jobs/{id}/trace"))
        .set("Content-Type", "text/plain")
        .set("Content-Range", "0-2");
    assert_eq!(send(req, b"abc").status, 403);
    assert_eq!(
        sim.violations(),
        [format!(
            "PATCH /api/v4/jobs/{id}/trace: no JOB-TOKEN header"
        )]
    );
}

#[test]
fn alloyci_patch_answers_constant_range_and_500_without_token() {
    let sim = start(Dialect::AlloyCi);
    let (id, token) = running_job(&sim, Dialect::AlloyCi);
    let reply = patch(&sim, id, &token, 0, b"abc");
    assert_eq!(reply.status, 202);
    assert_eq!(reply.header("range"), Some("0-100"));
    assert!(reply.header("x-gitlab-trace-update-interval").is_none());
    assert!(reply.header("job-status").is_none());

    // AlloyCI appends even when the range is off; the simulator still flags it.
    let off = patch(&sim, id, &token, 0, b"abc");
    assert_eq!(off.status, 202);
    assert_eq!(sim.job(id).unwrap().trace_incremental, b"abcabc");
    assert_eq!(sim.violations().len(), 1);

    let req = request(&sim, "PATCH", &format!("jobs/{id}/trace")).set("Content-Range", "6-6");
    assert_eq!(
        send(req.set("Content-Type", "text/plain"), b"d").status,
        500
    );
}

#[test]
fn wrong_content_types_are_violations() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    let req = request(&sim, "PATCH", &format!("jobs/{id}/trace"))
        .set("JOB-TOKEN", &token)
        .set("Content-Range", "0-0");
    assert_eq!(send(req, b"a").status, 202);
    let req = request(&sim, "PUT", &format!("jobs/{id}"));
    let body = json!({"token": token, "state": "running"}).to_string();
    assert_eq!(send(req, body.as_bytes()).status, 200);
    assert_eq!(sim.violations().len(), 2, "{:?}", sim.violations());
}

#[test]
fn wait_for_job_times_out_on_a_running_job() {
    let sim = start(Dialect::GitLab);
    let (id, _) = running_job(&sim, Dialect::GitLab);
    assert!(sim
        .wait_for_job_finished(id, Duration::from_millis(50))
        .is_none());
    assert!(sim
        .wait_for_job_finished(4242, Duration::from_millis(10))
        .is_none());
}

#[test]
fn update_and_patch_before_the_job_is_handed_out_are_forbidden() {
    let sim = start(Dialect::GitLab);
    let id = sim
        .enqueue_payload(fixture("sim-gitlab-basic.json"))
        .unwrap();
    let token = "3Jd9a0QkLw2ZpA";
    assert_eq!(
        update(&sim, id, json!({"token": token, "state": "success"})).status,
        403
    );
    assert_eq!(patch(&sim, id, token, 0, b"early").status, 403);
    assert_eq!(sim.job(id).unwrap().state, JobState::Pending);
}

#[test]
fn empty_keep_alive_patch_is_accepted() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    patch(&sim, id, &token, 0, b"abc");
    let reply = patch(&sim, id, &token, 3, b"");
    assert_eq!(reply.status, 202);
    assert_eq!(reply.header("range"), Some("0-3"));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn patch_over_one_mebibyte_is_a_violation() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    let big = vec![b'x'; 1024 * 1024 + 1];
    assert_eq!(patch(&sim, id, &token, 0, &big).status, 202);
    assert_eq!(
        sim.violations(),
        [format!("PATCH trace {id}: 1048577 bytes in one patch")]
    );
}

#[test]
fn after_a_412_the_whole_trace_is_taken_again_from_offset_0() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_job(&sim, Dialect::GitLab);
    patch(&sim, id, &token, 0, b"abc");
    let wrong = json!({"checksum": format!("crc32:{:08x}", crc32(b"abd")), "bytesize": 3});
    let body = json!({"token": token, "state": "success", "output": wrong});
    assert_eq!(update(&sim, id, body).status, 412);

    assert_eq!(patch(&sim, id, &token, 0, b"abc").status, 202);
    let right = json!({"checksum": format!("crc32:{:08x}", crc32(b"abc")), "bytesize": 3});
    let body = json!({"token": token, "state": "success", "output": right});
    assert_eq!(update(&sim, id, body).status, 200);
    assert_eq!(sim.job(id).unwrap().trace_incremental, b"abc");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}
