//! alloy-runner: takes CI jobs from an AlloyCI or GitLab coordinator and runs each in its own
//! Kubernetes pod.
//!
//! - [`config`]: `config.toml`, checked once at load time.
//! - [`coordinator`]: runner API v4 client, job payloads, the trace sender.
//! - [`kube`]: the hand-written Kubernetes client (credentials, REST, watch, exec).
//! - [`executor`]: the job's pod (manifest, overwrites), waiting, stages, cleanup.
//! - [`trace`]: the output pipeline (masking, UTF-8 repair, output limit, spool).
//! - [`pipeline`]: `.alloy-ci.json` to jobs and job payloads.
//! - [`helper`]: verbs run inside the helper container (archives, cache, artifacts).
//! - [`cli`]: the global command-line options; [`commands`]: the commands.
//! - [`logging`]: the stderr logger and where its level comes from.

pub mod checksum;
pub mod cli;
pub mod commands;
pub mod config;
pub mod coordinator;
pub mod executor;
pub mod helper;
pub mod kube;
pub mod logging;
pub mod pipeline;
pub mod secret;
pub mod service;
pub mod signals;
pub mod trace;
