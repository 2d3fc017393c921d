//! Polling for jobs: poll period, backoff, the unhealthy pause, and failing unusable jobs.

mod coordinator_support;

use std::time::Duration;

use alloy_runner::coordinator::poller::UNHEALTHY_PAUSE;
use alloy_runner::coordinator::{Client, Poller};
use alloy_runner::secret::Secret;
use coordinator_support::{Reply, Server};
use serde_json::json;

const CHECK: Duration = Duration::from_millis(20);

fn poller(server: &Server) -> Poller {
    let client = Client::new(&server.url()).expect("a loopback url");
    Poller::new(client, "k8s-1", Secret::new("runner-token-1"), CHECK)
}

#[test]
fn no_job_waits_the_check_interval_and_a_job_asks_again_at_once() {
    let server = Server::start(|_| Reply::new(204));
    let poll = poller(&server).poll();
    assert!(poll.job.is_none());
    assert_eq!(poll.next_poll_in, CHECK);

    let payload = include_str!("../fixtures/jobs/gitlab-full.json");
    let server =
        Server::start(move |_| Reply::new(201).json(serde_json::from_str(payload).unwrap()));
    let poll = poller(&server).poll();
    assert_eq!(poll.job.map(|j| j.id), Some(1234));
    assert_eq!(poll.next_poll_in, Duration::ZERO);
}

#[test]
fn an_unusable_job_is_failed_with_a_runner_system_failure() {
    let payload = include_str!("../fixtures/jobs/invalid-no-script.json");
    let server = Server::start(move |request| match request.method.as_str() {
        "POST" => Reply::new(201).json(serde_json::from_str(payload).unwrap()),
        "PATCH" => Reply::new(202),
        _ => Reply::new(200),
    });
    let poll = poller(&server).poll();
    assert!(poll.job.is_none());
    let requests = server.requests();
    assert_eq!(
        (requests[1].method.as_str(), requests[1].path()),
        ("PATCH", "/api/v4/jobs/91/trace")
    );
    let update = &requests[2];
    assert_eq!(
        (update.method.as_str(), update.path()),
        ("PUT", "/api/v4/jobs/91")
    );
    let body = update.json();
    assert_eq!(body["token"], "nS3dE5gH7jK9mN");
    assert_eq!(
        (body["state"].clone(), body["failure_reason"].clone()),
        (json!("failed"), json!("runner_system_failure"))
    );
    assert!(body["trace"]
        .as_str()
        .is_some_and(|t| t.contains("no script step")));
}

#[test]
fn three_unhealthy_answers_in_a_row_pause_the_runner() {
    let server = Server::start(|_| Reply::new(401));
    let mut poller = poller(&server);
    assert!(poller.poll().next_poll_in < UNHEALTHY_PAUSE);
    assert!(poller.poll().next_poll_in < UNHEALTHY_PAUSE);
    assert_eq!(poller.poll().next_poll_in, UNHEALTHY_PAUSE);
}

#[test]
fn failures_back_off_and_a_429_wait_is_honoured() {
    let server = Server::start(|_| Reply::new(503));
    let mut poller = poller(&server);
    let waits: Vec<Duration> = (0..5).map(|_| poller.poll().next_poll_in).collect();
    assert!(
        waits[0] >= CHECK && waits[0] <= Duration::from_millis(100),
        "{waits:?}"
    );
    // 100 ms doubling: the fifth step is 1.6 s, drawn between half and all of it.
    assert!(waits[4] >= Duration::from_millis(800), "{waits:?}");
    let server = Server::start(|_| Reply::new(429).header("Retry-After", "9"));
    let mut limited = self::poller(&server);
    assert_eq!(limited.poll().next_poll_in, Duration::from_secs(9));
}
