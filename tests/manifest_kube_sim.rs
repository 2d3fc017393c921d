//! The seed example's pod, created through the Kubernetes simulator's API with the runner's
//! own client (HTTPS and a bearer token): the API server accepts it and the pod runs.

mod manifest_support;

use std::collections::BTreeMap;
use std::time::Duration;

use alloy_runner::kube::Client;
use alloy_runner::secret::Secret;
use kube_sim::{Sim, SimOptions, TokenSpec};
use manifest_support::*;
use serde_json::{json, Value};

const KUBE_TOKEN: &str = "manifest-kube-token";
/// Bound on the wait for the pod to run (the simulator's kubelet starts it in well under 1 s).
const RUNNING_WITHIN: Duration = Duration::from_secs(30);

/// A simulator serving HTTPS with one admin token and a node the seed's selector matches.
fn start_kube() -> kube_sim::SimHandle {
    let options = SimOptions {
        tls: true,
        tokens: vec![TokenSpec::admin(
            KUBE_TOKEN,
            "system:serviceaccount:alloy:runner",
        )],
        node_labels: BTreeMap::from([("alloy".to_string(), "true".to_string())]),
        ..SimOptions::default()
    };
    Sim::start(options).expect("the kubernetes simulator starts")
}

/// The seed example runner pointed at the simulator: its URL, CA and a token in place of the
/// example's client certificate files, which do not exist here.
fn seed_runner_for(kube: &kube_sim::SimHandle) -> alloy_runner::config::RunnerConfig {
    let mut runner = seed_runner();
    let k8s = &mut runner.kubernetes;
    k8s.host = Some(kube.url());
    k8s.ca_file = kube.ca_pem_path();
    k8s.cert_file = None;
    k8s.key_file = None;
    k8s.bearer_token = Some(Secret::new(KUBE_TOKEN));
    runner
}

fn container_running(pod: &Value, name: &str) -> bool {
    let statuses = pod["status"]["containerStatuses"].as_array();
    statuses.into_iter().flatten().any(|status| {
        status["name"] == name && status["state"].get("running").is_some_and(Value::is_object)
    })
}

/// Creates the registry secrets, points the pod at their generated names, then creates the pod.
fn create_planned(client: &Client, plan: &alloy_runner::executor::manifest::PodPlan) -> String {
    let mut pod = plan.pod.clone();
    for secret in &plan.secrets {
        let created = client
            .create_secret(&plan.namespace, secret)
            .expect("the simulator accepts the registry secret");
        let planned = &secret["metadata"]["generateName"];
        let refs = pod["spec"]["imagePullSecrets"].as_array_mut();
        for entry in refs.into_iter().flatten().filter(|e| e["name"] == *planned) {
            entry["name"] = created["metadata"]["name"].clone();
        }
    }
    let created = client
        .create_pod(&plan.namespace, &pod)
        .unwrap_or_else(|err| panic!("the simulator refused the seed pod: {err}"));
    created["metadata"]["name"]
        .as_str()
        .expect("a created pod has a name")
        .to_string()
}

#[test]
fn the_kube_simulator_accepts_and_runs_the_seed_example_pod() {
    let kube = start_kube();
    let runner = seed_runner_for(&kube);
    let plan = plan_for(&runner, &fixture_job(), &[]);
    assert_eq!(plan.namespace, "alloy");
    let client = Client::from_config(&runner.kubernetes).expect("the runner's client builds");

    let name = create_planned(&client, &plan);
    assert!(
        name.starts_with("runner-kubernetes-runner-project-7-concurrent-0-"),
        "{name}"
    );
    let running = kube.wait_for_pod("alloy", &name, RUNNING_WITHIN, |pod| {
        pod.is_some_and(|pod| {
            pod["status"]["phase"] == "Running"
                && container_running(pod, "build")
                && container_running(pod, "helper")
        })
    });
    let pod = kube.pod("alloy", &name).unwrap_or(Value::Null);
    assert!(running, "the pod never ran: {:#}", pod["status"]);

    // Read back through the API, the pod keeps what the runner asked for.
    let read = client.get_pod("alloy", &name).expect("the pod is readable");
    assert_eq!(read["spec"]["nodeSelector"], json!({ "alloy": "true" }));
    let build = container(&read, "build");
    assert_eq!(build["securityContext"]["privileged"], true);
    assert_eq!(
        build["resources"]["limits"],
        json!({ "cpu": "1", "memory": "1Gi" })
    );
}
