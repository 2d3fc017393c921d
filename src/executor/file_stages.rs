//! The helper container's file stages inside a job's run: copy the runner binary into the pod,
//! restore the cache and download dependencies before the script; save the cache and upload
//! artifacts after it.

use std::fs::File;
use std::time::{Duration, Instant};

use crate::executor::files::{self, ResolvedCache};
use crate::executor::job::{failed, FailureKind, JobOutcome, PodRun};
use crate::executor::script::ScriptContext;
use crate::executor::stage::{run_command, run_stage, PodTarget, Stage};
use crate::executor::stop::StopReason;
use crate::executor::supervisor::Supervisor;

/// How long the post-build stages (cache save, artifact upload) may take, on their own deadline.
pub const POST_BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

impl PodRun<'_> {
    /// Copies the helper binary, restores the cache and downloads dependencies, when the job
    /// has any of these.
    pub(super) fn pre_build(
        &self,
        target: &PodTarget,
        ctx: &ScriptContext,
        supervisor: &Supervisor,
    ) -> Result<(), JobOutcome> {
        if !files::needs_helper_binary(self.spec.job) {
            return Ok(());
        }
        self.install_helper(target, ctx, supervisor)?;
        let caches = self.caches(ctx)?;
        if let Some(cache_dir) = self.cache_dir(&caches) {
            let script = files::restore_cache(ctx, cache_dir, &caches).map_err(config_failure)?;
            if let Some(script) = script {
                self.helper_stage(
                    target,
                    "restore_cache",
                    "Restoring cache",
                    script,
                    supervisor,
                )
                .unwrap_or_else(|message| self.io.trace.warning(&message));
            }
        }
        let url = self.spec.runner.url.as_deref().unwrap_or_default();
        if let Some(script) = files::download_artifacts(ctx, url).map_err(config_failure)? {
            let title = "Downloading artifacts";
            self.helper_stage(target, "download_artifacts", title, script, supervisor)
                .map_err(|message| failed(FailureKind::System, None, message))?;
        }
        Ok(())
    }

    /// Saves the cache (after success) and uploads the artifacts that apply; a failed upload
    /// fails a job that had succeeded.
    pub(super) fn post_build(
        &self,
        target: &PodTarget,
        ctx: &ScriptContext,
        supervisor: &Supervisor,
        outcome: JobOutcome,
    ) -> JobOutcome {
        let reason = supervisor.signal().reason();
        let pod_gone = matches!(
            reason,
            Some(StopReason::PodBroken(_) | StopReason::Shutdown)
        );
        if pod_gone || !files::needs_helper_binary(self.spec.job) {
            return outcome;
        }
        supervisor.begin_phase(Instant::now() + POST_BUILD_TIMEOUT);
        let succeeded = outcome == JobOutcome::Success;
        if succeeded {
            self.save_cache(target, ctx, supervisor);
        }
        let url = self.spec.runner.url.as_deref().unwrap_or_default();
        let Some(script) = files::upload_artifacts(ctx, url, succeeded) else {
            return outcome;
        };
        match self.helper_stage(
            target,
            "upload_artifacts",
            "Uploading artifacts",
            script,
            supervisor,
        ) {
            Ok(()) => outcome,
            Err(message) if succeeded => failed(FailureKind::System, None, message),
            Err(message) => {
                self.io.trace.warning(&message);
                outcome
            }
        }
    }

    fn save_cache(&self, target: &PodTarget, ctx: &ScriptContext, supervisor: &Supervisor) {
        let caches = match self.caches(ctx) {
            Ok(caches) => caches,
            Err(_) => return,
        };
        let Some(cache_dir) = self.cache_dir(&caches) else {
            return;
        };
        if let Some(script) = files::save_cache(ctx, cache_dir, &caches) {
            self.helper_stage(target, "archive_cache", "Saving cache", script, supervisor)
                .unwrap_or_else(|message| self.io.trace.warning(&message));
        }
    }

    /// Copies this binary into the pod's scripts volume, for the helper verbs.
    fn install_helper(
        &self,
        target: &PodTarget,
        ctx: &ScriptContext,
        supervisor: &Supervisor,
    ) -> Result<(), JobOutcome> {
        let system = |message: String| failed(FailureKind::System, None, message);
        let exe = std::env::current_exe()
            .map_err(|err| system(format!("cannot find the runner's own binary: {err}")))?;
        let file = File::open(&exe)
            .map_err(|err| system(format!("cannot read {}: {err}", exe.display())))?;
        let len = file
            .metadata()
            .map_err(|err| system(format!("cannot read {}: {err}", exe.display())))?
            .len();
        let command = files::install_command(ctx, len);
        let signal = supervisor.signal();
        match run_command(
            target,
            "helper",
            command,
            Box::new(file),
            self.io.trace,
            &signal,
        ) {
            Ok(0) => Ok(()),
            Ok(code) => Err(system(format!(
                "copying the helper binary into the pod failed with exit code {code}"
            ))),
            Err(err) => Err(self.stage_error(err, supervisor, "install_helper")),
        }
    }

    fn caches(&self, ctx: &ScriptContext) -> Result<Vec<ResolvedCache>, JobOutcome> {
        files::resolve_caches(ctx).map_err(|message| failed(FailureKind::Script, None, message))
    }

    /// The cache folder, or `None` with a notice when the job has caches but none is set up.
    fn cache_dir(&self, caches: &[ResolvedCache]) -> Option<&str> {
        if caches.is_empty() {
            return None;
        }
        let dir = self.spec.runner.cache_dir.as_deref();
        if dir.is_none() {
            self.io
                .trace
                .warning("Caching is not configured (no cache_dir); skipping the cache");
        }
        dir
    }

    /// Runs a helper stage; `Err` carries the message for the job log.
    fn helper_stage(
        &self,
        target: &PodTarget,
        name: &'static str,
        title: &str,
        script: String,
        supervisor: &Supervisor,
    ) -> Result<(), String> {
        self.io.trace.notice(title);
        let stage = Stage {
            name,
            container: "helper",
            script,
        };
        match run_stage(target, stage, self.io.trace, &supervisor.signal()) {
            Ok(0) => Ok(()),
            Ok(code) => Err(format!("{name} failed with exit code {code}")),
            Err(err) => Err(format!("{name} did not finish: {err}")),
        }
    }
}

fn config_failure(err: crate::executor::script::ScriptError) -> JobOutcome {
    failed(FailureKind::Script, None, err.to_string())
}
