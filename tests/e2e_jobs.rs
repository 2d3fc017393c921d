//! A job through the whole path: coordinator simulator -> runner binary -> Kubernetes
//! simulator (a pod whose processes really run) -> trace and final state back.

mod e2e_support;

use coordinator_sim::Dialect;
use e2e_support::{log_of, show, World};

const HELLO_PIPELINE: &str = r#"{
  "hello": {"stage": "test", "script": ["cat hello.txt", "echo \"sum=$((2 + 3))\""]}
}"#;

fn hello_job_succeeds_in(dialect: Dialect) {
    let world = World::start(dialect, "", "");
    let repo = world.repo(&[("hello.txt", "hello from the repository\n")]);
    let run = world.pipeline(HELLO_PIPELINE, &repo);
    let output = world.run_single(1);
    let id = run.job_id("hello").expect("job queued");
    let record = world.finished(id);
    let log = log_of(&record);
    assert_eq!(
        record.reported_state.as_deref(),
        Some("success"),
        "{log}\n{}",
        show(&output)
    );
    assert!(log.contains("hello from the repository\n"), "{log}");
    assert!(log.contains("sum=5\n"), "{log}");
    assert!(log.contains("Job succeeded"), "{log}");
    assert!(
        world.coordinator.violations().is_empty(),
        "{:?}",
        world.coordinator.violations()
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
}

#[test]
fn hello_job_succeeds_with_gitlab() {
    hello_job_succeeds_in(Dialect::GitLab);
}

#[test]
fn hello_job_succeeds_with_alloyci() {
    hello_job_succeeds_in(Dialect::AlloyCi);
}
