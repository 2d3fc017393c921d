//! A pod that breaks while the script runs: an OOM-killed service, a deletion from outside,
//! an eviction. Each is a system failure reported promptly, and no pod is left.

mod e2e_support;

use std::time::Duration;

use coordinator_sim::Dialect;
use e2e_support::{log_of, show, World, NAMESPACE};

fn assert_system_failure(world: &World, id: u64, output: &std::process::Output, text: &str) {
    let record = world.finished(id);
    let log = log_of(&record);
    assert_eq!(
        record.reported_state.as_deref(),
        Some("failed"),
        "{log}\n{}",
        show(output)
    );
    assert_eq!(
        record.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{log}"
    );
    assert_eq!(record.exit_code, None, "{log}");
    assert!(log.contains(text), "{text:?} not in\n{log}");
    assert!(!log.contains("not-reached"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn oom_killed_service_fails_the_job_promptly() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{"oom": {"stage": "test",
        "services": [{"name": "sim/oom-after:1", "command": ["sleep", "60"]}],
        "script": ["echo script-started", "sleep 60", "echo not-reached"]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let output = world.run_single(1);
    let id = run.job_id("oom").expect("job queued");
    assert_system_failure(
        &world,
        id,
        &output,
        "ERROR: Job failed: container svc-0 terminated: exit code 137, reason OOMKilled",
    );
}

#[test]
fn pod_deleted_from_outside_is_a_system_failure() {
    let world = World::start(Dialect::AlloyCi, "", "");
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{"deleted": {"stage": "test",
        "script": ["echo script-started", "sleep 60", "echo not-reached"]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let id = run.job_id("deleted").expect("job queued");
    let runner = world.spawn_single();
    world.wait_for_log(id, "script-started");
    let pod = world.job_pod();
    let name = pod["metadata"]["name"].as_str().expect("pod name");
    assert!(world
        .kube
        .delete_pod(NAMESPACE, name, Duration::from_secs(1)));
    let output = runner.wait();
    let record = world.finished(id);
    let log = log_of(&record);
    assert!(
        log.contains(&format!("pod {name} is being deleted"))
            || log.contains(&format!("pod {name} was deleted while the job was running")),
        "{log}"
    );
    // The pod is gone on its own: cleanup's 404 is no warning.
    assert!(!log.contains("\x1b[33;1m"), "{log}");
    assert_system_failure(&world, id, &output, "ERROR: Job failed: pod ");
}

#[test]
fn evicted_pod_is_a_system_failure_that_says_so() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{"evicted": {"stage": "test", "image": "sim/evict-after:1",
        "script": ["echo script-started", "sleep 60", "echo not-reached"]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let output = world.run_single(1);
    let id = run.job_id("evicted").expect("job queued");
    let name = world
        .kube
        .requests()
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .map(|pod| {
            pod["metadata"]["generateName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .expect("pod created");
    let record = world.finished(id);
    let log = log_of(&record);
    assert!(
        log.contains(&format!("ERROR: Job failed: pod {name}")),
        "{log}"
    );
    assert!(
        log.contains(
            " is being evicted (TerminationByKubelet): The node was low on resource: memory."
        ),
        "{log}"
    );
    assert_system_failure(&world, id, &output, "The node was low on resource: memory.");
}

#[test]
fn oom_killed_build_container_fails_the_job_promptly() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{"oom": {"stage": "test", "image": "sim/oom-after:1",
        "script": ["echo script-started", "sleep 60", "echo not-reached"]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let output = world.run_single(1);
    let id = run.job_id("oom").expect("job queued");
    assert_system_failure(
        &world,
        id,
        &output,
        "ERROR: Job failed: container build terminated: exit code 137, reason OOMKilled",
    );
}
