//! `alloy-runner exec`: one job of a local checkout's pipeline file run by the real binary
//! against the Kubernetes simulator, with no coordinator in the config; the sources travel
//! into the pod over exec stdin, the log comes out on stdout while the job runs.

mod e2e_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use coordinator_sim::Dialect;
use e2e_support::{World, NAMESPACE};

/// How long one `exec` may take before the test kills it.
const RUN_LIMIT: Duration = Duration::from_secs(120);

const PIPELINE: &str = r#"{
  "stages": ["build", "test"],
  "build": {
    "stage": "build",
    "script": ["sh build.sh", "cat out/result.txt", "echo \"token=$CI_JOB_TOKEN\"",
               "echo \"greeting=$GREETING\""]
  },
  "slow": {
    "stage": "build",
    "script": ["printf 'early-%s\\n' marker", "sleep 4", "printf 'late-%s\\n' marker"]
  },
  "fail": {
    "stage": "test",
    "script": ["printf 'before-%s\\n' failing", "exit 3", "echo never"]
  }
}"#;

const BUILD_SH: &str = "mkdir -p out && cat src/a.txt src/b.txt > out/result.txt\n";

/// What one `exec` run printed, and when the first chunk holding `watch` reached stdout.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    watched_at: Option<Instant>,
    ended_at: Instant,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A world whose config has no coordinator URL or token, and its checkout with `PIPELINE`.
fn world_and_checkout() -> (World, PathBuf, PathBuf) {
    let world = World::start(Dialect::GitLab, "", "");
    let repo = world.repo(&[
        (".alloy-ci.json", PIPELINE),
        ("build.sh", BUILD_SH),
        ("src/a.txt", "committed a\n"),
        ("src/b.txt", "committed b\n"),
    ]);
    let text = std::fs::read_to_string(&world.config).expect("config readable");
    let local: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("  url =") && !line.starts_with("  token ="))
        .collect();
    let config = world.dir.path().join("exec.toml");
    std::fs::write(&config, local.join("\n")).expect("config written");
    (world, repo, config)
}

/// Runs `alloy-runner exec ARGS` in `cwd`, reading stdout as it comes.
fn exec(config: &Path, cwd: &Path, args: &[&str], watch: &str) -> Run {
    exec_with(config, cwd, args, watch, |_| {})
}

/// [`exec`] that calls `on_watch` with the process id once `watch` is on stdout.
fn exec_with(config: &Path, cwd: &Path, args: &[&str], watch: &str, on_watch: impl Fn(u32)) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alloy-runner"))
        .current_dir(cwd)
        .arg("--config")
        .arg(config)
        .arg("exec")
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runner starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (sender, chunks) = mpsc::channel();
    let reader = std::thread::spawn(move || read_chunks(stdout, &sender));
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::BufReader::new(stderr)
            .read_to_string(&mut text)
            .ok();
        text
    });

    let started = Instant::now();
    let mut out = Vec::new();
    let mut watched_at = None;
    let status = loop {
        while let Ok(chunk) = chunks.try_recv() {
            out.extend_from_slice(&chunk);
            if watched_at.is_none() && String::from_utf8_lossy(&out).contains(watch) {
                watched_at = Some(Instant::now());
                on_watch(child.id());
            }
        }
        if let Some(status) = child.try_wait().expect("runner status") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            child.kill().ok();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ended_at = Instant::now();
    reader.join().expect("stdout reader");
    out.extend(chunks.try_iter().flatten());
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: err_reader.join().expect("stderr reader"),
        watched_at,
        ended_at,
    }
}

fn read_chunks(mut from: impl Read, to: &mpsc::Sender<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    while let Ok(got) = from.read(&mut buf) {
        if got == 0 || to.send(buf[..got].to_vec()).is_err() {
            return;
        }
    }
}

#[test]
fn a_job_builds_the_working_tree_with_its_uncommitted_change() {
    let (world, repo, config) = world_and_checkout();
    std::fs::write(repo.join("src/b.txt"), "uncommitted b\n").expect("edit");
    std::fs::write(repo.join("notes.txt"), "untracked\n").expect("untracked file");

    let run = exec(&config, &repo, &["--env", "GREETING=hi there", "build"], "");

    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(
        run.stdout.contains("committed a\nuncommitted b\n"),
        "{}",
        run.show()
    );
    assert!(run.stdout.contains("token=[MASKED]\n"), "{}", run.show());
    assert!(run.stdout.contains("greeting=hi there\n"), "{}", run.show());
    assert!(run.stdout.contains("Job succeeded"), "{}", run.show());
    assert!(
        run.stdout.contains(
            "untracked files are not part of the sources (git add them to \
             include them): notes.txt"
        ),
        "{}",
        run.show()
    );
    assert!(!run.stdout.contains("section_start"), "{}", run.show());
    assert_eq!(world.pods_left(), Vec::<String>::new());
    assert_eq!(git_stash_list(&repo), "", "exec must leave the stash alone");
}

#[test]
fn the_log_reaches_stdout_while_the_job_runs() {
    let (world, repo, config) = world_and_checkout();
    let run = exec(&config, &repo, &["slow"], "early-marker");
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(run.stdout.contains("late-marker"), "{}", run.show());
    let early = run.watched_at.expect("the early line was seen");
    assert!(
        run.ended_at.duration_since(early) >= Duration::from_secs(3),
        "the early line came only {:?} before the end\n{}",
        run.ended_at.duration_since(early),
        run.show()
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn an_interrupted_job_exits_1_and_removes_its_pod() {
    let (world, repo, config) = world_and_checkout();
    let interrupt = |pid: u32| {
        let sent = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    };
    let run = exec_with(&config, &repo, &["slow"], "early-marker", interrupt);
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert!(!run.stdout.contains("late-marker"), "{}", run.show());
    assert!(
        run.stderr
            .contains("job \"slow\" failed: the runner is shutting down"),
        "{}",
        run.show()
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn a_job_past_its_timeout_exits_1() {
    let (world, repo, config) = world_and_checkout();
    let run = exec(&config, &repo, &["--timeout", "3", "slow"], "");
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert!(
        run.stderr
            .contains("job \"slow\" failed: execution took longer than 3s"),
        "{}",
        run.show()
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn a_failing_script_exits_1_and_removes_its_pod() {
    let (world, repo, config) = world_and_checkout();
    let run = exec(&config, &repo.join("src"), &["--dir", "..", "fail"], "");
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert!(run.stdout.contains("before-failing\n"), "{}", run.show());
    assert!(!run.stdout.contains("\nnever\n"), "{}", run.show());
    assert!(
        run.stderr
            .contains("alloy-runner: error: job \"fail\" failed: exit code 3"),
        "{}",
        run.show()
    );
    assert_eq!(world.pods_left(), Vec::<String>::new());
}

#[test]
fn an_unknown_job_exits_2_listing_the_jobs_without_a_pod() {
    let (world, repo, config) = world_and_checkout();
    let run = exec(&config, &repo, &["biuld"], "");
    assert_eq!(run.code, Some(2), "{}", run.show());
    assert!(
        run.stderr.contains(
            "pipeline file .alloy-ci.json has no job \"biuld\" (jobs: build, slow, fail)"
        ),
        "{}",
        run.show()
    );
    assert_eq!(run.stdout, "");
    assert!(world.kube.pods(NAMESPACE).is_empty());
}

#[test]
fn a_bad_pipeline_file_exits_2_naming_the_job_and_key() {
    let (world, repo, config) = world_and_checkout();
    let file = world.dir.path().join("bad.json");
    std::fs::write(&file, r#"{"build": {"script": ["make"], "stage": 5}}"#).expect("file");
    let file_arg = file.to_string_lossy().into_owned();
    let run = exec(&config, &repo, &["--file", &file_arg, "build"], "");
    assert_eq!(run.code, Some(2), "{}", run.show());
    assert!(
        run.stderr.contains(&format!(
            "pipeline file {} is rejected: job `build`: `stage` must be",
            file.display()
        )),
        "{}",
        run.show()
    );
    assert!(world.kube.pods(NAMESPACE).is_empty());
}

#[test]
fn a_folder_outside_git_exits_2() {
    let (world, _repo, config) = world_and_checkout();
    let plain = world.dir.path().join("plain");
    std::fs::create_dir_all(&plain).expect("folder");
    std::fs::write(plain.join(".alloy-ci.json"), PIPELINE).expect("file");
    let run = exec(&config, &plain, &["build"], "");
    assert_eq!(run.code, Some(2), "{}", run.show());
    assert!(
        run.stderr
            .contains("the sources folder is not a git checkout"),
        "{}",
        run.show()
    );
}

fn git_stash_list(repo: &Path) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["stash", "list"])
        .output()
        .expect("git runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
