//! The real kubectl (/usr/bin/kubectl, a dispatcher that runs the bundled 1.32) against the
//! simulator: create, get, exec, list by label, delete, over HTTP, HTTPS with a client
//! certificate and HTTPS with a bearer token.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use kube_sim::{Credentials, Sim, SimHandle, SimOptions, TokenSpec};

const KUBECTL: &str = "/usr/bin/kubectl";
/// Longest a single kubectl run may take before the test kills it.
const KUBECTL_DEADLINE: Duration = Duration::from_secs(90);

const POD: &str = r#"{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "p1", "labels": {"app": "x"}},
  "spec": {
    "restartPolicy": "Never",
    "terminationGracePeriodSeconds": 2,
    "containers": [
      {"name": "c", "image": "alpine", "command": ["sh", "-c", "echo started; sleep 300"]}
    ]
  }
}"#;

/// A kubectl bound to one simulator through a kubeconfig in a temporary HOME.
struct Kubectl {
    dir: TempDir,
    kubeconfig: PathBuf,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(sim: &SimHandle, credentials: Credentials) -> Self {
        let dir = TempDir::new("kubectl");
        let kubeconfig = dir.0.join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig, &credentials, "ci")
            .unwrap();
        std::fs::write(dir.0.join("pod.json"), POD).unwrap();
        Kubectl { dir, kubeconfig }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=30s")
            .args(args)
            .current_dir(&self.dir.0)
            .env("HOME", &self.dir.0)
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl starts");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).unwrap();
        }
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > KUBECTL_DEADLINE {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args, None);
        assert_eq!(run.code, Some(0), "kubectl {args:?} failed: {}", run.stderr);
        run.stdout
    }

    fn create_running_pod(&self, sim: &SimHandle) {
        assert_eq!(
            self.ok(&["create", "-f", "pod.json"]).trim(),
            "pod/p1 created"
        );
        let running = sim.wait_for_pod("ci", "p1", Duration::from_secs(20), |p| {
            p.is_some_and(|p| p["status"]["phase"] == "Running")
        });
        assert!(running, "pod p1 runs");
    }
}

/// Create, get as JSON, exec (exit code and both streams), exec with stdin, list, delete.
fn full_round(sim: &SimHandle, kubectl: &Kubectl) {
    kubectl.create_running_pod(sim);
    let pod: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "pod", "p1", "-o", "json"])).unwrap();
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["metadata"]["namespace"], "ci");

    assert_eq!(kubectl.ok(&["logs", "p1", "-c", "c"]), "started\n");

    let exec = kubectl.run(
        &[
            "exec",
            "p1",
            "-c",
            "c",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ],
        None,
    );
    assert_eq!(exec.code, Some(7), "stderr: {}", exec.stderr);
    assert_eq!(exec.stdout, "out\n");
    assert!(
        exec.stderr.starts_with("err\n"),
        "stderr: {:?}",
        exec.stderr
    );

    let cat = kubectl.run(
        &["exec", "-i", "p1", "-c", "c", "--", "cat"],
        Some("line one\nline two\n"),
    );
    assert_eq!(cat.code, Some(0), "stderr: {}", cat.stderr);
    assert_eq!(cat.stdout, "line one\nline two\n");

    let listed = kubectl.ok(&["get", "pods", "-l", "app=x"]);
    assert!(
        listed.lines().next().unwrap().starts_with("NAME"),
        "{listed}"
    );
    assert!(
        listed.contains("p1") && listed.contains("Running"),
        "{listed}"
    );
    let none = kubectl.run(&["get", "pods", "-l", "app=other"], None);
    assert!(
        none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );

    assert_eq!(
        kubectl.ok(&["delete", "pod", "p1"]).trim(),
        "pod \"p1\" deleted"
    );
    assert!(sim.pod("ci", "p1").is_none());
    let gone = kubectl.run(&["get", "pod", "p1"], None);
    assert_eq!(gone.code, Some(1));
    assert!(
        gone.stderr.contains("pods \"p1\" not found"),
        "{}",
        gone.stderr
    );
}

#[test]
fn kubectl_runs_a_pod_through_its_life_over_http() {
    let sim = Sim::start(SimOptions::default()).unwrap();
    full_round(&sim, &Kubectl::new(&sim, Credentials::Anonymous));
}

#[test]
fn kubectl_runs_a_pod_over_https_with_a_client_certificate() {
    let options = SimOptions {
        tls: true,
        client_cert_auth: true,
        ..SimOptions::default()
    };
    let sim = Sim::start(options).unwrap();
    full_round(&sim, &Kubectl::new(&sim, Credentials::ClientCert));
    assert!(sim.requests().iter().all(|r| r.user == "sim-admin"));
}

#[test]
fn kubectl_runs_a_pod_over_https_with_a_bearer_token() {
    let token = TokenSpec::admin("kubectl-token", "ci-admin");
    let options = SimOptions {
        tls: true,
        tokens: vec![token],
        ..SimOptions::default()
    };
    let sim = Sim::start(options).unwrap();
    full_round(
        &sim,
        &Kubectl::new(&sim, Credentials::Token("kubectl-token".into())),
    );
    assert!(sim.requests().iter().all(|r| r.user == "ci-admin"));
}

#[test]
fn kubectl_with_a_wrong_token_is_unauthorized() {
    let token = TokenSpec::admin("right", "ci-admin");
    let options = SimOptions {
        tls: true,
        tokens: vec![token],
        ..SimOptions::default()
    };
    let sim = Sim::start(options).unwrap();
    let run = Kubectl::new(&sim, Credentials::Token("wrong".into())).run(&["get", "pods"], None);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("You must be logged in to the server"),
        "{}",
        run.stderr
    );
}

#[test]
fn kubectl_create_names_an_unknown_field_with_and_without_client_validation() {
    let sim = Sim::start(SimOptions::default()).unwrap();
    let kubectl = Kubectl::new(&sim, Credentials::Anonymous);
    let bad = POD.replace(
        r#""image": "alpine","#,
        r#""image": "alpine", "imagePullSecret": "x","#,
    );
    std::fs::write(kubectl.dir.0.join("bad.json"), bad).unwrap();

    let strict = kubectl.run(&["create", "-f", "bad.json"], None);
    assert_eq!(strict.code, Some(1));
    assert!(
        strict
            .stderr
            .contains("unknown field \"spec.containers[0].imagePullSecret\""),
        "{}",
        strict.stderr
    );

    let lax = kubectl.run(&["create", "--validate=false", "-f", "bad.json"], None);
    assert_eq!(lax.code, Some(1));
    assert!(
        lax.stderr.contains("spec.containers[0].imagePullSecret"),
        "{}",
        lax.stderr
    );
    assert!(sim.pods("ci").is_empty());
}

#[test]
fn the_default_kubeconfig_carries_the_client_certificate() {
    let options = SimOptions {
        tls: true,
        client_cert_auth: true,
        ..SimOptions::default()
    };
    let sim = Sim::start(options).unwrap();
    let kubectl = Kubectl::new(&sim, Credentials::Anonymous);
    sim.kubeconfig(&kubectl.kubeconfig).unwrap();
    let run = kubectl.run(&["get", "pods"], None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("No resources found in default namespace."),
        "{}",
        run.stderr
    );
    assert!(sim.requests().iter().all(|r| r.user == "sim-admin"));
}
