//! The simulator's API over plain HTTP: discovery, pods, other objects, Status errors, selectors,
//! Table answers, validation causes.

mod common;

use std::time::Duration;

use common::{call, call_with, create_running, pod, sim};
use kube_sim::{Sim, SimOptions};
use serde_json::json;

#[test]
fn version_reports_minor_32_for_the_kubectl_dispatcher() {
    let sim = sim();
    let v = call(&sim, "GET", "/version", None).json();
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "32");
    assert_eq!(v["gitVersion"], "v1.32.0");
}

#[test]
fn discovery_lists_pods_and_pods_exec() {
    let sim = sim();
    assert_eq!(
        call(&sim, "GET", "/api", None).json()["versions"],
        json!(["v1"])
    );
    assert_eq!(
        call(&sim, "GET", "/apis", None).json()["kind"],
        "APIGroupList"
    );
    let v1 = call(&sim, "GET", "/api/v1", None).json();
    let names: Vec<&str> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"pods"));
    assert!(names.contains(&"pods/exec"));
    let index = call(&sim, "GET", "/openapi/v3", None).json();
    let url = index["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    let doc = call(&sim, "GET", url, None).json();
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert_eq!(patch["parameters"][0]["name"], "fieldValidation");
}

#[test]
fn create_answers_201_with_a_pending_pod_and_server_defaults() {
    let sim = sim();
    let answer = call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("ci-1", "true")),
    );
    assert_eq!(answer.code, 201);
    let p = answer.json();
    assert_eq!(p["metadata"]["namespace"], "ci");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["spec"]["nodeName"], "sim-node");
    assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
    assert!(p["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(p["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
}

#[test]
fn generate_name_cuts_the_base_to_58_and_adds_5_random_characters() {
    let sim = sim();
    let mut manifest = pod("", "true");
    manifest["metadata"] = json!({"generateName": format!("{}-", "r".repeat(70))});
    let p = call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&manifest)).json();
    let name = p["metadata"]["name"].as_str().unwrap();
    assert_eq!(name.len(), 63);
    assert!(name.starts_with(&"r".repeat(58)));
}

#[test]
fn a_second_create_of_the_same_name_is_409_already_exists() {
    let sim = sim();
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("ci-1", "true")),
    );
    let answer = call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("ci-1", "true")),
    );
    assert_eq!(answer.code, 409);
    assert_eq!(
        answer.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods \"ci-1\" already exists", "reason": "AlreadyExists",
               "details": {"name": "ci-1", "kind": "pods"}, "code": 409})
    );
}

#[test]
fn a_missing_pod_is_404_not_found() {
    let sim = sim();
    let answer = call(&sim, "GET", "/api/v1/namespaces/ci/pods/nope", None);
    assert_eq!(answer.code, 404);
    let s = answer.json();
    assert_eq!(s["reason"], "NotFound");
    assert_eq!(s["message"], "pods \"nope\" not found");
    assert_eq!(
        call(&sim, "DELETE", "/api/v1/namespaces/ci/pods/nope", None).code,
        404
    );
}

#[test]
fn a_missing_image_is_422_with_the_field_cause() {
    let sim = sim();
    let mut manifest = pod("ci-1", "true");
    manifest["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");
    let answer = call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&manifest));
    assert_eq!(answer.code, 422);
    assert_eq!(
        answer.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Pod \"ci-1\" is invalid: spec.containers[0].image: Required value",
               "reason": "Invalid",
               "details": {"name": "ci-1", "kind": "Pod", "causes": [
                   {"reason": "FieldValueRequired", "message": "Required value",
                    "field": "spec.containers[0].image"}]},
               "code": 422})
    );
}

#[test]
fn several_problems_are_listed_in_one_422() {
    let sim = sim();
    let mut manifest = pod("ci-1", "true");
    manifest["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}});
    manifest["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "missing", "mountPath": "/x"}]);
    let s = call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&manifest)).json();
    let fields: Vec<&str> = s["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec![
            "spec.containers[0].volumeMounts[0].name",
            "spec.containers[0].resources.requests"
        ]
    );
    let message = s["message"].as_str().unwrap();
    assert!(
        message.contains("must be less than or equal to cpu limit of 1"),
        "{message}"
    );
}

#[test]
fn unknown_fields_are_400_under_strict_and_422_otherwise() {
    let sim = sim();
    let mut manifest = pod("ci-1", "true");
    manifest["spec"]["containers"][0]["imagePullSecret"] = json!("x");
    let strict = call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods?fieldValidation=Strict",
        Some(&manifest),
    );
    assert_eq!(strict.code, 400);
    assert_eq!(
        strict.json()["message"],
        "strict decoding error: unknown field \"spec.containers[0].imagePullSecret\""
    );
    let lax = call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&manifest));
    assert_eq!(lax.code, 422);
    assert_eq!(
        lax.json()["details"]["causes"][0]["field"],
        "spec.containers[0].imagePullSecret"
    );
}

#[test]
fn a_wrong_type_is_422_naming_the_field() {
    let sim = sim();
    let mut manifest = pod("ci-1", "true");
    manifest["spec"]["activeDeadlineSeconds"] = json!("soon");
    let s = call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&manifest)).json();
    assert_eq!(s["code"], 422);
    assert_eq!(
        s["details"]["causes"][0]["field"],
        "spec.activeDeadlineSeconds"
    );
}

#[test]
fn a_body_in_another_namespace_is_400() {
    let sim = sim();
    let mut manifest = pod("ci-1", "true");
    manifest["metadata"]["namespace"] = json!("other");
    assert_eq!(
        call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&manifest)).code,
        400
    );
}

#[test]
fn list_filters_by_label_and_field_selectors() {
    let sim = sim();
    for (name, app) in [("a", "x"), ("b", "y"), ("c", "x")] {
        let mut p = pod(name, "sleep 30");
        p["metadata"]["labels"] = json!({"app": app});
        call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&p));
    }
    let names = |query: &str| -> Vec<String> {
        let list = call(
            &sim,
            "GET",
            &format!("/api/v1/namespaces/ci/pods?{query}"),
            None,
        )
        .json();
        assert_eq!(list["kind"], "PodList");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("labelSelector=app%3Dx"), vec!["a", "c"]);
    assert_eq!(names("labelSelector=app!%3Dx"), vec!["b"]);
    assert_eq!(names("labelSelector=app+in+(y,z)"), vec!["b"]);
    assert_eq!(names("fieldSelector=metadata.name%3Dc"), vec!["c"]);
    assert_eq!(
        names("fieldSelector=status.phase%3DNoSuchPhase"),
        Vec::<String>::new()
    );
    assert_eq!(
        call(&sim, "GET", "/api/v1/namespaces/other/pods", None).json()["items"],
        json!([])
    );
}

#[test]
fn kubectl_style_accept_gets_a_table() {
    let sim = sim();
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("t1", "sleep 30")),
    );
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let t = call_with(
        sim.addr(),
        "GET",
        "/api/v1/namespaces/ci/pods",
        &[("Accept", accept)],
        None,
    )
    .json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    assert_eq!(t["rows"][0]["cells"][0], "t1");
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "t1");
}

#[test]
fn delete_marks_the_pod_then_it_goes_after_the_kubelet_stops_it() {
    let sim = sim();
    create_running(&sim, "ci", "d1");
    let body = json!({
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "gracePeriodSeconds": 5,
        "propagationPolicy": "Background",
    });
    let answer = call(&sim, "DELETE", "/api/v1/namespaces/ci/pods/d1", Some(&body));
    assert_eq!(answer.code, 200);
    let p = answer.json();
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 5);
    assert!(sim.wait_for_pod("ci", "d1", Duration::from_secs(15), |p| p.is_none()));
    assert_eq!(
        call(&sim, "GET", "/api/v1/namespaces/ci/pods/d1", None).code,
        404
    );
}

#[test]
fn a_bad_propagation_policy_is_refused() {
    let sim = sim();
    create_running(&sim, "ci", "d2");
    let answer = call(
        &sim,
        "DELETE",
        "/api/v1/namespaces/ci/pods/d2?propagationPolicy=Sideways",
        None,
    );
    assert_eq!(answer.code, 422);
    assert!(sim.pod("ci", "d2").unwrap()["metadata"]["deletionTimestamp"].is_null());
}

#[test]
fn an_unschedulable_pod_is_deleted_at_once() {
    let sim = sim();
    let mut p = pod("u1", "true");
    p["spec"]["nodeSelector"] = json!({"pool": "gpu"});
    let created = call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&p)).json();
    assert!(created["spec"]["nodeName"].is_null());
    assert_eq!(
        call(
            &sim,
            "DELETE",
            "/api/v1/namespaces/ci/pods/u1?gracePeriodSeconds=30",
            None
        )
        .code,
        200
    );
    assert!(sim.pod("ci", "u1").is_none());
}

#[test]
fn secrets_fold_string_data_and_delete_answers_a_success_status() {
    let sim = sim();
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"pw": "hi"},
    });
    let created = call(&sim, "POST", "/api/v1/namespaces/ci/secrets", Some(&secret));
    assert_eq!(created.code, 201);
    assert_eq!(created.json()["data"]["pw"], "aGk=");
    assert_eq!(
        call(&sim, "POST", "/api/v1/namespaces/ci/secrets", Some(&secret)).code,
        409
    );
    assert_eq!(
        call(&sim, "GET", "/api/v1/namespaces/ci/secrets/creds", None).json()["type"],
        "Opaque"
    );
    let deleted = call(&sim, "DELETE", "/api/v1/namespaces/ci/secrets/creds", None).json();
    assert_eq!(deleted["status"], "Success");
    assert_eq!(
        call(&sim, "GET", "/api/v1/namespaces/ci/secrets/creds", None).code,
        404
    );
}

#[test]
fn configmaps_are_created_got_and_deleted() {
    let sim = sim();
    let cm = json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}});
    assert_eq!(
        call(&sim, "POST", "/api/v1/namespaces/ci/configmaps", Some(&cm)).code,
        201
    );
    assert_eq!(
        call(&sim, "GET", "/api/v1/namespaces/ci/configmaps/cfg", None).json()["data"]["a"],
        "1"
    );
    let bad = json!({"metadata": {"name": "Bad_Name"}});
    assert_eq!(
        call(&sim, "POST", "/api/v1/namespaces/ci/configmaps", Some(&bad)).code,
        422
    );
    assert_eq!(
        call(&sim, "DELETE", "/api/v1/namespaces/ci/configmaps/cfg", None).code,
        200
    );
}

#[test]
fn pod_events_are_listed_by_involved_object() {
    let sim = sim();
    create_running(&sim, "ci", "e1");
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("e2", "true")),
    );
    let list = call(
        &sim,
        "GET",
        "/api/v1/namespaces/ci/events?fieldSelector=involvedObject.name%3De1",
        None,
    )
    .json();
    let events = list["items"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["involvedObject"]["name"] == "e1"));
    assert!(events.iter().any(|e| e["reason"] == "Scheduled"));
}

#[test]
fn resource_versions_only_grow() {
    let sim = sim();
    let a = call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&pod("v1", "true")),
    )
    .json();
    let b = call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/configmaps",
        Some(&json!({"metadata": {"name": "c"}})),
    )
    .json();
    let rv = |v: &serde_json::Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&b) > rv(&a));
    assert!(sim.resource_version() >= rv(&b));
}

#[test]
fn an_unknown_path_is_404_and_an_unserved_verb_405() {
    let sim = sim();
    assert_eq!(
        call(&sim, "GET", "/apis/apps/v1/deployments", None).code,
        404
    );
    assert_eq!(
        call(
            &sim,
            "PUT",
            "/api/v1/namespaces/ci/pods/x",
            Some(&json!({}))
        )
        .json()["reason"],
        "MethodNotAllowed"
    );
}

#[test]
fn serves_on_ipv6_loopback() {
    let options = SimOptions {
        bind: "[::1]:0".parse().unwrap(),
        ..SimOptions::default()
    };
    let sim = Sim::start(options).expect("binds [::1]");
    assert!(sim.url().starts_with("http://[::1]:"));
    assert_eq!(call(&sim, "GET", "/version", None).code, 200);
}

#[test]
fn refuses_a_non_loopback_bind_address() {
    let options = SimOptions {
        bind: "0.0.0.0:0".parse().unwrap(),
        ..SimOptions::default()
    };
    assert!(Sim::start(options).is_err());
}

#[test]
fn the_request_log_keeps_method_path_query_and_body() {
    let sim = sim();
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods?fieldValidation=Strict",
        Some(&pod("r1", "true")),
    );
    let log = sim.requests();
    let entry = log.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(entry.path, "/api/v1/namespaces/ci/pods");
    assert_eq!(entry.param("fieldValidation"), Some("Strict"));
    assert_eq!(entry.code, 201);
    assert_eq!(entry.json().unwrap()["metadata"]["name"], "r1");
}

#[test]
fn keeps_a_connection_alive_across_requests() {
    use std::io::{BufRead, BufReader, Read, Write};
    let sim = sim();
    let mut tcp = std::net::TcpStream::connect(sim.addr()).unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    for _ in 0..2 {
        tcp.write_all(b"GET /version HTTP/1.1\r\nHost: sim\r\n\r\n")
            .unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("\"minor\":\"32\""));
    }
}

#[test]
fn an_evicted_pod_shows_failed_evicted_with_a_warning_event_and_deletes_at_once() {
    let sim = sim();
    let mut p = pod("ev", "sleep 300");
    p["spec"]["containers"][0]["image"] = json!("sim/evict-after:0.2");
    assert_eq!(
        call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&p)).code,
        201
    );
    let evicted = sim.wait_for_pod("ci", "ev", Duration::from_secs(20), |p| {
        p.is_some_and(|p| p["status"]["reason"] == "Evicted")
    });
    assert!(evicted, "{:?}", sim.pod("ci", "ev"));
    let got = call(&sim, "GET", "/api/v1/namespaces/ci/pods/ev", None).json();
    assert_eq!(got["status"]["phase"], "Failed");
    let query = "fieldSelector=involvedObject.name%3Dev,type%3DWarning";
    let events = call(
        &sim,
        "GET",
        &format!("/api/v1/namespaces/ci/events?{query}"),
        None,
    )
    .json();
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"Evicted"), "{reasons:?}");
    assert_eq!(
        call(&sim, "DELETE", "/api/v1/namespaces/ci/pods/ev", None).code,
        200
    );
    assert!(sim.pod("ci", "ev").is_none());
}

#[test]
fn an_invalid_image_name_waits_pending_with_its_reason() {
    let sim = sim();
    let mut p = pod("img", "true");
    p["spec"]["containers"][0]["image"] = json!("node:10:16.0");
    assert_eq!(
        call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&p)).code,
        201
    );
    let waiting = sim.wait_for_pod("ci", "img", Duration::from_secs(20), |p| {
        let state = p.map(|p| p["status"]["containerStatuses"][0]["state"].clone());
        state.is_some_and(|s| s["waiting"]["reason"] == "InvalidImageName")
    });
    assert!(waiting, "{:?}", sim.pod("ci", "img"));
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let path = "/api/v1/namespaces/ci/pods/img";
    let table = call_with(sim.addr(), "GET", path, &[("Accept", accept)], None).json();
    assert_eq!(table["rows"][0]["cells"][2], "InvalidImageName");
}
