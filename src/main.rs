//! `alloy-runner`: parses the global options, dispatches to a command and picks the exit code.

use std::process::ExitCode;

use alloy_runner::cli::{self, Action};
use alloy_runner::commands::{self, CommandError};
use alloy_runner::logging;

fn main() -> ExitCode {
    let mut args = lexopt::Parser::from_env();
    match run(&mut args) {
        Ok(()) => ExitCode::from(commands::EXIT_OK),
        Err(error) => {
            eprintln!("alloy-runner: error: {}", commands::error_chain(&error));
            if error.is_usage() {
                eprintln!("Run 'alloy-runner --help' for usage.");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(args: &mut lexopt::Parser) -> Result<(), CommandError> {
    let (globals, command) = match cli::parse_globals(args)? {
        Action::Help => return commands::write_stdout(&cli::usage()),
        Action::Version => return commands::write_stdout(&format!("{}\n", cli::version())),
        Action::Command { globals, command } => (globals, command),
    };
    logging::init(globals.log_level);
    commands::dispatch(&command, &globals, args)
}
