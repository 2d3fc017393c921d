//! Running a job in its own pod: the manifest, waiting for the pod, the stages, cleanup.

pub mod layout;
pub mod pod_state;
pub mod script;
pub mod variables;
