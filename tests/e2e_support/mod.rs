//! End-to-end harness: the Kubernetes simulator (HTTPS, bearer token) and the coordinator
//! simulator run in this test process; the runner is the real binary, started as a child with a
//! config.toml that points at both.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use coordinator_sim::{Dialect, JobRecord, Options, PipelineRun};
use kube_sim::{Rule, Sim, SimHandle, SimOptions, TokenSpec};
use serde_json::Value;

/// The bearer token the runner uses against the Kubernetes simulator.
pub const KUBE_TOKEN: &str = "e2e-kube-token";
/// The runner token registered with the coordinator simulator.
pub const RUNNER_TOKEN: &str = "e2e-runner-token-1";
/// The namespace job pods go to.
pub const NAMESPACE: &str = "ci";
/// How long one runner invocation may take before the test kills it.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// Both simulators, a temporary folder and a config.toml for the runner.
pub struct World {
    pub kube: SimHandle,
    pub coordinator: coordinator_sim::SimHandle,
    pub dir: TempDir,
    pub config: PathBuf,
    pub dialect: Dialect,
}

/// How to start a [`World`].
#[derive(Default)]
pub struct Setup {
    pub dialect: Dialect,
    pub sim: SimOptions,
    /// The coordinator simulator's options (its dialect is `dialect`).
    pub coordinator: Options,
    /// What the runner's Kubernetes token may do; `None` allows everything.
    pub kube_rules: Option<Vec<Rule>>,
    /// Appended to the `[[runners]]` entry.
    pub runner_extra: String,
    /// Appended to `[runners.kubernetes]`.
    pub kubernetes_extra: String,
}

/// A job variable added to a payload.
pub struct Var {
    pub key: &'static str,
    pub value: &'static str,
    pub masked: bool,
    pub file: bool,
}

impl Var {
    /// A plain variable.
    pub fn plain(key: &'static str, value: &'static str) -> Var {
        Var {
            key,
            value,
            masked: false,
            file: false,
        }
    }
}

/// A runner process started in the background.
pub struct Running {
    child: std::process::Child,
}

impl Running {
    /// Sends SIGTERM to the runner.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the runner to exit (killed after a limit) and returns what it said.
    pub fn wait(mut self) -> Output {
        let started = Instant::now();
        while self.child.try_wait().expect("runner status").is_none() {
            if started.elapsed() > RUN_LIMIT {
                self.child.kill().ok();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.wait_with_output().expect("runner output")
    }
}

impl World {
    /// Starts both simulators; `kubernetes_extra` is appended to `[runners.kubernetes]` and
    /// `runner_extra` to the `[[runners]]` entry.
    pub fn start(dialect: Dialect, runner_extra: &str, kubernetes_extra: &str) -> World {
        World::start_with(
            dialect,
            SimOptions::default(),
            runner_extra,
            kubernetes_extra,
        )
    }

    /// [`World::start`] with chosen Kubernetes simulator options (TLS and the token are added).
    pub fn start_with(
        dialect: Dialect,
        sim: SimOptions,
        runner_extra: &str,
        kubernetes_extra: &str,
    ) -> World {
        World::build(Setup {
            dialect,
            sim,
            runner_extra: runner_extra.to_string(),
            kubernetes_extra: kubernetes_extra.to_string(),
            ..Setup::default()
        })
    }

    /// Starts both simulators as `setup` says and writes the config.
    pub fn build(setup: Setup) -> World {
        let mut sim = setup.sim;
        sim.tls = true;
        sim.tokens.push(TokenSpec {
            token: KUBE_TOKEN.to_string(),
            user: "system:serviceaccount:ci:runner".to_string(),
            rules: setup.kube_rules,
        });
        let kube = Sim::start(sim).expect("kubernetes simulator starts");
        let options = Options {
            dialect: setup.dialect,
            ..setup.coordinator
        };
        let coordinator =
            coordinator_sim::Sim::start(options).expect("coordinator simulator starts");
        coordinator.add_runner(RUNNER_TOKEN);
        let dir = TempDir::new("e2e");
        let config = dir.path().join("config.toml");
        let world = World {
            kube,
            coordinator,
            dir,
            config,
            dialect: setup.dialect,
        };
        let section = world.runner_section(
            "e2e",
            RUNNER_TOKEN,
            &setup.runner_extra,
            &setup.kubernetes_extra,
        );
        world.write_config(1, &[section]);
        world
    }

    /// One `[[runners]]` entry pointing at both simulators.
    pub fn runner_section(
        &self,
        name: &str,
        token: &str,
        runner_extra: &str,
        kubernetes_extra: &str,
    ) -> String {
        let ca = self.kube.ca_pem_path().expect("the simulator serves TLS");
        format!(
            "[[runners]]\n  name = \"{name}\"\n  url = \"{}\"\n  token = \"{token}\"\n  \
             executor = \"kubernetes\"\n{runner_extra}\n  [runners.kubernetes]\n    \
             host = \"{}\"\n    ca_file = \"{}\"\n    bearer_token = \"{KUBE_TOKEN}\"\n    \
             namespace = \"{NAMESPACE}\"\n    image = \"alpine:3.20\"\n    poll_interval = 1\n    \
             poll_timeout = 30\n{kubernetes_extra}\n",
            self.coordinator.url(),
            self.kube.url(),
            ca.display()
        )
    }

    /// Writes config.toml with `concurrent` and these `[[runners]]` entries.
    pub fn write_config(&self, concurrent: u32, sections: &[String]) {
        let text = format!(
            "concurrent = {concurrent}\ncheck_interval = 1\n\n{}",
            sections.join("\n")
        );
        std::fs::write(&self.config, text).expect("config written");
    }

    /// A git repository with `files`, committed on branch `main`.
    pub fn repo(&self, files: &[(&str, &str)]) -> PathBuf {
        let repo = self.dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("repo folder");
        for (name, content) in files {
            let path = repo.join(name);
            std::fs::create_dir_all(path.parent().expect("file in a folder")).expect("folders");
            std::fs::write(&path, content).expect("file written");
        }
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "-A"]);
        git(
            &repo,
            &[
                "-c",
                "user.name=e2e",
                "-c",
                "user.email=e2e@localhost",
                "commit",
                "-qm",
                "init",
            ],
        );
        repo
    }

    /// Adds a commit with `files` to `repo`.
    pub fn commit(&self, repo: &Path, files: &[(&str, &str)]) {
        for (name, content) in files {
            std::fs::write(repo.join(name), content).expect("file written");
        }
        git(repo, &["add", "-A"]);
        let identity = ["-c", "user.name=e2e", "-c", "user.email=e2e@localhost"];
        git(repo, &[&identity[..], &["commit", "-qm", "more"]].concat());
    }

    /// Queues a pipeline over `repo`.
    pub fn pipeline(&self, json: &str, repo: &Path) -> PipelineRun {
        self.coordinator
            .enqueue_pipeline(json, repo)
            .expect("pipeline queued")
    }

    /// Runs `alloy-runner run-single` until `max_builds` jobs are done (or 20 s without a job).
    pub fn run_single(&self, max_builds: u32) -> Output {
        let max = max_builds.to_string();
        self.runner(&["run-single", "--max-builds", &max, "--wait-timeout", "20"])
    }

    /// Runs the runner binary with this world's config and `args`, killed after a limit.
    pub fn runner(&self, args: &[&str]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_alloy-runner"))
            .arg("--config")
            .arg(&self.config)
            .arg("--log-level")
            .arg("debug")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runner starts");
        let started = Instant::now();
        while child.try_wait().expect("runner status").is_none() {
            if started.elapsed() > RUN_LIMIT {
                child.kill().ok();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("runner output")
    }

    /// Starts the runner binary in the background with this world's config and `args`.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let child = Command::new(env!("CARGO_BIN_EXE_alloy-runner"))
            .arg("--config")
            .arg(&self.config)
            .arg("--log-level")
            .arg("debug")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runner starts");
        Running { child }
    }

    /// Starts `run-single` for one job in the background.
    pub fn spawn_single(&self) -> Running {
        self.spawn(&["run-single", "--max-builds", "1", "--wait-timeout", "20"])
    }

    /// Waits until the job's incremental trace contains `text` (a marker the script printed).
    pub fn wait_for_log(&self, id: u64, text: &str) -> JobRecord {
        self.coordinator
            .wait_for_job(id, Duration::from_secs(60), |record| {
                String::from_utf8_lossy(&record.trace_incremental).contains(text)
            })
            .unwrap_or_else(|| {
                panic!(
                    "job {id} never logged {text:?}: {:?}",
                    self.coordinator.job(id)
                )
            })
    }

    /// The name of the only job pod, once it exists (waits up to 60 s).
    pub fn job_pod(&self) -> Value {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(pod) = self.kube.pods(NAMESPACE).into_iter().next() {
                return pod;
            }
            assert!(Instant::now() < until, "no job pod was created");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A job payload in this world's dialect for `job` of `pipeline_json`, with GIT_STRATEGY
    /// none (no repository) and `variables` (`key`, `value`, `masked`, `file`) added.
    pub fn payload(&self, pipeline_json: &str, job: &str, variables: &[Var]) -> Value {
        let pipeline = alloy_runner::pipeline::parse(pipeline_json).expect("pipeline parses");
        let job = pipeline.job(job).expect("job in the pipeline");
        let ctx = alloy_runner::pipeline::PayloadContext {
            dialect: self.dialect(),
            job_token: alloy_runner::secret::Secret::new("e2e-job-token".to_string()),
            project_name: "app".into(),
            project_path: "e2e/app".into(),
            repo_url: alloy_runner::secret::Secret::new("http://127.0.0.1:9/none.git".to_string()),
            ref_name: "main".into(),
            sha: "0".repeat(40),
            before_sha: "0".repeat(40),
            ..Default::default()
        };
        let mut payload = job.to_payload(&ctx);
        // The simulator assigns the id.
        payload
            .as_object_mut()
            .expect("payload object")
            .remove("id");
        let list = payload["variables"].as_array_mut().expect("variables list");
        list.push(serde_json::json!({"key": "GIT_STRATEGY", "value": "none", "public": true}));
        for var in variables {
            let mut entry =
                serde_json::json!({"key": var.key, "value": var.value, "public": false});
            if self.dialect() == Dialect::GitLab {
                entry["masked"] = Value::Bool(var.masked);
                entry["file"] = Value::Bool(var.file);
            }
            list.push(entry);
        }
        payload
    }

    /// Queues a payload; returns the job id.
    pub fn enqueue(&self, payload: Value) -> u64 {
        self.coordinator
            .enqueue_payload(payload)
            .expect("payload queued")
    }

    fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The job's record once the coordinator has its final state.
    pub fn finished(&self, id: u64) -> JobRecord {
        self.coordinator
            .wait_for_job_finished(id, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("job {id} did not finish: {:?}", self.coordinator.job(id)))
    }

    /// Pods left in the job namespace once graceful deletions have had up to 15 s to finish.
    /// Every pod must already be marked for deletion when this is called.
    pub fn pods_left(&self) -> Vec<String> {
        let undeleted: Vec<String> = self
            .kube
            .pods(NAMESPACE)
            .iter()
            .filter(|pod| pod.pointer("/metadata/deletionTimestamp").is_none())
            .map(|pod| pod["metadata"]["name"].as_str().unwrap_or("?").to_string())
            .collect();
        assert_eq!(
            undeleted,
            Vec::<String>::new(),
            "pods not even marked for deletion"
        );
        let until = Instant::now() + Duration::from_secs(15);
        while !self.kube.pods(NAMESPACE).is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kube
            .pods(NAMESPACE)
            .iter()
            .map(|pod| pod["metadata"]["name"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}

/// The job log as the coordinator received it (the final PUT's trace, else the patches).
pub fn log_of(record: &JobRecord) -> String {
    String::from_utf8_lossy(record.log()).into_owned()
}

/// Asserts that the job was reported failed with `reason`; `log` is shown when it was not.
pub fn assert_failed(record: &JobRecord, reason: &str, log: &str) {
    assert_eq!(record.reported_state.as_deref(), Some("failed"), "{log}");
    assert_eq!(record.failure_reason.as_deref(), Some(reason), "{log}");
}

/// Prints what the runner said, for a failing test's output.
pub fn show(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} failed");
}

/// A temporary folder removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!(
            "alloy-{prefix}-{}-{n}-{}",
            std::process::id(),
            nanos()
        ));
        std::fs::create_dir_all(&path).expect("temp folder");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
