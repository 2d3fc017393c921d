//! The coordinator (AlloyCI or GitLab) side: runner API v4 client, job payloads, trace sender.

pub mod artifacts;
pub mod backoff;
pub mod client;
pub mod error;
pub mod job;
pub mod payload;
pub mod poller;
pub mod trace_sender;

pub use client::{
    CancelState, Client, ClientOptions, FailureReason, JobRequest, JobState, JobUpdate,
    PatchAnswer, PatchOutcome, Registered, Registration, RunnerInfo, UpdateAnswer, UpdateOutcome,
};
pub use error::CoordinatorError;
pub use poller::{Poll, Poller};
pub use trace_sender::{JobResult, TraceSender, TraceSource};
