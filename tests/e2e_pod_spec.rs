//! The pod the cluster receives carries every `[runners.kubernetes]` setting, and the volumes
//! really mount; the namespace overwrite goes where the rule allows and nowhere else.

mod e2e_support;

use std::collections::BTreeMap;

use coordinator_sim::Dialect;
use e2e_support::{assert_failed, log_of, show, TempDir, World, NAMESPACE};
use kube_sim::SimOptions;
use serde_json::{json, Value};

const SETTINGS: &str = r#"    cpu_limit = "500m"
    memory_limit = "256Mi"
    cpu_request = "100m"
    memory_request = "64Mi"
    helper_memory_limit = "96Mi"
    service_cpu_request = "50m"
    privileged = true
    pull_policy = "if-not-present"
    image_pull_secrets = ["regcred"]
    helper_image = "registry.local/tools/helper:7"
    terminationGracePeriodSeconds = 7
    service_account = "builder"
    [runners.kubernetes.node_selector]
      disk = "ssd"
    [runners.kubernetes.pod_labels]
      team = "e2e"
      job = "$CI_JOB_NAME"
    [runners.kubernetes.pod_annotations]
      "example.com/owner" = "e2e-team"
    [[runners.kubernetes.volumes.pvc]]
      name = "cache-claim"
      mount_path = "/claim"
    [[runners.kubernetes.volumes.config_map]]
      name = "settings"
      mount_path = "/settings"
    [[runners.kubernetes.volumes.secret]]
      name = "creds"
      mount_path = "/creds"
    [[runners.kubernetes.volumes.empty_dir]]
      name = "scratch"
      mount_path = "/scratch"
"#;

const PIPELINE: &str = r#"{"shape": {"stage": "test",
    "services": [{"name": "alpine:3.20", "alias": "side", "command": ["sleep", "60"]}],
    "script": [
        "echo \"mode=$(cat /settings/mode)\"",
        "test \"$(cat /creds/password)\" = hunter2 && echo secret-mounted",
        "echo from-the-job > /out/written",
        "echo scratch-data > /scratch/x && cat /scratch/x",
        "touch /claim/used && echo claim-mounted"
    ]}}"#;

/// The body of the pod create the simulator received.
fn created_pod(world: &World) -> Value {
    world
        .kube
        .requests()
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/pods") && r.code == 201)
        .and_then(|r| serde_json::from_slice(&r.body).ok())
        .expect("a pod was created")
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["spec"]["containers"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("container {name} in {pod}"))
}

#[test]
fn every_pod_setting_reaches_the_cluster_and_volumes_mount() {
    let out = TempDir::new("out");
    let sim = SimOptions {
        node_labels: BTreeMap::from([("disk".to_string(), "ssd".to_string())]),
        ..SimOptions::default()
    };
    let kubernetes = format!(
        "{SETTINGS}    [[runners.kubernetes.volumes.host_path]]\n      name = \"out\"\n      \
         mount_path = \"/out\"\n      host_path = \"{}\"\n",
        out.path().display()
    );
    let world = World::start_with(Dialect::GitLab, sim, "", &kubernetes);
    let meta = |name: &str| json!({"name": name, "namespace": NAMESPACE});
    world
        .kube
        .put_object(
            "configmaps",
            json!({"metadata": meta("settings"), "data": {"mode": "fast"}}),
        )
        .expect("config map stored");
    world
        .kube
        .put_object(
            "secrets",
            json!({"metadata": meta("creds"), "data": {"password": "aHVudGVyMg=="}}),
        )
        .expect("secret stored");
    world
        .kube
        .put_object("persistentvolumeclaims", json!({"metadata": meta("cache-claim"),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
        .expect("claim stored");
    let repo = world.repo(&[("README", "e2e\n")]);
    let run = world.pipeline(PIPELINE, &repo);
    let output = world.run_single(1);
    let record = world.finished(run.job_id("shape").expect("job queued"));
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    assert!(log.contains("mode=fast\n"), "{log}");
    assert!(log.contains("secret-mounted\n"), "{log}");
    assert!(log.contains("scratch-data\n"), "{log}");
    assert!(log.contains("claim-mounted\n"), "{log}");
    let written = std::fs::read_to_string(out.path().join("written")).expect("host path written");
    assert_eq!(written, "from-the-job\n");

    let pod = created_pod(&world);
    let spec = &pod["spec"];
    assert_eq!(
        spec["hostAliases"],
        json!([{"ip": "127.0.0.1", "hostnames": ["side", "alpine"]}])
    );
    assert_eq!(spec["nodeSelector"], json!({"disk": "ssd"}));
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(spec["terminationGracePeriodSeconds"], json!(7));
    assert_eq!(spec["serviceAccountName"], json!("builder"));
    assert_eq!(pod["metadata"]["labels"]["team"], json!("e2e"));
    assert_eq!(pod["metadata"]["labels"]["job"], json!("shape"));
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/owner"],
        json!("e2e-team")
    );

    let build = container(&pod, "build");
    assert_eq!(build["image"], json!("alpine:3.20"));
    assert_eq!(build["imagePullPolicy"], json!("IfNotPresent"));
    assert_eq!(build["securityContext"]["privileged"], json!(true));
    assert_eq!(
        build["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"},
               "requests": {"cpu": "100m", "memory": "64Mi"}})
    );
    let helper = container(&pod, "helper");
    assert_eq!(helper["image"], json!("registry.local/tools/helper:7"));
    assert_eq!(helper["resources"]["limits"]["memory"], json!("96Mi"));
    let service = container(&pod, "svc-0");
    assert_eq!(service["resources"]["requests"]["cpu"], json!("50m"));
    assert_eq!(service["securityContext"]["privileged"], json!(true));

    let volumes = spec["volumes"].as_array().expect("volumes");
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name} in {volumes:?}"))
    };
    assert_eq!(
        volume("out")["hostPath"]["path"],
        json!(out.path().display().to_string())
    );
    assert_eq!(
        volume("cache-claim")["persistentVolumeClaim"]["claimName"],
        json!("cache-claim")
    );
    assert_eq!(volume("settings")["configMap"]["name"], json!("settings"));
    assert_eq!(volume("creds")["secret"]["secretName"], json!("creds"));
    assert!(volume("scratch")["emptyDir"].is_object());
    let mounts = build["volumeMounts"].as_array().expect("build mounts");
    for path in ["/out", "/claim", "/settings", "/creds", "/scratch"] {
        assert!(
            mounts.iter().any(|m| m["mountPath"] == path),
            "{path} not in {mounts:?}"
        );
    }
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

const OVERWRITE_RULE: &str = "    namespace_overwrite_allowed = \"ci-.*\"\n";

fn overwrite_pipeline(namespace: &str) -> String {
    format!(
        r#"{{"moved": {{"stage": "test",
            "variables": {{"KUBERNETES_NAMESPACE_OVERWRITE": "{namespace}"}},
            "script": ["echo ran-in-$KUBERNETES_NAMESPACE_OVERWRITE"]}}}}"#
    )
}

#[test]
fn namespace_overwrite_within_the_rule_moves_the_pod() {
    let world = World::start(Dialect::GitLab, "", OVERWRITE_RULE);
    let repo = world.repo(&[("README", "e2e\n")]);
    let run = world.pipeline(&overwrite_pipeline("ci-extra"), &repo);
    let output = world.run_single(1);
    let record = world.finished(run.job_id("moved").expect("job queued"));
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_eq!(record.reported_state.as_deref(), Some("success"), "{log}");
    assert!(
        log.contains("Using Kubernetes namespace: ci-extra"),
        "{log}"
    );
    let created = world
        .kube
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .expect("a pod create");
    assert_eq!(created.path, "/api/v1/namespaces/ci-extra/pods");
    assert!(world
        .kube
        .pods("ci-extra")
        .iter()
        .all(|p| p["metadata"]["deletionTimestamp"].is_string()));
}

#[test]
fn namespace_overwrite_outside_the_rule_is_rejected_before_any_pod() {
    let world = World::start(Dialect::GitLab, "", OVERWRITE_RULE);
    let repo = world.repo(&[("README", "e2e\n")]);
    let run = world.pipeline(&overwrite_pipeline("production"), &repo);
    let output = world.run_single(1);
    let record = world.finished(run.job_id("moved").expect("job queued"));
    let log = format!("{}\n{}", log_of(&record), show(&output));
    assert_failed(&record, "script_failure", &log);
    assert!(
        log.contains(
            "ERROR: Job failed: overwrite refused: KUBERNETES_NAMESPACE_OVERWRITE: provided value \"production\" \
             does not match \"ci-.*\""
        ),
        "{log}"
    );
    assert!(
        world.kube.requests().iter().all(|r| r.method != "POST"),
        "nothing created"
    );
}
