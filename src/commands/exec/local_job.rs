//! A pipeline job made into a runnable [`Job`] without a coordinator: the payload a GitLab
//! coordinator would send, with a local job id and token and the checkout's commit, decoded and
//! checked like any other.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};

use crate::commands::exec::checkout::Checkout;
use crate::coordinator::job::Job;
use crate::coordinator::messages::JobRequest;
use crate::coordinator::payload::decode;
use crate::executor::variables::masked_values;
use crate::pipeline::{Dialect, PayloadContext, PipelineJob};
use crate::secret::Secret;

/// `CI_COMMIT_BEFORE_SHA` when there is no earlier push, as GitLab sends it.
const NO_SHA: &str = "0000000000000000000000000000000000000000";

/// The payload of a local job and what the user should know before it runs.
pub struct LocalJob {
    payload: String,
    token: Secret,
    /// Warnings for the top of the job log (left-out dependencies and artifacts).
    pub notices: Vec<String>,
}

impl LocalJob {
    /// Builds the payload of `job` for the checkout's HEAD and branch; `env` is added to the
    /// job's variables (later entries win); `timeout_secs` 0 means 3600.
    pub fn new(
        job: &PipelineJob,
        checkout: &Checkout,
        env: &[(String, String)],
        timeout_secs: u64,
    ) -> LocalJob {
        let mut job = job.clone();
        job.variables.extend(env.iter().cloned());
        let notices = strip_remote_parts(&mut job, &checkout.branch);
        let token = Secret::new(format!("exec-{:016x}{:016x}", random(), random()));
        let ctx = PayloadContext {
            dialect: Dialect::GitLab,
            job_id: u64::from(std::process::id()),
            job_token: token.clone(),
            pipeline_id: u64::from(std::process::id()),
            project_id: 0,
            project_name: checkout.name(),
            project_path: format!("local/{}", checkout.name()),
            repo_url: Secret::new(format!("file://{}", checkout.root.display())),
            server_url: String::new(),
            ref_name: checkout.branch.clone(),
            is_tag: false,
            sha: checkout.sha.clone(),
            before_sha: NO_SHA.to_string(),
            timeout_secs,
            dependencies: Vec::new(),
        };
        LocalJob {
            payload: job.to_payload(&ctx).to_string(),
            token,
            notices,
        }
    }

    /// The checked job, or why the payload was refused.
    pub fn decode(&self) -> Result<Job, String> {
        match decode(&self.payload) {
            JobRequest::Job(job) => {
                let mut job = *job;
                // A terminal shows the log: no collapsible-section markers.
                job.trace_sections = false;
                Ok(job)
            }
            JobRequest::Unparseable { message, .. } => Err(message),
            _ => Err("the job payload decoded to no job".to_string()),
        }
    }

    /// What the log masks: the job's masked variables and its local token.
    pub fn masks(&self, job: &Job) -> Vec<String> {
        let mut masks = masked_values(&job.variables);
        masks.push(self.token.expose().to_string());
        masks
    }
}

/// Drops what needs a coordinator (artifacts of earlier jobs, artifact uploads) and returns a
/// notice for each thing dropped or ignored.
fn strip_remote_parts(job: &mut PipelineJob, branch: &str) -> Vec<String> {
    let mut notices = Vec::new();
    if !job.dependencies.is_empty() {
        notices.push(format!(
            "exec has no artifacts of earlier jobs: {} not downloaded",
            job.dependencies.join(", ")
        ));
        job.dependencies.clear();
    }
    if job.artifacts.take().is_some() {
        notices.push("exec uploads no artifacts: the job's artifacts are skipped".to_string());
    }
    if !job.runs_for_ref(branch, false) {
        notices.push(format!(
            "job {:?} does not run for branch {branch:?} (only/except); running it anyway",
            job.name
        ));
    }
    notices
}

/// A random number from the standard library's per-process hash keys.
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// A file under the temporary folder, removed on drop.
pub struct TempFile(PathBuf);

impl TempFile {
    /// Reserves a new empty file named `alloy-exec-*.<extension>`.
    pub fn new(extension: &str) -> io::Result<TempFile> {
        let name = format!(
            "alloy-exec-{}-{:016x}.{extension}",
            std::process::id(),
            random()
        );
        let path = std::env::temp_dir().join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(TempFile(path))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.0) {
            log::warn!("cannot remove {}: {err}", self.0.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline_job(json: &str, name: &str) -> PipelineJob {
        let pipeline = crate::pipeline::parse(json).expect("valid pipeline");
        pipeline.job(name).expect("job exists").clone()
    }

    fn checkout() -> Checkout {
        Checkout {
            root: PathBuf::from("/home/dev/my app"),
            sha: "0123456789abcdef0123456789abcdef01234567".to_string(),
            branch: "feature/x".to_string(),
        }
    }

    fn value<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
        let found = job.variables.iter().rev().find(|v| v.key == key);
        found.map(|v| v.value.as_str())
    }

    #[test]
    fn the_job_carries_the_checkout_commit_and_the_extra_variables() {
        let job = pipeline_job(
            r#"{"variables": {"A": "file"}, "test": {"script": ["make"]}}"#,
            "test",
        );
        let env = [("A".to_string(), "cli".to_string())];
        let local = LocalJob::new(&job, &checkout(), &env, 120);
        let job = local.decode().expect("a valid job");
        assert_eq!(job.git_info.sha, checkout().sha);
        assert_eq!(job.git_info.ref_name, "feature/x");
        assert_eq!(job.timeout_secs, 120);
        assert_eq!(job.job_info.name, "test");
        assert_eq!(job.job_info.project_name, "my app");
        assert_eq!(value(&job, "A"), Some("cli"));
        assert_eq!(value(&job, "CI_COMMIT_REF_SLUG"), Some("feature-x"));
        assert!(!job.trace_sections);
        assert!(local.notices.is_empty(), "{:?}", local.notices);
    }

    #[test]
    fn the_local_token_is_masked() {
        let job = pipeline_job(r#"{"test": {"script": ["make"]}}"#, "test");
        let local = LocalJob::new(&job, &checkout(), &[], 0);
        let decoded = local.decode().expect("a valid job");
        let token = decoded.token.expose().to_string();
        assert!(token.starts_with("exec-") && token.len() == 37, "{token}");
        assert!(local.masks(&decoded).contains(&token));
        assert_eq!(decoded.timeout_secs, 3600);
    }

    #[test]
    fn dependencies_and_artifacts_are_dropped_with_notices() {
        let json = r#"{
          "build": {"stage": "build", "script": ["make"], "artifacts": {"paths": ["out"]}},
          "test": {"stage": "test", "script": ["make test"], "only": ["main"],
                   "artifacts": {"paths": ["report"]}}
        }"#;
        let local = LocalJob::new(&pipeline_job(json, "test"), &checkout(), &[], 0);
        let job = local.decode().expect("a valid job");
        assert!(job.dependencies.is_empty());
        assert!(job.artifacts.is_empty());
        assert_eq!(
            local.notices,
            [
                "exec has no artifacts of earlier jobs: build not downloaded",
                "exec uploads no artifacts: the job's artifacts are skipped",
                "job \"test\" does not run for branch \"feature/x\" (only/except); running it \
                 anyway",
            ]
        );
    }

    #[test]
    fn temp_files_are_removed_on_drop() {
        let file = TempFile::new("tar").expect("temp file");
        let path = file.path().to_path_buf();
        assert!(path.exists());
        drop(file);
        assert!(!path.exists());
    }
}
