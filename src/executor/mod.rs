//! Running a job in its own pod: the manifest, waiting for the pod, the stages, cleanup.

pub mod base64;
pub mod cleanup;
pub mod file_stages;
pub mod files;
pub mod job;
pub mod labels;
pub mod layout;
pub mod manifest;
pub mod overwrites;
pub mod pod_state;
pub mod script;
pub mod sources;
pub mod stage;
pub mod stop;
pub mod supervisor;
pub mod variables;
pub mod wait;
