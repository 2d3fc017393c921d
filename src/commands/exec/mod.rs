//! `exec`: runs one job of a local pipeline file in the cluster of a `[[runners]]` entry,
//! without a coordinator. The sources are the local checkout's working tree, streamed into the
//! pod; the job log goes to stdout as it is produced; the job's result is the exit code.

mod checkout;
mod local_job;
mod tail;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use lexopt::prelude::*;

use crate::commands::{load_config, CommandError, Globals};
use crate::config::RunnerConfig;
use crate::coordinator::job::Job;
use crate::executor::job::{run_job, JobIo, JobOutcome, JobSpec};
use crate::executor::sources::Sources;
use crate::executor::supervisor::NeverCanceled;
use crate::kube::{Client as Kube, KubeError};
use crate::pipeline::{self, PipelineError};
use crate::signals;
use crate::trace::{Spool, TraceWriter};

use checkout::{Checkout, CheckoutError};
use local_job::{LocalJob, TempFile};
use tail::Tail;

/// The pipeline file's name in the checkout.
const PIPELINE_FILE: &str = ".alloy-ci.json";

const USAGE: &str = "\
Usage: alloy-runner [--config PATH] exec [OPTIONS] JOB_NAME

Runs one job of a local pipeline file in the cluster of a [[runners]] entry, without a
coordinator. The sources are the checkout's working tree (uncommitted changes to tracked files
included, untracked files not), streamed into the pod. The job log goes to stdout.

Options:
  --runner NAME     the [[runners]] entry whose [runners.kubernetes] settings to use
                    (default: the only one)
  --dir DIR         the git checkout to run the job of (default: the current folder)
  --file PATH       the pipeline file (default: .alloy-ci.json in DIR)
  --env KEY=VALUE   add a job variable (repeatable; wins over the file's)
  --timeout SECS    the job's timeout in seconds (default 3600)

Artifacts of earlier jobs are not available and artifacts are not uploaded; the cache works
when the runner has one configured.

SIGINT or SIGTERM stops the job and removes its pod (a second one exits at once).

Exit codes: 0 the job succeeded, 1 the job failed (or could not be run in the cluster),
2 usage or configuration error (bad options, config.toml, pipeline file or unknown job).
";

/// Options of `exec`.
#[derive(Debug, Default)]
struct Options {
    job: String,
    runner: Option<String>,
    dir: Option<PathBuf>,
    file: Option<PathBuf>,
    env: Vec<(String, String)>,
    timeout_secs: u64,
}

/// Why `exec` could not run the job or the job failed.
#[derive(Debug)]
pub enum ExecCommandError {
    /// The pipeline file could not be read.
    PipelineUnreadable { path: PathBuf, source: io::Error },
    /// The pipeline file was rejected by the parser.
    Pipeline {
        path: PathBuf,
        source: Box<PipelineError>,
    },
    /// The pipeline file has no job of that name.
    UnknownJob {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },
    /// The folder is not a usable git checkout.
    Checkout(CheckoutError),
    /// The job built from the pipeline file did not pass the job checks.
    Payload { name: String, message: String },
    /// The runner entry's Kubernetes settings give no client.
    Kubernetes { runner: String, source: KubeError },
    /// The working tree could not be packed for the pod.
    Archive(CheckoutError),
    /// The temporary files (archive, log spool) could not be made.
    TempFile(io::Error),
    /// The job ran and did not succeed.
    JobFailed { name: String, message: String },
}

impl fmt::Display for ExecCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecCommandError::PipelineUnreadable { path, .. } => {
                write!(f, "cannot read pipeline file {}", path.display())
            }
            ExecCommandError::Pipeline { path, .. } => {
                write!(f, "pipeline file {} is rejected", path.display())
            }
            ExecCommandError::UnknownJob { path, name, known } => write!(
                f,
                "pipeline file {} has no job {name:?} (jobs: {})",
                path.display(),
                known.join(", ")
            ),
            ExecCommandError::Checkout(_) => {
                f.write_str("the sources folder is not a git checkout")
            }
            ExecCommandError::Payload { name, message } => {
                write!(f, "job {name:?} cannot run: {message}")
            }
            ExecCommandError::Kubernetes { runner, .. } => {
                write!(f, "runner {runner:?}: kubernetes credentials")
            }
            ExecCommandError::Archive(_) => f.write_str("cannot pack the working tree"),
            ExecCommandError::TempFile(_) => f.write_str("cannot create a temporary file"),
            ExecCommandError::JobFailed { name, message } => {
                write!(f, "job {name:?} failed: {message}")
            }
        }
    }
}

impl std::error::Error for ExecCommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExecCommandError::PipelineUnreadable { source, .. }
            | ExecCommandError::TempFile(source) => Some(source),
            ExecCommandError::Pipeline { source, .. } => Some(source.as_ref()),
            ExecCommandError::Checkout(source) | ExecCommandError::Archive(source) => Some(source),
            ExecCommandError::Kubernetes { source, .. } => Some(source),
            ExecCommandError::UnknownJob { .. }
            | ExecCommandError::Payload { .. }
            | ExecCommandError::JobFailed { .. } => None,
        }
    }
}

impl From<ExecCommandError> for CommandError {
    fn from(error: ExecCommandError) -> Self {
        match error {
            ExecCommandError::PipelineUnreadable { .. }
            | ExecCommandError::Pipeline { .. }
            | ExecCommandError::UnknownJob { .. }
            | ExecCommandError::Checkout(_)
            | ExecCommandError::Payload { .. }
            | ExecCommandError::Kubernetes { .. } => CommandError::Invalid(Box::new(error)),
            ExecCommandError::Archive(_)
            | ExecCommandError::TempFile(_)
            | ExecCommandError::JobFailed { .. } => CommandError::Failed(Box::new(error)),
        }
    }
}

/// Runs the `exec` command: exit 0 when the job succeeded, 1 when it failed.
pub fn run(globals: &Globals, args: &mut lexopt::Parser) -> Result<(), CommandError> {
    let Some(options) = parse(args)? else {
        return Ok(());
    };
    let config = load_config(globals)?;
    let entry = pick_runner(&config.runners, options.runner.as_deref(), &config.path)?;
    let dir = options.dir.clone().unwrap_or_else(|| PathBuf::from("."));

    // Everything that can be wrong locally is found before the cluster is touched.
    let pipeline_job = read_job(&pipeline_path(&options), &options.job)?;
    let checkout = Checkout::open(&dir).map_err(ExecCommandError::Checkout)?;
    let mut local = LocalJob::new(&pipeline_job, &checkout, &options.env, options.timeout_secs);
    local.notices.extend(untracked_notice(&checkout));
    let job = local
        .decode()
        .map_err(|message| ExecCommandError::Payload {
            name: options.job.clone(),
            message,
        })?;
    let kube =
        Kube::from_config(&entry.kubernetes).map_err(|source| ExecCommandError::Kubernetes {
            runner: entry.name.clone(),
            source,
        })?;

    let archive = pack(&checkout)?;
    signals::install();
    let outcome = run_with_log(&entry, &job, &kube, &local, archive.path())?;
    match outcome {
        JobOutcome::Success => Ok(()),
        JobOutcome::Failed { message, .. } => Err(ExecCommandError::JobFailed {
            name: options.job,
            message,
        }
        .into()),
    }
}

/// Runs the job with its log copied to stdout as it is written.
fn run_with_log(
    entry: &RunnerConfig,
    job: &Job,
    kube: &Kube,
    local: &LocalJob,
    archive: &Path,
) -> Result<JobOutcome, ExecCommandError> {
    let spool = Spool::new().map_err(ExecCommandError::TempFile)?;
    let trace = TraceWriter::new(spool.clone(), local.masks(job), entry.output_limit);
    let tail = Tail::start(spool, Box::new(io::stdout()));
    for notice in &local.notices {
        trace.warning(notice);
    }
    let spec = JobSpec {
        runner: entry,
        job,
        client: kube,
        concurrent_id: 0,
        sources: Sources::Archive(archive.to_path_buf()),
    };
    let io = JobIo {
        trace: &trace,
        cancel: &NeverCanceled,
        shutdown: signals::shutdown_flag(),
    };
    let outcome = run_job(&spec, &io);
    trace.flush_pending();
    tail.finish();
    if io.shutdown.load(Ordering::SeqCst) {
        log::info!("the job was stopped by a signal");
    }
    Ok(outcome)
}

/// `--file`, else the pipeline file in `--dir`, else in the current folder.
fn pipeline_path(options: &Options) -> PathBuf {
    match (&options.file, &options.dir) {
        (Some(file), _) => file.clone(),
        (None, Some(dir)) => dir.join(PIPELINE_FILE),
        (None, None) => PathBuf::from(PIPELINE_FILE),
    }
}

/// Parses the pipeline file and returns the job named `name`.
fn read_job(path: &Path, name: &str) -> Result<pipeline::PipelineJob, ExecCommandError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ExecCommandError::PipelineUnreadable {
            path: path.to_path_buf(),
            source,
        })?;
    let parsed = pipeline::parse(&text).map_err(|source| ExecCommandError::Pipeline {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    match parsed.job(name) {
        Some(job) => Ok(job.clone()),
        None => Err(ExecCommandError::UnknownJob {
            path: path.to_path_buf(),
            name: name.to_string(),
            known: parsed.jobs.iter().map(|job| job.name.clone()).collect(),
        }),
    }
}

/// Packs the working tree into a temporary tar file, removed when the handle is dropped.
fn pack(checkout: &Checkout) -> Result<TempFile, ExecCommandError> {
    let commit = checkout.snapshot().map_err(ExecCommandError::Archive)?;
    let file = TempFile::new("tar").map_err(ExecCommandError::TempFile)?;
    checkout
        .archive(&commit, file.path())
        .map_err(ExecCommandError::Archive)?;
    log::debug!(
        "packed {} at {commit} into {}",
        checkout.root.display(),
        file.path().display()
    );
    Ok(file)
}

/// A warning naming the untracked files (up to 5) that the archive leaves out.
fn untracked_notice(checkout: &Checkout) -> Option<String> {
    let untracked = match checkout.untracked() {
        Ok(untracked) => untracked,
        Err(err) => {
            log::debug!("cannot list untracked files: {err}");
            return None;
        }
    };
    let (first, rest) = untracked.split_at(untracked.len().min(5));
    let more = match rest.len() {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    (!first.is_empty()).then(|| {
        format!(
            "untracked files are not part of the sources (git add them to include them): {}{more}",
            first.join(", ")
        )
    })
}

fn parse(args: &mut lexopt::Parser) -> Result<Option<Options>, CommandError> {
    let mut options = Options::default();
    let mut job = None;
    while let Some(arg) = args.next()? {
        match arg {
            Long("runner") => options.runner = Some(args.value()?.string()?),
            Long("dir") => options.dir = Some(args.value()?.into()),
            Long("file") => options.file = Some(args.value()?.into()),
            Long("env") => options.env.push(env_pair(&args.value()?.string()?)?),
            Long("timeout") => options.timeout_secs = args.value()?.parse()?,
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(None);
            }
            Value(name) if job.is_none() => job = Some(name.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    options.job = job
        .ok_or_else(|| CommandError::Usage("exec needs the name of the job to run".to_string()))?;
    Ok(Some(options))
}

/// `KEY=VALUE` of `--env`, the key a non-empty shell-style name.
fn env_pair(text: &str) -> Result<(String, String), CommandError> {
    let bad = || {
        CommandError::Usage(format!(
            "--env takes KEY=VALUE with KEY made of letters, digits and _, got {text:?}"
        ))
    };
    let (key, value) = text.split_once('=').ok_or_else(bad)?;
    let valid = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(bad());
    }
    Ok((key.to_string(), value.to_string()))
}

/// The entry named `name`, else the only entry.
fn pick_runner(
    runners: &[RunnerConfig],
    name: Option<&str>,
    path: &Path,
) -> Result<RunnerConfig, CommandError> {
    let names = || {
        let names: Vec<&str> = runners.iter().map(|r| r.name.as_str()).collect();
        names.join(", ")
    };
    match name {
        Some(name) => runners
            .iter()
            .find(|r| r.name == name)
            .cloned()
            .ok_or_else(|| {
                CommandError::Usage(format!(
                    "no runner named {name:?} in {} (runners: {})",
                    path.display(),
                    names()
                ))
            }),
        None if runners.len() == 1 => Ok(runners[0].clone()),
        None => Err(CommandError::Usage(format!(
            "{} has {} runners ({}); choose one with --runner NAME",
            path.display(),
            runners.len(),
            names()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Option<Options>, CommandError> {
        parse(&mut lexopt::Parser::from_args(args.iter().copied()))
    }

    #[test]
    fn options_and_job_name_are_read_in_any_order() {
        let options = parsed(&["--env", "A=1=2", "build", "--timeout", "60", "--env", "B="])
            .expect("parses")
            .expect("not help");
        assert_eq!(options.job, "build");
        assert_eq!(options.timeout_secs, 60);
        assert_eq!(
            options.env,
            [
                ("A".to_string(), "1=2".to_string()),
                ("B".to_string(), String::new())
            ]
        );
        assert_eq!(options.dir, None);
    }

    #[test]
    fn a_missing_job_name_is_a_usage_error() {
        let error = parsed(&["--runner", "r"]).expect_err("refused");
        assert_eq!(error.exit_code(), 2);
        assert_eq!(error.to_string(), "exec needs the name of the job to run");
    }

    #[test]
    fn env_without_a_valid_key_is_refused() {
        for bad in ["NOEQUALS", "=v", "1A=v", "A-B=v"] {
            let error = parsed(&["--env", bad, "job"]).expect_err("refused");
            assert_eq!(error.exit_code(), 2, "{bad}");
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn job_failure_exits_1_and_a_bad_pipeline_exits_2() {
        let failed = ExecCommandError::JobFailed {
            name: "test".into(),
            message: "exit code 3".into(),
        };
        let failed = CommandError::from(failed);
        assert_eq!(failed.exit_code(), 1);
        assert_eq!(failed.to_string(), "job \"test\" failed: exit code 3");
        let unknown = CommandError::from(ExecCommandError::UnknownJob {
            path: "p.json".into(),
            name: "tset".into(),
            known: vec!["build".into(), "test".into()],
        });
        assert_eq!(unknown.exit_code(), 2);
        assert!(!unknown.is_usage());
        assert_eq!(
            unknown.to_string(),
            "pipeline file p.json has no job \"tset\" (jobs: build, test)"
        );
    }
}
