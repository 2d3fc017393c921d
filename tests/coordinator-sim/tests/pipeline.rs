//! A pipeline over a local git repository, handed out stage by stage.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use coordinator_sim::{Dialect, JobState, PipelineSource};
use serde_json::{json, Value};

fn head_sha(repo: &std::path::Path) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn take(sim: &coordinator_sim::SimHandle) -> Value {
    let reply = request_job(sim);
    assert_eq!(reply.status, 201);
    reply.json()
}

fn finish(sim: &coordinator_sim::SimHandle, job: &Value, state: &str) {
    let id = job["id"].as_u64().unwrap();
    let mut body = json!({"token": job["token"], "state": state});
    if state == "failed" {
        body["failure_reason"] = json!("script_failure");
        body["exit_code"] = json!(1);
    }
    assert_eq!(update(sim, id, body).status, 200);
}

#[test]
fn later_stage_waits_for_the_earlier_one_and_gets_its_artifacts() {
    let repo = TempDir::new("two-stages");
    init_repo(&repo.0);
    let sim = start(Dialect::GitLab);
    let run = sim
        .enqueue_pipeline(&pipeline_fixture("two-stages.alloy-ci.json"), &repo.0)
        .unwrap();
    let (build_id, check_id) = (run.job_id("build").unwrap(), run.job_id("check").unwrap());

    // Only the build stage is out; the test stage waits.
    let build = take(&sim);
    assert_eq!(build["id"], build_id);
    assert_eq!(build["git_info"]["sha"], head_sha(&repo.0));
    assert_eq!(build["git_info"]["ref"], "main");
    let repo_path = std::fs::canonicalize(&repo.0).unwrap();
    let name = repo_path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let url = format!("{}/git/0/{name}.git", sim.url());
    assert_eq!(build["git_info"]["repo_url"], url.as_str());

    // The served URL clones, over git's dumb HTTP protocol, at the pipeline's commit.
    let clone = repo_path.with_file_name(format!("{name}-clone"));
    let status = std::process::Command::new("git")
        .args(["clone", "-q", &url])
        .arg(&clone)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(head_sha(&clone), head_sha(&repo.0));
    std::fs::remove_dir_all(&clone).ok();

    // Shallow fetches need the smart protocol, which the simulator speaks too.
    let status = std::process::Command::new("git")
        .args(["clone", "-q", "--depth", "1", &url])
        .arg(&clone)
        .status()
        .unwrap();
    assert!(status.success());
    let shallow = std::fs::read_to_string(clone.join(".git/shallow")).unwrap();
    assert_eq!(shallow.trim(), head_sha(&repo.0));
    std::fs::remove_dir_all(&clone).ok();
    assert_eq!(request_job(&sim).status, 204);
    assert_eq!(sim.job(check_id).unwrap().state, JobState::Pending);

    let token = build["token"].as_str().unwrap();
    assert_eq!(
        upload(&sim, build_id, token, "out.zip", b"PK-zip").status,
        201
    );
    finish(&sim, &build, "success");

    let check = take(&sim);
    assert_eq!(check["id"], check_id);
    assert_eq!(
        check["dependencies"],
        json!([{"id": build_id, "name": "build", "token": token,
                "artifacts_file": {"filename": "out.zip", "size": 6}}])
    );

    // The dependency's token downloads the dependency's artifacts.
    let req = request(&sim, "GET", &format!("jobs/{build_id}/artifacts")).set("JOB-TOKEN", token);
    assert_eq!(send(req, b"").body, b"PK-zip");
    finish(&sim, &check, "success");
    let record = sim
        .wait_for_job_finished(check_id, Duration::from_secs(5))
        .unwrap();
    assert_eq!(record.state, JobState::Success);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn a_failed_stage_skips_the_later_ones_except_on_failure_jobs() {
    let repo = TempDir::new("failed-stage");
    init_repo(&repo.0);
    let sim = start(Dialect::GitLab);
    let pipeline = r#"{"stages": ["build", "test", "cleanup"],
        "build": {"stage": "build", "script": ["false"]},
        "test": {"stage": "test", "script": ["true"]},
        "notify": {"stage": "cleanup", "script": ["true"], "when": "on_failure"}}"#;
    let run = sim.enqueue_pipeline(pipeline, &repo.0).unwrap();
    let finished = sim.subscribe();

    finish(&sim, &take(&sim), "failed");
    let notify = take(&sim);
    assert_eq!(notify["id"], run.job_id("notify").unwrap());
    assert_eq!(
        sim.job(run.job_id("test").unwrap()).unwrap().state,
        JobState::Skipped
    );
    finish(&sim, &notify, "success");
    let names: Vec<String> = finished.try_iter().map(|r| r.name).collect();
    assert_eq!(names, ["build", "test", "notify"]);
}

#[test]
fn allowed_failure_lets_the_pipeline_go_on() {
    let repo = TempDir::new("allowed-failure");
    init_repo(&repo.0);
    let sim = start(Dialect::GitLab);
    let pipeline = r#"{"lint": {"stage": "build", "script": ["false"], "allow_failure": true},
                       "test": {"script": ["true"]}}"#;
    let run = sim.enqueue_pipeline(pipeline, &repo.0).unwrap();
    finish(&sim, &take(&sim), "failed");
    assert_eq!(take(&sim)["id"], run.job_id("test").unwrap());
}

#[test]
fn alloyci_pipeline_payload_uses_full_refs_and_a_file_url() {
    let repo = TempDir::new("alloyci");
    init_repo(&repo.0);
    let sim = start(Dialect::AlloyCi);
    let source = PipelineSource {
        file_url: true,
        ..PipelineSource::new(&repo.0)
    };
    sim.enqueue_pipeline_from(r#"{"j": {"script": ["true"]}}"#, source)
        .unwrap();
    let job = take(&sim);
    assert_eq!(job["git_info"]["ref"], "refs/heads/main");
    let url = job["git_info"]["repo_url"].as_str().unwrap();
    assert!(url.starts_with("file:///"), "{url}");
    assert_eq!(job["artifacts"], json!([null]));
    let server = job["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == "CI_SERVER_URL");
    assert_eq!(server.unwrap()["value"], sim.url());
}

#[test]
fn only_and_except_pick_the_jobs_of_the_ref() {
    let repo = TempDir::new("only");
    init_repo(&repo.0);
    let sim = start(Dialect::GitLab);
    let pipeline = r#"{"test": {"script": ["true"]},
                       "release": {"stage": "deploy", "script": ["true"], "only": ["tags"]}}"#;
    let source = PipelineSource {
        ref_name: Some("v1.0".into()),
        is_tag: true,
        ..PipelineSource::new(&repo.0)
    };
    let tagged = sim.enqueue_pipeline_from(pipeline, source).unwrap();
    assert_eq!(tagged.jobs.len(), 2);
    let branch = sim.enqueue_pipeline(pipeline, &repo.0).unwrap();
    let names: Vec<&str> = branch.jobs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["test"]);
}

#[test]
fn bad_pipeline_and_missing_repository_are_errors() {
    let repo = TempDir::new("bad");
    let sim = start(Dialect::GitLab);
    let err = sim.enqueue_pipeline(r#"{"j": {}}"#, &repo.0).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("pipeline: job `j`: `script` is missing"),
        "{err}"
    );
    let err = sim
        .enqueue_pipeline(r#"{"j": {"script": ["true"]}}"#, &repo.0)
        .unwrap_err();
    assert!(err.to_string().starts_with("git repository"), "{err}");
}
