//! Get, list, create and delete for every resource, and the pieces pods share with the rest:
//! body parsing, namespaces, generated names, events.

use base64::Engine;
use serde_json::{json, Value};

use crate::api::Ctx;
use crate::http::{Request, Response};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{self, ApiError};
use crate::store::{Store, StoreError};
use crate::validate::{self, Cause};
use crate::{table, util};

/// Longest base a generated name keeps before its random suffix.
const GENERATED_BASE_MAX: usize = 58;
/// Length of a generated name's random suffix.
const GENERATED_SUFFIX: usize = 5;
/// Largest total size of a Secret's data, in bytes.
const MAX_SECRET_BYTES: usize = 1024 * 1024;
/// The key a `kubernetes.io/dockerconfigjson` Secret must carry.
const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

/// The `Kind` of a resource.
pub fn kind_of(resource: &str) -> &'static str {
    match resource {
        "pods" => "Pod",
        "secrets" => "Secret",
        "configmaps" => "ConfigMap",
        "events" => "Event",
        _ => "Unknown",
    }
}

/// Parses a JSON object body, refusing another kind or API version.
pub fn parse_body(request: &Request, kind: &str) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(&request.body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the body is not a JSON object".into(),
        ));
    }
    if let Some(found) = value.get("kind").and_then(Value::as_str) {
        if found != kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({found}) does not match the expected kind ({kind})"
            )));
        }
    }
    if let Some(version) = value.get("apiVersion").and_then(Value::as_str) {
        if version != "v1" {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({version}) does not match the expected API \
                 version (v1)"
            )));
        }
    }
    Ok(value)
}

/// Sets the object's namespace to the request's, refusing a different one.
pub fn claim_namespace(object: &mut Value, namespace: &str) -> Result<(), ApiError> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    match object["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() && ns != namespace => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        )),
        _ => {
            object["metadata"]["namespace"] = json!(namespace);
            Ok(())
        }
    }
}

/// Fills `metadata.name` from `generateName`: the base cut to 58, then 5 random characters.
pub fn generate_name(object: &mut Value) {
    let meta = &mut object["metadata"];
    let has_name = meta["name"].as_str().is_some_and(|n| !n.is_empty());
    let Some(base) = meta["generateName"].as_str().filter(|_| !has_name) else {
        return;
    };
    let base: String = base.chars().take(GENERATED_BASE_MAX).collect();
    meta["name"] = json!(format!("{base}{}", util::random_suffix(GENERATED_SUFFIX)));
}

/// `GET` of one object (a Table when asked).
pub fn get(
    ctx: &Ctx,
    request: &Request,
    resource: &str,
    ns: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let object = ctx
        .store
        .get(resource, ns, name)
        .ok_or_else(|| ApiError::not_found(resource, name))?;
    if let Some(include) = table::wanted(request) {
        let rv = ctx.store.current_rv();
        return Ok(Response::json(
            200,
            &table::render(resource, &[object], include, rv),
        ));
    }
    Ok(Response::json(200, &object))
}

/// `GET` of a collection, filtered by label and field selectors (a Table when asked).
pub fn list(
    ctx: &Ctx,
    request: &Request,
    resource: &str,
    ns: Option<&str>,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(request)?;
    let (items, rv) = ctx.store.list(resource, ns);
    let items: Vec<Value> = items
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .collect();
    if let Some(include) = table::wanted(request) {
        return Ok(Response::json(
            200,
            &table::render(resource, &items, include, rv),
        ));
    }
    let items: Vec<Value> = items.into_iter().map(strip_type).collect();
    let list = json!({
        "kind": format!("{}List", kind_of(resource)),
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    });
    Ok(Response::json(200, &list))
}

/// The label and field selectors of a list or watch.
pub fn selectors(request: &Request) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(request.param("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(request.param("fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

/// List items carry no kind or apiVersion, as the API server sends them.
fn strip_type(mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    object
}

/// `POST` of a secret, configmap or event.
pub fn create(
    ctx: &Ctx,
    request: &Request,
    resource: &str,
    ns: &str,
) -> Result<Response, ApiError> {
    let kind = kind_of(resource);
    let mut object = parse_body(request, kind)?;
    claim_namespace(&mut object, ns)?;
    generate_name(&mut object);
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let causes = check_object(resource, &mut object);
    if !causes.is_empty() {
        return Err(ApiError::invalid(kind, &name, &causes));
    }
    object["kind"] = json!(kind);
    object["apiVersion"] = json!("v1");
    let object = ctx.store.create(resource, object).map_err(|e| match e {
        StoreError::AlreadyExists => ApiError::already_exists(resource, &name),
        _ => ApiError::internal(&format!("storing {resource} {name}")),
    })?;
    Ok(Response::json(201, &object))
}

/// Validates a secret or configmap and folds a secret's `stringData` into `data`.
fn check_object(resource: &str, object: &mut Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        let message = "Required value: name or generateName is required".into();
        causes.push(Cause::new("FieldValueRequired", "metadata.name", message));
    } else if let Err(why) = validate::dns_subdomain(name) {
        causes.push(Cause::invalid("metadata.name", name, &why));
    }
    for field in ["data", "stringData", "binaryData"] {
        check_keys(&object[field], field, &mut causes);
    }
    if resource == "secrets" {
        fold_string_data(object, &mut causes);
        check_secret(object, &mut causes);
    }
    causes
}

/// Data keys must be config keys: `[-._a-zA-Z0-9]+`.
fn check_keys(map: &Value, field: &str, causes: &mut Vec<Cause>) {
    for key in map.as_object().into_iter().flat_map(|m| m.keys()) {
        let valid = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !valid {
            let why = "a valid config key must consist of alphanumeric characters, '-', '_' or \
                       '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for \
                       validation is '[-._a-zA-Z0-9]+')";
            causes.push(Cause::invalid(&format!("{field}[{key}]"), key, why));
        }
    }
}

/// A Secret's type defaults to Opaque; a dockerconfigjson one needs its key; 1 MiB at most.
fn check_secret(secret: &mut Value, causes: &mut Vec<Cause>) {
    let engine = base64::engine::general_purpose::STANDARD;
    if secret["type"].as_str().is_none() {
        secret["type"] = json!("Opaque");
    }
    if secret["type"] == "kubernetes.io/dockerconfigjson" {
        let config = secret["data"][DOCKER_CONFIG_KEY]
            .as_str()
            .and_then(|v| engine.decode(v).ok());
        match config.map(|bytes| serde_json::from_slice::<Value>(&bytes).is_ok()) {
            None => causes.push(Cause::required(&format!("data[{DOCKER_CONFIG_KEY}]"))),
            Some(false) => causes.push(Cause::invalid(
                &format!("data[{DOCKER_CONFIG_KEY}]"),
                "<secret contents redacted>",
                "invalid character in JSON",
            )),
            Some(true) => {}
        }
    }
    let size: usize = secret["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, v)| {
            v.as_str()
                .and_then(|v| engine.decode(v).ok())
                .map_or(0, |d| d.len())
        })
        .sum();
    if size > MAX_SECRET_BYTES {
        let message = format!("Too long: may not be more than {MAX_SECRET_BYTES} bytes");
        causes.push(Cause::new("FieldValueTooLong", "data", message));
    }
}

fn fold_string_data(secret: &mut Value, causes: &mut Vec<Cause>) {
    let engine = base64::engine::general_purpose::STANDARD;
    for (key, value) in secret["data"].as_object().into_iter().flatten() {
        if value.as_str().is_none_or(|v| engine.decode(v).is_err()) {
            let message =
                "Invalid value: \"<secret contents redacted>\": illegal base64 data".into();
            causes.push(Cause::new(
                "FieldValueInvalid",
                &format!("data[{key}]"),
                message,
            ));
        }
    }
    let Some(plain) = secret.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (key, value) in plain.as_object().into_iter().flatten() {
        secret["data"][key] = json!(engine.encode(value.as_str().unwrap_or("")));
    }
}

/// `DELETE` of a secret, configmap or event: gone at once, answered with a success Status.
pub fn delete(ctx: &Ctx, resource: &str, ns: &str, name: &str) -> Result<Response, ApiError> {
    let object = ctx
        .store
        .remove(resource, ns, name)
        .map_err(|_| ApiError::not_found(resource, name))?;
    Ok(Response::json(
        200,
        &status::success(resource, name, &object["metadata"]["uid"]),
    ))
}

/// `PATCH` with `application/merge-patch+json` (RFC 7386); other patch types get 415.
pub fn merge_patch(
    ctx: &Ctx,
    request: &Request,
    resource: &str,
    ns: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let content_type = request.header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/merge-patch+json") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types \
                     include: application/merge-patch+json (got {content_type:?})"
            ),
            None,
        ));
    }
    let patch: Value = serde_json::from_slice(&request.body)
        .map_err(|e| ApiError::bad_request(format!("json parse error: {e}")))?;
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "the patch is not a JSON object".into(),
        ));
    }
    let object = ctx
        .store
        .update(resource, ns, name, |object| merge(object, &patch))
        .map_err(|_| ApiError::not_found(resource, name))?;
    Ok(Response::json(200, &object))
}

/// Applies a JSON merge patch: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let (Some(target_map), Some(patch_map)) = (target.as_object_mut(), patch.as_object()) else {
        *target = patch.clone();
        return;
    };
    for (key, value) in patch_map {
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Object(_) => merge(target_map.entry(key.clone()).or_insert(Value::Null), value),
            other => {
                target_map.insert(key.clone(), other.clone());
            }
        }
    }
}

/// Stores an Event about a pod (from the scheduler or the kubelet).
pub fn record_event(
    store: &Store,
    pod: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let now = util::now_rfc3339();
    let event = json!({
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": format!("{name}.{:x}", util::random_u64()), "namespace": namespace},
        "involvedObject": {"kind": "Pod", "namespace": namespace, "name": name,
                           "uid": pod["metadata"]["uid"], "apiVersion": "v1"},
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": component, "host": crate::pods::NODE_NAME},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": crate::pods::NODE_NAME,
    });
    // An event name collision is as good as impossible; losing one event is harmless.
    let _ = store.create("events", event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_cut_the_base_to_58_and_add_5_characters() {
        let mut o = json!({"metadata": {"generateName": "x".repeat(70)}});
        generate_name(&mut o);
        let name = o["metadata"]["name"].as_str().unwrap();
        assert_eq!(name.len(), 63);
        assert!(name.starts_with(&"x".repeat(58)));
        let mut named = json!({"metadata": {"name": "keep", "generateName": "g-"}});
        generate_name(&mut named);
        assert_eq!(named["metadata"]["name"], "keep");
    }

    #[test]
    fn string_data_is_folded_into_base64_data() {
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"pw": "hi"}});
        assert!(check_object("secrets", &mut s).is_empty());
        assert_eq!(s["data"]["pw"], "aGk=");
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        let mut bad = json!({"metadata": {"name": "s"}, "data": {"k": "!!"}});
        assert_eq!(check_object("secrets", &mut bad)[0].field, "data[k]");
    }

    #[test]
    fn a_registry_secret_needs_its_docker_config_and_keys_are_checked() {
        let mut registry =
            json!({"metadata": {"name": "r"}, "type": "kubernetes.io/dockerconfigjson"});
        assert_eq!(
            check_object("secrets", &mut registry)[0].field,
            "data[.dockerconfigjson]"
        );
        registry["stringData"] = json!({".dockerconfigjson": "{\"auths\":{}}"});
        assert!(check_object("secrets", &mut registry).is_empty());
        let mut cm = json!({"metadata": {"name": "c"}, "data": {"bad key": "x"}});
        assert_eq!(
            check_object("configmaps", &mut cm)[0].field,
            "data[bad key]"
        );
    }
}

#[cfg(test)]
mod merge_patch_tests {
    use serde_json::json;

    #[test]
    fn objects_merge_nulls_remove_and_the_rest_replaces() {
        let mut object =
            json!({"metadata": {"name": "s", "labels": {"a": "1", "b": "2"}}, "data": {}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}, "ownerReferences": [{"kind": "Pod"}]}});
        super::merge(&mut object, &patch);
        assert_eq!(
            object,
            json!({"metadata": {"name": "s", "labels": {"b": "2", "c": "3"},
                "ownerReferences": [{"kind": "Pod"}]}, "data": {}})
        );
    }
}
