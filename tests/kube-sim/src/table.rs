//! `meta.k8s.io/v1` Table answers, as `kubectl get` asks for them (`Accept: ...;as=Table`).

use serde_json::{json, Value};

use crate::http::Request;
use crate::util;

/// What each row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// Nothing.
    None,
    /// A PartialObjectMetadata (the default).
    Metadata,
    /// The whole object.
    Object,
}

/// Whether the request asks for a Table, and what rows then carry.
pub fn wanted(request: &Request) -> Option<Include> {
    let accept = request.header("accept").unwrap_or("");
    let first = accept.split(',').next().unwrap_or("");
    if !first.contains("as=Table") {
        return None;
    }
    Some(match request.param("includeObject") {
        Some("None") => Include::None,
        Some("Object") => Include::Object,
        _ => Include::Metadata,
    })
}

/// A Table of objects of one resource.
pub fn render(resource: &str, objects: &[Value], include: Include, rv: u64) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| json!({"cells": cells(resource, o), "object": row_object(o, include)}))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns(resource),
        "rows": rows,
    })
}

fn row_object(object: &Value, include: Include) -> Value {
    match include {
        Include::None => Value::Null,
        Include::Object => object.clone(),
        Include::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object["metadata"],
        }),
    }
}

fn columns(resource: &str) -> Vec<Value> {
    let names: &[(&str, &str, u8)] = match resource {
        "pods" => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        "secrets" => &[
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Data", "string", 0),
            ("Age", "string", 0),
        ],
        "configmaps" => &[
            ("Name", "string", 0),
            ("Data", "string", 0),
            ("Age", "string", 0),
        ],
        "events" => &[
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _ => &[("Name", "string", 0), ("Age", "string", 0)],
    };
    names
        .iter()
        .map(|(name, kind, priority)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({
                "name": name,
                "type": kind,
                "format": format,
                "description": "",
                "priority": priority,
            })
        })
        .collect()
}

fn cells(resource: &str, o: &Value) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let age = json!(age_of(&o["metadata"]["creationTimestamp"]));
    let count = |field: &str| json!(o[field].as_object().map_or(0, |m| m.len()));
    match resource {
        "pods" => pod_cells(o, name, age),
        "secrets" => vec![name, json!(o["type"]), count("data"), age],
        "configmaps" => vec![name, count("data"), age],
        "events" => vec![
            json!(age_of(&o["lastTimestamp"])),
            json!(o["type"]),
            json!(o["reason"]),
            json!(format!(
                "pod/{}",
                o["involvedObject"]["name"].as_str().unwrap_or("")
            )),
            json!(o["message"]),
        ],
        _ => vec![name, age],
    }
}

fn pod_cells(pod: &Value, name: Value, age: Value) -> Vec<Value> {
    let statuses: Vec<&Value> = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|s| s["ready"].as_bool() == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|s| s["restartCount"].as_i64())
        .sum();
    vec![
        name,
        json!(format!("{ready}/{total}")),
        json!(pod_status_word(pod, &statuses)),
        json!(restarts.to_string()),
        age,
        json!(pod["status"]["podIP"].as_str().unwrap_or("<none>")),
        json!(pod["spec"]["nodeName"].as_str().unwrap_or("<none>")),
    ]
}

/// The STATUS column: Terminating, a container's waiting or terminated reason, or the phase.
fn pod_status_word(pod: &Value, statuses: &[&Value]) -> String {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    if let Some(reason) = pod["status"]["reason"].as_str() {
        return reason.into();
    }
    for s in statuses {
        let reason = s["state"]["waiting"]["reason"]
            .as_str()
            .or(s["state"]["terminated"]["reason"].as_str());
        if let Some(reason) = reason.filter(|r| *r != "Completed" || statuses.len() == 1) {
            return reason.into();
        }
    }
    pod["status"]["phase"].as_str().unwrap_or("Unknown").into()
}

fn age_of(timestamp: &Value) -> String {
    timestamp
        .as_str()
        .and_then(util::parse_rfc3339)
        .map_or("<unknown>".into(), util::age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_rows_show_ready_count_and_status() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": util::now_rfc3339()},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n"},
            "status": {"phase": "Pending", "containerStatuses": [
                {"ready": true, "restartCount": 0, "state": {"running": {}}},
                {"ready": false, "restartCount": 1,
                 "state": {"waiting": {"reason": "ErrImagePull"}}}]}
        });
        let t = render("pods", &[pod], Include::Metadata, 7);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "p");
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "ErrImagePull");
        assert_eq!(cells[3], "1");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
    }
}
