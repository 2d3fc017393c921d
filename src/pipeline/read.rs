//! Typed readers over the parsed JSON tree; each names the place and the key in its error.

use super::json::Node;
use super::{ArtifactsSpec, CachePolicy, CacheSpec, ImageSpec, PipelineError, RefPattern, When};

const ARTIFACTS_KEYS: &[&str] = &["name", "paths", "untracked", "when", "expire_in"];
const CACHE_KEYS: &[&str] = &["key", "paths", "untracked", "policy"];
const SERVICE_KEYS: &[&str] = &["name", "alias", "command", "entrypoint"];
const IMAGE_KEYS: &[&str] = &["name", "entrypoint"];

pub(super) fn lookup<'a>(entries: &'a [(String, Node)], key: &str) -> Option<&'a Node> {
    entries.iter().find(|(k, _)| k == key).map(|(_, node)| node)
}

pub(super) fn wrong_type(
    at: &str,
    key: &str,
    expected: &'static str,
    node: &Node,
) -> PipelineError {
    PipelineError::WrongType {
        at: at.to_string(),
        key: key.to_string(),
        expected,
        found: node.kind(),
    }
}

pub(super) fn invalid(at: &str, key: &str, value: &str, accepted: &str) -> PipelineError {
    PipelineError::InvalidValue {
        at: at.to_string(),
        key: key.to_string(),
        value: value.to_string(),
        accepted: accepted.to_string(),
    }
}

pub(super) fn check_keys(
    at: &str,
    entries: &[(String, Node)],
    accepted: &'static [&'static str],
) -> Result<(), PipelineError> {
    match entries
        .iter()
        .find(|(key, _)| !accepted.contains(&key.as_str()))
    {
        Some((key, _)) => Err(PipelineError::UnknownKey {
            at: at.to_string(),
            key: key.clone(),
            suggestion: suggest(key, accepted),
            accepted,
        }),
        None => Ok(()),
    }
}

/// The accepted key closest to a misspelt one: at most two edits away, or a case change.
pub(super) fn suggest(word: &str, accepted: &[&'static str]) -> Option<&'static str> {
    let lower = word.to_lowercase();
    accepted
        .iter()
        .map(|candidate| (edit_distance(&lower, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

pub(super) fn string(at: &str, key: &str, node: &Node) -> Result<String, PipelineError> {
    match node {
        Node::String(value) => Ok(value.clone()),
        _ => Err(wrong_type(at, key, "a string", node)),
    }
}

pub(super) fn boolean(at: &str, key: &str, node: &Node) -> Result<bool, PipelineError> {
    match node {
        Node::Bool(value) => Ok(*value),
        _ => Err(wrong_type(at, key, "true or false", node)),
    }
}

pub(super) fn string_list(at: &str, key: &str, node: &Node) -> Result<Vec<String>, PipelineError> {
    let Node::Array(items) = node else {
        return Err(wrong_type(at, key, "a list of strings", node));
    };
    items
        .iter()
        .map(|item| match item {
            Node::String(value) => Ok(value.clone()),
            other => Err(wrong_type(at, key, "a list of strings", other)),
        })
        .collect()
}

pub(super) fn variables(
    at: &str,
    key: &str,
    node: &Node,
) -> Result<Vec<(String, String)>, PipelineError> {
    let expected = "an object of names to strings, numbers or booleans";
    let Node::Object(entries) = node else {
        return Err(wrong_type(at, key, expected, node));
    };
    let mut variables = Vec::new();
    for (name, value) in entries {
        let value = match value {
            Node::String(text) => text.clone(),
            Node::Number(number) => number.to_string(),
            Node::Bool(flag) => flag.to_string(),
            other => return Err(wrong_type(at, &format!("{key}.{name}"), expected, other)),
        };
        variables.push((name.clone(), value));
    }
    Ok(variables)
}

pub(super) fn image(at: &str, key: &str, node: &Node) -> Result<ImageSpec, PipelineError> {
    match node {
        Node::String(name) => Ok(ImageSpec {
            name: name.clone(),
            ..ImageSpec::default()
        }),
        Node::Object(entries) => image_object(at, key, entries, IMAGE_KEYS),
        _ => Err(wrong_type(
            at,
            key,
            "an image name or {name, entrypoint}",
            node,
        )),
    }
}

pub(super) fn services(at: &str, key: &str, node: &Node) -> Result<Vec<ImageSpec>, PipelineError> {
    let expected = "a list of image names or {name, alias, command, entrypoint} objects";
    let Node::Array(items) = node else {
        return Err(wrong_type(at, key, expected, node));
    };
    items
        .iter()
        .map(|item| match item {
            Node::String(name) => Ok(ImageSpec {
                name: name.clone(),
                ..ImageSpec::default()
            }),
            Node::Object(entries) => image_object(at, key, entries, SERVICE_KEYS),
            other => Err(wrong_type(at, key, expected, other)),
        })
        .collect()
}

pub(super) fn image_object(
    at: &str,
    key: &str,
    entries: &[(String, Node)],
    accepted: &'static [&'static str],
) -> Result<ImageSpec, PipelineError> {
    let at = format!("{at}, `{key}`");
    check_keys(&at, entries, accepted)?;
    let Some(name) = lookup(entries, "name") else {
        let expected = "an image name";
        return Err(PipelineError::MissingKey {
            at,
            key: "name",
            expected,
        });
    };
    let mut spec = ImageSpec {
        name: string(&at, "name", name)?,
        ..ImageSpec::default()
    };
    for (key, node) in entries {
        match key.as_str() {
            "alias" => spec.alias = Some(string(&at, key, node)?),
            "command" => spec.command = string_list(&at, key, node)?,
            "entrypoint" => spec.entrypoint = string_list(&at, key, node)?,
            _ => {}
        }
    }
    Ok(spec)
}

pub(super) fn when(
    at: &str,
    key: &str,
    node: &Node,
    allow_manual: bool,
) -> Result<When, PipelineError> {
    let value = string(at, key, node)?;
    let accepted = if allow_manual {
        "on_success, on_failure, always, manual"
    } else {
        "on_success, on_failure, always"
    };
    match value.as_str() {
        "on_success" => Ok(When::OnSuccess),
        "on_failure" => Ok(When::OnFailure),
        "always" => Ok(When::Always),
        "manual" if allow_manual => Ok(When::Manual),
        _ => Err(invalid(at, key, &value, accepted)),
    }
}

pub(super) fn artifacts(at: &str, key: &str, node: &Node) -> Result<ArtifactsSpec, PipelineError> {
    let Node::Object(entries) = node else {
        return Err(wrong_type(
            at,
            key,
            "an object {name, paths, untracked, when, expire_in}",
            node,
        ));
    };
    let at = format!("{at}, `{key}`");
    check_keys(&at, entries, ARTIFACTS_KEYS)?;
    let mut spec = ArtifactsSpec::default();
    for (key, node) in entries {
        match key.as_str() {
            "name" => spec.name = Some(string(&at, key, node)?),
            "paths" => spec.paths = string_list(&at, key, node)?,
            "untracked" => spec.untracked = boolean(&at, key, node)?,
            "when" => spec.when = when(&at, key, node, false)?,
            "expire_in" => spec.expire_in = Some(string(&at, key, node)?),
            _ => {}
        }
    }
    Ok(spec)
}

pub(super) fn cache(at: &str, key: &str, node: &Node) -> Result<CacheSpec, PipelineError> {
    let Node::Object(entries) = node else {
        return Err(wrong_type(
            at,
            key,
            "an object {key, paths, untracked, policy}",
            node,
        ));
    };
    let at = format!("{at}, `{key}`");
    check_keys(&at, entries, CACHE_KEYS)?;
    let mut spec = CacheSpec::default();
    for (key, node) in entries {
        match key.as_str() {
            "key" => spec.key = string(&at, key, node)?,
            "paths" => spec.paths = string_list(&at, key, node)?,
            "untracked" => spec.untracked = boolean(&at, key, node)?,
            "policy" => spec.policy = policy(&at, key, node)?,
            _ => {}
        }
    }
    Ok(spec)
}

pub(super) fn policy(at: &str, key: &str, node: &Node) -> Result<CachePolicy, PipelineError> {
    let value = string(at, key, node)?;
    match value.as_str() {
        "pull-push" => Ok(CachePolicy::PullPush),
        "pull" => Ok(CachePolicy::Pull),
        "push" => Ok(CachePolicy::Push),
        _ => Err(invalid(at, key, &value, "pull-push, pull, push")),
    }
}

pub(super) fn ref_patterns(
    at: &str,
    key: &str,
    node: &Node,
) -> Result<Vec<RefPattern>, PipelineError> {
    string_list(at, key, node)?
        .into_iter()
        .map(|entry| ref_pattern(at, key, entry))
        .collect()
}

pub(super) fn ref_pattern(at: &str, key: &str, entry: String) -> Result<RefPattern, PipelineError> {
    match entry.as_str() {
        "branches" => return Ok(RefPattern::Branches),
        "tags" => return Ok(RefPattern::Tags),
        _ => {}
    }
    let body = entry
        .strip_prefix('/')
        .and_then(|rest| rest.strip_suffix('/'));
    match body {
        Some(body) if !body.is_empty() => {
            regex::Regex::new(body)
                .map(RefPattern::Regex)
                .map_err(|source| PipelineError::InvalidRegex {
                    at: at.to_string(),
                    key: key.to_string(),
                    pattern: entry.clone(),
                    source,
                })
        }
        _ => Ok(RefPattern::Name(entry)),
    }
}
