//! Shared pieces of the manifest tests: the seed's example configs as loaded from
//! `fixtures/config/`, a fixture job, and the Kubernetes simulator's validation (strict schema
//! plus the API server's rules) of every pod the tests plan.

#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use alloy_runner::config::{
    KubernetesConfig, OverwriteRule, PullPolicy, Quantity, RunnerConfig, Volumes,
};
use alloy_runner::coordinator::job::{Credential, GitInfo, Image, Job, JobInfo, JobVariable};
use alloy_runner::executor::manifest::{plan_pod, ManifestError, PodInput, PodPlan};
use alloy_runner::secret::Secret;
use serde_json::Value;

/// A quantity for a test config (the texts used are valid ones).
pub fn quantity(text: &str) -> Option<Quantity> {
    Some(Quantity::parse(text).expect("test quantities are valid"))
}

pub fn rule(pattern: &str) -> Option<OverwriteRule> {
    Some(OverwriteRule::new(pattern).expect("test patterns are valid regexes"))
}

pub fn var(key: &str, value: &str) -> JobVariable {
    JobVariable {
        key: key.into(),
        value: value.into(),
        public: true,
        ..Default::default()
    }
}

pub fn secret_var(key: &str, value: &str) -> JobVariable {
    JobVariable {
        key: key.into(),
        value: value.into(),
        public: false,
        ..Default::default()
    }
}

/// A runner entry with nothing but the defaults a loaded config would have.
pub fn minimal_runner() -> RunnerConfig {
    RunnerConfig {
        name: "minimal".into(),
        url: Some("https://alloy.example.com/".into()),
        token: Some(Secret::new("runner-token")),
        limit: 0,
        output_limit: 4096 * 1024,
        environment: Vec::new(),
        builds_dir: "/builds".into(),
        cache_dir: None,
        kubernetes: KubernetesConfig {
            namespace: "default".into(),
            poll_interval: Duration::from_secs(3),
            poll_timeout: Duration::from_secs(180),
            ..Default::default()
        },
    }
}

/// The first runner of a config file under `fixtures/config/`, loaded as the runner loads it.
pub fn fixture_runner(name: &str) -> RunnerConfig {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/config")
        .join(name);
    let config =
        alloy_runner::config::load(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    config
        .runners
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{} has no runner", path.display()))
}

/// `fixtures/config/seed-example.toml` (the seed's Kubernetes runner example, its API server
/// moved to loopback): a namespace overwrite, privileged containers, limits for build,
/// services and helper, a node selector.
pub fn seed_runner() -> RunnerConfig {
    fixture_runner("seed-example.toml")
}

/// `fixtures/config/seed-volumes-fixed.toml`: the seed's volume example (with its emptyDir
/// renamed to a valid `empty-dir`) on an otherwise default runner.
pub fn seed_volumes_runner() -> RunnerConfig {
    fixture_runner("seed-volumes-fixed.toml")
}

/// The seed's example with every pod key set: volumes of all five kinds, labels and
/// annotations with variables, a service account, pull secrets, helper image, pull policy.
pub fn full_runner() -> RunnerConfig {
    use alloy_runner::config::{
        ConfigMapVolume, EmptyDirVolume, HostPathVolume, PvcVolume, SecretVolume,
    };
    let mut runner = seed_runner();
    let kube = &mut runner.kubernetes;
    kube.service_account = Some("ci-runner".into());
    kube.service_account_overwrite_allowed = rule("ci-.*");
    kube.pod_annotations_overwrite_allowed = rule("team=.*");
    kube.build_resources.cpu_request = quantity("500m");
    kube.build_resources.memory_request = quantity("512Mi");
    kube.service_resources.cpu_request = quantity("250m");
    kube.service_resources.memory_request = quantity("256Mi");
    kube.helper_resources.cpu_request = quantity("100m");
    kube.helper_resources.memory_request = quantity("64Mi");
    kube.pull_policy = Some(PullPolicy::IfNotPresent);
    kube.image_pull_secrets = vec!["registry-login".into()];
    kube.helper_image = Some("registry.example.com/alloy/helper:1".into());
    kube.image = Some("alpine:3.20".into());
    kube.termination_grace_period_seconds = Some(10);
    kube.pod_labels = BTreeMap::from([
        ("branch".into(), "$CI_COMMIT_REF_NAME".into()),
        ("example.com/team".into(), "backend".into()),
    ]);
    kube.pod_annotations =
        BTreeMap::from([("example.com/pipeline".into(), "${CI_PIPELINE_ID}".into())]);
    kube.volumes = Volumes {
        host_path: vec![HostPathVolume {
            name: "hostpath-1".into(),
            mount_path: "/path/to/mount/point".into(),
            host_path: "/path/on/host".into(),
            read_only: true,
        }],
        pvc: vec![PvcVolume {
            name: "pvc-1".into(),
            mount_path: "/path/to/mount/point1".into(),
            read_only: false,
        }],
        config_map: vec![ConfigMapVolume {
            name: "config-map-1".into(),
            mount_path: "/path/to/directory".into(),
            read_only: false,
            items: BTreeMap::from([("key_1".into(), "relative/path/to/key_1_file".into())]),
        }],
        secret: vec![SecretVolume {
            name: "secret-1".into(),
            mount_path: "/path/to/directory1".into(),
            read_only: true,
            items: BTreeMap::from([("secret_1".into(), "relative/path/to/secret_1_file".into())]),
        }],
        empty_dir: vec![EmptyDirVolume {
            name: "empty-dir".into(),
            mount_path: "/path/to/empty_dir".into(),
            medium: "Memory".into(),
        }],
    };
    runner
}

/// The job of the coordinator's example payload: an elixir image, postgres and redis
/// services, a registry login.
pub fn fixture_job() -> Job {
    Job {
        id: 1234,
        token: Secret::new("3Jd9a0QkLw2ZpA"),
        allow_git_fetch: true,
        job_info: JobInfo {
            name: "mix test".into(),
            stage: "test".into(),
            project_id: 7,
            project_name: "my_app".into(),
        },
        git_info: GitInfo {
            repo_url: Secret::new(
                "https://gitlab-ci-token:3Jd9a0QkLw2ZpA@git.example.com/acme/my_app.git",
            ),
            ref_name: "main".into(),
            sha: "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0".into(),
            before_sha: "9f8e7d6c5b4a9f8e7d6c5b4a9f8e7d6c5b4a9f8e".into(),
            ref_type: "branch".into(),
        },
        timeout_secs: 3600,
        variables: vec![
            secret_var("CI_JOB_TOKEN", "3Jd9a0QkLw2ZpA"),
            var("MIX_ENV", "test"),
            JobVariable {
                key: "DEPLOY_KEY".into(),
                value: "s3cr3t-value".into(),
                public: false,
                file: true,
                masked: true,
            },
        ],
        image: Some(Image {
            name: "elixir:1.6".into(),
            ..Default::default()
        }),
        services: vec![
            Image {
                name: "postgres:9.6".into(),
                ..Default::default()
            },
            Image {
                name: "redis:4".into(),
                alias: Some("cache".into()),
                command: vec!["redis-server".into()],
                entrypoint: vec!["/entry.sh".into()],
            },
        ],
        credentials: vec![Credential {
            kind: "registry".into(),
            url: "registry.example.com".into(),
            username: "gitlab-ci-token".into(),
            password: Secret::new("3Jd9a0QkLw2ZpA"),
        }],
        trace_sections: true,
        ..Default::default()
    }
}

/// A job with no image, services or credentials.
pub fn bare_job() -> Job {
    Job {
        id: 99,
        job_info: JobInfo {
            name: "build".into(),
            project_id: 3,
            ..Default::default()
        },
        git_info: GitInfo {
            repo_url: Secret::new("https://git.example.com/group/sub/tool.git"),
            ref_name: "main".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            ..Default::default()
        },
        timeout_secs: 600,
        image: Some(Image {
            name: "busybox:1.36".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the runner puts before the job's own variables.
pub fn variables_for(job: &Job) -> Vec<JobVariable> {
    let mut variables = vec![
        var("CI_SERVER", "yes"),
        var("CI_BUILDS_DIR", "/builds"),
        var("CI_COMMIT_REF_NAME", &job.git_info.ref_name),
        var("CI_PIPELINE_ID", "311"),
        var("CI_DISPOSABLE_ENVIRONMENT", "true"),
    ];
    variables.extend(job.variables.iter().cloned());
    variables
}

/// Plans the pod and checks it against the strict Pod schema.
pub fn plan_with(
    runner: &RunnerConfig,
    job: &Job,
    variables: &[JobVariable],
) -> Result<PodPlan, ManifestError> {
    let plan = plan_pod(&PodInput {
        runner,
        job,
        variables,
        concurrent_id: 0,
    })?;
    let errors = schema_errors(&plan.pod);
    assert!(
        errors.is_empty(),
        "the API server would refuse the planned pod: {errors:#?}"
    );
    Ok(plan)
}

/// Plans the job's pod with the runner's usual variables plus `extra`, expecting success.
pub fn plan_for(runner: &RunnerConfig, job: &Job, extra: &[JobVariable]) -> PodPlan {
    let mut variables = variables_for(job);
    variables.extend(extra.iter().cloned());
    match plan_with(runner, job, &variables) {
        Ok(plan) => plan,
        Err(err) => panic!("planning failed: {err}"),
    }
}

/// Plans with `extra` variables, expecting an error, and returns its message.
pub fn plan_error(runner: &RunnerConfig, job: &Job, extra: &[JobVariable]) -> String {
    let mut variables = variables_for(job);
    variables.extend(extra.iter().cloned());
    match plan_with(runner, job, &variables) {
        Ok(plan) => panic!("planning succeeded: {:#}", plan.pod),
        Err(err) => err.to_string(),
    }
}

/// The container called `name` in the pod.
pub fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    let containers = pod["spec"]["containers"]
        .as_array()
        .expect("the pod has containers");
    containers
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

/// Every place where `pod` breaks the strict Pod schema or a rule the API server applies on
/// create, as `field: message` (empty when the API server would accept it).
pub fn schema_errors(pod: &Value) -> Vec<String> {
    match kube_sim::validate::validate_pod(pod) {
        Ok(()) => Vec::new(),
        Err(causes) => causes
            .into_iter()
            .map(|cause| format!("{}: {} ({})", cause.field, cause.message, cause.reason))
            .collect(),
    }
}
