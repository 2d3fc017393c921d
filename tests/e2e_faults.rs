//! Faults of either server while a job runs: the job still reaches its true result, the log
//! stays whole and no pod is left behind.

mod e2e_support;

use coordinator_sim::{Dialect, Endpoint};
use e2e_support::{assert_failed, log_of, show, World};
use kube_sim::{Failure, WatchMode};

const PIPELINE: &str = r#"{"job": {"stage": "test", "script": ["echo job-ran", "exit 5"]}}"#;

/// Runs the pipeline's one job and returns its record and log.
fn run(world: &World, pipeline: &str) -> (coordinator_sim::JobRecord, String) {
    let repo = world.repo(&[("README", "e2e\n")]);
    let run = world.pipeline(pipeline, &repo);
    let output = world.run_single(1);
    let record = world.finished(run.job_id("job").expect("job queued"));
    let log = format!("{}\n{}", log_of(&record), show(&output));
    (record, log)
}

/// How many pod creates reached the Kubernetes simulator.
fn pod_creates(world: &World) -> usize {
    let requests = world.kube.requests();
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .count()
}

fn assert_true_result(record: &coordinator_sim::JobRecord, log: &str) {
    assert_failed(record, "script_failure", log);
    assert_eq!(record.exit_code, Some(5), "{log}");
    assert!(log.contains("job-ran\n"), "{log}");
}

#[test]
fn pod_create_that_timed_out_after_commit_uses_the_pod_it_made() {
    let world = World::start(Dialect::GitLab, "", "");
    world
        .kube
        .fail_next("create", 1, Failure::TimeoutAfterCommit);
    let (record, log) = run(&world, PIPELINE);
    // The runner looks for the pod the failed answer may have created, and uses it.
    assert_true_result(&record, &log);
    assert_eq!(pod_creates(&world), 1, "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new(), "{log}");
}

#[test]
fn refused_watches_fall_back_to_polling() {
    let world = World::start(Dialect::GitLab, "", "");
    world.kube.set_watch_mode(WatchMode::Refuse);
    let (record, log) = run(&world, PIPELINE);
    assert_true_result(&record, &log);
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

// Regression: the runner used to re-watch forever from the same version and time out waiting
// for a pod that was long running.
#[test]
fn watches_that_close_at_once_still_see_the_pod_start() {
    let world = World::start(Dialect::AlloyCi, "", "");
    world.kube.set_watch_mode(WatchMode::CloseAtOnce);
    let (record, log) = run(&world, PIPELINE);
    assert_true_result(&record, &log);
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn rejected_trace_range_is_resent_and_the_log_stays_whole() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{"job": {"stage": "test",
        "script": ["seq 1 200000", "echo job-ran", "exit 5"]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let id = run.job_id("job").expect("job queued");
    world.coordinator.reject_next_trace_range(id);
    let output = world.run_single(1);
    let record = world.finished(id);
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_true_result(&record, &log);
    let expected: String = (1..=200_000).map(|n| format!("{n}\n")).collect();
    let trace = String::from_utf8_lossy(&record.trace_incremental).into_owned();
    assert!(trace.contains(&expected), "incremental trace incomplete");
    assert!(
        world.coordinator.violations().is_empty(),
        "{:?}",
        world.coordinator.violations()
    );
}

#[test]
fn failing_final_updates_are_retried_until_accepted() {
    let world = World::start(Dialect::GitLab, "", "");
    world.coordinator.fail_next(Endpoint::UpdateJob, 2, 502);
    let (record, log) = run(&world, PIPELINE);
    assert_true_result(&record, &log);
    assert!(
        world.coordinator.requests(Endpoint::UpdateJob) >= 3,
        "two failed updates and the accepted one"
    );
}

#[test]
fn server_error_on_the_first_pod_create_is_tried_again() {
    let world = World::start(Dialect::GitLab, "", "");
    world.kube.fail_next("create", 1, Failure::ServerError);
    let (record, log) = run(&world, PIPELINE);
    assert_true_result(&record, &log);
    assert_eq!(
        pod_creates(&world),
        2,
        "one refused, one tried again: {log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new(), "{log}");
}

#[test]
fn throttled_job_request_is_tried_again_after_retry_after() {
    let world = World::start(Dialect::GitLab, "", "");
    world.coordinator.throttle_next(Endpoint::RequestJob, 1, 1);
    let (record, log) = run(&world, PIPELINE);
    assert_true_result(&record, &log);
    assert!(world.coordinator.requests(Endpoint::RequestJob) >= 2);
}

#[test]
fn failing_trace_patches_lose_no_output() {
    let world = World::start(Dialect::GitLab, "", "");
    world.coordinator.fail_next(Endpoint::PatchTrace, 3, 500);
    let pipeline = r#"{"job": {"stage": "test",
        "script": ["seq 1 100000", "echo job-ran", "exit 5"]}}"#;
    let (record, log) = run(&world, pipeline);
    assert_true_result(&record, &log);
    let expected: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
    let trace = String::from_utf8_lossy(&record.trace_incremental).into_owned();
    assert!(trace.contains(&expected), "incremental trace incomplete");
    assert!(
        log_of(&record).contains(&expected),
        "final trace incomplete"
    );
}

#[test]
fn slow_kubernetes_api_still_runs_the_job() {
    let world = World::start(Dialect::AlloyCi, "", "");
    world
        .kube
        .set_latency(std::time::Duration::from_millis(300));
    let (record, log) = run(&world, PIPELINE);
    assert_true_result(&record, &log);
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn failing_pod_delete_is_tried_again() {
    let world = World::start(Dialect::GitLab, "", "");
    world.kube.fail_next("delete", 2, Failure::ServerError);
    let (record, log) = run(&world, PIPELINE);
    assert_true_result(&record, &log);
    assert_eq!(world.pods_left(), Vec::<String>::new(), "{log}");
}

#[test]
fn forbidden_event_list_still_reports_the_start_failure() {
    let world = e2e_support::World::build(e2e_support::Setup {
        kube_rules: Some(vec![kube_sim::Rule::new(
            &[],
            &["pods", "pods/exec", "secrets"],
            &["*"],
        )]),
        ..e2e_support::Setup::default()
    });
    let pipeline = r#"{"job": {"stage": "test", "image": "node:10:16.0", "script": ["true"]}}"#;
    let (record, log) = run(&world, pipeline);
    assert_eq!(
        record.failure_reason.as_deref(),
        Some("script_failure"),
        "{log}"
    );
    assert!(log.contains("cannot start: InvalidImageName"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new(), "{log}");
}
