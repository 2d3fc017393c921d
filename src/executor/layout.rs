//! Where things live inside the job's pod: the builds folder, the project checkout, the
//! runner's scripts volume.

/// Mount point of the runner's own `scripts` emptyDir, outside the builds folder so a
/// `git clean` never touches it.
pub const SCRIPTS_DIR: &str = "/alloy-runner";

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
}

impl PodLayout {
    /// The layout for a job whose repository is `repo_url`, checked out under `builds_dir`.
    pub fn new(builds_dir: &str, repo_url: &str) -> PodLayout {
        let builds_dir = builds_dir.trim_end_matches('/');
        let builds_dir = if builds_dir.is_empty() {
            "/"
        } else {
            builds_dir
        };
        let project = project_path(repo_url);
        PodLayout {
            builds_dir: builds_dir.to_string(),
            project_dir: format!("{}/{project}", builds_dir.trim_end_matches('/')),
            scripts_dir: SCRIPTS_DIR.to_string(),
        }
    }

    /// Path of a file in the scripts volume.
    pub fn script_path(&self, file: &str) -> String {
        format!("{}/{file}", self.scripts_dir)
    }
}

/// The `group/project` part of a repository URL, reduced to safe path segments: no
/// credentials, no `.git`, no `..`. Falls back to `project` when nothing usable remains.
pub fn project_path(repo_url: &str) -> String {
    let without_scheme = repo_url
        .split_once("://")
        .map_or(repo_url, |(_, rest)| rest);
    let path = if repo_url.contains("://") {
        without_scheme.split_once('/').map_or("", |(_, path)| path)
    } else {
        without_scheme
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .map(|s| sanitize_segment(s.strip_suffix(".git").unwrap_or(s)))
        .filter(|s| !s.is_empty())
        .collect();
    if segments.is_empty() {
        "project".to_string()
    } else {
        segments.join("/")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_dir_is_builds_dir_plus_repository_path() {
        let layout = PodLayout::new(
            "/builds",
            "https://gitlab-ci-token:tok@git.example.com/acme/my_app.git",
        );
        assert_eq!(layout.project_dir, "/builds/acme/my_app");
        assert_eq!(layout.script_path("step.sh"), "/alloy-runner/step.sh");
    }

    #[test]
    fn local_paths_and_odd_segments_stay_inside_the_builds_dir() {
        assert_eq!(project_path("/srv/git/../demo.git"), "srv/git/demo");
        assert_eq!(project_path("file:///tmp/x/repo"), "tmp/x/repo");
        assert_eq!(project_path("https://h/"), "project");
        assert_eq!(PodLayout::new("/b/", "https://h/a/b").project_dir, "/b/a/b");
    }
}
