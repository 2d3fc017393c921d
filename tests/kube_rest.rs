//! The Kubernetes client's credentials and REST calls against a loopback HTTPS server.

mod kube_support;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_runner::config::KubernetesConfig;
use alloy_runner::kube::{Client, KubeError};
use alloy_runner::secret::Secret;
use kube_support::{
    fast_retries, pki, server_tls, status_body, token_client, ApiServer, Reply, TempDir,
};
use serde_json::json;

fn pod(name: &str, version: &str) -> serde_json::Value {
    json!({"kind": "Pod", "apiVersion": "v1",
           "metadata": {"name": name, "namespace": "ci", "resourceVersion": version},
           "status": {"phase": "Pending"}})
}

fn pod_server() -> ApiServer {
    ApiServer::start("127.0.0.1:0", server_tls(false), |_, _| {
        Reply::json(200, pod("ci-1", "1"))
    })
}

#[test]
fn client_certificate_and_ca_authenticate_both_sides() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(true), |_, _| {
        Reply::json(200, pod("ci-1", "1"))
    });
    let cfg = KubernetesConfig {
        host: Some(server.url()),
        cert_file: Some(pki("client.crt")),
        key_file: Some(pki("client.key")),
        ca_file: Some(pki("ca.crt")),
        ..KubernetesConfig::default()
    };
    let client = Client::from_config(&cfg).expect("client builds");

    let got = client.get_pod("ci", "ci-1").expect("mutual TLS works");
    assert_eq!(got["metadata"]["name"], "ci-1");
    let requests = server.requests();
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path(), "/api/v1/namespaces/ci/pods/ci-1");
    assert_eq!(requests[0].header("authorization"), None);
}

#[test]
fn server_requiring_a_client_certificate_refuses_a_client_without_one() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(true), |_, _| {
        Reply::json(200, pod("ci-1", "1"))
    });
    let client = token_client(&server.url(), "t");
    assert!(client.get_pod("ci", "ci-1").is_err());
    assert!(server.requests().is_empty());
}

#[test]
fn bearer_token_is_sent_as_authorization_header() {
    let server = pod_server();
    let client = token_client(&server.url(), "s3cret");
    client.get_pod("ci", "ci-1").expect("pod answer");
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer s3cret")
    );

    let job_client = client.with_bearer_token(Secret::new("job-token"));
    job_client.get_pod("ci", "ci-1").expect("pod answer");
    assert_eq!(
        server.requests()[1].header("authorization"),
        Some("Bearer job-token")
    );
}

#[test]
fn server_certificate_from_another_ca_is_refused_naming_the_host() {
    let server = pod_server();
    let cfg = KubernetesConfig {
        host: Some(server.url()),
        ca_file: Some(pki("other-ca.crt")),
        ..KubernetesConfig::default()
    };
    let client = Client::from_config(&cfg)
        .expect("client builds")
        .with_retry_policy(fast_retries());
    let err = client
        .get_pod("ci", "ci-1")
        .expect_err("certificate must not verify");
    assert!(matches!(err, KubeError::Tls { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("tls with {} failed: ", server.addr)),
        "{message}"
    );
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(server.requests().is_empty());
}

#[test]
fn ipv6_loopback_host_is_verified_by_its_ip_address() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine; nothing to check");
        return;
    }
    let server = ApiServer::start("[::1]:0", server_tls(false), |_, _| {
        Reply::json(200, pod("ci-1", "1"))
    });
    assert!(server.url().starts_with("https://[::1]:"));
    let client = token_client(&server.url(), "t");
    let got = client
        .get_pod("ci", "ci-1")
        .expect("the certificate names ::1");
    assert_eq!(got["metadata"]["name"], "ci-1");
}

#[test]
fn credentials_files_that_cannot_be_used_are_named() {
    let dir = TempDir::new("badpem");
    let garbage = dir.write("garbage.crt", b"-----BEGIN CERTIFICATE-----\n@@@@\n");
    let no_key = dir.write("nokey.pem", b"just text\n");
    let missing = dir.path("missing.crt");
    let config = |ca: &std::path::Path, key: Option<&std::path::Path>| KubernetesConfig {
        host: Some("https://127.0.0.1:1".into()),
        ca_file: Some(ca.to_path_buf()),
        cert_file: key.map(|_| pki("client.crt")),
        key_file: key.map(std::path::Path::to_path_buf),
        ..KubernetesConfig::default()
    };
    let message = |cfg| {
        Client::from_config(&cfg)
            .expect_err("must fail")
            .to_string()
    };

    let m = message(config(&missing, None));
    assert!(
        m.starts_with(&format!(
            "cannot read CA certificate {}: ",
            missing.display()
        )),
        "{m}"
    );
    let m = message(config(&garbage, None));
    assert!(
        m.starts_with(&format!("cannot use PEM file {}: ", garbage.display())),
        "{m}"
    );
    let m = message(config(&no_key, None));
    assert_eq!(
        m,
        format!(
            "cannot use PEM file {}: no CERTIFICATE section found",
            no_key.display()
        )
    );
    let m = message(config(&pki("ca.crt"), Some(&no_key)));
    assert_eq!(
        m,
        format!(
            "cannot use PEM file {}: no private key section found",
            no_key.display()
        )
    );
}

#[test]
fn client_certificate_with_the_wrong_key_is_refused() {
    let cfg = KubernetesConfig {
        host: Some("https://127.0.0.1:1".into()),
        ca_file: Some(pki("ca.crt")),
        cert_file: Some(pki("client.crt")),
        key_file: Some(pki("server.key")),
        ..KubernetesConfig::default()
    };
    let err = Client::from_config(&cfg).expect_err("key does not match");
    assert!(err.to_string().contains("client.crt"), "{err}");
}

#[test]
fn certificate_without_key_is_a_settings_error() {
    let cfg = KubernetesConfig {
        host: Some("https://127.0.0.1:1".into()),
        cert_file: Some(pki("client.crt")),
        ..KubernetesConfig::default()
    };
    let err = Client::from_config(&cfg).expect_err("key missing");
    assert_eq!(
        err.to_string(),
        "kubernetes settings: cert_file is set without key_file"
    );
}

fn service_account(token: &str) -> TempDir {
    let dir = TempDir::new("sa");
    dir.write("token", format!("{token}\n").as_bytes());
    dir.write("ca.crt", &std::fs::read(pki("ca.crt")).expect("fixture"));
    dir.write("namespace", b"ci-jobs\n");
    dir
}

#[test]
fn in_cluster_reads_token_ca_and_namespace_from_the_folder() {
    let server = pod_server();
    let dir = service_account("sa-token-1");
    let port = server.addr.port().to_string();
    let client = Client::in_cluster_from("127.0.0.1", &port, &dir.0).expect("in-cluster");

    assert_eq!(client.default_namespace().as_deref(), Some("ci-jobs"));
    client.get_pod("ci-jobs", "ci-1").expect("pod answer");
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sa-token-1")
    );
}

#[test]
fn in_cluster_ipv6_service_host_goes_in_brackets() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine; nothing to check");
        return;
    }
    let server = ApiServer::start("[::1]:0", server_tls(false), |_, _| {
        Reply::json(200, pod("ci-1", "1"))
    });
    let dir = service_account("t");
    let port = server.addr.port().to_string();
    let client = Client::in_cluster_from("::1", &port, &dir.0).expect("in-cluster");
    assert_eq!(client.base_url(), format!("https://[::1]:{port}"));
    client.get_pod("ci", "ci-1").expect("pod answer over IPv6");
}

#[test]
fn in_cluster_needs_both_variables_and_a_token_file() {
    let dir = service_account("t");
    let err = Client::in_cluster_from("", "443", &dir.0).expect_err("no host");
    assert!(matches!(err, KubeError::NoCluster));
    let err = Client::in_cluster_from("10.0.0.1", "https", &dir.0).expect_err("bad port");
    assert!(err.to_string().contains("KUBERNETES_SERVICE_PORT"), "{err}");

    std::fs::remove_file(dir.path("token")).expect("remove token");
    let err = Client::in_cluster_from("10.0.0.1", "443", &dir.0).expect_err("no token");
    assert!(err.to_string().starts_with(&format!(
        "cannot read token {}: ",
        dir.path("token").display()
    )));
}

// C18: the token file changes from T1 to T2 and the server starts refusing T1.
#[test]
fn rotated_token_is_read_again_after_a_401_and_the_call_retried() {
    let allowed = Arc::new(Mutex::new("Bearer t1".to_string()));
    let accepted = allowed.clone();
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), move |req, _| {
        let good = accepted.lock().expect("no panic while held").clone();
        if req.header("authorization") == Some(good.as_str()) {
            Reply::json(200, pod("ci-1", "1"))
        } else {
            Reply::json(401, status_body(401, "Unauthorized", "Unauthorized"))
        }
    });
    let dir = service_account("t1");
    let port = server.addr.port().to_string();
    let client = Client::in_cluster_from("127.0.0.1", &port, &dir.0)
        .expect("in-cluster")
        .with_retry_policy(fast_retries());
    client.get_pod("ci", "ci-1").expect("t1 accepted");

    dir.write("token", b"t2");
    *allowed.lock().expect("no panic while held") = "Bearer t2".into();
    client.get_pod("ci", "ci-1").expect("t2 read after the 401");

    let sent: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_string))
        .collect();
    let expected = ["Bearer t1", "Bearer t1", "Bearer t2"].map(|t| Some(t.to_string()));
    assert_eq!(sent, expected);
}

#[test]
fn unauthorized_static_token_fails_without_retry() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |_, _| {
        Reply::json(401, status_body(401, "Unauthorized", "Unauthorized"))
    });
    let err = token_client(&server.url(), "bad")
        .get_pod("ci", "x")
        .expect_err("401");
    assert_eq!(err.status().map(|s| s.code), Some(401));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn forbidden_and_invalid_answers_are_surfaced_verbatim() {
    let forbidden = "pods is forbidden: User \"system:serviceaccount:ci:runner\" cannot create \
                     resource \"pods\" in API group \"\" in the namespace \"ci\"";
    let invalid = "Pod \"ci-1\" is invalid: spec.containers[0].image: Required value";
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), move |req, _| {
        if req.path().ends_with("/secrets") {
            Reply::json(422, status_body(422, "Invalid", invalid))
        } else {
            Reply::json(403, status_body(403, "Forbidden", forbidden))
        }
    });
    let client = token_client(&server.url(), "t");

    let err = client.create_pod("ci", &pod("ci-1", "")).expect_err("403");
    assert_eq!(
        err.to_string(),
        format!("create pod ci-1 in namespace ci: {forbidden} (http 403, Forbidden)")
    );
    let err = client
        .create_secret("ci", &json!({"metadata": {"name": "s"}}))
        .expect_err("422");
    assert_eq!(err.status().map(|s| s.message.as_str()), Some(invalid));
    assert_eq!(server.requests().len(), 2, "403 and 422 are not retried");
}

#[test]
fn reads_are_retried_on_500_and_429_honouring_retry_after() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |_, n| match n {
        0 => Reply::json(500, status_body(500, "InternalError", "etcd is sad")),
        1 => Reply::text(429, "Too many requests, please try again later.")
            .header("Retry-After", "1"),
        _ => Reply::json(200, pod("ci-1", "1")),
    });
    let started = Instant::now();
    let got = token_client(&server.url(), "t")
        .get_pod("ci", "ci-1")
        .expect("third try works");
    assert_eq!(got["metadata"]["name"], "ci-1");
    assert_eq!(server.requests().len(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
}

#[test]
fn plain_text_429_ends_with_its_code_and_text_after_the_last_try() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |_, _| {
        Reply::text(429, "Too many requests, please try again later.\n")
    });
    let err = token_client(&server.url(), "t")
        .list_pods("ci", "job=1")
        .expect_err("429");
    assert_eq!(
        err.to_string(),
        "list pods with labels job=1 in namespace ci: \
         Too many requests, please try again later. (http 429)"
    );
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn create_that_timed_out_is_looked_up_before_any_second_create() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |req, _| {
        match req.method.as_str() {
            "POST" => Reply::json(201, pod("ci-1", "7")).delayed(Duration::from_millis(1500)),
            _ => Reply::json(200, pod("ci-1", "7")),
        }
    });
    let client = token_client(&server.url(), "t")
        .with_timeouts(Duration::from_secs(2), Duration::from_millis(400));

    let created = client
        .create_pod("ci", &pod("ci-1", ""))
        .expect("found by the GET");
    assert_eq!(created["metadata"]["resourceVersion"], "7");
    let calls: Vec<_> = server
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path().to_string()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST".to_string(), "/api/v1/namespaces/ci/pods".to_string()),
            (
                "GET".to_string(),
                "/api/v1/namespaces/ci/pods/ci-1".to_string()
            ),
        ]
    );
}

#[test]
fn create_after_a_server_timeout_is_sent_again_when_the_get_finds_nothing() {
    let posts = Arc::new(Mutex::new(0));
    let counter = posts.clone();
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), move |req, _| {
        if req.method == "GET" {
            return Reply::json(404, status_body(404, "NotFound", "pods \"ci-1\" not found"));
        }
        let mut posts = counter.lock().expect("no panic while held");
        *posts += 1;
        match *posts {
            1 => Reply::json(
                504,
                status_body(
                    504,
                    "Timeout",
                    "the server was unable to return a response in the time allotted",
                ),
            ),
            _ => Reply::json(201, pod("ci-1", "3")),
        }
    });
    let created = token_client(&server.url(), "t")
        .create_pod("ci", &pod("ci-1", ""))
        .expect("second create");
    assert_eq!(created["metadata"]["resourceVersion"], "3");
    let methods: Vec<_> = server.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["POST", "GET", "POST"]);
}

#[test]
fn create_refused_by_flow_control_is_sent_again_without_a_lookup() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |_, n| match n {
        0 => Reply::text(429, "Too many requests").header("Retry-After", "0"),
        _ => Reply::json(201, pod("ci-1", "2")),
    });
    let client = token_client(&server.url(), "t");
    let created = client
        .create_pod("ci", &pod("ci-1", ""))
        .expect("second try");
    assert_eq!(created["metadata"]["resourceVersion"], "2");
    let methods: Vec<_> = server.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["POST", "POST"]);
}

#[test]
fn generate_name_create_of_unknown_outcome_is_found_by_its_labels() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |req, _| {
        match req.method.as_str() {
            "POST" => Reply::json(500, status_body(500, "InternalError", "etcd timeout")),
            _ => Reply::json(
                200,
                json!({"kind": "PodList", "items": [
                    {"metadata": {"name": "other-x1", "labels": {"job": "42"}}},
                    {"metadata": {"name": "runner-42-ab3cd", "labels": {"job": "42"}}}
                ]}),
            ),
        }
    });
    let new_pod = json!({"metadata": {"generateName": "runner-42-", "labels": {"job": "42"}}});
    let created = token_client(&server.url(), "t")
        .create_pod("ci", &new_pod)
        .expect("found");
    assert_eq!(created["metadata"]["name"], "runner-42-ab3cd");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].query("labelSelector").as_deref(),
        Some("job=42")
    );
}

#[test]
fn generate_name_create_without_labels_is_not_retried_after_an_unknown_outcome() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |_, _| {
        Reply::json(504, status_body(504, "Timeout", "timeout"))
    });
    let new_pod = json!({"metadata": {"generateName": "runner-"}});
    let err = token_client(&server.url(), "t")
        .create_pod("ci", &new_pod)
        .expect_err("unknown");
    assert_eq!(err.status().map(|s| s.code), Some(504));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn delete_of_a_missing_pod_is_done_and_asks_for_background_propagation() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |_, _| {
        Reply::json(404, status_body(404, "NotFound", "pods \"ci-1\" not found"))
    });
    let client = token_client(&server.url(), "t");
    client
        .delete_pod("ci", "ci-1", Some(0))
        .expect("404 means already gone");
    client
        .delete_secret("ci", "ci-1-registry")
        .expect("404 means already gone");

    let requests = server.requests();
    assert_eq!(requests[0].method, "DELETE");
    assert_eq!(
        requests[0].query("propagationPolicy").as_deref(),
        Some("Background")
    );
    assert_eq!(
        requests[0].query("gracePeriodSeconds").as_deref(),
        Some("0")
    );
    assert_eq!(
        requests[1].path(),
        "/api/v1/namespaces/ci/secrets/ci-1-registry"
    );
}

#[test]
fn lists_send_their_selectors_and_return_the_items() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |_, _| {
        Reply::json(
            200,
            json!({"items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}),
        )
    });
    let client = token_client(&server.url(), "t");
    let pods = client.list_pods("ci", "job=1,app=x").expect("list");
    assert_eq!(pods.len(), 2);
    let events = client.list_events("ci", "ci-1").expect("events");
    assert_eq!(events[1]["metadata"]["name"], "b");

    let requests = server.requests();
    assert_eq!(
        requests[0].query("labelSelector").as_deref(),
        Some("job=1,app=x")
    );
    assert_eq!(requests[1].path(), "/api/v1/namespaces/ci/events");
    assert_eq!(
        requests[1].query("fieldSelector").as_deref(),
        Some("involvedObject.kind=Pod,involvedObject.name=ci-1")
    );
}

#[test]
fn refused_connection_is_retried_then_names_the_url() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("addr").port()
    };
    let client = token_client(&format!("https://127.0.0.1:{port}"), "t");
    let err = client.get_pod("ci", "ci-1").expect_err("nobody listens");
    assert!(matches!(err, KubeError::Connect { .. }), "{err:?}");
    let expected =
        format!("cannot connect to https://127.0.0.1:{port}/api/v1/namespaces/ci/pods/ci-1: ");
    assert!(err.to_string().starts_with(&expected), "{err}");
}

#[test]
fn dropped_connection_on_create_is_looked_up_then_retried() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |req, n| {
        match (req.method.as_str(), n) {
            ("POST", 0) => Reply::hang_up(),
            ("GET", _) => Reply::json(404, status_body(404, "NotFound", "not found")),
            _ => Reply::json(201, pod("ci-1", "9")),
        }
    });
    let created = token_client(&server.url(), "t")
        .create_pod("ci", &pod("ci-1", ""))
        .expect("created");
    assert_eq!(created["metadata"]["resourceVersion"], "9");
    let methods: Vec<_> = server.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, ["POST", "GET", "POST"]);
}

#[test]
fn create_found_after_its_last_failed_try_is_a_success() {
    let server = ApiServer::start("127.0.0.1:0", server_tls(false), |req, n| {
        match (req.method.as_str(), n) {
            ("POST", _) => Reply::json(500, status_body(500, "InternalError", "etcd timeout")),
            // Not there after the first four tries, there after the fifth.
            ("GET", 9) => Reply::json(200, pod("ci-1", "11")),
            _ => Reply::json(404, status_body(404, "NotFound", "pods \"ci-1\" not found")),
        }
    });
    let client = token_client(&server.url(), "t");
    let created = client
        .create_pod("ci", &pod("ci-1", ""))
        .expect("found at last");
    assert_eq!(created["metadata"]["resourceVersion"], "11");
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 5);
}
