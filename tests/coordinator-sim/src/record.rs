//! What the simulator records about each job, for tests to assert on.

use std::path::PathBuf;

/// A job's state as the coordinator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Queued, not yet handed out.
    Pending,
    /// Handed out to a runner.
    Running,
    Success,
    Failed,
    /// Cancelled from outside (by [`crate::SimHandle::cancel_job`]).
    Canceled,
    /// A pipeline job that never ran: an earlier stage failed, or `when` did not apply.
    Skipped,
    /// A pipeline job with `when: manual`: never handed out.
    Manual,
}

impl JobState {
    /// Whether the state is final on its own (a cancelled job also waits for the runner's
    /// final report, see [`JobRecord::is_done`]).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Success | JobState::Failed | JobState::Skipped
        )
    }

    /// The lowercase name used on the wire (GitLab spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Success => "success",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
            JobState::Skipped => "skipped",
            JobState::Manual => "manual",
        }
    }
}

/// One `PUT /jobs/:id` as the runner sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub state: String,
    pub failure_reason: Option<String>,
    pub exit_code: Option<i64>,
    /// The HTTP status the simulator answered.
    pub status: u16,
}

/// Everything recorded about one job.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: u64,
    pub name: String,
    pub state: JobState,
    /// The last state the runner reported with a PUT (`success`, `failed`, ...).
    pub reported_state: Option<String>,
    pub failure_reason: Option<String>,
    pub exit_code: Option<i64>,
    /// Every PUT, in order.
    pub updates: Vec<Update>,
    /// The log as assembled from trace PATCHes.
    pub trace_incremental: Vec<u8>,
    /// The `trace` field of the last PUT that carried one (AlloyCI keeps only this).
    pub trace_final: Option<Vec<u8>>,
    /// Trace PATCHes received (accepted or not).
    pub patches: usize,
    /// The uploaded artifacts archive, stored in the simulator's data folder.
    pub artifacts: Option<PathBuf>,
    /// The upload's file name (`<artifacts.name>.zip`).
    pub artifacts_filename: Option<String>,
    pub artifacts_size: Option<u64>,
    /// The `expire_in` query parameter of the upload.
    pub artifacts_expire_in: Option<String>,
}

impl JobRecord {
    pub(crate) fn new(id: u64, name: String) -> JobRecord {
        JobRecord {
            id,
            name,
            state: JobState::Pending,
            reported_state: None,
            failure_reason: None,
            exit_code: None,
            updates: Vec::new(),
            trace_incremental: Vec::new(),
            trace_final: None,
            patches: 0,
            artifacts: None,
            artifacts_filename: None,
            artifacts_size: None,
            artifacts_expire_in: None,
        }
    }

    /// Whether the job is over: finished, or cancelled and the runner sent a final state.
    pub fn is_done(&self) -> bool {
        let reported_final = matches!(self.reported_state.as_deref(), Some("success" | "failed"));
        self.state.is_finished() || (self.state == JobState::Canceled && reported_final)
    }

    /// The log the coordinator shows: the final PUT's trace, else the incremental one.
    pub fn log(&self) -> &[u8] {
        self.trace_final
            .as_deref()
            .unwrap_or(&self.trace_incremental)
    }
}

/// A runner as registered through `POST /runners` (or added by the test, with empty fields).
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredRunner {
    pub id: u64,
    pub description: String,
    pub tags: Vec<String>,
    pub run_untagged: bool,
    pub locked: bool,
    /// The `info` object as sent (`Null` when absent).
    pub info: serde_json::Value,
}

/// CRC-32 (IEEE), as GitLab compares it with the runner's `output.checksum`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_ieee_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }
}
