//! The foreground binary: prints its URL and registration token, writes finished jobs.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use serde_json::json;

/// Kills the simulator if the test fails before it exits on its own.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn binary_serves_a_fixture_job_and_prints_its_log() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/jobs/sim-gitlab-basic.json"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_coordinator-sim"))
        .args([
            "--dialect",
            "gitlab",
            "--registration-token",
            "bin-reg",
            "--runner-token",
            "rt",
        ])
        .args(["--job", fixture, "--exit-when-done"])
        .env("COORDINATOR_SIM_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut child = Running(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("coordinator-sim listening on ")
        .unwrap()
        .to_string();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "registration token: bin-reg");

    // Act as the runner: take the job, send a log, finish it.
    let api = |path: &str| format!("{url}/api/v4/{path}");
    let job: serde_json::Value = ureq::post(&api("jobs/request"))
        .set("User-Agent", "alloy-runner test")
        .send_json(json!({"token": "rt", "info": {}}))
        .unwrap()
        .into_json()
        .unwrap();
    let token = job["token"].as_str().unwrap();
    ureq::request("PATCH", &api("jobs/1234/trace"))
        .set("User-Agent", "alloy-runner test")
        .set("JOB-TOKEN", token)
        .set("Content-Type", "text/plain")
        .set("Content-Range", "0-5")
        .send_bytes(b"hello\n")
        .unwrap();
    ureq::put(&api("jobs/1234"))
        .set("User-Agent", "alloy-runner test")
        .send_json(json!({"token": token, "state": "success"}))
        .unwrap();

    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.0.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("=== job 1234 `mix test`: success"), "{rest}");
    assert!(rest.contains("hello\n"), "{rest}");
}

#[test]
fn binary_refuses_a_non_loopback_address() {
    let output = Command::new(env!("CARGO_BIN_EXE_coordinator-sim"))
        .env("COORDINATOR_SIM_ADDR", "0.0.0.0:0")
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("only loopback addresses are served"),
        "{stderr}"
    );
}
