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

#[test]
fn oom_killed_service_is_seen_when_watches_are_refused() {
    let world = World::start(Dialect::GitLab, "", "");
    world.kube.set_watch_mode(kube_sim::WatchMode::Refuse);
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

fn delete_while_running(
    grace: Duration,
    watch: kube_sim::WatchMode,
) -> (World, u64, String, std::process::Output) {
    let world = World::start(Dialect::GitLab, "", "");
    world.kube.set_watch_mode(watch);
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{"deleted": {"stage": "test",
        "script": ["echo script-started", "sleep 60", "echo not-reached"]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let id = run.job_id("deleted").expect("job queued");
    let runner = world.spawn_single();
    world.wait_for_log(id, "script-started");
    let pod = world.job_pod();
    let name = pod["metadata"]["name"]
        .as_str()
        .expect("pod name")
        .to_string();
    assert!(world.kube.delete_pod(NAMESPACE, &name, grace));
    let output = runner.wait();
    (world, id, name, output)
}

#[test]
fn pod_deleted_at_once_is_a_system_failure() {
    let (world, id, name, output) =
        delete_while_running(Duration::ZERO, kube_sim::WatchMode::Normal);
    let text = format!("ERROR: Job failed: pod {name} was deleted while the job was running");
    assert_system_failure(&world, id, &output, &text);
}

#[test]
fn pod_deleted_is_seen_when_watches_close_at_once() {
    let (world, id, name, output) =
        delete_while_running(Duration::from_secs(1), kube_sim::WatchMode::CloseAtOnce);
    assert_system_failure(
        &world,
        id,
        &output,
        &format!("ERROR: Job failed: pod {name}"),
    );
}

// Regression: a pod watch that failed for good used to end the pod monitor's watching for the
// rest of the job, so a service killed afterwards went unnoticed until the script ended.
#[test]
fn pod_monitor_watches_again_after_its_watch_failed() {
    let world = World::start(Dialect::GitLab, "", "");
    world.kube.set_watch_mode(kube_sim::WatchMode::CloseAtOnce);
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{"oom": {"stage": "test",
        "services": [{"name": "sim/oom-after:4", "command": ["sleep", "60"]}],
        "script": ["echo script-started", "sleep 60", "echo not-reached"]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let id = run.job_id("oom").expect("job queued");
    let runner = world.spawn_single();
    world.wait_for_log(id, "script-started");
    // Enough failed watch requests in a row for the watch to give up.
    world
        .kube
        .fail_next("watch", 5, kube_sim::Failure::ServerError);
    let output = runner.wait();
    assert_system_failure(
        &world,
        id,
        &output,
        "ERROR: Job failed: container svc-0 terminated: exit code 137, reason OOMKilled",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("starting the watch again"), "{stderr}");
}
