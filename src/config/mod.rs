//! `config.toml`: loading, checking and the checked values the rest of the runner trusts.
//!
//! Loading goes in two steps: the TOML text is parsed and every key is checked (unknown keys,
//! types, quantities, regexes, volumes), then the values are turned into the plain structs of
//! this module. Nothing downstream re-checks them.

mod error;
mod kubernetes;
mod load;
pub mod quantity;
mod reader;
pub mod rules;
mod volumes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

pub use error::{ConfigError, KeyError};
pub use load::{load, parse};
pub use quantity::{Quantity, QuantityError};

use crate::secret::Secret;

/// The whole checked configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from.
    pub path: PathBuf,
    /// How many jobs may run at once over all runners (default 1).
    pub concurrent: u32,
    /// How often each runner asks the coordinator for a job (default 3 s).
    pub check_interval: Duration,
    /// Log level from the file (`error`, `warn`, `info`, `debug`, `trace`), if set.
    pub log_level: Option<log::LevelFilter>,
    /// The `[[runners]]` entries, in file order.
    pub runners: Vec<RunnerConfig>,
}

/// One `[[runners]]` entry.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Display name (`name`); empty when the file has none.
    pub name: String,
    /// Coordinator URL (`url`); required by the commands that talk to the coordinator.
    pub url: Option<String>,
    /// Runner token (`token`); required by the commands that talk to the coordinator.
    pub token: Option<Secret>,
    /// Maximum jobs this runner runs at once (`limit`, 0 = no limit beyond `concurrent`).
    pub limit: u32,
    /// Trace size limit in bytes (`output_limit` is in KB, default 4096 KB).
    pub output_limit: u64,
    /// `environment`: extra variables for every job, in file order.
    pub environment: Vec<(String, String)>,
    /// `builds_dir`: where projects are checked out in the pod (default `/builds`).
    pub builds_dir: String,
    /// `[runners.kubernetes]`.
    pub kubernetes: KubernetesConfig,
}

/// `[runners.kubernetes]`: how to reach the cluster and how to shape the job's pod.
#[derive(Debug, Clone, Default)]
pub struct KubernetesConfig {
    /// API server URL (`host`); `None` means in-cluster credentials.
    pub host: Option<String>,
    /// Client certificate (`cert_file`), always together with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client key (`key_file`).
    pub key_file: Option<PathBuf>,
    /// CA bundle that signs the API server's certificate (`ca_file`).
    pub ca_file: Option<PathBuf>,
    /// Bearer token (`bearer-token` or `bearer_token`).
    pub bearer_token: Option<Secret>,
    /// Whether a job may bring its own token in `KUBERNETES_BEARER_TOKEN`.
    pub bearer_token_overwrite_allowed: bool,
    /// Namespace of the job pods (default `default`).
    pub namespace: String,
    /// Whole-value rule for `KUBERNETES_NAMESPACE_OVERWRITE`; `None` disables it.
    pub namespace_overwrite_allowed: Option<OverwriteRule>,
    /// Service account of the job pods (`service-account` or `service_account`).
    pub service_account: Option<String>,
    /// Whole-value rule for `KUBERNETES_SERVICE_ACCOUNT_OVERWRITE`; `None` disables it.
    pub service_account_overwrite_allowed: Option<OverwriteRule>,
    /// Whole-value rule for `KUBERNETES_POD_ANNOTATIONS_*`; `None` disables it.
    pub pod_annotations_overwrite_allowed: Option<OverwriteRule>,
    /// Run the build and service containers privileged.
    pub privileged: bool,
    /// Requests and limits of the build container.
    pub build_resources: Resources,
    /// Requests and limits of each service container.
    pub service_resources: Resources,
    /// Requests and limits of the helper container.
    pub helper_resources: Resources,
    /// `pull_policy`; `None` leaves it to the cluster.
    pub pull_policy: Option<PullPolicy>,
    /// `node_selector`.
    pub node_selector: BTreeMap<String, String>,
    /// `image_pull_secrets`: names of existing Secrets.
    pub image_pull_secrets: Vec<String>,
    /// `helper_image`; `None` means the runner's default helper image.
    pub helper_image: Option<String>,
    /// `image`: the build image when the job names none.
    pub image: Option<String>,
    /// `terminationGracePeriodSeconds`; `None` leaves the cluster default.
    pub termination_grace_period_seconds: Option<i64>,
    /// `poll_interval` (default 3 s).
    pub poll_interval: Duration,
    /// `poll_timeout` (default 180 s).
    pub poll_timeout: Duration,
    /// `pod_labels`, values may hold `$VAR` references.
    pub pod_labels: BTreeMap<String, String>,
    /// `pod_annotations`, values may hold `$VAR` references.
    pub pod_annotations: BTreeMap<String, String>,
    /// `volumes`.
    pub volumes: Volumes,
}

/// CPU and memory requests and limits of one kind of container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub cpu_limit: Option<Quantity>,
    pub memory_limit: Option<Quantity>,
    pub cpu_request: Option<Quantity>,
    pub memory_request: Option<Quantity>,
}

/// `pull_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Never,
    IfNotPresent,
    Always,
}

impl PullPolicy {
    /// The spelling Kubernetes uses in `imagePullPolicy`.
    pub fn as_kubernetes(self) -> &'static str {
        match self {
            PullPolicy::Never => "Never",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
        }
    }
}

/// A compiled `*_overwrite_allowed` regex that must match the WHOLE value.
#[derive(Debug, Clone)]
pub struct OverwriteRule {
    /// The pattern as written in the file.
    pub pattern: String,
    /// The pattern anchored as `^(?:pattern)$`.
    pub regex: Regex,
}

impl OverwriteRule {
    /// Compiles `pattern` anchored at both ends. The pattern is first compiled alone, so one
    /// such as `a)|(.*` cannot close the anchoring group and match any value.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        Regex::new(pattern)?;
        let regex = Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(OverwriteRule {
            pattern: pattern.to_string(),
            regex,
        })
    }

    /// Whether the whole of `value` matches.
    pub fn allows(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

/// `[runners.kubernetes.volumes]`, one list per kind, in file order.
#[derive(Debug, Clone, Default)]
pub struct Volumes {
    pub host_path: Vec<HostPathVolume>,
    pub pvc: Vec<PvcVolume>,
    pub config_map: Vec<ConfigMapVolume>,
    pub secret: Vec<SecretVolume>,
    pub empty_dir: Vec<EmptyDirVolume>,
}

/// A `hostPath` volume; `host_path` defaults to `mount_path`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPathVolume {
    pub name: String,
    pub mount_path: String,
    pub host_path: String,
    pub read_only: bool,
}

/// A `persistentVolumeClaim` volume; the claim has the volume's name.
#[derive(Debug, Clone, PartialEq)]
pub struct PvcVolume {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
}

/// A `configMap` volume; `items` maps keys to paths relative to the mount.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigMapVolume {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
    pub items: BTreeMap<String, String>,
}

/// A `secret` volume; `items` maps keys to paths relative to the mount.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretVolume {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
    pub items: BTreeMap<String, String>,
}

/// An `emptyDir` volume; `medium` is `""` (node disk) or `"Memory"` (tmpfs).
#[derive(Debug, Clone, PartialEq)]
pub struct EmptyDirVolume {
    pub name: String,
    pub mount_path: String,
    pub medium: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_rule_matches_the_whole_value() {
        let rule = OverwriteRule::new("ci-.*").unwrap();
        assert!(rule.allows("ci-main"));
        assert!(!rule.allows("prod-ci-x"));
        let alternatives = OverwriteRule::new("a|b").unwrap();
        assert!(alternatives.allows("a") && alternatives.allows("b"));
        assert!(!alternatives.allows("ab"));
    }

    #[test]
    fn overwrite_rule_cannot_close_its_anchoring_group() {
        // Anchored as text, `^(?:a)|(.*)$` would compile and allow every value.
        assert!(OverwriteRule::new("a)|(.*").is_err());
        assert!(OverwriteRule::new("*").is_err());
    }
}
