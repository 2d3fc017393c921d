//! Edges of the lifecycle: stops while the pod is still starting, and job names that are no
//! valid label values.

mod e2e_support;

use coordinator_sim::{Dialect, Options};
use e2e_support::{assert_failed, log_of, show, Setup, World};

const SLOW: &str = r#"{"slow": {"stage": "test", "image": "sim/slow-start:30",
    "script": ["echo not-reached"]}}"#;

#[test]
fn job_timeout_while_the_pod_starts_deletes_it() {
    let world = World::build(Setup {
        coordinator: Options {
            job_timeout_secs: 2,
            ..Options::default()
        },
        ..Setup::default()
    });
    let repo = world.repo(&[("README", "e2e\n")]);
    let run = world.pipeline(SLOW, &repo);
    let output = world.run_single(1);
    let record = world.finished(run.job_id("slow").expect("job queued"));
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(
        record.failure_reason.as_deref(),
        Some("job_execution_timeout"),
        "{log}"
    );
    assert!(
        log.contains(
            "ERROR: Job failed: execution took longer than 2s (during waiting for the pod)"
        ),
        "{log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn sigterm_while_the_pod_starts_deletes_it_and_exits() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = world.repo(&[("README", "e2e\n")]);
    let run = world.pipeline(SLOW, &repo);
    let id = run.job_id("slow").expect("job queued");
    let runner = world.spawn(&["run"]);
    world.wait_for_log(id, "ContainerCreating");
    runner.terminate();
    let output = runner.wait();
    let record = world.finished(id);
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_failed(&record, "runner_system_failure", &log);
    assert!(
        log.contains("ERROR: Job failed: the runner is shutting down"),
        "{log}"
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn job_name_that_is_no_label_value_still_runs() {
    let labels = "    [runners.kubernetes.pod_labels]\n      job = \"$CI_JOB_NAME\"\n";
    let world = World::start(Dialect::GitLab, "", labels);
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{"build: ünïcode & spaces/1": {"stage": "test", "script": ["echo ran"]}}"#;
    let run = world.pipeline(pipeline, &repo);
    let output = world.run_single(1);
    let record = world.finished(run.job_id("build: ünïcode & spaces/1").expect("job queued"));
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    let pod: serde_json::Value = world
        .kube
        .requests()
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .and_then(|r| serde_json::from_slice(&r.body).ok())
        .expect("a pod create");
    let value = pod["metadata"]["labels"]["job"]
        .as_str()
        .unwrap_or("<none>")
        .to_string();
    let label_value =
        regex::Regex::new(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$").expect("pattern");
    assert!(label_value.is_match(&value), "label value {value:?}");
    assert_eq!(value, "build___n_code___spaces_1");
}
