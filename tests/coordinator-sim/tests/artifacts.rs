//! Artifacts upload (multipart, streamed to a file) and download.

mod common;

use common::*;
use coordinator_sim::{Dialect, Options};

fn running_fixture(sim: &coordinator_sim::SimHandle, name: &str) -> (u64, String) {
    let id = sim.enqueue_payload(fixture(name)).unwrap();
    let reply = request_job(sim);
    (id, reply.json()["token"].as_str().unwrap().to_string())
}

#[test]
fn upload_stores_the_file_part_and_download_returns_it() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_fixture(&sim, "sim-gitlab-basic.json");
    // Bytes that look like a boundary's start must not end the part.
    let zip: Vec<u8> = b"PK\x03\x04\r\n--simtest not a boundary\r\n"
        .iter()
        .copied()
        .chain((0..200_000u32).map(|n| (n % 251) as u8))
        .collect();
    let reply = upload(&sim, id, &token, "out.zip", &zip);
    assert_eq!(reply.status, 201);

    let record = sim.job(id).unwrap();
    assert_eq!(record.artifacts_filename.as_deref(), Some("out.zip"));
    assert_eq!(record.artifacts_size, Some(zip.len() as u64));
    assert_eq!(record.artifacts_expire_in.as_deref(), Some("7d"));
    assert_eq!(std::fs::read(record.artifacts.unwrap()).unwrap(), zip);

    let req = request(&sim, "GET", &format!("jobs/{id}/artifacts")).set("JOB-TOKEN", &token);
    let download = send(req, b"");
    assert_eq!(download.status, 200);
    assert_eq!(download.header("content-type"), Some("application/zip"));
    assert_eq!(download.body, zip);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn upload_over_the_limit_is_413() {
    let sim = start_with(Options {
        max_artifact_bytes: 1000,
        ..options()
    });
    let (id, token) = running_fixture(&sim, "sim-gitlab-basic.json");
    assert_eq!(
        upload(&sim, id, &token, "out.zip", &[7u8; 2000]).status,
        413
    );
    assert!(sim.job(id).unwrap().artifacts.is_none());
    assert_eq!(upload(&sim, id, &token, "out.zip", &[7u8; 500]).status, 201);

    // Streamed without a length, the part is cut off at the limit.
    let mut body =
        b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\r\n"
            .to_vec();
    body.extend_from_slice(&[1u8; 3000]);
    body.extend_from_slice(b"\r\n--b--\r\n");
    let req = request(
        &sim,
        "POST",
        &format!("jobs/{id}/artifacts?artifact_format=zip"),
    )
    .set("JOB-TOKEN", &token)
    .set("Content-Type", "multipart/form-data; boundary=b");
    let chunked = req.send(std::io::Cursor::new(body));
    assert!(matches!(chunked, Err(ureq::Error::Status(413, _))));
}

#[test]
fn alloyci_answers_404_when_the_job_declared_no_artifacts() {
    let sim = start(Dialect::AlloyCi);
    let (id, token) = running_fixture(&sim, "sim-alloyci-basic.json");
    assert_eq!(upload(&sim, id, &token, "artifacts.zip", b"PK").status, 404);

    let gitlab = start(Dialect::GitLab);
    let mut payload = fixture("sim-gitlab-basic.json");
    payload["artifacts"] = serde_json::json!([]);
    let id = gitlab.enqueue_payload(payload).unwrap();
    let token = request_job(&gitlab).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        upload(&gitlab, id, &token, "artifacts.zip", b"PK").status,
        201
    );
}

#[test]
fn upload_needs_the_job_token_header() {
    let sim = start(Dialect::GitLab);
    let (id, _) = running_fixture(&sim, "sim-gitlab-basic.json");
    assert_eq!(upload(&sim, id, "wrong", "out.zip", b"PK").status, 403);
    assert!(sim.violations().is_empty());

    let alloy = start(Dialect::AlloyCi);
    let mut payload = fixture("sim-alloyci-basic.json");
    payload["artifacts"] = serde_json::json!([{"name": "out", "paths": ["out/"]}]);
    let id = alloy.enqueue_payload(payload).unwrap();
    let req = request(
        &alloy,
        "POST",
        &format!("jobs/{id}/artifacts?artifact_format=zip"),
    )
    .set("Content-Type", "multipart/form-data; boundary=x");
    assert_eq!(send(req, b"--x--\r\n").status, 500);
    assert_eq!(alloy.violations().len(), 1);
}

#[test]
fn download_without_artifacts_is_404_and_a_wrong_token_403() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_fixture(&sim, "sim-gitlab-basic.json");
    let req = request(&sim, "GET", &format!("jobs/{id}/artifacts")).set("JOB-TOKEN", &token);
    assert_eq!(send(req, b"").status, 404);
    let req = request(&sim, "GET", &format!("jobs/{id}/artifacts")).set("JOB-TOKEN", "other");
    assert_eq!(send(req, b"").status, 403);
}

#[test]
fn upload_without_a_file_part_is_a_violation() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_fixture(&sim, "sim-gitlab-basic.json");
    let body = "--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n";
    let req = request(
        &sim,
        "POST",
        &format!("jobs/{id}/artifacts?artifact_format=zip"),
    )
    .set("JOB-TOKEN", &token)
    .set("Content-Type", "multipart/form-data; boundary=b");
    assert_eq!(send(req, body.as_bytes()).status, 400);
    assert_eq!(
        sim.violations(),
        [format!("POST artifacts {id}: no part named `file`")]
    );
}

#[test]
fn chunked_upload_is_stored_whole() {
    let sim = start(Dialect::GitLab);
    let (id, token) = running_fixture(&sim, "sim-gitlab-basic.json");
    let zip: Vec<u8> = (0..300_000u32).map(|n| (n % 7) as u8).collect();
    let mut body =
        b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.zip\"\r\n\r\n"
            .to_vec();
    body.extend_from_slice(&zip);
    body.extend_from_slice(b"\r\n--b--\r\n");
    let req = request(
        &sim,
        "POST",
        &format!("jobs/{id}/artifacts?artifact_format=zip"),
    )
    .set("JOB-TOKEN", &token)
    .set("Content-Type", "multipart/form-data; boundary=b");
    // A reader body goes out with chunked transfer coding.
    assert_eq!(req.send(std::io::Cursor::new(body)).unwrap().status(), 201);
    let record = sim.job(id).unwrap();
    assert_eq!(std::fs::read(record.artifacts.unwrap()).unwrap(), zip);

    // The connection stays usable for the next request.
    assert_eq!(request_job(&sim).status, 204);
}

#[test]
fn redirected_download_serves_the_file_from_object_storage() {
    let sim = start_with(Options {
        artifacts_redirect: true,
        ..options()
    });
    let (id, token) = running_fixture(&sim, "sim-gitlab-basic.json");
    upload(&sim, id, &token, "out.zip", b"PK-redirected");

    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let url = format!("{}/api/v4/jobs/{id}/artifacts", sim.url());
    let reply = agent
        .get(&url)
        .set("User-Agent", USER_AGENT)
        .set("JOB-TOKEN", &token)
        .call();
    let response = match reply {
        Err(ureq::Error::Status(302, response)) => response,
        Ok(response) if response.status() == 302 => response,
        other => panic!("expected 302, got {other:?}"),
    };
    let location = response.header("location").unwrap().to_string();
    assert_eq!(location, format!("{}/storage/artifacts/{id}", sim.url()));

    let mut body = Vec::new();
    let stored = ureq::get(&location).call().unwrap();
    std::io::Read::read_to_end(&mut stored.into_reader(), &mut body).unwrap();
    assert_eq!(body, b"PK-redirected");
}
