//! What `config.toml` accepts beyond the seed examples, and the shape of its errors.

use std::path::Path;
use std::time::Duration;

use alloy_runner::config::{self, Config, ConfigError, KeyError, PullPolicy, Quantity};

const FILE: &str = "/etc/alloy-runner/config.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    config::parse(text, Path::new(FILE))
}

/// One kubernetes runner with `body` in its `[runners.kubernetes]` table.
fn with_kubernetes(body: &str) -> Result<Config, ConfigError> {
    parse(&format!(
        "[[runners]]\nexecutor = \"kubernetes\"\n[runners.kubernetes]\n{body}"
    ))
}

fn key_error(result: Result<Config, ConfigError>) -> (String, KeyError) {
    match result {
        Err(ConfigError::Key { key, problem, .. }) => (key, problem),
        other => panic!("expected a key error, got {other:?}"),
    }
}

#[test]
fn same_pvc_twice_is_one_claim_mounted_twice() {
    let config = with_kubernetes(
        r#"
        [[runners.kubernetes.volumes.pvc]]
        name = "data"
        mount_path = "/a"
        [[runners.kubernetes.volumes.pvc]]
        name = "data"
        mount_path = "/b"
        read_only = true
        "#,
    )
    .expect("two mounts of one claim load");
    let pvcs = &config.runners[0].kubernetes.volumes.pvc;
    let mounts: Vec<_> = pvcs
        .iter()
        .map(|v| (v.name.as_str(), v.mount_path.as_str(), v.read_only))
        .collect();
    assert_eq!(mounts, [("data", "/a", false), ("data", "/b", true)]);
}

#[test]
fn pvc_and_host_path_with_one_name_is_an_error_naming_both() {
    let (key, problem) = key_error(with_kubernetes(
        r#"
        [[runners.kubernetes.volumes.host_path]]
        name = "data"
        mount_path = "/a"
        [[runners.kubernetes.volumes.pvc]]
        name = "data"
        mount_path = "/b"
        "#,
    ));
    assert_eq!(key, "runners[0].kubernetes.volumes.pvc[0].name");
    let KeyError::DuplicateVolumeName { name, other_key } = problem else {
        panic!("{problem:?}")
    };
    assert_eq!(name, "data");
    assert_eq!(other_key, "runners[0].kubernetes.volumes.host_path[0].name");
}

#[test]
fn either_spelling_works_and_both_may_agree() {
    let dashed = with_kubernetes("bearer-token = \"t1\"\nservice-account = \"builder\"").unwrap();
    let kube = &dashed.runners[0].kubernetes;
    assert_eq!(kube.bearer_token.as_ref().map(|t| t.expose()), Some("t1"));
    assert_eq!(kube.service_account.as_deref(), Some("builder"));

    let both = with_kubernetes("bearer-token = \"t1\"\nbearer_token = \"t1\"").unwrap();
    assert_eq!(
        both.runners[0]
            .kubernetes
            .bearer_token
            .as_ref()
            .map(|t| t.expose()),
        Some("t1")
    );

    let underscored = with_kubernetes("service_account = \"deployer\"").unwrap();
    assert_eq!(
        underscored.runners[0].kubernetes.service_account.as_deref(),
        Some("deployer")
    );
}

#[test]
fn empty_overwrite_rule_disables_and_dot_star_allows_all() {
    let config = with_kubernetes(
        "namespace_overwrite_allowed = \"\"\n\
         service_account_overwrite_allowed = \".*\"\n\
         pod_annotations_overwrite_allowed = \"team=(qa|dev)\"",
    )
    .unwrap();
    let kube = &config.runners[0].kubernetes;
    assert!(kube.namespace_overwrite_allowed.is_none());
    let any = kube.service_account_overwrite_allowed.as_ref().unwrap();
    assert!(any.allows("anything") && any.allows(""));
    let team = kube.pod_annotations_overwrite_allowed.as_ref().unwrap();
    assert!(team.allows("team=qa"));
    assert!(!team.allows("team=qa,owner=x"));
}

#[test]
fn quantities_in_every_form_load_and_equal_requests_pass() {
    let config = with_kubernetes(
        "cpu_limit = \"0.1\"\ncpu_request = \"100m\"\n\
         memory_limit = \"129e6\"\nmemory_request = \"129M\"\n\
         service_memory_limit = \"1Gi\"\nservice_memory_request = \"1000Mi\"\n\
         helper_cpu_request = \"250m\"",
    )
    .unwrap();
    let kube = &config.runners[0].kubernetes;
    assert_eq!(
        kube.build_resources.cpu_limit,
        kube.build_resources.cpu_request
    );
    assert_eq!(
        kube.build_resources
            .memory_limit
            .as_ref()
            .map(Quantity::as_str),
        Some("129e6")
    );
    assert!(kube.service_resources.memory_request < kube.service_resources.memory_limit);
    assert_eq!(
        kube.helper_resources
            .cpu_request
            .as_ref()
            .map(Quantity::nanos),
        Some(250_000_000)
    );
    assert_eq!(kube.helper_resources.cpu_limit, None);
}

#[test]
fn runner_keys_are_read_with_their_units() {
    let config = parse(
        r#"
        concurrent = 8
        check_interval = 10
        log_level = "debug"
        [[runners]]
        name = "one"
        url = "https://127.0.0.1:3000/ci"
        token = "tok"
        executor = "kubernetes"
        limit = 2
        output_limit = 8
        environment = ["A=1", "URL=http://x/?a=b", "EMPTY="]
        builds_dir = "/work"
        "#,
    )
    .unwrap();
    assert_eq!(config.concurrent, 8);
    assert_eq!(config.check_interval, Duration::from_secs(10));
    assert_eq!(config.log_level, Some(log::LevelFilter::Debug));
    let runner = &config.runners[0];
    assert_eq!(runner.limit, 2);
    assert_eq!(runner.output_limit, 8 * 1024);
    assert_eq!(
        runner.environment,
        [
            ("A".into(), "1".into()),
            ("URL".into(), "http://x/?a=b".into()),
            ("EMPTY".into(), String::new())
        ]
    );
    assert_eq!(runner.builds_dir, "/work");
    // A runner without [runners.kubernetes] gets the defaults.
    assert_eq!(runner.kubernetes.namespace, "default");
    assert_eq!(runner.kubernetes.poll_timeout, Duration::from_secs(180));
}

#[test]
fn pod_shape_keys_are_read() {
    let config = with_kubernetes(
        r#"
        pull_policy = "if-not-present"
        image = "alpine:3.20"
        helper_image = "registry.local/helper:1"
        image_pull_secrets = ["regcred", "other.cred"]
        terminationGracePeriodSeconds = 0
        [runners.kubernetes.pod_labels]
        "app.kubernetes.io/team" = "qa"
        branch = "$CI_COMMIT_REF_NAME"
        [runners.kubernetes.pod_annotations]
        "example.com/owner" = "anyone, any text"
        "#,
    )
    .unwrap();
    let kube = &config.runners[0].kubernetes;
    assert_eq!(kube.pull_policy, Some(PullPolicy::IfNotPresent));
    assert_eq!(
        kube.pull_policy.map(PullPolicy::as_kubernetes),
        Some("IfNotPresent")
    );
    assert_eq!(kube.image.as_deref(), Some("alpine:3.20"));
    assert_eq!(
        kube.helper_image.as_deref(),
        Some("registry.local/helper:1")
    );
    assert_eq!(kube.image_pull_secrets, ["regcred", "other.cred"]);
    assert_eq!(kube.termination_grace_period_seconds, Some(0));
    assert_eq!(
        kube.pod_labels.get("branch").map(String::as_str),
        Some("$CI_COMMIT_REF_NAME")
    );
    assert_eq!(kube.pod_labels.len(), 2);
    assert_eq!(kube.pod_annotations.len(), 1);
}

#[test]
fn errors_point_at_the_runner_index() {
    let text = "[[runners]]\nexecutor = \"kubernetes\"\n\
                [[runners]]\nexecutor = \"kubernetes\"\n[runners.kubernetes]\nmemory_limit = \"1x\"";
    let (key, problem) = key_error(parse(text));
    assert_eq!(key, "runners[1].kubernetes.memory_limit");
    assert!(matches!(problem, KeyError::Quantity { value, .. } if value == "1x"));
}

#[test]
fn key_file_needs_cert_file() {
    let (key, problem) = key_error(with_kubernetes("key_file = \"/k.pem\""));
    assert_eq!(key, "runners[0].kubernetes.key_file");
    assert_eq!(
        problem.to_string(),
        "is set but runners[0].kubernetes.cert_file is not: a private key needs its client certificate"
    );
}

#[test]
fn bad_image_pull_secret_names_its_index() {
    let (key, problem) = key_error(with_kubernetes("image_pull_secrets = [\"ok\", \"Not_OK\"]"));
    assert_eq!(key, "runners[0].kubernetes.image_pull_secrets[1]");
    assert!(matches!(problem, KeyError::Invalid { value, .. } if value == "Not_OK"));
}

#[test]
fn float_where_an_integer_belongs_is_a_type_error() {
    let (key, problem) = key_error(with_kubernetes("poll_timeout = 1.5"));
    assert_eq!(key, "runners[0].kubernetes.poll_timeout");
    assert_eq!(problem.to_string(), "expected an integer, found a float");
}

#[test]
fn unknown_key_far_from_any_lists_the_known_keys() {
    let (key, problem) = key_error(parse("listen_address = \":9252\""));
    assert_eq!(key, "listen_address");
    assert_eq!(
        problem.to_string(),
        "unknown key (known keys: concurrent, check_interval, log_level, runners)"
    );
}

#[test]
fn syntax_error_reports_line_and_column() {
    let error = parse("concurrent = 1\n[[runners]]\nexecutor = = \"kubernetes\"\n").unwrap_err();
    let ConfigError::Syntax {
        line, column, path, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!((*line, *column), (3, 12));
    assert_eq!(path, Path::new(FILE));
    assert!(error
        .to_string()
        .starts_with(&format!("{FILE}: invalid TOML at line 3, column 12: ")));
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let dir = std::env::temp_dir().join(format!("alloy-config-missing-{}", std::process::id()));
    let path = dir.join("config.toml");
    let error = config::load(&path).unwrap_err();
    assert!(matches!(&error, ConfigError::Read { path: p, .. } if p == &path));
    assert_eq!(
        error.to_string(),
        format!("cannot read config file {}", path.display())
    );
}

#[test]
fn empty_file_has_defaults_and_no_runners() {
    let config = parse("").unwrap();
    assert_eq!(config.concurrent, 1);
    assert_eq!(config.check_interval, Duration::from_secs(3));
    assert!(config.runners.is_empty());
}
