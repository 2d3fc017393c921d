//! Pod validation: the strict v1.30 Pod JSON Schema, then the rules a schema cannot say
//! (pkg/apis/core/validation/validation.go and apimachinery's validation helpers).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::Value;

use crate::quantity;
use crate::schema::{self, Violation};

/// The strict Pod schema, embedded so the simulator needs no file at run time.
const POD_SCHEMA: &str = include_str!("../../../fixtures/kubernetes/pod-v1.strict.schema.json");

/// What a quantity that does not parse is told.
const QUANTITY_PATTERN: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Largest total size of a pod's annotations, in bytes.
const MAX_ANNOTATIONS: usize = 256 * 1024;

/// One problem with an object, as a `Status` cause carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine reason, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: String,
    /// Human text, e.g. `Required value`.
    pub message: String,
    /// Field path, e.g. `spec.containers[0].image`.
    pub field: String,
}

impl Cause {
    /// A cause with its reason, field path and message.
    pub fn new(reason: &str, field: &str, message: String) -> Self {
        Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        }
    }

    /// `Required value` on a field.
    pub fn required(field: &str) -> Self {
        Self::new("FieldValueRequired", field, "Required value".into())
    }

    /// `Invalid value: "value": why` on a field.
    pub fn invalid(field: &str, value: &str, why: &str) -> Self {
        Self::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: \"{value}\": {why}"),
        )
    }

    /// Whether this cause is a field the schema does not know.
    pub fn is_unknown_field(&self) -> bool {
        self.reason == "FieldValueUnknown"
    }
}

/// Validates a Pod as the API server would on create: schema first, then the semantic rules.
pub fn validate_pod(pod: &Value) -> Result<(), Vec<Cause>> {
    let mut causes: Vec<Cause> = schema::check(pod_schema(), pod)
        .into_iter()
        .map(cause_of)
        .collect();
    let mut rules = Vec::new();
    check_metadata(pod, &mut rules);
    check_spec(pod.get("spec").unwrap_or(&Value::Null), &mut rules);

    // A rule that repeats a schema finding on the same field adds nothing.
    let seen: BTreeSet<String> = causes.iter().map(|c| c.field.clone()).collect();
    causes.extend(rules.into_iter().filter(|c| !seen.contains(&c.field)));
    match causes.is_empty() {
        true => Ok(()),
        false => Err(causes),
    }
}

/// The strict Pod schema's findings alone (unknown fields, wrong types, enums).
pub fn schema_violations(pod: &Value) -> Vec<Violation> {
    schema::check(pod_schema(), pod)
}

fn pod_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(POD_SCHEMA).expect("the embedded Pod schema is valid JSON (fixture)")
    })
}

fn cause_of(v: Violation) -> Cause {
    match v {
        Violation::Unknown { field } => {
            let key = field.rsplit('.').next().unwrap_or(&field).to_string();
            Cause::new(
                "FieldValueUnknown",
                &field,
                format!("Unknown field \"{key}\""),
            )
        }
        Violation::WrongType {
            field,
            expected,
            found,
        } => Cause::new(
            "FieldValueTypeInvalid",
            &field,
            format!("Invalid value: \"{found}\": must be of type {expected}"),
        ),
        Violation::NotSupported {
            field,
            value,
            supported,
        } => {
            let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
            let message = format!(
                "Unsupported value: \"{value}\": supported values: {}",
                list.join(", ")
            );
            Cause::new("FieldValueNotSupported", &field, message)
        }
        Violation::Required { field } => Cause::required(&field),
        Violation::TooLong { field, max } => Cause::new(
            "FieldValueTooLong",
            &field,
            format!("Too long: may not be more than {max} bytes"),
        ),
    }
}

fn check_metadata(pod: &Value, out: &mut Vec<Cause>) {
    let meta = pod.get("metadata").unwrap_or(&Value::Null);
    let text = |key: &str| {
        meta.get(key)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    };
    match (text("name"), text("generateName")) {
        (Some(name), _) => {
            if let Err(why) = dns_subdomain(name) {
                out.push(Cause::invalid("metadata.name", name, &why));
            }
        }
        (None, Some(prefix)) => check_generate_name(prefix, out),
        (None, None) => out.push(Cause::new(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required".into(),
        )),
    }
    check_labels(meta.get("labels"), out);
    check_annotations(meta.get("annotations"), out);
}

/// A generateName is a name prefix: a trailing dash is fine.
fn check_generate_name(prefix: &str, out: &mut Vec<Cause>) {
    let masked = match prefix.strip_suffix('-') {
        Some(base) => format!("{base}a"),
        None => prefix.to_string(),
    };
    if let Err(why) = dns_subdomain(&masked) {
        out.push(Cause::invalid("metadata.generateName", prefix, &why));
    }
}

fn check_labels(labels: Option<&Value>, out: &mut Vec<Cause>) {
    for (key, value) in labels.and_then(Value::as_object).into_iter().flatten() {
        if let Err(why) = qualified_name(key) {
            out.push(Cause::invalid("metadata.labels", key, &why));
        }
        let value = value.as_str().unwrap_or("");
        if let Err(why) = label_value(value) {
            out.push(Cause::invalid("metadata.labels", value, &why));
        }
    }
}

fn check_annotations(annotations: Option<&Value>, out: &mut Vec<Cause>) {
    let Some(map) = annotations.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0;
    for (key, value) in map {
        if let Err(why) = qualified_name(key) {
            out.push(Cause::invalid("metadata.annotations", key, &why));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > MAX_ANNOTATIONS {
        let message = format!("Too long: may not be more than {MAX_ANNOTATIONS} bytes");
        out.push(Cause::new(
            "FieldValueTooLong",
            "metadata.annotations",
            message,
        ));
    }
}

fn check_spec(spec: &Value, out: &mut Vec<Cause>) {
    let volumes = check_volumes(spec.get("volumes"), out);
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        out.push(Cause::required("spec.containers"));
    }
    let mut names = BTreeSet::new();
    for (list, key) in [
        (spec.get("initContainers"), "initContainers"),
        (spec.get("containers"), "containers"),
    ] {
        for (i, c) in list
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_container(c, &format!("spec.{key}[{i}]"), &volumes, &mut names, out);
        }
    }
    check_pod_fields(spec, out);
}

fn check_pod_fields(spec: &Value, out: &mut Vec<Cause>) {
    if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !["Always", "OnFailure", "Never"].contains(&policy) {
            let message = format!(
                "Unsupported value: \"{policy}\": supported values: \"Always\", \"Never\", \
                 \"OnFailure\""
            );
            out.push(Cause::new(
                "FieldValueNotSupported",
                "spec.restartPolicy",
                message,
            ));
        }
    }
    for (key, minimum) in [
        ("terminationGracePeriodSeconds", 0),
        ("activeDeadlineSeconds", 1),
    ] {
        let Some(n) = spec.get(key).and_then(Value::as_i64) else {
            continue;
        };
        if n < minimum {
            let why = format!("must be greater than or equal to {minimum}");
            out.push(Cause::invalid(&format!("spec.{key}"), &n.to_string(), &why));
        }
    }
}

fn check_volumes(volumes: Option<&Value>, out: &mut Vec<Cause>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, volume) in volumes
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("spec.volumes[{i}]");
        let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
        check_name_label(name, &format!("{field}.name"), out);
        if !name.is_empty() && !names.insert(name.to_string()) {
            out.push(Cause::new(
                "FieldValueDuplicate",
                &format!("{field}.name"),
                format!("Duplicate value: \"{name}\""),
            ));
        }
        let sources = volume
            .as_object()
            .map_or(0, |m| m.keys().filter(|k| *k != "name").count());
        match sources {
            0 => out.push(Cause::new(
                "FieldValueRequired",
                &field,
                "Required value: must specify a volume type".into(),
            )),
            1 => {}
            _ => out.push(Cause::new(
                "FieldValueForbidden",
                &field,
                "Forbidden: may not specify more than 1 volume type".into(),
            )),
        }
    }
    names
}

fn check_container(
    c: &Value,
    field: &str,
    volumes: &BTreeSet<String>,
    names: &mut BTreeSet<String>,
    out: &mut Vec<Cause>,
) {
    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
    check_name_label(name, &format!("{field}.name"), out);
    if !name.is_empty() && !names.insert(name.to_string()) {
        out.push(Cause::new(
            "FieldValueDuplicate",
            &format!("{field}.name"),
            format!("Duplicate value: \"{name}\""),
        ));
    }
    if c.get("image")
        .and_then(Value::as_str)
        .is_none_or(|i| i.trim().is_empty())
    {
        out.push(Cause::required(&format!("{field}.image")));
    }
    for (i, env) in c
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if env
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            out.push(Cause::required(&format!("{field}.env[{i}].name")));
        }
    }
    check_mounts(c.get("volumeMounts"), field, volumes, out);
    check_resources(
        c.get("resources").unwrap_or(&Value::Null),
        &format!("{field}.resources"),
        out,
    );
}

fn check_name_label(name: &str, field: &str, out: &mut Vec<Cause>) {
    if name.is_empty() {
        out.push(Cause::required(field));
    } else if let Err(why) = dns_label(name) {
        out.push(Cause::invalid(field, name, &why));
    }
}

fn check_mounts(
    mounts: Option<&Value>,
    field: &str,
    volumes: &BTreeSet<String>,
    out: &mut Vec<Cause>,
) {
    let mut paths = BTreeSet::new();
    for (i, mount) in mounts
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{field}.volumeMounts[{i}]");
        let name = mount.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            out.push(Cause::required(&format!("{at}.name")));
        } else if !volumes.contains(name) {
            out.push(Cause::new(
                "FieldValueNotFound",
                &format!("{at}.name"),
                format!("Not found: \"{name}\""),
            ));
        }
        let path = mount.get("mountPath").and_then(Value::as_str).unwrap_or("");
        if path.is_empty() {
            out.push(Cause::required(&format!("{at}.mountPath")));
        } else if !path.starts_with('/') {
            out.push(Cause::invalid(
                &format!("{at}.mountPath"),
                path,
                "must be an absolute path",
            ));
        } else if !paths.insert(path.to_string()) {
            out.push(Cause::invalid(
                &format!("{at}.mountPath"),
                path,
                "must be unique",
            ));
        }
    }
}

fn check_resources(resources: &Value, field: &str, out: &mut Vec<Cause>) {
    let limits = quantities(resources.get("limits"), &format!("{field}.limits"), out);
    let requests = quantities(resources.get("requests"), &format!("{field}.requests"), out);
    for (resource, (request_text, request)) in &requests {
        let Some((limit_text, limit)) = limits.iter().find(|(r, _)| r == resource).map(|(_, l)| l)
        else {
            continue;
        };
        if request > limit {
            let why = format!("must be less than or equal to {resource} limit of {limit_text}");
            out.push(Cause::invalid(
                &format!("{field}.requests"),
                request_text,
                &why,
            ));
        }
    }
}

type Quantities = Vec<(String, (String, f64))>;

fn quantities(map: Option<&Value>, field: &str, out: &mut Vec<Cause>) -> Quantities {
    let mut parsed = Vec::new();
    for (resource, value) in map.and_then(Value::as_object).into_iter().flatten() {
        let text = value
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        let at = format!("{field}[{resource}]");
        match quantity::parse(&text) {
            None => out.push(Cause::invalid(&at, &text, QUANTITY_PATTERN)),
            Some(q) if q < 0.0 => out.push(Cause::invalid(
                &at,
                &text,
                "must be greater than or equal to 0",
            )),
            Some(q) => parsed.push((resource.clone(), (text, q))),
        }
    }
    parsed
}

/// Checks a DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn dns_label(name: &str) -> Result<(), String> {
    if name.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    let bytes = name.as_bytes();
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = !bytes.is_empty()
        && edge(bytes[0])
        && edge(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| edge(b) || b == b'-');
    match ok {
        true => Ok(()),
        false => Err(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric \
                      characters or '-', and must start and end with an alphanumeric character \
                      (e.g. 'my-name',  or '123-abc', regex used for validation is \
                      '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .into(),
        ),
    }
}

/// Checks a DNS-1123 subdomain: labels joined by dots, at most 253 characters.
pub fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    match name.split('.').all(|part| dns_label(part).is_ok()) {
        true => Ok(()),
        false => Err(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                      characters, '-' or '.', and must start and end with an alphanumeric \
                      character (e.g. 'example.com', regex used for validation is \
                      '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        ),
    }
}

/// Checks a label or annotation key: an optional DNS-subdomain prefix and `/`, then a name.
pub fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        dns_subdomain(prefix).map_err(|why| format!("prefix part {why}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    match label_text(name) {
        true => Ok(()),
        false => Err(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and \
                      must start and end with an alphanumeric character (e.g. 'MyName',  or \
                      'my.name',  or '123-abc', regex used for validation is \
                      '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                .into(),
        ),
    }
}

/// Checks a label value: empty, or at most 63 characters of the label alphabet.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    match value.is_empty() || label_text(value) {
        true => Ok(()),
        false => Err(
            "a valid label must be an empty string or consist of alphanumeric \
                      characters, '-', '_' or '.', and must start and end with an alphanumeric \
                      character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for \
                      validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .into(),
        ),
    }
}

fn label_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    let edge = |b: u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && edge(bytes[0])
        && edge(bytes[bytes.len() - 1])
        && bytes
            .iter()
            .all(|&b| edge(b) || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(container: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ci-1"},
               "spec": {"containers": [container]}})
    }

    fn fields(result: Result<(), Vec<Cause>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn accepts_a_plain_ci_pod() {
        let p = pod(
            json!({"name": "build", "image": "alpine", "command": ["sh"],
                           "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": 1}}}),
        );
        assert_eq!(validate_pod(&p), Ok(()));
    }

    #[test]
    fn names_an_unknown_container_field() {
        let p = pod(json!({"name": "build", "image": "alpine", "imagePullSecret": "x"}));
        let causes = validate_pod(&p).unwrap_err();
        assert_eq!(causes[0].field, "spec.containers[0].imagePullSecret");
        assert!(causes[0].is_unknown_field());
    }

    #[test]
    fn requires_an_image() {
        let causes = validate_pod(&pod(json!({"name": "build"}))).unwrap_err();
        assert_eq!(causes, vec![Cause::required("spec.containers[0].image")]);
    }

    #[test]
    fn a_request_above_its_limit_is_invalid() {
        let p = pod(json!({"name": "b", "image": "a",
                           "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}));
        let causes = validate_pod(&p).unwrap_err();
        assert_eq!(causes[0].field, "spec.containers[0].resources.requests");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        );
    }

    #[test]
    fn a_bad_quantity_is_invalid() {
        let p = pod(json!({"name": "b", "image": "a", "resources": {"limits": {"memory": "1Gb"}}}));
        assert_eq!(
            fields(validate_pod(&p)),
            vec!["spec.containers[0].resources.limits[memory]"]
        );
    }

    #[test]
    fn rejects_duplicate_names_missing_volumes_and_relative_mounts() {
        let mut p = pod(json!({"name": "b", "image": "a",
                               "volumeMounts": [{"name": "nope", "mountPath": "rel"}]}));
        p["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "b", "image": "a"}));
        p["spec"]["volumes"] =
            json!([{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]);
        let f = fields(validate_pod(&p));
        assert!(f.contains(&"spec.volumes[1].name".to_string()));
        assert!(f.contains(&"spec.containers[1].name".to_string()));
        assert!(f.contains(&"spec.containers[0].volumeMounts[0].name".to_string()));
        assert!(f.contains(&"spec.containers[0].volumeMounts[0].mountPath".to_string()));
    }

    #[test]
    fn rejects_bad_names_labels_and_restart_policy() {
        let mut p = pod(json!({"name": "Build", "image": "a"}));
        p["metadata"]["name"] = json!("ci_1");
        p["metadata"]["labels"] = json!({"bad key": "v", "ok": "bad value"});
        p["spec"]["restartPolicy"] = json!("Sometimes");
        let f = fields(validate_pod(&p));
        assert!(f.contains(&"metadata.name".to_string()));
        assert!(f.contains(&"metadata.labels".to_string()));
        assert!(f.contains(&"spec.containers[0].name".to_string()));
        assert!(f.contains(&"spec.restartPolicy".to_string()));
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let p = pod(json!({"name": "b", "image": "a", "stdin": "yes"}));
        let causes = validate_pod(&p).unwrap_err();
        assert_eq!(causes[0].field, "spec.containers[0].stdin");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"string\": must be of type boolean"
        );
    }

    #[test]
    fn a_generate_name_stands_in_for_the_name() {
        let mut p = pod(json!({"name": "b", "image": "a"}));
        p["metadata"] = json!({"generateName": "ci-job-"});
        assert_eq!(validate_pod(&p), Ok(()));
        p["metadata"] = json!({"generateName": "CI_"});
        assert_eq!(fields(validate_pod(&p)), vec!["metadata.generateName"]);
        p["metadata"] = json!({});
        assert_eq!(fields(validate_pod(&p)), vec!["metadata.name"]);
    }

    #[test]
    fn label_keys_take_a_subdomain_prefix() {
        assert!(qualified_name("example.com/team").is_ok());
        assert!(qualified_name("Example.com/team").is_err());
        assert!(qualified_name(&"a".repeat(64)).is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("-x").is_err());
    }
}
