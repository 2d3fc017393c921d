//! One job from start to end: plan the pod, create it, wait for it, run the stages, and clean
//! up whatever happened. The result is green only when the script's exec reported exit 0.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::config::RunnerConfig;
use crate::coordinator::job::{Job, JobVariable, When};
use crate::executor::cleanup::{cleanup, Created};
use crate::executor::layout::PodLayout;
use crate::executor::manifest::{owner_reference, plan_pod, use_created_secret, PodInput, PodPlan};
use crate::executor::script::{self, ScriptContext};
use crate::executor::sources::{self, Sources, SourcesError};
use crate::executor::stage::{run_stage, PodTarget, Stage, StageError};
use crate::executor::stop::StopReason;
use crate::executor::supervisor::{CancelSource, Supervisor};
use crate::executor::variables::{job_variables, RUNNER_VERSION};
use crate::executor::wait::{wait_for_pod, WaitError, WaitFor};
use crate::kube::Client;
use crate::trace::TraceWriter;

/// How long after_script may run, on its own deadline.
pub const AFTER_SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// What a job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The script reported exit status 0.
    Success,
    /// The job failed; `exit_code` is the script's when it reported one.
    Failed {
        kind: FailureKind,
        exit_code: Option<i32>,
        message: String,
    },
}

/// Why a job failed, as the coordinator's `failure_reason` distinguishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The user's script or configuration (`script_failure`).
    Script,
    /// The pod, the cluster, the connection (`runner_system_failure`).
    System,
    /// `runner_info.timeout` passed (`job_execution_timeout`).
    Timeout,
    /// The coordinator cancelled the job.
    Canceled,
}

/// The job to run and where.
pub struct JobSpec<'a> {
    pub runner: &'a RunnerConfig,
    pub job: &'a Job,
    pub client: &'a Client,
    pub concurrent_id: u32,
    /// Where the sources come from (default: git in the helper container).
    pub sources: Sources,
}

/// What the job reports to and hears from.
pub struct JobIo<'a> {
    pub trace: &'a TraceWriter,
    pub cancel: &'a dyn CancelSource,
    pub shutdown: &'a AtomicBool,
}

/// Runs the job and always cleans up its pod.
pub fn run_job(spec: &JobSpec, io: &JobIo) -> JobOutcome {
    let deadline = Instant::now() + Duration::from_secs(spec.job.timeout_secs.max(1));
    header(spec, io.trace);

    // Everything the pod needs is decided before anything is created.
    let layout = PodLayout::for_job(spec.runner, spec.job);
    let variables = job_variables(spec.runner, spec.job, &layout, spec.concurrent_id);
    let plan = match plan(spec, io.trace, &variables) {
        Ok(plan) => plan,
        Err(outcome) => return finish(io.trace, outcome),
    };

    // A job may bring its own API token (KUBERNETES_BEARER_TOKEN, when allowed).
    let client = match &plan.bearer_token {
        Some(token) => spec.client.with_bearer_token(token.clone()),
        None => spec.client.clone(),
    };
    let mut created = Created {
        namespace: plan.namespace.clone(),
        ..Default::default()
    };
    let run = PodRun {
        spec,
        io,
        client: &client,
        layout: &layout,
        variables: &variables,
    };
    let outcome = run.create_and_run(plan, &mut created, deadline);

    // Cleanup runs whatever happened, on its own deadline.
    let grace = spec.runner.kubernetes.termination_grace_period_seconds;
    for failure in &cleanup(&client, &created, grace).failures {
        io.trace.warning(failure);
    }
    finish(io.trace, outcome)
}

/// Checks the variables and plans the pod; what the job did wrong fails it as a script
/// failure before anything exists in the cluster.
fn plan(
    spec: &JobSpec,
    trace: &TraceWriter,
    variables: &[JobVariable],
) -> Result<PodPlan, JobOutcome> {
    script::check_values(variables)
        .map_err(|message| failed(FailureKind::Script, None, message))?;
    for notice in script::unexported(variables)
        .iter()
        .chain(&script::short_masks(variables))
    {
        trace.warning(notice);
    }
    let input = PodInput {
        runner: spec.runner,
        job: spec.job,
        variables,
        concurrent_id: spec.concurrent_id,
    };
    let plan =
        plan_pod(&input).map_err(|err| failed(FailureKind::Script, None, err.to_string()))?;
    for notice in &plan.notices {
        trace.say(notice);
    }
    Ok(plan)
}

/// One job's run inside its pod; the file stages live in [`super::file_stages`].
pub(super) struct PodRun<'a> {
    pub(super) spec: &'a JobSpec<'a>,
    pub(super) io: &'a JobIo<'a>,
    pub(super) client: &'a Client,
    pub(super) layout: &'a PodLayout,
    pub(super) variables: &'a [JobVariable],
}

impl PodRun<'_> {
    fn create_and_run(
        &self,
        plan: PodPlan,
        created: &mut Created,
        deadline: Instant,
    ) -> JobOutcome {
        let trace = self.io.trace;
        let ns = plan.namespace.clone();
        trace.say(&format!("Using Kubernetes namespace: {ns}"));
        let pod = match self.create_objects(plan, created) {
            Ok(pod) => pod,
            Err(message) => return failed(FailureKind::System, None, message),
        };
        let supervisor = Supervisor::new(deadline);
        std::thread::scope(|scope| {
            scope.spawn(|| supervisor.watchdog(self.io.cancel, self.io.shutdown));
            let outcome = self.wait_and_run(&ns, &pod, &supervisor);
            supervisor.finish();
            outcome
        })
    }

    fn create_objects(&self, plan: PodPlan, created: &mut Created) -> Result<String, String> {
        let ns = plan.namespace.as_str();
        let mut pod = plan.pod;
        for secret in &plan.secrets {
            let answer = self
                .client
                .create_secret(ns, secret)
                .map_err(|err| format!("creating the registry credentials secret: {err}"))?;
            let name = object_name(&answer);
            created.secrets.push(name.clone());
            use_created_secret(&mut pod, secret, &name);
        }
        let answer = self
            .client
            .create_pod(ns, &pod)
            .map_err(|err| format!("creating the pod: {err}"))?;
        let name = object_name(&answer);
        if name.is_empty() {
            return Err("the API answered the pod create without a pod name".to_string());
        }
        created.pod = Some(name.clone());
        self.own_secrets(ns, &answer, &created.secrets);
        Ok(name)
    }

    /// Makes the pod the owner of the job's secrets, so the cluster removes them with it even
    /// if this process dies before cleanup; cleanup still deletes them, so a failure here is
    /// only a warning.
    fn own_secrets(&self, ns: &str, pod: &Value, secrets: &[String]) {
        let Some(owner) = owner_reference(pod) else {
            return;
        };
        for secret in secrets {
            if let Err(err) = self.client.set_secret_owner(ns, secret, &owner) {
                log::warn!("cannot make pod the owner of secret {ns}/{secret}: {err}");
            }
        }
    }

    fn wait_and_run(&self, ns: &str, pod: &str, supervisor: &Supervisor) -> JobOutcome {
        let trace = self.io.trace;
        let k8s = &self.spec.runner.kubernetes;
        let wait = WaitFor {
            client: self.client,
            namespace: ns,
            pod,
            poll_interval: k8s.poll_interval,
            poll_timeout: k8s.poll_timeout,
        };
        trace.say(&format!("Waiting for pod {ns}/{pod} to be running..."));
        if let Err(err) = wait_for_pod(&wait, trace, &supervisor.signal()) {
            return self.wait_failure(err, supervisor);
        }
        trace.say(&format!("Running on {pod} via {}...", hostname()));
        std::thread::scope(|scope| {
            scope.spawn(|| supervisor.monitor(self.client, ns, pod, k8s.poll_interval));
            let target = PodTarget {
                client: self.client,
                namespace: ns,
                pod,
                scripts_dir: &self.layout.scripts_dir,
            };
            let outcome = self.run_stages(&target, supervisor);
            supervisor.finish();
            outcome
        })
    }

    fn wait_failure(&self, err: WaitError, supervisor: &Supervisor) -> JobOutcome {
        match err {
            WaitError::Failed(message) => failed(FailureKind::Script, None, message),
            WaitError::Stopped => self.stopped(supervisor.signal().reason(), "waiting for the pod"),
            other => failed(FailureKind::System, None, other.to_string()),
        }
    }

    fn run_stages(&self, target: &PodTarget, supervisor: &Supervisor) -> JobOutcome {
        let ctx = ScriptContext {
            job: self.spec.job,
            variables: self.variables,
            layout: self.layout,
        };
        let fetched = match &self.spec.sources {
            Sources::Git => self.get_sources(target, &ctx, supervisor),
            Sources::Archive(archive) => self.unpack_sources(target, archive, supervisor),
        };
        let prepared = fetched.and_then(|()| self.pre_build(target, &ctx, supervisor));
        let outcome = match prepared {
            Ok(()) => self.user_script(target, &ctx, supervisor),
            Err(outcome) => outcome,
        };
        self.after_script(target, &ctx, supervisor, &outcome);
        self.post_build(target, &ctx, supervisor, outcome)
    }

    fn get_sources(
        &self,
        target: &PodTarget,
        ctx: &ScriptContext,
        supervisor: &Supervisor,
    ) -> Result<(), JobOutcome> {
        let bad_variable =
            |err: script::ScriptError| failed(FailureKind::Script, None, err.to_string());
        let script = script::get_sources(ctx).map_err(bad_variable)?;
        let attempts =
            script::attempts(self.variables, "GET_SOURCES_ATTEMPTS").map_err(bad_variable)?;
        let section = Section::start(
            self.io.trace,
            self.spec.job,
            "get_sources",
            "Getting source from Git repository",
        );
        let mut result = Ok(());
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.io.trace.say(&format!(
                    "Retrying getting sources (attempt {attempt} of {attempts})..."
                ));
            }
            let stage = Stage {
                name: "get_sources",
                container: "helper",
                script: script.clone(),
            };
            result = match run_stage(target, stage, self.io.trace, &supervisor.signal()) {
                Ok(0) => Ok(()),
                Ok(code) => Err(failed(
                    FailureKind::Script,
                    Some(code),
                    format!("getting sources failed with exit code {code}"),
                )),
                Err(err) => return Err(self.stage_error(err, supervisor, "get_sources")),
            };
            if result.is_ok() {
                break;
            }
        }
        section.end();
        result
    }

    fn unpack_sources(
        &self,
        target: &PodTarget,
        archive: &std::path::Path,
        supervisor: &Supervisor,
    ) -> Result<(), JobOutcome> {
        let (trace, job) = (self.io.trace, self.spec.job);
        let section = Section::start(trace, job, "get_sources", "Getting source from an archive");
        let dir = &self.layout.project_dir;
        let result = sources::unpack_archive(target, archive, dir, trace, &supervisor.signal());
        section.end();
        result.map_err(|err| match err {
            SourcesError::Stage(err) => self.stage_error(err, supervisor, "get_sources"),
            SourcesError::Exit(code) => failed(FailureKind::Script, Some(code), err.to_string()),
            SourcesError::Unreadable { ref source, .. } => {
                failed(FailureKind::System, None, format!("{err}: {source}"))
            }
        })
    }

    fn user_script(
        &self,
        target: &PodTarget,
        ctx: &ScriptContext,
        supervisor: &Supervisor,
    ) -> JobOutcome {
        let commands: Vec<String> = self
            .spec
            .job
            .steps
            .iter()
            .filter(|step| step.name != "after_script")
            .flat_map(|step| step.script.iter().cloned())
            .collect();
        let section = Section::start(
            self.io.trace,
            self.spec.job,
            "step_script",
            "Executing \"step_script\" stage of the job script",
        );
        let stage = Stage {
            name: "step_script",
            container: "build",
            script: script::user_step(ctx, &commands),
        };
        let result = run_stage(target, stage, self.io.trace, &supervisor.signal());
        section.end();
        match result {
            Ok(0) => JobOutcome::Success,
            // A script killed with its pod (deleted, evicted, a container gone) is no script
            // failure, even when its exit code arrives before the pod monitor sees why.
            Ok(code) => match supervisor.pod_problem(target.client, target.namespace, target.pod) {
                Some(message) => failed(FailureKind::System, None, message),
                None => failed(FailureKind::Script, Some(code), format!("exit code {code}")),
            },
            Err(err) => self.stage_error(err, supervisor, "step_script"),
        }
    }

    fn after_script(
        &self,
        target: &PodTarget,
        ctx: &ScriptContext,
        supervisor: &Supervisor,
        outcome: &JobOutcome,
    ) {
        let Some(step) = self
            .spec
            .job
            .steps
            .iter()
            .find(|s| s.name == "after_script")
        else {
            return;
        };
        if step.script.is_empty() || step.when == When::Manual {
            return;
        }
        let reason = supervisor.signal().reason();
        if matches!(
            reason,
            Some(StopReason::PodBroken(_)) | Some(StopReason::Shutdown)
        ) {
            return;
        }
        let status = match outcome {
            JobOutcome::Success => "success",
            JobOutcome::Failed {
                kind: FailureKind::Canceled,
                ..
            } => "canceled",
            JobOutcome::Failed { .. } => "failed",
        };
        let signal = supervisor.begin_phase(Instant::now() + AFTER_SCRIPT_TIMEOUT);
        let section = Section::start(
            self.io.trace,
            self.spec.job,
            "after_script",
            "Running after_script",
        );
        let stage = Stage {
            name: "after_script",
            container: "build",
            script: script::after_step(ctx, &step.script, status),
        };
        match run_stage(target, stage, self.io.trace, &signal) {
            Ok(0) => {}
            Ok(code) => self.io.trace.warning(&format!(
                "after_script failed with exit code {code} (ignored)"
            )),
            Err(err) => self
                .io
                .trace
                .warning(&format!("after_script did not finish: {err} (ignored)")),
        }
        section.end();
    }

    pub(super) fn stage_error(
        &self,
        err: StageError,
        supervisor: &Supervisor,
        stage: &str,
    ) -> JobOutcome {
        match err {
            StageError::Aborted => self.stopped(supervisor.signal().reason(), stage),
            StageError::Exec(err) => failed(
                FailureKind::System,
                None,
                format!("stage {stage} ended without an exit status: {err}"),
            ),
        }
    }

    fn stopped(&self, reason: Option<StopReason>, during: &str) -> JobOutcome {
        match reason {
            Some(StopReason::Timeout) => failed(
                FailureKind::Timeout,
                None,
                format!(
                    "execution took longer than {}s (during {during})",
                    self.spec.job.timeout_secs
                ),
            ),
            Some(StopReason::Canceled { .. }) => {
                failed(FailureKind::Canceled, None, "canceled".into())
            }
            Some(StopReason::PodBroken(message)) => failed(FailureKind::System, None, message),
            Some(StopReason::Shutdown) => failed(
                FailureKind::System,
                None,
                "the runner is shutting down".into(),
            ),
            None => failed(
                FailureKind::System,
                None,
                format!("{during} was interrupted"),
            ),
        }
    }
}

/// A trace section (`section_start`/`section_end` markers when the coordinator asks for them).
struct Section<'a> {
    trace: &'a TraceWriter,
    name: &'static str,
    markers: bool,
}

impl<'a> Section<'a> {
    fn start(trace: &'a TraceWriter, job: &Job, name: &'static str, title: &str) -> Section<'a> {
        if job.trace_sections {
            trace.raw(format!("section_start:{}:{name}\r\x1b[0K", unix_now()).as_bytes());
        }
        trace.notice(title);
        Section {
            trace,
            name,
            markers: job.trace_sections,
        }
    }

    fn end(self) {
        if self.markers {
            self.trace
                .raw(format!("section_end:{}:{}\r\x1b[0K", unix_now(), self.name).as_bytes());
        }
    }
}

fn header(spec: &JobSpec, trace: &TraceWriter) {
    trace.notice(&format!("Running with alloy-runner {RUNNER_VERSION}"));
    trace.say(&format!("  on {}", spec.runner.name));
    trace.notice("Preparing the \"kubernetes\" executor");
}

fn finish(trace: &TraceWriter, outcome: JobOutcome) -> JobOutcome {
    match &outcome {
        JobOutcome::Success => trace.notice("Job succeeded"),
        JobOutcome::Failed { message, .. } => trace.error(&format!("ERROR: Job failed: {message}")),
    }
    outcome
}

pub(super) fn failed(kind: FailureKind, exit_code: Option<i32>, message: String) -> JobOutcome {
    JobOutcome::Failed {
        kind,
        exit_code,
        message,
    }
}

fn object_name(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".to_string())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
