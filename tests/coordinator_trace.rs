//! The trace sender against scripted loopback coordinators: incremental patches, resyncs,
//! cancels, and the final update in both dialects.

mod coordinator_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use alloy_runner::checksum::crc32;
use alloy_runner::coordinator::trace_sender::TraceOptions;
use alloy_runner::coordinator::{
    CancelState, Client, CoordinatorError, FailureReason, JobResult, TraceSender, TraceSource,
};
use alloy_runner::secret::Secret;
use coordinator_support::{Recorded, Reply, Server};

const JOB_TOKEN: &str = "jT0k3nJob";

fn fast_options() -> TraceOptions {
    TraceOptions {
        patch_interval: Duration::from_millis(10),
        keepalive_interval: Duration::from_secs(30),
        max_patch_bytes: 1024 * 1024,
        final_update_deadline: Duration::from_secs(20),
        max_retry_wait: Duration::from_millis(200),
    }
}

fn start(server: &Server, source: Arc<Mutex<Vec<u8>>>, options: TraceOptions) -> TraceSender {
    let client = Client::new(&server.url()).expect("a loopback url");
    TraceSender::start(client, 77, Secret::new(JOB_TOKEN), source, options).expect("start")
}

/// Lines of text, `size` bytes in all.
fn log_text(size: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(size + 32);
    let mut n = 0;
    while text.len() < size {
        text.extend_from_slice(format!("output line {n} \x1b[32mok\x1b[0m\r\n").as_bytes());
        n += 1;
    }
    text.truncate(size);
    text
}

/// Writes `data` into `source` in pieces, as a running script would.
fn write_slowly(source: Arc<Mutex<Vec<u8>>>, data: Vec<u8>, pieces: usize) {
    let piece = data.len().div_ceil(pieces);
    for chunk in data.chunks(piece) {
        source.lock().expect("source lock").extend_from_slice(chunk);
        thread::sleep(Duration::from_millis(15));
    }
}

fn content_range(request: &Recorded) -> (u64, u64) {
    let range = request.header("Content-Range").expect("a content range");
    let (start, end) = range.split_once('-').expect("start-end");
    (start.parse().expect("start"), end.parse().expect("end"))
}

/// A GitLab-like trace store: appends a patch only at its current size, else 416.
struct GitLabTrace {
    stored: Mutex<Vec<u8>>,
    patches: AtomicUsize,
    /// At this patch number, the store loses its last bytes (and answers 416).
    lose_at: usize,
    /// The size the store fell back to.
    lost_to: Mutex<Option<u64>>,
}

impl GitLabTrace {
    fn new(lose_at: usize) -> GitLabTrace {
        let (stored, lost_to) = (Mutex::default(), Mutex::default());
        GitLabTrace {
            stored,
            patches: AtomicUsize::new(0),
            lose_at,
            lost_to,
        }
    }
}

impl GitLabTrace {
    fn patch(&self, request: &Recorded) -> Reply {
        let n = self.patches.fetch_add(1, Ordering::SeqCst) + 1;
        let mut stored = self.stored.lock().expect("store lock");
        if n == self.lose_at {
            let keep = stored.len().saturating_sub(300_000);
            stored.truncate(keep);
            *self.lost_to.lock().expect("lock") = Some(keep as u64);
        }
        let (start, end) = content_range(request);
        assert_eq!(
            end + 1 - start,
            request.body.len() as u64,
            "inclusive Content-Range"
        );
        if start != stored.len() as u64 {
            return Reply::new(416).header("Range", &format!("0-{}", stored.len()));
        }
        stored.extend_from_slice(&request.body);
        Reply::new(202).header("Range", &format!("0-{}", stored.len()))
    }
}

#[test]
fn several_mib_arrive_complete_and_in_order_across_a_416_resync() {
    let store = Arc::new(GitLabTrace::new(3));
    let final_body = Arc::new(Mutex::new(None));
    let (handler_store, handler_final) = (store.clone(), final_body.clone());
    let server = Server::start(move |request| match request.method.as_str() {
        "PATCH" => handler_store.patch(request),
        _ => {
            *handler_final.lock().expect("lock") = Some(request.json());
            Reply::new(200)
        }
    });
    let source = Arc::new(Mutex::new(Vec::new()));
    let sender = start(&server, source.clone(), fast_options());
    let data = log_text(5 * 1024 * 1024 + 12_345);
    write_slowly(source, data.clone(), 40);
    sender
        .finish(JobResult::success())
        .expect("the final update is acknowledged");

    let stored = store.stored.lock().expect("lock").clone();
    assert!(
        stored == data,
        "the coordinator holds exactly the job's output"
    );
    let patches: Vec<Recorded> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert!(
        patches.iter().all(|p| p.body.len() <= 1024 * 1024),
        "at most 1 MiB per patch"
    );
    assert!(patches
        .iter()
        .all(|p| p.header("JOB-TOKEN") == Some(JOB_TOKEN)));
    let lost_to = store
        .lost_to
        .lock()
        .expect("lock")
        .expect("the store lost bytes");
    assert!(
        lost_to < content_range(&patches[2]).0,
        "the third patch was answered 416"
    );
    assert_eq!(
        content_range(&patches[3]).0,
        lost_to,
        "the next patch resumes at the server size"
    );

    let body = final_body
        .lock()
        .expect("lock")
        .clone()
        .expect("a final update");
    assert_eq!(body["state"], "success");
    assert_eq!(body["token"], JOB_TOKEN);
    assert_eq!(
        body["output"]["checksum"],
        format!("crc32:{:08x}", crc32(&data))
    );
    assert_eq!(body["output"]["bytesize"], data.len() as u64);
    assert!(body["trace"]
        .as_str()
        .is_some_and(|t| t.as_bytes() == data.as_slice()));
    assert!(body.get("exit_code").is_none() && body.get("failure_reason").is_none());
}

#[test]
fn alloyci_keeps_the_log_from_the_final_update_despite_its_constant_range() {
    let server = Server::start(|request| match request.method.as_str() {
        "PATCH" => Reply::new(202).header("Range", "0-100"),
        _ => Reply::new(200),
    });
    let source = Arc::new(Mutex::new(Vec::new()));
    let sender = start(&server, source.clone(), fast_options());
    let data = log_text(300_000);
    write_slowly(source, data.clone(), 5);
    sender
        .finish(JobResult::failed(FailureReason::ScriptFailure, Some(2)))
        .expect("200");

    let requests = server.requests();
    let patched: Vec<u8> = requests
        .iter()
        .filter(|r| r.method == "PATCH")
        .flat_map(|r| r.body.clone())
        .collect();
    assert!(patched == data, "each byte is patched once, in order");
    let last = requests.last().expect("a final update").json();
    assert_eq!(last["state"], "failed");
    assert_eq!(last["failure_reason"], "script_failure");
    assert_eq!(last["exit_code"], 2);
    assert!(last["trace"]
        .as_str()
        .is_some_and(|t| t.as_bytes() == data.as_slice()));
}

#[test]
fn a_202_to_the_final_update_is_retried_until_200() {
    let puts = Arc::new(AtomicUsize::new(0));
    let counter = puts.clone();
    let server = Server::start(move |request| match request.method.as_str() {
        "PATCH" => Reply::new(202),
        _ if counter.fetch_add(1, Ordering::SeqCst) == 0 => {
            Reply::new(202).header("X-GitLab-Trace-Update-Interval", "1")
        }
        _ => Reply::new(200),
    });
    let source = Arc::new(Mutex::new(b"done\n".to_vec()));
    start(&server, source, fast_options())
        .finish(JobResult::success())
        .expect("200 at last");
    assert_eq!(puts.load(Ordering::SeqCst), 2);
}

#[test]
fn a_412_resends_the_whole_trace_from_zero_then_the_update() {
    let puts = Arc::new(AtomicUsize::new(0));
    let counter = puts.clone();
    let server = Server::start(move |request| match request.method.as_str() {
        "PATCH" => Reply::new(202),
        _ if counter.fetch_add(1, Ordering::SeqCst) == 0 => Reply::new(412),
        _ => Reply::new(200),
    });
    let data = log_text(2000);
    let source = Arc::new(Mutex::new(data.clone()));
    start(&server, source, fast_options())
        .finish(JobResult::success())
        .expect("200 at last");

    let requests = server.requests();
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["PATCH", "PUT", "PATCH", "PUT"]);
    assert_eq!(content_range(&requests[2]), (0, 1999));
    assert!(requests[2].body == data);
}

#[test]
fn job_status_canceling_then_403_raise_the_cancel_and_stop_the_patches() {
    let patches = Arc::new(AtomicUsize::new(0));
    let counter = patches.clone();
    let server = Server::start(move |request| match request.method.as_str() {
        "PATCH" if counter.fetch_add(1, Ordering::SeqCst) == 0 => {
            Reply::new(202).header("Job-Status", "canceling")
        }
        "PATCH" => Reply::new(403),
        _ => Reply::new(403),
    });
    let source = Arc::new(Mutex::new(b"first\n".to_vec()));
    let sender = start(&server, source.clone(), fast_options());
    let watch = sender.cancel_watch();
    wait_for(|| watch.get() == CancelState::Graceful);

    source.lock().expect("lock").extend_from_slice(b"second\n");
    wait_for(|| sender.cancel_state() == CancelState::Now);
    source.lock().expect("lock").extend_from_slice(b"third\n");
    thread::sleep(Duration::from_millis(100));
    assert_eq!(patches.load(Ordering::SeqCst), 2, "no patch after the 403");

    let error = sender
        .finish(JobResult::success())
        .expect_err("the job is gone");
    assert!(
        matches!(error, CoordinatorError::JobGone { status: 403, .. }),
        "{error}"
    );
}

#[test]
fn keepalive_updates_are_sent_while_the_log_is_quiet_and_report_a_cancel() {
    let server = Server::start(|request| match request.method.as_str() {
        "PUT" if request.json()["state"] == "running" => {
            Reply::new(200).header("Job-Status", "cancelled")
        }
        _ => Reply::new(200),
    });
    let options = TraceOptions {
        keepalive_interval: Duration::from_millis(50),
        ..fast_options()
    };
    let sender = start(&server, Arc::new(Mutex::new(Vec::new())), options);
    wait_for(|| sender.cancel_state() == CancelState::Now);
    let keepalive = server.requests()[0].json();
    assert_eq!(
        keepalive,
        serde_json::json!({"token": JOB_TOKEN, "state": "running"})
    );
    sender.finish(JobResult::success()).expect("200");
}

#[test]
fn transient_patch_failures_are_retried_and_lose_nothing() {
    let store = Arc::new(GitLabTrace::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let (handler_store, handler_failures) = (store.clone(), failures.clone());
    let server = Server::start(move |request| match request.method.as_str() {
        "PATCH" if handler_failures.fetch_add(1, Ordering::SeqCst) % 3 == 1 => Reply::new(502),
        "PATCH" => handler_store.patch(request),
        _ => Reply::new(200),
    });
    let source = Arc::new(Mutex::new(Vec::new()));
    let sender = start(&server, source.clone(), fast_options());
    let data = log_text(200_000);
    write_slowly(source, data.clone(), 10);
    sender.finish(JobResult::success()).expect("200");
    assert!(*store.stored.lock().expect("lock") == data);
}

#[test]
fn the_sender_gives_up_after_the_deadline_naming_the_job() {
    let server = Server::start(|request| match request.method.as_str() {
        "PATCH" => Reply::new(202),
        _ => Reply::new(500),
    });
    let options = TraceOptions {
        final_update_deadline: Duration::from_millis(400),
        ..fast_options()
    };
    let sender = start(&server, Arc::new(Mutex::new(b"x".to_vec())), options);
    let error = sender
        .finish(JobResult::success())
        .expect_err("never acknowledged");
    assert!(matches!(error, CoordinatorError::GaveUp { job: 77, .. }));
    let message = error.to_string();
    assert!(
        message.contains("job 77") && !message.contains(JOB_TOKEN),
        "{message}"
    );
    let puts = server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert!(puts >= 2, "the final update was retried ({puts} tries)");
}

#[test]
fn a_shorter_deadline_at_finish_wins_over_the_configured_one() {
    let server = Server::start(|request| match request.method.as_str() {
        "PATCH" => Reply::new(202),
        _ => Reply::new(500),
    });
    // Configured for an hour: only the deadline given at finish can end this test.
    let options = TraceOptions {
        final_update_deadline: Duration::from_secs(3600),
        ..fast_options()
    };
    let sender = start(&server, Arc::new(Mutex::new(b"x".to_vec())), options);
    let error = sender
        .finish_within(JobResult::success(), Some(Duration::from_millis(300)))
        .expect_err("never acknowledged");
    assert!(matches!(error, CoordinatorError::GaveUp { job: 77, .. }));
}

#[test]
fn a_vec_source_is_a_trace_source() {
    let source: Arc<dyn TraceSource> = Arc::new(Mutex::new(b"abc".to_vec()));
    assert_eq!(source.len(), 3);
}

fn wait_for(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("the condition never became true");
}

#[test]
fn the_coordinator_can_slow_the_patches_down() {
    let server = Server::start(|request| match request.method.as_str() {
        "PATCH" => Reply::new(202).header("X-GitLab-Trace-Update-Interval", "2"),
        _ => Reply::new(200),
    });
    let source = Arc::new(Mutex::new(b"a".to_vec()));
    let sender = start(&server, source.clone(), fast_options());
    let patches = || {
        server
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count()
    };
    wait_for(|| patches() == 1);
    source.lock().expect("lock").extend_from_slice(b"b");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        patches(),
        1,
        "the next patch waits for the coordinator's interval"
    );
    sender.finish(JobResult::success()).expect("200");
    assert_eq!(patches(), 2, "finish flushes what was left");
}
