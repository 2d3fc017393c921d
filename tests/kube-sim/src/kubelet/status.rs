//! The pod status model the kubelet keeps, and its JSON form (`PodStatus` of core/v1).

use serde_json::{json, Value};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// The address every pod gets: containers share the host's network.
pub const POD_IP: &str = "127.0.0.1";

/// One container's state, as `containerStatuses[].state` tells it.
#[derive(Clone, Debug, PartialEq)]
pub enum ContainerState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: SystemTime,
    },
    Terminated(Termination),
}

/// How and when a container ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Termination {
    pub exit_code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
}

/// What the kubelet knows of one container.
#[derive(Clone, Debug)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    /// Host pid of the container's main process while it runs.
    pub pid: Option<u32>,
}

impl ContainerRecord {
    pub fn is_running(&self) -> bool {
        matches!(self.state, ContainerState::Running { .. })
    }

    /// The exit code, once the container terminated.
    pub fn exit_code(&self) -> Option<i32> {
        match &self.state {
            ContainerState::Terminated(t) => Some(t.exit_code),
            _ => None,
        }
    }

    fn is_terminated(&self) -> bool {
        matches!(self.state, ContainerState::Terminated(_))
    }
}

/// Whether the pod found a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Scheduling {
    Unschedulable(String),
    Scheduled,
}

/// Everything the status of one pod is rendered from.
#[derive(Clone, Debug)]
pub struct PodRecord {
    pub uid: String,
    pub scheduling: Scheduling,
    pub start_time: SystemTime,
    pub containers: Vec<ContainerRecord>,
    /// Init containers, run one after the other before `containers`.
    pub init_containers: Vec<ContainerRecord>,
    /// Set once the sandbox exists (condition PodReadyToStartContainers).
    pub sandbox_ready: bool,
    /// Why the node failed the whole pod (eviction, active deadline), once it did.
    pub failure: Option<PodFailure>,
    pub qos_class: &'static str,
    transitions: Vec<(&'static str, bool, SystemTime)>,
}

impl PodRecord {
    /// A pod just handed to the kubelet: every container waits in ContainerCreating, or in
    /// PodInitializing when there are init containers.
    pub fn new(uid: &str, init: Vec<(String, String)>, containers: Vec<(String, String)>) -> Self {
        let first = if init.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let records = |list: Vec<(String, String)>| -> Vec<ContainerRecord> {
            let record = |(name, image)| ContainerRecord {
                name,
                image,
                state: waiting(first, None),
                pid: None,
            };
            list.into_iter().map(record).collect()
        };
        let (init_containers, containers) = (records(init), records(containers));
        PodRecord {
            uid: uid.to_string(),
            scheduling: Scheduling::Scheduled,
            start_time: SystemTime::now(),
            containers,
            init_containers,
            sandbox_ready: false,
            failure: None,
            qos_class: "BestEffort",
            transitions: Vec::new(),
        }
    }

    /// The container (init or not) of that name.
    pub fn container_mut(&mut self, name: &str) -> Option<&mut ContainerRecord> {
        let mut all = self
            .init_containers
            .iter_mut()
            .chain(self.containers.iter_mut());
        all.find(|c| c.name == name)
    }

    /// Every container, init containers first.
    pub fn all_containers(&self) -> impl Iterator<Item = &ContainerRecord> {
        self.init_containers.iter().chain(self.containers.iter())
    }

    /// The init containers that have not completed successfully.
    fn incomplete_init(&self) -> Vec<&str> {
        let done = |c: &&ContainerRecord| c.exit_code() == Some(0);
        self.init_containers
            .iter()
            .filter(|c| !done(c))
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The phase by the kubelet's rules for restartPolicy Never.
    // TODO: restartPolicy Always and OnFailure are treated as Never: containers are never
    // restarted (no restartCount, no CrashLoopBackOff); CI pods use Never.
    pub fn phase(&self) -> &'static str {
        if self.failure.is_some() {
            return "Failed";
        }
        if self.scheduling != Scheduling::Scheduled {
            return "Pending";
        }
        if self
            .init_containers
            .iter()
            .any(|c| c.exit_code().is_some_and(|code| code != 0))
        {
            return "Failed";
        }
        if !self.incomplete_init().is_empty() {
            return "Pending";
        }
        let waiting = self
            .containers
            .iter()
            .filter(|c| !c.is_running() && !c.is_terminated());
        if waiting.count() > 0 {
            return "Pending";
        }
        if self.containers.iter().any(ContainerRecord::is_running) {
            return "Running";
        }
        let failed = self.containers.iter().any(|c| match &c.state {
            ContainerState::Terminated(t) => t.exit_code != 0,
            _ => false,
        });
        if failed {
            "Failed"
        } else {
            "Succeeded"
        }
    }

    /// Whether the pod reached a phase it never leaves.
    pub fn is_terminal(&self) -> bool {
        matches!(self.phase(), "Succeeded" | "Failed")
    }

    /// The `status` object of the pod as the API server stores it.
    pub fn render(&mut self) -> Value {
        let conditions = self.conditions();
        let mut status = json!({
            "phase": self.phase(),
            "conditions": conditions,
            "qosClass": self.qos_class,
        });
        if let Scheduling::Unschedulable(_) = self.scheduling {
            return status;
        }
        let statuses: Vec<Value> = self
            .containers
            .iter()
            .map(|c| self.container_json(c))
            .collect();
        let fields = json!({
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": rfc3339(self.start_time),
            "containerStatuses": statuses,
        });
        merge(&mut status, fields);
        if !self.init_containers.is_empty() {
            let init: Vec<Value> = self
                .init_containers
                .iter()
                .map(|c| self.container_json(c))
                .collect();
            merge(&mut status, json!({ "initContainerStatuses": init }));
        }
        if let Some(failure) = &self.failure {
            let why = json!({"reason": failure.reason, "message": failure.message});
            merge(&mut status, why);
        }
        status
    }

    fn conditions(&mut self) -> Vec<Value> {
        if let Scheduling::Unschedulable(message) = self.scheduling.clone() {
            let at = self.transition("PodScheduled", false);
            return vec![condition(
                "PodScheduled",
                false,
                at,
                Some(("Unschedulable", &message)),
            )];
        }
        let mut out = Vec::new();
        if let Some(failure) = self.failure.clone().filter(|f| f.disruption) {
            let at = self.transition("DisruptionTarget", true);
            let reason = Some(("TerminationByKubelet", failure.message.as_str()));
            out.push(condition("DisruptionTarget", true, at, reason));
        }
        let sandbox = self.sandbox_ready && !self.is_terminal();
        let at = self.transition("PodReadyToStartContainers", sandbox);
        out.push(condition("PodReadyToStartContainers", sandbox, at, None));
        let incomplete = self.incomplete_init().join(" ");
        let initialized = incomplete.is_empty();
        let at = self.transition("Initialized", initialized);
        let message = format!("containers with incomplete status: [{incomplete}]");
        let why = (!initialized).then_some(("ContainersNotInitialized", message.as_str()));
        out.push(condition("Initialized", initialized, at, why));

        let (ready, reason, message) = self.readiness();
        for kind in ["Ready", "ContainersReady"] {
            let at = self.transition(kind, ready);
            let why = reason.map(|r| (r, message.as_str()));
            out.push(condition(kind, ready, at, if ready { None } else { why }));
        }
        let at = self.transition("PodScheduled", true);
        out.push(condition("PodScheduled", true, at, None));
        out
    }

    fn readiness(&self) -> (bool, Option<&'static str>, String) {
        if self.is_terminal() {
            return (false, Some("PodCompleted"), String::new());
        }
        let unready: Vec<&str> = self
            .containers
            .iter()
            .filter(|c| !c.is_running())
            .map(|c| c.name.as_str())
            .collect();
        if unready.is_empty() {
            return (true, None, String::new());
        }
        let message = format!("containers with unready status: [{}]", unready.join(" "));
        (false, Some("ContainersNotReady"), message)
    }

    /// The time a condition last changed, recording a change now if its status differs.
    fn transition(&mut self, kind: &'static str, status: bool) -> SystemTime {
        if let Some(entry) = self.transitions.iter_mut().find(|(k, _, _)| *k == kind) {
            if entry.1 != status {
                *entry = (kind, status, SystemTime::now());
            }
            return entry.2;
        }
        let now = SystemTime::now();
        self.transitions.push((kind, status, now));
        now
    }

    fn container_json(&self, c: &ContainerRecord) -> Value {
        let started = matches!(c.state, ContainerState::Running { .. });
        let is_init = self.init_containers.iter().any(|i| i.name == c.name);
        let ready = if is_init {
            c.exit_code() == Some(0)
        } else {
            started
        };
        let mut out = json!({
            "name": c.name,
            "state": state_json(&c.state),
            "lastState": {},
            "ready": ready,
            "restartCount": 0,
            "image": c.image,
            "imageID": image_id(&c.image),
            "started": started,
        });
        let created = !matches!(c.state, ContainerState::Waiting { .. });
        if created {
            out["containerID"] = Value::from(container_id(&self.uid, &c.name));
        }
        out
    }
}

/// Why the node failed a whole pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodFailure {
    /// `status.reason`: `Evicted` or `DeadlineExceeded`.
    pub reason: &'static str,
    pub message: String,
    /// Whether the pod gets a `DisruptionTarget` condition.
    pub disruption: bool,
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState::Waiting {
        reason: reason.to_string(),
        message,
    }
}

fn state_json(state: &ContainerState) -> Value {
    match state {
        ContainerState::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = Value::from(m.as_str());
            }
            json!({ "waiting": w })
        }
        ContainerState::Running { started_at } => {
            json!({"running": {"startedAt": rfc3339(*started_at)}})
        }
        ContainerState::Terminated(t) => {
            let mut term = json!({
                "exitCode": t.exit_code,
                "reason": t.reason,
                "startedAt": rfc3339(t.started_at),
                "finishedAt": rfc3339(t.finished_at),
            });
            if let Some(m) = &t.message {
                term["message"] = Value::from(m.as_str());
            }
            json!({ "terminated": term })
        }
    }
}

fn condition(kind: &str, status: bool, at: SystemTime, why: Option<(&str, &str)>) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": rfc3339(at),
    });
    if let Some((reason, message)) = why {
        c["reason"] = Value::from(reason);
        if !message.is_empty() {
            c["message"] = Value::from(message);
        }
    }
    c
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// A stable 64-hex-digit digest of some text (not cryptographic: ids only).
pub fn digest(text: &str) -> String {
    (0..4u8)
        .map(|round| {
            let mut h = DefaultHasher::new();
            (round, text).hash(&mut h);
            format!("{:016x}", h.finish())
        })
        .collect()
}

/// The `containerID` a containerd runtime would report.
pub fn container_id(pod_uid: &str, container: &str) -> String {
    format!("containerd://{}", digest(&format!("{pod_uid}/{container}")))
}

/// The `imageID` of an image: its name with a digest.
pub fn image_id(image: &str) -> String {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    format!("{repo}@sha256:{}", digest(image))
}

/// A time as RFC 3339 in UTC with whole seconds, as Kubernetes writes `metav1.Time`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's method).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_times_as_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_400_000);
        assert_eq!(rfc3339(t), "2026-12-04T16:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn image_id_drops_the_tag_but_keeps_a_registry_port() {
        assert!(image_id("alpine:3.19").starts_with("alpine@sha256:"));
        assert!(image_id("reg:5000/app").starts_with("reg:5000/app@sha256:"));
        assert_eq!(image_id("alpine").len(), "alpine@sha256:".len() + 64);
    }

    #[test]
    fn phase_is_pending_while_a_container_waits_even_if_another_ended() {
        let containers = vec![("build".into(), "a".into()), ("helper".into(), "b".into())];
        let mut pod = PodRecord::new("uid", Vec::new(), containers);
        let now = SystemTime::now();
        pod.containers[0].state = ContainerState::Terminated(Termination {
            exit_code: 1,
            reason: "Error".into(),
            message: None,
            started_at: now,
            finished_at: now,
        });
        assert_eq!(pod.phase(), "Pending");
        pod.containers[1].state = ContainerState::Running { started_at: now };
        assert_eq!(pod.phase(), "Running");
        let status = pod.render();
        assert_eq!(status["conditions"][2]["type"], "Ready");
        assert_eq!(status["conditions"][2]["status"], "False");
        assert_eq!(
            status["conditions"][2]["message"],
            "containers with unready status: [build]"
        );
    }
}
