//! `.alloy-ci.json`, AlloyCI's pipeline file: parsed once and checked into a [`Pipeline`] of
//! jobs ordered by stage, which [`PipelineJob::to_payload`] turns into runner API job payloads.
//!
//! Reserved top-level keys are `image`, `services`, `stages`, `before_script`, `after_script`,
//! `variables` and `cache`; every other top-level key is a job (keys starting with `.` are
//! hidden templates and ignored).

mod json;
mod payload;

use std::fmt;

use json::Node;
pub use payload::{DependencyRef, Dialect, PayloadContext};

/// The stages used when the file has no `stages` key.
pub const DEFAULT_STAGES: [&str; 3] = ["build", "test", "deploy"];

/// The stage of a job that names none.
pub const DEFAULT_STAGE: &str = "test";

const GLOBAL_KEYS: &[&str] = &[
    "image",
    "services",
    "stages",
    "before_script",
    "after_script",
    "variables",
    "cache",
];

const JOB_KEYS: &[&str] = &[
    "script",
    "stage",
    "image",
    "services",
    "variables",
    "only",
    "except",
    "tags",
    "allow_failure",
    "when",
    "dependencies",
    "artifacts",
    "cache",
    "before_script",
    "after_script",
];

const ARTIFACTS_KEYS: &[&str] = &["name", "paths", "untracked", "when", "expire_in"];
const CACHE_KEYS: &[&str] = &["key", "paths", "untracked", "policy"];
const SERVICE_KEYS: &[&str] = &["name", "alias", "command", "entrypoint"];
const IMAGE_KEYS: &[&str] = &["name", "entrypoint"];

/// A checked pipeline: its stages and its jobs, ordered by stage and then by file order.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub stages: Vec<String>,
    pub jobs: Vec<PipelineJob>,
}

/// One job of the pipeline, with the global values it inherits already filled in.
#[derive(Debug, Clone)]
pub struct PipelineJob {
    pub name: String,
    pub stage: String,
    pub script: Vec<String>,
    pub before_script: Vec<String>,
    pub after_script: Vec<String>,
    /// The build image; `None` lets the runner use its configured default.
    pub image: Option<ImageSpec>,
    pub services: Vec<ImageSpec>,
    /// In file order.
    pub variables: Vec<(String, String)>,
    /// `None` runs the job for every ref.
    pub only: Option<Vec<RefPattern>>,
    pub except: Vec<RefPattern>,
    pub tags: Vec<String>,
    pub allow_failure: bool,
    pub when: When,
    /// Names of earlier-stage jobs whose artifacts this job receives; when the file gives no
    /// `dependencies`, every job of an earlier stage.
    pub dependencies: Vec<String>,
    pub artifacts: Option<ArtifactsSpec>,
    pub cache: Option<CacheSpec>,
}

/// A build or service image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSpec {
    pub name: String,
    pub alias: Option<String>,
    pub command: Vec<String>,
    pub entrypoint: Vec<String>,
}

/// A job's `artifacts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactsSpec {
    pub name: Option<String>,
    pub paths: Vec<String>,
    pub untracked: bool,
    pub when: When,
    pub expire_in: Option<String>,
}

/// A job's `cache`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheSpec {
    /// Empty means `<job name>/<ref>` to the runner.
    pub key: String,
    pub paths: Vec<String>,
    pub untracked: bool,
    pub policy: CachePolicy,
}

/// When a job (or its artifacts upload) runs; default `on_success`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum When {
    #[default]
    OnSuccess,
    OnFailure,
    Always,
    Manual,
}

impl When {
    /// The spelling used in the file and in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            When::OnSuccess => "on_success",
            When::OnFailure => "on_failure",
            When::Always => "always",
            When::Manual => "manual",
        }
    }
}

/// Cache policy; default `pull-push`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CachePolicy {
    #[default]
    PullPush,
    Pull,
    Push,
}

impl CachePolicy {
    /// The spelling used in the file and in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            CachePolicy::PullPush => "pull-push",
            CachePolicy::Pull => "pull",
            CachePolicy::Push => "push",
        }
    }
}

/// One entry of `only` or `except`.
#[derive(Debug, Clone)]
pub enum RefPattern {
    /// A branch or tag name, matched exactly.
    Name(String),
    /// `branches`: every branch.
    Branches,
    /// `tags`: every tag.
    Tags,
    /// `/regex/`: a ref name the regex finds a match in.
    Regex(regex::Regex),
}

impl RefPattern {
    /// Whether the pattern selects the ref (`refs/heads/` and `refs/tags/` prefixes ignored).
    pub fn matches(&self, ref_name: &str, is_tag: bool) -> bool {
        let name = short_ref(ref_name);
        match self {
            RefPattern::Name(wanted) => wanted == name,
            RefPattern::Branches => !is_tag,
            RefPattern::Tags => is_tag,
            RefPattern::Regex(regex) => regex.is_match(name),
        }
    }
}

/// A ref name without its `refs/heads/` or `refs/tags/` prefix.
pub fn short_ref(ref_name: &str) -> &str {
    ref_name
        .strip_prefix("refs/heads/")
        .or_else(|| ref_name.strip_prefix("refs/tags/"))
        .unwrap_or(ref_name)
}

/// Why a pipeline file was rejected.
#[derive(Debug)]
pub enum PipelineError {
    /// The text is not JSON (or repeats a key).
    Json(serde_json::Error),
    /// The top level is not an object.
    NotAnObject { found: &'static str },
    /// Only reserved keys: nothing to run.
    NoJobs,
    /// A key that is not accepted where it stands.
    UnknownKey {
        at: String,
        key: String,
        suggestion: Option<&'static str>,
        accepted: &'static [&'static str],
    },
    /// A job without `script`.
    MissingScript {
        job: String,
        hint: Option<&'static str>,
    },
    /// A value of the wrong JSON type.
    WrongType {
        at: String,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A value of the right type outside the accepted set.
    InvalidValue {
        at: String,
        key: String,
        value: String,
        accepted: String,
    },
    /// A job's stage missing from `stages`.
    UnknownStage {
        job: String,
        stage: String,
        stages: Vec<String>,
    },
    /// A dependency that names no job of the pipeline.
    UnknownDependency { job: String, dependency: String },
    /// A dependency on a job of the same or a later stage.
    LaterDependency {
        job: String,
        dependency: String,
        dependency_stage: String,
        stage: String,
    },
    /// An `only`/`except` entry `/.../` that is not a valid regex.
    InvalidRegex {
        at: String,
        key: String,
        pattern: String,
        source: regex::Error,
    },
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Json(err) => write!(f, "pipeline file is not valid JSON: {err}"),
            PipelineError::NotAnObject { found } => {
                write!(
                    f,
                    "pipeline file must be a JSON object of settings and jobs, found {found}"
                )
            }
            PipelineError::NoJobs => write!(
                f,
                "pipeline file defines no job (every top-level key other than {} is a job)",
                GLOBAL_KEYS.join(", ")
            ),
            PipelineError::UnknownKey {
                at,
                key,
                suggestion,
                accepted,
            } => {
                write!(f, "{at}: unknown key `{key}`")?;
                if let Some(suggestion) = suggestion {
                    write!(f, " (did you mean `{suggestion}`?)")?;
                }
                write!(f, "; accepted keys: {}", accepted.join(", "))
            }
            PipelineError::MissingScript { job, hint } => {
                write!(
                    f,
                    "job `{job}`: `script` is missing; it takes a list of shell commands"
                )?;
                if let Some(global) = hint {
                    write!(
                        f,
                        " (if `{job}` was meant as the top-level key `{global}`, fix its spelling)"
                    )?;
                }
                Ok(())
            }
            PipelineError::WrongType {
                at,
                key,
                expected,
                found,
            } => {
                write!(f, "{at}: `{key}` must be {expected}, found {found}")
            }
            PipelineError::InvalidValue {
                at,
                key,
                value,
                accepted,
            } => {
                write!(
                    f,
                    "{at}: `{key}` has the value `{value}`; accepted: {accepted}"
                )
            }
            PipelineError::UnknownStage { job, stage, stages } => write!(
                f,
                "job `{job}`: stage `{stage}` is not in stages ({})",
                stages.join(", ")
            ),
            PipelineError::UnknownDependency { job, dependency } => write!(
                f,
                "job `{job}`: dependency `{dependency}` is not a job of this pipeline"
            ),
            PipelineError::LaterDependency {
                job,
                dependency,
                dependency_stage,
                stage,
            } => write!(
                f,
                "job `{job}`: dependency `{dependency}` runs in stage `{dependency_stage}`, \
                 not before stage `{stage}`; a dependency must be a job of an earlier stage"
            ),
            PipelineError::InvalidRegex {
                at, key, pattern, ..
            } => {
                write!(f, "{at}: `{key}` entry `{pattern}` is not a valid regex")
            }
        }
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PipelineError::Json(err) => Some(err),
            PipelineError::InvalidRegex { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Parses and checks the text of an `.alloy-ci.json` file.
pub fn parse(text: &str) -> Result<Pipeline, PipelineError> {
    let root: Node = serde_json::from_str(text).map_err(PipelineError::Json)?;
    let Node::Object(entries) = root else {
        return Err(PipelineError::NotAnObject { found: root.kind() });
    };

    // Global settings first, so that every job sees them wherever they stand in the file.
    let defaults = Defaults::parse(&entries)?;
    let stages = stages(&entries)?;

    let mut jobs = Vec::new();
    for (name, node) in &entries {
        if GLOBAL_KEYS.contains(&name.as_str()) || name.starts_with('.') {
            continue;
        }
        jobs.push(parse_job(name, node, &defaults)?);
    }
    if jobs.is_empty() {
        return Err(PipelineError::NoJobs);
    }

    check_stages(&jobs, &stages)?;
    jobs.sort_by_key(|(job, _)| stage_index(&stages, &job.stage));
    let jobs = resolve_dependencies(jobs, &stages)?;
    Ok(Pipeline { stages, jobs })
}

impl Pipeline {
    /// The jobs that run for a ref under their `only` and `except` lists, in pipeline order.
    pub fn jobs_for_ref(&self, ref_name: &str, is_tag: bool) -> Vec<&PipelineJob> {
        self.jobs
            .iter()
            .filter(|job| job.runs_for_ref(ref_name, is_tag))
            .collect()
    }

    /// The job named `name`.
    pub fn job(&self, name: &str) -> Option<&PipelineJob> {
        self.jobs.iter().find(|job| job.name == name)
    }
}

impl PipelineJob {
    /// Whether `only` selects the ref (or is absent) and no `except` entry does.
    pub fn runs_for_ref(&self, ref_name: &str, is_tag: bool) -> bool {
        let included = match &self.only {
            Some(only) => only.iter().any(|p| p.matches(ref_name, is_tag)),
            None => true,
        };
        included && !self.except.iter().any(|p| p.matches(ref_name, is_tag))
    }
}

/// The global values a job inherits unless it sets its own.
#[derive(Default)]
struct Defaults {
    image: Option<ImageSpec>,
    services: Vec<ImageSpec>,
    variables: Vec<(String, String)>,
    cache: Option<CacheSpec>,
    before_script: Vec<String>,
    after_script: Vec<String>,
}

impl Defaults {
    fn parse(entries: &[(String, Node)]) -> Result<Defaults, PipelineError> {
        let at = "top level";
        let mut defaults = Defaults::default();
        for (key, node) in entries {
            match key.as_str() {
                "image" => defaults.image = Some(image(at, key, node)?),
                "services" => defaults.services = services(at, key, node)?,
                "variables" => defaults.variables = variables(at, key, node)?,
                "cache" => defaults.cache = Some(cache(at, key, node)?),
                "before_script" => defaults.before_script = string_list(at, key, node)?,
                "after_script" => defaults.after_script = string_list(at, key, node)?,
                _ => {}
            }
        }
        Ok(defaults)
    }
}

fn stages(entries: &[(String, Node)]) -> Result<Vec<String>, PipelineError> {
    let Some((_, node)) = entries.iter().find(|(key, _)| key == "stages") else {
        return Ok(DEFAULT_STAGES.iter().map(|s| s.to_string()).collect());
    };
    let stages = string_list("top level", "stages", node)?;
    if stages.is_empty() {
        return Err(invalid(
            "top level",
            "stages",
            "[]",
            "a non-empty list of stage names",
        ));
    }
    for (index, stage) in stages.iter().enumerate() {
        if stages[..index].contains(stage) {
            return Err(invalid(
                "top level",
                "stages",
                stage,
                "each stage listed once",
            ));
        }
    }
    Ok(stages)
}

/// A parsed job and the `dependencies` it declares (`None`: every job of an earlier stage).
type ParsedJob = (PipelineJob, Option<Vec<String>>);

fn parse_job(name: &str, node: &Node, defaults: &Defaults) -> Result<ParsedJob, PipelineError> {
    // A misspelt global key reads as a job without a script: say so before anything else.
    let at = format!("job `{name}`");
    let has_script = matches!(node, Node::Object(entries) if lookup(entries, "script").is_some());
    let hint = suggest(name, GLOBAL_KEYS);
    if !has_script && hint.is_some() {
        return Err(PipelineError::MissingScript {
            job: name.to_string(),
            hint,
        });
    }

    let Node::Object(entries) = node else {
        return Err(PipelineError::WrongType {
            at,
            key: name.to_string(),
            expected: "an object with at least `script` (a job)",
            found: node.kind(),
        });
    };
    check_keys(&at, entries, JOB_KEYS)?;

    let Some(script_node) = lookup(entries, "script") else {
        return Err(PipelineError::MissingScript {
            job: name.to_string(),
            hint: None,
        });
    };
    let script = string_list(&at, "script", script_node)?;
    if script.is_empty() {
        return Err(invalid(
            &at,
            "script",
            "[]",
            "a non-empty list of shell commands",
        ));
    }

    let mut job = PipelineJob {
        name: name.to_string(),
        stage: DEFAULT_STAGE.to_string(),
        script,
        before_script: defaults.before_script.clone(),
        after_script: defaults.after_script.clone(),
        image: defaults.image.clone(),
        services: defaults.services.clone(),
        variables: defaults.variables.clone(),
        only: None,
        except: Vec::new(),
        tags: Vec::new(),
        allow_failure: false,
        when: When::OnSuccess,
        dependencies: Vec::new(),
        artifacts: None,
        cache: defaults.cache.clone(),
    };
    let mut declared_dependencies = None;
    for (key, node) in entries {
        let at = at.as_str();
        match key.as_str() {
            "stage" => job.stage = string(at, key, node)?,
            "image" => job.image = Some(image(at, key, node)?),
            "services" => job.services = services(at, key, node)?,
            "variables" => job.variables = variables(at, key, node)?,
            "only" => job.only = Some(ref_patterns(at, key, node)?),
            "except" => job.except = ref_patterns(at, key, node)?,
            "tags" => job.tags = string_list(at, key, node)?,
            "allow_failure" => job.allow_failure = boolean(at, key, node)?,
            "when" => job.when = when(at, key, node, true)?,
            "dependencies" => declared_dependencies = Some(string_list(at, key, node)?),
            "artifacts" => job.artifacts = Some(artifacts(at, key, node)?),
            "cache" => job.cache = Some(cache(at, key, node)?),
            "before_script" => job.before_script = string_list(at, key, node)?,
            "after_script" => job.after_script = string_list(at, key, node)?,
            _ => {}
        }
    }
    Ok((job, declared_dependencies))
}

fn check_stages(jobs: &[ParsedJob], stages: &[String]) -> Result<(), PipelineError> {
    for (job, _) in jobs {
        if !stages.contains(&job.stage) {
            return Err(PipelineError::UnknownStage {
                job: job.name.clone(),
                stage: job.stage.clone(),
                stages: stages.to_vec(),
            });
        }
    }
    Ok(())
}

fn stage_index(stages: &[String], stage: &str) -> usize {
    stages.iter().position(|s| s == stage).unwrap_or(usize::MAX)
}

fn resolve_dependencies(
    jobs: Vec<ParsedJob>,
    stages: &[String],
) -> Result<Vec<PipelineJob>, PipelineError> {
    let placed: Vec<(String, usize)> = jobs
        .iter()
        .map(|(job, _)| (job.name.clone(), stage_index(stages, &job.stage)))
        .collect();
    let mut resolved = Vec::with_capacity(jobs.len());
    for (mut job, declared) in jobs {
        let own = stage_index(stages, &job.stage);
        let Some(declared) = declared else {
            job.dependencies = placed
                .iter()
                .filter(|(_, s)| *s < own)
                .map(|(n, _)| n.clone())
                .collect();
            resolved.push(job);
            continue;
        };
        for dependency in &declared {
            check_dependency(&job, dependency, &placed, stages)?;
        }
        job.dependencies = declared;
        resolved.push(job);
    }
    Ok(resolved)
}

fn check_dependency(
    job: &PipelineJob,
    dependency: &str,
    placed: &[(String, usize)],
    stages: &[String],
) -> Result<(), PipelineError> {
    let Some((_, dep_stage)) = placed.iter().find(|(name, _)| name == dependency) else {
        return Err(PipelineError::UnknownDependency {
            job: job.name.clone(),
            dependency: dependency.to_string(),
        });
    };
    if *dep_stage >= stage_index(stages, &job.stage) {
        return Err(PipelineError::LaterDependency {
            job: job.name.clone(),
            dependency: dependency.to_string(),
            dependency_stage: stages.get(*dep_stage).cloned().unwrap_or_default(),
            stage: job.stage.clone(),
        });
    }
    Ok(())
}

// Typed readers: each names the place and the key in its error.

fn lookup<'a>(entries: &'a [(String, Node)], key: &str) -> Option<&'a Node> {
    entries.iter().find(|(k, _)| k == key).map(|(_, node)| node)
}

fn wrong_type(at: &str, key: &str, expected: &'static str, node: &Node) -> PipelineError {
    PipelineError::WrongType {
        at: at.to_string(),
        key: key.to_string(),
        expected,
        found: node.kind(),
    }
}

fn invalid(at: &str, key: &str, value: &str, accepted: &str) -> PipelineError {
    PipelineError::InvalidValue {
        at: at.to_string(),
        key: key.to_string(),
        value: value.to_string(),
        accepted: accepted.to_string(),
    }
}

fn check_keys(
    at: &str,
    entries: &[(String, Node)],
    accepted: &'static [&'static str],
) -> Result<(), PipelineError> {
    match entries
        .iter()
        .find(|(key, _)| !accepted.contains(&key.as_str()))
    {
        Some((key, _)) => Err(PipelineError::UnknownKey {
            at: at.to_string(),
            key: key.clone(),
            suggestion: suggest(key, accepted),
            accepted,
        }),
        None => Ok(()),
    }
}

/// The accepted key closest to a misspelt one: at most two edits away, or a case change.
fn suggest(word: &str, accepted: &[&'static str]) -> Option<&'static str> {
    let lower = word.to_lowercase();
    accepted
        .iter()
        .map(|candidate| (edit_distance(&lower, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn string(at: &str, key: &str, node: &Node) -> Result<String, PipelineError> {
    match node {
        Node::String(value) => Ok(value.clone()),
        _ => Err(wrong_type(at, key, "a string", node)),
    }
}

fn boolean(at: &str, key: &str, node: &Node) -> Result<bool, PipelineError> {
    match node {
        Node::Bool(value) => Ok(*value),
        _ => Err(wrong_type(at, key, "true or false", node)),
    }
}

fn string_list(at: &str, key: &str, node: &Node) -> Result<Vec<String>, PipelineError> {
    let Node::Array(items) = node else {
        return Err(wrong_type(at, key, "a list of strings", node));
    };
    items
        .iter()
        .map(|item| match item {
            Node::String(value) => Ok(value.clone()),
            other => Err(wrong_type(at, key, "a list of strings", other)),
        })
        .collect()
}

fn variables(at: &str, key: &str, node: &Node) -> Result<Vec<(String, String)>, PipelineError> {
    let expected = "an object of names to strings, numbers or booleans";
    let Node::Object(entries) = node else {
        return Err(wrong_type(at, key, expected, node));
    };
    let mut variables = Vec::new();
    for (name, value) in entries {
        let value = match value {
            Node::String(text) => text.clone(),
            Node::Number(number) => number.to_string(),
            Node::Bool(flag) => flag.to_string(),
            other => return Err(wrong_type(at, &format!("{key}.{name}"), expected, other)),
        };
        variables.push((name.clone(), value));
    }
    Ok(variables)
}

fn image(at: &str, key: &str, node: &Node) -> Result<ImageSpec, PipelineError> {
    match node {
        Node::String(name) => Ok(ImageSpec {
            name: name.clone(),
            ..ImageSpec::default()
        }),
        Node::Object(entries) => image_object(at, key, entries, IMAGE_KEYS),
        _ => Err(wrong_type(
            at,
            key,
            "an image name or {name, entrypoint}",
            node,
        )),
    }
}

fn services(at: &str, key: &str, node: &Node) -> Result<Vec<ImageSpec>, PipelineError> {
    let expected = "a list of image names or {name, alias, command, entrypoint} objects";
    let Node::Array(items) = node else {
        return Err(wrong_type(at, key, expected, node));
    };
    items
        .iter()
        .map(|item| match item {
            Node::String(name) => Ok(ImageSpec {
                name: name.clone(),
                ..ImageSpec::default()
            }),
            Node::Object(entries) => image_object(at, key, entries, SERVICE_KEYS),
            other => Err(wrong_type(at, key, expected, other)),
        })
        .collect()
}

fn image_object(
    at: &str,
    key: &str,
    entries: &[(String, Node)],
    accepted: &'static [&'static str],
) -> Result<ImageSpec, PipelineError> {
    let at = format!("{at}, `{key}`");
    check_keys(&at, entries, accepted)?;
    let Some(name) = lookup(entries, "name") else {
        return Err(invalid(&at, "name", "(missing)", "an image name"));
    };
    let mut spec = ImageSpec {
        name: string(&at, "name", name)?,
        ..ImageSpec::default()
    };
    for (key, node) in entries {
        match key.as_str() {
            "alias" => spec.alias = Some(string(&at, key, node)?),
            "command" => spec.command = string_list(&at, key, node)?,
            "entrypoint" => spec.entrypoint = string_list(&at, key, node)?,
            _ => {}
        }
    }
    Ok(spec)
}

fn when(at: &str, key: &str, node: &Node, allow_manual: bool) -> Result<When, PipelineError> {
    let value = string(at, key, node)?;
    let accepted = if allow_manual {
        "on_success, on_failure, always, manual"
    } else {
        "on_success, on_failure, always"
    };
    match value.as_str() {
        "on_success" => Ok(When::OnSuccess),
        "on_failure" => Ok(When::OnFailure),
        "always" => Ok(When::Always),
        "manual" if allow_manual => Ok(When::Manual),
        _ => Err(invalid(at, key, &value, accepted)),
    }
}

fn artifacts(at: &str, key: &str, node: &Node) -> Result<ArtifactsSpec, PipelineError> {
    let Node::Object(entries) = node else {
        return Err(wrong_type(
            at,
            key,
            "an object {name, paths, untracked, when, expire_in}",
            node,
        ));
    };
    let at = format!("{at}, `{key}`");
    check_keys(&at, entries, ARTIFACTS_KEYS)?;
    let mut spec = ArtifactsSpec::default();
    for (key, node) in entries {
        match key.as_str() {
            "name" => spec.name = Some(string(&at, key, node)?),
            "paths" => spec.paths = string_list(&at, key, node)?,
            "untracked" => spec.untracked = boolean(&at, key, node)?,
            "when" => spec.when = when(&at, key, node, false)?,
            "expire_in" => spec.expire_in = Some(string(&at, key, node)?),
            _ => {}
        }
    }
    Ok(spec)
}

fn cache(at: &str, key: &str, node: &Node) -> Result<CacheSpec, PipelineError> {
    let Node::Object(entries) = node else {
        return Err(wrong_type(
            at,
            key,
            "an object {key, paths, untracked, policy}",
            node,
        ));
    };
    let at = format!("{at}, `{key}`");
    check_keys(&at, entries, CACHE_KEYS)?;
    let mut spec = CacheSpec::default();
    for (key, node) in entries {
        match key.as_str() {
            "key" => spec.key = string(&at, key, node)?,
            "paths" => spec.paths = string_list(&at, key, node)?,
            "untracked" => spec.untracked = boolean(&at, key, node)?,
            "policy" => spec.policy = policy(&at, key, node)?,
            _ => {}
        }
    }
    Ok(spec)
}

fn policy(at: &str, key: &str, node: &Node) -> Result<CachePolicy, PipelineError> {
    let value = string(at, key, node)?;
    match value.as_str() {
        "pull-push" => Ok(CachePolicy::PullPush),
        "pull" => Ok(CachePolicy::Pull),
        "push" => Ok(CachePolicy::Push),
        _ => Err(invalid(at, key, &value, "pull-push, pull, push")),
    }
}

fn ref_patterns(at: &str, key: &str, node: &Node) -> Result<Vec<RefPattern>, PipelineError> {
    string_list(at, key, node)?
        .into_iter()
        .map(|entry| ref_pattern(at, key, entry))
        .collect()
}

fn ref_pattern(at: &str, key: &str, entry: String) -> Result<RefPattern, PipelineError> {
    match entry.as_str() {
        "branches" => return Ok(RefPattern::Branches),
        "tags" => return Ok(RefPattern::Tags),
        _ => {}
    }
    let body = entry
        .strip_prefix('/')
        .and_then(|rest| rest.strip_suffix('/'));
    match body {
        Some(body) if !body.is_empty() => {
            regex::Regex::new(body)
                .map(RefPattern::Regex)
                .map_err(|source| PipelineError::InvalidRegex {
                    at: at.to_string(),
                    key: key.to_string(),
                    pattern: entry.clone(),
                    source,
                })
        }
        _ => Ok(RefPattern::Name(entry)),
    }
}
