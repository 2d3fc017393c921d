//! Cleanup: whatever happened to the job, every object created for it is deleted, on a
//! deadline of its own. A 404 means already gone.

use std::time::{Duration, Instant};

use crate::kube::Client;

/// How long cleanup may take in total, independent of the job's own deadline.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(300);

/// Pause between two tries of a delete that failed.
const CLEANUP_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// The objects created for one job, recorded as each create succeeds.
#[derive(Debug, Default, Clone)]
pub struct Created {
    pub namespace: String,
    pub pod: Option<String>,
    pub secrets: Vec<String>,
}

/// What cleanup could not delete, for the job log and the runner's log.
#[derive(Debug, Default)]
pub struct CleanupReport {
    pub failures: Vec<String>,
}

/// Deletes the pod (with `grace_secs`) and every secret in `created`, retrying each until
/// [`CLEANUP_TIMEOUT`] has passed.
pub fn cleanup(client: &Client, created: &Created, grace_secs: Option<i64>) -> CleanupReport {
    let deadline = Instant::now() + CLEANUP_TIMEOUT;
    let ns = created.namespace.as_str();
    let mut report = CleanupReport::default();
    if let Some(pod) = created.pod.as_deref().filter(|name| !name.is_empty()) {
        let what = format!("pod {ns}/{pod}");
        retry(&what, deadline, &mut report, || {
            client.delete_pod(ns, pod, grace_secs)
        });
    }
    for secret in created.secrets.iter().filter(|name| !name.is_empty()) {
        let what = format!("secret {ns}/{secret}");
        retry(&what, deadline, &mut report, || {
            client.delete_secret(ns, secret)
        });
    }
    report
}

fn retry<E: std::fmt::Display>(
    what: &str,
    deadline: Instant,
    report: &mut CleanupReport,
    mut delete: impl FnMut() -> Result<(), E>,
) {
    loop {
        match delete() {
            Ok(()) => {
                log::debug!("deleted {what}");
                return;
            }
            Err(err) if Instant::now() + CLEANUP_RETRY_PAUSE < deadline => {
                log::warn!("deleting {what} failed, trying again: {err}");
                std::thread::sleep(CLEANUP_RETRY_PAUSE);
            }
            Err(err) => {
                log::error!("giving up deleting {what}: {err}");
                report
                    .failures
                    .push(format!("could not delete {what}: {err}"));
                return;
            }
        }
    }
}
