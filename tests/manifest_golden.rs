//! The pods planned for the seed's example configs (loaded from `fixtures/config/` with
//! `config::load`), compared with the stored manifests under `fixtures/manifests/`; every
//! planned pod also passes the Kubernetes simulator's validation. Regenerate them with
//! `UPDATE_GOLDEN=1 cargo test --test manifest_golden` and review the diff.

mod manifest_support;

use std::path::PathBuf;

use alloy_runner::config::RunnerConfig;
use alloy_runner::coordinator::job::Job;
use manifest_support::*;
use serde_json::{json, Value};

/// The whole plan as one JSON value (the bearer token only as whether there is one).
fn plan_as_json(runner: &RunnerConfig, job: &Job) -> Value {
    let plan = plan_for(runner, job, &[]);
    json!({
        "namespace": plan.namespace,
        "pod": plan.pod,
        "secrets": plan.secrets,
        "bearer_token": plan.bearer_token.is_some(),
        "notices": plan.notices,
        "layout": {
            "builds_dir": plan.layout.builds_dir,
            "project_dir": plan.layout.project_dir,
            "scripts_dir": plan.layout.scripts_dir,
            "helper_bin": plan.layout.helper_bin,
        },
    })
}

fn assert_golden(name: &str, actual: Value) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/manifests/{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&actual).expect("a plan serialises") + "\n";
        std::fs::write(&path, text).expect("the golden file is writable");
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err} (UPDATE_GOLDEN=1 writes it)", path.display()));
    let expected: Value = serde_json::from_str(&text).expect("the golden file is JSON");
    assert_eq!(
        actual,
        expected,
        "{} differs; got:\n{}",
        path.display(),
        serde_json::to_string_pretty(&actual).unwrap_or_default()
    );
}

#[test]
fn seed_kubernetes_example_with_the_fixture_job() {
    assert_golden(
        "seed_kubernetes",
        plan_as_json(&seed_runner(), &fixture_job()),
    );
}

#[test]
fn seed_volumes_example_with_the_fixture_job() {
    assert_golden(
        "seed_volumes",
        plan_as_json(&seed_volumes_runner(), &fixture_job()),
    );
}

#[test]
fn seed_example_with_every_pod_key_set() {
    assert_golden("seed_full", plan_as_json(&full_runner(), &fixture_job()));
}

#[test]
fn minimal_config_with_a_bare_job() {
    assert_golden("minimal", plan_as_json(&minimal_runner(), &bare_job()));
}
