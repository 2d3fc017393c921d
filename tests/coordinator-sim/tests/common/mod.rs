//! A plain HTTP client for driving the simulator the way a runner would.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use coordinator_sim::{Dialect, Options, Sim, SimHandle};
use serde_json::{json, Value};

pub const USER_AGENT: &str = "alloy-runner 0.1.0 (linux/amd64)";
pub const REGISTRATION_TOKEN: &str = "reg-token-for-tests";
pub const RUNNER_TOKEN: &str = "runner-token-for-tests";

/// A started simulator with one known runner token.
pub fn start(dialect: Dialect) -> SimHandle {
    start_with(Options {
        dialect,
        ..options()
    })
}

pub fn options() -> Options {
    Options {
        registration_token: REGISTRATION_TOKEN.into(),
        ..Options::default()
    }
}

pub fn start_with(options: Options) -> SimHandle {
    let sim = Sim::start(options).expect("simulator starts on loopback");
    sim.add_runner(RUNNER_TOKEN);
    sim
}

/// What came back: status, headers (lowercase names) and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

fn reply(result: Result<ureq::Response, ureq::Error>) -> Reply {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(err) => panic!("transport error: {err}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| Some((n.to_ascii_lowercase(), response.header(&n)?.to_string())))
        .collect();
    let mut body = Vec::new();
    response
        .into_reader()
        .read_to_end(&mut body)
        .expect("body reads");
    Reply {
        status,
        headers,
        body,
    }
}

pub fn request(sim: &SimHandle, method: &str, path: &str) -> ureq::Request {
    ureq::request(method, &format!("{}/api/v4/{path}", sim.url())).set("User-Agent", USER_AGENT)
}

pub fn send_json(sim: &SimHandle, method: &str, path: &str, body: &Value) -> Reply {
    reply(request(sim, method, path).send_json(body.clone()))
}

pub fn send(req: ureq::Request, body: &[u8]) -> Reply {
    reply(req.send_bytes(body))
}

/// `POST /jobs/request` with the test runner's token.
pub fn request_job(sim: &SimHandle) -> Reply {
    let body = json!({"token": RUNNER_TOKEN, "info": {"name": "alloy-runner"}});
    send_json(sim, "POST", "jobs/request", &body)
}

pub fn update(sim: &SimHandle, id: u64, body: Value) -> Reply {
    send_json(sim, "PUT", &format!("jobs/{id}"), &body)
}

pub fn patch(sim: &SimHandle, id: u64, token: &str, start: usize, bytes: &[u8]) -> Reply {
    let range = format!("{start}-{}", (start + bytes.len()).saturating_sub(1));
    let req = request(sim, "PATCH", &format!("jobs/{id}/trace"))
        .set("JOB-TOKEN", token)
        .set("Content-Type", "text/plain")
        .set("Content-Range", &range);
    send(req, bytes)
}

pub fn upload(sim: &SimHandle, id: u64, token: &str, filename: &str, bytes: &[u8]) -> Reply {
    let boundary = "simtestboundary7MA4YWxk";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let path =
        format!("jobs/{id}/artifacts?expire_in=7d&artifact_format=zip&artifact_type=archive");
    let req = request(sim, "POST", &path).set("JOB-TOKEN", token).set(
        "Content-Type",
        &format!("multipart/form-data; boundary={boundary}"),
    );
    send(req, &body)
}

pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/jobs")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

pub fn pipeline_fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/pipelines")
        .join(name);
    std::fs::read_to_string(path).expect("pipeline fixture exists")
}

/// A fresh folder under the system temp folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "coordinator-sim-test-{label}-{}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A git repository with two commits on branch `main`.
pub fn init_repo(dir: &Path) {
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=sim", "-c", "user.email=sim@localhost"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(
            status.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README"), "one\n").unwrap();
    git(&["add", "README"]);
    git(&["commit", "-q", "-m", "one"]);
    std::fs::write(dir.join("README"), "two\n").unwrap();
    git(&["commit", "-q", "-am", "two"]);
}
