//! The runner API v4 client, poller and artifacts calls against the coordinator simulator, in
//! the AlloyCI and the GitLab dialect: every answer of the API's status tables the simulator
//! can give, with the simulator finding nothing wrong in what the runner sent.

mod coordinator_sim_support;

use std::time::Duration;

use alloy_runner::coordinator::artifacts::ArtifactsUpload;
use alloy_runner::coordinator::poller::UNHEALTHY_PAUSE;
use alloy_runner::coordinator::{
    CancelState, CoordinatorError, JobRequest, JobUpdate, PatchOutcome, Poller, RunnerInfo,
    UpdateOutcome,
};
use alloy_runner::secret::Secret;
use coordinator_sim::{CancelMode, Dialect, Endpoint, JobState, Options};
use coordinator_sim_support::*;

/// Runs `body` once per dialect, as two tests named after it.
macro_rules! both_dialects {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn alloyci() {
                ($body)(Dialect::AlloyCi);
            }

            #[test]
            fn gitlab() {
                ($body)(Dialect::GitLab);
            }
        }
    };
}

fn request(world: &World) -> Result<JobRequest, CoordinatorError> {
    world
        .client
        .request_job(&Secret::new(RUNNER_TOKEN), &RunnerInfo::default())
}

fn expect_job(world: &World) -> Box<alloy_runner::coordinator::job::Job> {
    match request(world) {
        Ok(JobRequest::Job(job)) => job,
        other => panic!("expected a job, got {other:?}"),
    }
}

// --- POST /jobs/request ---

both_dialects!(request_job_201_hands_out_the_fixture_job, |dialect| {
    let world = World::start(dialect);
    let id = world.enqueue_fixture();
    let job = expect_job(&world);
    assert_eq!(job.id, id);
    assert_eq!(job.token.expose(), world.fixture_token());
    assert!(!job.steps.is_empty());
    assert_eq!(world.sim.job(id).map(|r| r.state), Some(JobState::Running));
    world.assert_no_violations();
});

both_dialects!(
    request_job_204_is_no_job_and_sends_last_update_back,
    |dialect| {
        let world = World::start(dialect);
        assert!(matches!(request(&world), Ok(JobRequest::NoJob)));
        assert!(matches!(request(&world), Ok(JobRequest::NoJob)));
        assert_eq!(world.sim.requests(Endpoint::RequestJob), 2);
        world.assert_no_violations();
    }
);

both_dialects!(
    request_job_with_an_unknown_runner_token_is_unhealthy,
    |dialect| {
        let world = World::start(dialect);
        let answer = world
            .client
            .request_job(&Secret::new("not-a-runner-token"), &RunnerInfo::default());
        let expected = match dialect {
            Dialect::AlloyCi => 401,
            Dialect::GitLab => 403,
        };
        match answer {
            Ok(JobRequest::Unhealthy { status }) => assert_eq!(status, expected),
            other => panic!("expected unhealthy, got {other:?}"),
        }
        world.assert_no_violations();
    }
);

both_dialects!(request_job_409_and_5xx_are_transient, |dialect| {
    let world = World::start(dialect);
    for status in [409, 500, 502, 503] {
        world.sim.fail_next(Endpoint::RequestJob, 1, status);
        let error = request(&world).expect_err("an injected failure");
        assert!(error.is_transient(), "{status}: {error}");
        assert!(
            matches!(error, CoordinatorError::Status { status: s, .. } if s == status),
            "{error}"
        );
    }
    // The queue was not touched: the job is handed out on the next try.
    let id = world.enqueue_fixture();
    assert_eq!(expect_job(&world).id, id);
    world.assert_no_violations();
});

both_dialects!(
    request_job_429_carries_the_wait_the_coordinator_asked,
    |dialect| {
        let world = World::start(dialect);
        world.sim.throttle_next(Endpoint::RequestJob, 1, 7);
        let error = request(&world).expect_err("throttled");
        assert!(error.is_transient());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));

        world
            .sim
            .throttle_next_until_reset(Endpoint::RequestJob, 1, 120);
        let error = request(&world).expect_err("throttled until a reset time");
        let wait = error
            .retry_after()
            .expect("a wait from RateLimit-ResetTime");
        // An HTTP date has whole seconds: the wait is the 120 s asked, give or take the second.
        assert!(
            wait >= Duration::from_secs(100) && wait <= Duration::from_secs(121),
            "{wait:?}"
        );
        world.assert_no_violations();
    }
);

both_dialects!(the_poller_backs_off_on_409_then_takes_the_job, |dialect| {
    let world = World::start(dialect);
    let id = world.enqueue_fixture();
    world.sim.fail_next(Endpoint::RequestJob, 1, 409);
    let mut poller = world.poller();
    let first = poller.poll();
    assert!(first.job.is_none());
    assert!(first.next_poll_in >= CHECK_INTERVAL, "{first:?}");
    let second = poller.poll();
    assert_eq!(second.job.map(|job| job.id), Some(id));
    assert_eq!(second.next_poll_in, Duration::ZERO);
    world.assert_no_violations();
});

both_dialects!(
    three_refusals_of_the_runner_token_pause_the_poller,
    |dialect| {
        let world = World::start(dialect);
        let token = Secret::new("removed-runner-token");
        let mut poller = Poller::new(world.client.clone(), "gone", token, CHECK_INTERVAL);
        let waits: Vec<Duration> = (0..3).map(|_| poller.poll().next_poll_in).collect();
        assert!(waits[..2].iter().all(|w| *w < UNHEALTHY_PAUSE), "{waits:?}");
        assert_eq!(waits[2], UNHEALTHY_PAUSE);
        assert_eq!(world.sim.requests(Endpoint::RequestJob), 3);
        world.assert_no_violations();
    }
);

both_dialects!(
    an_unparseable_job_is_failed_as_a_runner_system_failure,
    |dialect| {
        let world = World::start(dialect);
        let body = include_str!("../fixtures/jobs/invalid-no-script.json");
        let id = world.sim.enqueue_raw_payload(body);
        let poll = world.poller().poll();
        assert!(poll.job.is_none());

        let record = world
            .sim
            .wait_for_job_finished(id, WAIT)
            .expect("the job is reported finished");
        assert_eq!(record.state, JobState::Failed);
        assert_eq!(
            record.failure_reason.as_deref(),
            Some("runner_system_failure")
        );
        let log = String::from_utf8_lossy(record.log()).into_owned();
        assert!(
            log.starts_with("ERROR: the runner could not use this job: "),
            "{log}"
        );
        assert_eq!(world.sim.queued(), 0);
        world.assert_no_violations();
    }
);

// --- PUT /jobs/:id ---

both_dialects!(update_200_finishes_the_job, |dialect| {
    let world = World::start(dialect);
    let job = world.running_job();
    let answer = world
        .client
        .update_job(job.id, &job.token, &JobUpdate::running())
        .expect("a running update");
    assert_eq!(answer.outcome, UpdateOutcome::Accepted);
    assert_eq!(answer.cancel, CancelState::None);

    world.finish(&job, b"all good\n", success());
    let record = world.sim.job(job.id).expect("a record");
    assert_eq!(record.state, JobState::Success);
    assert_eq!(record.log(), b"all good\n");
    world.assert_no_violations();
});

both_dialects!(update_202_is_sent_again_until_accepted, |dialect| {
    let world = World::start(dialect);
    let job = world.running_job();
    world.sim.accept_next_update(job.id);
    world.finish(&job, b"done\n", success());
    let record = world.sim.job(job.id).expect("a record");
    let statuses: Vec<u16> = record.updates.iter().map(|u| u.status).collect();
    assert_eq!(statuses, [202, 200]);
    assert_eq!(record.state, JobState::Success);
    world.assert_no_violations();
});

#[test]
fn update_412_resends_the_whole_trace_then_the_update_gitlab() {
    let world = World::start(Dialect::GitLab);
    let job = world.running_job();
    world.sim.fail_next(Endpoint::UpdateJob, 1, 412);
    let log = log_text(300_000);
    world.finish(&job, &log, success());

    let record = world.sim.job(job.id).expect("a record");
    assert_eq!(record.state, JobState::Success);
    assert!(record.trace_incremental == log, "the resent trace is whole");
    // Both PUTs reached the simulator; the first was the injected 412.
    assert_eq!(world.sim.requests(Endpoint::UpdateJob), 2);
    world.assert_no_violations();
}

both_dialects!(update_403_stops_the_job, |dialect| {
    let world = World::start(dialect);
    let job = world.running_job();
    world.sim.cancel_job(job.id, CancelMode::Forbidden);
    let answer = world
        .client
        .update_job(job.id, &job.token, &JobUpdate::running())
        .expect("an answer");
    assert_eq!(answer.outcome, UpdateOutcome::Stopped { status: 403 });
    assert_eq!(answer.cancel, CancelState::Now);
    world.assert_no_violations();
});

// --- PATCH /jobs/:id/trace ---

both_dialects!(
    trace_202_advances_and_416_names_the_server_size,
    |dialect| {
        let world = World::start(dialect);
        let job = world.running_job();
        let answer = world
            .client
            .patch_trace(job.id, &job.token, 0, b"hello ")
            .expect("a patch");
        assert_eq!(answer.outcome, PatchOutcome::Accepted { next_offset: 6 });

        world.sim.reject_next_trace_range(job.id);
        let answer = world
            .client
            .patch_trace(job.id, &job.token, 6, b"world\n")
            .expect("a patch");
        assert_eq!(
            answer.outcome,
            PatchOutcome::RangeMismatch { server_size: 6 }
        );
        let answer = world
            .client
            .patch_trace(job.id, &job.token, 6, b"world\n")
            .expect("a patch");
        assert_eq!(answer.outcome, PatchOutcome::Accepted { next_offset: 12 });
        let record = world.sim.job(job.id).expect("a record");
        assert_eq!(record.trace_incremental, b"hello world\n");
        world.assert_no_violations();
    }
);

both_dialects!(trace_403_stops_the_job, |dialect| {
    let world = World::start(dialect);
    let job = world.running_job();
    world.sim.cancel_job(job.id, CancelMode::Forbidden);
    let answer = world
        .client
        .patch_trace(job.id, &job.token, 0, b"x")
        .expect("an answer");
    assert_eq!(answer.outcome, PatchOutcome::Stopped { status: 403 });
    assert_eq!(answer.cancel, CancelState::Now);
    world.assert_no_violations();
});

both_dialects!(trace_job_status_cancels_at_once, |dialect| {
    let world = World::start(dialect);
    let job = world.running_job();
    world.sim.cancel_job(job.id, CancelMode::JobStatusHeader);
    let answer = world
        .client
        .patch_trace(job.id, &job.token, 0, b"x")
        .expect("an answer");
    assert!(matches!(answer.outcome, PatchOutcome::Accepted { .. }));
    assert_eq!(answer.cancel, CancelState::Now);
    let record = world.sim.job(job.id).expect("a record");
    assert_eq!(record.state, JobState::Canceled);
    world.assert_no_violations();
});

#[test]
fn trace_job_status_canceling_cancels_gracefully_gitlab() {
    let world = World::start(Dialect::GitLab);
    let job = world.running_job();
    world.sim.cancel_job(job.id, CancelMode::Canceling);
    let answer = world
        .client
        .patch_trace(job.id, &job.token, 0, b"x")
        .expect("an answer");
    assert_eq!(answer.cancel, CancelState::Graceful);
    world.assert_no_violations();
}

// --- Artifacts ---

both_dialects!(artifacts_upload_201_then_download_200, |dialect| {
    let world = World::start(dialect);
    let job = world.running_job();
    let zip = world.file("upload.zip", &zip_like(40_000));
    let upload = ArtifactsUpload {
        name: Some("rel"),
        expire_in: Some("7d"),
    };
    world
        .client
        .upload_artifacts(job.id, &job.token, &zip, &upload)
        .expect("the upload is stored");
    let record = world.sim.job(job.id).expect("a record");
    assert_eq!(record.artifacts_filename.as_deref(), Some("rel.zip"));
    assert_eq!(record.artifacts_size, Some(40_000));
    assert_eq!(record.artifacts_expire_in.as_deref(), Some("7d"));

    let dest = world.dir.0.join("download.zip");
    let written = world
        .client
        .download_artifacts(job.id, &job.token, &dest, 1)
        .expect("the download succeeds");
    assert_eq!(written, 40_000);
    assert!(std::fs::read(&dest).expect("downloaded") == zip_like(40_000));
    world.assert_no_violations();
});

both_dialects!(
    artifacts_upload_with_a_wrong_job_token_is_403_and_final,
    |dialect| {
        let world = World::start(dialect);
        let job = world.running_job();
        let zip = world.file("upload.zip", &zip_like(100));
        let error = world
            .client
            .upload_artifacts(
                job.id,
                &Secret::new("wrong-job-token"),
                &zip,
                &ArtifactsUpload::default(),
            )
            .expect_err("403");
        assert!(
            matches!(error, CoordinatorError::Forbidden { status: 403, .. }),
            "{error}"
        );
        assert_eq!(world.sim.requests(Endpoint::UploadArtifacts), 1);
        world.assert_no_violations();
    }
);

both_dialects!(
    artifacts_upload_over_the_limit_is_413_and_final,
    |dialect| {
        let world = World::start_with(Options {
            dialect,
            max_artifact_bytes: 10_000,
            ..Options::default()
        });
        let job = world.running_job();
        let zip = world.file("upload.zip", &zip_like(20_000));
        let error = world
            .client
            .upload_artifacts(job.id, &job.token, &zip, &ArtifactsUpload::default())
            .expect_err("413");
        assert!(
            matches!(error, CoordinatorError::TooLarge { .. }),
            "{error}"
        );
        assert_eq!(world.sim.requests(Endpoint::UploadArtifacts), 1);
        world.assert_no_violations();
    }
);

both_dialects!(artifacts_upload_is_retried_after_5xx, |dialect| {
    let world = World::start(dialect);
    let job = world.running_job();
    world.sim.fail_next(Endpoint::UploadArtifacts, 2, 502);
    let zip = world.file("upload.zip", &zip_like(5_000));
    world
        .client
        .upload_artifacts(job.id, &job.token, &zip, &ArtifactsUpload::default())
        .expect("the third try is stored");
    assert_eq!(world.sim.requests(Endpoint::UploadArtifacts), 3);
    let record = world.sim.job(job.id).expect("a record");
    assert_eq!(record.artifacts_size, Some(5_000));

    world.sim.fail_next(Endpoint::UploadArtifacts, 3, 500);
    let error = world
        .client
        .upload_artifacts(job.id, &job.token, &zip, &ArtifactsUpload::default())
        .expect_err("three failures in a row");
    assert!(error.is_transient(), "{error}");
    assert_eq!(world.sim.requests(Endpoint::UploadArtifacts), 6);
    world.assert_no_violations();
});

#[test]
fn artifacts_upload_for_a_job_without_artifacts_is_404_alloyci() {
    let world = World::start(Dialect::AlloyCi);
    let mut payload = world.fixture_payload();
    payload["artifacts"] = serde_json::json!([null]);
    let id = world.sim.enqueue_payload(payload).expect("queued");
    let job = expect_job(&world);
    assert_eq!(job.id, id);
    let zip = world.file("upload.zip", &zip_like(100));
    let error = world
        .client
        .upload_artifacts(job.id, &job.token, &zip, &ArtifactsUpload::default())
        .expect_err("AlloyCI refuses artifacts the job did not declare");
    assert!(
        matches!(&error, CoordinatorError::Status { status: 404, .. }),
        "{error}"
    );
    world.assert_no_violations();
}

both_dialects!(
    artifacts_download_of_a_job_without_artifacts_is_404,
    |dialect| {
        let world = World::start(dialect);
        let job = world.running_job();
        let dest = world.dir.0.join("none.zip");
        let error = world
            .client
            .download_artifacts(job.id, &job.token, &dest, 3)
            .expect_err("404");
        assert!(
            matches!(error, CoordinatorError::NotFound { .. }),
            "{error}"
        );
        assert_eq!(world.sim.requests(Endpoint::DownloadArtifacts), 1);
        world.assert_no_violations();
    }
);

both_dialects!(
    artifacts_download_follows_a_302_to_object_storage,
    |dialect| {
        let world = World::start_with(Options {
            dialect,
            artifacts_redirect: true,
            ..Options::default()
        });
        let job = world.running_job();
        let zip = world.file("upload.zip", &zip_like(12_345));
        world
            .client
            .upload_artifacts(job.id, &job.token, &zip, &ArtifactsUpload::default())
            .expect("stored");
        let dest = world.dir.0.join("download.zip");
        let written = world
            .client
            .download_artifacts(job.id, &job.token, &dest, 1)
            .expect("the redirect is followed");
        assert_eq!(written, 12_345);
        assert!(std::fs::read(&dest).expect("downloaded") == zip_like(12_345));
        world.assert_no_violations();
    }
);

both_dialects!(
    artifacts_download_is_retried_up_to_the_attempts,
    |dialect| {
        let world = World::start(dialect);
        let job = world.running_job();
        let zip = world.file("upload.zip", &zip_like(1_000));
        world
            .client
            .upload_artifacts(job.id, &job.token, &zip, &ArtifactsUpload::default())
            .expect("stored");
        world.sim.fail_next(Endpoint::DownloadArtifacts, 1, 503);
        let dest = world.dir.0.join("download.zip");
        let written = world
            .client
            .download_artifacts(job.id, &job.token, &dest, 2)
            .expect("the second try succeeds");
        assert_eq!(written, 1_000);
        assert_eq!(world.sim.requests(Endpoint::DownloadArtifacts), 2);
        world.assert_no_violations();
    }
);
