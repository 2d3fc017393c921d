//! `.alloy-ci.json`, AlloyCI's pipeline file: parsed once and checked into a [`Pipeline`] of
//! jobs ordered by stage, which [`PipelineJob::to_payload`] turns into runner API job payloads.
//!
//! Reserved top-level keys are `image`, `services`, `stages`, `before_script`, `after_script`,
//! `variables` and `cache`; every other top-level key is a job (keys starting with `.` are
//! hidden templates and ignored).

mod error;
mod json;
mod payload;
mod read;

pub use error::PipelineError;
use json::Node;
pub use payload::{DependencyRef, Dialect, PayloadContext};
use read::{
    artifacts, boolean, cache, check_keys, image, invalid, lookup, ref_patterns, services, string,
    string_list, suggest, variables, when,
};

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
