//! The client's credentials against the simulator: client certificates, bearer tokens, the
//! in-cluster service account (and its rotating token), IPv6, and refusals shown verbatim.

mod kube_sim_support;

use std::net::SocketAddr;

use alloy_runner::config::KubernetesConfig;
use alloy_runner::kube::{Client, ExecError};
use kube_sim::{Rule, SimHandle, TokenSpec};
use kube_sim_support::{
    api_message, fast_retries, https_sim, request, run_exec, running_pod, service_account, shell,
    sleeping_pod, token_client, TempDir, NS, TOKEN,
};

fn port(sim: &SimHandle) -> String {
    sim.addr().port().to_string()
}

/// The users the simulator saw for `method` requests on `path`, with the answered codes.
fn seen(sim: &SimHandle, method: &str, path: &str) -> Vec<(String, u16)> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == method && r.path == path)
        .map(|r| (r.user, r.code))
        .collect()
}

#[test]
fn client_certificate_authenticates_over_tls_without_a_token() {
    let sim = https_sim(|o| {
        o.tokens.clear();
        o.client_cert_auth = true;
    });
    let (cert, key) = sim.client_cert_paths().expect("https sim");
    let cfg = KubernetesConfig {
        host: Some(sim.url()),
        ca_file: sim.ca_pem_path(),
        cert_file: Some(cert),
        key_file: Some(key),
        ..KubernetesConfig::default()
    };
    let client = Client::from_config(&cfg).expect("client builds");

    let created = client.create_pod(NS, &sleeping_pod("cert-pod")).unwrap();
    assert_eq!(created["metadata"]["name"], "cert-pod");
    let listed = client.list_pods(NS, "job=1").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        seen(&sim, "GET", "/api/v1/namespaces/ci/pods"),
        [("sim-admin".to_string(), 200)]
    );
}

#[test]
fn without_its_client_certificate_the_client_gets_401() {
    let sim = https_sim(|o| {
        o.tokens.clear();
        o.client_cert_auth = true;
    });
    let cfg = KubernetesConfig {
        host: Some(sim.url()),
        ca_file: sim.ca_pem_path(),
        ..KubernetesConfig::default()
    };
    let client = Client::from_config(&cfg)
        .unwrap()
        .with_retry_policy(fast_retries());

    let e = client.list_pods(NS, "job=1").unwrap_err();
    let (code, reason, message) = api_message(&e);
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );
}

#[test]
fn bearer_token_authenticates_as_its_user() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);

    assert!(client.list_pods(NS, "job=1").unwrap().is_empty());
    assert_eq!(
        seen(&sim, "GET", "/api/v1/namespaces/ci/pods"),
        [("system:serviceaccount:ci:runner".to_string(), 200)]
    );
}

#[test]
fn a_wrong_bearer_token_is_refused_with_401() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, "not-the-token");

    let e = client.get_pod(NS, "any").unwrap_err();
    assert_eq!(api_message(&e).0, 401);
    assert!(!e.to_string().contains("not-the-token"), "{e}");
}

#[test]
fn in_cluster_client_reads_host_port_token_ca_and_namespace() {
    let sim = https_sim(|_| {});
    let dir = TempDir::new("in-cluster");
    let folder = service_account(&dir, &sim, &format!("{TOKEN}\n"));

    let client = Client::in_cluster_from(" 127.0.0.1 ", &port(&sim), &folder).unwrap();
    assert_eq!(client.default_namespace().as_deref(), Some(NS));
    assert_eq!(client.base_url(), sim.url());
    let created = client.create_pod(NS, &sleeping_pod("sa-pod")).unwrap();
    assert_eq!(created["metadata"]["namespace"], NS);
    assert_eq!(
        seen(&sim, "POST", "/api/v1/namespaces/ci/pods"),
        [("system:serviceaccount:ci:runner".to_string(), 201)]
    );
}

// The kubelet rotates the projected token while a job runs: after the API server's 401 the
// client reads the file again, for REST calls and for exec alike.
#[test]
fn in_cluster_client_follows_a_rotated_token_file_mid_run() {
    let sim = https_sim(|_| {});
    let dir = TempDir::new("rotation");
    let folder = service_account(&dir, &sim, TOKEN);
    let client = Client::in_cluster_from("127.0.0.1", &port(&sim), &folder).unwrap();
    running_pod(&sim, &client, "rot");

    assert!(sim.rotate_token(TOKEN, "second-token"));
    dir.write("token", b"second-token\n");
    let pod = client.get_pod(NS, "rot").unwrap();
    assert_eq!(pod["status"]["phase"], "Running");
    let gets: Vec<u16> = seen(&sim, "GET", "/api/v1/namespaces/ci/pods/rot")
        .into_iter()
        .map(|(_, code)| code)
        .collect();
    assert_eq!(gets, [401, 200]);

    assert!(sim.rotate_token("second-token", "third-token"));
    dir.write("token", b"third-token");
    let run = run_exec(&client, &shell("rot", "echo still here"), None, None);
    assert_eq!(run.exit_code(), 0);
    assert_eq!(run.stdout, b"still here\n");
}

#[test]
fn in_cluster_client_without_a_host_is_no_cluster() {
    let dir = TempDir::new("no-host");
    let e = Client::in_cluster_from("", "443", &dir.0).unwrap_err();
    assert!(e.to_string().contains("KUBERNETES_SERVICE_HOST"), "{e}");
}

#[test]
fn ipv6_loopback_serves_rest_and_exec() {
    let sim = https_sim(|o| o.bind = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 0)));
    assert!(sim.url().starts_with("https://[::1]:"), "{}", sim.url());
    let client = token_client(&sim, TOKEN);
    running_pod(&sim, &client, "six");

    let run = run_exec(
        &client,
        &request("six", &["echo", "over", "v6"]),
        None,
        None,
    );
    assert_eq!(run.exit_code(), 0);
    assert_eq!(run.stdout, b"over v6\n");

    let dir = TempDir::new("in-cluster-v6");
    let folder = service_account(&dir, &sim, TOKEN);
    let in_cluster = Client::in_cluster_from("::1", &port(&sim), &folder).unwrap();
    assert_eq!(in_cluster.base_url(), sim.url());
    assert_eq!(in_cluster.list_pods(NS, "job=1").unwrap().len(), 1);
}

fn limited_sim(rules: Vec<Rule>) -> SimHandle {
    https_sim(|o| {
        o.tokens.push(TokenSpec {
            token: "limited".into(),
            user: "system:serviceaccount:ci:limited".into(),
            rules: Some(rules),
        })
    })
}

#[test]
fn forbidden_rest_call_shows_the_servers_message_verbatim() {
    let sim = limited_sim(vec![Rule::new(&["ci"], &["pods"], &["get"])]);
    let client = token_client(&sim, "limited");

    let e = client.list_pods(NS, "job=1").unwrap_err();
    let (code, reason, message) = api_message(&e);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    let expected = "pods is forbidden: User \"system:serviceaccount:ci:limited\" cannot list \
                    resource \"pods\" in API group \"\" in the namespace \"ci\"";
    assert_eq!(message, expected);
    assert!(e.to_string().contains(expected), "{e}");
}

// The WebSocket upgrade is a GET: the authorizer asks for `get` on pods/exec first.
#[test]
fn forbidden_exec_is_rejected_with_the_servers_message() {
    let sim = limited_sim(vec![Rule::new(&["ci"], &["pods"], &["*"])]);
    running_pod(&sim, &token_client(&sim, TOKEN), "locked");
    let client = token_client(&sim, "limited");

    let run = run_exec(&client, &request("locked", &["true"]), None, None);
    let status = match run.result {
        Err(ExecError::Rejected { status, .. }) => status,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "pods \"locked\" is forbidden: User \"system:serviceaccount:ci:limited\" cannot get \
         resource \"pods/exec\" in API group \"\" in the namespace \"ci\""
    );
}
