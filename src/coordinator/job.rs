//! The job payload handed out by `POST /api/v4/jobs/request`, decoded leniently (AlloyCI sends
//! `[null]` lists, null names, numeric values, booleans as strings) and then checked.

use crate::secret::Secret;

/// A job as the runner works with it, after decoding and checking.
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub id: u64,
    /// The job token: trace, update and artifact calls authenticate with it.
    pub token: Secret,
    pub allow_git_fetch: bool,
    pub job_info: JobInfo,
    pub git_info: GitInfo,
    /// `runner_info.timeout` in seconds (default 3600).
    pub timeout_secs: u64,
    /// In payload order; when a key appears twice, the later entry wins where looked up.
    pub variables: Vec<JobVariable>,
    pub steps: Vec<Step>,
    /// The job's build image, `None` when the job names none.
    pub image: Option<Image>,
    pub services: Vec<Image>,
    pub artifacts: Vec<Artifact>,
    pub cache: Vec<Cache>,
    pub credentials: Vec<Credential>,
    pub dependencies: Vec<Dependency>,
    /// `features.trace_sections`.
    pub trace_sections: bool,
}

/// `job_info`.
#[derive(Debug, Clone, Default)]
pub struct JobInfo {
    pub name: String,
    pub stage: String,
    pub project_id: u64,
    pub project_name: String,
}

/// `git_info`. `ref_name` has any `refs/heads/` or `refs/tags/` prefix removed.
#[derive(Debug, Clone, Default)]
pub struct GitInfo {
    pub repo_url: Secret,
    pub ref_name: String,
    pub sha: String,
    pub before_sha: String,
    pub ref_type: String,
}

/// One entry of `variables`. Its `Debug` shows the value only for public, unmasked variables.
#[derive(Clone, Default, PartialEq)]
pub struct JobVariable {
    pub key: String,
    pub value: String,
    pub public: bool,
    pub file: bool,
    pub masked: bool,
}

impl std::fmt::Debug for JobVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.public && !self.masked;
        f.debug_struct("JobVariable")
            .field("key", &self.key)
            .field("value", if shown { &self.value } else { &"[REDACTED]" })
            .field("public", &self.public)
            .field("file", &self.file)
            .field("masked", &self.masked)
            .finish()
    }
}

/// When a step or an artifact applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum When {
    #[default]
    OnSuccess,
    OnFailure,
    Always,
    Manual,
}

/// One entry of `steps` (`script`, `after_script`).
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub name: String,
    pub script: Vec<String>,
    pub timeout_secs: u64,
    pub when: When,
    pub allow_failure: bool,
}

/// A build or service image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Image {
    pub name: String,
    pub alias: Option<String>,
    pub command: Vec<String>,
    pub entrypoint: Vec<String>,
}

/// One entry of `artifacts`.
#[derive(Debug, Clone, Default)]
pub struct Artifact {
    pub name: Option<String>,
    pub untracked: bool,
    pub paths: Vec<String>,
    pub when: When,
    pub expire_in: Option<String>,
}

/// `cache` policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CachePolicy {
    #[default]
    PullPush,
    Pull,
    Push,
}

/// One entry of `cache`.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    /// The key as sent; empty means `<job name>/<ref>`.
    pub key: String,
    pub untracked: bool,
    pub policy: CachePolicy,
    pub paths: Vec<String>,
}

/// One entry of `credentials` (registry logins).
#[derive(Debug, Clone, Default)]
pub struct Credential {
    pub kind: String,
    pub url: String,
    pub username: String,
    pub password: Secret,
}

/// One entry of `dependencies`: a job of an earlier stage whose artifacts this job downloads.
#[derive(Debug, Clone, Default)]
pub struct Dependency {
    pub id: u64,
    pub name: String,
    pub token: Secret,
    pub artifacts_filename: Option<String>,
    pub artifacts_size: Option<u64>,
}
