//! Running a job in its own pod: the manifest, waiting for the pod, the stages, cleanup.

pub mod cleanup;
pub mod files;
pub mod job;
pub mod layout;
pub mod pod_state;
pub mod script;
pub mod stage;
pub mod stop;
pub mod supervisor;
pub mod variables;
pub mod wait;
