//! A pipeline job as the runner API job payload (section 2 of the runner API), in the shape
//! AlloyCI or GitLab sends it.

use serde_json::{json, Value};

use super::{short_ref, ArtifactsSpec, CacheSpec, ImageSpec, PipelineJob};
use crate::secret::Secret;

/// Which coordinator's payload shape to build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// AlloyCI: `[null]` for no artifacts or cache, full refs, booleans as strings, no
    /// `credentials`, `features`, `file` or `masked`.
    AlloyCi,
    /// GitLab: short refs, typed booleans, `features.trace_sections`.
    #[default]
    GitLab,
}

/// What the coordinator knows about a job beyond the pipeline file: ids, tokens, the commit.
#[derive(Debug, Clone, Default)]
pub struct PayloadContext {
    pub dialect: Dialect,
    pub job_id: u64,
    pub job_token: Secret,
    pub pipeline_id: u64,
    pub project_id: u64,
    /// The project's short name, `my_app`.
    pub project_name: String,
    /// The project's path, `acme/my_app`.
    pub project_path: String,
    /// Where the runner clones from (a URL or a local path); may carry credentials.
    pub repo_url: Secret,
    /// The coordinator's base URL for `CI_SERVER_URL` and `CI_PROJECT_URL`; empty leaves
    /// them out.
    pub server_url: String,
    /// The branch or tag, with or without its `refs/heads/` or `refs/tags/` prefix.
    pub ref_name: String,
    pub is_tag: bool,
    pub sha: String,
    pub before_sha: String,
    /// `runner_info.timeout` and the steps' timeout, in seconds; 0 means 3600.
    pub timeout_secs: u64,
    /// Finished jobs that may be this job's dependencies; those the job does not list are
    /// left out, and listed ones missing here are skipped.
    pub dependencies: Vec<DependencyRef>,
}

/// A finished job whose artifacts a later job downloads.
#[derive(Debug, Clone, Default)]
pub struct DependencyRef {
    pub name: String,
    pub id: u64,
    pub token: Secret,
    /// The uploaded archive's file name, `None` when the job uploaded none.
    pub artifacts_filename: Option<String>,
    pub artifacts_size: Option<u64>,
}

const DEFAULT_TIMEOUT_SECS: u64 = 3600;

impl PipelineJob {
    /// Builds the job payload `POST /api/v4/jobs/request` answers with.
    pub fn to_payload(&self, ctx: &PayloadContext) -> Value {
        let alloy = ctx.dialect == Dialect::AlloyCi;
        let timeout = match ctx.timeout_secs {
            0 => DEFAULT_TIMEOUT_SECS,
            secs => secs,
        };
        let mut payload = json!({
            "id": ctx.job_id,
            "token": ctx.job_token.expose(),
            "allow_git_fetch": true,
            "job_info": {
                "name": self.name,
                "stage": self.stage,
                "project_id": ctx.project_id,
                "project_name": ctx.project_name,
            },
            "git_info": git_info(ctx),
            "runner_info": {"timeout": timeout},
            "variables": self.variables_payload(ctx),
            "steps": self.steps(timeout, alloy),
            "image": image_payload(self.image.as_ref(), alloy),
            "services": self.services.iter().map(service_payload).collect::<Vec<_>>(),
            "artifacts": one_or_none(self.artifacts.as_ref().map(|a| artifacts_payload(a, alloy)), alloy),
            "cache": one_or_none(self.cache.as_ref().map(|c| cache_payload(c, alloy)), alloy),
            "dependencies": self.dependencies_payload(ctx),
        });

        // GitLab-only fields.
        if !alloy {
            payload["credentials"] = json!([]);
            payload["features"] = json!({"trace_sections": true});
        }
        payload
    }

    fn steps(&self, timeout: u64, alloy: bool) -> Value {
        let mut script = self.before_script.clone();
        script.extend(self.script.iter().cloned());
        let mut steps = vec![json!({
            "name": "script",
            "script": script,
            "timeout": timeout,
            "when": "on_success",
            "allow_failure": flag(self.allow_failure, alloy),
        })];
        if !self.after_script.is_empty() {
            steps.push(json!({
                "name": "after_script",
                "script": self.after_script,
                "timeout": timeout,
                "when": "always",
                "allow_failure": flag(true, alloy),
            }));
        }
        Value::Array(steps)
    }

    fn variables_payload(&self, ctx: &PayloadContext) -> Value {
        let alloy = ctx.dialect == Dialect::AlloyCi;
        let mut list: Vec<Value> = predefined_variables(self, ctx)
            .into_iter()
            .map(|(key, value, public)| {
                let masked = key == "CI_JOB_TOKEN";
                variable(&key, &value, public, masked, alloy)
            })
            .collect();
        for (key, value) in &self.variables {
            list.push(variable(key, value, true, false, alloy));
        }
        Value::Array(list)
    }

    fn dependencies_payload(&self, ctx: &PayloadContext) -> Value {
        let list: Vec<Value> = self
            .dependencies
            .iter()
            .filter_map(|name| ctx.dependencies.iter().find(|dep| dep.name == *name))
            .map(|dep| {
                let mut entry =
                    json!({"id": dep.id, "name": dep.name, "token": dep.token.expose()});
                if let Some(filename) = &dep.artifacts_filename {
                    entry["artifacts_file"] =
                        json!({"filename": filename, "size": dep.artifacts_size.unwrap_or(0)});
                }
                entry
            })
            .collect();
        Value::Array(list)
    }
}

/// `(key, value, public)` of the variables the coordinator itself defines; the non-public
/// ones are the job token and the repository URL; the GitLab shape masks the job token.
fn predefined_variables(job: &PipelineJob, ctx: &PayloadContext) -> Vec<(String, String, bool)> {
    let alloy = ctx.dialect == Dialect::AlloyCi;
    let short = short_ref(&ctx.ref_name).to_string();
    let mut vars = vec![("CI".to_string(), "true".to_string(), true)];
    let mut add = |key: &str, value: String, public: bool| vars.push((key.into(), value, public));

    // Server identity.
    if alloy {
        add("ALLOY_CI", "true".into(), true);
        add("CI_SERVER_NAME", "AlloyCI".into(), true);
        add("GIT_SSL_NO_VERIFY", "true".into(), true);
    } else {
        add("GITLAB_CI", "true".into(), true);
        add("CI_SERVER_NAME", "GitLab".into(), true);
    }
    if !ctx.server_url.is_empty() {
        add("CI_SERVER_URL", ctx.server_url.clone(), true);
        let project_url = format!(
            "{}/{}",
            ctx.server_url.trim_end_matches('/'),
            ctx.project_path
        );
        add("CI_PROJECT_URL", project_url, true);
    }

    // The job and its commit.
    add("CI_JOB_ID", ctx.job_id.to_string(), true);
    add("CI_JOB_NAME", job.name.clone(), true);
    add("CI_JOB_STAGE", job.stage.clone(), true);
    add("CI_JOB_TOKEN", ctx.job_token.expose().to_string(), false);
    add("CI_PIPELINE_ID", ctx.pipeline_id.to_string(), true);
    add("CI_COMMIT_SHA", ctx.sha.clone(), true);
    add("CI_COMMIT_BEFORE_SHA", ctx.before_sha.clone(), true);
    if alloy {
        add("CI_COMMIT_REF_NAME", full_ref(ctx), true);
        add("CI_COMMIT_REF_SLUG", short.clone(), true);
    } else {
        add("CI_COMMIT_REF_NAME", short.clone(), true);
        add("CI_COMMIT_REF_SLUG", slug(&short), true);
    }
    if ctx.is_tag {
        add("CI_COMMIT_TAG", short, true);
    }

    // The project.
    add("CI_PROJECT_ID", ctx.project_id.to_string(), true);
    add("CI_PROJECT_NAME", ctx.project_name.clone(), true);
    add("CI_PROJECT_PATH", ctx.project_path.clone(), true);
    add(
        "CI_REPOSITORY_URL",
        ctx.repo_url.expose().to_string(),
        false,
    );
    vars
}

fn variable(key: &str, value: &str, public: bool, masked: bool, alloy: bool) -> Value {
    if alloy {
        json!({"key": key, "value": value, "public": public})
    } else {
        json!({"key": key, "value": value, "public": public, "file": false, "masked": masked})
    }
}

fn git_info(ctx: &PayloadContext) -> Value {
    let ref_type = if ctx.is_tag { "tag" } else { "branch" };
    let mut info = json!({
        "repo_url": ctx.repo_url.expose(),
        "ref": short_ref(&ctx.ref_name),
        "sha": ctx.sha,
        "before_sha": ctx.before_sha,
        "ref_type": ref_type,
    });
    if ctx.dialect == Dialect::AlloyCi {
        info["ref"] = json!(full_ref(ctx));
    }
    info
}

/// `refs/heads/<branch>` or `refs/tags/<tag>`.
fn full_ref(ctx: &PayloadContext) -> String {
    let kind = if ctx.is_tag { "tags" } else { "heads" };
    format!("refs/{kind}/{}", short_ref(&ctx.ref_name))
}

/// GitLab's `CI_COMMIT_REF_SLUG`: lowercase, every other character than `a-z0-9` a `-`, at
/// most 63 characters, no leading or trailing `-`.
fn slug(ref_name: &str) -> String {
    let replaced: String = ref_name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cut: String = replaced.trim_matches('-').chars().take(63).collect();
    cut.trim_end_matches('-').to_string()
}

fn flag(value: bool, alloy: bool) -> Value {
    if alloy {
        json!(value.to_string())
    } else {
        json!(value)
    }
}

fn image_payload(image: Option<&ImageSpec>, alloy: bool) -> Value {
    match image {
        Some(image) if image.entrypoint.is_empty() => json!({"name": image.name}),
        Some(image) => json!({"name": image.name, "entrypoint": image.entrypoint}),
        None if alloy => json!({"name": null}),
        None => Value::Null,
    }
}

fn service_payload(service: &ImageSpec) -> Value {
    let mut entry = json!({"name": service.name});
    if let Some(alias) = &service.alias {
        entry["alias"] = json!(alias);
    }
    if !service.command.is_empty() {
        entry["command"] = json!(service.command);
    }
    if !service.entrypoint.is_empty() {
        entry["entrypoint"] = json!(service.entrypoint);
    }
    entry
}

fn artifacts_payload(spec: &ArtifactsSpec, alloy: bool) -> Value {
    json!({
        "name": spec.name,
        "untracked": flag(spec.untracked, alloy),
        "paths": spec.paths,
        "when": spec.when.as_str(),
        "expire_in": spec.expire_in,
    })
}

fn cache_payload(spec: &CacheSpec, alloy: bool) -> Value {
    json!({
        "key": spec.key,
        "untracked": flag(spec.untracked, alloy),
        "policy": spec.policy.as_str(),
        "paths": spec.paths,
    })
}

/// A one-entry list, or for none `[null]` (AlloyCI) or `[]` (GitLab).
fn one_or_none(entry: Option<Value>, alloy: bool) -> Value {
    match entry {
        Some(entry) => json!([entry]),
        None if alloy => json!([null]),
        None => json!([]),
    }
}
