//! kube-sim: a loopback Kubernetes API server for alloy-runner's tests and demo (never shipped).

pub mod http;
pub mod quantity;
pub mod schema;
pub mod selector;
pub mod status;
pub mod store;
pub mod util;
pub mod validate;
