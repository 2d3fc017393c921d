//! `[runners.kubernetes]`: connection, pod shape, resources and overwrite rules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::Table;

use super::error::{ConfigError, KeyError};
use super::load::check;
use super::reader::{quote_key, Section};
use super::rules;
use super::volumes::volumes;
use super::{KubernetesConfig, OverwriteRule, PullPolicy, Quantity, Resources};
use crate::secret::Secret;

const KUBERNETES_KEYS: &[&str] = &[
    "host",
    "cert_file",
    "key_file",
    "ca_file",
    "bearer-token",
    "bearer_token",
    "bearer_token_overwrite_allowed",
    "namespace",
    "namespace_overwrite_allowed",
    "service-account",
    "service_account",
    "service_account_overwrite_allowed",
    "privileged",
    "cpu_limit",
    "memory_limit",
    "cpu_request",
    "memory_request",
    "service_cpu_limit",
    "service_memory_limit",
    "service_cpu_request",
    "service_memory_request",
    "helper_cpu_limit",
    "helper_memory_limit",
    "helper_cpu_request",
    "helper_memory_request",
    "pull_policy",
    "node_selector",
    "image_pull_secrets",
    "helper_image",
    "image",
    "terminationGracePeriodSeconds",
    "poll_interval",
    "poll_timeout",
    "pod_labels",
    "pod_annotations",
    "pod_annotations_overwrite_allowed",
    "volumes",
];

const PULL_POLICIES: &[&str] = &["never", "if-not-present", "always"];

const DEFAULT_NAMESPACE: &str = "default";
const DEFAULT_POLL_INTERVAL_SECS: u32 = 3;
const DEFAULT_POLL_TIMEOUT_SECS: u32 = 180;

/// Reads `[runners.kubernetes]` of one runner; a runner without it gets the defaults.
pub(super) fn kubernetes(
    runner: &Section,
    builds_dir: &str,
) -> Result<KubernetesConfig, ConfigError> {
    let empty = Table::new();
    let section = match runner.table("kubernetes", KUBERNETES_KEYS)? {
        Some(section) => section,
        None => Section::new(
            runner.file(),
            runner.key("kubernetes"),
            &empty,
            KUBERNETES_KEYS,
        )?,
    };
    let section = &section;

    let (cert_file, key_file) = client_certificate(section)?;
    let (poll_interval, poll_timeout) = polling(section)?;
    Ok(KubernetesConfig {
        host: host(section)?,
        cert_file,
        key_file,
        ca_file: section.string("ca_file")?.map(PathBuf::from),
        bearer_token: one_spelling(section, "bearer-token", "bearer_token")?.map(Secret::new),
        bearer_token_overwrite_allowed: flag(section, "bearer_token_overwrite_allowed")?,
        namespace: namespace(section)?,
        namespace_overwrite_allowed: overwrite_rule(section, "namespace_overwrite_allowed")?,
        service_account: service_account(section)?,
        service_account_overwrite_allowed: overwrite_rule(
            section,
            "service_account_overwrite_allowed",
        )?,
        pod_annotations_overwrite_allowed: overwrite_rule(
            section,
            "pod_annotations_overwrite_allowed",
        )?,
        privileged: flag(section, "privileged")?,
        build_resources: resources(section, "")?,
        service_resources: resources(section, "service_")?,
        helper_resources: resources(section, "helper_")?,
        pull_policy: pull_policy(section)?,
        node_selector: node_selector(section)?,
        image_pull_secrets: image_pull_secrets(section)?,
        helper_image: non_empty(section, "helper_image")?,
        image: non_empty(section, "image")?,
        termination_grace_period_seconds: section.integer("terminationGracePeriodSeconds", 0)?,
        poll_interval,
        poll_timeout,
        pod_labels: label_keyed(section, "pod_labels")?,
        pod_annotations: label_keyed(section, "pod_annotations")?,
        volumes: volumes(section, builds_dir)?,
    })
}

fn flag(section: &Section, name: &str) -> Result<bool, ConfigError> {
    Ok(section.bool(name)?.unwrap_or(false))
}

fn host(section: &Section) -> Result<Option<String>, ConfigError> {
    let host = section.string("host")?;
    if let Some(host) = &host {
        check(section, "host", host, rules::is_https_url, rules::HTTPS_URL)?;
    }
    Ok(host)
}

/// `cert_file` and `key_file`, which only make sense together.
fn client_certificate(
    section: &Section,
) -> Result<(Option<PathBuf>, Option<PathBuf>), ConfigError> {
    let cert = section.string("cert_file")?;
    let key = section.string("key_file")?;
    let missing = |name: &str, companion: &str, reason| {
        let problem = KeyError::MissingCompanion {
            companion: section.key(companion),
            reason,
        };
        Err(section.error(name, problem))
    };
    match (cert, key) {
        (Some(_), None) => missing(
            "cert_file",
            "key_file",
            "a client certificate needs its private key",
        ),
        (None, Some(_)) => missing(
            "key_file",
            "cert_file",
            "a private key needs its client certificate",
        ),
        (cert, key) => Ok((cert.map(PathBuf::from), key.map(PathBuf::from))),
    }
}

/// A key accepted with a dash or an underscore; both may be set only to the same value.
fn one_spelling(
    section: &Section,
    dashed: &str,
    underscored: &str,
) -> Result<Option<String>, ConfigError> {
    let first = section.string(dashed)?;
    let second = section.string(underscored)?;
    match (first, second) {
        (Some(a), Some(b)) if a != b => {
            let problem = KeyError::ConflictingSpellings {
                other_key: section.key(dashed),
            };
            Err(section.error(underscored, problem))
        }
        (first, second) => Ok(first.or(second)),
    }
}

fn namespace(section: &Section) -> Result<String, ConfigError> {
    let namespace = section
        .string("namespace")?
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    check(
        section,
        "namespace",
        &namespace,
        rules::is_dns_label,
        rules::DNS_LABEL,
    )?;
    Ok(namespace)
}

fn service_account(section: &Section) -> Result<Option<String>, ConfigError> {
    let account = one_spelling(section, "service-account", "service_account")?;
    if let Some(account) = &account {
        let name = if section.contains("service_account") {
            "service_account"
        } else {
            "service-account"
        };
        check(
            section,
            name,
            account,
            rules::is_dns_subdomain,
            rules::DNS_SUBDOMAIN,
        )?;
    }
    Ok(account)
}

/// An `*_overwrite_allowed` regex, compiled now; empty or absent disables the overwrite.
fn overwrite_rule(section: &Section, name: &str) -> Result<Option<OverwriteRule>, ConfigError> {
    match section.string(name)? {
        None => Ok(None),
        Some(pattern) if pattern.is_empty() => Ok(None),
        Some(pattern) => OverwriteRule::new(&pattern).map(Some).map_err(|source| {
            section.error(
                name,
                KeyError::Regex {
                    pattern,
                    source: Box::new(source),
                },
            )
        }),
    }
}

/// The four quantities of one container kind (`prefix` is `""`, `service_` or `helper_`),
/// with each request at most its limit.
fn resources(section: &Section, prefix: &str) -> Result<Resources, ConfigError> {
    let (cpu_limit, cpu_request) = limit_and_request(section, &format!("{prefix}cpu"))?;
    let (memory_limit, memory_request) = limit_and_request(section, &format!("{prefix}memory"))?;
    Ok(Resources {
        cpu_limit,
        memory_limit,
        cpu_request,
        memory_request,
    })
}

/// `<resource>_limit` and `<resource>_request`, the request at most the limit.
fn limit_and_request(
    section: &Section,
    resource: &str,
) -> Result<(Option<Quantity>, Option<Quantity>), ConfigError> {
    let limit_name = format!("{resource}_limit");
    let request_name = format!("{resource}_request");
    let limit = quantity(section, &limit_name)?;
    let request = quantity(section, &request_name)?;
    if let (Some(limit), Some(request)) = (&limit, &request) {
        if request > limit {
            let problem = KeyError::RequestAboveLimit {
                request: request.to_string(),
                limit_key: section.key(&limit_name),
                limit: limit.to_string(),
            };
            return Err(section.error(&request_name, problem));
        }
    }
    Ok((limit, request))
}

fn quantity(section: &Section, name: &str) -> Result<Option<Quantity>, ConfigError> {
    let Some(value) = section.string(name)? else {
        return Ok(None);
    };
    Quantity::parse(&value)
        .map(Some)
        .map_err(|source| section.error(name, KeyError::Quantity { value, source }))
}

fn pull_policy(section: &Section) -> Result<Option<PullPolicy>, ConfigError> {
    let Some(value) = section.string("pull_policy")? else {
        return Ok(None);
    };
    match value.as_str() {
        "never" => Ok(Some(PullPolicy::Never)),
        "if-not-present" => Ok(Some(PullPolicy::IfNotPresent)),
        "always" => Ok(Some(PullPolicy::Always)),
        _ => Err(section.error(
            "pull_policy",
            KeyError::NotOneOf {
                value,
                accepted: PULL_POLICIES,
            },
        )),
    }
}

/// `node_selector`: label keys and label values.
fn node_selector(section: &Section) -> Result<BTreeMap<String, String>, ConfigError> {
    let selector = label_keyed(section, "node_selector")?;
    for (key, value) in &selector {
        if !rules::is_label_value(value) {
            let path = format!("{}.{}", section.key("node_selector"), quote_key(key));
            let problem = KeyError::Invalid {
                value: value.clone(),
                accepted: rules::LABEL_VALUE.into(),
            };
            return Err(section.error_at(path, problem));
        }
    }
    Ok(selector)
}

/// A table of strings whose keys must be valid label (or annotation) keys.
fn label_keyed(section: &Section, name: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let map = section.string_map(name)?;
    if let Some(bad) = map.keys().find(|key| !rules::is_label_key(key)) {
        let problem = KeyError::Invalid {
            value: bad.clone(),
            accepted: rules::LABEL_KEY.into(),
        };
        return Err(section.error_at(format!("{}.{}", section.key(name), quote_key(bad)), problem));
    }
    Ok(map)
}

fn image_pull_secrets(section: &Section) -> Result<Vec<String>, ConfigError> {
    let secrets = section.string_list("image_pull_secrets")?;
    for (index, secret) in secrets.iter().enumerate() {
        if !rules::is_dns_subdomain(secret) {
            let key = format!("{}[{index}]", section.key("image_pull_secrets"));
            let problem = KeyError::Invalid {
                value: secret.clone(),
                accepted: rules::DNS_SUBDOMAIN.into(),
            };
            return Err(section.error_at(key, problem));
        }
    }
    Ok(secrets)
}

fn non_empty(section: &Section, name: &str) -> Result<Option<String>, ConfigError> {
    let value = section.string(name)?;
    if let Some(value) = &value {
        check(
            section,
            name,
            value,
            |v| !v.trim().is_empty(),
            "a non-empty image name",
        )?;
    }
    Ok(value)
}

/// `poll_interval` and `poll_timeout`, both positive, the timeout at least the interval.
fn polling(section: &Section) -> Result<(Duration, Duration), ConfigError> {
    let interval = section
        .u32("poll_interval", 1)?
        .unwrap_or(DEFAULT_POLL_INTERVAL_SECS);
    let timeout = section
        .u32("poll_timeout", 1)?
        .unwrap_or(DEFAULT_POLL_TIMEOUT_SECS);
    if timeout < interval {
        let accepted = format!(
            "at least {} = {interval} seconds",
            section.key("poll_interval")
        );
        let problem = KeyError::OutOfRange {
            value: i64::from(timeout),
            accepted,
        };
        return Err(section.error("poll_timeout", problem));
    }
    let seconds = |s: u32| Duration::from_secs(u64::from(s));
    Ok((seconds(interval), seconds(timeout)))
}
