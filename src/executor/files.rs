//! The helper container's file stages: restore and save the cache, download the artifacts of
//! earlier jobs, archive and upload this job's artifacts. Each is a script that calls the
//! runner's own helper verbs (the runner copies its binary into the pod for that).

use crate::coordinator::job::{CachePolicy, Job, When};
use crate::executor::labels::expand;
use crate::executor::script::{attempts, quote, ScriptContext, ScriptError};
use crate::executor::variables::lookup;
use crate::helper::cache_key_path;

/// Where the helper verbs find the runner binary inside the pod.
pub fn helper_binary(ctx: &ScriptContext) -> String {
    ctx.layout.helper_bin.clone()
}

/// Whether the job has any file stage, so the helper binary must be copied into the pod.
pub fn needs_helper_binary(job: &Job) -> bool {
    !job.cache.is_empty() || !job.artifacts.is_empty() || !job.dependencies.is_empty()
}

/// A cache entry resolved for this job: its safe relative key path and what to archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCache {
    pub key_path: String,
    pub policy: CachePolicy,
    pub paths: Vec<String>,
    pub untracked: bool,
}

/// Resolves the job's cache entries: keys expanded from the variables (an empty key means
/// `<job name>/<ref>`) and turned into safe relative paths.
pub fn resolve_caches(ctx: &ScriptContext) -> Result<Vec<ResolvedCache>, String> {
    let job = ctx.job;
    job.cache
        .iter()
        .filter(|cache| !cache.paths.is_empty() || cache.untracked)
        .map(|cache| {
            let key = if cache.key.is_empty() {
                format!("{}/{}", job.job_info.name, job.git_info.ref_name)
            } else {
                cache.key.clone()
            };
            let expanded = expand(&key, |name| {
                Ok::<_, String>(lookup(ctx.variables, name).unwrap_or_default().to_string())
            })?;
            let key_path = cache_key_path(&expanded)
                .map_err(|err| format!("cache key {expanded:?} cannot be used: {err}"))?;
            Ok(ResolvedCache {
                key_path,
                policy: cache.policy,
                paths: cache.paths.clone(),
                untracked: cache.untracked,
            })
        })
        .collect()
}

/// The command that copies `len` bytes of the runner binary from stdin into the pod.
pub fn install_command(ctx: &ScriptContext, len: u64) -> Vec<String> {
    let bin = helper_binary(ctx);
    let program = format!(
        "set -e; mkdir -p \"$(dirname \"$0\")\"; head -c {len} > \"$0.tmp\"; \
         chmod 755 \"$0.tmp\"; mv -f \"$0.tmp\" \"$0\""
    );
    vec!["sh".into(), "-c".into(), program, bin]
}

/// Restores each cache entry that pulls; a missing cache is a notice, not a failure.
pub fn restore_cache(
    ctx: &ScriptContext,
    cache_dir: &str,
    caches: &[ResolvedCache],
) -> Result<Option<String>, ScriptError> {
    let pulls: Vec<&ResolvedCache> = caches
        .iter()
        .filter(|c| c.policy != CachePolicy::Push)
        .collect();
    if pulls.is_empty() {
        return Ok(None);
    }
    let tries = attempts(ctx.variables, "RESTORE_CACHE_ATTEMPTS")?;
    let mut s = head(ctx);
    for cache in pulls {
        let file = quote(&cache_file(cache_dir, cache));
        let key = quote(&cache.key_path);
        s.push_str(&format!(
            "if [ -f {file} ]; then\n  echo \"Restoring cache for key \"{key}\"...\"\n  \
             retry {tries} \"$BIN\" helper extract --archive {file} --dest \"$CI_PROJECT_DIR\"\n\
             else\n  echo \"No cache found for key \"{key}\", continuing without it\"\nfi\n"
        ));
    }
    Ok(Some(s))
}

/// Saves each cache entry that pushes; run only when the job succeeded.
pub fn save_cache(
    ctx: &ScriptContext,
    cache_dir: &str,
    caches: &[ResolvedCache],
) -> Option<String> {
    let pushes: Vec<&ResolvedCache> = caches
        .iter()
        .filter(|c| c.policy != CachePolicy::Pull)
        .collect();
    if pushes.is_empty() {
        return None;
    }
    let mut s = head(ctx);
    for cache in pushes {
        let file = cache_file(cache_dir, cache);
        s.push_str(&format!(
            "echo \"Saving cache for key \"{}\"...\"\n",
            quote(&cache.key_path)
        ));
        s.push_str(&format!("mkdir -p \"$(dirname {})\"\n", quote(&file)));
        let archive = archive_command(&cache.paths, cache.untracked, &format!("{file}.tmp"));
        s.push_str(&format!(
            "{archive} && mv -f {} {}\n",
            quote(&format!("{file}.tmp")),
            quote(&file)
        ));
    }
    Some(s)
}

/// Downloads and extracts the artifacts of each dependency, in payload order.
pub fn download_artifacts(ctx: &ScriptContext, url: &str) -> Result<Option<String>, ScriptError> {
    let job = ctx.job;
    if job.dependencies.is_empty() {
        return Ok(None);
    }
    let tries = attempts(ctx.variables, "ARTIFACT_DOWNLOAD_ATTEMPTS")?;
    let mut s = head(ctx);
    for dep in job
        .dependencies
        .iter()
        .filter(|dep| dep.artifacts_filename.is_none())
    {
        s.push_str(&format!(
            "echo {}\n",
            quote(&format!(
                "{} (job {}) has no artifacts; nothing to download",
                dep.name, dep.id
            ))
        ));
    }
    for dep in job
        .dependencies
        .iter()
        .filter(|dep| dep.artifacts_filename.is_some())
    {
        let token_file = ctx.layout.script_path(&format!("tokens/job-{}", dep.id));
        let zip = ctx
            .layout
            .script_path(&format!("dependency-{}.zip", dep.id));
        write_secret_file(&mut s, &token_file, dep.token.expose());
        s.push_str(&format!(
            "echo \"Downloading artifacts of {} (job {})...\"\n",
            quote(&dep.name),
            dep.id
        ));
        s.push_str(&format!(
            "retry {tries} \"$BIN\" helper download-artifacts --url {} --job-id {} \
             --token-file {} --out {}\n",
            quote(url),
            dep.id,
            quote(&token_file),
            quote(&zip)
        ));
        s.push_str(&format!(
            "\"$BIN\" helper extract --archive {} --dest \"$CI_PROJECT_DIR\"\nrm -f {0}\n",
            quote(&zip)
        ));
    }
    Ok(Some(s))
}

/// Archives and uploads the artifacts that apply to a job that `succeeded` (or not).
pub fn upload_artifacts(ctx: &ScriptContext, url: &str, succeeded: bool) -> Option<String> {
    let job = ctx.job;
    let wanted: Vec<_> = job
        .artifacts
        .iter()
        .filter(|a| applies(a.when, succeeded))
        .filter(|a| !a.paths.is_empty() || a.untracked)
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let mut s = head(ctx);
    let token_file = ctx.layout.script_path("tokens/job");
    write_secret_file(&mut s, &token_file, job.token.expose());
    for (index, artifact) in wanted.into_iter().enumerate() {
        let zip = ctx.layout.script_path(&format!("artifacts-{index}.zip"));
        s.push_str("echo 'Uploading artifacts...'\n");
        s.push_str(&archive_command(&artifact.paths, artifact.untracked, &zip));
        s.push('\n');
        let mut upload = format!(
            "\"$BIN\" helper upload-artifacts --url {} --job-id {} --token-file {} --file {}",
            quote(url),
            job.id,
            quote(&token_file),
            quote(&zip)
        );
        if let Some(name) = &artifact.name {
            upload.push_str(&format!(" --name {}", quote(name)));
        }
        if let Some(expire_in) = &artifact.expire_in {
            upload.push_str(&format!(" --expire-in {}", quote(expire_in)));
        }
        s.push_str(&upload);
        s.push('\n');
    }
    Some(s)
}

/// Whether something marked `when` applies to a job that `succeeded`.
pub fn applies(when: When, succeeded: bool) -> bool {
    match when {
        When::OnSuccess => succeeded,
        When::OnFailure => !succeeded,
        When::Always => true,
        When::Manual => false,
    }
}

fn head(ctx: &ScriptContext) -> String {
    let mut s = String::from("# file stage written by alloy-runner\nset -e\n");
    s.push_str(&format!("BIN={}\n", quote(&helper_binary(ctx))));
    s.push_str(&format!(
        "CI_PROJECT_DIR={}\n",
        quote(&ctx.layout.project_dir)
    ));
    s.push_str("mkdir -p \"$CI_PROJECT_DIR\" && cd \"$CI_PROJECT_DIR\"\n");
    s.push_str(
        "retry() { n=$1; shift; i=1; until \"$@\"; do \
         [ \"$i\" -ge \"$n\" ] && return 1; i=$((i+1)); \
         echo \"Retrying ($i of $n)...\"; sleep 1; done; }\n",
    );
    s
}

fn archive_command(paths: &[String], untracked: bool, out: &str) -> String {
    let mut command = String::from("\"$BIN\" helper archive --base \"$CI_PROJECT_DIR\"");
    for path in paths {
        command.push_str(&format!(" --path {}", quote(path)));
    }
    if untracked {
        command.push_str(" --untracked");
    }
    command.push_str(&format!(" --out {}", quote(out)));
    command
}

fn write_secret_file(s: &mut String, path: &str, value: &str) {
    s.push_str(&format!(
        "mkdir -p \"$(dirname {p})\"; (umask 077; printf '%s' {} > {p})\n",
        quote(value),
        p = quote(path)
    ));
}

fn cache_file(cache_dir: &str, cache: &ResolvedCache) -> String {
    format!(
        "{}/{}/cache.zip",
        cache_dir.trim_end_matches('/'),
        cache.key_path
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_without_artifacts_is_skipped_with_a_notice() {
        use crate::coordinator::job::Dependency;
        use crate::executor::layout::PodLayout;
        use crate::secret::Secret;
        let job = Job {
            dependencies: vec![
                Dependency {
                    id: 7,
                    name: "lint".into(),
                    ..Default::default()
                },
                Dependency {
                    id: 8,
                    name: "build".into(),
                    token: Secret::new("dep-token"),
                    artifacts_filename: Some("artifacts.zip".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let layout = PodLayout {
            builds_dir: "/builds".into(),
            project_dir: "/builds/a/b".into(),
            scripts_dir: "/alloy-runner/scripts".into(),
            helper_bin: "/alloy-runner/scripts/bin/alloy-runner".into(),
        };
        let ctx = ScriptContext {
            job: &job,
            variables: &[],
            layout: &layout,
        };
        let script = download_artifacts(&ctx, "https://ci.example")
            .unwrap()
            .unwrap();
        assert!(script.contains("'lint (job 7) has no artifacts; nothing to download'"));
        assert!(!script.contains("--job-id 7 "));
        assert!(script.contains("--job-id 8 "));
    }

    #[test]
    fn artifacts_apply_by_when_and_result() {
        assert!(applies(When::OnSuccess, true));
        assert!(!applies(When::OnSuccess, false));
        assert!(applies(When::OnFailure, false));
        assert!(!applies(When::OnFailure, true));
        assert!(applies(When::Always, false));
    }
}
