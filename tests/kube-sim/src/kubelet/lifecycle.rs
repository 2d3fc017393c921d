//! A pod's life on the node: scheduling, image fates, volumes, sandbox, containers, stop.

use super::env::{self, Launch};
use super::fate::{self, Fate};
use super::pod::{Pod, State};
use super::sandbox::{ContainerRoot, Job, Sandbox};
use super::status::{self, ContainerState, PodFailure, PodRecord, Scheduling, Termination};
use super::teardown::signal;
use super::volumes::{self, VolumeError};
use super::{Inner, NODE_NAME};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::process::{Child, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// The message of a pod whose node selector matches no node.
const UNSCHEDULABLE: &str =
    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.";
/// The message of an evicted pod.
const EVICTED: &str = "The node was low on resource: memory.";
/// The message of a pod that outlived its `activeDeadlineSeconds`.
const DEADLINE_EXCEEDED: &str = "Pod was active on the node longer than the specified deadline";
/// How long a failed pull shows ErrImagePull before ImagePullBackOff.
const PULL_BACKOFF: Duration = Duration::from_secs(1);
/// How often missing Secrets and ConfigMaps are looked up again.
const CONFIG_RETRY: Duration = Duration::from_secs(1);

/// The hostname of a pod: its name, cut to 63 characters as Kubernetes does.
fn hostname(pod: &str) -> String {
    pod.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// Registers a pod and starts its worker thread.
pub fn start(inner: &Arc<Inner>, spec: Value) {
    let meta = &spec["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or("default").to_string();
    let name = meta["name"].as_str().unwrap_or("").to_string();
    let uid = match meta["uid"].as_str() {
        Some(uid) => uid.to_string(),
        None => status::digest(&format!("{namespace}/{name}/{:?}", SystemTime::now()))[..32].into(),
    };
    let pairs = |key: &str| -> Vec<(String, String)> {
        let list = spec["spec"][key].as_array().into_iter().flatten();
        let text = |c: &Value, k: &str| c[k].as_str().unwrap_or("").to_string();
        list.map(|c| (text(c, "name"), text(c, "image"))).collect()
    };
    let mut record = PodRecord::new(&uid, pairs("initContainers"), pairs("containers"));
    record.qos_class = qos_class(&spec);
    let dir = inner
        .state_dir
        .join("pods")
        .join(format!("{namespace}_{name}_{}", &status::digest(&uid)[..8]));

    let pod = Arc::new(Pod {
        namespace,
        name,
        spec,
        dir,
        state: Mutex::new(State {
            record,
            stopping: false,
            gone: false,
            sandbox: None,
            launches: HashMap::new(),
            oom_killed: Vec::new(),
            stdins: Vec::new(),
        }),
        wake: Condvar::new(),
        publishing: Mutex::new(()),
        worker: Mutex::new(None),
        waiters: Mutex::new(Vec::new()),
    });
    let key = (pod.namespace.clone(), pod.name.clone());
    if let Ok(mut pods) = inner.pods.lock() {
        pods.insert(key, Arc::clone(&pod));
    }
    if let Some(secs) = pod.spec["spec"]["activeDeadlineSeconds"].as_u64() {
        watch_deadline(inner, &pod, Duration::from_secs(secs));
    }
    let (inner, worker_pod) = (Arc::clone(inner), Arc::clone(&pod));
    let handle = thread::spawn(move || run(&inner, &worker_pod));
    let mut worker = pod.worker.lock().unwrap_or_else(|p| p.into_inner());
    *worker = Some(handle);
}

/// The pod's way from scheduling to running containers and their scripted ends.
fn run(inner: &Arc<Inner>, pod: &Arc<Pod>) {
    if !schedule(inner, pod) {
        return;
    }
    let fates = fates(pod);
    let blocked = pull_images(inner, pod, &fates);
    let slow = fates.values().filter_map(|f| match f {
        Fate::SlowStart(d) => Some(*d),
        _ => None,
    });
    if !pod.sleep(slow.max().unwrap_or_default()) {
        return;
    }
    let Some(prepared) = prepare(inner, pod, &blocked) else {
        return;
    };
    let Some(sandbox) = create_sandbox(inner, pod, prepared) else {
        return;
    };
    if !run_init_containers(inner, pod, &fates, &blocked, &sandbox) {
        return;
    }
    start_containers(inner, pod, &fates, &blocked, &sandbox);
    drop(sandbox);
    run_timers(inner, pod, &fates);
}

/// Places the pod on the one node when its `nodeSelector` matches the node's labels.
// TODO: affinity (nodeAffinity, pod affinity), tolerations and resource fit are not
// simulated; only nodeSelector decides.
fn schedule(inner: &Inner, pod: &Pod) -> bool {
    let selector = pod.spec["spec"]["nodeSelector"].as_object();
    let fits = selector
        .into_iter()
        .flatten()
        .all(|(k, v)| inner.node_labels.get(k).map(String::as_str) == v.as_str());
    if !fits {
        pod.lock().record.scheduling = Scheduling::Unschedulable(UNSCHEDULABLE.to_string());
        pod.event(inner, "Warning", "FailedScheduling", UNSCHEDULABLE);
        pod.publish(inner);
        return false;
    }
    let message = format!(
        "Successfully assigned {}/{} to {NODE_NAME}",
        pod.namespace, pod.name
    );
    pod.event(inner, "Normal", "Scheduled", &message);
    pod.publish(inner);
    true
}

fn fates(pod: &Pod) -> HashMap<String, Fate> {
    let state = pod.lock();
    state
        .record
        .all_containers()
        .map(|c| (c.name.clone(), fate::fate_of(&c.image)))
        .collect()
}

fn image_of(pod: &Pod, container: &str) -> String {
    let state = pod.lock();
    let c = state.record.all_containers().find(|c| c.name == container);
    c.map(|c| c.image.clone()).unwrap_or_default()
}

/// Applies the image fates that keep a container from ever starting; answers those names.
fn pull_images(inner: &Inner, pod: &Pod, fates: &HashMap<String, Fate>) -> Vec<String> {
    let mut blocked = Vec::new();
    let mut pulling = Vec::new();
    for (name, fate) in sorted(fates) {
        let image = image_of(pod, name);
        let waiting = |reason: &str, message: String| ContainerState::Waiting {
            reason: reason.to_string(),
            message: Some(message),
        };
        match fate {
            Fate::InvalidImageName => {
                let message = fate::invalid_image_message(&image);
                pod.set_state(name, waiting("InvalidImageName", message.clone()));
                pod.event(inner, "Warning", "InspectFailed", &message);
                pod.event(inner, "Warning", "Failed", "Error: InvalidImageName");
            }
            Fate::PullError => {
                let message = fate::pull_error_message(&image);
                pod.set_state(name, waiting("ErrImagePull", message.clone()));
                let failed = format!("Failed to pull image \"{image}\": {message}");
                pod.event(inner, "Warning", "Failed", &failed);
                pod.event(inner, "Warning", "Failed", "Error: ErrImagePull");
                pulling.push((name.clone(), image));
            }
            _ => continue,
        }
        blocked.push(name.clone());
    }
    if blocked.is_empty() {
        return blocked;
    }
    pod.publish(inner);
    if !pulling.is_empty() && pod.sleep(PULL_BACKOFF) {
        for (name, image) in pulling {
            let message = format!("Back-off pulling image \"{image}\"");
            let state = ContainerState::Waiting {
                reason: "ImagePullBackOff".into(),
                message: Some(message.clone()),
            };
            pod.set_state(&name, state);
            pod.event(inner, "Normal", "BackOff", &message);
            pod.event(inner, "Warning", "Failed", "Error: ImagePullBackOff");
        }
        pod.publish(inner);
    }
    blocked
}

fn sorted(fates: &HashMap<String, Fate>) -> Vec<(&String, &Fate)> {
    let mut list: Vec<_> = fates.iter().collect();
    list.sort_by_key(|(name, _)| name.as_str());
    list
}

struct Prepared {
    launches: HashMap<String, Launch>,
    roots: Vec<ContainerRoot>,
}

/// Prepares volumes and environments, retrying while a Secret or ConfigMap is missing.
fn prepare(inner: &Inner, pod: &Pod, blocked: &[String]) -> Option<Prepared> {
    let mut last_error = String::new();
    loop {
        match prepare_once(inner, pod, blocked) {
            Ok(prepared) => return Some(prepared),
            Err((failing, VolumeError::Config(message))) => {
                for name in config_error_targets(pod, blocked, failing) {
                    let state = ContainerState::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: Some(message.clone()),
                    };
                    pod.set_state(&name, state);
                }
                if message != last_error {
                    pod.event(inner, "Warning", "Failed", &format!("Error: {message}"));
                    pod.publish(inner);
                }
                last_error = message;
            }
            Err((_, VolumeError::Setup(message))) if message != last_error => {
                let text = format!("MountVolume.SetUp failed: {message}");
                pod.event(inner, "Warning", "FailedMount", &text);
                last_error = message;
            }
            Err((_, VolumeError::Setup(_))) => {}
        }
        if !pod.sleep(CONFIG_RETRY) {
            return None;
        }
    }
}

fn startable(pod: &Pod, blocked: &[String]) -> Vec<String> {
    let state = pod.lock();
    let names = state.record.containers.iter().map(|c| c.name.clone());
    names.filter(|n| !blocked.contains(n)).collect()
}

/// The containers that show a config error: the one whose environment failed, else the
/// first init container, else every container.
fn config_error_targets(pod: &Pod, blocked: &[String], failing: Option<String>) -> Vec<String> {
    if let Some(name) = failing {
        return vec![name];
    }
    let state = pod.lock();
    let first_init = state
        .record
        .init_containers
        .iter()
        .find(|c| !blocked.contains(&c.name));
    match first_init {
        Some(init) => vec![init.name.clone()],
        None => {
            drop(state);
            startable(pod, blocked)
        }
    }
}

/// Volumes, then every container's launch; a failure names the container when it is one's.
fn prepare_once(
    inner: &Inner,
    pod: &Pod,
    blocked: &[String],
) -> Result<Prepared, (Option<String>, VolumeError)> {
    let sources = volumes::prepare(&pod.spec, &inner.state_dir, &pod.dir, inner.sink.as_ref())
        .map_err(|e| (None, e))?;
    let mut prepared = Prepared {
        launches: HashMap::new(),
        roots: Vec::new(),
    };
    let list = |key: &str| pod.spec["spec"][key].as_array().into_iter().flatten();
    for container in list("initContainers").chain(list("containers")) {
        let name = container["name"].as_str().unwrap_or("").to_string();
        if blocked.contains(&name) {
            continue;
        }
        let launch = env::launch(&pod.spec, container, inner.sink.as_ref());
        let launch = launch.map_err(|e| (Some(name.clone()), VolumeError::Config(e)))?;
        prepared.roots.push(ContainerRoot {
            name: name.clone(),
            mounts: volumes::mounts_for(container, &sources),
            working_dir: launch.working_dir.clone(),
        });
        prepared.launches.insert(name, launch);
    }
    Ok(prepared)
}

fn create_sandbox(inner: &Inner, pod: &Pod, prepared: Prepared) -> Option<Arc<Sandbox>> {
    let sandbox = match Sandbox::create(
        &pod.dir,
        &hostname(&pod.name),
        &prepared.roots,
        &inner.spawner,
    ) {
        Ok(sandbox) => Arc::new(sandbox),
        Err(e) => {
            let message = format!("Failed to create pod sandbox: {e}");
            pod.event(inner, "Warning", "FailedCreatePodSandBox", &message);
            return None;
        }
    };
    {
        let mut state = pod.lock();
        if state.stopping {
            sandbox.teardown();
            return None;
        }
        state.sandbox = Some(Arc::clone(&sandbox));
        state.launches = prepared.launches;
        state.record.sandbox_ready = true;
    }
    pod.publish(inner);
    Some(sandbox)
}

/// Runs the init containers one after the other; answers whether all completed with 0.
fn run_init_containers(
    inner: &Arc<Inner>,
    pod: &Arc<Pod>,
    fates: &HashMap<String, Fate>,
    blocked: &[String],
    sandbox: &Sandbox,
) -> bool {
    let names: Vec<String> = {
        let state = pod.lock();
        state
            .record
            .init_containers
            .iter()
            .map(|c| c.name.clone())
            .collect()
    };
    if names.is_empty() {
        return true;
    }
    for name in names {
        if blocked.contains(&name) || pod.stopping() {
            return false;
        }
        launch_container(inner, pod, fates.get(&name), &name, sandbox);
        pod.publish(inner);
        if pod.wait_terminated(&name) != Some(0) {
            return false;
        }
    }
    for name in startable(pod, blocked) {
        let creating = ContainerState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        pod.set_state(&name, creating);
    }
    pod.publish(inner);
    true
}

fn start_containers(
    inner: &Arc<Inner>,
    pod: &Arc<Pod>,
    fates: &HashMap<String, Fate>,
    blocked: &[String],
    sandbox: &Sandbox,
) {
    let names: Vec<String> = startable(pod, blocked);
    for name in names {
        if pod.stopping() {
            return;
        }
        launch_container(inner, pod, fates.get(&name), &name, sandbox);
        pod.publish(inner);
    }
}

/// Starts one container (its image is "present"), or ends it at once for `sim/exit`.
fn launch_container(
    inner: &Arc<Inner>,
    pod: &Arc<Pod>,
    fate: Option<&Fate>,
    name: &str,
    sandbox: &Sandbox,
) {
    let image = image_of(pod, name);
    let present = format!("Container image \"{image}\" already present on machine");
    pod.event(inner, "Normal", "Pulled", &present);
    match fate {
        Some(Fate::Exit(code)) => exit_at_once(inner, pod, name, *code),
        _ => start_container(inner, pod, name, sandbox),
    }
}

fn created_and_started(inner: &Inner, pod: &Pod, name: &str) {
    pod.event(
        inner,
        "Normal",
        "Created",
        &format!("Created container {name}"),
    );
    pod.event(
        inner,
        "Normal",
        "Started",
        &format!("Started container {name}"),
    );
}

fn exit_at_once(inner: &Inner, pod: &Pod, name: &str, code: i32) {
    created_and_started(inner, pod, name);
    let now = SystemTime::now();
    let reason = if code == 0 { "Completed" } else { "Error" };
    let termination = Termination {
        exit_code: code,
        reason: reason.into(),
        message: None,
        started_at: now,
        finished_at: now,
    };
    pod.set_state(name, ContainerState::Terminated(termination));
}

fn start_container(inner: &Arc<Inner>, pod: &Arc<Pod>, name: &str, sandbox: &Sandbox) {
    let Some(launch) = pod.lock().launches.get(name).cloned() else {
        return;
    };
    let spawned = log_file(pod, name).and_then(|log| {
        let job = Job {
            container: name,
            argv: &launch.argv,
            env: &launch.env,
            working_dir: &launch.working_dir,
            user: launch.user,
            stdin: if launch.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            },
            stdout: Stdio::from(log.try_clone()?),
            stderr: Stdio::from(log),
        };
        sandbox.spawn(&inner.spawner, job)
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return start_failed(inner, pod, name, &launch, &e),
    };
    created_and_started(inner, pod, name);
    let started_at = SystemTime::now();
    {
        let mut state = pod.lock();
        state.stdins.extend(child.stdin.take());
        if let Some(c) = state.record.container_mut(name) {
            c.state = ContainerState::Running { started_at };
            c.pid = Some(child.id());
        }
    }
    let (inner, waiter_pod, name) = (Arc::clone(inner), Arc::clone(pod), name.to_string());
    let handle = thread::spawn(move || wait_container(&inner, &waiter_pod, &name, child));
    if let Ok(mut waiters) = pod.waiters.lock() {
        waiters.push(handle);
    }
}

fn log_file(pod: &Pod, container: &str) -> std::io::Result<File> {
    let path = pod.log_path(container);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

fn start_failed(inner: &Inner, pod: &Pod, name: &str, launch: &Launch, e: &std::io::Error) {
    let program = launch.argv.first().map(String::as_str).unwrap_or("");
    let cause = super::exec_cause(program, e);
    let message = format!(
        "failed to create containerd task: failed to create shim task: OCI runtime create \
         failed: runc create failed: unable to start container process: {cause}: unknown"
    );
    pod.event(inner, "Warning", "Failed", &format!("Error: {message}"));
    let now = SystemTime::now();
    let termination = Termination {
        exit_code: 128,
        reason: "StartError".into(),
        message: Some(message),
        started_at: now,
        finished_at: now,
    };
    pod.set_state(name, ContainerState::Terminated(termination));
}

/// Reaps a container's main process and records how it ended.
fn wait_container(inner: &Inner, pod: &Pod, name: &str, mut child: Child) {
    use std::os::unix::process::ExitStatusExt;
    let status = child.wait();
    let finished_at = SystemTime::now();
    let exit_code = match &status {
        Ok(s) => s
            .code()
            .or_else(|| s.signal().map(|sig| 128 + sig))
            .unwrap_or(255),
        Err(_) => 255,
    };
    {
        let mut state = pod.lock();
        let oom = state.oom_killed.iter().any(|n| n == name);
        let reason = match (oom, exit_code) {
            (true, _) => "OOMKilled",
            (false, 0) => "Completed",
            _ => "Error",
        };
        if let Some(c) = state.record.container_mut(name) {
            let started_at = match c.state {
                ContainerState::Running { started_at } => started_at,
                _ => finished_at,
            };
            let termination = Termination {
                exit_code,
                reason: reason.into(),
                message: None,
                started_at,
                finished_at,
            };
            c.state = ContainerState::Terminated(termination);
            c.pid = None;
        }
    }
    pod.wake.notify_all();
    pod.publish(inner);
}

/// Runs the timed fates (OOM kills, eviction) until they are all done or the pod stops.
fn run_timers(inner: &Inner, pod: &Pod, fates: &HashMap<String, Fate>) {
    let start = Instant::now();
    let mut timers: Vec<(Duration, Option<&String>)> = sorted(fates)
        .into_iter()
        .filter_map(|(name, fate)| match fate {
            Fate::OomAfter(d) => Some((*d, Some(name))),
            Fate::EvictAfter(d) => Some((*d, None)),
            _ => None,
        })
        .collect();
    timers.sort_by_key(|(d, _)| *d);
    for (delay, container) in timers {
        if !pod.sleep((start + delay).saturating_duration_since(Instant::now())) {
            return;
        }
        match container {
            Some(name) => oom_kill(pod, name),
            None => evict(inner, pod),
        }
    }
}

fn oom_kill(pod: &Pod, name: &str) {
    let mut state = pod.lock();
    let pid = state
        .record
        .containers
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.pid);
    if let Some(pid) = pid {
        state.oom_killed.push(name.to_string());
        signal(pid, libc::SIGKILL);
    }
}

fn evict(inner: &Inner, pod: &Pod) {
    let failure = PodFailure {
        reason: "Evicted",
        message: EVICTED.into(),
        disruption: true,
    };
    fail_pod(inner, pod, failure);
}

/// Fails the whole pod once `activeDeadlineSeconds` passed (counted from now, its start).
fn watch_deadline(inner: &Arc<Inner>, pod: &Arc<Pod>, deadline: Duration) {
    let (inner, watched) = (Arc::clone(inner), Arc::clone(pod));
    let handle = thread::spawn(move || {
        if watched.sleep(deadline) && !watched.lock().record.is_terminal() {
            let failure = PodFailure {
                reason: "DeadlineExceeded",
                message: DEADLINE_EXCEEDED.into(),
                disruption: false,
            };
            fail_pod(&inner, &watched, failure);
        }
    });
    if let Ok(mut waiters) = pod.waiters.lock() {
        waiters.push(handle);
    }
}

/// Marks the pod Failed for `failure` and kills every container.
fn fail_pod(inner: &Inner, pod: &Pod, failure: PodFailure) {
    let (reason, message) = (failure.reason, failure.message.clone());
    {
        let mut state = pod.lock();
        state.record.failure = Some(failure);
        for pid in state.record.all_containers().filter_map(|c| c.pid) {
            signal(pid, libc::SIGKILL);
        }
    }
    pod.event(inner, "Warning", reason, &message);
    pod.publish(inner);
}

/// The QoS class: Guaranteed when every container's requests equal its cpu and memory
/// limits, BestEffort when nothing is asked, Burstable otherwise.
fn qos_class(pod: &Value) -> &'static str {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let asked = containers.iter().any(|c| {
        let r = &c["resources"];
        r["limits"].as_object().is_some_and(|m| !m.is_empty())
            || r["requests"].as_object().is_some_and(|m| !m.is_empty())
    });
    if !asked {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let (limits, requests) = (&c["resources"]["limits"], &c["resources"]["requests"]);
        ["cpu", "memory"]
            .iter()
            .all(|k| limits[k].is_string() && (requests[k].is_null() || requests[k] == limits[k]))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
