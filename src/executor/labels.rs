//! Kubernetes names, label keys and label values, and `$VAR` expansion in config values.
//!
//! The formats follow Kubernetes' validation (`k8s.io/apimachinery/pkg/util/validation`):
//! DNS-1123 labels and subdomains, qualified names for label and annotation keys.

use std::fmt;

/// The prefix of the labels and annotations the runner sets itself; users may not set keys
/// under it (nor under a subdomain of it).
pub const RESERVED_PREFIX: &str = "alloy-runner.io";

/// Longest label value, and longest name part of a label or annotation key.
const MAX_NAME_LENGTH: usize = 63;

/// Longest DNS-1123 subdomain (also the longest key prefix).
const MAX_SUBDOMAIN_LENGTH: usize = 253;

/// Why a label or annotation key is not a valid Kubernetes key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The name part (after any `prefix/`) is empty.
    EmptyName,
    /// The name part is longer than 63 characters.
    NameTooLong,
    /// The name part has a character outside `[A-Za-z0-9._-]` or does not start and end with
    /// a letter or digit.
    BadName,
    /// The prefix before `/` is not a DNS-1123 subdomain.
    BadPrefix,
    /// More than one `/`.
    TooManySlashes,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::EmptyName => "the name part is empty",
            KeyError::NameTooLong => "the name part is longer than 63 characters",
            KeyError::BadName => {
                "the name part must be letters, digits, '-', '_' or '.', starting and ending \
                 with a letter or digit"
            }
            KeyError::BadPrefix => "the prefix before '/' must be a lowercase DNS subdomain",
            KeyError::TooManySlashes => "a key has at most one '/'",
        })
    }
}

impl std::error::Error for KeyError {}

/// Checks a label or annotation key: an optional DNS-subdomain prefix and `/`, then a name of
/// at most 63 characters.
pub fn check_key(key: &str) -> Result<(), KeyError> {
    let (prefix, name) = match key.split_once('/') {
        Some((_, rest)) if rest.contains('/') => return Err(KeyError::TooManySlashes),
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|p| !is_dns_subdomain(p)) {
        return Err(KeyError::BadPrefix);
    }
    if name.is_empty() {
        return Err(KeyError::EmptyName);
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(KeyError::NameTooLong);
    }
    if !is_label_value(name) {
        return Err(KeyError::BadName);
    }
    Ok(())
}

/// Whether `key` lies under the runner's own prefix (`alloy-runner.io/...` or
/// `<sub>.alloy-runner.io/...`).
pub fn is_reserved_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, _)) => {
            let prefix = prefix.to_ascii_lowercase();
            prefix == RESERVED_PREFIX || prefix.ends_with(&format!(".{RESERVED_PREFIX}"))
        }
        None => false,
    }
}

/// Whether `value` is a valid label value: empty, or at most 63 characters of
/// `[A-Za-z0-9._-]` starting and ending with a letter or digit.
pub fn is_label_value(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let bytes = value.as_bytes();
    value.len() <= MAX_NAME_LENGTH
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| is_label_byte(b))
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Turns any text into a valid label value: characters outside `[A-Za-z0-9._-]` become `_`,
/// leading and trailing `-`, `_` and `.` are trimmed, the rest is cut to 63 and trimmed again.
pub fn sanitize_label_value(raw: &str) -> String {
    let replaced: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii() && is_label_byte(c as u8) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = trim_label_edges(&replaced);
    // Only ASCII is left, so cutting at a byte index is cutting at a character.
    let cut = &trimmed[..trimmed.len().min(MAX_NAME_LENGTH)];
    trim_label_edges(cut).to_string()
}

fn trim_label_edges(value: &str) -> &str {
    value.trim_matches(|c| matches!(c, '-' | '_' | '.'))
}

/// Whether `name` is a DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LENGTH
        && is_lower_alnum(bytes[0])
        && is_lower_alnum(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| is_lower_alnum(b) || b == b'-')
}

/// Whether `name` is a DNS-1123 subdomain: DNS labels joined by dots, at most 253.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= MAX_SUBDOMAIN_LENGTH && name.split('.').all(is_dns_label)
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Turns any text into a DNS-1123 label of at most `max` characters (possibly empty):
/// lowercase, every run of other characters becomes one `-`, no `-` at either end.
pub fn dns_label_slug(raw: &str, max: usize) -> String {
    let mut slug = String::new();
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    // Only ASCII was pushed, so byte indexes are character indexes.
    slug.truncate(max.min(MAX_NAME_LENGTH));
    slug.trim_end_matches('-').to_string()
}

/// Expands `$NAME` and `${NAME}` in `text` with `value_of`; `$$` is a literal `$`, and a `$`
/// that starts no reference stays as it is. A name is `[A-Za-z_][A-Za-z0-9_]*`.
pub fn expand<E>(
    text: &str,
    mut value_of: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = reference_at(after);
        match name {
            Some(name) => out.push_str(&value_of(name)?),
            None => out.push('$'),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The variable named right after a `$`, and how many bytes the reference takes after the `$`
/// (`$$` takes one, a lone `$` none).
fn reference_at(after: &str) -> (Option<&str>, usize) {
    if after.starts_with('$') {
        return (None, 1);
    }
    if let Some(braced) = after.strip_prefix('{') {
        return match braced.find('}') {
            Some(end) if is_name(&braced[..end]) => (Some(&braced[..end]), end + 2),
            _ => (None, 0),
        };
    }
    let end = after
        .bytes()
        .position(|b| !is_name_byte(b))
        .unwrap_or(after.len());
    if is_name(&after[..end]) {
        (Some(&after[..end]), end)
    } else {
        (None, 0)
    }
}

/// A variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(is_name_byte)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The host name a service image is reachable under besides its alias: the image without
/// tag or digest, `/` and `:` replaced by `-`, lowercase (`tutum/influxdb:1.8` ->
/// `tutum-influxdb`). `None` when that is not a valid DNS subdomain.
pub fn service_host_name(image: &str) -> Option<String> {
    let name = image_repository(image)
        .replace(['/', ':'], "-")
        .to_ascii_lowercase();
    is_dns_subdomain(&name).then_some(name)
}

/// The image without its tag and digest (`registry:5000/group/img:1@sha256:..` ->
/// `registry:5000/group/img`).
pub fn image_repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_part = without_digest.rfind('/').map_or(0, |slash| slash + 1);
    match without_digest[last_part..].find(':') {
        Some(colon) => &without_digest[..last_part + colon],
        None => without_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_value_from_a_branch_name_replaces_slash_and_at() {
        assert_eq!(sanitize_label_value("feature/foo@bar"), "feature_foo_bar");
    }

    #[test]
    fn label_value_loses_leading_and_trailing_separators() {
        assert_eq!(sanitize_label_value("--label-"), "label");
        assert_eq!(sanitize_label_value("._x_."), "x");
        assert_eq!(sanitize_label_value("/only/"), "only");
        assert_eq!(sanitize_label_value("@@@"), "");
    }

    #[test]
    fn label_value_is_cut_to_63_then_trimmed_again() {
        let raw = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let value = sanitize_label_value(&raw);
        assert_eq!(value, "a".repeat(62));
        assert!(is_label_value(&value));
    }

    #[test]
    fn label_value_turns_each_non_ascii_character_into_one_underscore() {
        assert_eq!(sanitize_label_value("café-été"), "caf_-_t");
    }

    #[test]
    fn keys_with_prefix_and_name_are_accepted() {
        assert_eq!(check_key("team"), Ok(()));
        assert_eq!(check_key("example.com/team_A.b-c"), Ok(()));
    }

    #[test]
    fn bad_keys_are_rejected_with_the_reason() {
        assert_eq!(check_key(""), Err(KeyError::EmptyName));
        assert_eq!(check_key("example.com/"), Err(KeyError::EmptyName));
        assert_eq!(check_key("a/b/c"), Err(KeyError::TooManySlashes));
        assert_eq!(check_key("Example.com/x"), Err(KeyError::BadPrefix));
        assert_eq!(check_key("-team"), Err(KeyError::BadName));
        assert_eq!(check_key("team name"), Err(KeyError::BadName));
        assert_eq!(check_key(&"k".repeat(64)), Err(KeyError::NameTooLong));
    }

    #[test]
    fn reserved_keys_include_subdomains_of_the_prefix() {
        assert!(is_reserved_key("alloy-runner.io/job-id"));
        assert!(is_reserved_key("x.alloy-runner.io/job-id"));
        assert!(is_reserved_key("Alloy-Runner.io/job-id"));
        assert!(!is_reserved_key("not-alloy-runner.io/job-id"));
        assert!(!is_reserved_key("alloy-runner.io"));
    }

    #[test]
    fn dns_names_follow_rfc_1123() {
        assert!(is_dns_label("ci-main"));
        assert!(!is_dns_label("ci_main"));
        assert!(!is_dns_label("Ci"));
        assert!(!is_dns_label("-ci"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("a..b"));
    }

    #[test]
    fn slug_is_a_short_dns_label() {
        assert_eq!(
            dns_label_slug("My Runner #1 (prod)", 63),
            "my-runner-1-prod"
        );
        assert_eq!(dns_label_slug("--", 63), "");
        assert_eq!(dns_label_slug("abc def", 4), "abc");
    }

    fn lookup(name: &str) -> Result<String, String> {
        match name {
            "REF" => Ok("main".into()),
            "CI_JOB_ID" => Ok("42".into()),
            other => Err(other.to_string()),
        }
    }

    #[test]
    fn expansion_handles_both_reference_forms() {
        assert_eq!(expand("$REF", lookup), Ok("main".into()));
        assert_eq!(expand("job-${CI_JOB_ID}-x", lookup), Ok("job-42-x".into()));
        assert_eq!(expand("$CI_JOB_ID.$REF", lookup), Ok("42.main".into()));
    }

    #[test]
    fn expansion_keeps_dollars_that_start_no_reference() {
        assert_eq!(
            expand("cost $5 or $$REF", lookup),
            Ok("cost $5 or $REF".into())
        );
        assert_eq!(expand("a $ b ${ c $", lookup), Ok("a $ b ${ c $".into()));
        assert_eq!(expand("${}", lookup), Ok("${}".into()));
    }

    #[test]
    fn expansion_reports_what_the_lookup_refuses() {
        assert_eq!(expand("x-$SECRET", lookup), Err("SECRET".into()));
    }

    #[test]
    fn service_host_names_come_from_the_image() {
        assert_eq!(
            service_host_name("postgres:9.6").as_deref(),
            Some("postgres")
        );
        assert_eq!(
            service_host_name("tutum/influxdb").as_deref(),
            Some("tutum-influxdb")
        );
        assert_eq!(
            service_host_name("registry.example.com:5000/Group/img:1@sha256:ab").as_deref(),
            Some("registry.example.com-5000-group-img")
        );
        assert_eq!(service_host_name("under_score/img"), None);
    }
}
