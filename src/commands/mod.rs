//! The command-line commands. Each module exposes
//! `pub fn run(globals: &Globals, args: &mut lexopt::Parser) -> Result<(), CommandError>`.
//!
//! TODO: this is the subset of the command plumbing the coordinator commands need (the same
//! shapes as the full version being written with the config loader); the two are to be merged.

pub mod register;
pub mod unregister;
pub mod verify;

use std::error::Error;
use std::fmt;
use std::path::PathBuf;

/// Exit code of a command that ran and failed (coordinator, cluster, job).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a wrong command line or a rejected `config.toml`.
pub const EXIT_USAGE: u8 = 2;

/// The options given before the command name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Globals {
    /// `--config`, else `ALLOY_RUNNER_CONFIG`, else the default for the user.
    pub config_path: PathBuf,
    /// `--log-level`, which wins over `log_level` in the file and `RUST_LOG`.
    pub log_level: Option<log::LevelFilter>,
}

/// Why a command stopped; [`CommandError::exit_code`] maps it to the process exit code.
#[derive(Debug)]
pub enum CommandError {
    /// The command line is wrong (exit 2).
    Usage(String),
    /// An argument could not be read (exit 2).
    Args(lexopt::Error),
    /// The command ran and failed (exit 1).
    Failed(Box<dyn Error + Send + Sync + 'static>),
}

impl CommandError {
    /// The process exit code: 2 for usage errors, 1 for runtime failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Usage(_) | CommandError::Args(_) => EXIT_USAGE,
            CommandError::Failed(_) => EXIT_FAILURE,
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Usage(message) => f.write_str(message),
            CommandError::Args(error) => error.fmt(f),
            CommandError::Failed(error) => error.fmt(f),
        }
    }
}

impl Error for CommandError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            CommandError::Usage(_) => None,
            CommandError::Args(error) => error.source(),
            CommandError::Failed(error) => error.source(),
        }
    }
}

impl From<lexopt::Error> for CommandError {
    fn from(error: lexopt::Error) -> Self {
        CommandError::Args(error)
    }
}
