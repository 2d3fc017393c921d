//! `run-single`: one runner, one job at a time, for cron-like supervisors. Returns after
//! `--max-builds` jobs, or when no job came for `--wait-timeout` seconds.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lexopt::prelude::*;

use crate::commands::{load_config, CommandError, Globals};
use crate::config::RunnerConfig;
use crate::secret::Secret;
use crate::service::{sleep_unless, Runner};
use crate::signals;

const USAGE: &str = "\
Usage: alloy-runner [--config PATH] run-single [OPTIONS]

Runs jobs of one runner, one at a time, then returns.

Options:
  --runner NAME        the [[runners]] entry to use (default: the only one)
  --url URL            coordinator URL (with --token, instead of --runner)
  --token TOKEN        runner token (or RUNNER_TOKEN in the environment)
  --max-builds N       return after N jobs (default 0 = no limit)
  --wait-timeout SECS  return when no job came for SECS seconds (default 0 = wait forever)
";

/// Options of `run-single`.
#[derive(Debug, Default)]
struct Options {
    runner: Option<String>,
    url: Option<String>,
    token: Option<Secret>,
    max_builds: u64,
    wait_timeout: Option<Duration>,
}

/// Runs the `run-single` command. Exits 0 once done, whatever the jobs' results.
pub fn run(globals: &Globals, args: &mut lexopt::Parser) -> Result<(), CommandError> {
    let Some(options) = parse(args)? else {
        return Ok(());
    };
    let config = load_config(globals)?;
    let entry = pick_runner(
        &config.runners,
        &options,
        &config.path.display().to_string(),
    )?;
    let runner = Runner::new(entry).map_err(crate::commands::run::runner_error)?;
    signals::install();
    serve(&runner, &options, config.check_interval)
}

fn serve(runner: &Runner, options: &Options, interval: Duration) -> Result<(), CommandError> {
    let shutdown = signals::shutdown_flag();
    let mut poller = runner.poller(interval);
    let mut builds = 0u64;
    let mut last_job = Instant::now();
    while !shutdown.load(Ordering::SeqCst) {
        if options.max_builds > 0 && builds >= options.max_builds {
            log::info!("processed {builds} job(s); done");
            return Ok(());
        }
        let waited = last_job.elapsed();
        if options.wait_timeout.is_some_and(|limit| waited >= limit) {
            log::info!("no job came within the wait timeout; done after {builds} job(s)");
            return Ok(());
        }
        let poll = poller.poll();
        let Some(job) = poll.job else {
            let left = options.wait_timeout.map_or(poll.next_poll_in, |limit| {
                poll.next_poll_in.min(limit.saturating_sub(waited))
            });
            sleep_unless(shutdown, left);
            continue;
        };
        runner.process(&job, 0, shutdown);
        builds += 1;
        last_job = Instant::now();
    }
    log::info!("stopped by a signal after {builds} job(s)");
    Ok(())
}

fn parse(args: &mut lexopt::Parser) -> Result<Option<Options>, CommandError> {
    let mut options = Options::default();
    while let Some(arg) = args.next()? {
        match arg {
            Long("runner") => options.runner = Some(args.value()?.string()?),
            Long("url") => options.url = Some(args.value()?.string()?),
            Long("token") => options.token = Some(Secret::new(args.value()?.string()?)),
            Long("max-builds") => options.max_builds = args.value()?.parse()?,
            Long("wait-timeout") => {
                options.wait_timeout =
                    Some(Duration::from_secs(args.value()?.parse()?)).filter(|d| !d.is_zero());
            }
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(None);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if options.token.is_none() {
        options.token = std::env::var("RUNNER_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new);
    }
    Ok(Some(options))
}

/// The entry to use: `--runner NAME`, else the only entry; `--url`/`--token` override its
/// coordinator settings.
fn pick_runner(
    runners: &[RunnerConfig],
    options: &Options,
    path: &str,
) -> Result<RunnerConfig, CommandError> {
    let mut entry = match &options.runner {
        Some(name) => runners
            .iter()
            .find(|r| &r.name == name)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = runners.iter().map(|r| r.name.as_str()).collect();
                CommandError::Usage(format!(
                    "no runner named {name:?} in {path} (runners: {})",
                    names.join(", ")
                ))
            })?,
        None if runners.len() == 1 => runners[0].clone(),
        None => {
            return Err(CommandError::Usage(format!(
                "{path} has {} runners; choose one with --runner NAME",
                runners.len()
            )))
        }
    };
    if let Some(url) = &options.url {
        entry.url = Some(url.clone());
    }
    if let Some(token) = &options.token {
        entry.token = Some(token.clone());
    }
    Ok(entry)
}
