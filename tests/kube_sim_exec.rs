//! Exec through the simulator's kubelet: exit codes, stdin under v5 and v4, raw bytes, a cut
//! connection, and an abort from another thread.

mod kube_sim_support;

use std::thread;
use std::time::{Duration, Instant};

use alloy_runner::kube::{AbortHandle, Client, ExecError, ExecProtocol};
use kube_sim::SimHandle;
use kube_sim_support::{https_sim, request, run_exec, running_pod, shell, token_client, NS, TOKEN};

fn sim_with_pod(pod: &str, v4_only: bool) -> SimHandle {
    let sim = https_sim(|o| o.v4_only_exec = v4_only);
    running_pod(&sim, &token_client(&sim, TOKEN), pod);
    sim
}

#[test]
fn exit_codes_and_both_outputs_come_back_exactly() {
    let sim = sim_with_pod("codes", false);
    let client = token_client(&sim, TOKEN);

    for code in [0, 1, 7, 255] {
        let script = format!("printf 'out {code}\\n'; printf 'err {code}' >&2; exit {code}");
        let run = run_exec(&client, &shell("codes", &script), None, None);
        let outcome = run.result.expect("exit status reported");
        assert_eq!(outcome.exit_code, code);
        assert_eq!(outcome.protocol, ExecProtocol::V5);
        assert_eq!(run.stdout, format!("out {code}\n").into_bytes());
        assert_eq!(run.stderr, format!("err {code}").into_bytes());
    }
}

/// Sends `input` to `cat > FILE; echo done` and reads FILE back with a second exec.
fn through_a_file(client: &Client, pod: &str, input: &[u8]) -> Vec<u8> {
    let run = run_exec(
        client,
        &shell(pod, "cat > /tmp/s; echo done"),
        Some(input),
        None,
    );
    assert_eq!(run.exit_code(), 0);
    assert_eq!(run.stdout, b"done\n");

    let back = run_exec(client, &request(pod, &["cat", "/tmp/s"]), None, None);
    assert_eq!(back.exit_code(), 0);
    back.stdout
}

// C13: under v5 the end of stdin reaches the command, so `cat` ends and the script goes on.
#[test]
fn v5_stdin_end_lets_the_command_finish() {
    let sim = sim_with_pod("stdin", false);
    let client = token_client(&sim, TOKEN);

    assert_eq!(through_a_file(&client, "stdin", b"hello"), b"hello");
}

#[test]
fn v5_stdin_carries_raw_bytes_larger_than_one_chunk() {
    let sim = sim_with_pod("binary", false);
    let client = token_client(&sim, TOKEN);
    let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();

    assert_eq!(through_a_file(&client, "binary", &input), input);
}

#[test]
fn v5_empty_stdin_is_an_immediate_end_of_input() {
    let sim = sim_with_pod("empty", false);
    let client = token_client(&sim, TOKEN);

    let run = run_exec(&client, &shell("empty", "wc -c"), Some(b""), None);
    assert_eq!(run.exit_code(), 0);
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "0");
}

// Under v4 stdin's end cannot be sent: a command that stops reading by itself still ends, and
// the call returns instead of waiting for an end of input that never comes.
#[test]
fn v4_only_server_runs_commands_that_need_no_stdin_end() {
    let sim = sim_with_pod("old", true);
    let client = token_client(&sim, TOKEN);

    let run = run_exec(
        &client,
        &request("old", &["head", "-c", "5"]),
        Some(b"hello world"),
        None,
    );
    let outcome = run.result.expect("exit status reported");
    assert_eq!(outcome.protocol, ExecProtocol::V4);
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(run.stdout, b"hello");

    let run = run_exec(&client, &shell("old", "echo v4 >&2; exit 7"), None, None);
    assert_eq!(run.exit_code(), 7);
    assert_eq!(run.stderr, b"v4\n");
}

// C12: output cut by a dropped connection is never a success.
#[test]
fn dropped_connection_is_an_error_never_exit_zero() {
    let sim = sim_with_pod("cut", false);
    let client = token_client(&sim, TOKEN);
    sim.drop_exec_after(Some(100_000));

    let run = run_exec(
        &client,
        &request("cut", &["head", "-c", "1000000", "/dev/zero"]),
        None,
        None,
    );
    match &run.result {
        Err(ExecError::LostStatus { pod, .. }) => assert_eq!(pod, "cut"),
        other => panic!("expected a lost status, got {other:?}"),
    }
    assert_eq!(run.stdout.len(), 100_000);
    assert!(run.stdout.iter().all(|&b| b == 0));
}

// C11: bytes that are not UTF-8, and characters split between two writes, arrive unchanged.
#[test]
fn non_utf8_and_split_characters_arrive_byte_for_byte() {
    let sim = sim_with_pod("bytes", false);
    let client = token_client(&sim, TOKEN);

    let script = "printf '\\324\\303'; sleep 0.2; printf '\\251t\\342\\202'; sleep 0.2; \
                  printf '\\254\\377\\376\\000end'; printf '\\360\\237' >&2; sleep 0.2; \
                  printf '\\230\\200\\300' >&2";
    let run = run_exec(&client, &shell("bytes", script), None, None);
    assert_eq!(run.exit_code(), 0);
    assert_eq!(run.stdout, b"\xd4\xc3\xa9t\xe2\x82\xac\xff\xfe\x00end");
    assert_eq!(run.stderr, b"\xf0\x9f\x98\x80\xc0");

    // A two-byte character across the kubelet's 32 KiB read boundary.
    let script = "head -c 32767 /dev/zero | tr '\\000' a; printf '\\303\\251'";
    let run = run_exec(&client, &shell("bytes", script), None, None);
    assert_eq!(run.exit_code(), 0);
    let mut expected = vec![b'a'; 32767];
    expected.extend_from_slice("é".as_bytes());
    assert_eq!(run.stdout, expected);
}

#[test]
fn exec_in_a_missing_pod_is_rejected_with_the_servers_message() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);

    let run = run_exec(&client, &request("ghost", &["true"]), None, None);
    match run.result {
        Err(ExecError::Rejected { status, .. }) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.message, "pods \"ghost\" not found");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Whether the simulator upgraded an exec of `pod` (it is attached and running).
fn exec_attached(sim: &SimHandle, pod: &str) -> bool {
    let path = format!("/api/v1/namespaces/{NS}/pods/{pod}/exec");
    sim.requests()
        .iter()
        .any(|r| r.path == path && r.code == 101)
}

#[test]
fn abort_from_another_thread_ends_a_running_exec_promptly() {
    let sim = sim_with_pod("long", false);
    let client = token_client(&sim, TOKEN);
    let abort = AbortHandle::new();

    let started = Instant::now();
    let run = thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !exec_attached(&sim, "long") && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            abort.abort();
        });
        let req = shell("long", "sleep 60; echo finished");
        run_exec(&client, &req, None, Some(abort.clone()))
    });
    match &run.result {
        Err(ExecError::Aborted { pod }) => assert_eq!(pod, "long"),
        other => panic!("expected an abort, got {other:?}"),
    }
    // The abort, not the command's 60 s sleep, ended the call.
    assert!(started.elapsed() < Duration::from_secs(40));
    assert!(run.stdout.is_empty());
}
