//! kube-sim: a loopback Kubernetes API server for alloy-runner's tests and demo (never shipped).
//! It serves the pods, secrets, configmaps and events API over HTTP or HTTPS, runs pods with a
//! simulated kubelet, and injects faults on demand.

mod admin;
mod api;
pub mod auth;
mod discovery;
mod exec;
pub mod exec_stream;
pub mod faults;
pub mod http;
pub mod kubeconfig;
pub mod kubelet;
mod node;
mod objects;
mod pods;
pub mod quantity;
pub mod record;
pub mod schema;
pub mod selector;
mod server;
mod sim;
pub mod status;
pub mod store;
mod table;
pub mod tls;
pub mod util;
pub mod validate;
mod watch;

pub use auth::{Rule, TokenSpec};
pub use faults::{Failure, WatchMode};
pub use record::RecordedRequest;
pub use sim::{Credentials, Sim, SimError, SimHandle, SimOptions};
