//! The naming rules Kubernetes applies (DNS labels, label keys) and the runner's own (variable
//! names, absolute paths), as plain predicates with the text an error shows.

/// What [`is_dns_label`] accepts.
pub const DNS_LABEL: &str = "a DNS-1123 label: at most 63 lowercase letters, digits or '-', \
    starting and ending with a letter or digit";

/// What [`is_dns_subdomain`] accepts.
pub const DNS_SUBDOMAIN: &str = "a DNS-1123 subdomain: DNS-1123 labels joined by '.', at most \
    253 characters";

/// What [`is_label_key`] accepts.
pub const LABEL_KEY: &str = "an optional DNS-1123 subdomain prefix and '/', then a name of at \
    most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

/// What [`is_label_value`] accepts.
pub const LABEL_VALUE: &str = "empty, or at most 63 letters, digits, '-', '_' or '.', starting \
    and ending with a letter or digit";

/// What [`is_absolute_path`] accepts.
pub const ABSOLUTE_PATH: &str =
    "an absolute path starting with '/', without empty, '.' or '..' segments";

/// What [`is_relative_item_path`] accepts.
pub const RELATIVE_PATH: &str = "a relative path without '..' elements";

/// What [`is_config_key`] accepts.
pub const CONFIG_KEY: &str = "a ConfigMap or Secret key: at most 253 letters, digits, '-', '_' \
    or '.', not '.' or '..'";

/// What [`split_environment`] accepts.
pub const ENVIRONMENT: &str = "KEY=value, KEY made of letters, digits and '_', not starting \
    with a digit";

/// What [`is_http_url`] accepts.
pub const HTTP_URL: &str = "an http:// or https:// URL";

/// A DNS-1123 label (`k8s.io/apimachinery/pkg/util/validation`): pod volume and namespace names.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(inner)
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
}

/// A DNS-1123 subdomain: secret and service account names, label key prefixes.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// A label or annotation key: `[prefix/]name`.
pub fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_name(name),
        None => is_qualified_name(key),
    }
}

/// A label value (`node_selector` values).
pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_qualified_name(value)
}

/// The name part of a label key: at most 63 of `[-A-Za-z0-9_.]`, alphanumeric at both ends.
fn is_qualified_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(inner)
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A mount path or host path.
pub fn is_absolute_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    rest.is_empty() || rest.split('/').all(|part| !matches!(part, "" | "." | ".."))
}

/// A config map or secret item path: relative and never leaving the mount.
pub fn is_relative_item_path(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && !path.split('/').any(|part| part == "..")
}

/// A key of a ConfigMap or Secret (`items` of those volumes).
pub fn is_config_key(key: &str) -> bool {
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    !key.is_empty() && key.len() <= 253 && key.bytes().all(valid) && key != "." && key != ".."
}

/// Splits an `environment` entry into name and value.
pub fn split_environment(entry: &str) -> Option<(&str, &str)> {
    let (name, value) = entry.split_once('=')?;
    let valid = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    valid.then_some((name, value))
}

/// What [`is_https_url`] accepts.
pub const HTTPS_URL: &str = "an https:// URL without user:password@ (the API server's \
                             credentials never travel in clear; use bearer_token or cert_file)";

/// An API server URL: https only, no credentials in it.
pub fn is_https_url(url: &str) -> bool {
    url.strip_prefix("https://").is_some_and(usable_authority)
}

/// A coordinator URL, with no credentials in it.
pub fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(usable_authority)
}

/// What follows `scheme://`: a host to connect to, and no `user:password@`.
fn usable_authority(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !authority.is_empty() && !authority.contains('@')
}

/// `value` with any `user:password@` of a URL replaced by `***@`, for messages.
pub fn without_credentials(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_lowercase_alphanumeric_with_inner_dashes() {
        assert!(is_dns_label("empty-dir"));
        assert!(is_dns_label("pvc-1"));
        assert!(is_dns_label("a"));
        assert!(!is_dns_label("empty_dir"));
        assert!(!is_dns_label("Data"));
        assert!(!is_dns_label("-data"));
        assert!(!is_dns_label("data-"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_label(&"a".repeat(63)));
    }

    #[test]
    fn label_keys_take_an_optional_subdomain_prefix() {
        assert!(is_label_key("team"));
        assert!(is_label_key("app.kubernetes.io/name"));
        assert!(is_label_key("Team_A.b-c"));
        assert!(!is_label_key("team name"));
        assert!(!is_label_key("/name"));
        assert!(!is_label_key("Example.com/name"));
        assert!(!is_label_key("a/b/c"));
        assert!(!is_label_key("_team"));
        assert!(!is_label_key(&"a".repeat(64)));
    }

    #[test]
    fn label_values_may_be_empty() {
        assert!(is_label_value(""));
        assert!(is_label_value("true"));
        assert!(!is_label_value("feature/foo"));
    }

    #[test]
    fn environment_entries_need_a_name_and_an_equals_sign() {
        assert_eq!(split_environment("A=b=c"), Some(("A", "b=c")));
        assert_eq!(split_environment("EMPTY="), Some(("EMPTY", "")));
        assert_eq!(split_environment("NOVALUE"), None);
        assert_eq!(split_environment("=x"), None);
        assert_eq!(split_environment("1A=x"), None);
        assert_eq!(split_environment("A B=x"), None);
    }

    #[test]
    fn item_paths_stay_inside_the_mount() {
        assert!(is_relative_item_path("relative/path/to/key_1_file"));
        assert!(!is_relative_item_path("/etc/passwd"));
        assert!(!is_relative_item_path("../up"));
        assert!(!is_relative_item_path("a/../../b"));
    }

    #[test]
    fn config_keys_are_file_name_like() {
        assert!(is_config_key("key_1"));
        assert!(is_config_key(".dockerconfigjson"));
        assert!(!is_config_key(".."));
        assert!(!is_config_key("a/b"));
        assert!(!is_config_key(""));
    }

    #[test]
    fn urls_need_an_http_scheme_and_a_host() {
        assert!(is_http_url("https://127.0.0.1:4892"));
        assert!(is_http_url("http://alloy.example/ci"));
        assert!(!is_http_url("127.0.0.1:4892"));
        assert!(!is_http_url("https://"));
        assert!(is_https_url("https://[::1]:6443"));
        assert!(is_absolute_path("/cache") && is_absolute_path("/"));
        assert!(!is_absolute_path("/a/../b") && !is_absolute_path("/a//b"));
        assert!(!is_absolute_path("/a/") && !is_absolute_path("a"));
        assert!(!is_https_url("https://u:hunter2@127.0.0.1:6443"));
        assert!(!is_http_url("http://u:p@ci.example/ci"));
        assert_eq!(
            without_credentials("https://u:hunter2@h:1/x"),
            "https://***@h:1/x"
        );
        assert_eq!(without_credentials("https://h/a@b"), "https://h/a@b");
        assert!(!is_https_url("https://u:hunter2@127.0.0.1:6443"));
        assert!(!is_http_url("http://u:p@ci.example/ci"));
        assert_eq!(
            without_credentials("https://u:hunter2@h:1/x"),
            "https://***@h:1/x"
        );
        assert_eq!(without_credentials("https://h/a@b"), "https://h/a@b");
        assert!(!is_https_url("http://127.0.0.1:6443"));
    }
}
