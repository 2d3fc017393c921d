//! Every rejected configuration under `fixtures/config/bad/` run through the real binary: exit
//! code 2, nothing on stdout, one error line naming the file, the key and the value.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/config/bad")
        .join(name)
}

/// Runs `alloy-runner --config <fixture> list` and checks the error message holds `wanted`.
fn rejects(name: &str, wanted: &[&str]) -> String {
    let path = fixture(name);
    let output = Command::new(env!("CARGO_BIN_EXE_alloy-runner"))
        .arg("--config")
        .arg(&path)
        .arg("list")
        .env_remove("RUST_LOG")
        .output()
        .expect("the alloy-runner binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();

    assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "{name}: stdout {:?}",
        output.stdout
    );
    let prefix = format!("alloy-runner: error: {}: ", path.display());
    assert!(stderr.starts_with(&prefix), "{name}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{name}: one line expected: {stderr}"
    );
    for text in wanted {
        assert!(
            stderr.contains(text),
            "{name}: {text:?} missing from {stderr}"
        );
    }
    stderr
}

macro_rules! bad_configs {
    ($($test:ident: $file:literal => [$($wanted:expr),+ $(,)?];)+) => {
        $(
            #[test]
            fn $test() {
                rejects($file, &[$($wanted),+]);
            }
        )+

        const COVERED: &[&str] = &[$($file),+];
    };
}

bad_configs! {
    c01_star_is_not_a_regex: "c01-annotations-regex-star.toml" => [
        "runners[0].kubernetes.pod_annotations_overwrite_allowed: invalid regex \"*\": \
         repetition operator missing expression",
    ];
    c01_unclosed_group_is_rejected: "c01-namespace-regex-unclosed.toml" => [
        "runners[0].kubernetes.namespace_overwrite_allowed: invalid regex \"ci-(\": unclosed group",
    ];
    c01_pattern_cannot_escape_the_anchors: "c01-regex-escapes-anchor.toml" => [
        "runners[0].kubernetes.namespace_overwrite_allowed: invalid regex \"ci-.*)|(.*\"",
    ];
    c02_unknown_quantity_suffix: "c02-cpu-limit-unknown-suffix.toml" => [
        "runners[0].kubernetes.cpu_limit: invalid quantity \"100j\": unknown suffix \"j\"",
        "accepted: a non-negative decimal number",
    ];
    c02_quantity_with_two_points: "c02-memory-limit-two-points.toml" => [
        "runners[0].kubernetes.memory_limit: invalid quantity \"1.5.Gi\"",
        "is not a decimal number",
    ];
    c02_negative_quantity: "c02-negative-request.toml" => [
        "runners[0].kubernetes.service_cpu_request: invalid quantity \"-500m\": negative quantity",
    ];
    c03_volume_name_shared_by_two_kinds_names_both: "c03-volume-name-two-kinds.toml" => [
        "runners[0].kubernetes.volumes.empty_dir[0].name: volume name \"data\" is also used by \
         runners[0].kubernetes.volumes.pvc[0].name",
    ];
    c03_host_path_name_twice: "c03-host-path-name-twice.toml" => [
        "runners[0].kubernetes.volumes.host_path[1].name: volume name \"cache\" is also used by \
         runners[0].kubernetes.volumes.host_path[0].name",
    ];
    typo_in_a_limit_suggests_the_key: "typo-kubernetes-key.toml" => [
        "runners[0].kubernetes.cpu_limt: unknown key, did you mean `cpu_limit`?",
    ];
    typo_at_top_level_suggests_the_key: "typo-top-level-key.toml" => [
        ": concurent: unknown key, did you mean `concurrent`?",
    ];
    typo_in_a_volume_suggests_the_key: "typo-volume-key.toml" => [
        "runners[0].kubernetes.volumes.pvc[0].mount-path: unknown key, did you mean `mount_path`?",
    ];
    bearer_token_spellings_conflict: "bearer-token-both-spellings.toml" => [
        "runners[0].kubernetes.bearer_token: conflicts with runners[0].kubernetes.bearer-token",
    ];
    service_account_spellings_conflict: "service-account-both-spellings.toml" => [
        "runners[0].kubernetes.service_account: conflicts with \
         runners[0].kubernetes.service-account",
    ];
    client_certificate_needs_its_key: "cert-without-key.toml" => [
        "runners[0].kubernetes.cert_file: is set but runners[0].kubernetes.key_file is not",
    ];
    cpu_request_above_limit_compares_numbers: "cpu-request-above-limit.toml" => [
        "runners[0].kubernetes.cpu_request: request 1500m is above the limit \
         runners[0].kubernetes.cpu_limit = 1",
    ];
    binary_and_decimal_memory_compare_exactly: "helper-memory-request-above-limit.toml" => [
        "runners[0].kubernetes.helper_memory_request: request 1Gi is above the limit \
         runners[0].kubernetes.helper_memory_limit = 1000Mi",
    ];
    unknown_pull_policy: "pull-policy-unknown.toml" => [
        "runners[0].kubernetes.pull_policy: invalid value \"sometimes\" \
         (accepted: never, if-not-present, always)",
    ];
    only_kubernetes_executor: "executor-docker.toml" => [
        "runners[0].executor: executor \"docker\" is not supported: only kubernetes is supported",
    ];
    missing_executor: "missing-executor.toml" => [
        "runners[0].executor: missing required key (accepted: kubernetes)",
    ];
    toml_syntax_error_has_line_and_column: "toml-syntax.toml" => [
        "invalid TOML at line 4, column 23",
    ];
    string_where_an_integer_belongs: "wrong-type-concurrent.toml" => [
        ": concurrent: expected an integer, found a string",
    ];
    string_where_a_boolean_belongs: "wrong-type-privileged.toml" => [
        "runners[0].kubernetes.privileged: expected a boolean (true or false), found a string",
    ];
    label_key_with_a_space: "pod-label-key-with-space.toml" => [
        "runners[0].kubernetes.pod_labels.\"team name\": invalid value \"team name\"",
        "DNS-1123 subdomain prefix",
    ];
    annotation_key_prefix_must_be_lowercase: "pod-annotation-key-uppercase-prefix.toml" => [
        "runners[0].kubernetes.pod_annotations.\"Example.com/owner\": invalid value",
    ];
    node_selector_value_must_be_a_label_value: "node-selector-bad-value.toml" => [
        "runners[0].kubernetes.node_selector.zone: invalid value \"eu west\"",
    ];
    relative_mount_path: "relative-mount-path.toml" => [
        "runners[0].kubernetes.volumes.pvc[0].mount_path: invalid value \"data\" \
         (accepted: an absolute path",
    ];
    two_volumes_at_one_mount_path: "mount-path-twice.toml" => [
        "runners[0].kubernetes.volumes.secret[0].mount_path: mount path \"/data\" is also used by \
         runners[0].kubernetes.volumes.pvc[0].mount_path",
    ];
    config_map_item_cannot_leave_the_mount: "config-map-item-escapes-mount.toml" => [
        "runners[0].kubernetes.volumes.config_map[0].items.key: invalid value \"../../etc/passwd\"",
    ];
    secret_item_key_must_be_a_file_name: "secret-item-key-with-slash.toml" => [
        "runners[0].kubernetes.volumes.secret[0].items.\"dir/key\": invalid value \"dir/key\"",
    ];
    key_given_twice_is_a_syntax_error: "duplicate-key.toml" => [
        "invalid TOML at line 6, column 5: duplicate key `cpu_limit`",
    ];
    empty_dir_medium_is_case_sensitive: "empty-dir-medium-lowercase.toml" => [
        "runners[0].kubernetes.volumes.empty_dir[0].medium: invalid value \"memory\"",
    ];
    poll_timeout_below_interval: "poll-timeout-below-interval.toml" => [
        "runners[0].kubernetes.poll_timeout: value 5 is out of range \
         (accepted: at least runners[0].kubernetes.poll_interval = 10 seconds)",
    ];
    poll_interval_must_be_positive: "poll-interval-zero.toml" => [
        "runners[0].kubernetes.poll_interval: value 0 is out of range",
    ];
    environment_entry_needs_equals: "environment-without-equals.toml" => [
        "runners[0].environment[1]: invalid value \"BAD\" (accepted: KEY=value",
    ];
    concurrent_must_be_positive: "concurrent-zero.toml" => [
        ": concurrent: value 0 is out of range (accepted: an integer of at least 1)",
    ];
    namespace_must_be_a_dns_label: "namespace-not-a-label.toml" => [
        "runners[0].kubernetes.namespace: invalid value \"CI_Jobs\" (accepted: a DNS-1123 label",
    ];
    unknown_log_level: "log-level-unknown.toml" => [
        ": log_level: invalid value \"verbose\" (accepted: error, warn, info, debug, trace)",
    ];
    api_server_host_needs_a_scheme: "host-without-scheme.toml" => [
        "runners[0].kubernetes.host: invalid value \"127.0.0.1:6443\"",
    ];
    volume_over_the_builds_dir: "mount-over-builds-dir.toml" => [
        "runners[0].kubernetes.volumes.host_path[0].mount_path: invalid value \"/builds\"",
        "a path other than the builds folder /builds and the runner's /alloy-runner/scripts",
    ];
    mount_path_with_dot_dot: "mount-path-with-dot-dot.toml" => [
        "runners[0].kubernetes.volumes.empty_dir[0].mount_path: invalid value \"/alloy-runner/scripts/../scripts\"",
        "without empty, '.' or '..' segments",
    ];
    volume_named_like_the_runners_own: "volume-named-repo.toml" => [
        "runners[0].kubernetes.volumes.pvc[0].name: invalid value \"repo\"",
        "a name other than repo and scripts",
    ];
    api_server_host_never_carries_a_password: "host-with-password.toml" => [
        "runners[0].kubernetes.host: invalid value \"https://***@127.0.0.1:6443\"",
        "without user:password@",
    ];
    api_server_host_must_be_https: "host-plain-http.toml" => [
        "runners[0].kubernetes.host: invalid value \"http://127.0.0.1:6443\"",
        "an https:// URL without user:password@",
    ];
}

#[test]
fn token_values_never_appear_in_errors() {
    let stderr = rejects(
        "wrong-type-token.toml",
        &["runners[0].token: expected a string"],
    );
    assert!(!stderr.contains("918273645"), "{stderr}");
    let stderr = rejects("bearer-token-both-spellings.toml", &["conflicts with"]);
    assert!(!stderr.contains("secret-value"), "{stderr}");
}

#[test]
fn every_bad_fixture_has_a_test() {
    let mut untested = Vec::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/config/bad");
    for entry in std::fs::read_dir(dir).expect("fixtures/config/bad is readable") {
        let name = entry
            .expect("directory entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !COVERED.contains(&name.as_str()) && name != "wrong-type-token.toml" {
            untested.push(name);
        }
    }
    assert!(untested.is_empty(), "fixtures without a test: {untested:?}");
    assert!(COVERED.len() >= 20);
}
