//! Where things live inside the job's pod: the builds folder, the project checkout, the
//! runner's scripts volume and the helper binary.

use crate::config::RunnerConfig;
use crate::coordinator::job::Job;

/// Mount point of the runner's own `scripts` emptyDir, outside the builds folder so a
/// `git clean` never touches it.
pub const SCRIPTS_DIR: &str = "/alloy-runner/scripts";

/// File name of the runner's binary inside [`SCRIPTS_DIR`]`/bin`.
pub const HELPER_BINARY: &str = "alloy-runner";

/// Default `builds_dir`.
pub const DEFAULT_BUILDS_DIR: &str = "/builds";

/// Paths inside the pod for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLayout {
    /// The builds folder, an emptyDir shared by the build and helper containers.
    pub builds_dir: String,
    /// The project checkout: builds folder + the path of the repository URL.
    pub project_dir: String,
    /// The runner's scripts volume (stage scripts, file variables, the helper binary).
    pub scripts_dir: String,
    /// Where the runner's binary is copied for the helper verbs.
    pub helper_bin: String,
}

impl PodLayout {
    /// The layout of `job` under the runner's `builds_dir` (default `/builds`).
    pub fn for_job(runner: &RunnerConfig, job: &Job) -> PodLayout {
        let builds_dir = match runner.builds_dir.trim_end_matches('/') {
            "" if runner.builds_dir.is_empty() => DEFAULT_BUILDS_DIR,
            "" => "/",
            dir => dir,
        };
        let fallback = format!("project-{}", job.job_info.project_id);
        let project = project_path(job.git_info.repo_url.expose()).unwrap_or(fallback);
        PodLayout {
            builds_dir: builds_dir.to_string(),
            project_dir: join_path(builds_dir, &project),
            scripts_dir: SCRIPTS_DIR.to_string(),
            helper_bin: format!("{SCRIPTS_DIR}/bin/{HELPER_BINARY}"),
        }
    }

    /// Path of a file in the scripts volume.
    pub fn script_path(&self, file: &str) -> String {
        join_path(&self.scripts_dir, file)
    }
}

/// The `group/project` part of a repository URL without `.git` (`https://host/acme/app.git`
/// and `git@host:acme/app.git` give `acme/app`); segments reduced to safe characters, no
/// `.` or `..`. `None` when nothing usable remains.
pub fn project_path(repo_url: &str) -> Option<String> {
    let path = match repo_url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => repo_url.split_once(':').map_or(repo_url, |(_, path)| path),
    };
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !matches!(*s, "" | "." | ".."))
        .map(sanitize_segment)
        .filter(|s| !s.is_empty())
        .collect();
    (!segments.is_empty()).then(|| segments.join("/"))
}

fn sanitize_segment(segment: &str) -> String {
    let cleaned: String = segment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.trim_matches('.').to_string()
}

fn join_path(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_path_is_the_repository_path_without_git() {
        let url = "https://gitlab-ci-token:tok@git.example.com/acme/my_app.git";
        assert_eq!(project_path(url).as_deref(), Some("acme/my_app"));
        assert_eq!(
            project_path("git@host:acme/app.git").as_deref(),
            Some("acme/app")
        );
        assert_eq!(
            project_path("file:///tmp/x/repo").as_deref(),
            Some("tmp/x/repo")
        );
    }

    #[test]
    fn odd_segments_stay_inside_the_builds_dir() {
        assert_eq!(
            project_path("/srv/git/../demo.git").as_deref(),
            Some("srv/git/demo")
        );
        assert_eq!(project_path("https://h/a b/c"), Some("a_b/c".to_string()));
        assert_eq!(project_path("https://h/"), None);
    }
}
