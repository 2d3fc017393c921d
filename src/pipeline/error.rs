//! Why a pipeline file was rejected: each error names the job (or the top level), the key and
//! what would be accepted.

use std::fmt;

use super::GLOBAL_KEYS;

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
    /// A required key inside an object (an image's `name`).
    MissingKey {
        at: String,
        key: &'static str,
        expected: &'static str,
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
            PipelineError::MissingKey { at, key, expected } => {
                write!(f, "{at}: `{key}` is missing; it takes {expected}")
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
