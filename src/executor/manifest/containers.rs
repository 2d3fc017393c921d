//! The containers of the job's pod: build, helper and one per service, with their
//! environment, resources and the services' host names.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::config::{KubernetesConfig, Quantity, Resources};
use crate::coordinator::job::{Image, Job, JobVariable};
use crate::executor::labels;

use super::volumes::PodVolumes;
use super::{ManifestError, PodInput, DEFAULT_HELPER_IMAGE, IDLE_SCRIPT};

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

/// `build`: the job's image (else the config's), idle until stages are exec'd into it.
pub(super) fn build_container(
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

/// `helper`: the helper image, idle until helper verbs are exec'd into it; no job variables.
pub(super) fn helper_container(kube: &KubernetesConfig, volumes: &PodVolumes) -> Value {
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
pub(super) fn service_containers(
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
        check_port(&job.services[..index], service, &name)?;
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

/// Ports that well-known service images listen on when started without a command.
const KNOWN_PORTS: &[(&str, u16)] = &[
    ("postgres", 5432),
    ("postgis/postgis", 5432),
    ("mysql", 3306),
    ("mariadb", 3306),
    ("percona", 3306),
    ("redis", 6379),
    ("valkey/valkey", 6379),
    ("mongo", 27017),
    ("memcached", 11211),
    ("rabbitmq", 5672),
    ("elasticsearch", 9200),
];

/// Refuses `service` when an earlier service is known to listen on the same port.
fn check_port(earlier: &[Image], service: &Image, name: &str) -> Result<(), ManifestError> {
    let Some(port) = known_port(service) else {
        return Ok(());
    };
    match earlier.iter().position(|s| known_port(s) == Some(port)) {
        Some(first) => Err(ManifestError::ServicesSharePort {
            first: format!("svc-{first}"),
            second: name.to_string(),
            images: (earlier[first].name.clone(), service.name.clone()),
            port,
        }),
        None => Ok(()),
    }
}

fn known_port(service: &Image) -> Option<u16> {
    if !service.entrypoint.is_empty() || !service.command.is_empty() {
        return None;
    }
    let repository = repository(&service.name);
    KNOWN_PORTS
        .iter()
        .find(|(known, _)| *known == repository)
        .map(|(_, port)| *port)
}

/// Whether two services run the same program: same image repository, same entrypoint and
/// command.
fn same_service(a: &Image, b: &Image) -> bool {
    repository(&a.name) == repository(&b.name)
        && a.entrypoint == b.entrypoint
        && a.command == b.command
}

/// The image's repository, lowercase, without tag and without the Docker Hub prefixes
/// (`docker.io/library/postgres:16` -> `postgres`).
fn repository(image: &str) -> String {
    let repository = labels::image_repository(image).to_ascii_lowercase();
    let short = repository.strip_prefix("docker.io/").unwrap_or(&repository);
    short.strip_prefix("library/").unwrap_or(short).to_string()
}

/// Host names of the services (alias, then the image-derived name), each once.
pub(super) fn host_aliases(services: &[Image]) -> Result<Vec<String>, ManifestError> {
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
pub(super) fn container_env(variables: &[JobVariable], notices: &mut Vec<String>) -> Vec<Value> {
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
                 not accept that name",
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
