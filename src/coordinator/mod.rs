//! The coordinator (AlloyCI or GitLab) side: runner API v4 client, job payloads, trace sender.

pub mod artifacts;
pub mod backoff;
pub mod client;
pub mod error;
pub mod job;
pub mod messages;
pub mod payload;
pub mod poller;
pub mod trace_sender;

pub use client::{Client, ClientOptions};
pub use error::CoordinatorError;
pub use messages::{
    CancelState, FailureReason, JobRequest, JobState, JobUpdate, PatchAnswer, PatchOutcome,
    Registered, Registration, RunnerInfo, TraceOutput, UpdateAnswer, UpdateOutcome,
};
pub use poller::{Poll, Poller};
pub use trace_sender::{JobResult, TraceSender, TraceSource};
