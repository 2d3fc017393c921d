//! The trace sender against the coordinator simulator: a log of several MiB arrives whole and in
//! order (through a 416 resync with GitLab, through the final PUT with AlloyCI), and cancels
//! reach the job in both dialects.

mod coordinator_sim_support;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use alloy_runner::coordinator::{CancelState, CoordinatorError, TraceSender};
use coordinator_sim::{CancelMode, Dialect, JobRecord, JobState};
use coordinator_sim_support::*;

const MIB: usize = 1024 * 1024;

/// Waits until the simulator's copy of the job's trace holds `size` bytes.
fn wait_for_trace_size(world: &World, id: u64, size: usize) -> JobRecord {
    let record = world
        .sim
        .wait_for_job(id, WAIT, |r| r.trace_incremental.len() >= size);
    record.unwrap_or_else(|| panic!("the trace of job {id} never reached {size} bytes"))
}

/// Waits until the sender has seen a cancel; false when none came within [`WAIT`].
fn wait_for_cancel(sender: &TraceSender, expected: CancelState) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if sender.cancel_state() == expected {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn a_log_of_several_mib_arrives_whole_and_in_order_through_a_416_resync_gitlab() {
    let world = World::start(Dialect::GitLab);
    let job = world.running_job();
    let log = log_text(5 * MIB + 12_345);
    let (first, second) = log.split_at(5 * MIB / 2);

    // The first half goes out in patches of at most 1 MiB.
    let source = Arc::new(Mutex::new(first.to_vec()));
    let sender = world.trace_sender(&job, source.clone());
    let before = wait_for_trace_size(&world, job.id, first.len());
    assert!(
        before.trace_incremental == first,
        "the first half arrived in order"
    );

    // The next patch is refused with 416 and the server's size; the runner resyncs from there.
    world.sim.reject_next_trace_range(job.id);
    source.lock().expect("source").extend_from_slice(second);
    let after = wait_for_trace_size(&world, job.id, log.len());
    let second_half_patches = second.len().div_ceil(MIB);
    assert_eq!(after.patches - before.patches, 1 + second_half_patches);

    sender
        .finish(success())
        .expect("the final update is acknowledged");
    let record = world.sim.job(job.id).expect("a record");
    assert_eq!(record.state, JobState::Success);
    assert_eq!(record.trace_incremental.len(), log.len());
    assert!(
        record.trace_incremental == log,
        "the log is whole and in order"
    );
    assert!(record.log() == log.as_slice());
    world.assert_no_violations();
}

#[test]
fn a_log_of_several_mib_arrives_whole_through_the_final_put_alloyci() {
    let world = World::start(Dialect::AlloyCi);
    let job = world.running_job();
    let log = log_text(4 * MIB + 777);
    let source = Arc::new(Mutex::new(Vec::new()));
    let sender = world.trace_sender(&job, source.clone());

    // Output arrives in pieces while the job runs, as a script prints it.
    for piece in log.chunks(600_000) {
        source.lock().expect("source").extend_from_slice(piece);
        thread::sleep(Duration::from_millis(5));
    }
    sender
        .finish(failed_script(3))
        .expect("the final update is acknowledged");

    let record = world.sim.job(job.id).expect("a record");
    let last = record.updates.last().expect("a final update");
    assert_eq!((last.state.as_str(), last.exit_code), ("failed", Some(3)));
    let shown = record
        .trace_final
        .as_deref()
        .expect("the final PUT carried the trace");
    assert_eq!(shown.len(), log.len());
    assert!(
        shown == log.as_slice(),
        "AlloyCI's log, from the final PUT, is whole"
    );
    assert!(
        record.trace_incremental == log,
        "the patches were whole too"
    );
    world.assert_no_violations();
}

mod cancels {
    use super::*;

    fn job_status_cancel_reaches_the_sender(dialect: Dialect, mode: CancelMode) {
        let world = World::start(dialect);
        let job = world.running_job();
        let source = Arc::new(Mutex::new(b"starting\n".to_vec()));
        let sender = world.trace_sender(&job, source.clone());
        wait_for_trace_size(&world, job.id, 9);

        world.sim.cancel_job(job.id, mode);
        source.lock().expect("source").extend_from_slice(b"more\n");
        let expected = match mode {
            CancelMode::Canceling => CancelState::Graceful,
            _ => CancelState::Now,
        };
        assert!(wait_for_cancel(&sender, expected), "no cancel seen");
        sender
            .finish(failed_script(1))
            .expect("the final update after a cancel is acknowledged");
        world.assert_no_violations();
    }

    #[test]
    fn job_status_cancelled_stops_the_job_alloyci() {
        job_status_cancel_reaches_the_sender(Dialect::AlloyCi, CancelMode::JobStatusHeader);
    }

    #[test]
    fn job_status_canceled_stops_the_job_gitlab() {
        job_status_cancel_reaches_the_sender(Dialect::GitLab, CancelMode::JobStatusHeader);
    }

    #[test]
    fn job_status_canceling_asks_for_a_graceful_stop_gitlab() {
        job_status_cancel_reaches_the_sender(Dialect::GitLab, CancelMode::Canceling);
    }

    fn forbidden_stops_patches_and_the_final_update(dialect: Dialect) {
        let world = World::start(dialect);
        let job = world.running_job();
        let source = Arc::new(Mutex::new(b"starting\n".to_vec()));
        let sender = world.trace_sender(&job, source.clone());
        wait_for_trace_size(&world, job.id, 9);

        world.sim.cancel_job(job.id, CancelMode::Forbidden);
        source.lock().expect("source").extend_from_slice(b"more\n");
        assert!(wait_for_cancel(&sender, CancelState::Now), "no cancel seen");
        let error = sender
            .finish(success())
            .expect_err("403 to the final update");
        assert!(
            matches!(error, CoordinatorError::JobGone { status: 403, .. }),
            "{error}"
        );
        let record = world.sim.job(job.id).expect("a record");
        assert_eq!(record.trace_incremental, b"starting\n");
        world.assert_no_violations();
    }

    #[test]
    fn a_403_stops_the_job_alloyci() {
        forbidden_stops_patches_and_the_final_update(Dialect::AlloyCi);
    }

    #[test]
    fn a_403_stops_the_job_gitlab() {
        forbidden_stops_patches_and_the_final_update(Dialect::GitLab);
    }
}
