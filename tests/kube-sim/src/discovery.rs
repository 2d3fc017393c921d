//! Version, discovery and minimal OpenAPI v3 documents: what kubectl reads before it acts.

use serde_json::{json, Value};

use crate::http::Response;

/// The Kubernetes version served; kubectl's dispatcher runs the kubectl of this minor.
pub const MINOR: &str = "32";

/// Hash the OpenAPI index gives the core/v1 document (any stable text works).
const OPENAPI_HASH: &str = "5D1C0F3B7E2A9C4F";

/// `GET /version`.
pub fn version() -> Response {
    Response::json(
        200,
        &json!({
            "major": "1",
            "minor": MINOR,
            "gitVersion": format!("v1.{MINOR}.0"),
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.23.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

/// `GET /api`: the core group's versions.
pub fn api_versions() -> Response {
    let body = json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}
        ],
    });
    Response::json(200, &body)
}

/// `GET /apis`: no named groups.
pub fn api_groups() -> Response {
    Response::json(
        200,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
    )
}

fn resource(name: &str, kind: &str, verbs: &[&str], short: &[&str]) -> Value {
    json!({
        "name": name,
        "singularName": if name.contains('/') { "" } else { name.trim_end_matches('s') },
        "namespaced": true,
        "kind": kind,
        "verbs": verbs,
        "shortNames": short,
    })
}

/// `GET /api/v1`: the resources served.
pub fn core_v1_resources() -> Response {
    let object_verbs = ["create", "delete", "get", "list", "watch"];
    let mut pods = resource("pods", "Pod", &object_verbs, &["po"]);
    pods["categories"] = json!(["all"]);
    let resources = vec![
        pods,
        resource("pods/exec", "PodExecOptions", &["create", "get"], &[]),
        resource("secrets", "Secret", &object_verbs, &[]),
        resource("configmaps", "ConfigMap", &object_verbs, &["cm"]),
        resource(
            "events",
            "Event",
            &["create", "delete", "get", "list", "watch"],
            &["ev"],
        ),
        json!({"name": "namespaces", "singularName": "namespace", "namespaced": false,
               "kind": "Namespace", "verbs": ["get"], "shortNames": ["ns"]}),
    ];
    let body = json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "v1",
        "resources": resources,
    });
    Response::json(200, &body)
}

/// `GET /openapi/v3`: the index of OpenAPI documents.
pub fn openapi_index() -> Response {
    let url = format!("/openapi/v3/api/v1?hash={OPENAPI_HASH}");
    Response::json(
        200,
        &json!({"paths": {"api/v1": {"serverRelativeURL": url}}}),
    )
}

/// `GET /openapi/v3/api/v1`: just enough for kubectl to learn that pods take field validation.
pub fn openapi_core_v1() -> Response {
    let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
    let field_validation = json!({
        "name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true},
        "description": "Ignore, Warn or Strict handling of unknown or duplicate fields",
    });
    let operation = |action: &str, id: &str| {
        json!({
            "operationId": id,
            "parameters": [field_validation],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        })
    };
    let body = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{MINOR}.0")},
        "paths": {
            "/api/v1/namespaces/{namespace}/pods": {
                "post": operation("post", "createCoreV1NamespacedPod"),
            },
            "/api/v1/namespaces/{namespace}/pods/{name}": {
                "put": operation("put", "replaceCoreV1NamespacedPod"),
                "patch": operation("patch", "patchCoreV1NamespacedPod"),
            },
        },
        "components": {"schemas": {"io.k8s.api.core.v1.Pod": {
            "type": "object",
            "x-kubernetes-group-version-kind": [gvk],
        }}},
    });
    Response::json(200, &body)
}

/// `GET /api/v1/namespaces/{ns}`: every namespace exists and is active.
pub fn namespace(name: &str) -> Response {
    let body = json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    });
    Response::json(200, &body)
}
