//! `run`: takes jobs for every runner of the config, at most `concurrent` at once and `limit`
//! per runner, polling each coordinator every `check_interval`, until SIGTERM or SIGINT; then
//! cancels the running jobs, cleans up their pods and exits.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::commands::{load_config, no_more_args, CommandError, Globals};
use crate::config::Config;
use crate::coordinator::client::JobRequest;
use crate::coordinator::job::Job;
use crate::service::{sleep_unless, Health, Runner, Slots};
use crate::signals;

const USAGE: &str = "\
Usage: alloy-runner [--config PATH] run

Takes jobs for every runner of config.toml and runs each in its own pod, until SIGTERM or
SIGINT (a second signal ends the runner at once). Jobs in flight are then cancelled and their
pods deleted.
";

/// Pause after a coordinator error before asking again (grows up to [`MAX_ERROR_PAUSE`]).
const MIN_ERROR_PAUSE: Duration = Duration::from_millis(100);
const MAX_ERROR_PAUSE: Duration = Duration::from_secs(60);

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
        .map(|entry| Runner::new(entry.clone()).map_err(|err| CommandError::Failed(Box::new(err))))
        .collect()
}

fn poll_loop(runner: &Runner, slots: &Slots, interval: Duration) {
    let shutdown = signals::shutdown_flag();
    let running = AtomicU32::new(0);
    let mut health = Health::default();
    let mut error_pause = MIN_ERROR_PAUSE;
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
            match runner.request() {
                Ok(JobRequest::Job(job)) => {
                    health.ok();
                    error_pause = MIN_ERROR_PAUSE;
                    running.fetch_add(1, Ordering::SeqCst);
                    let running = &running;
                    scope.spawn(move || {
                        run_one(runner, &job, slot);
                        slots.give_back(slot);
                        running.fetch_sub(1, Ordering::SeqCst);
                    });
                    continue;
                }
                Ok(other) => {
                    slots.give_back(slot);
                    handle_no_job(runner, other, &mut health, interval);
                }
                Err(err) => {
                    slots.give_back(slot);
                    log::warn!("runner {:?}: asking for a job failed: {err}", runner.config.name);
                    sleep_unless(shutdown, error_pause.max(err.retry_after().unwrap_or_default()));
                    error_pause = (error_pause * 2).min(MAX_ERROR_PAUSE);
                }
            }
        }
    });
}

fn at_limit(runner: &Runner, running: &AtomicU32) -> bool {
    runner.config.limit > 0 && running.load(Ordering::SeqCst) >= runner.config.limit
}

/// Handles every answer but a job: waits, fails an unreadable job, or counts an unhealthy one.
pub fn handle_no_job(runner: &Runner, answer: JobRequest, health: &mut Health, interval: Duration) {
    let shutdown = signals::shutdown_flag();
    match answer {
        JobRequest::Job(_) | JobRequest::NoJob => {
            health.ok();
            sleep_unless(shutdown, interval);
        }
        JobRequest::Unparseable { id, token, message } => {
            health.ok();
            runner.fail_unparseable(id, token, &message);
        }
        JobRequest::Unhealthy { status } => {
            log::error!(
                "runner {:?}: the coordinator refused the runner token (HTTP {status})",
                runner.config.name
            );
            let pause = health.unhealthy().unwrap_or(interval);
            sleep_unless(shutdown, pause);
        }
    }
}

fn run_one(runner: &Runner, job: &Job, slot: u32) {
    runner.process(job, slot, signals::shutdown_flag());
}
