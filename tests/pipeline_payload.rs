//! Job payloads built from pipeline jobs, in the AlloyCI and the GitLab shape.

use alloy_runner::pipeline::{self, DependencyRef, Dialect, PayloadContext, Pipeline};
use alloy_runner::secret::Secret;
use serde_json::{json, Value};

const ELIXIR_APP: &str = include_str!("../fixtures/pipelines/elixir-app.alloy-ci.json");

fn elixir_app() -> Pipeline {
    pipeline::parse(ELIXIR_APP).unwrap()
}

fn context(dialect: Dialect) -> PayloadContext {
    PayloadContext {
        dialect,
        job_id: 42,
        job_token: Secret::new("jobtoken123456"),
        pipeline_id: 7,
        project_id: 3,
        project_name: "my_app".into(),
        project_path: "acme/my_app".into(),
        repo_url: Secret::new("/srv/git/my_app"),
        server_url: "http://127.0.0.1:8080".into(),
        ref_name: "main".into(),
        is_tag: false,
        sha: "a1b2c3".into(),
        before_sha: "000000".into(),
        timeout_secs: 600,
        dependencies: vec![DependencyRef {
            name: "compile".into(),
            id: 41,
            token: Secret::new("deptoken"),
            artifacts_filename: Some("build.zip".into()),
            artifacts_size: Some(2500),
        }],
    }
}

fn variable<'a>(payload: &'a Value, key: &str) -> &'a Value {
    let list = payload["variables"].as_array().unwrap();
    list.iter()
        .rev()
        .find(|v| v["key"] == key)
        .unwrap_or_else(|| panic!("no variable {key}"))
}

#[test]
fn gitlab_payload_carries_ids_git_info_and_steps() {
    let parsed = elixir_app();
    let payload = parsed
        .job("mix test")
        .unwrap()
        .to_payload(&context(Dialect::GitLab));
    assert_eq!(payload["id"], 42);
    assert_eq!(payload["token"], "jobtoken123456");
    assert_eq!(
        payload["job_info"],
        json!({"name": "mix test", "stage": "test", "project_id": 3, "project_name": "my_app"})
    );
    assert_eq!(payload["git_info"]["ref"], "main");
    assert_eq!(payload["git_info"]["ref_type"], "branch");
    assert_eq!(payload["git_info"]["sha"], "a1b2c3");
    assert_eq!(payload["git_info"]["repo_url"], "/srv/git/my_app");
    assert_eq!(payload["runner_info"]["timeout"], 600);
    assert_eq!(
        payload["steps"][0]["script"],
        json!(["mix local.hex --force", "mix deps.get", "mix test"])
    );
    assert_eq!(payload["steps"][0]["allow_failure"], false);
    assert_eq!(payload["steps"][1]["name"], "after_script");
    assert_eq!(payload["steps"][1]["when"], "always");
    assert_eq!(payload["features"]["trace_sections"], true);
    assert_eq!(payload["credentials"], json!([]));
}

#[test]
fn gitlab_payload_variables_hide_the_job_token() {
    let payload = elixir_app().jobs[1].to_payload(&context(Dialect::GitLab));
    let token = variable(&payload, "CI_JOB_TOKEN");
    assert_eq!(token["value"], "jobtoken123456");
    assert_eq!(token["public"], false);
    assert_eq!(token["masked"], true);
    let repo = variable(&payload, "CI_REPOSITORY_URL");
    assert_eq!(repo["public"], false);
    assert_eq!(repo["masked"], false);
    assert_eq!(variable(&payload, "CI_JOB_ID")["value"], "42");
    assert_eq!(variable(&payload, "CI_PIPELINE_ID")["value"], "7");
    assert_eq!(variable(&payload, "CI_COMMIT_SHA")["value"], "a1b2c3");
    assert_eq!(variable(&payload, "CI_COMMIT_REF_NAME")["value"], "main");
    assert_eq!(
        variable(&payload, "CI_PROJECT_PATH")["value"],
        "acme/my_app"
    );
    assert_eq!(
        variable(&payload, "CI_PROJECT_URL")["value"],
        "http://127.0.0.1:8080/acme/my_app"
    );
    assert_eq!(variable(&payload, "GITLAB_CI")["value"], "true");
    let mix_env = variable(&payload, "MIX_ENV");
    assert_eq!(mix_env["value"], "test");
    assert_eq!(mix_env["public"], true);
    assert_eq!(mix_env["masked"], false);
}

#[test]
fn gitlab_slug_replaces_other_characters() {
    let mut ctx = context(Dialect::GitLab);
    ctx.ref_name = "refs/heads/Feature/Foo@bar".into();
    let payload = elixir_app().jobs[0].to_payload(&ctx);
    assert_eq!(
        variable(&payload, "CI_COMMIT_REF_NAME")["value"],
        "Feature/Foo@bar"
    );
    assert_eq!(
        variable(&payload, "CI_COMMIT_REF_SLUG")["value"],
        "feature-foo-bar"
    );
}

#[test]
fn payload_images_services_cache_and_artifacts() {
    let parsed = elixir_app();
    let payload = parsed
        .job("compile")
        .unwrap()
        .to_payload(&context(Dialect::GitLab));
    assert_eq!(payload["image"], json!({"name": "elixir:1.6"}));
    assert_eq!(
        payload["services"],
        json!([{"name": "postgres:9.6"}, {"name": "redis:4", "alias": "cache"}])
    );
    assert_eq!(
        payload["artifacts"],
        json!([{"name": "build", "untracked": false, "paths": ["_build/"],
                "when": "on_success", "expire_in": "1 day"}])
    );
    assert_eq!(
        payload["cache"],
        json!([{"key": "deps", "untracked": false, "policy": "pull-push",
                "paths": ["deps/", "_build/"]}])
    );
    assert_eq!(payload["dependencies"], json!([]));
}

#[test]
fn dependencies_carry_id_token_and_file_from_the_context() {
    let parsed = elixir_app();
    let payload = parsed
        .job("mix test")
        .unwrap()
        .to_payload(&context(Dialect::GitLab));
    assert_eq!(
        payload["dependencies"],
        json!([{"id": 41, "name": "compile", "token": "deptoken",
                "artifacts_file": {"filename": "build.zip", "size": 2500}}])
    );
}

#[test]
fn alloyci_payload_uses_full_refs_and_string_booleans() {
    let parsed = elixir_app();
    let payload = parsed
        .job("compile")
        .unwrap()
        .to_payload(&context(Dialect::AlloyCi));
    assert_eq!(payload["git_info"]["ref"], "refs/heads/main");
    assert_eq!(
        variable(&payload, "CI_COMMIT_REF_NAME")["value"],
        "refs/heads/main"
    );
    assert_eq!(variable(&payload, "CI_COMMIT_REF_SLUG")["value"], "main");
    assert_eq!(variable(&payload, "CI_SERVER_NAME")["value"], "AlloyCI");
    assert_eq!(variable(&payload, "ALLOY_CI")["value"], "true");
    assert_eq!(variable(&payload, "GIT_SSL_NO_VERIFY")["value"], "true");
    assert_eq!(payload["artifacts"][0]["untracked"], "false");
    assert_eq!(payload["steps"][0]["allow_failure"], "false");
    assert!(variable(&payload, "CI_JOB_TOKEN").get("masked").is_none());
    assert!(payload.get("features").is_none());
    assert!(payload.get("credentials").is_none());
}

#[test]
fn alloyci_payload_sends_null_lists_and_null_image() {
    let parsed = pipeline::parse(r#"{"j": {"script": ["true"]}}"#).unwrap();
    let mut ctx = context(Dialect::AlloyCi);
    ctx.is_tag = true;
    ctx.ref_name = "v1.2".into();
    let payload = parsed.jobs[0].to_payload(&ctx);
    assert_eq!(payload["artifacts"], json!([null]));
    assert_eq!(payload["cache"], json!([null]));
    assert_eq!(payload["image"], json!({"name": null}));
    assert_eq!(payload["git_info"]["ref"], "refs/tags/v1.2");
    assert_eq!(variable(&payload, "CI_COMMIT_TAG")["value"], "v1.2");
    assert_eq!(payload["steps"].as_array().unwrap().len(), 1);
}

#[test]
fn gitlab_payload_sends_empty_lists_and_no_image() {
    let parsed = pipeline::parse(r#"{"j": {"script": ["true"]}}"#).unwrap();
    let payload = parsed.jobs[0].to_payload(&context(Dialect::GitLab));
    assert_eq!(payload["artifacts"], json!([]));
    assert_eq!(payload["cache"], json!([]));
    assert_eq!(payload["image"], Value::Null);
    assert_eq!(payload["runner_info"]["timeout"], 600);
}

#[test]
fn zero_timeout_means_one_hour() {
    let parsed = pipeline::parse(r#"{"j": {"script": ["true"]}}"#).unwrap();
    let mut ctx = context(Dialect::GitLab);
    ctx.timeout_secs = 0;
    let payload = parsed.jobs[0].to_payload(&ctx);
    assert_eq!(payload["runner_info"]["timeout"], 3600);
    assert_eq!(payload["steps"][0]["timeout"], 3600);
}
