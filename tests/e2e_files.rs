//! Cache and artifacts end to end: a two-stage pipeline whose second job uses the first one's
//! artifacts and cache (kept on a PVC the simulator's kubelet keeps between pods).

mod e2e_support;

use coordinator_sim::Dialect;
use e2e_support::{log_of, show, World};

const PIPELINE: &str = r#"{
  "stages": ["build", "test"],
  "cache": {"key": "deps-$CI_COMMIT_REF_NAME", "paths": ["deps/"]},
  "compile": {
    "stage": "build",
    "script": [
      "mkdir -p out deps",
      "echo built-by-compile > out/result.txt",
      "if [ -f deps/marker ]; then echo cache-hit; else echo cache-miss; fi",
      "echo kept > deps/marker"
    ],
    "artifacts": {"name": "out", "paths": ["out/"], "expire_in": "1 day"}
  },
  "check": {
    "stage": "test",
    "script": ["cat out/result.txt", "cat deps/marker"],
    "dependencies": ["compile"]
  }
}"#;

const CACHE_VOLUME: &str = "
    [[runners.kubernetes.volumes.pvc]]
      name = \"runner-cache\"
      mount_path = \"/cache\"";

fn artifacts_and_cache_pass_between_stages(dialect: Dialect) {
    let world = World::start(dialect, "  cache_dir = \"/cache\"", CACHE_VOLUME);
    let repo = world.repo(&[("README.md", "demo\n")]);
    let run = world.pipeline(PIPELINE, &repo);
    let output = world.run_single(2);

    let compile = world.finished(run.job_id("compile").expect("compile queued"));
    let compile_log = log_of(&compile);
    assert_eq!(
        compile.reported_state.as_deref(),
        Some("success"),
        "{compile_log}\n{}",
        show(&output)
    );
    assert!(compile_log.contains("cache-miss\n"), "{compile_log}");
    assert_eq!(compile.artifacts_filename.as_deref(), Some("out.zip"));
    assert_eq!(compile.artifacts_expire_in.as_deref(), Some("1 day"));
    let zip = compile.artifacts.as_ref().expect("artifacts uploaded");
    assert_eq!(zip_listing(zip), vec!["out/", "out/result.txt"]);

    let check = world.finished(run.job_id("check").expect("check queued"));
    let check_log = log_of(&check);
    assert_eq!(
        check.reported_state.as_deref(),
        Some("success"),
        "{check_log}\n{}",
        show(&output)
    );
    assert!(check_log.contains("built-by-compile\n"), "{check_log}");
    assert!(check_log.contains("kept\n"), "{check_log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn artifacts_and_cache_pass_between_stages_with_gitlab() {
    artifacts_and_cache_pass_between_stages(Dialect::GitLab);
}

#[test]
fn artifacts_and_cache_pass_between_stages_with_alloyci() {
    artifacts_and_cache_pass_between_stages(Dialect::AlloyCi);
}

/// The entry names of a zip, read with Python's zipfile (an independent reader).
fn zip_listing(path: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; print('\\n'.join(sorted(zipfile.ZipFile(sys.argv[1]).namelist())))"])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

const WHEN_PIPELINE: &str = r#"{
  "fails_on_failure": {
    "script": ["echo report > report.txt", "exit 4"],
    "artifacts": {"name": "report", "paths": ["report.txt"], "when": "on_failure"}
  },
  "fails_on_success": {
    "script": ["echo report > report.txt", "exit 4"],
    "artifacts": {"paths": ["report.txt"], "when": "on_success"}
  },
  "passes_always": {
    "script": ["echo report > report.txt"],
    "artifacts": {"paths": ["report.txt"], "when": "always"}
  },
  "passes_on_failure": {
    "script": ["echo report > report.txt"],
    "artifacts": {"paths": ["report.txt"], "when": "on_failure"}
  }
}"#;

#[test]
fn artifacts_are_uploaded_according_to_when() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = world.repo(&[("README.md", "demo\n")]);
    let run = world.pipeline(WHEN_PIPELINE, &repo);
    let output = world.run_single(4);
    let record = |name: &str| world.finished(run.job_id(name).expect("job queued"));

    let failed = record("fails_on_failure");
    assert_eq!(
        failed.reported_state.as_deref(),
        Some("failed"),
        "{}",
        show(&output)
    );
    assert_eq!(failed.exit_code, Some(4));
    assert_eq!(failed.artifacts_filename.as_deref(), Some("report.zip"));
    assert_eq!(record("fails_on_success").artifacts, None);
    assert!(record("passes_always").artifacts.is_some());
    let skipped = record("passes_on_failure");
    assert_eq!(skipped.reported_state.as_deref(), Some("success"));
    assert_eq!(skipped.artifacts, None);
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

/// A job uploads a hand-made zip with a `../` entry as its artifacts; the next stage must refuse
/// to extract it, name the entry, and fail without running its script.
const HOSTILE_PIPELINE: &str = r#"{
  "stages": ["build", "test"],
  "evil": {
    "stage": "build",
    "cache": {"key": "unused", "paths": ["nothing/"]},
    "script": [
      "python3 -c \"import zipfile; z = zipfile.ZipFile('evil.zip', 'w'); z.writestr('ok.txt', 'fine'); z.writestr('../escaped.txt', 'owned'); z.close()\"",
      "printf '%s' \"$CI_JOB_TOKEN\" > /tmp/token",
      "/alloy-runner/scripts/bin/alloy-runner helper upload-artifacts --url \"$CI_SERVER_URL\" --job-id \"$CI_JOB_ID\" --token-file /tmp/token --file evil.zip"
    ]
  },
  "victim": {
    "stage": "test",
    "script": ["echo the script must not run"],
    "dependencies": ["evil"]
  }
}"#;

#[test]
fn a_hostile_dependency_archive_is_refused_with_the_entry_named() {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = world.repo(&[("README.md", "demo\n")]);
    let run = world.pipeline(HOSTILE_PIPELINE, &repo);
    let output = world.run_single(2);

    let evil = world.finished(run.job_id("evil").expect("evil queued"));
    assert_eq!(
        evil.reported_state.as_deref(),
        Some("success"),
        "{}\n{}",
        log_of(&evil),
        show(&output)
    );
    assert!(evil.artifacts.is_some(), "{}", log_of(&evil));
    let victim = world.finished(run.job_id("victim").expect("victim queued"));
    let log = log_of(&victim);
    assert_eq!(victim.reported_state.as_deref(), Some("failed"), "{log}");
    assert_eq!(
        victim.failure_reason.as_deref(),
        Some("runner_system_failure"),
        "{log}"
    );
    assert!(log.contains("../escaped.txt"), "{log}");
    assert!(!log.contains("the script must not run\n"), "{log}");
    assert_eq!(world.pods_left(), Vec::<String>::new());
}
