//! The global part of the command line: `alloy-runner [--config PATH] [--log-level LEVEL]
//! COMMAND [ARGS]`. The command parses its own arguments (see [`crate::commands`]).

use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::Arg::{Long, Short, Value};
use lexopt::ValueExt;

use crate::commands::{CommandError, Globals, COMMANDS};

/// `config.toml` of a runner started as root.
pub const ROOT_CONFIG_PATH: &str = "/etc/alloy-runner/config.toml";
/// `config.toml` of any other user, under their home directory.
pub const USER_CONFIG_PATH: &str = ".alloy-runner/config.toml";
/// Environment variable that replaces the default `config.toml` path.
pub const CONFIG_ENV: &str = "ALLOY_RUNNER_CONFIG";

/// What the global arguments ask for.
#[derive(Debug)]
pub enum Action {
    /// `--help`.
    Help,
    /// `--version`.
    Version,
    /// Run `command`; its own arguments are still in the parser.
    Command { globals: Globals, command: String },
}

/// Reads the global options up to the command name.
pub fn parse_globals(args: &mut lexopt::Parser) -> Result<Action, CommandError> {
    let mut config_path = None;
    let mut log_level = None;
    while let Some(arg) = args.next()? {
        match arg {
            Short('c') | Long("config") => config_path = Some(PathBuf::from(args.value()?)),
            Short('l') | Long("log-level") => log_level = Some(parse_level(args.value()?)?),
            Short('h') | Long("help") => return Ok(Action::Help),
            Short('V') | Long("version") => return Ok(Action::Version),
            Value(command) => {
                let command = command.string()?;
                let config_path = config_path.unwrap_or_else(default_config_path);
                let globals = Globals {
                    config_path,
                    log_level,
                };
                return Ok(Action::Command { globals, command });
            }
            other => return Err(other.unexpected().into()),
        }
    }
    Err(CommandError::Usage("no command given".into()))
}

fn parse_level(value: OsString) -> Result<log::LevelFilter, CommandError> {
    let text = value.string()?;
    let accepted = ["error", "warn", "info", "debug", "trace"];
    match text.parse::<log::LevelFilter>() {
        Ok(level) if accepted.contains(&text.to_ascii_lowercase().as_str()) => Ok(level),
        _ => Err(CommandError::Usage(format!(
            "invalid --log-level {text:?} (accepted: {})",
            accepted.join(", ")
        ))),
    }
}

/// The `config.toml` path when `--config` is not given: `ALLOY_RUNNER_CONFIG`, else
/// [`ROOT_CONFIG_PATH`] for root, else `~/.alloy-runner/config.toml`.
pub fn default_config_path() -> PathBuf {
    config_path_for(
        std::env::var_os(CONFIG_ENV),
        is_root(),
        std::env::var_os("HOME"),
    )
}

/// [`default_config_path`] from its inputs; with no home directory the path is relative to the
/// working directory.
pub fn config_path_for(env: Option<OsString>, root: bool, home: Option<OsString>) -> PathBuf {
    match (env, root, home) {
        (Some(path), _, _) if !path.is_empty() => PathBuf::from(path),
        (_, true, _) => PathBuf::from(ROOT_CONFIG_PATH),
        (_, false, Some(home)) if !home.is_empty() => PathBuf::from(home).join(USER_CONFIG_PATH),
        _ => PathBuf::from(USER_CONFIG_PATH),
    }
}

/// Whether the process runs as root: `/proc/self` belongs to the effective user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// `--version`: version, git revision and target triple, fixed at build time.
pub fn version() -> String {
    format!(
        "alloy-runner {} (revision {}, {})",
        env!("CARGO_PKG_VERSION"),
        env!("ALLOY_RUNNER_GIT_REVISION"),
        env!("ALLOY_RUNNER_TARGET"),
    )
}

/// `--help`.
pub fn usage() -> String {
    let mut text = String::from(
        "Usage: alloy-runner [--config PATH] [--log-level LEVEL] COMMAND [ARGS]\n\
         \n\
         Runs AlloyCI and GitLab jobs in Kubernetes pods.\n\
         \n\
         Options:\n  \
           -c, --config PATH      config.toml (default: $ALLOY_RUNNER_CONFIG, else\n                         \
           /etc/alloy-runner/config.toml for root, ~/.alloy-runner/config.toml otherwise)\n  \
           -l, --log-level LEVEL  error, warn, info, debug or trace (default: log_level in\n                         \
           config.toml, else RUST_LOG, else info)\n  \
           -h, --help             print this help\n  \
           -V, --version          print version, git revision and target\n\
         \n\
         Commands:\n",
    );
    for command in COMMANDS {
        text.push_str(&format!("  {:<12} {}\n", command.name, command.summary));
    }
    text.push_str("\nExit codes: 0 success, 1 runtime failure, 2 usage or configuration error.\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Action, CommandError> {
        parse_globals(&mut lexopt::Parser::from_args(args.iter().copied()))
    }

    #[test]
    fn reads_globals_before_the_command() {
        let action = parse(&["--config", "/x/c.toml", "--log-level", "debug", "list"]).unwrap();
        let Action::Command { globals, command } = action else {
            panic!("{action:?}")
        };
        assert_eq!(command, "list");
        assert_eq!(globals.config_path, PathBuf::from("/x/c.toml"));
        assert_eq!(globals.log_level, Some(log::LevelFilter::Debug));
    }

    #[test]
    fn leaves_the_command_arguments_to_the_command() {
        let mut args = lexopt::Parser::from_args(["-c=/c.toml", "list", "--help"]);
        let action = parse_globals(&mut args).unwrap();
        assert!(matches!(action, Action::Command { .. }));
        assert_eq!(args.next().unwrap(), Some(Long("help")));
    }

    #[test]
    fn rejects_bad_levels_unknown_options_and_no_command() {
        let error = parse(&["--log-level", "loud", "list"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(
            error.to_string().contains("invalid --log-level \"loud\""),
            "{error}"
        );
        assert_eq!(parse(&["--verbose", "list"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&[]).unwrap_err().to_string(), "no command given");
        assert!(matches!(parse(&["-h"]), Ok(Action::Help)));
        assert!(matches!(parse(&["--version", "list"]), Ok(Action::Version)));
    }

    #[test]
    fn default_config_path_follows_env_then_user() {
        let env = Some(OsString::from("/env/c.toml"));
        let home = Some(OsString::from("/home/ci"));
        assert_eq!(
            config_path_for(env, false, home.clone()),
            PathBuf::from("/env/c.toml")
        );
        assert_eq!(
            config_path_for(None, true, home.clone()),
            PathBuf::from(ROOT_CONFIG_PATH)
        );
        assert_eq!(
            config_path_for(None, false, home),
            PathBuf::from("/home/ci/.alloy-runner/config.toml")
        );
        assert_eq!(
            config_path_for(None, false, None),
            PathBuf::from(USER_CONFIG_PATH)
        );
    }

    #[test]
    fn version_names_revision_and_target() {
        let version = version();
        assert!(version.starts_with(&format!(
            "alloy-runner {} (revision ",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(version.contains(env!("ALLOY_RUNNER_TARGET")));
    }
}
