//! A large exec output streams through with bounded memory. Alone in its test binary, so that
//! the process's peak memory belongs to this one exec (and the simulator, which reads at most
//! 8 MiB ahead of the WebSocket).

mod kube_sim_support;

use std::fs;
use std::sync::atomic::Ordering;

use alloy_runner::kube::ExecIo;
use kube_sim_support::{https_sim, request, running_pod, token_client, Counter, Sink, TOKEN};

const OUTPUT: u64 = 200 << 20;
/// Allowed growth of the peak resident memory while the output flows (32 MiB: the
/// simulator's read-ahead, TLS and WebSocket buffers on both sides, and slack).
const PEAK_GROWTH: u64 = 32 << 20;

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status readable");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Starts a new peak: the kernel sets VmHWM to the current resident size.
fn reset_peak() {
    fs::write("/proc/self/clear_refs", "5").expect("/proc/self/clear_refs writable");
}

#[test]
fn two_hundred_mib_of_output_stream_through_with_bounded_memory() {
    let sim = https_sim(|_| {});
    let client = token_client(&sim, TOKEN);
    running_pod(&sim, &client, "big");
    let counter = Counter::default();
    let stderr = Sink::default();
    let size = OUTPUT.to_string();
    let req = request("big", &["head", "-c", &size, "/dev/zero"]);

    reset_peak();
    let before = status_kib("VmRSS:") << 10;
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(counter.clone()),
        stderr: Box::new(stderr.clone()),
        abort: None,
    };
    let outcome = client.exec(&req, io).expect("exit status reported");
    let growth = (status_kib("VmHWM:") << 10).saturating_sub(before);

    assert_eq!(outcome.exit_code, 0);
    assert_eq!(counter.bytes.load(Ordering::Relaxed), OUTPUT);
    assert_eq!(counter.unexpected.load(Ordering::Relaxed), 0);
    assert!(stderr.bytes().is_empty());
    assert!(
        growth < PEAK_GROWTH,
        "peak memory grew by {} MiB",
        growth >> 20
    );
}
