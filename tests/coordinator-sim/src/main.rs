//! coordinator-sim in the foreground: serves the runner API on 127.0.0.1, prints its URL and
//! the registration token, and writes each job's record as the job finishes.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use coordinator_sim::{Dialect, JobRecord, Options, PipelineSource, Sim, SimHandle};

const USAGE: &str = "usage: coordinator-sim [--dialect alloyci|gitlab] [--registration-token T]
       [--runner-token T]... [--pipeline FILE --repo DIR [--ref NAME] [--tag] [--file-url]]
       [--job FILE]... [--record-dir DIR] [--trace-update-interval SECS] [--exit-when-done]
Listens on COORDINATOR_SIM_ADDR (default 127.0.0.1:0, a loopback address only).";

#[derive(Default)]
struct Args {
    dialect: Dialect,
    registration_token: Option<String>,
    runner_tokens: Vec<String>,
    pipeline: Option<PathBuf>,
    repo: Option<PathBuf>,
    ref_name: Option<String>,
    is_tag: bool,
    file_url: bool,
    jobs: Vec<PathBuf>,
    record_dir: Option<PathBuf>,
    trace_update_interval: Option<u64>,
    exit_when_done: bool,
}

fn parse_args() -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_env();
    let text = |value: OsString| {
        value
            .into_string()
            .map_err(|_| "argument is not UTF-8".to_string())
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let key = match arg {
            Long(name) => name.to_string(),
            Short(c) => c.to_string(),
            Value(v) => return Err(format!("unexpected argument {v:?}\n{USAGE}")),
        };
        let mut value = || parser.value().map_err(|e| e.to_string());
        match key.as_str() {
            "dialect" => args.dialect = dialect(&text(value()?)?)?,
            "registration-token" => args.registration_token = Some(text(value()?)?),
            "runner-token" => args.runner_tokens.push(text(value()?)?),
            "pipeline" => args.pipeline = Some(value()?.into()),
            "repo" => args.repo = Some(value()?.into()),
            "ref" => args.ref_name = Some(text(value()?)?),
            "tag" => args.is_tag = true,
            "file-url" => args.file_url = true,
            "job" => args.jobs.push(value()?.into()),
            "record-dir" => args.record_dir = Some(value()?.into()),
            "trace-update-interval" => {
                let secs = text(value()?)?;
                let secs = secs
                    .parse()
                    .map_err(|_| format!("--trace-update-interval `{secs}`"))?;
                args.trace_update_interval = Some(secs);
            }
            "exit-when-done" => args.exit_when_done = true,
            "help" | "h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if args.pipeline.is_some() != args.repo.is_some() {
        return Err("--pipeline and --repo go together".to_string());
    }
    Ok(args)
}

fn dialect(name: &str) -> Result<Dialect, String> {
    match name {
        "alloyci" => Ok(Dialect::AlloyCi),
        "gitlab" => Ok(Dialect::GitLab),
        other => Err(format!("--dialect `{other}`: accepted alloyci, gitlab")),
    }
}

/// `COORDINATOR_SIM_ADDR`, refusing anything but a loopback address.
fn listen_addr() -> Result<SocketAddr, String> {
    let Ok(text) = std::env::var("COORDINATOR_SIM_ADDR") else {
        return Ok(SocketAddr::from(([127, 0, 0, 1], 0)));
    };
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("COORDINATOR_SIM_ADDR `{text}` is not ip:port"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "COORDINATOR_SIM_ADDR `{text}`: only loopback addresses are served"
        ));
    }
    Ok(addr)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("coordinator-sim: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let args = parse_args()?;
    let mut options = Options {
        dialect: args.dialect,
        addr: listen_addr()?,
        trace_update_interval: args.trace_update_interval,
        ..Options::default()
    };
    if let Some(token) = &args.registration_token {
        options.registration_token = token.clone();
    }
    if let Some(dir) = &args.record_dir {
        options.data_dir = Some(dir.join("artifacts"));
    }
    let token = options.registration_token.clone();
    let sim = Sim::start(options).map_err(|e| e.to_string())?;
    let finished = sim.subscribe();
    let expected = enqueue(&sim, &args)?;

    println!("coordinator-sim listening on {}", sim.url());
    println!("registration token: {token}");
    let _ = std::io::stdout().flush();

    let mut done = 0;
    for record in finished {
        write_record(&record, args.record_dir.as_deref()).map_err(|e| e.to_string())?;
        done += 1;
        if args.exit_when_done && done >= expected {
            break;
        }
    }
    let violations = sim.violations();
    for violation in &violations {
        println!("violation: {violation}");
    }
    Ok(if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Queues the fixture jobs and the pipeline; returns how many jobs will finish.
fn enqueue(sim: &SimHandle, args: &Args) -> Result<usize, String> {
    for token in &args.runner_tokens {
        sim.add_runner(token);
    }
    for path in &args.jobs {
        sim.enqueue_payload_file(path).map_err(|e| e.to_string())?;
    }
    let mut count = args.jobs.len();
    if let (Some(pipeline), Some(repo)) = (&args.pipeline, &args.repo) {
        let text = std::fs::read_to_string(pipeline)
            .map_err(|e| format!("{}: {e}", pipeline.display()))?;
        let source = PipelineSource {
            repo: repo.clone(),
            ref_name: args.ref_name.clone(),
            is_tag: args.is_tag,
            file_url: args.file_url,
            serve_http: !args.file_url,
        };
        let run = sim
            .enqueue_pipeline_from(&text, source)
            .map_err(|e| e.to_string())?;
        count += run.jobs.len();
    }
    Ok(count)
}

fn write_record(record: &JobRecord, dir: Option<&Path>) -> std::io::Result<()> {
    let summary = format!(
        "job {} `{}`: {} (reported {}, failure reason {}, exit code {})",
        record.id,
        record.name,
        record.state.as_str(),
        record.reported_state.as_deref().unwrap_or("-"),
        record.failure_reason.as_deref().unwrap_or("-"),
        record.exit_code.map_or("-".to_string(), |c| c.to_string()),
    );
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "=== {summary} ===")?;
        out.write_all(record.log())?;
        writeln!(out, "\n=== end of job {} ===", record.id)?;
        return out.flush();
    };
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("job-{}.log", record.id)), record.log())?;
    std::fs::write(
        dir.join(format!("job-{}.txt", record.id)),
        format!("{summary}\n"),
    )?;
    println!("{summary}");
    Ok(())
}
