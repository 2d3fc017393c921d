//! Running one stage: its script is written into the pod's scripts volume and run by one exec,
//! its output streamed into the trace, its exit status read from the exec's status channel.

use std::io::Cursor;

use crate::executor::script;
use crate::executor::stop::StopSignal;
use crate::kube::{AbortHandle, Client, ExecError, ExecIo, ExecRequest};
use crate::trace::TraceWriter;

/// One stage to run.
pub struct Stage<'a> {
    /// Short name, used for the script file and the trace section (`get_sources`, `step_script`).
    pub name: &'a str,
    /// Container the stage runs in (`helper` or `build`).
    pub container: &'a str,
    /// The stage's shell script.
    pub script: String,
}

/// Where the stages run.
pub struct PodTarget<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub scripts_dir: &'a str,
}

/// How a stage ended when it did not report an exit status.
#[derive(Debug)]
pub enum StageError {
    /// The exec was aborted (timeout, cancel, pod failure, shutdown).
    Aborted,
    /// The exec failed or ended without an exit status: the command's fate is unknown.
    Exec(ExecError),
}

impl std::fmt::Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageError::Aborted => f.write_str("stage aborted"),
            StageError::Exec(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for StageError {}

/// Runs `stage` and returns the exit status of its script.
pub fn run_stage(
    target: &PodTarget,
    stage: Stage,
    trace: &TraceWriter,
    stop: &StopSignal,
) -> Result<i32, StageError> {
    let path = format!("{}/{}.sh", target.scripts_dir, stage.name);
    let request = ExecRequest {
        namespace: target.namespace.to_string(),
        pod: target.pod.to_string(),
        container: stage.container.to_string(),
        command: script::exec_command(&path, stage.script.len()),
    };
    let abort = AbortHandle::new();
    stop.register(&abort);
    let io = ExecIo {
        stdin: Some(Box::new(Cursor::new(stage.script.into_bytes()))),
        stdout: Box::new(trace.clone()),
        stderr: Box::new(trace.clone()),
        abort: Some(abort),
    };
    let result = target.client.exec(&request, io);
    stop.clear_execs();
    trace.flush_pending();
    match result {
        Ok(outcome) => Ok(outcome.exit_code),
        Err(ExecError::Aborted { .. }) => Err(StageError::Aborted),
        Err(err) if stop.reason().is_some() => {
            log::debug!("stage {} ended after a stop: {err}", stage.name);
            Err(StageError::Aborted)
        }
        Err(err) => Err(StageError::Exec(err)),
    }
}
