//! Job variables that change the pod: namespace, service account, bearer token and pod
//! annotations, each allowed only where the runner's config says so.
//!
//! A value is normalised before it is compared (surrounding whitespace trimmed, control
//! characters refused) and the config's rule must match the WHOLE normalised value. An empty
//! value counts as not set. A variable whose overwrite is disabled is ignored with a notice.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::{KubernetesConfig, OverwriteRule};
use crate::coordinator::job::JobVariable;
use crate::secret::Secret;

use super::labels;

/// Asks for another namespace for the job's pod.
pub const NAMESPACE_VARIABLE: &str = "KUBERNETES_NAMESPACE_OVERWRITE";
/// Asks for another service account for the job's pod.
pub const SERVICE_ACCOUNT_VARIABLE: &str = "KUBERNETES_SERVICE_ACCOUNT_OVERWRITE";
/// Brings the job's own bearer token for the Kubernetes API.
pub const BEARER_TOKEN_VARIABLE: &str = "KUBERNETES_BEARER_TOKEN";
/// Prefix of the variables that add pod annotations, each `key=value`.
pub const POD_ANNOTATIONS_PREFIX: &str = "KUBERNETES_POD_ANNOTATIONS_";

/// What the job's variables changed, after every check passed.
#[derive(Debug, Clone, Default)]
pub struct Overwrites {
    /// The pod's namespace: the accepted overwrite, else the config's (`default` when empty).
    pub namespace: String,
    /// The pod's service account: the accepted overwrite, else the config's.
    pub service_account: Option<String>,
    /// The job's own bearer token, when allowed.
    pub bearer_token: Option<Secret>,
    /// Annotations from `KUBERNETES_POD_ANNOTATIONS_*`, applied over the config's.
    pub pod_annotations: BTreeMap<String, String>,
    /// Lines for the job log: each accepted or ignored overwrite (never a token).
    pub notices: Vec<String>,
}

/// A job variable asked for an overwrite the runner refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverwriteError {
    /// The value does not match the config's `*_overwrite_allowed` rule.
    NotAllowed {
        variable: String,
        value: String,
        pattern: String,
    },
    /// The value holds a control character (the value itself is not repeated).
    ControlCharacter { variable: String },
    /// A namespace or service account that is not a valid Kubernetes name.
    InvalidName {
        variable: String,
        value: String,
        expected: &'static str,
    },
    /// A `KUBERNETES_POD_ANNOTATIONS_*` value without `=`.
    NotKeyValue { variable: String, value: String },
    /// A `KUBERNETES_POD_ANNOTATIONS_*` key that is not a valid annotation key.
    InvalidAnnotationKey {
        variable: String,
        key: String,
        source: labels::KeyError,
    },
    /// A `KUBERNETES_POD_ANNOTATIONS_*` key under the runner's own prefix.
    ReservedAnnotationKey { variable: String, key: String },
}

impl fmt::Display for OverwriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverwriteError::NotAllowed {
                variable,
                value,
                pattern,
            } => {
                write!(
                    f,
                    "{variable}: provided value {value:?} does not match {pattern:?}"
                )
            }
            OverwriteError::ControlCharacter { variable } => {
                write!(f, "{variable}: the value holds a control character")
            }
            OverwriteError::InvalidName {
                variable,
                value,
                expected,
            } => {
                write!(f, "{variable}: provided value {value:?} is not {expected}")
            }
            OverwriteError::NotKeyValue { variable, value } => {
                write!(
                    f,
                    "{variable}: provided value {value:?} does not match \"k=v\""
                )
            }
            OverwriteError::InvalidAnnotationKey {
                variable,
                key,
                source,
            } => {
                write!(
                    f,
                    "{variable}: annotation key {key:?} is not valid: {source}"
                )
            }
            OverwriteError::ReservedAnnotationKey { variable, key } => write!(
                f,
                "{variable}: annotation key {key:?} is reserved for the runner ({}/)",
                labels::RESERVED_PREFIX
            ),
        }
    }
}

impl std::error::Error for OverwriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OverwriteError::InvalidAnnotationKey { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Applies the overwrites the job's `variables` ask for (later entries win) to `config`.
pub fn resolve(
    config: &KubernetesConfig,
    variables: &[JobVariable],
) -> Result<Overwrites, OverwriteError> {
    let mut notices = Vec::new();
    let namespace = resolve_namespace(config, variables, &mut notices)?;
    let service_account = resolve_service_account(config, variables, &mut notices)?;
    let bearer_token = resolve_bearer_token(config, variables, &mut notices)?;
    let pod_annotations = resolve_annotations(config, variables, &mut notices)?;
    Ok(Overwrites {
        namespace,
        service_account,
        bearer_token,
        pod_annotations,
        notices,
    })
}

fn resolve_namespace(
    config: &KubernetesConfig,
    variables: &[JobVariable],
    notices: &mut Vec<String>,
) -> Result<String, OverwriteError> {
    let configured = if config.namespace.is_empty() {
        "default".to_string()
    } else {
        config.namespace.clone()
    };
    let rule = config.namespace_overwrite_allowed.as_ref();
    let Some(value) = checked_value(NAMESPACE_VARIABLE, variables, rule, notices)? else {
        return Ok(configured);
    };
    if !labels::is_dns_label(&value) {
        return Err(invalid_name(NAMESPACE_VARIABLE, value, "a DNS-1123 label"));
    }
    notices.push(format!("\"namespace\" overwritten with {value:?}"));
    Ok(value)
}

fn resolve_service_account(
    config: &KubernetesConfig,
    variables: &[JobVariable],
    notices: &mut Vec<String>,
) -> Result<Option<String>, OverwriteError> {
    let rule = config.service_account_overwrite_allowed.as_ref();
    let Some(value) = checked_value(SERVICE_ACCOUNT_VARIABLE, variables, rule, notices)? else {
        return Ok(config.service_account.clone());
    };
    if !labels::is_dns_subdomain(&value) {
        return Err(invalid_name(
            SERVICE_ACCOUNT_VARIABLE,
            value,
            "a DNS-1123 subdomain",
        ));
    }
    notices.push(format!("\"service account\" overwritten with {value:?}"));
    Ok(Some(value))
}

fn invalid_name(variable: &str, value: String, expected: &'static str) -> OverwriteError {
    OverwriteError::InvalidName {
        variable: variable.to_string(),
        value,
        expected,
    }
}

/// The token is taken only when the config allows it and names a `host`: without a host the
/// runner uses in-cluster credentials, where a job's token has no business.
fn resolve_bearer_token(
    config: &KubernetesConfig,
    variables: &[JobVariable],
    notices: &mut Vec<String>,
) -> Result<Option<Secret>, OverwriteError> {
    let Some(raw) = last_value(variables, BEARER_TOKEN_VARIABLE) else {
        return Ok(None);
    };
    let Some(token) = normalise(BEARER_TOKEN_VARIABLE, raw)? else {
        return Ok(None);
    };
    if !config.bearer_token_overwrite_allowed {
        notices.push(ignored(
            BEARER_TOKEN_VARIABLE,
            "bearer_token_overwrite_allowed is not set",
        ));
        return Ok(None);
    }
    if config.host.is_none() {
        notices.push(ignored(
            BEARER_TOKEN_VARIABLE,
            "the runner uses in-cluster credentials",
        ));
        return Ok(None);
    }
    notices.push("\"bearer token\" overwritten".to_string());
    Ok(Some(Secret::new(token)))
}

/// Every `KUBERNETES_POD_ANNOTATIONS_*` variable, in variable order (a later one wins for the
/// same key). The rule applies to the whole `key=value` text.
fn resolve_annotations(
    config: &KubernetesConfig,
    variables: &[JobVariable],
    notices: &mut Vec<String>,
) -> Result<BTreeMap<String, String>, OverwriteError> {
    let mut annotations = BTreeMap::new();
    let rule = config.pod_annotations_overwrite_allowed.as_ref();
    for name in annotation_variable_names(variables) {
        let Some(value) = checked_value(&name, variables, rule, notices)? else {
            continue;
        };
        let (key, annotation) = split_annotation(&name, &value)?;
        notices.push(format!(
            "\"pod annotation {key}\" overwritten with {annotation:?}"
        ));
        annotations.insert(key, annotation);
    }
    Ok(annotations)
}

/// Names of the annotation variables, each once, in order of first appearance.
fn annotation_variable_names(variables: &[JobVariable]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for variable in variables {
        if variable.key.starts_with(POD_ANNOTATIONS_PREFIX) && !names.contains(&variable.key) {
            names.push(variable.key.clone());
        }
    }
    names
}

fn split_annotation(variable: &str, value: &str) -> Result<(String, String), OverwriteError> {
    let Some((key, annotation)) = value.split_once('=') else {
        return Err(OverwriteError::NotKeyValue {
            variable: variable.to_string(),
            value: value.to_string(),
        });
    };
    let owned = || (variable.to_string(), key.to_string());
    if let Err(source) = labels::check_key(key) {
        let (variable, key) = owned();
        return Err(OverwriteError::InvalidAnnotationKey {
            variable,
            key,
            source,
        });
    }
    if labels::is_reserved_key(key) {
        let (variable, key) = owned();
        return Err(OverwriteError::ReservedAnnotationKey { variable, key });
    }
    Ok((key.to_string(), annotation.to_string()))
}

/// The normalised value of `variable` when it is set and allowed by `rule`; `None` when it is
/// unset, empty, or its overwrite is disabled (then with a notice).
fn checked_value(
    variable: &str,
    variables: &[JobVariable],
    rule: Option<&OverwriteRule>,
    notices: &mut Vec<String>,
) -> Result<Option<String>, OverwriteError> {
    let Some(raw) = last_value(variables, variable) else {
        return Ok(None);
    };
    let Some(value) = normalise(variable, raw)? else {
        return Ok(None);
    };
    let Some(rule) = rule else {
        notices.push(ignored(
            variable,
            "the runner's config does not allow this overwrite",
        ));
        return Ok(None);
    };
    if !rule.allows(&value) {
        return Err(OverwriteError::NotAllowed {
            variable: variable.to_string(),
            value,
            pattern: rule.pattern.clone(),
        });
    }
    Ok(Some(value))
}

/// Trims surrounding whitespace and refuses control characters; `None` for an empty value.
fn normalise(variable: &str, raw: &str) -> Result<Option<String>, OverwriteError> {
    let value = raw.trim();
    if value.chars().any(char::is_control) {
        return Err(OverwriteError::ControlCharacter {
            variable: variable.to_string(),
        });
    }
    Ok((!value.is_empty()).then(|| value.to_string()))
}

fn last_value<'a>(variables: &'a [JobVariable], key: &str) -> Option<&'a str> {
    variables
        .iter()
        .rev()
        .find(|v| v.key == key)
        .map(|v| v.value.as_str())
}

fn ignored(variable: &str, why: &str) -> String {
    format!("{variable} is ignored: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(key: &str, value: &str) -> JobVariable {
        JobVariable {
            key: key.into(),
            value: value.into(),
            public: true,
            ..Default::default()
        }
    }

    fn config_allowing_namespaces(pattern: &str) -> KubernetesConfig {
        KubernetesConfig {
            namespace: "ci".into(),
            namespace_overwrite_allowed: Some(OverwriteRule::new(pattern).expect("valid pattern")),
            ..Default::default()
        }
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_before_the_rule_is_applied() {
        let config = config_allowing_namespaces("ci-.*");
        let got = resolve(&config, &[var(NAMESPACE_VARIABLE, "  ci-main\t")]).unwrap();
        assert_eq!(got.namespace, "ci-main");
    }

    #[test]
    fn a_control_character_is_refused_even_where_the_rule_would_match() {
        let config = config_allowing_namespaces(".*");
        let err = resolve(&config, &[var(NAMESPACE_VARIABLE, "ci-\u{0}main")]).unwrap_err();
        assert_eq!(
            err,
            OverwriteError::ControlCharacter {
                variable: NAMESPACE_VARIABLE.into()
            }
        );
    }

    #[test]
    fn a_blank_value_counts_as_unset() {
        let config = config_allowing_namespaces("ci-.*");
        let got = resolve(&config, &[var(NAMESPACE_VARIABLE, "   ")]).unwrap();
        assert_eq!(got.namespace, "ci");
        assert!(got.notices.is_empty());
    }

    #[test]
    fn the_last_of_two_entries_wins() {
        let config = config_allowing_namespaces("ci-.*");
        let vars = [
            var(NAMESPACE_VARIABLE, "prod"),
            var(NAMESPACE_VARIABLE, "ci-2"),
        ];
        assert_eq!(resolve(&config, &vars).unwrap().namespace, "ci-2");
    }

    #[test]
    fn an_empty_configured_namespace_means_default() {
        let got = resolve(&KubernetesConfig::default(), &[]).unwrap();
        assert_eq!(got.namespace, "default");
    }
}
