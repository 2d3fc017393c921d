//! The coordinator (AlloyCI or GitLab) side: runner API v4 client, job payloads, trace sender.

pub mod job;
