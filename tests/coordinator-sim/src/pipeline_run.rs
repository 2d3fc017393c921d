//! One pipeline over a local git repository, handed out stage by stage.

use std::path::{Path, PathBuf};
use std::process::Command;

use alloy_runner::pipeline::{DependencyRef, PayloadContext, Pipeline, PipelineJob, When};
use alloy_runner::secret::Secret;

use crate::record::{JobRecord, JobState};
use crate::state::{declares_artifacts, JobEntry, State};
use crate::SimError;

const NO_SHA: &str = "0000000000000000000000000000000000000000";

/// Where a pipeline's sources come from.
#[derive(Debug, Clone)]
pub struct PipelineSource {
    /// A local git repository (its HEAD is the pipeline's commit).
    pub repo: PathBuf,
    /// The branch or tag; default the branch HEAD points to.
    pub ref_name: Option<String>,
    pub is_tag: bool,
    /// Send `repo_url` as a `file://` URL instead of a plain path.
    pub file_url: bool,
    /// Serve the repository over HTTP from the simulator and send that URL (the default:
    /// job pods cannot see the host's folders, as in a real cluster).
    pub serve_http: bool,
}

impl PipelineSource {
    /// HEAD of the repository, served over HTTP by the simulator.
    pub fn new(repo: &Path) -> PipelineSource {
        PipelineSource {
            repo: repo.to_path_buf(),
            ref_name: None,
            is_tag: false,
            file_url: false,
            serve_http: true,
        }
    }

    /// HEAD of the repository, sent as a plain local path (for tests of payloads only).
    pub fn local_path(repo: &Path) -> PipelineSource {
        PipelineSource {
            serve_http: false,
            ..PipelineSource::new(repo)
        }
    }

    pub(crate) fn read_commit(&self) -> Result<Commit, SimError> {
        let repo = std::fs::canonicalize(&self.repo).map_err(|source| SimError::Io {
            what: self.repo.display().to_string(),
            source,
        })?;
        let sha = git(&repo, &["rev-parse", "HEAD"])?;
        let before_sha = git(&repo, &["rev-parse", "-q", "--verify", "HEAD~1"])
            .unwrap_or_else(|_| NO_SHA.to_string());
        let ref_name = match &self.ref_name {
            Some(name) => name.clone(),
            None => git(&repo, &["symbolic-ref", "--short", "HEAD"])?,
        };
        let path = repo.display().to_string();
        let repo_url = if self.file_url {
            format!("file://{path}")
        } else {
            path
        };
        Ok(Commit {
            repo,
            repo_url,
            sha,
            before_sha,
            ref_name,
        })
    }
}

pub(crate) struct Commit {
    repo: PathBuf,
    repo_url: String,
    sha: String,
    before_sha: String,
    ref_name: String,
}

fn git(repo: &Path, args: &[&str]) -> Result<String, SimError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|err| SimError::Git {
            repo: repo.to_path_buf(),
            detail: format!("cannot run git: {err}"),
        })?;
    if !output.status.success() {
        let detail = format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return Err(SimError::Git {
            repo: repo.to_path_buf(),
            detail,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A pipeline as enqueued: its id and its jobs' names and ids, in pipeline order.
#[derive(Debug, Clone)]
pub struct PipelineRun {
    pub id: u64,
    pub jobs: Vec<(String, u64)>,
}

impl PipelineRun {
    /// The id of the job named `name`.
    pub fn job_id(&self, name: &str) -> Option<u64> {
        self.jobs.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }
}

pub(crate) struct RunState {
    jobs: Vec<(PipelineJob, u64)>,
    stages: Vec<String>,
    base: PayloadContext,
    /// Stages already opened (their jobs queued or skipped).
    opened: usize,
    /// An earlier stage had a failure that was not allowed.
    failed: bool,
}

impl State {
    /// Registers `repo` for dumb HTTP and returns its URL (the plain path if it cannot be
    /// prepared, which the clone then reports).
    fn serve_repo(&mut self, repo: &Path) -> String {
        if let Err(err) = crate::git_http::prepare(repo) {
            self.violation(format!("cannot serve {} over HTTP: {err}", repo.display()));
            return repo.display().to_string();
        }
        let name = repo.file_name().map(|n| n.to_string_lossy().into_owned());
        let index = self.repos.len();
        self.repos.push(repo.to_path_buf());
        let path = crate::git_http::repo_path(index, name.as_deref().unwrap_or("repo"));
        format!("{}{path}", self.server_url)
    }

    pub(crate) fn enqueue_pipeline(
        &mut self,
        pipeline: Pipeline,
        source: &PipelineSource,
        commit: Commit,
    ) -> PipelineRun {
        let run_index = self.runs.len();
        let mut commit = commit;
        if source.serve_http && !source.file_url {
            commit.repo_url = self.serve_repo(&commit.repo);
        }
        let pipeline_id = run_index as u64 + 1;
        let project_name = commit
            .repo
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base = PayloadContext {
            dialect: self.dialect,
            pipeline_id,
            project_id: pipeline_id,
            project_path: format!("local/{project_name}"),
            project_name,
            repo_url: Secret::new(commit.repo_url),
            ref_name: commit.ref_name,
            is_tag: source.is_tag,
            sha: commit.sha,
            before_sha: commit.before_sha,
            server_url: self.server_url.clone(),
            timeout_secs: self.job_timeout_secs,
            ..PayloadContext::default()
        };

        // Every selected job gets its id and token now; payloads wait for their stage.
        let mut jobs = Vec::new();
        for job in pipeline.jobs_for_ref(&base.ref_name, base.is_tag) {
            let id = self.new_job_id();
            let entry = JobEntry {
                token: self.token(20),
                payload: None,
                raw_body: None,
                record: JobRecord::new(id, job.name.clone()),
                tags: job.tags.clone(),
                artifacts_declared: job.artifacts.is_some(),
                cancel: None,
                accept_next_put: false,
                reject_next_range: false,
                run: Some(run_index),
            };
            self.jobs.insert(id, entry);
            jobs.push((job.clone(), id));
        }
        let listed = jobs
            .iter()
            .map(|(job, id)| (job.name.clone(), *id))
            .collect();
        let stages = pipeline.stages;
        self.runs.push(RunState {
            jobs,
            stages,
            base,
            opened: 0,
            failed: false,
        });
        advance(self, run_index);
        PipelineRun {
            id: pipeline_id,
            jobs: listed,
        }
    }
}

/// Opens the next stages while the opened ones are all done.
pub(crate) fn advance(state: &mut State, run_index: usize) {
    loop {
        let Some(run) = state.runs.get(run_index) else {
            return;
        };
        if run.opened > 0 {
            let Some(failed) = stage_outcome(state, run, run.opened - 1) else {
                return;
            };
            if failed {
                state.runs[run_index].failed = true;
            }
        }
        let run = &state.runs[run_index];
        if run.opened >= run.stages.len() {
            return;
        }
        open_stage(state, run_index);
    }
}

/// `None` while a job of the stage is still going; else whether a failure was not allowed.
fn stage_outcome(state: &State, run: &RunState, stage: usize) -> Option<bool> {
    let mut failed = false;
    for (job, id) in run
        .jobs
        .iter()
        .filter(|(job, _)| job.stage == run.stages[stage])
    {
        let record = &state.jobs.get(id)?.record;
        match record.state {
            JobState::Pending | JobState::Running => return None,
            JobState::Failed | JobState::Canceled => failed |= !job.allow_failure,
            _ => {}
        }
    }
    Some(failed)
}

fn open_stage(state: &mut State, run_index: usize) {
    let run = &state.runs[run_index];
    let stage = run.stages[run.opened].clone();
    let failed = run.failed;
    let members: Vec<(PipelineJob, u64)> = run
        .jobs
        .iter()
        .filter(|(job, _)| job.stage == stage)
        .cloned()
        .collect();
    state.runs[run_index].opened += 1;

    for (job, id) in members {
        let runs_now = match job.when {
            When::OnSuccess => !failed,
            When::OnFailure => failed,
            When::Always => true,
            When::Manual => false,
        };
        if runs_now {
            let payload = job.to_payload(&context_for(state, run_index, &job, id));
            if let Some(entry) = state.jobs.get_mut(&id) {
                entry.artifacts_declared = declares_artifacts(&payload);
                entry.payload = Some(payload);
            }
            state.push_queue(id);
            continue;
        }
        let parked = if job.when == When::Manual {
            JobState::Manual
        } else {
            JobState::Skipped
        };
        state.with_job(id, |entry| entry.record.state = parked);
        state.publish(id);
    }
}

fn context_for(state: &State, run_index: usize, job: &PipelineJob, id: u64) -> PayloadContext {
    let run = &state.runs[run_index];
    let mut ctx = run.base.clone();
    ctx.job_id = id;
    ctx.job_token = Secret::new(
        state
            .jobs
            .get(&id)
            .map(|e| e.token.clone())
            .unwrap_or_default(),
    );
    ctx.dependencies = run
        .jobs
        .iter()
        .filter(|(other, _)| job.dependencies.contains(&other.name))
        .filter_map(|(other, other_id)| {
            let entry = state.jobs.get(other_id)?;
            (entry.record.state == JobState::Success).then(|| DependencyRef {
                name: other.name.clone(),
                id: *other_id,
                token: Secret::new(entry.token.clone()),
                artifacts_filename: entry.record.artifacts_filename.clone(),
                artifacts_size: entry.record.artifacts_size,
            })
        })
        .collect();
    ctx
}
