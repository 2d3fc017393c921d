//! The job's pod: a pure function from the checked config, the job and its variables to the
//! pod manifest and the objects created with it. No I/O happens here.
//!
//! Layout of the pod:
//! - `build` runs the job's image, `helper` the helper image, `svc-0`, `svc-1`, ... the job's
//!   services. Build and helper run an idle shell so stages can be exec'd into them.
//! - emptyDir `repo` holds the builds dir and is mounted in every container, emptyDir
//!   `scripts` holds the stage scripts and the runner's own binary and is mounted in build and
//!   helper only (services get no scripts, which carry the job's secrets).
//! - The config's volumes are mounted in every container: services such as `docker:dind` need
//!   the same paths (shared certificates, the project dir) as the build.
//! - Public job variables are the environment of build and of every service (service images
//!   such as `postgres` are configured through them); the helper gets none.

mod containers;
mod error;
mod volumes;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

use crate::config::{KubernetesConfig, RunnerConfig};
use crate::coordinator::job::{Job, JobVariable};
use crate::secret::Secret;

use super::base64;
use super::labels;
use super::overwrites::{self, Overwrites};

pub use error::{ManifestError, MetadataKind};

use containers::{
    build_container, container_env, helper_container, host_aliases, service_containers,
};
use volumes::PodVolumes;

/// Helper image when the config sets no `helper_image`: a small public image with `sh` and
/// `git`; the runner copies its own static binary into the pod for the helper verbs.
pub const DEFAULT_HELPER_IMAGE: &str = "alpine/git:2.47.2";

pub use super::layout::{PodLayout, DEFAULT_BUILDS_DIR, HELPER_BINARY, SCRIPTS_DIR};

/// Seconds added to the job timeout for the pod's `activeDeadlineSeconds`, a backstop in case
/// the runner dies before it deletes the pod.
pub const DEADLINE_MARGIN_SECS: u64 = 60;

/// Label and annotation keys the runner sets.
pub const LABEL_RUNNER: &str = "alloy-runner.io/runner";
pub const LABEL_PROJECT_ID: &str = "alloy-runner.io/project-id";
pub const LABEL_JOB_ID: &str = "alloy-runner.io/job-id";
pub const LABEL_MANAGED: &str = "alloy-runner.io/managed";
pub const ANNOTATION_JOB_ID: &str = "alloy-runner.io/job-id";
pub const ANNOTATION_JOB_NAME: &str = "alloy-runner.io/job-name";
pub const ANNOTATION_JOB_REF: &str = "alloy-runner.io/job-ref";
pub const ANNOTATION_JOB_SHA: &str = "alloy-runner.io/job-sha";

const REPO_VOLUME: &str = "repo";
const SCRIPTS_VOLUME: &str = "scripts";

/// Kubernetes' limit on the total size of a pod's annotations (keys and values), in bytes.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Longest `generateName`: the server appends 5 random characters to reach 63.
const MAX_GENERATE_NAME: usize = 58;

/// PID 1 of build and helper: idles until the pod is deleted, and exits at once on TERM so the
/// pod does not wait out its grace period. Kubernetes only expands `$(NAME)`, so `$s` and `$!`
/// reach the shell as written.
const IDLE_SCRIPT: &str =
    "trap 'kill $s 2>/dev/null; exit 0' TERM INT; while :; do sleep 3600 & s=$!; wait $s; done";

/// What [`plan_pod`] needs.
pub struct PodInput<'a> {
    pub runner: &'a RunnerConfig,
    pub job: &'a Job,
    /// The runner's `CI_*` variables, the config's `environment`, then the job's variables;
    /// for a key given twice the later entry wins.
    pub variables: &'a [JobVariable],
    /// The runner's slot for this job (`CI_CONCURRENT_ID`).
    pub concurrent_id: u32,
}

/// Everything to create for a job, in order: the secrets, then the pod.
pub struct PodPlan {
    /// Namespace of the pod and of the secrets.
    pub namespace: String,
    /// The Pod manifest (named by `metadata.generateName`).
    pub pod: Value,
    /// Secrets to create before the pod (registry credentials). Each is named by
    /// `generateName`; once created, call [`use_created_secret`] so the pod refers to the real
    /// name, and give it the pod as owner ([`owner_reference`]) once the pod exists.
    pub secrets: Vec<Value>,
    /// The job's own Kubernetes bearer token, when an accepted overwrite brought one.
    pub bearer_token: Option<Secret>,
    /// Lines for the job log: accepted and ignored overwrites, warnings.
    pub notices: Vec<String>,
    /// Paths inside the pod.
    pub layout: PodLayout,
}

impl fmt::Debug for PodPlan {
    // The secrets hold registry passwords: show how many, not what.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodPlan")
            .field("namespace", &self.namespace)
            .field("pod", &self.pod)
            .field("secrets", &self.secrets.len())
            .field("bearer_token", &self.bearer_token)
            .field("notices", &self.notices)
            .field("layout", &self.layout)
            .finish()
    }
}

/// Plans the job's pod and the secrets created with it; fails before anything is created when
/// the config, the job or an overwrite cannot make a working pod.
pub fn plan_pod(input: &PodInput) -> Result<PodPlan, ManifestError> {
    let kube = &input.runner.kubernetes;
    let Overwrites {
        namespace,
        service_account,
        bearer_token,
        pod_annotations: overwritten_annotations,
        mut notices,
    } = overwrites::resolve(kube, input.variables)?;
    let layout = PodLayout::for_job(input.runner, input.job);

    // Metadata and scheduling.
    let generate_name = generate_name(&input.runner.name, input.job, input.concurrent_id);
    let labels = pod_labels(input, kube)?;
    let annotations = pod_annotations(input, kube, overwritten_annotations)?;
    check_node_selector(kube)?;

    // Containers and volumes.
    let volumes = PodVolumes::new(&kube.volumes, &layout)?;
    let env = container_env(input.variables, &mut notices);
    let build = build_container(input, &volumes, &env, &mut notices)?;
    let helper = helper_container(kube, &volumes);
    let services = service_containers(input.job, kube, &volumes, &env)?;
    let host_aliases = host_aliases(&input.job.services)?;

    // Registry credentials, then the pod that refers to them.
    let secrets: Vec<Value> = registry_secret(input.job, &namespace, &generate_name, &labels)
        .into_iter()
        .collect();
    let mut pull_secrets = kube.image_pull_secrets.clone();
    pull_secrets.extend(
        secrets
            .iter()
            .filter_map(placeholder_name)
            .map(str::to_string),
    );

    let mut containers = vec![build, helper];
    containers.extend(services);
    let spec = SpecParts {
        kube,
        service_account,
        containers,
        volumes: volumes.volumes,
        host_aliases,
        pull_secrets,
        deadline: input.job.timeout_secs.saturating_add(DEADLINE_MARGIN_SECS),
    };
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": generate_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": pod_spec(spec),
    });
    Ok(PodPlan {
        namespace,
        pod,
        secrets,
        bearer_token,
        notices,
        layout,
    })
}

/// After the planned `secret` was created under `created_name`, points the pod's
/// `imagePullSecrets` entry that stood for it (its `generateName`) at the real name.
pub fn use_created_secret(pod: &mut Value, secret: &Value, created_name: &str) {
    let Some(placeholder) = placeholder_name(secret) else {
        return;
    };
    let entries = pod
        .pointer_mut("/spec/imagePullSecrets")
        .and_then(Value::as_array_mut);
    for entry in entries.into_iter().flatten() {
        if entry.get("name").and_then(Value::as_str) == Some(placeholder) {
            entry["name"] = Value::from(created_name);
        }
    }
}

/// The `ownerReferences` entry that makes an object belong to the created `pod` (as the API
/// server returned it), so Kubernetes deletes the object with the pod. `None` when the pod
/// has no `metadata.name` or `metadata.uid`.
pub fn owner_reference(pod: &Value) -> Option<Value> {
    let name = pod.pointer("/metadata/name")?.as_str()?;
    let uid = pod.pointer("/metadata/uid")?.as_str()?;
    Some(json!({ "apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid }))
}

fn placeholder_name(secret: &Value) -> Option<&str> {
    secret.pointer("/metadata/generateName")?.as_str()
}

// --- Layout and names ---

/// `runner-<name slug>-project-<id>-concurrent-<n>-`, at most 58 characters: the slug is cut
/// (or left out) to make room.
fn generate_name(runner_name: &str, job: &Job, concurrent_id: u32) -> String {
    let tail = format!(
        "project-{}-concurrent-{concurrent_id}-",
        job.job_info.project_id
    );
    let room = MAX_GENERATE_NAME.saturating_sub("runner-".len() + tail.len() + 1);
    let slug = labels::dns_label_slug(runner_name, room);
    if slug.is_empty() {
        format!("runner-{tail}")
    } else {
        format!("runner-{slug}-{tail}")
    }
}

// --- Labels and annotations ---

fn pod_labels(
    input: &PodInput,
    kube: &KubernetesConfig,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let job = input.job;
    let mut labels: BTreeMap<String, String> = [
        (
            LABEL_RUNNER,
            labels::sanitize_label_value(&input.runner.name),
        ),
        (LABEL_PROJECT_ID, job.job_info.project_id.to_string()),
        (LABEL_JOB_ID, job.id.to_string()),
        (LABEL_MANAGED, "true".to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect();
    for (key, template) in &kube.pod_labels {
        check_user_key(MetadataKind::Label, key)?;
        let value = expand_public(MetadataKind::Label, key, template, input.variables)?;
        labels.insert(key.clone(), labels::sanitize_label_value(&value));
    }
    Ok(labels)
}

/// The runner's annotations, then the config's (with `$VAR` expanded), then the accepted
/// `KUBERNETES_POD_ANNOTATIONS_*` overwrites, which win over the config's.
fn pod_annotations(
    input: &PodInput,
    kube: &KubernetesConfig,
    overwritten: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let job = input.job;
    let mut annotations: BTreeMap<String, String> = [
        (ANNOTATION_JOB_ID, job.id.to_string()),
        (ANNOTATION_JOB_NAME, job.job_info.name.clone()),
        (ANNOTATION_JOB_REF, job.git_info.ref_name.clone()),
        (ANNOTATION_JOB_SHA, job.git_info.sha.clone()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect();
    for (key, template) in &kube.pod_annotations {
        check_user_key(MetadataKind::Annotation, key)?;
        let value = expand_public(MetadataKind::Annotation, key, template, input.variables)?;
        annotations.insert(key.clone(), value);
    }
    annotations.extend(overwritten);

    let bytes = annotations
        .iter()
        .map(|(key, value)| key.len() + value.len())
        .sum();
    if bytes > MAX_ANNOTATIONS_BYTES {
        return Err(ManifestError::AnnotationsTooLarge { bytes });
    }
    Ok(annotations)
}

fn check_node_selector(kube: &KubernetesConfig) -> Result<(), ManifestError> {
    let invalid = kube
        .node_selector
        .iter()
        .find(|(key, value)| labels::check_key(key).is_err() || !labels::is_label_value(value));
    match invalid {
        Some((key, value)) => Err(ManifestError::InvalidNodeSelector {
            key: key.clone(),
            value: value.clone(),
        }),
        None => Ok(()),
    }
}

fn check_user_key(kind: MetadataKind, key: &str) -> Result<(), ManifestError> {
    if let Err(source) = labels::check_key(key) {
        return Err(ManifestError::InvalidKey {
            kind,
            key: key.to_string(),
            source,
        });
    }
    if labels::is_reserved_key(key) {
        return Err(ManifestError::ReservedKey {
            kind,
            key: key.to_string(),
        });
    }
    Ok(())
}

/// Expands `$VAR` and `${VAR}` in a config value from the public variables (later entries
/// win); an unknown variable is empty, a variable that is not public is an error.
fn expand_public(
    kind: MetadataKind,
    key: &str,
    template: &str,
    variables: &[JobVariable],
) -> Result<String, ManifestError> {
    labels::expand(template, |name| {
        match variables.iter().rev().find(|v| v.key == name) {
            Some(variable) if variable.public => Ok(variable.value.clone()),
            Some(_) => Err(ManifestError::NonPublicVariable {
                kind,
                key: key.to_string(),
                variable: name.to_string(),
            }),
            None => Ok(String::new()),
        }
    })
}

// --- Pod spec and secrets ---

/// The parts of the pod spec, gathered by [`plan_pod`].
struct SpecParts<'a> {
    kube: &'a KubernetesConfig,
    service_account: Option<String>,
    containers: Vec<Value>,
    volumes: Vec<Value>,
    host_aliases: Vec<String>,
    pull_secrets: Vec<String>,
    deadline: u64,
}

fn pod_spec(parts: SpecParts) -> Value {
    let mut spec = Map::new();
    spec.insert("restartPolicy".into(), "Never".into());
    spec.insert("activeDeadlineSeconds".into(), parts.deadline.into());
    if let Some(seconds) = parts.kube.termination_grace_period_seconds {
        spec.insert("terminationGracePeriodSeconds".into(), seconds.into());
    }
    if let Some(account) = parts.service_account {
        spec.insert("serviceAccountName".into(), account.into());
    }
    if !parts.kube.node_selector.is_empty() {
        spec.insert("nodeSelector".into(), json!(parts.kube.node_selector));
    }
    if !parts.pull_secrets.is_empty() {
        let names: Vec<Value> = parts
            .pull_secrets
            .iter()
            .map(|name| json!({ "name": name }))
            .collect();
        spec.insert("imagePullSecrets".into(), names.into());
    }
    if !parts.host_aliases.is_empty() {
        let aliases = json!([{ "ip": "127.0.0.1", "hostnames": parts.host_aliases }]);
        spec.insert("hostAliases".into(), aliases);
    }
    spec.insert("containers".into(), parts.containers.into());
    spec.insert("volumes".into(), parts.volumes.into());
    Value::Object(spec)
}

/// The job's registry logins as one `kubernetes.io/dockerconfigjson` Secret, named like the
/// pod and labelled like it; `None` when the job has none.
fn registry_secret(
    job: &Job,
    namespace: &str,
    generate_name: &str,
    labels: &BTreeMap<String, String>,
) -> Option<Value> {
    let mut auths = Map::new();
    for login in job
        .credentials
        .iter()
        .filter(|c| c.kind.eq_ignore_ascii_case("registry"))
    {
        let password = login.password.expose();
        let pair = format!("{}:{password}", login.username);
        let entry = json!({
            "username": login.username,
            "password": password,
            "auth": base64::encode(pair.as_bytes()),
        });
        auths.insert(login.url.clone(), entry);
    }
    if auths.is_empty() {
        return None;
    }
    let docker_config = json!({ "auths": auths }).to_string();
    Some(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "generateName": generate_name, "namespace": namespace, "labels": labels },
        "type": "kubernetes.io/dockerconfigjson",
        "data": { ".dockerconfigjson": base64::encode(docker_config.as_bytes()) },
    }))
}
