//! `run`: takes jobs for every runner of the config, at most `concurrent` at once and `limit`
//! per runner, polling each coordinator every `check_interval`, until SIGTERM or SIGINT; then
//! cancels the running jobs, cleans up their pods and exits.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::commands::{load_config, no_more_args, CommandError, Globals};
use crate::config::Config;
use crate::coordinator::job::Job;
use crate::service::{sleep_unless, Runner, ServiceError, Slots};
use crate::signals;

const USAGE: &str = "\
Usage: alloy-runner [--config PATH] run

Takes jobs for every runner of config.toml and runs each in its own pod, until SIGTERM or
SIGINT (a second signal ends the runner at once). Jobs in flight are then cancelled and their
pods deleted.
";

/// Runs the `run` command.
pub fn run(globals: &Globals, args: &mut lexopt::Parser) -> Result<(), CommandError> {
    if no_more_args(args, USAGE)? {
        return Ok(());
    }
    let config = load_config(globals)?;
    let runners = setup_runners(&config)?;
    signals::install();
    log::info!(
        "taking jobs for {} runner(s), at most {} at once",
        runners.len(),
        config.concurrent
    );
    let slots = Arc::new(Slots::new(config.concurrent));
    std::thread::scope(|scope| {
        for runner in &runners {
            let slots = slots.clone();
            let interval = config.check_interval;
            scope.spawn(move || poll_loop(runner, &slots, interval));
        }
    });
    log::info!("all jobs finished; exiting");
    Ok(())
}

/// Sets up every runner entry; any entry that cannot run is a configuration error.
pub fn setup_runners(config: &Config) -> Result<Vec<Runner>, CommandError> {
    if config.runners.is_empty() {
        return Err(CommandError::Usage(format!(
            "{} has no [[runners]] entry; register one first",
            config.path.display()
        )));
    }
    config
        .runners
        .iter()
        .map(|entry| Runner::new(entry.clone()).map_err(runner_error))
        .collect()
}

/// A runner entry that lacks what it needs is a configuration error (exit 2); a client that
/// cannot be set up is a runtime failure (exit 1).
pub fn runner_error(err: ServiceError) -> CommandError {
    match err {
        ServiceError::Incomplete { .. } => CommandError::Invalid(Box::new(err)),
        other => CommandError::Failed(Box::new(other)),
    }
}

fn poll_loop(runner: &Runner, slots: &Slots, interval: Duration) {
    let shutdown = signals::shutdown_flag();
    let running = AtomicU32::new(0);
    let mut poller = runner.poller(interval);
    std::thread::scope(|scope| {
        while !shutdown.load(Ordering::SeqCst) {
            if at_limit(runner, &running) {
                sleep_unless(shutdown, interval);
                continue;
            }
            let Some(slot) = slots.try_take() else {
                slots.wait_for_free(interval);
                continue;
            };
            let poll = poller.poll();
            let Some(job) = poll.job else {
                slots.give_back(slot);
                sleep_unless(shutdown, poll.next_poll_in);
                continue;
            };
            running.fetch_add(1, Ordering::SeqCst);
            let running = &running;
            scope.spawn(move || {
                run_one(runner, &job, slot);
                slots.give_back(slot);
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
}

fn at_limit(runner: &Runner, running: &AtomicU32) -> bool {
    runner.config.limit > 0 && running.load(Ordering::SeqCst) >= runner.config.limit
}

fn run_one(runner: &Runner, job: &Job, slot: u32) {
    runner.process(job, slot, signals::shutdown_flag());
}
