//! One test per config keyword or job field: its effect on the planned pod.

mod manifest_support;

use std::collections::BTreeMap;

use alloy_runner::config::{
    ConfigMapVolume, EmptyDirVolume, HostPathVolume, PullPolicy, PvcVolume, Resources, SecretVolume,
};
use alloy_runner::coordinator::job::{Credential, Image};
use alloy_runner::executor::base64;
use alloy_runner::executor::manifest::{owner_reference, use_created_secret, DEFAULT_HELPER_IMAGE};
use alloy_runner::secret::Secret;
use manifest_support::*;
use serde_json::{json, Value};

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["name"].as_str())
        .collect()
}

// --- Images and containers ---

#[test]
fn build_runs_the_jobs_image() {
    let plan = plan_for(&full_runner(), &fixture_job(), &[]);
    assert_eq!(container(&plan.pod, "build")["image"], "elixir:1.6");
}

#[test]
fn build_falls_back_to_the_configured_image() {
    let mut job = fixture_job();
    job.image = Some(Image {
        name: " ".into(),
        ..Default::default()
    });
    let plan = plan_for(&full_runner(), &job, &[]);
    assert_eq!(container(&plan.pod, "build")["image"], "alpine:3.20");
}

#[test]
fn no_image_anywhere_is_an_error_saying_so() {
    let mut job = fixture_job();
    job.image = None;
    let message = plan_error(&seed_runner(), &job, &[]);
    assert!(message.contains("no build image"), "{message}");
    assert!(
        message.contains("sets no [runners.kubernetes] image"),
        "{message}"
    );
}

#[test]
fn helper_uses_the_default_image_unless_configured() {
    let plan = plan_for(&seed_runner(), &fixture_job(), &[]);
    assert_eq!(
        container(&plan.pod, "helper")["image"],
        DEFAULT_HELPER_IMAGE
    );
    let plan = plan_for(&full_runner(), &fixture_job(), &[]);
    assert_eq!(
        container(&plan.pod, "helper")["image"],
        "registry.example.com/alloy/helper:1"
    );
}

#[test]
fn containers_are_build_helper_then_one_per_service() {
    let plan = plan_for(&seed_runner(), &fixture_job(), &[]);
    assert_eq!(
        names(&plan.pod["spec"]["containers"]),
        ["build", "helper", "svc-0", "svc-1"]
    );
    assert_eq!(plan.pod["spec"]["restartPolicy"], "Never");
}

#[test]
fn build_and_helper_idle_in_a_shell_that_ends_on_term() {
    let plan = plan_for(&seed_runner(), &fixture_job(), &[]);
    for name in ["build", "helper"] {
        let command = &container(&plan.pod, name)["command"];
        assert_eq!(command[0], "sh");
        assert_eq!(command[1], "-c");
        let script = command[2].as_str().unwrap_or_default();
        assert!(
            script.contains("trap") && script.contains("TERM"),
            "{script}"
        );
        assert!(
            !script.contains("$("),
            "Kubernetes would expand $(...): {script}"
        );
    }
}

#[test]
fn build_image_entrypoint_is_reported_as_unused() {
    let mut job = fixture_job();
    job.image = Some(Image {
        name: "elixir:1.6".into(),
        entrypoint: vec!["/bin/bash".into()],
        ..Default::default()
    });
    let plan = plan_for(&seed_runner(), &job, &[]);
    assert_eq!(container(&plan.pod, "build")["command"][0], "sh");
    assert!(
        plan.notices
            .iter()
            .any(|n| n.contains("entrypoint is not used")),
        "{:?}",
        plan.notices
    );
}

#[test]
fn service_entrypoint_becomes_command_and_command_becomes_args() {
    let plan = plan_for(&seed_runner(), &fixture_job(), &[]);
    let redis = container(&plan.pod, "svc-1");
    assert_eq!(redis["image"], "redis:4");
    assert_eq!(redis["command"], json!(["/entry.sh"]));
    assert_eq!(redis["args"], json!(["redis-server"]));
    let postgres = container(&plan.pod, "svc-0");
    assert!(postgres.get("command").is_none() && postgres.get("args").is_none());
}

#[test]
fn service_aliases_and_image_names_resolve_to_localhost() {
    let mut job = fixture_job();
    job.services.push(Image {
        name: "tutum/influxdb:1.8".into(),
        ..Default::default()
    });
    let plan = plan_for(&seed_runner(), &job, &[]);
    assert_eq!(
        plan.pod["spec"]["hostAliases"],
        json!([{ "ip": "127.0.0.1", "hostnames": ["postgres", "cache", "redis", "tutum-influxdb"] }])
    );
}

#[test]
fn a_job_without_services_has_no_host_aliases() {
    let plan = plan_for(&minimal_runner(), &bare_job(), &[]);
    assert!(plan.pod["spec"].get("hostAliases").is_none());
}

#[test]
fn two_services_of_one_image_are_refused_before_they_fight_over_a_port() {
    let mut job = fixture_job();
    job.services.push(Image {
        name: "library/postgres:10".into(),
        ..Default::default()
    });
    let message = plan_error(&seed_runner(), &job, &[]);
    assert!(
        message.contains("services svc-0 and svc-2 both run library/postgres:10"),
        "{message}"
    );
    assert!(message.contains("same port"), "{message}");
}

#[test]
fn two_images_known_to_listen_on_one_port_are_refused() {
    let mut job = fixture_job();
    job.services = vec![
        Image {
            name: "mysql:8".into(),
            ..Default::default()
        },
        Image {
            name: "docker.io/library/mariadb:11".into(),
            ..Default::default()
        },
    ];
    let message = plan_error(&seed_runner(), &job, &[]);
    assert_eq!(
        message,
        "services svc-0 (mysql:8) and svc-1 (docker.io/library/mariadb:11) would both listen \
         on port 3306: the containers of a pod share one network"
    );
}

#[test]
fn the_same_image_with_another_command_may_run_twice() {
    let mut job = fixture_job();
    job.services.push(Image {
        name: "redis:4".into(),
        alias: Some("cache2".into()),
        command: vec!["redis-server".into(), "--port".into(), "6380".into()],
        entrypoint: vec!["/entry.sh".into()],
    });
    let plan = plan_for(&seed_runner(), &job, &[]);
    assert_eq!(container(&plan.pod, "svc-2")["args"][2], "6380");
}

#[test]
fn an_alias_that_is_no_host_name_is_refused() {
    let mut job = fixture_job();
    job.services[1].alias = Some("my_cache".into());
    let message = plan_error(&seed_runner(), &job, &[]);
    assert!(
        message.contains("service svc-1: alias \"my_cache\""),
        "{message}"
    );
}

#[test]
fn a_service_without_an_image_is_refused() {
    let mut job = fixture_job();
    job.services[0].name = String::new();
    assert_eq!(
        plan_error(&seed_runner(), &job, &[]),
        "service 0 of the job names no image"
    );
}

// --- Resources, security, scheduling ---

#[test]
fn each_resource_key_sets_exactly_its_own_field() {
    type Set = fn(&mut Resources);
    let keys: [(&str, Set, &str, &str); 4] = [
        (
            "cpu_limit",
            |r| r.cpu_limit = quantity("3"),
            "limits",
            "cpu",
        ),
        (
            "memory_limit",
            |r| r.memory_limit = quantity("3Gi"),
            "limits",
            "memory",
        ),
        (
            "cpu_request",
            |r| r.cpu_request = quantity("3"),
            "requests",
            "cpu",
        ),
        (
            "memory_request",
            |r| r.memory_request = quantity("3Gi"),
            "requests",
            "memory",
        ),
    ];
    let kinds = [("", "build"), ("service_", "svc-0"), ("helper_", "helper")];
    for (prefix, container_name) in kinds {
        for (key, set, section, resource) in keys {
            let mut runner = minimal_runner();
            let target = match prefix {
                "" => &mut runner.kubernetes.build_resources,
                "service_" => &mut runner.kubernetes.service_resources,
                _ => &mut runner.kubernetes.helper_resources,
            };
            set(target);
            let plan = plan_for(&runner, &fixture_job(), &[]);
            let expected = if resource == "cpu" { "3" } else { "3Gi" };
            let resources = &container(&plan.pod, container_name)["resources"];
            assert_eq!(
                resources,
                &json!({ section: { resource: expected } }),
                "{prefix}{key} on {container_name}"
            );
            for other in ["build", "helper", "svc-0"]
                .iter()
                .filter(|c| **c != container_name)
            {
                let untouched = container(&plan.pod, other);
                assert!(
                    untouched.get("resources").is_none(),
                    "{prefix}{key} leaked into {other}"
                );
            }
        }
    }
}

#[test]
fn privileged_applies_to_build_and_services_only() {
    let plan = plan_for(&seed_runner(), &fixture_job(), &[]);
    for name in ["build", "svc-0", "svc-1"] {
        assert_eq!(
            container(&plan.pod, name)["securityContext"],
            json!({ "privileged": true })
        );
    }
    assert!(container(&plan.pod, "helper")
        .get("securityContext")
        .is_none());

    let plan = plan_for(&minimal_runner(), &fixture_job(), &[]);
    assert!(container(&plan.pod, "build")
        .get("securityContext")
        .is_none());
}

#[test]
fn pull_policy_goes_to_every_container_and_is_absent_when_unset() {
    for policy in [
        PullPolicy::Never,
        PullPolicy::IfNotPresent,
        PullPolicy::Always,
    ] {
        let mut runner = minimal_runner();
        runner.kubernetes.pull_policy = Some(policy);
        let plan = plan_for(&runner, &fixture_job(), &[]);
        for c in plan.pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(c["imagePullPolicy"], policy.as_kubernetes());
        }
    }
    let plan = plan_for(&minimal_runner(), &fixture_job(), &[]);
    for c in plan.pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert!(c.get("imagePullPolicy").is_none());
    }
}

#[test]
fn node_selector_is_copied() {
    let plan = plan_for(&seed_runner(), &fixture_job(), &[]);
    assert_eq!(plan.pod["spec"]["nodeSelector"], json!({ "alloy": "true" }));
    let plan = plan_for(&minimal_runner(), &bare_job(), &[]);
    assert!(plan.pod["spec"].get("nodeSelector").is_none());
}

#[test]
fn a_node_selector_kubernetes_would_reject_is_named() {
    let mut runner = minimal_runner();
    runner.kubernetes.node_selector = BTreeMap::from([("disk".into(), "fast ssd".into())]);
    let message = plan_error(&runner, &bare_job(), &[]);
    assert_eq!(
        message,
        "node_selector \"disk\" = \"fast ssd\" is not a valid label key and value"
    );
}

#[test]
fn image_pull_secrets_are_referenced_by_name() {
    let mut runner = minimal_runner();
    runner.kubernetes.image_pull_secrets = vec!["one".into(), "two".into()];
    let plan = plan_for(&runner, &bare_job(), &[]);
    assert_eq!(
        plan.pod["spec"]["imagePullSecrets"],
        json!([{ "name": "one" }, { "name": "two" }])
    );
    let plan = plan_for(&minimal_runner(), &bare_job(), &[]);
    assert!(plan.pod["spec"].get("imagePullSecrets").is_none());
}

#[test]
fn termination_grace_period_is_set_only_when_configured() {
    let mut runner = minimal_runner();
    runner.kubernetes.termination_grace_period_seconds = Some(0);
    let plan = plan_for(&runner, &bare_job(), &[]);
    assert_eq!(plan.pod["spec"]["terminationGracePeriodSeconds"], 0);
    let plan = plan_for(&minimal_runner(), &bare_job(), &[]);
    assert!(plan.pod["spec"]
        .get("terminationGracePeriodSeconds")
        .is_none());
}

#[test]
fn service_account_becomes_the_pods() {
    let plan = plan_for(&full_runner(), &bare_job(), &[]);
    assert_eq!(plan.pod["spec"]["serviceAccountName"], "ci-runner");
    let plan = plan_for(&minimal_runner(), &bare_job(), &[]);
    assert!(plan.pod["spec"].get("serviceAccountName").is_none());
}

#[test]
fn active_deadline_is_the_job_timeout_plus_a_minute() {
    let mut job = bare_job();
    job.timeout_secs = 5;
    let plan = plan_for(&minimal_runner(), &job, &[]);
    assert_eq!(plan.pod["spec"]["activeDeadlineSeconds"], 65);
}

#[test]
fn namespace_comes_from_the_config() {
    let plan = plan_for(&seed_runner(), &fixture_job(), &[]);
    assert_eq!(plan.namespace, "alloy");
    assert_eq!(plan.pod["metadata"]["namespace"], "alloy");
    assert_eq!(plan.secrets[0]["metadata"]["namespace"], "alloy");
}

// --- Volumes ---

fn mounts_of(pod: &Value, name: &str) -> Vec<(String, String, bool)> {
    let mounts = container(pod, name)["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    mounts
        .iter()
        .map(|m| {
            let text = |key: &str| m[key].as_str().unwrap_or_default().to_string();
            (text("name"), text("mountPath"), m["readOnly"] == true)
        })
        .collect()
}

fn volume<'a>(pod: &'a Value, name: &str) -> &'a Value {
    let volumes = pod["spec"]["volumes"]
        .as_array()
        .expect("the pod has volumes");
    volumes
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

#[test]
fn the_runners_own_volumes_hold_the_builds_dir_and_the_scripts() {
    let plan = plan_for(&minimal_runner(), &bare_job(), &[]);
    assert_eq!(volume(&plan.pod, "repo")["emptyDir"], json!({}));
    assert_eq!(volume(&plan.pod, "scripts")["emptyDir"], json!({}));
    let expected = vec![
        ("repo".to_string(), "/builds".to_string(), false),
        (
            "scripts".to_string(),
            "/alloy-runner/scripts".to_string(),
            false,
        ),
    ];
    assert_eq!(mounts_of(&plan.pod, "build"), expected);
    assert_eq!(mounts_of(&plan.pod, "helper"), expected);
}

#[test]
fn services_get_the_builds_dir_but_not_the_scripts() {
    let plan = plan_for(&minimal_runner(), &fixture_job(), &[]);
    assert_eq!(
        mounts_of(&plan.pod, "svc-0"),
        vec![("repo".into(), "/builds".into(), false)]
    );
}

#[test]
fn host_path_volume_uses_its_host_path_and_read_only() {
    let mut runner = minimal_runner();
    runner.kubernetes.volumes.host_path.push(HostPathVolume {
        name: "docker".into(),
        mount_path: "/var/run/docker.sock".into(),
        host_path: "/run/docker.sock".into(),
        read_only: true,
    });
    let plan = plan_for(&runner, &fixture_job(), &[]);
    assert_eq!(
        volume(&plan.pod, "docker")["hostPath"],
        json!({ "path": "/run/docker.sock" })
    );
    let mount = (
        "docker".to_string(),
        "/var/run/docker.sock".to_string(),
        true,
    );
    for name in ["build", "helper", "svc-0"] {
        assert!(mounts_of(&plan.pod, name).contains(&mount), "{name}");
    }
}

#[test]
fn two_pvc_entries_of_one_claim_are_one_volume_mounted_twice() {
    let mut runner = minimal_runner();
    for (path, read_only) in [("/a", false), ("/b", true)] {
        runner.kubernetes.volumes.pvc.push(PvcVolume {
            name: "data".into(),
            mount_path: path.into(),
            read_only,
        });
    }
    let plan = plan_for(&runner, &bare_job(), &[]);
    assert_eq!(
        names(&plan.pod["spec"]["volumes"]),
        ["repo", "scripts", "data"]
    );
    assert_eq!(
        volume(&plan.pod, "data")["persistentVolumeClaim"],
        json!({ "claimName": "data" })
    );
    let mounts = mounts_of(&plan.pod, "build");
    assert!(mounts.contains(&("data".into(), "/a".into(), false)));
    assert!(mounts.contains(&("data".into(), "/b".into(), true)));
}

#[test]
fn config_map_volume_maps_items_to_paths() {
    let mut runner = minimal_runner();
    runner.kubernetes.volumes.config_map.push(ConfigMapVolume {
        name: "settings".into(),
        mount_path: "/etc/app".into(),
        read_only: true,
        items: BTreeMap::from([("app.toml".into(), "conf/app.toml".into())]),
    });
    let plan = plan_for(&runner, &bare_job(), &[]);
    assert_eq!(
        volume(&plan.pod, "settings")["configMap"],
        json!({ "name": "settings", "items": [{ "key": "app.toml", "path": "conf/app.toml" }] })
    );
    assert!(mounts_of(&plan.pod, "build").contains(&("settings".into(), "/etc/app".into(), true)));
}

#[test]
fn secret_volume_without_items_mounts_every_key() {
    let mut runner = minimal_runner();
    runner.kubernetes.volumes.secret.push(SecretVolume {
        name: "certs".into(),
        mount_path: "/certs".into(),
        read_only: false,
        items: BTreeMap::new(),
    });
    let plan = plan_for(&runner, &bare_job(), &[]);
    assert_eq!(
        volume(&plan.pod, "certs")["secret"],
        json!({ "secretName": "certs" })
    );
}

#[test]
fn empty_dir_volume_keeps_its_medium() {
    let mut runner = minimal_runner();
    for (name, medium) in [("ram", "Memory"), ("disk", "")] {
        runner.kubernetes.volumes.empty_dir.push(EmptyDirVolume {
            name: name.into(),
            mount_path: format!("/{name}"),
            medium: medium.into(),
        });
    }
    let plan = plan_for(&runner, &bare_job(), &[]);
    assert_eq!(
        volume(&plan.pod, "ram")["emptyDir"],
        json!({ "medium": "Memory" })
    );
    assert_eq!(volume(&plan.pod, "disk")["emptyDir"], json!({}));
}

#[test]
fn a_volume_may_not_take_the_runners_own_names() {
    let mut runner = minimal_runner();
    runner.kubernetes.volumes.empty_dir.push(EmptyDirVolume {
        name: "scripts".into(),
        mount_path: "/x".into(),
        medium: String::new(),
    });
    let message = plan_error(&runner, &bare_job(), &[]);
    assert_eq!(
        message,
        "volume name \"scripts\" is used by the runner itself"
    );
}

#[test]
fn a_volume_name_kubernetes_would_reject_is_named() {
    let mut runner = minimal_runner();
    runner.kubernetes.volumes.empty_dir.push(EmptyDirVolume {
        name: "empty_dir".into(),
        mount_path: "/x".into(),
        medium: String::new(),
    });
    let message = plan_error(&runner, &bare_job(), &[]);
    assert!(
        message.starts_with("volume name \"empty_dir\" is not valid"),
        "{message}"
    );
}

#[test]
fn one_name_with_two_sources_is_refused() {
    let mut runner = minimal_runner();
    runner.kubernetes.volumes.pvc.push(PvcVolume {
        name: "data".into(),
        mount_path: "/a".into(),
        read_only: false,
    });
    runner.kubernetes.volumes.empty_dir.push(EmptyDirVolume {
        name: "data".into(),
        mount_path: "/b".into(),
        medium: String::new(),
    });
    let message = plan_error(&runner, &bare_job(), &[]);
    assert_eq!(
        message,
        "volume \"data\" is defined twice with different sources"
    );
}

#[test]
fn two_volumes_at_one_path_are_refused() {
    let mut runner = minimal_runner();
    runner.kubernetes.volumes.empty_dir.push(EmptyDirVolume {
        name: "cache".into(),
        mount_path: "/builds/".into(),
        medium: String::new(),
    });
    let message = plan_error(&runner, &bare_job(), &[]);
    assert_eq!(
        message,
        "volumes \"repo\" and \"cache\" are both mounted at \"/builds/\""
    );
}

// --- Environment ---

fn env_of(pod: &Value, name: &str) -> Vec<(String, String)> {
    let env = container(pod, name)["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    env.iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().into(),
                e["value"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

#[test]
fn public_variables_reach_build_and_services_with_dollars_doubled() {
    let extra = [
        var("PRICE", "$5 $(HOME) $$"),
        secret_var("PASSWORD", "hunter2"),
    ];
    let plan = plan_for(&minimal_runner(), &fixture_job(), &extra);
    for name in ["build", "svc-0", "svc-1"] {
        let env = env_of(&plan.pod, name);
        assert!(
            env.contains(&("PRICE".into(), "$$5 $$(HOME) $$$$".into())),
            "{name}: {env:?}"
        );
        assert!(env.contains(&("MIX_ENV".into(), "test".into())), "{name}");
        assert!(
            !env.iter()
                .any(|(key, _)| key == "PASSWORD" || key == "CI_JOB_TOKEN"),
            "{name}"
        );
        assert!(
            !env.iter().any(|(key, _)| key == "DEPLOY_KEY"),
            "file variables stay in the script"
        );
    }
    assert!(container(&plan.pod, "helper").get("env").is_none());
}

#[test]
fn the_later_of_two_variables_wins_even_when_it_is_secret() {
    let extra = [
        var("MIX_ENV", "prod"),
        var("LEVEL", "1"),
        secret_var("LEVEL", "2"),
    ];
    let plan = plan_for(&minimal_runner(), &bare_job(), &extra);
    let env = env_of(&plan.pod, "build");
    assert!(!env.iter().any(|(key, _)| key == "LEVEL"), "{env:?}");
    let mix: Vec<_> = env.iter().filter(|(key, _)| key == "MIX_ENV").collect();
    assert_eq!(mix, [&("MIX_ENV".to_string(), "prod".to_string())]);
}

#[test]
fn a_variable_kubernetes_cannot_name_is_left_out_with_a_notice() {
    let plan = plan_for(
        &minimal_runner(),
        &bare_job(),
        &[var("1ST", "x"), var("A=B", "y")],
    );
    let env = env_of(&plan.pod, "build");
    assert!(
        !env.iter().any(|(key, _)| key == "1ST" || key == "A=B"),
        "{env:?}"
    );
    assert_eq!(
        plan.notices
            .iter()
            .filter(|n| n.contains("left out"))
            .count(),
        2
    );
}

// --- Names, labels, annotations ---

#[test]
fn pod_name_is_generated_from_runner_project_and_slot() {
    let runner = seed_runner();
    let job = fixture_job();
    let variables = variables_for(&job);
    let input = alloy_runner::executor::manifest::PodInput {
        runner: &runner,
        job: &job,
        variables: &variables,
        concurrent_id: 3,
    };
    let plan = alloy_runner::executor::manifest::plan_pod(&input).expect("the seed plans");
    assert_eq!(
        plan.pod["metadata"]["generateName"],
        "runner-kubernetes-runner-project-7-concurrent-3-"
    );
    assert!(plan.pod["metadata"].get("name").is_none());
    assert_eq!(schema_errors(&plan.pod), Vec::<String>::new());
}

#[test]
fn a_long_runner_name_is_cut_so_the_name_fits_58_characters() {
    let mut runner = minimal_runner();
    runner.name = "A Very Long Runner Name For The Build Farm In Building 7".into();
    let mut job = bare_job();
    job.job_info.project_id = 123_456_789;
    let plan = plan_for(&runner, &job, &[]);
    let name = plan.pod["metadata"]["generateName"]
        .as_str()
        .unwrap_or_default();
    assert!(name.len() <= 58, "{name} has {} characters", name.len());
    assert!(
        name.starts_with("runner-a-very-long-")
            && name.ends_with("-project-123456789-concurrent-0-")
    );
    assert!(!name.contains("--"), "{name}");
}

#[test]
fn a_runner_without_a_name_leaves_the_slug_out() {
    let mut runner = minimal_runner();
    runner.name = String::new();
    let plan = plan_for(&runner, &bare_job(), &[]);
    assert_eq!(
        plan.pod["metadata"]["generateName"],
        "runner-project-3-concurrent-0-"
    );
    assert_eq!(plan.pod["metadata"]["labels"]["alloy-runner.io/runner"], "");
}

#[test]
fn runner_labels_and_annotations_identify_the_job() {
    let plan = plan_for(&seed_runner(), &fixture_job(), &[]);
    let metadata = &plan.pod["metadata"];
    assert_eq!(
        metadata["labels"],
        json!({
            "alloy-runner.io/runner": "Kubernetes_Runner",
            "alloy-runner.io/project-id": "7",
            "alloy-runner.io/job-id": "1234",
            "alloy-runner.io/managed": "true",
        })
    );
    assert_eq!(
        metadata["annotations"]["alloy-runner.io/job-sha"],
        "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0"
    );
    assert_eq!(
        metadata["annotations"]["alloy-runner.io/job-name"],
        "mix test"
    );
    assert_eq!(metadata["annotations"]["alloy-runner.io/job-ref"], "main");
}

#[test]
fn pod_label_from_a_branch_variable_is_sanitised() {
    let mut runner = minimal_runner();
    runner.kubernetes.pod_labels = BTreeMap::from([
        ("branch".into(), "$CI_COMMIT_REF_NAME".into()),
        ("edge".into(), "--label-".into()),
        ("missing".into(), "${NOT_SET}".into()),
    ]);
    let plan = plan_for(
        &runner,
        &bare_job(),
        &[var("CI_COMMIT_REF_NAME", "feature/foo@bar")],
    );
    let labels = &plan.pod["metadata"]["labels"];
    assert_eq!(labels["branch"], "feature_foo_bar");
    assert_eq!(labels["edge"], "label");
    assert_eq!(labels["missing"], "");
}

#[test]
fn pod_label_values_are_cut_to_63_characters() {
    let mut runner = minimal_runner();
    runner.kubernetes.pod_labels = BTreeMap::from([("long".into(), "$LONG".into())]);
    let long = format!("{}/{}", "x".repeat(62), "y".repeat(20));
    let plan = plan_for(&runner, &bare_job(), &[var("LONG", &long)]);
    assert_eq!(plan.pod["metadata"]["labels"]["long"], "x".repeat(62));
}

#[test]
fn an_invalid_label_key_is_named_in_the_error() {
    let mut runner = minimal_runner();
    runner.kubernetes.pod_labels = BTreeMap::from([("team name".into(), "a".into())]);
    let message = plan_error(&runner, &bare_job(), &[]);
    assert!(
        message.starts_with("pod label key \"team name\" is not valid"),
        "{message}"
    );
}

#[test]
fn users_may_not_set_keys_under_the_runners_prefix() {
    let mut runner = minimal_runner();
    runner.kubernetes.pod_labels = BTreeMap::from([("alloy-runner.io/job-id".into(), "1".into())]);
    let message = plan_error(&runner, &bare_job(), &[]);
    assert_eq!(
        message,
        "pod label key \"alloy-runner.io/job-id\" is reserved for the runner (alloy-runner.io/)"
    );

    let mut runner = minimal_runner();
    runner.kubernetes.pod_annotations = BTreeMap::from([("alloy-runner.io/x".into(), "1".into())]);
    let message = plan_error(&runner, &bare_job(), &[]);
    assert!(
        message.starts_with("pod annotation key \"alloy-runner.io/x\" is reserved"),
        "{message}"
    );
}

#[test]
fn a_secret_variable_never_reaches_pod_metadata() {
    let mut runner = minimal_runner();
    runner.kubernetes.pod_annotations =
        BTreeMap::from([("token".into(), "t-$CI_JOB_TOKEN".into())]);
    let message = plan_error(
        &runner,
        &bare_job(),
        &[secret_var("CI_JOB_TOKEN", "abc123")],
    );
    assert!(
        message.contains("refers to variable CI_JOB_TOKEN, which is not public"),
        "{message}"
    );
    assert!(!message.contains("abc123"));
}

#[test]
fn pod_annotations_expand_variables_without_sanitising() {
    let mut runner = minimal_runner();
    runner.kubernetes.pod_annotations = BTreeMap::from([(
        "example.com/ref".into(),
        "ref: ${CI_COMMIT_REF_NAME}!".into(),
    )]);
    let plan = plan_for(
        &runner,
        &bare_job(),
        &[var("CI_COMMIT_REF_NAME", "feature/foo@bar")],
    );
    assert_eq!(
        plan.pod["metadata"]["annotations"]["example.com/ref"],
        "ref: feature/foo@bar!"
    );
}

#[test]
fn annotations_over_256_kib_are_refused() {
    let mut runner = minimal_runner();
    runner.kubernetes.pod_annotations = BTreeMap::from([("big".into(), "$BIG".into())]);
    let message = plan_error(&runner, &bare_job(), &[var("BIG", &"x".repeat(300 * 1024))]);
    assert!(message.starts_with("pod annotations take "), "{message}");
}

// --- Layout ---

#[test]
fn project_dir_is_the_builds_dir_plus_the_repository_path() {
    let plan = plan_for(&minimal_runner(), &fixture_job(), &[]);
    assert_eq!(plan.layout.builds_dir, "/builds");
    assert_eq!(plan.layout.project_dir, "/builds/acme/my_app");
    assert_eq!(plan.layout.scripts_dir, "/alloy-runner/scripts");
    assert_eq!(
        plan.layout.helper_bin,
        "/alloy-runner/scripts/bin/alloy-runner"
    );
}

#[test]
fn builds_dir_from_the_config_moves_the_repo_volume() {
    let mut runner = minimal_runner();
    runner.builds_dir = "/ci/work/".into();
    let mut job = bare_job();
    job.git_info.repo_url = Secret::new("git@git.example.com:group/../x/./tool.git");
    let plan = plan_for(&runner, &job, &[]);
    assert_eq!(plan.layout.project_dir, "/ci/work/group/x/tool");
    assert!(mounts_of(&plan.pod, "build").contains(&("repo".into(), "/ci/work".into(), false)));
}

#[test]
fn a_repository_url_without_a_path_uses_the_project_id() {
    let mut job = bare_job();
    job.git_info.repo_url = Secret::new("https://git.example.com/");
    let plan = plan_for(&minimal_runner(), &job, &[]);
    assert_eq!(plan.layout.project_dir, "/builds/project-3");
}

// --- Registry credentials ---

#[test]
fn registry_logins_become_a_docker_config_secret_the_pod_pulls_with() {
    let mut job = fixture_job();
    job.credentials.push(Credential {
        kind: "other".into(),
        url: "x".into(),
        username: "u".into(),
        password: Secret::new("p"),
    });
    let plan = plan_for(&seed_runner(), &job, &[]);
    assert_eq!(plan.secrets.len(), 1);
    let secret = &plan.secrets[0];
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(secret["metadata"]["labels"], plan.pod["metadata"]["labels"]);

    let auth = base64::encode(b"gitlab-ci-token:3Jd9a0QkLw2ZpA");
    let config = json!({ "auths": { "registry.example.com": {
        "username": "gitlab-ci-token", "password": "3Jd9a0QkLw2ZpA", "auth": auth,
    } } });
    assert_eq!(
        secret["data"][".dockerconfigjson"],
        base64::encode(config.to_string().as_bytes())
    );

    let placeholder = secret["metadata"]["generateName"].clone();
    assert_eq!(
        plan.pod["spec"]["imagePullSecrets"],
        json!([{ "name": placeholder }])
    );
}

#[test]
fn the_created_secret_name_replaces_the_placeholder() {
    let plan = plan_for(&full_runner(), &fixture_job(), &[]);
    let mut pod = plan.pod.clone();
    use_created_secret(
        &mut pod,
        &plan.secrets[0],
        "runner-kubernetes-runner-project-7-concurrent-0-x7k2p",
    );
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{ "name": "registry-login" }, { "name": "runner-kubernetes-runner-project-7-concurrent-0-x7k2p" }])
    );
}

#[test]
fn a_job_without_registry_logins_creates_no_secret() {
    let plan = plan_for(&minimal_runner(), &bare_job(), &[]);
    assert!(plan.secrets.is_empty());
}

#[test]
fn owner_reference_points_at_the_created_pod() {
    let created = json!({ "metadata": { "name": "runner-x-abcde", "uid": "1f2e-33" } });
    assert_eq!(
        owner_reference(&created),
        Some(
            json!({ "apiVersion": "v1", "kind": "Pod", "name": "runner-x-abcde", "uid": "1f2e-33" })
        )
    );
    assert_eq!(
        owner_reference(&json!({ "metadata": { "name": "runner-x" } })),
        None
    );
}

#[test]
fn debug_output_of_a_plan_hides_registry_passwords() {
    let plan = plan_for(&seed_runner(), &fixture_job(), &[]);
    let shown = format!("{plan:?}");
    assert!(!shown.contains("3Jd9a0QkLw2ZpA") && !shown.contains(".dockerconfigjson"));
}

// --- The schema check itself ---

#[test]
fn the_validation_catches_unknown_fields_and_wrong_types() {
    let mut pod = plan_for(&minimal_runner(), &bare_job(), &[]).pod;
    pod["spec"]["containers"][0]["bogus"] = json!(1);
    pod["spec"]["activeDeadlineSeconds"] = json!("soon");
    let errors = schema_errors(&pod);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec.containers[0].bogus: ") && e.contains("FieldValueUnknown")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("activeDeadlineSeconds")),
        "{errors:?}"
    );
}

#[test]
fn the_validation_applies_the_api_server_rules_beyond_the_schema() {
    let mut pod = plan_for(&minimal_runner(), &bare_job(), &[]).pod;
    let first = pod["spec"]["containers"][0]["name"].clone();
    pod["spec"]["containers"][1]["name"] = first;
    pod["metadata"]["labels"]["bad label"] = json!("x");
    let errors = schema_errors(&pod);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec.containers[1].name: ")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("metadata.labels: ")),
        "{errors:?}"
    );
}
