//! The runner API v4 client against scripted loopback coordinators, in both dialects.

mod coordinator_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alloy_runner::coordinator::artifacts::ArtifactsUpload;
use alloy_runner::coordinator::{
    CancelState, Client, ClientOptions, CoordinatorError, JobRequest, JobUpdate, PatchOutcome,
    Registration, RunnerInfo, UpdateOutcome,
};
use alloy_runner::secret::Secret;
use coordinator_support::{Recorded, Reply, Server, TempDir};
use serde_json::json;

const RUNNER_TOKEN: &str = "rT0k3nRunner14";
const JOB_TOKEN: &str = "jT0k3nJob";

fn client(server: &Server) -> Client {
    let options = ClientOptions {
        artifacts_retry_wait: Duration::from_millis(10),
        ..ClientOptions::default()
    };
    Client::with_options(&format!("{}/ci/", server.url()), options).expect("a loopback url")
}

fn token(value: &str) -> Secret {
    Secret::new(value)
}

fn answering(status: u16) -> Server {
    Server::start(move |_| Reply::new(status))
}

#[test]
fn register_sends_the_registration_token_and_info_and_returns_id_and_token() {
    let server = Server::start(|_| Reply::new(201).json(json!({"id": 12, "token": "newT0ken"})));
    let registration = Registration {
        description: "k8s-runner".to_string(),
        tags: vec!["k8s".to_string(), "linux".to_string()],
        run_untagged: true,
        locked: false,
    };
    let registered = client(&server)
        .register(&token("regT0ken"), &registration, &RunnerInfo::default())
        .expect("register succeeds");
    assert_eq!((registered.id, registered.token.expose()), (12, "newT0ken"));

    let request = &server.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path()),
        ("POST", "/api/v4/runners")
    );
    let body = request.json();
    assert_eq!(body["token"], "regT0ken");
    assert_eq!(body["description"], "k8s-runner");
    assert_eq!(body["tag_list"], "k8s,linux");
    assert_eq!(
        (body["run_untagged"].clone(), body["locked"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(body["info"]["name"], "alloy-runner");
    assert_eq!(body["info"]["executor"], "kubernetes");
    let agent = request.header("User-Agent").expect("a user agent");
    assert!(agent.starts_with("alloy-runner "), "{agent}");
    assert_eq!(request.header("Content-Type"), Some("application/json"));
}

#[test]
fn register_with_a_bad_registration_token_is_forbidden_and_hides_the_token() {
    let server = answering(403);
    let error = client(&server)
        .register(
            &token("regT0ken"),
            &Registration::default(),
            &RunnerInfo::default(),
        )
        .expect_err("403 refuses");
    assert!(matches!(
        error,
        CoordinatorError::Forbidden { status: 403, .. }
    ));
    let message = error.to_string();
    assert!(
        message.contains("/api/v4/runners") && !message.contains("regT0ken"),
        "{message}"
    );
}

#[test]
fn verify_is_false_only_for_403() {
    for (status, alive) in [(200, true), (403, false), (500, true), (404, true)] {
        let server = answering(status);
        let result = client(&server)
            .verify(&token(RUNNER_TOKEN))
            .expect("verify answers");
        assert_eq!(result, alive, "status {status}");
        let request = &server.requests()[0];
        assert_eq!(request.path(), "/api/v4/runners/verify");
        assert_eq!(request.json(), json!({"token": RUNNER_TOKEN}));
    }
}

#[test]
fn unregister_deletes_with_the_token_in_the_body() {
    let server = answering(204);
    client(&server)
        .unregister(&token(RUNNER_TOKEN))
        .expect("204 is done");
    let request = &server.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path()),
        ("DELETE", "/api/v4/runners")
    );
    assert_eq!(request.json()["token"], RUNNER_TOKEN);

    let server = answering(403);
    let error = client(&server)
        .unregister(&token(RUNNER_TOKEN))
        .expect_err("403 refuses");
    assert!(matches!(error, CoordinatorError::Forbidden { .. }));
}

fn request_job(server: &Server) -> Result<JobRequest, CoordinatorError> {
    client(server).request_job(&token(RUNNER_TOKEN), &RunnerInfo::default())
}

#[test]
fn a_201_alloyci_job_is_decoded() {
    let payload = include_str!("../fixtures/jobs/alloyci-lenient.json");
    let server = Server::start(move |_| {
        Reply::new(201)
            .header("Content-Type", "application/json; charset=utf-8")
            .body(payload.as_bytes())
    });
    let Ok(JobRequest::Job(job)) = request_job(&server) else {
        panic!("expected a job");
    };
    assert_eq!(
        (job.id, job.git_info.ref_name.as_str()),
        (88, "feature/login")
    );
    let body = server.requests()[0].json();
    assert_eq!(body["token"], RUNNER_TOKEN);
    assert!(
        body.get("last_update").is_none(),
        "no last_update before one was seen"
    );
}

#[test]
fn a_204_means_no_job() {
    let server = answering(204);
    assert!(matches!(request_job(&server), Ok(JobRequest::NoJob)));
}

#[test]
fn a_bad_runner_token_is_unhealthy_in_both_dialects() {
    for status in [401, 403] {
        let server = answering(status);
        let answer = request_job(&server).expect("an answer");
        assert!(matches!(answer, JobRequest::Unhealthy { status: s } if s == status));
    }
}

#[test]
fn conflicts_and_server_errors_are_transient() {
    for status in [409, 500, 502, 503] {
        let server = answering(status);
        let error = request_job(&server).expect_err("transient");
        assert!(error.is_transient(), "status {status}");
        assert_eq!(error.retry_after(), None);
        assert!(error.to_string().contains("/api/v4/jobs/request"));
    }
}

#[test]
fn a_429_carries_the_wait_from_retry_after_or_the_reset_time() {
    let server = Server::start(|_| Reply::new(429).header("Retry-After", "7"));
    let error = request_job(&server).expect_err("429 is an error");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));

    let server = Server::start(|_| {
        Reply::new(429).header("RateLimit-ResetTime", "Thu, 01 Jan 1970 00:00:00 GMT")
    });
    let error = request_job(&server).expect_err("429 is an error");
    assert_eq!(
        error.retry_after(),
        Some(Duration::ZERO),
        "a past reset time means now"
    );
}

#[test]
fn a_network_error_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = Client::new(&format!("http://127.0.0.1:{port}")).expect("url");
    let error = client
        .request_job(&token(RUNNER_TOKEN), &RunnerInfo::default())
        .expect_err("refused");
    assert!(matches!(error, CoordinatorError::Transport { .. }) && error.is_transient());
}

#[test]
fn a_201_that_does_not_decode_is_returned_with_id_and_token() {
    let payload = include_str!("../fixtures/jobs/invalid-wrong-types.json");
    let server =
        Server::start(move |_| Reply::new(201).json(serde_json::from_str(payload).unwrap()));
    let Ok(JobRequest::Unparseable { id, token, message }) = request_job(&server) else {
        panic!("expected an unparseable job");
    };
    assert_eq!(id, Some(92));
    assert_eq!(
        token.map(|t| t.expose().to_string()).as_deref(),
        Some("wT3dE5gH7jK9mN")
    );
    assert!(message.contains("does not decode"));

    let server = Server::start(|_| {
        Reply::new(201)
            .header("Content-Type", "text/html")
            .body(b"<p>")
    });
    let Ok(JobRequest::Unparseable {
        id: None, message, ..
    }) = request_job(&server)
    else {
        panic!("expected an unparseable job");
    };
    assert!(message.contains("text/html"), "{message}");
}

#[test]
fn the_last_update_header_is_sent_back_on_the_next_request() {
    let server = Server::start(|_| Reply::new(204).header("X-GitLab-Last-Update", "abc123"));
    let client = client(&server);
    for _ in 0..2 {
        client
            .request_job(&token(RUNNER_TOKEN), &RunnerInfo::default())
            .expect("204");
    }
    let requests = server.requests();
    assert!(requests[0].json().get("last_update").is_none());
    assert_eq!(requests[1].json()["last_update"], "abc123");
}

fn update(server: &Server) -> Result<alloy_runner::coordinator::UpdateAnswer, CoordinatorError> {
    client(server).update_job(77, &token(JOB_TOKEN), &JobUpdate::running())
}

#[test]
fn update_statuses_map_to_outcomes() {
    let cases = [
        (200, UpdateOutcome::Accepted, CancelState::None),
        (202, UpdateOutcome::NotFinished, CancelState::None),
        (412, UpdateOutcome::ChecksumMismatch, CancelState::None),
        (
            403,
            UpdateOutcome::Stopped { status: 403 },
            CancelState::Now,
        ),
        (
            404,
            UpdateOutcome::Stopped { status: 404 },
            CancelState::Now,
        ),
    ];
    for (status, outcome, cancel) in cases {
        let server = answering(status);
        let answer = update(&server).expect("an answer");
        assert_eq!(
            (answer.outcome, answer.cancel),
            (outcome, cancel),
            "status {status}"
        );
        let request = &server.requests()[0];
        assert_eq!(
            (request.method.as_str(), request.path()),
            ("PUT", "/api/v4/jobs/77")
        );
        assert_eq!(
            request.json(),
            json!({"token": JOB_TOKEN, "state": "running"})
        );
        assert_eq!(
            request.header("JOB-TOKEN"),
            None,
            "the PUT carries the token in the body"
        );
    }
    let error = update(&answering(500)).expect_err("500 is transient");
    assert!(error.is_transient() && error.to_string().contains("/api/v4/jobs/77"));
}

#[test]
fn job_status_headers_ask_for_a_cancel_in_both_spellings() {
    let cases = [
        ("canceled", CancelState::Now),
        ("cancelled", CancelState::Now),
        ("failed", CancelState::Now),
        ("canceling", CancelState::Graceful),
        ("running", CancelState::None),
    ];
    for (status, cancel) in cases {
        let server = Server::start(move |_| Reply::new(200).header("Job-Status", status));
        assert_eq!(
            update(&server).expect("an answer").cancel,
            cancel,
            "{status}"
        );
    }
}

#[test]
fn a_patch_sends_an_inclusive_range_and_the_job_token_header() {
    let server = Server::start(|_| Reply::new(202).header("Range", "0-100"));
    let answer = client(&server)
        .patch_trace(77, &token(JOB_TOKEN), 10, b"hello")
        .expect("202");
    // AlloyCI's constant `Range: 0-100` is ignored: the offset is our own.
    assert_eq!(answer.outcome, PatchOutcome::Accepted { next_offset: 15 });
    let request = &server.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path()),
        ("PATCH", "/api/v4/jobs/77/trace")
    );
    assert_eq!(request.header("Content-Range"), Some("10-14"));
    assert_eq!(request.header("JOB-TOKEN"), Some(JOB_TOKEN));
    assert_eq!(request.header("Content-Type"), Some("text/plain"));
    assert_eq!(request.body, b"hello");
}

#[test]
fn a_416_tells_where_the_coordinator_is() {
    let server = Server::start(|_| Reply::new(416).header("Range", "0-42"));
    let answer = client(&server)
        .patch_trace(77, &token(JOB_TOKEN), 50, b"x")
        .expect("416");
    assert_eq!(
        answer.outcome,
        PatchOutcome::RangeMismatch { server_size: 42 }
    );
}

#[test]
fn a_patch_answered_403_or_cancelled_stops_the_job_and_intervals_are_capped() {
    let server = answering(403);
    let answer = client(&server)
        .patch_trace(77, &token(JOB_TOKEN), 0, b"x")
        .expect("403");
    assert_eq!(
        (answer.outcome, answer.cancel),
        (PatchOutcome::Stopped { status: 403 }, CancelState::Now)
    );

    let server = Server::start(|_| {
        Reply::new(202)
            .header("Job-Status", "cancelled")
            .header("X-GitLab-Trace-Update-Interval", "999")
    });
    let answer = client(&server)
        .patch_trace(77, &token(JOB_TOKEN), 0, b"x")
        .expect("202");
    assert_eq!(answer.cancel, CancelState::Now);
    assert_eq!(answer.update_interval, Some(Duration::from_secs(180)));
}

#[test]
fn fail_unparseable_reports_a_runner_system_failure_with_a_trace() {
    let server = Server::start(|request| match request.method.as_str() {
        "PATCH" => Reply::new(202).header("Range", "0-50"),
        _ => Reply::new(200),
    });
    client(&server)
        .fail_unparseable(92, &token(JOB_TOKEN), "no script")
        .expect("200");
    let requests = server.requests();
    let patch = &requests[0];
    assert_eq!(
        (patch.method.as_str(), patch.path()),
        ("PATCH", "/api/v4/jobs/92/trace")
    );
    let text = String::from_utf8_lossy(&patch.body).into_owned();
    assert!(text.contains("no script"), "{text}");
    let body = requests[1].json();
    assert_eq!(body["state"], "failed");
    assert_eq!(body["failure_reason"], "runner_system_failure");
    assert_eq!(body["trace"].as_str(), Some(text.as_str()));
    let checksum = format!(
        "crc32:{:08x}",
        alloy_runner::checksum::crc32(text.as_bytes())
    );
    assert_eq!(body["output"]["checksum"].as_str(), Some(checksum.as_str()));
}

#[test]
fn fail_unparseable_tried_again_keeps_the_checksum_of_the_trace_already_stored() {
    let trace = "ERROR: the runner could not use this job: no script\n";
    let range = format!("0-{}", trace.len());
    let server = Server::start(move |request| match request.method.as_str() {
        "PATCH" => Reply::new(416).header("Range", &range),
        _ => Reply::new(200),
    });
    client(&server)
        .fail_unparseable(92, &token(JOB_TOKEN), "no script")
        .expect("200");
    let body = server.requests()[1].json();
    let checksum = format!(
        "crc32:{:08x}",
        alloy_runner::checksum::crc32(trace.as_bytes())
    );
    assert_eq!(body["output"]["checksum"].as_str(), Some(checksum.as_str()));
}

// Regression: the failure used to go out with a checksum of a trace GitLab never received, which
// GitLab answers with 412, leaving the job running.
#[test]
fn fail_unparseable_sends_no_checksum_when_the_trace_patch_was_refused() {
    let server = Server::start(|request| match request.method.as_str() {
        "PATCH" => Reply::new(500),
        _ => Reply::new(200),
    });
    client(&server)
        .fail_unparseable(92, &token(JOB_TOKEN), "no script")
        .expect("200");
    let body = server.requests()[1].json();
    assert_eq!(body["state"], "failed");
    assert!(body["trace"].is_string());
    assert!(body.get("output").is_none(), "{body}");
}

fn multipart_file(request: &Recorded) -> (String, Vec<u8>) {
    let content_type = request.header("Content-Type").expect("a content type");
    let boundary = content_type.split("boundary=").nth(1).expect("a boundary");
    let body = &request.body;
    let head_end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a part head")
        + 4;
    let head = String::from_utf8_lossy(&body[..head_end]).into_owned();
    let tail = format!("\r\n--{boundary}--\r\n");
    assert!(
        body.ends_with(tail.as_bytes()),
        "the body ends with the closing boundary"
    );
    (head, body[head_end..body.len() - tail.len()].to_vec())
}

#[test]
fn artifacts_upload_streams_one_multipart_file_with_a_length() {
    let dir = TempDir::new("upload");
    let path = dir.0.join("rel.zip");
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|n| (n % 253) as u8).collect();
    std::fs::write(&path, &data).expect("write the zip");
    let server = answering(201);
    let upload = ArtifactsUpload {
        name: Some("rel"),
        expire_in: Some("7d"),
    };
    client(&server)
        .upload_artifacts(77, &token(JOB_TOKEN), &path, &upload)
        .expect("201");

    let request = &server.requests()[0];
    assert_eq!(request.path(), "/api/v4/jobs/77/artifacts");
    let query = request.target.split('?').nth(1).expect("a query");
    assert_eq!(
        query,
        "expire_in=7d&artifact_format=zip&artifact_type=archive"
    );
    assert_eq!(request.header("JOB-TOKEN"), Some(JOB_TOKEN));
    assert_eq!(
        request.header("Content-Length"),
        Some(request.body.len().to_string().as_str())
    );
    assert_eq!(request.header("Transfer-Encoding"), None);
    let (head, file) = multipart_file(request);
    assert!(
        head.contains("name=\"file\"; filename=\"rel.zip\""),
        "{head}"
    );
    assert!(file == data, "the part holds the file unchanged");
}

#[test]
fn artifacts_upload_stops_on_403_and_413_and_retries_others_three_times() {
    let dir = TempDir::new("upload-retry");
    let path = dir.0.join("a.zip");
    std::fs::write(&path, b"zip").expect("write");
    let upload = ArtifactsUpload::default();
    for (status, tries) in [(403, 1), (413, 1), (500, 3), (404, 3)] {
        let server = answering(status);
        let error = client(&server).upload_artifacts(77, &token(JOB_TOKEN), &path, &upload);
        assert!(error.is_err(), "status {status}");
        assert_eq!(server.requests().len(), tries, "status {status}");
        let head = multipart_file(&server.requests()[0]).0;
        assert!(head.contains("filename=\"artifacts.zip\""));
        assert!(!server.requests()[0].target.contains("expire_in"));
    }
}

#[test]
fn artifacts_download_follows_a_redirect_without_the_token() {
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let server = Server::start(move |request| {
        counter.fetch_add(1, Ordering::SeqCst);
        match request.path() {
            "/api/v4/jobs/1230/artifacts" => {
                Reply::new(302).header("Location", "/storage/x.zip?sig=1")
            }
            "/storage/x.zip" => Reply::new(200).body(b"PK-zip-bytes"),
            _ => Reply::new(500),
        }
    });
    let dir = TempDir::new("download");
    let dest = dir.0.join("dep.zip");
    let written = client(&server)
        .download_artifacts(1230, &token("depT0ken"), &dest, 1)
        .expect("downloaded");
    assert_eq!(written, 12);
    assert_eq!(std::fs::read(&dest).expect("read"), b"PK-zip-bytes");
    let requests = server.requests();
    assert_eq!(requests[0].header("JOB-TOKEN"), Some("depT0ken"));
    assert_eq!(
        requests[1].header("JOB-TOKEN"),
        None,
        "object storage never sees the token"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[test]
fn artifacts_download_stops_on_404_and_retries_others_up_to_the_attempts() {
    let dir = TempDir::new("download-retry");
    let dest = dir.0.join("dep.zip");
    let server = answering(404);
    let error = client(&server)
        .download_artifacts(5, &token("d"), &dest, 3)
        .expect_err("404");
    assert!(matches!(error, CoordinatorError::NotFound { .. }));
    assert_eq!(server.requests().len(), 1);

    let server = answering(502);
    client(&server)
        .download_artifacts(5, &token("d"), &dest, 2)
        .expect_err("502");
    assert_eq!(server.requests().len(), 2);
}
