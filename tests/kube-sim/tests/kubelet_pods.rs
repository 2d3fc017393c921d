//! The simulated kubelet: pod status, exec, sandboxes and teardown (needs root).

mod kubelet_common;

use kube_sim::kubelet::ExitOutcome;
use kubelet_common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn pod_goes_running_with_the_status_shape_of_a_real_kubelet() {
    let node = Node::new();
    let spec = pod("shape", json!([sleeper("build", "alpine:3.19")]), json!([]));
    node.kubelet.start_pod(&spec);

    let first = node.sink.wait_phase("shape", "Pending");
    let scheduled = first["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["status"] == "True");
    assert!(scheduled, "{first:#}");
    assert_eq!(
        first["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );

    let status = node.sink.wait_phase("shape", "Running");
    assert_eq!(status["hostIP"], "127.0.0.1");
    assert_eq!(status["podIP"], "127.0.0.1");
    assert!(status["startTime"].as_str().unwrap().ends_with('Z'));
    for kind in ["Initialized", "Ready", "ContainersReady", "PodScheduled"] {
        let found = status["conditions"].as_array().unwrap().iter().any(|c| {
            c["type"] == kind && c["status"] == "True" && c["lastTransitionTime"].is_string()
        });
        assert!(found, "condition {kind} missing in {status:#}");
    }
    let c = &status["containerStatuses"][0];
    assert_eq!(c["name"], "build");
    assert_eq!(c["ready"], true);
    assert_eq!(c["restartCount"], 0);
    assert_eq!(c["image"], "alpine:3.19");
    assert!(c["imageID"].as_str().unwrap().starts_with("alpine@sha256:"));
    assert!(c["containerID"]
        .as_str()
        .unwrap()
        .starts_with("containerd://"));
    assert!(c["state"]["running"]["startedAt"].is_string());
    let events = node.sink.events("shape");
    assert!(events
        .iter()
        .any(|e| e.2 == "Started" && e.3 == "Started container build"));
}

#[test]
fn exec_returns_both_streams_and_the_exit_code() {
    let node = Node::new();
    node.kubelet.start_pod(&pod(
        "streams",
        json!([sleeper("build", "alpine")]),
        json!([]),
    ));
    node.sink.wait_phase("streams", "Running");

    let (out, err, exit) = node.sh("streams", "build", "echo out; echo err >&2; exit 7");
    assert_eq!(
        (out.as_str(), err.as_str(), exit),
        ("out\n", "err\n", ExitOutcome::Code(7))
    );
}

#[test]
fn exec_pipes_stdin_to_the_command() {
    let node = Node::new();
    node.kubelet.start_pod(&pod(
        "stdin",
        json!([sleeper("build", "alpine")]),
        json!([]),
    ));
    node.sink.wait_phase("stdin", "Running");

    let command: Vec<String> = ["sh", "-c", "tr a-z A-Z"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut process = node
        .kubelet
        .exec("ci", "stdin", "build", &command, true)
        .unwrap();
    let mut stdin = process.stdin.take().unwrap();
    stdin.write_all(b"hello").unwrap();
    drop(stdin);
    let mut out = String::new();
    process
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "HELLO");
    assert_eq!(process.wait().unwrap(), ExitOutcome::Code(0));
}

#[test]
fn exec_is_refused_with_the_api_servers_wording() {
    let node = Node::new();
    let containers = json!([
        sleeper("build", "alpine"),
        sleeper("helper", "sim/pull-error")
    ]);
    node.kubelet
        .start_pod(&pod("refuse", containers, json!([])));
    node.sink.wait_status("refuse", |s| {
        s["containerStatuses"][0]["state"]["running"].is_object()
    });
    let cmd = vec!["true".to_string()];

    let missing = node
        .kubelet
        .exec("ci", "nope", "build", &cmd, false)
        .unwrap_err();
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "pods \"nope\" not found")
    );
    assert_eq!(missing.reason, "NotFound");
    let unknown = node
        .kubelet
        .exec("ci", "refuse", "svc-9", &cmd, false)
        .unwrap_err();
    assert_eq!(unknown.code, 400);
    assert_eq!(
        unknown.message,
        "container svc-9 is not valid for pod refuse"
    );
    let unnamed = node
        .kubelet
        .exec("ci", "refuse", "", &cmd, false)
        .unwrap_err();
    assert_eq!(
        unnamed.message,
        "a container name must be specified for pod refuse, choose one of: [build helper]"
    );
    let waiting = node
        .kubelet
        .exec("ci", "refuse", "helper", &cmd, false)
        .unwrap_err();
    assert_eq!(waiting.code, 400);
    assert_eq!(
        waiting.message,
        "unable to upgrade connection: container not found (\"helper\")"
    );
    let absent = vec!["no-such-program-xyz".to_string()];
    let failed = node
        .kubelet
        .exec("ci", "refuse", "build", &absent, false)
        .unwrap_err();
    assert_eq!(failed.code, 500);
    assert!(failed
        .message
        .contains("\"no-such-program-xyz\": executable file not found"));
}

#[test]
fn containers_get_their_env_expanded_working_dir_and_pod_hostname() {
    let node = Node::new();
    let container = json!({
        "name": "build", "image": "alpine", "workingDir": "/builds/group/project",
        "command": ["sh", "-c", "echo '$(GREETING) $$(GREETING)' > /tmp/argv; sleep 3600"],
        "env": [
            {"name": "NAME", "value": "world"},
            {"name": "GREETING", "value": "hello $(NAME) $(UNDEFINED) $$(NAME)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
    });
    node.kubelet
        .start_pod(&pod("env", json!([container]), json!([])));
    node.sink.wait_phase("env", "Running");

    let script = "echo \"$GREETING|$POD|$(pwd)|$(uname -n)\"; \
                  while [ ! -s /tmp/argv ]; do sleep 0.05; done; cat /tmp/argv";
    let (out, err, exit) = node.sh("env", "build", script);
    assert_eq!(exit, ExitOutcome::Code(0), "{err}");
    let expected = "hello world $(UNDEFINED) $(NAME)|env|/builds/group/project|env\n\
                    hello world $(UNDEFINED) $(NAME) $(GREETING)\n";
    assert_eq!(out, expected);
    assert!(!std::path::Path::new("/builds/group/project").exists());
}

#[test]
fn volumes_of_every_kind_appear_at_their_mount_paths() {
    let node = Node::new();
    let host_dir = node.dir.join("host-data");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "h").unwrap();
    node.sink.put(
        "configmaps",
        "cm",
        json!({"data": {"a.conf": "alpha", "b": "beta"}}),
    );
    node.sink
        .put("secrets", "sec", json!({"data": {"token": "czNjcjN0"}}));
    let mounts = json!([
        {"name": "builds", "mountPath": "/builds"},
        {"name": "mem", "mountPath": "/var/cache/kube-sim-test-mem"},
        {"name": "host", "mountPath": "/host", "readOnly": true},
        {"name": "cm", "mountPath": "/etc/cm"},
        {"name": "sec", "mountPath": "/run/secrets/sim"},
        {"name": "cache", "mountPath": "/cache"},
    ]);
    let volumes = json!([
        {"name": "builds", "emptyDir": {}},
        {"name": "mem", "emptyDir": {"medium": "Memory"}},
        {"name": "host", "hostPath": {"path": host_dir}},
        {"name": "cm", "configMap": {"name": "cm",
                                     "items": [{"key": "a.conf", "path": "sub/a.conf"}]}},
        {"name": "sec", "secret": {"secretName": "sec"}},
        {"name": "cache", "persistentVolumeClaim": {"claimName": "shared"}},
    ]);
    let container = json!({"name": "build", "image": "alpine", "command": ["sleep", "3600"],
                           "volumeMounts": mounts});
    let before = host_mounts();
    node.kubelet
        .start_pod(&pod("vols", json!([container]), volumes));
    node.sink.wait_phase("vols", "Running");

    let script = "cat /host/from-host /etc/cm/sub/a.conf /run/secrets/sim/token; echo; \
                  ls /etc/cm; df -t tmpfs /var/cache/kube-sim-test-mem >/dev/null && echo mem; \
                  touch /host/x 2>/dev/null || echo ro; echo kept > /cache/file; touch /builds/b";
    let (out, err, exit) = node.sh("vols", "build", script);
    assert_eq!(exit, ExitOutcome::Code(0), "{err}");
    assert_eq!(out, "halphas3cr3t\nsub\nmem\nro\n");

    // Nothing of the sandbox is visible on the host.
    assert_eq!(host_mounts(), before);
    assert!(!std::path::Path::new("/var/cache/kube-sim-test-mem").exists());
    assert!(!std::path::Path::new("/host").exists());

    // A claim keeps its files for the next pod that uses it.
    node.kubelet.stop_pod("ci", "vols", Duration::from_secs(1));
    node.sink.wait_gone("vols");
    let mount = json!([{"name": "cache", "mountPath": "/cache"}]);
    let reader = json!({"name": "build", "image": "alpine", "command": ["sleep", "3600"],
                        "volumeMounts": mount});
    let claim = json!([{"name": "cache", "persistentVolumeClaim": {"claimName": "shared"}}]);
    node.kubelet
        .start_pod(&pod("vols2", json!([reader]), claim));
    node.sink.wait_phase("vols2", "Running");
    let (out, _, _) = node.sh("vols2", "build", "cat /cache/file");
    assert_eq!(out, "kept\n");
}

#[test]
fn stop_pod_terminates_every_process_and_reports_the_pod_gone() {
    let node = Node::new();
    let container = json!({"name": "build", "image": "alpine",
                           "command": ["sh", "-c", "sleep 3601 & sleep 3602"]});
    node.kubelet
        .start_pod(&pod("stop", json!([container]), json!([])));
    node.sink.wait_phase("stop", "Running");
    let exec = node.kubelet.exec(
        "ci",
        "stop",
        "build",
        &["sleep".into(), "3603".into()],
        false,
    );
    let exec_pid = exec.as_ref().unwrap().pid().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(pids_running(&node.dir, "sleep 360").len(), 3);

    node.kubelet
        .stop_pod("ci", "stop", Duration::from_millis(500));
    node.sink.wait_gone("stop");
    drop(exec);
    assert!(!alive(exec_pid));
    assert!(pids_running(&node.dir, "sleep 360").is_empty());
    assert!(!node.dir.join("pods").read_dir().unwrap().any(|e| e.is_ok()));
    let killing = node.sink.events("stop").iter().any(|e| e.2 == "Killing");
    assert!(killing);
}

#[test]
fn stopping_a_pod_the_kubelet_never_ran_reports_it_gone() {
    let node = Node::new();
    node.kubelet
        .stop_pod("ci", "never-started", Duration::from_secs(30));
    node.sink.wait_gone("never-started");
}

#[test]
fn shutdown_kills_every_pod_and_leaves_no_sandbox() {
    let node = Node::new();
    node.kubelet
        .start_pod(&pod("s1", json!([sleeper("build", "alpine")]), json!([])));
    let c = json!({"name": "build", "image": "alpine", "command": ["sleep", "3604"]});
    node.kubelet.start_pod(&pod("s2", json!([c]), json!([])));
    node.sink.wait_phase("s1", "Running");
    node.sink.wait_phase("s2", "Running");
    assert_eq!(pids_running(&node.dir, "sleep 3604").len(), 1);

    node.kubelet.shutdown();
    assert!(pids_running(&node.dir, "sleep 3604").is_empty());
    assert!(!node.dir.join("pods").read_dir().unwrap().any(|e| e.is_ok()));
}

#[test]
fn containers_that_exit_end_the_pod_succeeded_or_failed() {
    let node = Node::new();
    let ok = json!({"name": "build", "image": "alpine", "command": ["true"]});
    node.kubelet.start_pod(&pod("done", json!([ok]), json!([])));
    let status = node.sink.wait_phase("done", "Succeeded");
    let term = &status["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].as_i64(), term["reason"].as_str()),
        (Some(0), Some("Completed"))
    );
    assert!(term["startedAt"].is_string() && term["finishedAt"].is_string());

    let bad = json!({"name": "build", "image": "alpine", "command": ["sh", "-c", "exit 4"]});
    node.kubelet.start_pod(&pod("bad", json!([bad]), json!([])));
    let status = node.sink.wait_phase("bad", "Failed");
    let term = &status["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].as_i64(), term["reason"].as_str()),
        (Some(4), Some("Error"))
    );
    let refused = node
        .kubelet
        .exec("ci", "bad", "build", &["true".into()], false)
        .unwrap_err();
    assert_eq!(
        refused.message,
        "cannot exec into a container in a completed pod; current phase is Failed"
    );
}

#[test]
fn containers_and_execs_run_as_the_security_context_user() {
    let node = Node::new();
    let mut spec = pod("user", json!([sleeper("build", "alpine")]), json!([]));
    spec["spec"]["securityContext"] = json!({"runAsUser": 1000});
    spec["spec"]["containers"][0]["securityContext"] = json!({"runAsGroup": 2000});
    node.kubelet.start_pod(&spec);
    node.sink.wait_phase("user", "Running");

    let (out, _, _) = node.sh("user", "build", "echo $(id -u):$(id -g)");
    assert_eq!(out, "1000:2000\n");
}

/// Set in the child process of `every_pod_process_dies_with_the_simulator`.
const CHILD_ROLE: &str = "KUBE_SIM_TEST_KUBELET_CHILD";

#[test]
fn every_pod_process_dies_with_the_simulator() {
    if std::env::var_os(CHILD_ROLE).is_some() {
        // The simulator: run a pod, tell the parent, wait to be killed.
        let node = Node::new();
        // The background sleep has no parent-death signal: only the PID namespace kills it.
        let script = "sleep 3605 & sleep 3606";
        let c = json!({"name": "build", "image": "alpine", "command": ["sh", "-c", script]});
        node.kubelet
            .start_pod(&pod("orphan", json!([c]), json!([])));
        node.sink.wait_phase("orphan", "Running");
        println!("READY {}", node.dir.display());
        std::thread::sleep(Duration::from_secs(60));
        return;
    }

    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "every_pod_process_dies_with_the_simulator",
            "--nocapture",
        ])
        .env(CHILD_ROLE, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let dir = lines
        .find_map(|l| l.ok()?.strip_prefix("READY ").map(String::from))
        .unwrap();
    let dir = std::path::PathBuf::from(dir);
    let mut pids = pids_running(&dir, "sleep 3605");
    for _ in 0..100 {
        if !pids.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        pids = pids_running(&dir, "sleep 3605");
    }

    child.kill().unwrap();
    child.wait().unwrap();
    let in_pod = || !pids_running(&dir, "").is_empty();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while in_pod() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(pids.len(), 1, "the background sleep of the pod");
    assert!(!in_pod(), "a process of the pod outlived the simulator");
}

#[test]
fn init_containers_run_to_completion_before_the_containers() {
    let node = Node::new();
    let mount = json!([{"name": "work", "mountPath": "/work-dir"}]);
    let init = json!({"name": "prepare", "image": "alpine", "volumeMounts": mount,
                      "command": ["sh", "-c", "sleep 0.3; echo prepared > /work-dir/flag"]});
    let main = json!({"name": "build", "image": "alpine", "volumeMounts": mount,
                      "command": ["sleep", "3600"]});
    let mut spec = pod(
        "init",
        json!([main]),
        json!([{"name": "work", "emptyDir": {}}]),
    );
    spec["spec"]["initContainers"] = json!([init]);
    node.kubelet.start_pod(&spec);

    let first = node.sink.wait_phase("init", "Pending");
    let waiting = &first["containerStatuses"][0]["state"]["waiting"]["reason"];
    assert_eq!(waiting, "PodInitializing");
    let running = node.sink.wait_phase("init", "Running");
    let init_status = &running["initContainerStatuses"][0];
    assert_eq!(init_status["state"]["terminated"]["reason"], "Completed");
    assert_eq!(init_status["ready"], true);
    let initialized = running["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    assert!(initialized, "{running:#}");
    let (out, _, _) = node.sh("init", "build", "cat /work-dir/flag");
    assert_eq!(out, "prepared\n");
}

#[test]
fn a_failing_init_container_fails_the_pod() {
    let node = Node::new();
    let init = json!({"name": "prepare", "image": "alpine", "command": ["sh", "-c", "exit 2"]});
    let mut spec = pod("init-fail", json!([sleeper("build", "alpine")]), json!([]));
    spec["spec"]["initContainers"] = json!([init]);
    node.kubelet.start_pod(&spec);

    let status = node.sink.wait_phase("init-fail", "Failed");
    let term = &status["initContainerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].as_i64(), term["reason"].as_str()),
        (Some(2), Some("Error"))
    );
    let waiting = &status["containerStatuses"][0]["state"]["waiting"]["reason"];
    assert_eq!(waiting, "PodInitializing");
    let condition = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Initialized");
    let condition = condition.unwrap();
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "ContainersNotInitialized");
    assert_eq!(
        condition["message"],
        "containers with incomplete status: [prepare]"
    );
    assert!(pids_running(&node.dir, "sleep 3600").is_empty());
}

#[test]
fn a_pod_past_its_active_deadline_fails_with_deadline_exceeded() {
    let node = Node::new();
    let mut spec = pod("deadline", json!([sleeper("build", "alpine")]), json!([]));
    spec["spec"]["activeDeadlineSeconds"] = json!(1);
    node.kubelet.start_pod(&spec);
    node.sink.wait_phase("deadline", "Running");

    let status = node.sink.wait_phase("deadline", "Failed");
    assert_eq!(status["reason"], "DeadlineExceeded");
    assert_eq!(
        status["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    let events = node.sink.events("deadline");
    assert!(events
        .iter()
        .any(|e| e.1 == "Warning" && e.2 == "DeadlineExceeded"));
}

#[test]
fn container_output_is_kept_as_its_log() {
    let node = Node::new();
    let script = "echo to-stdout; echo to-stderr >&2";
    let c = json!({"name": "build", "image": "alpine", "command": ["sh", "-c", script]});
    node.kubelet.start_pod(&pod("logs", json!([c]), json!([])));
    node.sink.wait_phase("logs", "Succeeded");

    let log = node.kubelet.logs("ci", "logs", "build").unwrap();
    assert_eq!(String::from_utf8(log).unwrap(), "to-stdout\nto-stderr\n");
    assert_eq!(node.kubelet.logs("ci", "nope", "build"), None);
}
