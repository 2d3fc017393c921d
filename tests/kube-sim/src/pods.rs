//! Pod create and delete: validation, defaults, scheduling, graceful deletion.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::api::Ctx;
use crate::http::{Request, Response};
use crate::objects::{self, parse_body};
use crate::schema::Violation;
use crate::status::ApiError;
use crate::store::StoreError;
use crate::util;
use crate::validate::{self, Cause};

pub use crate::kubelet::NODE_NAME;

/// Default grace period of a pod, in seconds.
const DEFAULT_GRACE: i64 = 30;

/// `POST /api/v1/namespaces/{ns}/pods`.
pub fn create(ctx: &Ctx, request: &Request, namespace: &str) -> Result<Response, ApiError> {
    let mut pod = parse_body(request, "Pod")?;
    objects::claim_namespace(&mut pod, namespace)?;
    objects::generate_name(&mut pod);
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();

    // Strict field validation refuses unknown fields before anything else.
    if request.param("fieldValidation") == Some("Strict") {
        strict_unknown_fields(&pod)?;
    }
    validate::validate_pod(&pod).map_err(|causes| ApiError::invalid("Pod", &name, &causes))?;

    apply_defaults(&mut pod);
    let scheduled = schedule(&mut pod, &ctx.node_labels);
    let pod = ctx.store.create("pods", pod).map_err(|e| match e {
        StoreError::AlreadyExists => ApiError::already_exists("pods", &name),
        _ => ApiError::internal(&format!("storing pod {name}")),
    })?;
    if scheduled {
        let message = format!("Successfully assigned {namespace}/{name} to {NODE_NAME}");
        objects::record_event(
            &ctx.store,
            &pod,
            "Normal",
            "Scheduled",
            &message,
            "default-scheduler",
        );
    }
    ctx.node.start_pod(&pod);
    Ok(Response::json(201, &pod))
}

fn strict_unknown_fields(pod: &Value) -> Result<(), ApiError> {
    let unknown: Vec<String> = crate::validate::schema_violations(pod)
        .into_iter()
        .filter_map(|v| match v {
            Violation::Unknown { field } => Some(format!("unknown field \"{field}\"")),
            _ => None,
        })
        .collect();
    match unknown.is_empty() {
        true => Ok(()),
        false => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        ))),
    }
}

/// Fills the defaults the API server sets on a new pod.
fn apply_defaults(pod: &mut Value) {
    let spec = &mut pod["spec"];
    let defaults = [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(DEFAULT_GRACE)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
        ("serviceAccountName", json!("default")),
        ("enableServiceLinks", json!(true)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
        ("priority", json!(0)),
    ];
    for (key, value) in defaults {
        if spec.get(key).is_none_or(Value::is_null) {
            spec[key] = value;
        }
    }
    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            default_container(c);
        }
    }
    pod["status"] = json!({"phase": "Pending", "qosClass": qos_class(&pod["spec"])});
    pod["kind"] = json!("Pod");
    pod["apiVersion"] = json!("v1");
}

fn default_container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or("");
    let tag = image
        .rsplit('/')
        .next()
        .unwrap_or("")
        .split_once(':')
        .map(|(_, t)| t);
    let pull = match tag {
        None | Some("latest") if !image.contains('@') => "Always",
        _ => "IfNotPresent",
    };
    let defaults = [
        ("imagePullPolicy", json!(pull)),
        ("terminationMessagePath", json!("/dev/termination-log")),
        ("terminationMessagePolicy", json!("File")),
        ("resources", json!({})),
    ];
    for (key, value) in defaults {
        if c.get(key).is_none_or(Value::is_null) {
            c[key] = value;
        }
    }
}

/// The QoS class: Guaranteed when every container's requests equal its limits for cpu and
/// memory, BestEffort when none sets any, Burstable otherwise.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let empty = |c: &&Value| {
        ["requests", "limits"]
            .iter()
            .all(|k| c["resources"][k].as_object().is_none_or(|m| m.is_empty()))
    };
    if containers.iter().all(empty) {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = &c["resources"]["limits"][r];
            let request = &c["resources"]["requests"][r];
            !limit.is_null() && (request.is_null() || request == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Binds the pod to the node when its nodeSelector fits the node's labels.
fn schedule(pod: &mut Value, node_labels: &BTreeMap<String, String>) -> bool {
    let fits = pod["spec"]["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| node_labels.get(k).map(String::as_str) == v.as_str());
    if fits {
        pod["spec"]["nodeName"] = json!(NODE_NAME);
    }
    fits
}

/// `DELETE /api/v1/namespaces/{ns}/pods/{name}`: marks the pod, stops it after its grace, and
/// removes it once the kubelet reports it gone.
pub fn delete(
    ctx: &Ctx,
    request: &Request,
    namespace: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let options = delete_options(request)?;
    let pod = ctx
        .store
        .get("pods", namespace, name)
        .ok_or_else(|| ApiError::not_found("pods", name))?;
    let grace = options.unwrap_or_else(|| {
        pod["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(DEFAULT_GRACE)
    });
    let pod = delete_pod(ctx, &pod, grace.max(0) as u64);
    Ok(Response::json(200, &pod))
}

/// Starts deleting a pod with a grace period in seconds; returns the pod as the answer shows it.
pub fn delete_pod(ctx: &Ctx, pod: &Value, grace: u64) -> Value {
    let namespace = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let unscheduled = pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    let grace = if unscheduled || terminal { 0 } else { grace };

    // Already terminating: only a shorter grace changes anything.
    if let Some(pending) = pod["metadata"]["deletionGracePeriodSeconds"].as_u64() {
        if grace >= pending {
            return pod.clone();
        }
    }
    let answer = match grace {
        0 => ctx
            .store
            .remove("pods", &namespace, &name)
            .unwrap_or_else(|_| pod.clone()),
        _ => mark_deleting(ctx, &namespace, &name, grace).unwrap_or_else(|| pod.clone()),
    };
    ctx.node
        .stop_pod(&namespace, &name, Duration::from_secs(grace));
    answer
}

fn mark_deleting(ctx: &Ctx, namespace: &str, name: &str, grace: u64) -> Option<Value> {
    let at = util::rfc3339(SystemTime::now() + Duration::from_secs(grace));
    let result = ctx.store.update("pods", namespace, name, |p| {
        p["metadata"]["deletionTimestamp"] = json!(at);
        p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    });
    result.ok()
}

/// The grace period a delete asks for, from the query or a DeleteOptions body.
fn delete_options(request: &Request) -> Result<Option<i64>, ApiError> {
    let body: Value = match request.body.is_empty() {
        true => json!({}),
        false => serde_json::from_slice(&request.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions body: {e}")))?,
    };
    let policy = request
        .param("propagationPolicy")
        .map(str::to_string)
        .or_else(|| body["propagationPolicy"].as_str().map(str::to_string));
    if let Some(policy) = policy {
        if !["Orphan", "Background", "Foreground"].contains(&policy.as_str()) {
            let message = format!(
                "Unsupported value: \"{policy}\": supported values: \"Foreground\", \
                 \"Background\", \"Orphan\""
            );
            let cause = Cause::new("FieldValueNotSupported", "propagationPolicy", message);
            return Err(ApiError::invalid("DeleteOptions", "", &[cause]));
        }
    }
    match request.param("gracePeriodSeconds") {
        Some(text) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {text:?}"))),
        None => Ok(body["gracePeriodSeconds"].as_i64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_follows_requests_and_limits() {
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {}}]})),
            "BestEffort"
        );
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn schedules_only_when_the_node_selector_fits() {
        let labels = BTreeMap::from([("pool".to_string(), "ci".to_string())]);
        let mut fits = json!({"spec": {"nodeSelector": {"pool": "ci"}}});
        assert!(schedule(&mut fits, &labels));
        assert_eq!(fits["spec"]["nodeName"], NODE_NAME);
        let mut misses = json!({"spec": {"nodeSelector": {"pool": "gpu"}}});
        assert!(!schedule(&mut misses, &labels));
    }

    #[test]
    fn image_tag_picks_the_pull_policy() {
        for (image, policy) in [
            ("alpine", "Always"),
            ("alpine:latest", "Always"),
            ("alpine:3", "IfNotPresent"),
            ("reg:5000/a", "Always"),
        ] {
            let mut c = json!({"image": image});
            default_container(&mut c);
            assert_eq!(c["imagePullPolicy"], policy, "{image}");
        }
    }
}
