//! `alloy-runner unregister`: removes runners from the coordinator and from config.toml.

use lexopt::Arg::{Long, Short};
use lexopt::ValueExt;

use super::register::{read_document, remove_runners, runner_entries, write_document, RunnerEntry};
use super::{CommandError, Globals};
use crate::coordinator::{Client, CoordinatorError};

const USAGE: &str = "\
Usage: alloy-runner unregister (--name NAME | --token TOKEN | --all-runners)

Unregisters runners from the coordinator and removes them from config.toml.

Options:
  -n, --name NAME   the runner named NAME
  -t, --token T     the runner whose token is T
  --all-runners     every runner of config.toml
";

/// Which entries to unregister.
enum Selection {
    Name(String),
    Token(String),
    All,
}

/// Runs `unregister`.
pub fn run(globals: &Globals, args: &mut lexopt::Parser) -> Result<(), CommandError> {
    let Some(selection) = parse_args(args)? else {
        return Ok(());
    };
    let path = &globals.config_path;
    let mut document = read_document(path).map_err(failed)?;
    let entries = runner_entries(&document, path).map_err(failed)?;
    let chosen: Vec<&RunnerEntry> = entries.iter().filter(|e| selected(e, &selection)).collect();
    if chosen.is_empty() {
        let message = format!("no runner of {} matches", path.display());
        return Err(CommandError::Usage(message));
    }

    let mut removed = Vec::new();
    let mut failures = 0;
    for entry in chosen {
        match unregister(entry) {
            Ok(()) => removed.push(entry.index),
            Err(e) => {
                log::error!("cannot unregister runner {:?}: {e}", entry.name);
                failures += 1;
            }
        }
    }
    if !removed.is_empty() {
        remove_runners(&mut document, &removed);
        write_document(path, &document).map_err(failed)?;
    }
    if failures > 0 {
        let message = format!("{failures} runner(s) could not be unregistered and were kept");
        return Err(CommandError::Failed(message.into()));
    }
    Ok(())
}

fn parse_args(args: &mut lexopt::Parser) -> Result<Option<Selection>, CommandError> {
    let mut selection = None;
    while let Some(arg) = args.next()? {
        let next = match arg {
            Short('n') | Long("name") => Selection::Name(args.value()?.string()?),
            Short('t') | Long("token") => Selection::Token(args.value()?.string()?),
            Long("all-runners") => Selection::All,
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => return Err(other.unexpected().into()),
        };
        if selection.replace(next).is_some() {
            let message = "give only one of --name, --token, --all-runners".to_string();
            return Err(CommandError::Usage(message));
        }
    }
    let message = "unregister needs --name, --token or --all-runners".to_string();
    selection.map(Some).ok_or(CommandError::Usage(message))
}

fn selected(entry: &RunnerEntry, selection: &Selection) -> bool {
    match selection {
        Selection::Name(name) => entry.name == *name,
        Selection::Token(token) => entry.token.as_ref().is_some_and(|t| t.expose() == token),
        Selection::All => true,
    }
}

/// Unregisters one entry; a 403 means the coordinator no longer knows it, so it goes too.
fn unregister(entry: &RunnerEntry) -> Result<(), CoordinatorError> {
    let (Some(url), Some(token)) = (&entry.url, &entry.token) else {
        log::warn!(
            "runner {:?} has no url or token; removed from the file only",
            entry.name
        );
        return Ok(());
    };
    match Client::new(url)?.unregister(token) {
        Ok(()) => {
            println!("Unregistered runner {:?}", entry.name);
            Ok(())
        }
        Err(CoordinatorError::Forbidden { .. }) => {
            log::warn!(
                "the coordinator does not know runner {:?}; removing it",
                entry.name
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn failed(error: impl std::error::Error + Send + Sync + 'static) -> CommandError {
    CommandError::Failed(Box::new(error))
}
