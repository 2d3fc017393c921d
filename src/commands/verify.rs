//! `alloy-runner verify`: asks the coordinator whether each runner of config.toml still exists;
//! with `--delete`, removes those it answers 403 for.

use lexopt::Arg::{Long, Short};
use lexopt::ValueExt;

use super::register::{read_document, remove_runners, runner_entries, write_document, RunnerEntry};
use super::{CommandError, Globals};
use crate::coordinator::Client;

const USAGE: &str = "\
Usage: alloy-runner verify [--delete] [--name NAME]

Checks each runner of config.toml with the coordinator.

Options:
  --delete       remove the runners the coordinator no longer knows from config.toml
  -n, --name N   check only the runner named N
";

/// Runs `verify`.
pub fn run(globals: &Globals, args: &mut lexopt::Parser) -> Result<(), CommandError> {
    let (mut delete, mut only) = (false, None);
    while let Some(arg) = args.next()? {
        match arg {
            Long("delete") => delete = true,
            Short('n') | Long("name") => only = Some(args.value()?.string()?),
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(());
            }
            other => return Err(other.unexpected().into()),
        }
    }

    let path = &globals.config_path;
    let mut document = read_document(path).map_err(failed)?;
    let entries = runner_entries(&document, path).map_err(failed)?;
    let selected = entries
        .iter()
        .filter(|e| only.as_ref().is_none_or(|n| *n == e.name));
    let deleted: Vec<usize> = selected.filter(|e| !is_alive(e)).map(|e| e.index).collect();

    if delete && !deleted.is_empty() {
        remove_runners(&mut document, &deleted);
        write_document(path, &document).map_err(failed)?;
        println!(
            "Removed {} runner(s) from {}",
            deleted.len(),
            path.display()
        );
    }
    Ok(())
}

/// Verifies one entry; only a 403 counts as deleted, anything else is logged and kept.
fn is_alive(entry: &RunnerEntry) -> bool {
    let (Some(url), Some(token)) = (&entry.url, &entry.token) else {
        log::warn!("runner {:?} has no url or token; skipped", entry.name);
        return true;
    };
    match Client::new(url).and_then(|client| client.verify(token)) {
        Ok(true) => {
            println!("Verifying runner {:?}: is alive", entry.name);
            true
        }
        Ok(false) => {
            println!("Verifying runner {:?}: is removed", entry.name);
            false
        }
        Err(e) => {
            log::error!("cannot verify runner {:?}: {e}", entry.name);
            true
        }
    }
}

fn failed(error: impl std::error::Error + Send + Sync + 'static) -> CommandError {
    CommandError::Failed(Box::new(error))
}
