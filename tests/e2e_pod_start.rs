//! Pods that never reach Running: the job fails on the first sight of the cause, with the
//! kubelet's reason and message in the trace, and the pod is deleted.

mod e2e_support;

use std::collections::BTreeMap;

use coordinator_sim::Dialect;
use e2e_support::{log_of, show, World, NAMESPACE};
use kube_sim::SimOptions;

/// A one-job pipeline whose build image is `image`.
fn pipeline_with_image(image: &str) -> String {
    format!(
        r#"{{"start": {{"stage": "test", "image": "{image}", "script": ["echo never-here"]}}}}"#
    )
}

/// Runs the one job of `pipeline` and returns its record, the log and the runner's output.
fn run_job(world: &World, pipeline: &str) -> (coordinator_sim::JobRecord, String, String) {
    let repo = world.repo(&[("README", "e2e\n")]);
    let run = world.pipeline(pipeline, &repo);
    let output = world.run_single(1);
    let id = run.job_id("start").expect("job queued");
    let record = world.finished(id);
    let log = log_of(&record);
    (record, log, show(&output))
}

fn assert_script_failure(record: &coordinator_sim::JobRecord, log: &str, output: &str) {
    assert_eq!(
        record.reported_state.as_deref(),
        Some("failed"),
        "{log}\n{output}"
    );
    assert_eq!(
        record.failure_reason.as_deref(),
        Some("script_failure"),
        "{log}"
    );
    assert_eq!(record.exit_code, None, "{log}");
    assert!(!log.contains("never-here\n"), "{log}");
    assert!(
        !log.contains("timed out"),
        "failed at once, not at poll_timeout: {log}"
    );
}

#[test]
fn invalid_image_name_fails_at_once_with_the_kubelet_message() {
    let world = World::start(Dialect::GitLab, "", "");
    let (record, log, output) = run_job(&world, &pipeline_with_image("node:10:16.0"));
    assert_script_failure(&record, &log, &output);
    assert!(
        log.contains(
            "ERROR: Job failed: container build (image node:10:16.0) cannot start: \
             InvalidImageName: Failed to apply default image tag \"node:10:16.0\": couldn't \
             parse image reference \"node:10:16.0\": invalid reference format"
        ),
        "{log}"
    );
    assert!(log.contains("WARNING: pod event InspectFailed"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn image_pull_error_fails_with_reason_and_message() {
    let world = World::start(Dialect::AlloyCi, "", "");
    let (record, log, output) = run_job(
        &world,
        &pipeline_with_image("registry.local/sim/pull-error"),
    );
    assert_script_failure(&record, &log, &output);
    assert!(
        log.contains(
            "ERROR: Job failed: container build (image registry.local/sim/pull-error) cannot \
             start: ErrImagePull: rpc error: code = NotFound"
        ) || log.contains("cannot start: ImagePullBackOff: Back-off pulling image"),
        "{log}"
    );
    assert!(
        log.contains("WARNING: pod event Failed: Failed to pull image"),
        "{log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn missing_secret_fails_with_create_container_config_error() {
    let volume = "\n    [[runners.kubernetes.volumes.secret]]\n      name = \"absent\"\n      \
                  mount_path = \"/absent\"\n";
    let world = World::start(Dialect::GitLab, "", volume);
    let (record, log, output) = run_job(&world, &pipeline_with_image("alpine:3.20"));
    assert_script_failure(&record, &log, &output);
    assert!(
        log.contains("cannot start: CreateContainerConfigError: secret \"absent\" not found"),
        "{log}"
    );
    assert!(
        log.contains("WARNING: pod event Failed: Error: secret \"absent\" not found"),
        "{log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn container_that_ends_before_running_fails_with_its_exit_code() {
    let world = World::start(Dialect::GitLab, "", "");
    let (record, log, output) = run_job(&world, &pipeline_with_image("sim/exit:1"));
    assert_script_failure(&record, &log, &output);
    assert!(
        log.contains("ERROR: Job failed: container build terminated: exit code 1, reason Error"),
        "{log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn unschedulable_pod_prints_the_scheduler_message_and_fails_at_poll_timeout() {
    let sim = SimOptions {
        node_labels: BTreeMap::from([("disk".to_string(), "hdd".to_string())]),
        ..SimOptions::default()
    };
    let kubernetes = "    poll_timeout = 3\n    [runners.kubernetes.node_selector]\n      \
                      disk = \"ssd\"\n";
    let world = World::start_with(Dialect::GitLab, sim, "", "");
    // poll_timeout is set twice otherwise: replace the section with one that says 3.
    let section = world
        .runner_section("e2e", e2e_support::RUNNER_TOKEN, "", kubernetes)
        .replace("    poll_timeout = 30\n", "");
    world.write_config(1, &[section]);
    let (record, log, output) = run_job(&world, &pipeline_with_image("alpine:3.20"));
    assert_eq!(
        record.reported_state.as_deref(),
        Some("failed"),
        "{log}\n{output}"
    );
    assert_eq!(
        record.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{log}"
    );
    assert!(
        log.contains(
            "ERROR: Job failed: timed out after 3s waiting for the pod to start: \
             pod cannot be scheduled (Unschedulable): 0/1 nodes are available: 1 node(s) \
             didn't match Pod's node affinity/selector."
        ),
        "{log}"
    );
    assert!(log.contains("WARNING: pod event FailedScheduling"), "{log}");
    assert!(world
        .kube
        .events(NAMESPACE)
        .iter()
        .any(|e| e["reason"] == "FailedScheduling"));
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn service_that_cannot_start_fails_the_job_naming_it() {
    let world = World::start(Dialect::AlloyCi, "", "");
    let pipeline = r#"{"start": {"stage": "test", "services": ["Alpine"],
        "script": ["echo never-here"]}}"#;
    let (record, log, output) = run_job(&world, pipeline);
    assert_script_failure(&record, &log, &output);
    assert!(
        log.contains(
            "ERROR: Job failed: container svc-0 (image Alpine) cannot start: InvalidImageName"
        ),
        "{log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn service_that_exits_before_running_fails_the_job() {
    let world = World::start(Dialect::GitLab, "", "");
    let pipeline = r#"{"start": {"stage": "test", "services": ["sim/exit:2"],
        "script": ["echo never-here"]}}"#;
    let (record, log, output) = run_job(&world, pipeline);
    assert_script_failure(&record, &log, &output);
    assert!(
        log.contains("ERROR: Job failed: container svc-0 terminated: exit code 2, reason Error"),
        "{log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn slow_starting_pod_is_waited_for_and_runs() {
    let world = World::start(Dialect::GitLab, "", "");
    let pipeline = r#"{"start": {"stage": "test", "image": "sim/slow-start:2",
        "script": ["echo ran-after-slow-start"]}}"#;
    let (record, log, output) = run_job(&world, pipeline);
    assert_eq!(
        record.reported_state.as_deref(),
        Some("success"),
        "{log}\n{output}"
    );
    assert!(
        log.contains("pod is Pending (build: ContainerCreating"),
        "{log}"
    );
    assert!(log.contains("ran-after-slow-start\n"), "{log}");
}

#[test]
fn pod_pending_past_poll_timeout_fails_and_is_deleted() {
    let world = World::start(Dialect::AlloyCi, "", "");
    let section = world
        .runner_section(
            "e2e",
            e2e_support::RUNNER_TOKEN,
            "",
            "    poll_timeout = 3\n",
        )
        .replace("    poll_timeout = 30\n", "");
    world.write_config(1, &[section]);
    let (record, log, output) = run_job(&world, &pipeline_with_image("sim/slow-start:60"));
    assert_eq!(
        record.reported_state.as_deref(),
        Some("failed"),
        "{log}\n{output}"
    );
    assert_eq!(
        record.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{log}"
    );
    assert!(
        log.contains(
            "ERROR: Job failed: timed out after 3s waiting for the pod to start: pod is Pending \
             (build: ContainerCreating, helper: ContainerCreating"
        ),
        "{log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}
