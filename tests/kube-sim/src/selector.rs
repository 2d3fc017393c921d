//! Label selectors (`k=v,k2!=v,k in (a,b),k notin (c),k,!k`) and field selectors
//! (`metadata.name=x,status.phase!=Running`), as list and watch take them.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRule {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelRule>);

impl LabelSelector {
    /// Parses the `labelSelector` query value; the error names the part not understood.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if !part.is_empty() {
                rules.push(parse_rule(part)?);
            }
        }
        Ok(LabelSelector(rules))
    }

    /// Whether an object's `metadata.labels` satisfy every rule.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|rule| match rule {
            LabelRule::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRule::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRule::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRule::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            LabelRule::Exists(k) => get(k).is_some(),
            LabelRule::Absent(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_rule(part: &str) -> Result<LabelRule, String> {
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(LabelRule::NotEquals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(LabelRule::Equals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, set)) = split_set(part, " notin ") {
        return Ok(LabelRule::NotIn(k, set?));
    }
    if let Some((k, set)) = split_set(part, " in ") {
        return Ok(LabelRule::In(k, set?));
    }
    if let Some(k) = part.strip_prefix('!') {
        return Ok(LabelRule::Absent(k.trim().into()));
    }
    match part.contains([' ', '(', ')']) {
        true => Err(format!("unable to parse requirement: {part:?}")),
        false => Ok(LabelRule::Exists(part.into())),
    }
}

type SetRule = (String, Result<Vec<String>, String>);

fn split_set(part: &str, operator: &str) -> Option<SetRule> {
    let (key, rest) = part.split_once(operator)?;
    let rest = rest.trim();
    let values = match rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        Some(inner) => Ok(inner.split(',').map(|v| v.trim().to_string()).collect()),
        None => Err(format!("found {rest:?}, expected: '('")),
    };
    Some((key.trim().to_string(), values))
}

/// A parsed field selector: `path=value` / `path!=value` pairs over dotted JSON paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses the `fieldSelector` query value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let rule = if let Some((k, v)) = part.split_once("!=") {
                (k.to_string(), false, v.to_string())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k.to_string(), true, v.to_string())
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            rules.push(rule);
        }
        Ok(FieldSelector(rules))
    }

    /// Whether the object's fields satisfy every rule (an absent field reads as "").
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, want)| {
            let found = path.split('.').try_fold(object, |v, key| v.get(key));
            let found = found.and_then(Value::as_str).unwrap_or("");
            (found == want) == *equal
        })
    }

    /// The value a `metadata.name=X` rule requires, if any.
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, eq, _)| k == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn equality_inequality_and_sets() {
        let s = LabelSelector::parse("app=x,tier!=db,env in (a, b),!gone").unwrap();
        assert!(s.matches(&pod(json!({"app": "x", "env": "b"}))));
        assert!(!s.matches(&pod(json!({"app": "x", "env": "c"}))));
        assert!(!s.matches(&pod(json!({"app": "x", "env": "a", "tier": "db"}))));
        assert!(!s.matches(&pod(json!({"app": "x", "env": "a", "gone": ""}))));
    }

    #[test]
    fn notin_and_exists() {
        let s = LabelSelector::parse("env notin (prod),app").unwrap();
        assert!(s.matches(&pod(json!({"app": "y"}))));
        assert!(!s.matches(&pod(json!({"app": "y", "env": "prod"}))));
        assert!(!s.matches(&pod(json!({}))));
    }

    #[test]
    fn field_selector_reads_dotted_paths() {
        let s = FieldSelector::parse("metadata.name=p,status.phase!=Pending").unwrap();
        assert!(s.matches(&pod(json!({}))));
        assert_eq!(s.name(), Some("p"));
        assert!(!FieldSelector::parse("status.phase=Failed")
            .unwrap()
            .matches(&pod(json!({}))));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
