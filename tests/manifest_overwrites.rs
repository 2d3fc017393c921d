//! Overwrites by job variables: each one allowed, rejected (the rule must match the whole
//! value) and disabled.

mod manifest_support;

use std::collections::BTreeMap;

use alloy_runner::config::RunnerConfig;
use manifest_support::*;

fn runner_allowing(set: impl FnOnce(&mut RunnerConfig)) -> RunnerConfig {
    let mut runner = minimal_runner();
    runner.kubernetes.namespace = "ci".into();
    set(&mut runner);
    runner
}

// --- Namespace ---

#[test]
fn namespace_overwrite_is_applied_and_logged_when_the_rule_allows_it() {
    let runner = runner_allowing(|r| r.kubernetes.namespace_overwrite_allowed = rule("ci-.*"));
    let plan = plan_for(
        &runner,
        &fixture_job(),
        &[var("KUBERNETES_NAMESPACE_OVERWRITE", "ci-main")],
    );
    assert_eq!(plan.namespace, "ci-main");
    assert_eq!(plan.pod["metadata"]["namespace"], "ci-main");
    assert_eq!(plan.secrets[0]["metadata"]["namespace"], "ci-main");
    assert_eq!(plan.notices, ["\"namespace\" overwritten with \"ci-main\""]);
}

#[test]
fn namespace_rule_must_match_the_whole_value() {
    let runner = runner_allowing(|r| r.kubernetes.namespace_overwrite_allowed = rule("ci-.*"));
    let message = plan_error(
        &runner,
        &bare_job(),
        &[var("KUBERNETES_NAMESPACE_OVERWRITE", "prod-ci-x")],
    );
    assert_eq!(
        message,
        "overwrite refused: KUBERNETES_NAMESPACE_OVERWRITE: provided value \"prod-ci-x\" does \
         not match \"ci-.*\""
    );
}

#[test]
fn namespace_overwrite_is_ignored_with_a_notice_when_disabled() {
    let runner = runner_allowing(|_| {});
    let plan = plan_for(
        &runner,
        &bare_job(),
        &[var("KUBERNETES_NAMESPACE_OVERWRITE", "ci-main")],
    );
    assert_eq!(plan.namespace, "ci");
    assert_eq!(
        plan.notices,
        [
            "KUBERNETES_NAMESPACE_OVERWRITE is ignored: the runner's config does not allow this \
          overwrite"
        ]
    );
}

#[test]
fn namespace_is_normalised_before_it_is_checked() {
    let runner = runner_allowing(|r| r.kubernetes.namespace_overwrite_allowed = rule("ci-.*"));
    let plan = plan_for(
        &runner,
        &bare_job(),
        &[var("KUBERNETES_NAMESPACE_OVERWRITE", " ci-a\n")],
    );
    assert_eq!(plan.namespace, "ci-a");

    // The rule matches, but Kubernetes has no such namespace name.
    let message = plan_error(
        &runner,
        &bare_job(),
        &[var("KUBERNETES_NAMESPACE_OVERWRITE", "ci-Main")],
    );
    assert!(
        message.ends_with("provided value \"ci-Main\" is not a DNS-1123 label"),
        "{message}"
    );

    let message = plan_error(
        &runner,
        &bare_job(),
        &[var("KUBERNETES_NAMESPACE_OVERWRITE", "ci-\u{7}a")],
    );
    assert!(
        message.ends_with("the value holds a control character"),
        "{message}"
    );
}

// --- Service account ---

#[test]
fn service_account_overwrite_is_applied_when_allowed() {
    let runner = runner_allowing(|r| {
        r.kubernetes.service_account = Some("default-sa".into());
        r.kubernetes.service_account_overwrite_allowed = rule("ci-.*");
    });
    let variable = var("KUBERNETES_SERVICE_ACCOUNT_OVERWRITE", "ci-deployer");
    let plan = plan_for(&runner, &bare_job(), &[variable]);
    assert_eq!(plan.pod["spec"]["serviceAccountName"], "ci-deployer");
    assert_eq!(
        plan.notices,
        ["\"service account\" overwritten with \"ci-deployer\""]
    );
}

#[test]
fn service_account_rule_must_match_the_whole_value() {
    let runner =
        runner_allowing(|r| r.kubernetes.service_account_overwrite_allowed = rule("ci-.*"));
    let variable = var("KUBERNETES_SERVICE_ACCOUNT_OVERWRITE", "admin-ci-x");
    let message = plan_error(&runner, &bare_job(), &[variable]);
    assert!(
        message.ends_with("provided value \"admin-ci-x\" does not match \"ci-.*\""),
        "{message}"
    );
}

#[test]
fn service_account_overwrite_is_ignored_when_disabled() {
    let runner = runner_allowing(|r| r.kubernetes.service_account = Some("default-sa".into()));
    let variable = var("KUBERNETES_SERVICE_ACCOUNT_OVERWRITE", "ci-deployer");
    let plan = plan_for(&runner, &bare_job(), &[variable]);
    assert_eq!(plan.pod["spec"]["serviceAccountName"], "default-sa");
    assert!(plan.notices[0].starts_with("KUBERNETES_SERVICE_ACCOUNT_OVERWRITE is ignored"));
}

// --- Bearer token ---

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.job-token";

#[test]
fn bearer_token_is_taken_with_the_flag_and_a_host_and_never_shown() {
    let runner = runner_allowing(|r| {
        r.kubernetes.host = Some("https://127.0.0.1:6443".into());
        r.kubernetes.bearer_token_overwrite_allowed = true;
    });
    let plan = plan_for(
        &runner,
        &bare_job(),
        &[secret_var("KUBERNETES_BEARER_TOKEN", TOKEN)],
    );
    assert_eq!(plan.bearer_token.as_ref().map(|t| t.expose()), Some(TOKEN));
    assert_eq!(plan.notices, ["\"bearer token\" overwritten"]);
    assert!(!format!("{plan:?}").contains(TOKEN));
    assert!(!plan.pod.to_string().contains(TOKEN));
}

#[test]
fn bearer_token_is_ignored_without_the_flag() {
    let runner = runner_allowing(|r| r.kubernetes.host = Some("https://127.0.0.1:6443".into()));
    let plan = plan_for(
        &runner,
        &bare_job(),
        &[secret_var("KUBERNETES_BEARER_TOKEN", TOKEN)],
    );
    assert!(plan.bearer_token.is_none());
    assert_eq!(
        plan.notices,
        ["KUBERNETES_BEARER_TOKEN is ignored: bearer_token_overwrite_allowed is not set"]
    );
}

#[test]
fn bearer_token_is_ignored_with_in_cluster_credentials() {
    let runner = runner_allowing(|r| r.kubernetes.bearer_token_overwrite_allowed = true);
    let plan = plan_for(
        &runner,
        &bare_job(),
        &[secret_var("KUBERNETES_BEARER_TOKEN", TOKEN)],
    );
    assert!(plan.bearer_token.is_none());
    assert!(
        plan.notices[0].contains("in-cluster credentials"),
        "{:?}",
        plan.notices
    );
}

#[test]
fn a_refused_bearer_token_is_not_repeated_in_the_error() {
    let runner = runner_allowing(|r| {
        r.kubernetes.host = Some("https://127.0.0.1:6443".into());
        r.kubernetes.bearer_token_overwrite_allowed = true;
    });
    let token = format!("{TOKEN}\r\nX-Injected: 1");
    let message = plan_error(
        &runner,
        &bare_job(),
        &[secret_var("KUBERNETES_BEARER_TOKEN", &token)],
    );
    assert_eq!(
        message,
        "overwrite refused: KUBERNETES_BEARER_TOKEN: the value holds a control character"
    );
}

// --- Pod annotations ---

#[test]
fn annotation_overwrite_is_added_and_wins_over_the_config() {
    let runner = runner_allowing(|r| {
        r.kubernetes.pod_annotations = BTreeMap::from([("team".into(), "core".into())]);
        r.kubernetes.pod_annotations_overwrite_allowed = rule("team=.*|example.com/owner=.*");
    });
    let extra = [
        var("KUBERNETES_POD_ANNOTATIONS_1", "team=qa"),
        var(
            "KUBERNETES_POD_ANNOTATIONS_OWNER",
            "example.com/owner=jo=ann",
        ),
    ];
    let plan = plan_for(&runner, &bare_job(), &extra);
    let annotations = &plan.pod["metadata"]["annotations"];
    assert_eq!(annotations["team"], "qa");
    assert_eq!(annotations["example.com/owner"], "jo=ann");
    assert_eq!(
        plan.notices,
        [
            "\"pod annotation team\" overwritten with \"qa\"",
            "\"pod annotation example.com/owner\" overwritten with \"jo=ann\"",
        ]
    );
}

#[test]
fn annotation_rule_applies_to_the_whole_key_value_text() {
    let runner =
        runner_allowing(|r| r.kubernetes.pod_annotations_overwrite_allowed = rule("team=.*"));
    let message = plan_error(
        &runner,
        &bare_job(),
        &[var("KUBERNETES_POD_ANNOTATIONS_1", "xteam=qa")],
    );
    assert_eq!(
        message,
        "overwrite refused: KUBERNETES_POD_ANNOTATIONS_1: provided value \"xteam=qa\" does not \
         match \"team=.*\""
    );
}

#[test]
fn annotation_overwrite_is_ignored_when_disabled() {
    let runner = runner_allowing(|_| {});
    let plan = plan_for(
        &runner,
        &bare_job(),
        &[var("KUBERNETES_POD_ANNOTATIONS_1", "team=qa")],
    );
    assert!(plan.pod["metadata"]["annotations"].get("team").is_none());
    assert!(plan.notices[0].starts_with("KUBERNETES_POD_ANNOTATIONS_1 is ignored"));
}

#[test]
fn annotation_overwrite_without_equals_is_refused() {
    let runner = runner_allowing(|r| r.kubernetes.pod_annotations_overwrite_allowed = rule(".*"));
    let message = plan_error(
        &runner,
        &bare_job(),
        &[var("KUBERNETES_POD_ANNOTATIONS_1", "qa")],
    );
    assert!(
        message.ends_with("provided value \"qa\" does not match \"k=v\""),
        "{message}"
    );
}

#[test]
fn annotation_overwrite_may_not_touch_the_runners_keys_or_use_bad_keys() {
    let runner = runner_allowing(|r| r.kubernetes.pod_annotations_overwrite_allowed = rule(".*"));
    let variable = var("KUBERNETES_POD_ANNOTATIONS_1", "alloy-runner.io/job-id=1");
    let message = plan_error(&runner, &bare_job(), &[variable]);
    assert!(
        message.contains("\"alloy-runner.io/job-id\" is reserved"),
        "{message}"
    );

    let variable = var("KUBERNETES_POD_ANNOTATIONS_1", "bad key=1");
    let message = plan_error(&runner, &bare_job(), &[variable]);
    assert!(
        message.contains("annotation key \"bad key\" is not valid"),
        "{message}"
    );
}
