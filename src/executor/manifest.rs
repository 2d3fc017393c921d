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

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

use crate::config::{KubernetesConfig, Quantity, Resources, RunnerConfig, Volumes};
use crate::coordinator::job::{Image, Job, JobVariable};
use crate::secret::Secret;

use super::base64;
use super::labels::{self, KeyError};
use super::overwrites::{self, OverwriteError, Overwrites};

/// Helper image when the config sets no `helper_image`: a small public image with `sh` and
/// `git`; the runner copies its own static binary into the pod for the helper verbs.
pub const DEFAULT_HELPER_IMAGE: &str = "alpine/git:2.47.2";

/// Builds dir when the config sets no `builds_dir`.
pub const DEFAULT_BUILDS_DIR: &str = "/builds";

/// Where the emptyDir `scripts` is mounted (outside the builds dir).
pub const SCRIPTS_DIR: &str = "/alloy-runner/scripts";

/// File name of the runner's binary inside [`SCRIPTS_DIR`].
pub const HELPER_BINARY: &str = "alloy-runner";

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

/// Paths inside the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLayout {
    /// The builds dir (`/builds` unless the config's `builds_dir` says otherwise).
    pub builds_dir: String,
    /// Builds dir + the path of the repository URL, e.g. `/builds/acme/my_app`.
    pub project_dir: String,
    /// The emptyDir for stage scripts, in build and helper.
    pub scripts_dir: String,
    /// Where the runner's binary is copied for the helper verbs.
    pub helper_bin: String,
}

/// Whether a metadata key is a label or an annotation, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    Label,
    Annotation,
}

impl fmt::Display for MetadataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetadataKind::Label => "pod label",
            MetadataKind::Annotation => "pod annotation",
        })
    }
}

/// Why no pod can be planned for a job. Nothing has been created when this is returned.
#[derive(Debug)]
pub enum ManifestError {
    /// Neither the job nor the config names a build image.
    NoImage,
    /// A service without an image name.
    EmptyServiceImage { index: usize },
    /// Two services run the same image with the same command, so both listen on one port.
    ServicesShareImage {
        first: String,
        second: String,
        image: String,
    },
    /// A service alias that cannot be a host name.
    InvalidServiceAlias { service: String, alias: String },
    /// A job variable asked for an overwrite the config does not allow.
    Overwrite(OverwriteError),
    /// A `pod_labels` or `pod_annotations` key that Kubernetes would reject.
    InvalidKey {
        kind: MetadataKind,
        key: String,
        source: KeyError,
    },
    /// A `pod_labels` or `pod_annotations` key under the runner's own prefix.
    ReservedKey { kind: MetadataKind, key: String },
    /// A label or annotation value refers to a variable that is not public.
    NonPublicVariable {
        kind: MetadataKind,
        key: String,
        variable: String,
    },
    /// The annotations are larger than Kubernetes accepts.
    AnnotationsTooLarge { bytes: usize },
    /// A `node_selector` entry that is not a valid label key and value.
    InvalidNodeSelector { key: String, value: String },
    /// A config volume whose name is not a DNS-1123 label.
    InvalidVolumeName { name: String },
    /// A config volume uses the name of one of the runner's own volumes.
    ReservedVolumeName { name: String },
    /// Two config volumes share a name but not a source.
    VolumeDefinedTwice { name: String },
    /// Two volumes are mounted at the same path.
    MountPathTaken {
        path: String,
        first: String,
        second: String,
    },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::NoImage => f.write_str(
                "no build image: the job names none and the runner's config sets no \
                 [runners.kubernetes] image",
            ),
            ManifestError::EmptyServiceImage { index } => {
                write!(f, "service {index} of the job names no image")
            }
            ManifestError::ServicesShareImage {
                first,
                second,
                image,
            } => write!(
                f,
                "services {first} and {second} both run {image} with the same command: the \
                 containers of a pod share one network, so they would listen on the same port"
            ),
            ManifestError::InvalidServiceAlias { service, alias } => write!(
                f,
                "service {service}: alias {alias:?} is not a host name (lowercase letters, \
                 digits, '-' and '.')"
            ),
            ManifestError::Overwrite(err) => write!(f, "overwrite refused: {err}"),
            ManifestError::InvalidKey { kind, key, source } => {
                write!(f, "{kind} key {key:?} is not valid: {source}")
            }
            ManifestError::ReservedKey { kind, key } => write!(
                f,
                "{kind} key {key:?} is reserved for the runner ({}/)",
                labels::RESERVED_PREFIX
            ),
            ManifestError::NonPublicVariable {
                kind,
                key,
                variable,
            } => write!(
                f,
                "{kind} {key:?} refers to variable {variable}, which is not public: secret \
                 values stay out of pod metadata"
            ),
            ManifestError::AnnotationsTooLarge { bytes } => write!(
                f,
                "pod annotations take {bytes} bytes, more than the {MAX_ANNOTATIONS_BYTES} \
                 Kubernetes accepts"
            ),
            ManifestError::InvalidNodeSelector { key, value } => write!(
                f,
                "node_selector {key:?} = {value:?} is not a valid label key and value"
            ),
            ManifestError::InvalidVolumeName { name } => write!(
                f,
                "volume name {name:?} is not valid: lowercase letters, digits and '-', at most \
                 63"
            ),
            ManifestError::ReservedVolumeName { name } => {
                write!(f, "volume name {name:?} is used by the runner itself")
            }
            ManifestError::VolumeDefinedTwice { name } => {
                write!(f, "volume {name:?} is defined twice with different sources")
            }
            ManifestError::MountPathTaken {
                path,
                first,
                second,
            } => {
                write!(
                    f,
                    "volumes {first:?} and {second:?} are both mounted at {path:?}"
                )
            }
        }
    }
}

impl std::error::Error for ManifestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ManifestError::Overwrite(err) => Some(err),
            ManifestError::InvalidKey { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<OverwriteError> for ManifestError {
    fn from(err: OverwriteError) -> Self {
        ManifestError::Overwrite(err)
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
    let layout = layout(input.runner, input.job);

    // Metadata.
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

fn layout(runner: &RunnerConfig, job: &Job) -> PodLayout {
    let builds_dir = match runner.builds_dir.trim_end_matches('/') {
        "" if runner.builds_dir.is_empty() => DEFAULT_BUILDS_DIR.to_string(),
        "" => "/".to_string(),
        dir => dir.to_string(),
    };
    let project_dir = join_path(&builds_dir, &project_path(job));
    PodLayout {
        builds_dir,
        project_dir,
        scripts_dir: SCRIPTS_DIR.to_string(),
        helper_bin: join_path(SCRIPTS_DIR, HELPER_BINARY),
    }
}

fn join_path(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The repository URL's path without `.git` (`https://host/acme/my_app.git` and
/// `git@host:acme/my_app.git` give `acme/my_app`), `project-<id>` when it has none. Empty,
/// `.` and `..` segments are dropped so the project stays inside the builds dir.
fn project_path(job: &Job) -> String {
    let url = job.git_info.repo_url.expose();
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => url.split_once(':').map_or(url, |(_, path)| path),
    };
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !matches!(*s, "" | "." | ".."))
        .collect();
    if segments.is_empty() {
        format!("project-{}", job.job_info.project_id)
    } else {
        segments.join("/")
    }
}

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

// --- Containers ---

/// What one container is made of; empty parts are left out of the manifest.
struct ContainerParts<'a> {
    name: String,
    image: &'a str,
    command: Vec<String>,
    args: Vec<String>,
    env: &'a [Value],
    resources: &'a Resources,
    privileged: bool,
    mounts: &'a [Value],
    kube: &'a KubernetesConfig,
}

fn container(parts: ContainerParts) -> Value {
    let mut container = Map::new();
    container.insert("name".into(), parts.name.into());
    container.insert("image".into(), parts.image.into());
    if !parts.command.is_empty() {
        container.insert("command".into(), parts.command.into());
    }
    if !parts.args.is_empty() {
        container.insert("args".into(), parts.args.into());
    }
    if !parts.env.is_empty() {
        container.insert("env".into(), parts.env.into());
    }
    if let Some(resources) = resources(parts.resources) {
        container.insert("resources".into(), resources);
    }
    if parts.privileged {
        container.insert("securityContext".into(), json!({ "privileged": true }));
    }
    container.insert("volumeMounts".into(), parts.mounts.into());
    if let Some(policy) = parts.kube.pull_policy {
        container.insert("imagePullPolicy".into(), policy.as_kubernetes().into());
    }
    Value::Object(container)
}

fn idle_command() -> Vec<String> {
    vec!["sh".to_string(), "-c".to_string(), IDLE_SCRIPT.to_string()]
}

fn build_container(
    input: &PodInput,
    volumes: &PodVolumes,
    env: &[Value],
    notices: &mut Vec<String>,
) -> Result<Value, ManifestError> {
    let kube = &input.runner.kubernetes;
    let job_image = input
        .job
        .image
        .as_ref()
        .filter(|image| !image.name.trim().is_empty());
    let image = match (job_image, &kube.image) {
        (Some(image), _) => image.name.as_str(),
        (None, Some(image)) if !image.trim().is_empty() => image.as_str(),
        (None, _) => return Err(ManifestError::NoImage),
    };
    if job_image.is_some_and(|image| !image.entrypoint.is_empty()) {
        notices.push(
            "the build image's entrypoint is not used: each stage runs through exec".to_string(),
        );
    }
    Ok(container(ContainerParts {
        name: "build".to_string(),
        image,
        command: idle_command(),
        args: Vec::new(),
        env,
        resources: &kube.build_resources,
        privileged: kube.privileged,
        mounts: &volumes.build_mounts,
        kube,
    }))
}

fn helper_container(kube: &KubernetesConfig, volumes: &PodVolumes) -> Value {
    let image = kube
        .helper_image
        .as_deref()
        .filter(|image| !image.trim().is_empty());
    container(ContainerParts {
        name: "helper".to_string(),
        image: image.unwrap_or(DEFAULT_HELPER_IMAGE),
        command: idle_command(),
        args: Vec::new(),
        env: &[],
        resources: &kube.helper_resources,
        privileged: false,
        mounts: &volumes.build_mounts,
        kube,
    })
}

/// `svc-0`, `svc-1`, ...: a service's `entrypoint` becomes the container's `command` and its
/// `command` the `args`, as in Docker. Two services of one image with one command would
/// listen on the same port of the shared network, so that is refused.
fn service_containers(
    job: &Job,
    kube: &KubernetesConfig,
    volumes: &PodVolumes,
    env: &[Value],
) -> Result<Vec<Value>, ManifestError> {
    let mut containers = Vec::with_capacity(job.services.len());
    for (index, service) in job.services.iter().enumerate() {
        let name = format!("svc-{index}");
        if service.name.trim().is_empty() {
            return Err(ManifestError::EmptyServiceImage { index });
        }
        if let Some(first) = job.services[..index]
            .iter()
            .position(|s| same_service(s, service))
        {
            return Err(ManifestError::ServicesShareImage {
                first: format!("svc-{first}"),
                second: name,
                image: service.name.clone(),
            });
        }
        containers.push(container(ContainerParts {
            name,
            image: &service.name,
            command: service.entrypoint.clone(),
            args: service.command.clone(),
            env,
            resources: &kube.service_resources,
            privileged: kube.privileged,
            mounts: &volumes.service_mounts,
            kube,
        }));
    }
    Ok(containers)
}

/// Whether two services run the same program: same image repository (tags and the Docker
/// Hub `docker.io/library/` spelling ignored), same entrypoint and command.
fn same_service(a: &Image, b: &Image) -> bool {
    fn repository(image: &str) -> String {
        let repository = labels::image_repository(image).to_ascii_lowercase();
        let short = repository.strip_prefix("docker.io/").unwrap_or(&repository);
        short.strip_prefix("library/").unwrap_or(short).to_string()
    }
    repository(&a.name) == repository(&b.name)
        && a.entrypoint == b.entrypoint
        && a.command == b.command
}

/// Host names of the services (alias, then the image-derived name), each once.
fn host_aliases(services: &[Image]) -> Result<Vec<String>, ManifestError> {
    let mut names: Vec<String> = Vec::new();
    for (index, service) in services.iter().enumerate() {
        let alias = service
            .alias
            .as_deref()
            .map(str::trim)
            .filter(|alias| !alias.is_empty());
        if let Some(alias) = alias {
            let host = alias.to_ascii_lowercase();
            if !labels::is_dns_subdomain(&host) {
                return Err(ManifestError::InvalidServiceAlias {
                    service: format!("svc-{index}"),
                    alias: alias.to_string(),
                });
            }
            names.push(host);
        }
        names.extend(labels::service_host_name(&service.name));
    }
    let mut unique: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    Ok(unique)
}

/// The container environment: public variables that are not files, later entries winning,
/// every `$` written as `$$` so Kubernetes passes `$(NAME)` through untouched.
fn container_env(variables: &[JobVariable], notices: &mut Vec<String>) -> Vec<Value> {
    let mut latest: BTreeMap<&str, &JobVariable> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for variable in variables {
        if latest.insert(&variable.key, variable).is_none() {
            order.push(&variable.key);
        }
    }

    let mut env = Vec::new();
    for variable in order.into_iter().filter_map(|key| latest.get(key)) {
        if !variable.public || variable.file {
            continue;
        }
        if !is_env_name(&variable.key) {
            notices.push(format!(
                "variable {:?} is left out of the containers' environment: Kubernetes does \
                 not accept that name (the job script still exports it)",
                variable.key
            ));
            continue;
        }
        env.push(json!({ "name": variable.key, "value": variable.value.replace('$', "$$") }));
    }
    env
}

/// Kubernetes' environment variable names: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
fn is_env_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    name.bytes().next().is_some_and(|b| !b.is_ascii_digit()) && name.bytes().all(allowed)
}

fn resources(resources: &Resources) -> Option<Value> {
    let pair = |cpu: &Option<Quantity>, memory: &Option<Quantity>| {
        let mut map = Map::new();
        if let Some(cpu) = cpu {
            map.insert("cpu".into(), cpu.as_str().into());
        }
        if let Some(memory) = memory {
            map.insert("memory".into(), memory.as_str().into());
        }
        map
    };
    let limits = pair(&resources.cpu_limit, &resources.memory_limit);
    let requests = pair(&resources.cpu_request, &resources.memory_request);
    let mut out = Map::new();
    if !limits.is_empty() {
        out.insert("limits".into(), Value::Object(limits));
    }
    if !requests.is_empty() {
        out.insert("requests".into(), Value::Object(requests));
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

// --- Volumes ---

/// The pod's volumes and the mounts of each kind of container.
struct PodVolumes {
    volumes: Vec<Value>,
    /// `repo`, `scripts`, then the config's volumes.
    build_mounts: Vec<Value>,
    /// `repo`, then the config's volumes.
    service_mounts: Vec<Value>,
}

/// One entry of the config's volumes.
struct ConfigVolume<'a> {
    name: &'a str,
    mount_path: &'a str,
    read_only: bool,
    volume: Value,
}

impl PodVolumes {
    /// Volumes of the same name and source (two `pvc` entries of one claim) become one pod
    /// volume mounted twice.
    fn new(config: &Volumes, layout: &PodLayout) -> Result<PodVolumes, ManifestError> {
        let mut volumes = vec![
            json!({ "name": REPO_VOLUME, "emptyDir": {} }),
            json!({ "name": SCRIPTS_VOLUME, "emptyDir": {} }),
        ];
        let repo = mount(REPO_VOLUME, &layout.builds_dir, false);
        let scripts = mount(SCRIPTS_VOLUME, &layout.scripts_dir, false);
        let mut taken = vec![
            (layout.builds_dir.clone(), REPO_VOLUME.to_string()),
            (layout.scripts_dir.clone(), SCRIPTS_VOLUME.to_string()),
        ];

        let mut user_mounts = Vec::new();
        for entry in config_volumes(config) {
            add_volume(&mut volumes, &entry)?;
            take_mount_path(&mut taken, &entry)?;
            user_mounts.push(mount(entry.name, entry.mount_path, entry.read_only));
        }

        let mut build_mounts = vec![repo.clone(), scripts];
        build_mounts.extend(user_mounts.iter().cloned());
        let mut service_mounts = vec![repo];
        service_mounts.extend(user_mounts);
        Ok(PodVolumes {
            volumes,
            build_mounts,
            service_mounts,
        })
    }
}

fn add_volume(volumes: &mut Vec<Value>, entry: &ConfigVolume) -> Result<(), ManifestError> {
    if !labels::is_dns_label(entry.name) {
        return Err(ManifestError::InvalidVolumeName {
            name: entry.name.to_string(),
        });
    }
    if entry.name == REPO_VOLUME || entry.name == SCRIPTS_VOLUME {
        return Err(ManifestError::ReservedVolumeName {
            name: entry.name.to_string(),
        });
    }
    match volumes.iter().find(|volume| volume["name"] == entry.name) {
        Some(existing) if *existing != entry.volume => Err(ManifestError::VolumeDefinedTwice {
            name: entry.name.to_string(),
        }),
        Some(_) => Ok(()),
        None => {
            volumes.push(entry.volume.clone());
            Ok(())
        }
    }
}

fn take_mount_path(
    taken: &mut Vec<(String, String)>,
    entry: &ConfigVolume,
) -> Result<(), ManifestError> {
    let path = entry.mount_path.trim_end_matches('/');
    if let Some((_, first)) = taken
        .iter()
        .find(|(taken, _)| taken.trim_end_matches('/') == path)
    {
        return Err(ManifestError::MountPathTaken {
            path: entry.mount_path.to_string(),
            first: first.clone(),
            second: entry.name.to_string(),
        });
    }
    taken.push((entry.mount_path.to_string(), entry.name.to_string()));
    Ok(())
}

fn mount(name: &str, path: &str, read_only: bool) -> Value {
    if read_only {
        json!({ "name": name, "mountPath": path, "readOnly": true })
    } else {
        json!({ "name": name, "mountPath": path })
    }
}

/// The config's volumes in kind order (host_path, pvc, config_map, secret, empty_dir), each
/// kind in file order. `readOnly` goes on the mount, so two mounts of one claim may differ.
fn config_volumes(config: &Volumes) -> Vec<ConfigVolume<'_>> {
    let host_paths = config.host_path.iter().map(|v| ConfigVolume {
        name: &v.name,
        mount_path: &v.mount_path,
        read_only: v.read_only,
        volume: json!({ "name": v.name, "hostPath": { "path": v.host_path } }),
    });
    let claims = config.pvc.iter().map(|v| ConfigVolume {
        name: &v.name,
        mount_path: &v.mount_path,
        read_only: v.read_only,
        volume: json!({ "name": v.name, "persistentVolumeClaim": { "claimName": v.name } }),
    });
    let config_maps = config.config_map.iter().map(|v| ConfigVolume {
        name: &v.name,
        mount_path: &v.mount_path,
        read_only: v.read_only,
        volume: json!({ "name": v.name, "configMap": with_items(json!({ "name": v.name }), &v.items) }),
    });
    let secrets = config.secret.iter().map(|v| ConfigVolume {
        name: &v.name,
        mount_path: &v.mount_path,
        read_only: v.read_only,
        volume: json!({
            "name": v.name,
            "secret": with_items(json!({ "secretName": v.name }), &v.items),
        }),
    });
    let empty_dirs = config.empty_dir.iter().map(|v| ConfigVolume {
        name: &v.name,
        mount_path: &v.mount_path,
        read_only: false,
        volume: json!({ "name": v.name, "emptyDir": empty_dir_source(&v.medium) }),
    });
    host_paths
        .chain(claims)
        .chain(config_maps)
        .chain(secrets)
        .chain(empty_dirs)
        .collect()
}

fn with_items(mut source: Value, items: &BTreeMap<String, String>) -> Value {
    if !items.is_empty() {
        let items: Vec<Value> = items
            .iter()
            .map(|(key, path)| json!({ "key": key, "path": path }))
            .collect();
        source["items"] = Value::from(items);
    }
    source
}

fn empty_dir_source(medium: &str) -> Value {
    if medium.is_empty() {
        json!({})
    } else {
        json!({ "medium": medium })
    }
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
