//! `run` as a service: several jobs at once under `concurrent`, over two runners, and one at
//! a time under a runner's `limit`.

mod e2e_support;

use std::time::Duration;

use coordinator_sim::Dialect;
use e2e_support::{log_of, show, TempDir, World, RUNNER_TOKEN};

/// Two jobs of one stage that each wait (up to 20 s) until both have started.
const RENDEZVOUS: &str = r#"{
  "one": {"stage": "test", "script": ["touch /sync/one",
    "for i in $(seq 1 200); do test -e /sync/two && exit 0; sleep 0.1; done; exit 1"]},
  "two": {"stage": "test", "script": ["touch /sync/two",
    "for i in $(seq 1 200); do test -e /sync/one && exit 0; sleep 0.1; done; exit 1"]}
}"#;

/// Two jobs of one stage that fail if they ever run at the same time.
const EXCLUSIVE: &str = r#"{
  "one": {"stage": "test", "script": ["mkdir /sync/lock", "sleep 1", "rmdir /sync/lock"]},
  "two": {"stage": "test", "script": ["mkdir /sync/lock", "sleep 1", "rmdir /sync/lock"]}
}"#;

fn sync_volume(sync: &TempDir) -> String {
    format!(
        "    [[runners.kubernetes.volumes.host_path]]\n      name = \"sync\"\n      \
         mount_path = \"/sync\"\n      host_path = \"{}\"\n",
        sync.path().display()
    )
}

/// Runs `run` until both jobs of `pipeline` are done, then stops it with SIGTERM; returns
/// both records' logs.
fn run_both(world: &World, pipeline: &str) -> Vec<(coordinator_sim::JobRecord, String)> {
    let repo = world.repo(&[("README", "e2e\n")]);
    let run = world.pipeline(pipeline, &repo);
    let runner = world.spawn(&["run"]);
    let ids = [run.job_id("one"), run.job_id("two")].map(|id| id.expect("job queued"));
    let records: Vec<_> = ids
        .iter()
        .map(|id| {
            world
                .coordinator
                .wait_for_job_finished(*id, Duration::from_secs(60))
        })
        .collect();
    runner.terminate();
    let output = runner.wait();
    assert!(output.status.code().is_some(), "{}", show(&output));
    records
        .into_iter()
        .zip(ids)
        .map(|(record, id)| {
            let record = record.unwrap_or_else(|| panic!("job {id} not done\n{}", show(&output)));
            let log = format!("{}\n{}", log_of(&record), show(&output));
            (record, log)
        })
        .collect()
}

#[test]
fn concurrent_two_runs_two_jobs_at_once() {
    let sync = TempDir::new("sync");
    let world = World::start(Dialect::GitLab, "", &sync_volume(&sync));
    let section = world.runner_section("e2e", RUNNER_TOKEN, "", &sync_volume(&sync));
    world.write_config(2, &[section]);
    for (record, log) in run_both(&world, RENDEZVOUS) {
        assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    }
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn two_runners_each_take_one_job_at_once() {
    let sync = TempDir::new("sync");
    let world = World::start(Dialect::AlloyCi, "", "");
    let second_token = "e2e-runner-token-2";
    world.coordinator.add_runner(second_token);
    let first = world.runner_section("first", RUNNER_TOKEN, "  limit = 1\n", &sync_volume(&sync));
    let second = world.runner_section("second", second_token, "  limit = 1\n", &sync_volume(&sync));
    world.write_config(2, &[first, second]);
    let results = run_both(&world, RENDEZVOUS);
    for (record, log) in &results {
        assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    }
    let mut names: Vec<bool> = results
        .iter()
        .map(|(record, _)| log_of(record).contains("\n  on first\n"))
        .collect();
    names.sort();
    assert_eq!(names, vec![false, true], "one job on each runner");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn limit_one_runs_jobs_one_after_the_other() {
    let sync = TempDir::new("sync");
    let world = World::start(Dialect::GitLab, "", "");
    let section = world.runner_section("e2e", RUNNER_TOKEN, "  limit = 1\n", &sync_volume(&sync));
    world.write_config(2, &[section]);
    for (record, log) in run_both(&world, EXCLUSIVE) {
        assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    }
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn sigterm_fails_every_job_in_flight_and_deletes_their_pods() {
    let world = World::start(Dialect::GitLab, "", "");
    let section = world.runner_section("e2e", RUNNER_TOKEN, "", "");
    world.write_config(2, &[section]);
    let repo = world.repo(&[("README", "e2e\n")]);
    let pipeline = r#"{
      "one": {"stage": "test", "script": ["echo started-one", "sleep 60", "echo not-reached"]},
      "two": {"stage": "test", "script": ["echo started-two", "sleep 60", "echo not-reached"]}
    }"#;
    let run = world.pipeline(pipeline, &repo);
    let ids = [run.job_id("one"), run.job_id("two")].map(|id| id.expect("job queued"));
    let runner = world.spawn(&["run"]);
    world.wait_for_log(ids[0], "started-one");
    world.wait_for_log(ids[1], "started-two");
    runner.terminate();
    let output = runner.wait();
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    for id in ids {
        let record = world.finished(id);
        let log = log_of(&record);
        assert_eq!(record.reported_state.as_deref(), Some("failed"), "{log}");
        assert_eq!(
            record.failure_reason.as_deref(),
            Some("runner_system_failure"),
            "{log}"
        );
        assert!(
            log.contains("ERROR: Job failed: the runner is shutting down"),
            "{log}"
        );
    }
    assert_eq!(world.pods_left(), Vec::<String>::new());
}
