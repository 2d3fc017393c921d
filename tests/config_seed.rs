//! The two example configurations of the 2018 AlloyCI runner's Kubernetes documentation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_runner::config::{self, Config, ConfigError, KeyError, Quantity};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/config")
        .join(name)
}

fn load(name: &str) -> Result<Config, ConfigError> {
    config::load(&fixture(name))
}

fn q(text: &str) -> Option<Quantity> {
    Some(Quantity::parse(text).expect("test quantity"))
}

#[test]
fn seed_example_loads_with_every_value() {
    let config = load("seed-example.toml").expect("the seed example loads");
    assert_eq!(config.path, fixture("seed-example.toml"));
    assert_eq!(config.concurrent, 4);
    assert_eq!(config.check_interval, Duration::from_secs(3));
    assert_eq!(config.log_level, None);
    assert_eq!(config.runners.len(), 1);

    let runner = &config.runners[0];
    assert_eq!(runner.name, "Kubernetes Runner");
    assert_eq!(runner.url.as_deref(), Some("https://alloy.com/ci"));
    assert_eq!(runner.token.as_ref().map(|t| t.expose()), Some("......"));
    assert_eq!(runner.limit, 0);
    assert_eq!(runner.output_limit, 4096 * 1024);
    assert!(runner.environment.is_empty());
    assert_eq!(runner.builds_dir, "/builds");

    let kube = &runner.kubernetes;
    assert_eq!(kube.host.as_deref(), Some("https://127.0.0.1:4892"));
    assert_eq!(
        kube.cert_file,
        Some(PathBuf::from("/etc/ssl/kubernetes/api.crt"))
    );
    assert_eq!(
        kube.key_file,
        Some(PathBuf::from("/etc/ssl/kubernetes/api.key"))
    );
    assert_eq!(
        kube.ca_file,
        Some(PathBuf::from("/etc/ssl/kubernetes/ca.crt"))
    );
    assert_eq!(kube.bearer_token, None);
    assert!(kube.bearer_token_overwrite_allowed);
    assert_eq!(kube.namespace, "alloy");
    assert!(kube.privileged);
    assert_eq!(kube.poll_interval, Duration::from_secs(5));
    assert_eq!(kube.poll_timeout, Duration::from_secs(3600));
    assert_eq!(
        kube.node_selector,
        BTreeMap::from([("alloy".into(), "true".into())])
    );

    // Quantities keep their text and compare by value.
    assert_eq!(kube.build_resources.cpu_limit, q("1"));
    assert_eq!(
        kube.build_resources
            .memory_limit
            .as_ref()
            .map(Quantity::as_str),
        Some("1Gi")
    );
    assert_eq!(kube.build_resources.memory_limit, q("1024Mi"));
    assert_eq!(kube.build_resources.cpu_request, None);
    assert_eq!(kube.service_resources.cpu_limit, q("1"));
    assert_eq!(kube.service_resources.memory_limit, q("1Gi"));
    assert_eq!(kube.helper_resources.cpu_limit, q("500m"));
    assert_eq!(
        kube.helper_resources
            .cpu_limit
            .as_ref()
            .map(Quantity::nanos),
        Some(500_000_000)
    );
    assert_eq!(kube.helper_resources.memory_limit, q("100Mi"));
    assert!(kube.helper_resources.cpu_limit < kube.build_resources.cpu_limit);

    // The namespace rule matches whole values only.
    let rule = kube
        .namespace_overwrite_allowed
        .as_ref()
        .expect("namespace rule");
    assert_eq!(rule.pattern, "ci-.*");
    assert!(rule.allows("ci-main"));
    assert!(!rule.allows("prod-ci-x"));
    assert!(!rule.allows("ci"));

    // Everything the example leaves out has its default.
    assert!(kube.service_account.is_none());
    assert!(kube.service_account_overwrite_allowed.is_none());
    assert!(kube.pod_annotations_overwrite_allowed.is_none());
    assert_eq!(kube.pull_policy, None);
    assert!(kube.image_pull_secrets.is_empty());
    assert!(kube.helper_image.is_none() && kube.image.is_none());
    assert_eq!(kube.termination_grace_period_seconds, None);
    assert!(kube.pod_labels.is_empty() && kube.pod_annotations.is_empty());
    assert!(kube.volumes.host_path.is_empty() && kube.volumes.pvc.is_empty());
}

#[test]
fn seed_example_token_stays_hidden_in_debug_output() {
    let config = load("seed-example.toml").expect("the seed example loads");
    let debug = format!("{config:?}");
    assert!(!debug.contains("......"), "{debug}");
    assert!(debug.contains("[REDACTED]"));
}

#[test]
fn seed_volumes_is_rejected_for_its_empty_dir_name() {
    let error = load("seed-volumes.toml").expect_err("empty_dir is not a DNS-1123 label");
    assert_eq!(
        error.key(),
        Some("runners[0].kubernetes.volumes.empty_dir[0].name")
    );
    let ConfigError::Key {
        problem: KeyError::Invalid { value, accepted },
        path,
        ..
    } = &error
    else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!(path, &fixture("seed-volumes.toml"));
    assert_eq!(value, "empty_dir");
    assert!(accepted.starts_with("a DNS-1123 label"), "{accepted}");
}

#[test]
fn seed_volumes_with_the_name_fixed_loads_every_volume() {
    let config = load("seed-volumes-fixed.toml").expect("the fixed volumes example loads");
    assert_eq!(config.concurrent, 4);
    let runner = &config.runners[0];
    assert_eq!(runner.name, "");
    assert!(runner.url.is_none() && runner.token.is_none());
    assert_eq!(runner.kubernetes.namespace, "default");
    assert_eq!(runner.kubernetes.host, None);
    assert_eq!(runner.kubernetes.poll_interval, Duration::from_secs(3));
    assert_eq!(runner.kubernetes.poll_timeout, Duration::from_secs(180));

    let volumes = &runner.kubernetes.volumes;
    let host_paths: Vec<_> = volumes
        .host_path
        .iter()
        .map(|v| {
            (
                v.name.as_str(),
                v.mount_path.as_str(),
                v.host_path.as_str(),
                v.read_only,
            )
        })
        .collect();
    assert_eq!(
        host_paths,
        [
            ("hostpath-1", "/path/to/mount/point", "/path/on/host", true),
            // host_path defaults to the mount path.
            (
                "hostpath-2",
                "/path/to/mount/point_2",
                "/path/to/mount/point_2",
                true
            ),
        ]
    );
    assert_eq!(volumes.pvc.len(), 1);
    assert_eq!(
        (
            volumes.pvc[0].name.as_str(),
            volumes.pvc[0].mount_path.as_str(),
            volumes.pvc[0].read_only
        ),
        ("pvc-1", "/path/to/mount/point1", false)
    );

    let config_map = &volumes.config_map[0];
    assert_eq!(
        (config_map.name.as_str(), config_map.mount_path.as_str()),
        ("config-map-1", "/path/to/directory")
    );
    assert!(!config_map.read_only);
    assert_eq!(
        config_map.items,
        BTreeMap::from([
            ("key_1".into(), "relative/path/to/key_1_file".into()),
            ("key_2".into(), "key_2".into()),
        ])
    );

    let secret = &volumes.secret[0];
    assert_eq!(
        (
            secret.name.as_str(),
            secret.mount_path.as_str(),
            secret.read_only
        ),
        ("secrets", "/path/to/directory1", true)
    );
    assert_eq!(
        secret.items,
        BTreeMap::from([("secret_1".into(), "relative/path/to/secret_1_file".into())])
    );

    let empty_dir = &volumes.empty_dir[0];
    assert_eq!(
        (
            empty_dir.name.as_str(),
            empty_dir.mount_path.as_str(),
            empty_dir.medium.as_str()
        ),
        ("empty-dir", "/path/to/empty_dir", "Memory")
    );
}
