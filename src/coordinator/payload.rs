//! Lenient decoding of the job payload into the checked [`Job`].
//!
//! AlloyCI sends `[null]` for empty lists, `{"name": null}` images, null or numeric variable
//! values, booleans as strings and full refs; the raw types below accept all of that, then
//! [`check`] refuses what cannot be run, with a message, so the job can be failed.

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use super::job::{
    Artifact, Cache, CachePolicy, Credential, Dependency, GitInfo, Image, Job, JobInfo,
    JobVariable, Step, When,
};
use super::messages::JobRequest;
use crate::secret::Secret;

/// Job timeout when `runner_info.timeout` is missing, in seconds.
pub const DEFAULT_JOB_TIMEOUT_SECS: u64 = 3600;
/// Timeout of `after_script` when its step names none, in seconds.
pub const DEFAULT_AFTER_SCRIPT_TIMEOUT_SECS: u64 = 300;

/// Decodes a 201 body of `POST /jobs/request`: a checked job, or `Unparseable` with whatever
/// id and token could be read so that the caller can fail the job.
pub fn decode(text: &str) -> JobRequest {
    let raw: RawJob = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return unparseable(text, format!("the job payload does not decode: {e}")),
    };
    let (id, token) = (raw.id, raw.token.clone());
    match convert(raw).and_then(check) {
        Ok(job) => JobRequest::Job(Box::new(job)),
        Err(message) => JobRequest::Unparseable {
            id,
            token: token.filter(|t| !t.is_empty()).map(Secret::new),
            message,
        },
    }
}

/// Reads `id` and `token` from a body that did not decode as a whole.
fn unparseable(text: &str, message: String) -> JobRequest {
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let id = value
        .get("id")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
    let token = value
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    JobRequest::Unparseable {
        id,
        token: token.map(Secret::new),
        message,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawJob {
    #[serde(deserialize_with = "lenient_u64")]
    id: Option<u64>,
    #[serde(deserialize_with = "lenient_string")]
    token: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    allow_git_fetch: bool,
    job_info: Option<RawJobInfo>,
    git_info: Option<RawGitInfo>,
    runner_info: Option<RawRunnerInfo>,
    #[serde(deserialize_with = "list")]
    variables: Vec<RawVariable>,
    #[serde(deserialize_with = "list")]
    steps: Vec<RawStep>,
    #[serde(deserialize_with = "image")]
    image: Option<Image>,
    #[serde(deserialize_with = "images")]
    services: Vec<Image>,
    #[serde(deserialize_with = "list")]
    artifacts: Vec<RawArtifact>,
    #[serde(deserialize_with = "list")]
    cache: Vec<RawCache>,
    #[serde(deserialize_with = "list")]
    credentials: Vec<RawCredential>,
    #[serde(deserialize_with = "list")]
    dependencies: Vec<RawDependency>,
    features: Option<RawFeatures>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawJobInfo {
    #[serde(deserialize_with = "lenient_string")]
    name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    stage: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    project_id: Option<u64>,
    #[serde(deserialize_with = "lenient_string")]
    project_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawGitInfo {
    #[serde(deserialize_with = "lenient_string")]
    repo_url: Option<String>,
    #[serde(rename = "ref", deserialize_with = "lenient_string")]
    ref_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    sha: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    before_sha: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    ref_type: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawRunnerInfo {
    #[serde(deserialize_with = "lenient_u64")]
    timeout: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawVariable {
    #[serde(deserialize_with = "lenient_string")]
    key: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    value: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    public: bool,
    #[serde(deserialize_with = "lenient_bool")]
    file: bool,
    #[serde(deserialize_with = "lenient_bool")]
    masked: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawStep {
    #[serde(deserialize_with = "lenient_string")]
    name: Option<String>,
    #[serde(deserialize_with = "strings")]
    script: Vec<String>,
    #[serde(deserialize_with = "lenient_u64")]
    timeout: Option<u64>,
    #[serde(deserialize_with = "lenient_string")]
    when: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    allow_failure: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawArtifact {
    #[serde(deserialize_with = "lenient_string")]
    name: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    untracked: bool,
    #[serde(deserialize_with = "strings")]
    paths: Vec<String>,
    #[serde(deserialize_with = "lenient_string")]
    when: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    expire_in: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCache {
    #[serde(deserialize_with = "lenient_string")]
    key: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    untracked: bool,
    #[serde(deserialize_with = "lenient_string")]
    policy: Option<String>,
    #[serde(deserialize_with = "strings")]
    paths: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCredential {
    #[serde(rename = "type", deserialize_with = "lenient_string")]
    kind: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    url: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    username: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    password: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDependency {
    #[serde(deserialize_with = "lenient_u64")]
    id: Option<u64>,
    #[serde(deserialize_with = "lenient_string")]
    name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    token: Option<String>,
    artifacts_file: Option<RawArtifactsFile>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawArtifactsFile {
    #[serde(deserialize_with = "lenient_string")]
    filename: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    size: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawFeatures {
    #[serde(deserialize_with = "lenient_bool")]
    trace_sections: bool,
}

/// Fills every field of [`Job`] from the raw payload.
fn convert(raw: RawJob) -> Result<Job, String> {
    let timeout_secs = raw
        .runner_info
        .and_then(|r| r.timeout)
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_JOB_TIMEOUT_SECS);
    let steps = raw
        .steps
        .into_iter()
        .map(|s| convert_step(s, timeout_secs))
        .collect::<Result<Vec<_>, _>>()?;
    let artifacts = raw
        .artifacts
        .into_iter()
        .map(convert_artifact)
        .collect::<Result<_, _>>()?;
    let cache = raw
        .cache
        .into_iter()
        .map(convert_cache)
        .collect::<Result<_, _>>()?;
    Ok(Job {
        id: raw.id.unwrap_or(0),
        token: Secret::new(raw.token.unwrap_or_default()),
        allow_git_fetch: raw.allow_git_fetch,
        job_info: convert_job_info(raw.job_info.unwrap_or_default()),
        git_info: convert_git_info(raw.git_info.unwrap_or_default()),
        timeout_secs,
        variables: raw
            .variables
            .into_iter()
            .filter_map(convert_variable)
            .collect(),
        steps,
        image: raw.image,
        services: raw.services,
        artifacts,
        cache,
        credentials: raw
            .credentials
            .into_iter()
            .map(convert_credential)
            .collect(),
        dependencies: raw
            .dependencies
            .into_iter()
            .map(convert_dependency)
            .collect(),
        trace_sections: raw.features.is_some_and(|f| f.trace_sections),
    })
}

fn convert_job_info(raw: RawJobInfo) -> JobInfo {
    JobInfo {
        name: raw.name.unwrap_or_default(),
        stage: raw.stage.unwrap_or_default(),
        project_id: raw.project_id.unwrap_or(0),
        project_name: raw.project_name.unwrap_or_default(),
    }
}

/// Strips `refs/heads/` or `refs/tags/` from the ref, and derives `ref_type` from it when the
/// payload has none.
fn convert_git_info(raw: RawGitInfo) -> GitInfo {
    let full_ref = raw.ref_name.unwrap_or_default();
    let (ref_name, derived_type) = if let Some(branch) = full_ref.strip_prefix("refs/heads/") {
        (branch.to_string(), "branch")
    } else if let Some(tag) = full_ref.strip_prefix("refs/tags/") {
        (tag.to_string(), "tag")
    } else {
        (full_ref, "branch")
    };
    let ref_type = raw
        .ref_type
        .filter(|t| !t.is_empty())
        .unwrap_or(derived_type.to_string());
    GitInfo {
        repo_url: Secret::new(raw.repo_url.unwrap_or_default()),
        ref_name,
        sha: raw.sha.unwrap_or_default(),
        before_sha: raw.before_sha.unwrap_or_default(),
        ref_type,
    }
}

/// A variable without a key cannot be exported: it is left out.
fn convert_variable(raw: RawVariable) -> Option<JobVariable> {
    let key = raw.key.filter(|k| !k.is_empty())?;
    Some(JobVariable {
        key,
        value: raw.value.unwrap_or_default(),
        public: raw.public,
        file: raw.file,
        masked: raw.masked,
    })
}

fn convert_step(raw: RawStep, job_timeout: u64) -> Result<Step, String> {
    let name = raw.name.unwrap_or_default();
    let default_timeout = if name == "after_script" {
        DEFAULT_AFTER_SCRIPT_TIMEOUT_SECS
    } else {
        job_timeout
    };
    let when = parse_when(raw.when.as_deref()).map_err(|w| format!("step {name:?}: {w}"))?;
    Ok(Step {
        timeout_secs: raw.timeout.filter(|t| *t > 0).unwrap_or(default_timeout),
        name,
        script: raw.script,
        when,
        allow_failure: raw.allow_failure,
    })
}

fn convert_artifact(raw: RawArtifact) -> Result<Artifact, String> {
    let name = raw.name.filter(|n| !n.is_empty());
    let when = parse_when(raw.when.as_deref()).map_err(|w| format!("artifacts {name:?}: {w}"))?;
    Ok(Artifact {
        name,
        untracked: raw.untracked,
        paths: raw.paths,
        when,
        expire_in: raw.expire_in.filter(|e| !e.is_empty()),
    })
}

fn convert_cache(raw: RawCache) -> Result<Cache, String> {
    let policy = match raw.policy.as_deref().unwrap_or("") {
        "" | "pull-push" => CachePolicy::PullPush,
        "pull" => CachePolicy::Pull,
        "push" => CachePolicy::Push,
        other => {
            return Err(format!(
                "cache policy {other:?} is not one of pull-push, pull, push"
            ))
        }
    };
    Ok(Cache {
        key: raw.key.unwrap_or_default(),
        untracked: raw.untracked,
        policy,
        paths: raw.paths,
    })
}

fn convert_credential(raw: RawCredential) -> Credential {
    Credential {
        kind: raw.kind.unwrap_or_default(),
        url: raw.url.unwrap_or_default(),
        username: raw.username.unwrap_or_default(),
        password: Secret::new(raw.password.unwrap_or_default()),
    }
}

fn convert_dependency(raw: RawDependency) -> Dependency {
    let file = raw.artifacts_file.unwrap_or_default();
    Dependency {
        id: raw.id.unwrap_or(0),
        name: raw.name.unwrap_or_default(),
        token: Secret::new(raw.token.unwrap_or_default()),
        artifacts_filename: file.filename.filter(|f| !f.is_empty()),
        artifacts_size: file.size,
    }
}

/// `on_success` (also when missing or empty), `on_failure`, `always`, `manual`.
fn parse_when(text: Option<&str>) -> Result<When, String> {
    match text.unwrap_or("") {
        "" | "on_success" => Ok(When::OnSuccess),
        "on_failure" => Ok(When::OnFailure),
        "always" => Ok(When::Always),
        "manual" => Ok(When::Manual),
        other => Err(format!(
            "when {other:?} is not one of on_success, on_failure, always, manual"
        )),
    }
}

/// Refuses a job that cannot be run, saying why.
fn check(job: Job) -> Result<Job, String> {
    if job.id == 0 {
        return Err("the job payload has no id".to_string());
    }
    if job.token.is_empty() {
        return Err(format!("job {} has no token", job.id));
    }
    let has_script = job
        .steps
        .iter()
        .any(|s| s.name == "script" && !s.script.is_empty());
    if !has_script {
        return Err(format!("job {} has no script step with commands", job.id));
    }
    if job.git_info.repo_url.is_empty() {
        return Err(format!("job {} has no git_info.repo_url", job.id));
    }
    if let Some(dep) = job.dependencies.iter().find(|d| d.id == 0) {
        return Err(format!(
            "job {}: dependency {:?} has no id",
            job.id, dep.name
        ));
    }
    Ok(job)
}

// Lenient field decoders.

fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(b),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|n| n != 0.0)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" | "" => Ok(false),
            _ => Err(serde::de::Error::custom(format!(
                "expected a boolean, got {s:?}"
            ))),
        },
        other => Err(serde::de::Error::custom(format!(
            "expected a boolean, got {other}"
        ))),
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected a string, got {other}"
        ))),
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number, got {n}"))),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => {
            s.trim().parse().map(Some).map_err(|_| {
                serde::de::Error::custom(format!("expected a whole number, got {s:?}"))
            })
        }
        other => Err(serde::de::Error::custom(format!(
            "expected a whole number, got {other}"
        ))),
    }
}

/// A list that may be null or hold nulls (`[null]`), which are dropped.
fn list<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    let items: Option<Vec<Option<T>>> = Option::deserialize(d)?;
    Ok(items.unwrap_or_default().into_iter().flatten().collect())
}

/// A list of strings that may also be null, a single string, or hold nulls.
fn strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .filter(|v| !v.is_null())
            .map(|v| match v {
                Value::String(s) => Ok(s),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                other => Err(serde::de::Error::custom(format!(
                    "expected a string, got {other}"
                ))),
            })
            .collect(),
        other => Err(serde::de::Error::custom(format!(
            "expected a list of strings, got {other}"
        ))),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawImage {
    #[serde(deserialize_with = "lenient_string")]
    name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    alias: Option<String>,
    #[serde(deserialize_with = "strings")]
    command: Vec<String>,
    #[serde(deserialize_with = "strings")]
    entrypoint: Vec<String>,
}

/// An image given as a string or an object; no name (null or empty) means no image.
fn image_from_value(value: Value) -> Result<Option<Image>, serde_json::Error> {
    let raw = match value {
        Value::Null => return Ok(None),
        Value::String(name) => RawImage {
            name: Some(name),
            ..RawImage::default()
        },
        other => RawImage::deserialize(other)?,
    };
    let Some(name) = raw.name.filter(|n| !n.trim().is_empty()) else {
        return Ok(None);
    };
    let alias = raw.alias.filter(|a| !a.is_empty());
    Ok(Some(Image {
        name,
        alias,
        command: raw.command,
        entrypoint: raw.entrypoint,
    }))
}

fn image<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Image>, D::Error> {
    image_from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

/// Services: null, `[null]`, strings or objects; entries without a name are dropped.
fn images<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Image>, D::Error> {
    let items: Option<Vec<Value>> = Option::deserialize(deserializer)?;
    let mut images = Vec::new();
    for item in items.unwrap_or_default() {
        if let Some(image) = image_from_value(item).map_err(serde::de::Error::custom)? {
            images.push(image);
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(text: &str) -> Job {
        match decode(text) {
            JobRequest::Job(job) => *job,
            other => panic!("expected a job, got {other:?}"),
        }
    }

    fn refused(text: &str) -> (Option<u64>, Option<String>, String) {
        match decode(text) {
            JobRequest::Unparseable { id, token, message } => {
                (id, token.map(|t| t.expose().to_string()), message)
            }
            other => panic!("expected an unparseable job, got {other:?}"),
        }
    }

    #[test]
    fn gitlab_payload_fills_every_field() {
        let job = job(include_str!("../../fixtures/jobs/gitlab-full.json"));
        assert_eq!((job.id, job.token.expose()), (1234, "3Jd9a0QkLw2ZpA"));
        assert!(job.allow_git_fetch && job.trace_sections);
        assert_eq!(job.job_info.name, "mix test");
        assert_eq!(
            (job.job_info.project_id, job.job_info.project_name.as_str()),
            (7, "my_app")
        );
        assert_eq!(
            (
                job.git_info.ref_name.as_str(),
                job.git_info.ref_type.as_str()
            ),
            ("main", "branch")
        );
        assert_eq!(job.timeout_secs, 1800);
        assert_eq!(job.variables.len(), 3);
        assert!(job.variables[2].file && job.variables[2].masked && !job.variables[2].public);
        assert_eq!(job.steps[1].name, "after_script");
        assert_eq!(
            (job.steps[1].timeout_secs, job.steps[1].when),
            (600, When::Always)
        );
        let image = job.image.expect("the fixture names an image");
        assert_eq!(
            (image.name.as_str(), image.entrypoint.clone()),
            ("elixir:1.6", vec!["/bin/bash".to_string()])
        );
        assert_eq!(job.services[1].alias.as_deref(), Some("cache"));
        assert_eq!(job.services[1].command, vec!["redis-server"]);
        assert_eq!(job.artifacts[0].name.as_deref(), Some("rel"));
        assert_eq!(job.artifacts[0].expire_in.as_deref(), Some("7d"));
        assert_eq!(job.cache[0].policy, CachePolicy::Pull);
        assert_eq!(job.credentials[0].password.expose(), "3Jd9a0QkLw2ZpA");
        assert_eq!(job.dependencies[0].id, 1230);
        assert_eq!(job.dependencies[0].artifacts_size, Some(2500));
    }

    #[test]
    fn alloyci_nulls_strings_and_full_refs_are_accepted() {
        let job = job(include_str!("../../fixtures/jobs/alloyci-lenient.json"));
        assert!(job.allow_git_fetch);
        assert_eq!(job.job_info.project_id, 3);
        assert_eq!(job.git_info.ref_name, "feature/login");
        assert_eq!(job.git_info.ref_type, "branch");
        assert_eq!(job.git_info.before_sha, "");
        assert!(job.image.is_none(), "an image with a null name is no image");
        assert!(job.services.is_empty() && job.artifacts.is_empty());
        let values: Vec<(&str, &str)> = job
            .variables
            .iter()
            .map(|v| (v.key.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("CI_COMMIT_REF_NAME", "refs/heads/feature/login"),
                ("ALLOY_CI", "true"),
                ("RETRIES", "3"),
                ("EMPTY", ""),
                ("RETRIES", "4")
            ]
        );
        assert!(job.cache[0].untracked);
        assert_eq!(
            (job.cache[0].key.as_str(), job.cache[0].policy),
            ("", CachePolicy::PullPush)
        );
        assert_eq!(job.steps[1].timeout_secs, DEFAULT_AFTER_SCRIPT_TIMEOUT_SECS);
        assert_eq!(job.steps[2].when, When::Manual);
    }

    #[test]
    fn tags_strings_for_lists_and_missing_fields_get_defaults() {
        let job = job(include_str!("../../fixtures/jobs/alloyci-tag.json"));
        assert_eq!(
            (
                job.git_info.ref_name.as_str(),
                job.git_info.ref_type.as_str()
            ),
            ("v1.2.0", "tag")
        );
        assert_eq!(job.steps[0].script, vec!["make release"]);
        assert_eq!(job.steps[0].timeout_secs, DEFAULT_JOB_TIMEOUT_SECS);
        assert_eq!(job.image.map(|i| i.name), Some("elixir:1.6".to_string()));
        let services: Vec<&str> = job.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(services, ["postgres:9.6", "redis:4"]);
        assert_eq!(job.artifacts[0].when, When::OnSuccess);
        assert!(!job.artifacts[0].untracked && job.artifacts[0].name.is_none());
        assert!(job.cache.is_empty() && job.variables.is_empty() && job.credentials.is_empty());
        assert!(!job.trace_sections);
    }

    #[test]
    fn a_job_without_script_is_refused_with_its_id_and_token() {
        let (id, token, message) =
            refused(include_str!("../../fixtures/jobs/invalid-no-script.json"));
        assert_eq!((id, token.as_deref()), (Some(91), Some("nS3dE5gH7jK9mN")));
        assert_eq!(message, "job 91 has no script step with commands");
    }

    #[test]
    fn a_body_of_wrong_types_still_yields_id_and_token() {
        let (id, token, message) =
            refused(include_str!("../../fixtures/jobs/invalid-wrong-types.json"));
        assert_eq!((id, token.as_deref()), (Some(92), Some("wT3dE5gH7jK9mN")));
        assert!(
            message.starts_with("the job payload does not decode"),
            "{message}"
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_refused_without_id() {
        let (id, token, message) = refused("<html>oops</html>");
        assert_eq!((id, token), (None, None));
        assert!(message.contains("does not decode"));
    }

    #[test]
    fn missing_id_token_and_unknown_policy_are_named() {
        let base = r#""git_info": {"repo_url": "https://h/a/b.git"}, "steps": [{"name": "script", "script": ["x"]}]"#;
        assert_eq!(
            refused(&format!(r#"{{"token": "t", {base}}}"#)).2,
            "the job payload has no id"
        );
        assert_eq!(
            refused(&format!(r#"{{"id": 5, {base}}}"#)).2,
            "job 5 has no token"
        );
        let cache =
            format!(r#"{{"id": 5, "token": "t", "cache": [{{"policy": "sometimes"}}], {base}}}"#);
        assert!(refused(&cache).2.contains("cache policy \"sometimes\""));
        let when =
            format!(r#"{{"id": 5, "token": "t", "artifacts": [{{"when": "later"}}], {base}}}"#);
        assert!(refused(&when).2.contains("when \"later\""));
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let job = job(include_str!("../../fixtures/jobs/gitlab-full.json"));
        let debug = format!("{job:?}");
        assert!(!debug.contains("3Jd9a0QkLw2ZpA"));
        assert!(!debug.contains("Zx81aaQQ"));
    }
}
