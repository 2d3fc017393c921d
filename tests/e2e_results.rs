//! What the job comes to: the script's exit code, after_script, a lost exec status, the job
//! timeout, a cancel, SIGTERM to the runner, and a pod create the API refuses.

mod e2e_support;

use coordinator_sim::{CancelMode, Dialect, Options};
use e2e_support::{assert_failed, log_of, show, Setup, World, NAMESPACE};
use kube_sim::Rule;

/// Runs the one job `name` of `pipeline` with run-single and returns its record and log.
fn run(world: &World, pipeline: &str, name: &str) -> (coordinator_sim::JobRecord, String) {
    let repo = world.repo(&[("README", "e2e\n")]);
    let run = world.pipeline(pipeline, &repo);
    let output = world.run_single(1);
    let id = run.job_id(name).expect("job queued");
    let record = world.finished(id);
    let log = format!("{}\n{}", log_of(&record), show(&output));
    (record, log)
}

#[test]
fn script_exit_code_is_reported_as_a_script_failure() {
    let world = World::start(Dialect::GitLab, "", "");
    let pipeline = r#"{"three": {"stage": "test",
        "script": ["echo before-exit", "exit 3", "echo not-reached"]}}"#;
    let (record, log) = run(&world, pipeline, "three");
    assert_failed(&record, "script_failure", &log);
    assert_eq!(record.exit_code, Some(3), "{log}");
    assert!(log.contains("before-exit\n"), "{log}");
    assert!(!log.contains("not-reached\n"), "{log}");
    assert!(log.contains("ERROR: Job failed: exit code 3"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn first_failing_command_stops_the_script() {
    let world = World::start(Dialect::AlloyCi, "", "");
    let pipeline = r#"{"stop": {"stage": "test",
        "script": ["echo first", "false", "echo not-reached"]}}"#;
    let (record, log) = run(&world, pipeline, "stop");
    assert_failed(&record, "script_failure", &log);
    assert_eq!(record.exit_code, Some(1), "{log}");
    assert!(log.contains("first\n"), "{log}");
    assert!(!log.contains("not-reached\n"), "{log}");
}

#[test]
fn after_script_sees_the_status_and_its_failure_changes_nothing() {
    let world = World::start(Dialect::GitLab, "", "");
    let pipeline = r#"{"after": {"stage": "test", "script": ["echo main-ran"],
        "after_script": ["echo \"after status=$CI_JOB_STATUS\"", "exit 7"]}}"#;
    let (record, log) = run(&world, pipeline, "after");
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    assert_eq!(record.failure_reason, None, "{log}");
    assert!(log.contains("after status=success\n"), "{log}");
    assert!(
        log.contains("after_script failed with exit code 7 (ignored)"),
        "{log}"
    );
    assert!(log.contains("Job succeeded"), "{log}");
}

#[test]
fn after_script_runs_after_a_failed_script_with_status_failed() {
    let world = World::start(Dialect::AlloyCi, "", "");
    let pipeline = r#"{"after": {"stage": "test", "script": ["exit 4"],
        "after_script": ["echo \"after status=$CI_JOB_STATUS\""]}}"#;
    let (record, log) = run(&world, pipeline, "after");
    assert_eq!(record.reported_state.as_deref(), Some("failed"), "{log}");
    assert_eq!(record.exit_code, Some(4), "{log}");
    assert!(log.contains("after status=failed\n"), "{log}");
}

#[test]
fn lost_exec_status_is_a_system_failure_never_success() {
    let world = World::start(Dialect::GitLab, "", "");
    // The script's stream is cut after 200 KB of output, before its status arrives; the
    // sources stage prints far less.
    world.kube.drop_exec_after(Some(200_000));
    let pipeline = r#"{"lost": {"stage": "test",
        "script": ["head -c 1000000 /dev/zero | tr '\\0' 'x'", "echo", "echo not-reached"]}}"#;
    let (record, log) = run(&world, pipeline, "lost");
    assert_failed(&record, "runner_system_failure", &log);
    assert_eq!(record.exit_code, None, "{log}");
    assert!(
        log.contains("stage step_script ended without an exit status"),
        "{log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn job_timeout_stops_the_script_and_deletes_the_pod() {
    let world = World::build(Setup {
        coordinator: Options {
            job_timeout_secs: 3,
            ..Options::default()
        },
        ..Setup::default()
    });
    let pipeline = r#"{"slow": {"stage": "test",
        "script": ["echo script-started", "sleep 60", "echo not-reached"]}}"#;
    let (record, log) = run(&world, pipeline, "slow");
    assert_failed(&record, "job_execution_timeout", &log);
    assert!(
        log.contains("ERROR: Job failed: execution took longer than 3s"),
        "{log}"
    );
    assert!(!log.contains("not-reached\n"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

fn cancel_stops_the_script(dialect: Dialect) {
    let world = World::start(dialect, "", "");
    let repo = world.repo(&[("README", "e2e\n")]);
    // The runner hears of a cancel in the answer to its next trace PATCH; output that keeps
    // coming makes that within one patch interval (a silent script waits for the keep-alive).
    let pipeline = r#"{"cancel": {"stage": "test", "script": ["echo script-started",
        "for i in $(seq 1 120); do echo tick; sleep 0.5; done", "echo not-reached"]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let id = run.job_id("cancel").expect("job queued");
    let runner = world.spawn_single();
    world.wait_for_log(id, "script-started");
    world
        .coordinator
        .cancel_job(id, CancelMode::JobStatusHeader);
    let output = runner.wait();
    let record = world.finished(id);
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(record.state, coordinator_sim::JobState::Canceled, "{log}");
    assert_eq!(record.reported_state.as_deref(), Some("failed"), "{log}");
    assert!(log.contains("ERROR: Job failed: canceled"), "{log}");
    assert!(!log.contains("not-reached\n"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn cancel_from_gitlab_stops_the_script_and_deletes_the_pod() {
    cancel_stops_the_script(Dialect::GitLab);
}

#[test]
fn cancel_from_alloyci_stops_the_script_and_deletes_the_pod() {
    cancel_stops_the_script(Dialect::AlloyCi);
}

#[test]
fn sigterm_to_run_fails_the_job_deletes_the_pod_and_exits() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{"term": {"stage": "test",
        "script": ["echo script-started", "sleep 60", "echo not-reached"]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let id = run.job_id("term").expect("job queued");
    let runner = world.spawn(&["run"]);
    world.wait_for_log(id, "script-started");
    runner.terminate();
    let output = runner.wait();
    let record = world.finished(id);
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_failed(&record, "runner_system_failure", &log);
    assert!(
        log.contains("ERROR: Job failed: the runner is shutting down"),
        "{log}"
    );
    assert!(!log.contains("not-reached\n"), "{log}");
    assert_eq!(
        output.status.code(),
        Some(0),
        "a clean exit after SIGTERM: {log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

/// Everything but creating pods.
fn rules_without_pod_create() -> Vec<Rule> {
    vec![
        Rule::new(&[], &["pods"], &["get", "list", "watch", "delete"]),
        Rule::new(&[], &["pods/exec", "pods/log", "events", "secrets"], &["*"]),
    ]
}

#[test]
fn refused_pod_create_reports_the_api_message_and_leaves_nothing() {
    let world = World::build(Setup {
        kube_rules: Some(rules_without_pod_create()),
        ..Setup::default()
    });
    let pipeline = r#"{"refused": {"stage": "test", "script": ["echo not-reached"]}}"#;
    let (record, log) = run(&world, pipeline, "refused");
    assert_failed(&record, "runner_system_failure", &log);
    assert!(
        log.contains(
            "ERROR: Job failed: creating the pod: create pod runner-e2e-project-1-concurrent-0- \
             in namespace ci: pods is forbidden: User \"system:serviceaccount:ci:runner\" \
             cannot create resource \"pods\" in API group \"\" in the namespace \"ci\" \
             (http 403, Forbidden)"
        ),
        "{log}"
    );
    assert!(world.kube.pods(NAMESPACE).is_empty());
    let deletes: Vec<_> = world
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert!(
        deletes.is_empty(),
        "nothing was created, nothing to delete: {deletes:?}"
    );
}

#[test]
fn registry_secret_is_deleted_when_the_pod_create_fails() {
    let world = World::build(Setup {
        kube_rules: Some(rules_without_pod_create()),
        ..Setup::default()
    });
    let pipeline = r#"{"registry": {"stage": "test", "image": "registry.local/team/app:1",
        "script": ["echo not-reached"]}}"#;
    let mut payload = world.payload(pipeline, "registry", &[]);
    payload["credentials"] = serde_json::json!([{"type": "registry", "url": "registry.local",
        "username": "ci-user", "password": "ci-password"}]);
    let id = world.enqueue(payload);
    let output = world.run_single(1);
    let record = world.finished(id);
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(
        record.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{log}"
    );
    assert!(log.contains("cannot create resource \"pods\""), "{log}");
    let requests = world.kube.requests();
    let created = requests
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/secrets") && r.code == 201)
        .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .expect("a registry secret was created");
    let deleted: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/secrets/") && r.code == 200)
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?} after creating {created}");
    assert!(!log.contains("ci-password"), "{log}");
}

/// Starts a job that prints until stopped, with an after_script that reports the status.
fn start_ticking_job(world: &World) -> (u64, e2e_support::Running) {
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{"ticking": {"stage": "test", "script": ["echo script-started",
        "for i in $(seq 1 120); do echo tick; sleep 0.5; done", "echo not-reached"],
        "after_script": ["echo \"after status=$CI_JOB_STATUS\""]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let id = run.job_id("ticking").expect("job queued");
    let runner = world.spawn_single();
    world.wait_for_log(id, "script-started");
    (id, runner)
}

#[test]
fn graceful_cancel_still_runs_after_script() {
    let world = World::start(Dialect::GitLab, "", "");
    let (id, runner) = start_ticking_job(&world);
    world.coordinator.cancel_job(id, CancelMode::Canceling);
    let output = runner.wait();
    let record = world.finished(id);
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(record.reported_state.as_deref(), Some("failed"), "{log}");
    assert!(log.contains("after status=canceled\n"), "{log}");
    assert!(!log.contains("not-reached\n"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn forbidden_trace_update_stops_the_job_and_deletes_the_pod() {
    let world = World::start(Dialect::AlloyCi, "", "");
    let (id, runner) = start_ticking_job(&world);
    world.coordinator.cancel_job(id, CancelMode::Forbidden);
    let output = runner.wait();
    let record = world.coordinator.job(id).expect("job known");
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(record.state, coordinator_sim::JobState::Canceled, "{log}");
    assert_eq!(
        record.reported_state, None,
        "the coordinator refuses every update: {log}"
    );
    assert!(
        log.contains("the coordinator answered 403 to a trace patch"),
        "{log}"
    );
    assert!(log.contains("job 1: failed: canceled"), "{log}");
    assert!(!log.contains("not-reached\n"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new(), "{log}");
}

#[test]
fn job_timeout_still_runs_after_script() {
    let world = World::build(Setup {
        coordinator: Options {
            job_timeout_secs: 3,
            ..Options::default()
        },
        ..Setup::default()
    });
    let pipeline = r#"{"slow": {"stage": "test", "script": ["sleep 60", "echo not-reached"],
        "after_script": ["echo \"after status=$CI_JOB_STATUS\""]}}"#;
    let (record, log) = run(&world, pipeline, "slow");
    assert_eq!(
        record.failure_reason.as_deref(),
        Some("job_execution_timeout"),
        "{log}"
    );
    assert!(log.contains("after status=failed\n"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

// Regression: a 500 on the exec upgrade (the command never started) used to fail the job.
#[test]
fn exec_refused_once_with_a_server_error_is_tried_again() {
    let world = World::start(Dialect::GitLab, "", "");
    world
        .kube
        .fail_next("exec", 1, kube_sim::Failure::ServerError);
    let pipeline = r#"{"exec": {"stage": "test", "script": ["echo ran"]}}"#;
    let (record, log) = run(&world, pipeline, "exec");
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    assert!(log.contains("\nran\n"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn registry_secret_is_owned_by_the_pod_and_deleted_after_the_job() {
    let world = World::start(Dialect::GitLab, "", "");
    let pipeline = r#"{"registry": {"stage": "test", "image": "registry.local/team/app:1",
        "script": ["echo ran"]}}"#;
    let mut payload = world.payload(pipeline, "registry", &[]);
    payload["credentials"] = serde_json::json!([{"type": "registry", "url": "registry.local",
        "username": "ci-user", "password": "ci-password"}]);
    let id = world.enqueue(payload);
    let output = world.run_single(1);
    let record = world.finished(id);
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");

    let requests = world.kube.requests();
    let patch = requests
        .iter()
        .find(|r| r.method == "PATCH" && r.path.contains("/secrets/"))
        .expect("the secret got an owner");
    assert_eq!(patch.code, 200);
    let body: serde_json::Value = serde_json::from_slice(&patch.body).expect("json patch");
    let owner = &body["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Pod");
    let owner_name = owner["name"].as_str().unwrap_or_default();
    assert!(owner_name.starts_with("runner-e2e-project-"), "{owner}");
    assert!(
        owner["uid"].as_str().is_some_and(|uid| !uid.is_empty()),
        "{owner}"
    );
    let deletes = requests
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/secrets/") && r.code == 200)
        .count();
    assert_eq!(deletes, 1, "cleanup still deletes the secret");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}
