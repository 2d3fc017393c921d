//! Errors of loading `config.toml`: each names the file, the key path and the rejected value.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::quantity::QuantityError;

/// Why `config.toml` could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read { path: PathBuf, source: io::Error },
    /// The text is not valid TOML (`line` and `column` count from 1).
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key holds something the runner does not accept; `key` is a path such as
    /// `runners[0].kubernetes.cpu_limit`.
    Key {
        path: PathBuf,
        key: String,
        problem: KeyError,
    },
}

impl ConfigError {
    /// The key path of a [`ConfigError::Key`], for tests and callers that point at the key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, .. } => {
                write!(f, "cannot read config file {}", path.display())
            }
            ConfigError::Syntax {
                path,
                line,
                column,
                message,
            } => write!(
                f,
                "{}: invalid TOML at line {line}, column {column}: {message}",
                path.display()
            ),
            ConfigError::Key { path, key, .. } => write!(f, "{}: {key}", path.display()),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            ConfigError::Syntax { .. } => None,
            ConfigError::Key { problem, .. } => Some(problem),
        }
    }
}

/// What is wrong with one key. Messages show the rejected value (never a token's) and what
/// would be accepted.
#[derive(Debug)]
pub enum KeyError {
    /// The key is not one the runner knows; `suggestion` is the closest known key.
    Unknown {
        suggestion: Option<String>,
        known: Vec<&'static str>,
    },
    /// A required key is absent.
    Missing { accepted: String },
    /// The value has the wrong TOML type.
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    /// A number outside its accepted range.
    OutOfRange { value: i64, accepted: String },
    /// A string that does not follow the rule of its key.
    Invalid { value: String, accepted: String },
    /// A string that is not one of a fixed set.
    NotOneOf {
        value: String,
        accepted: &'static [&'static str],
    },
    /// An executor other than `kubernetes`.
    UnsupportedExecutor { value: String },
    /// Not a Kubernetes quantity.
    Quantity {
        value: String,
        source: QuantityError,
    },
    /// A request above the limit of the same resource.
    RequestAboveLimit {
        request: String,
        limit_key: String,
        limit: String,
    },
    /// An `*_overwrite_allowed` pattern that does not compile; the message carries the
    /// reason on one line, so `source` is not repeated in the chain.
    Regex {
        pattern: String,
        source: Box<regex::Error>,
    },
    /// Both spellings of one key (`bearer-token`, `bearer_token`) with different values.
    ConflictingSpellings { other_key: String },
    /// A key that is only meaningful together with another one.
    MissingCompanion {
        companion: String,
        reason: &'static str,
    },
    /// A volume name used by a volume of a different kind, or twice by one kind.
    DuplicateVolumeName { name: String, other_key: String },
    /// Two volumes mounted at one path.
    DuplicateMountPath {
        mount_path: String,
        other_key: String,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Unknown {
                suggestion: Some(suggestion),
                ..
            } => {
                write!(f, "unknown key, did you mean `{suggestion}`?")
            }
            KeyError::Unknown {
                suggestion: None,
                known,
            } => {
                write!(f, "unknown key (known keys: {})", known.join(", "))
            }
            KeyError::Missing { accepted } => {
                write!(f, "missing required key (accepted: {accepted})")
            }
            KeyError::WrongType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            KeyError::OutOfRange { value, accepted } => {
                write!(f, "value {value} is out of range (accepted: {accepted})")
            }
            KeyError::Invalid { value, accepted } => {
                write!(f, "invalid value {value:?} (accepted: {accepted})")
            }
            KeyError::NotOneOf { value, accepted } => {
                write!(
                    f,
                    "invalid value {value:?} (accepted: {})",
                    accepted.join(", ")
                )
            }
            KeyError::UnsupportedExecutor { value } => {
                write!(
                    f,
                    "executor {value:?} is not supported: only kubernetes is supported"
                )
            }
            KeyError::Quantity { value, .. } => write!(f, "invalid quantity {value:?}"),
            KeyError::RequestAboveLimit {
                request,
                limit_key,
                limit,
            } => write!(
                f,
                "request {request} is above the limit {limit_key} = {limit} \
                 (accepted: a request at most the limit)"
            ),
            KeyError::Regex { pattern, source } => {
                write!(f, "invalid regex {pattern:?}: {}", regex_reason(source))
            }
            KeyError::ConflictingSpellings { other_key } => write!(
                f,
                "conflicts with {other_key}: both spellings are set with different values \
                 (accepted: one spelling, or both with the same value)"
            ),
            KeyError::MissingCompanion { companion, reason } => {
                write!(f, "is set but {companion} is not: {reason}")
            }
            KeyError::DuplicateVolumeName { name, other_key } => write!(
                f,
                "volume name {name:?} is also used by {other_key} (accepted: names unique \
                 across all volumes; only pvc volumes may repeat a name, to mount one claim twice)"
            ),
            KeyError::DuplicateMountPath {
                mount_path,
                other_key,
            } => {
                write!(f, "mount path {mount_path:?} is also used by {other_key}")
            }
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Quantity { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The one-line reason of a regex error, whose text otherwise draws the pattern over lines.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    match text
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
    {
        Some(reason) => reason.to_string(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}
