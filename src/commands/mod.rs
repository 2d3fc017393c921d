//! The command-line commands. Each module exposes
//! `pub fn run(globals: &Globals, args: &mut lexopt::Parser) -> Result<(), CommandError>` and
//! parses the arguments left after the command name itself.

pub mod exec;
pub mod helper;
pub mod list;
pub mod register;
pub mod run;
pub mod run_single;
pub mod unregister;
pub mod verify;

use std::error::Error;
use std::fmt;
use std::path::PathBuf;

use crate::config::{self, Config, ConfigError};

/// Exit code of a command that succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code of a command that ran and failed (coordinator, cluster, job).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a wrong command line or a rejected `config.toml`.
pub const EXIT_USAGE: u8 = 2;

/// The signature every command module's `run` has.
pub type RunFn = fn(&Globals, &mut lexopt::Parser) -> Result<(), CommandError>;

/// One command: its name on the command line, a one-line summary for `--help`, its entry point.
pub struct Command {
    pub name: &'static str,
    pub summary: &'static str,
    pub run: RunFn,
}

/// Every command, in the order `--help` lists them. A new command is one entry here.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "run",
        summary: "take jobs for every runner of config.toml until SIGTERM or SIGINT",
        run: run::run,
    },
    Command {
        name: "run-single",
        summary: "take jobs for one runner, one at a time, then return (for supervisors)",
        run: run_single::run,
    },
    Command {
        name: "exec",
        summary: "run one job of a local pipeline file in a runner's cluster, log to stdout",
        run: exec::run,
    },
    Command {
        name: "register",
        summary: "register a runner with a coordinator and add it to config.toml",
        run: register::run,
    },
    Command {
        name: "verify",
        summary: "check each runner's token with its coordinator (--delete drops unknown ones)",
        run: verify::run,
    },
    Command {
        name: "unregister",
        summary: "unregister runners (--name, --token or --all-runners) and remove them",
        run: unregister::run,
    },
    Command {
        name: "list",
        summary: "check config.toml and print its runners (never their tokens)",
        run: list::run,
    },
    Command {
        name: "helper",
        summary: "verbs run inside the job's helper container (archive, extract, artifacts)",
        run: helper::run,
    },
];

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
    /// `config.toml` could not be loaded or was rejected (exit 2).
    Config(ConfigError),
    /// Another input of the command (a pipeline file, a folder) was rejected (exit 2).
    Invalid(Box<dyn Error + Send + Sync + 'static>),
    /// The command ran and failed (exit 1).
    Failed(Box<dyn Error + Send + Sync + 'static>),
}

impl CommandError {
    /// The process exit code: 2 for usage and configuration errors, 1 for runtime failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Usage(_)
            | CommandError::Args(_)
            | CommandError::Config(_)
            | CommandError::Invalid(_) => EXIT_USAGE,
            CommandError::Failed(_) => EXIT_FAILURE,
        }
    }

    /// Whether the user should be pointed at `--help`.
    pub fn is_usage(&self) -> bool {
        matches!(self, CommandError::Usage(_) | CommandError::Args(_))
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Usage(message) => f.write_str(message),
            CommandError::Args(error) => error.fmt(f),
            CommandError::Config(error) => error.fmt(f),
            CommandError::Invalid(error) => error.fmt(f),
            CommandError::Failed(error) => error.fmt(f),
        }
    }
}

impl Error for CommandError {
    // The wrapped error is displayed in this one's place, so the chain goes on with its source.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            CommandError::Usage(_) => None,
            CommandError::Args(error) => error.source(),
            CommandError::Config(error) => error.source(),
            CommandError::Invalid(error) => error.source(),
            CommandError::Failed(error) => error.source(),
        }
    }
}

impl From<lexopt::Error> for CommandError {
    fn from(error: lexopt::Error) -> Self {
        CommandError::Args(error)
    }
}

impl From<ConfigError> for CommandError {
    fn from(error: ConfigError) -> Self {
        CommandError::Config(error)
    }
}

/// Runs the command `name` with the arguments left in `args`.
pub fn dispatch(
    name: &str,
    globals: &Globals,
    args: &mut lexopt::Parser,
) -> Result<(), CommandError> {
    match COMMANDS.iter().find(|command| command.name == name) {
        Some(command) => (command.run)(globals, args),
        None => {
            let known: Vec<&str> = COMMANDS.iter().map(|command| command.name).collect();
            Err(CommandError::Usage(format!(
                "unknown command {name:?} (known commands: {})",
                known.join(", ")
            )))
        }
    }
}

/// Loads `config.toml` for a command and applies its `log_level` unless `--log-level` was given.
pub fn load_config(globals: &Globals) -> Result<Config, CommandError> {
    let config = config::load(&globals.config_path)?;
    crate::logging::apply_config_level(config.log_level);
    log::debug!(
        "loaded {} with {} runner(s)",
        config.path.display(),
        config.runners.len()
    );
    Ok(config)
}

/// `error` and its sources on one line, joined by `: `, for the single message at the top.
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Some errors already print their cause in their own message; say it once.
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Writes `text` to stdout; a reader that went away (`list | head -1`) is not an error.
pub fn write_stdout(text: &str) -> Result<(), CommandError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CommandError::Failed(Box::new(error)))
        }
        _ => Ok(()),
    }
}

/// Rejects any argument left after a command that takes none, and answers `--help`.
/// Returns `true` when help was printed and the command should stop.
pub fn no_more_args(args: &mut lexopt::Parser, usage: &str) -> Result<bool, CommandError> {
    use lexopt::Arg::{Long, Short};
    match args.next()? {
        None => Ok(false),
        Some(Short('h') | Long("help")) => write_stdout(usage).map(|()| true),
        Some(other) => Err(other.unexpected().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_config_errors_exit_2_and_failures_exit_1() {
        assert_eq!(CommandError::Usage("x".into()).exit_code(), 2);
        let config = ConfigError::Syntax {
            path: "c.toml".into(),
            line: 1,
            column: 2,
            message: "m".into(),
        };
        assert_eq!(CommandError::from(config).exit_code(), 2);
        let io = std::io::Error::other("connection refused");
        assert_eq!(CommandError::Failed(Box::new(io)).exit_code(), 1);
    }

    #[test]
    fn unknown_command_lists_the_known_ones() {
        let globals = Globals {
            config_path: "c.toml".into(),
            log_level: None,
        };
        let mut args = lexopt::Parser::from_args(Vec::<String>::new());
        let error = dispatch("lsit", &globals, &mut args).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert_eq!(
            error.to_string(),
            "unknown command \"lsit\" (known commands: run, run-single, exec, register, verify, unregister, list, helper)"
        );
    }

    #[test]
    fn error_chain_joins_every_source() {
        let config = ConfigError::Read {
            path: "/etc/alloy-runner/config.toml".into(),
            source: std::io::Error::other("permission denied"),
        };
        let error = CommandError::from(config);
        assert_eq!(
            error_chain(&error),
            "cannot read config file /etc/alloy-runner/config.toml: permission denied"
        );
    }
}
