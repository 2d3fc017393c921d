//! `.alloy-ci.json` parsing: defaults, inheritance, ordering and the errors bad files get.

use alloy_runner::pipeline::{self, CachePolicy, PipelineError, When};

const ELIXIR_APP: &str = include_str!("../fixtures/pipelines/elixir-app.alloy-ci.json");

fn error_of(text: &str) -> String {
    match pipeline::parse(text) {
        Ok(parsed) => panic!("expected an error, parsed {} jobs", parsed.jobs.len()),
        Err(err) => err.to_string(),
    }
}

#[test]
fn orders_jobs_by_stage_then_file_order() {
    let parsed = pipeline::parse(ELIXIR_APP).unwrap();
    let names: Vec<&str> = parsed.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["compile", "mix test", "deploy"]);
    assert_eq!(parsed.stages, ["build", "test", "deploy"]);
}

#[test]
fn keeps_file_order_within_a_stage() {
    let parsed = pipeline::parse(
        r#"{"zeta": {"script": ["z"]}, "alpha": {"script": ["a"]}, "mid": {"script": ["m"]}}"#,
    )
    .unwrap();
    let names: Vec<&str> = parsed.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[test]
fn defaults_stages_and_job_stage() {
    let parsed = pipeline::parse(r#"{"lint": {"script": ["true"]}}"#).unwrap();
    assert_eq!(parsed.stages, ["build", "test", "deploy"]);
    assert_eq!(parsed.jobs[0].stage, "test");
    assert_eq!(parsed.jobs[0].when, When::OnSuccess);
    assert!(!parsed.jobs[0].allow_failure);
}

#[test]
fn jobs_inherit_global_values() {
    let parsed = pipeline::parse(ELIXIR_APP).unwrap();
    let compile = parsed.job("compile").unwrap();
    assert_eq!(compile.image.as_ref().unwrap().name, "elixir:1.6");
    assert_eq!(compile.services.len(), 2);
    assert_eq!(compile.services[1].alias.as_deref(), Some("cache"));
    assert_eq!(
        compile.before_script,
        ["mix local.hex --force", "mix deps.get"]
    );
    assert_eq!(compile.after_script, ["rm -rf tmp"]);
    let cache = compile.cache.as_ref().unwrap();
    assert_eq!(cache.key, "deps");
    assert_eq!(cache.policy, CachePolicy::PullPush);
    assert_eq!(
        compile.variables,
        [
            ("MIX_ENV".to_string(), "test".to_string()),
            (
                "DATABASE_URL".to_string(),
                "postgres://postgres@localhost/app_test".to_string()
            ),
        ]
    );
}

#[test]
fn job_values_replace_global_values_as_a_whole() {
    let parsed = pipeline::parse(ELIXIR_APP).unwrap();
    let deploy = parsed.job("deploy").unwrap();
    assert_eq!(
        deploy.variables,
        [("MIX_ENV".to_string(), "prod".to_string())]
    );

    let parsed = pipeline::parse(
        r#"{"before_script": ["a", "b"], "services": ["pg"],
            "j": {"script": ["s"], "before_script": ["c"], "services": []}}"#,
    )
    .unwrap();
    assert_eq!(parsed.jobs[0].before_script, ["c"]);
    assert!(parsed.jobs[0].services.is_empty());
}

#[test]
fn reads_artifacts_and_services_objects() {
    let parsed = pipeline::parse(
        r#"{"j": {"script": ["s"],
                  "artifacts": {"name": "n", "paths": ["a/"], "untracked": true,
                                "when": "always", "expire_in": "7d"},
                  "services": [{"name": "redis:4", "alias": "cache",
                                "command": ["redis-server"], "entrypoint": ["/e.sh"]}],
                  "cache": {"policy": "pull"}}}"#,
    )
    .unwrap();
    let job = &parsed.jobs[0];
    let artifacts = job.artifacts.as_ref().unwrap();
    assert_eq!(artifacts.name.as_deref(), Some("n"));
    assert!(artifacts.untracked);
    assert_eq!(artifacts.when, When::Always);
    assert_eq!(artifacts.expire_in.as_deref(), Some("7d"));
    assert_eq!(job.services[0].command, ["redis-server"]);
    assert_eq!(job.services[0].entrypoint, ["/e.sh"]);
    assert_eq!(job.cache.as_ref().unwrap().policy, CachePolicy::Pull);
}

#[test]
fn missing_dependencies_mean_every_earlier_job() {
    let parsed = pipeline::parse(
        r#"{"a": {"stage": "build", "script": ["x"]}, "b": {"stage": "build", "script": ["x"]},
            "t": {"script": ["x"]}, "d": {"stage": "deploy", "script": ["x"]}}"#,
    )
    .unwrap();
    assert!(parsed.job("a").unwrap().dependencies.is_empty());
    assert_eq!(parsed.job("t").unwrap().dependencies, ["a", "b"]);
    assert_eq!(parsed.job("d").unwrap().dependencies, ["a", "b", "t"]);
}

#[test]
fn ignores_hidden_template_keys() {
    let parsed = pipeline::parse(r#"{".tpl": {"x": 1}, "j": {"script": ["s"]}}"#).unwrap();
    assert_eq!(parsed.jobs.len(), 1);
}

#[test]
fn unknown_job_key_is_named_with_a_suggestion() {
    let message = error_of(r#"{"build": {"scrpit": ["make"]}}"#);
    assert!(message.starts_with("job `build`: unknown key `scrpit` (did you mean `script`?)"));
    assert!(
        message.contains("accepted keys: script, stage"),
        "{message}"
    );
}

#[test]
fn unknown_artifacts_key_is_named() {
    let message = error_of(r#"{"b": {"script": ["m"], "artifacts": {"path": ["x"]}}}"#);
    assert!(message.starts_with("job `b`, `artifacts`: unknown key `path` (did you mean `paths`?)"));
}

#[test]
fn missing_script_is_an_error() {
    assert_eq!(
        error_of(r#"{"build": {"stage": "build"}}"#),
        "job `build`: `script` is missing; it takes a list of shell commands"
    );
}

#[test]
fn misspelt_global_key_is_hinted_when_taken_for_a_job() {
    let message = error_of(r#"{"stagse": ["a"], "j": {"script": ["s"]}}"#);
    assert!(
        message.contains("if `stagse` was meant as the top-level key `stages`"),
        "{message}"
    );
}

#[test]
fn misspelt_global_object_key_hints_the_global_key() {
    let message = error_of(r#"{"varibles": {"A": "1"}, "j": {"script": ["s"]}}"#);
    assert!(message.contains("if `varibles` was meant as the top-level key `variables`"));
}

#[test]
fn script_must_be_a_list_of_strings() {
    assert_eq!(
        error_of(r#"{"j": {"script": "make"}}"#),
        "job `j`: `script` must be a list of strings, found a string"
    );
    assert_eq!(
        error_of(r#"{"j": {"script": ["make", 3]}}"#),
        "job `j`: `script` must be a list of strings, found a number"
    );
    assert!(error_of(r#"{"j": {"script": []}}"#).contains("non-empty list"));
}

#[test]
fn stage_must_be_listed_in_stages() {
    assert_eq!(
        error_of(r#"{"stages": ["build", "test"], "j": {"stage": "deploy", "script": ["s"]}}"#),
        "job `j`: stage `deploy` is not in stages (build, test)"
    );
}

#[test]
fn dependency_must_name_a_job() {
    assert_eq!(
        error_of(r#"{"j": {"script": ["s"], "dependencies": ["nope"]}}"#),
        "job `j`: dependency `nope` is not a job of this pipeline"
    );
}

#[test]
fn dependency_must_be_of_an_earlier_stage() {
    let later = error_of(
        r#"{"t": {"script": ["s"], "dependencies": ["d"]},
            "d": {"stage": "deploy", "script": ["s"]}}"#,
    );
    assert!(
        later.starts_with("job `t`: dependency `d` runs in stage `deploy`"),
        "{later}"
    );
    let same =
        error_of(r#"{"t": {"script": ["s"], "dependencies": ["u"]}, "u": {"script": ["s"]}}"#);
    assert!(same.contains("must be a job of an earlier stage"), "{same}");
}

#[test]
fn wrong_types_name_the_key_and_the_accepted_form() {
    assert_eq!(
        error_of(r#"{"j": {"script": ["s"], "allow_failure": "yes"}}"#),
        "job `j`: `allow_failure` must be true or false, found a string"
    );
    assert_eq!(
        error_of(r#"{"j": {"script": ["s"], "when": "later"}}"#),
        "job `j`: `when` has the value `later`; accepted: on_success, on_failure, always, manual"
    );
    assert!(error_of(r#"{"image": 3, "j": {"script": ["s"]}}"#).starts_with("top level: `image`"));
    assert!(
        error_of(r#"{"j": {"script": ["s"], "variables": {"A": []}}}"#)
            .starts_with("job `j`: `variables.A` must be")
    );
    assert!(
        error_of(r#"{"j": {"script": ["s"], "cache": {"policy": "both"}}}"#)
            .contains("accepted: pull-push, pull, push")
    );
}

#[test]
fn whole_file_errors_are_named() {
    assert!(error_of("[1]").starts_with("pipeline file must be a JSON object"));
    assert!(error_of("{").starts_with("pipeline file is not valid JSON"));
    assert!(error_of(r#"{"stages": ["a"]}"#).starts_with("pipeline file defines no job"));
    assert!(
        error_of(r#"{"j": {"script": ["a"]}, "j": {"script": ["b"]}}"#)
            .contains("duplicate key `j`")
    );
}

#[test]
fn invalid_only_regex_is_an_error() {
    let err = pipeline::parse(r#"{"j": {"script": ["s"], "only": ["/fea(ture/"]}}"#).unwrap_err();
    assert!(matches!(err, PipelineError::InvalidRegex { .. }));
    assert_eq!(
        err.to_string(),
        "job `j`: `only` entry `/fea(ture/` is not a valid regex"
    );
}

#[test]
fn only_and_except_select_jobs_per_ref() {
    let parsed = pipeline::parse(
        r#"{"always": {"script": ["s"]},
            "main only": {"script": ["s"], "only": ["main"]},
            "tags only": {"script": ["s"], "only": ["tags"]},
            "branches": {"script": ["s"], "only": ["branches"], "except": ["/^wip-/"]},
            "features": {"script": ["s"], "only": ["/^feature\\//"]},
            "not main": {"script": ["s"], "except": ["main"]}}"#,
    )
    .unwrap();
    let names = |r: &str, tag: bool| -> Vec<String> {
        parsed
            .jobs_for_ref(r, tag)
            .iter()
            .map(|j| j.name.clone())
            .collect()
    };
    assert_eq!(names("main", false), ["always", "main only", "branches"]);
    assert_eq!(
        names("refs/heads/main", false),
        ["always", "main only", "branches"]
    );
    assert_eq!(names("v1.0", true), ["always", "tags only", "not main"]);
    assert_eq!(names("wip-x", false), ["always", "not main"]);
    assert_eq!(
        names("feature/login", false),
        ["always", "branches", "features", "not main"]
    );
}

#[test]
fn variable_numbers_and_booleans_become_strings_in_file_order() {
    let parsed = pipeline::parse(
        r#"{"variables": {"Z": 3, "A": true, "M": "x"},
            "image": {"name": "ruby:3", "entrypoint": ["/bin/sh", "-c"]},
            "j": {"script": ["s"]}}"#,
    )
    .unwrap();
    let job = &parsed.jobs[0];
    let pairs: Vec<(&str, &str)> = job
        .variables
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(pairs, [("Z", "3"), ("A", "true"), ("M", "x")]);
    let image = job.image.as_ref().unwrap();
    assert_eq!(image.name, "ruby:3");
    assert_eq!(image.entrypoint, ["/bin/sh", "-c"]);
}

#[test]
fn image_object_without_name_is_an_error() {
    let message = error_of(r#"{"j": {"script": ["s"], "image": {"entrypoint": ["x"]}}}"#);
    assert_eq!(
        message,
        "job `j`, `image`: `name` is missing; it takes an image name"
    );
}
