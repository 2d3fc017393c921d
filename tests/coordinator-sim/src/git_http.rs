//! Serves pipeline repositories over git's "dumb" HTTP protocol (static files of the `.git`
//! folder after `git update-server-info`), so job pods clone over the network as they do from a
//! real coordinator, never through a host path a pod cannot see.

use std::path::{Component, Path, PathBuf};

use crate::http::Response;

/// URL path prefix of served repositories: `/git/<index>/<name>.git/...`.
pub const PREFIX: &str = "/git/";

/// The served path of repository `index` named `name`.
pub fn repo_path(index: usize, name: &str) -> String {
    format!("{PREFIX}{index}/{name}.git")
}

/// Prepares `repo` for dumb HTTP (refreshes `info/refs` and `objects/info/packs`).
pub fn prepare(repo: &Path) -> std::io::Result<()> {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .arg("update-server-info")
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "git update-server-info failed in {}",
            repo.display()
        )))
    }
}

/// Answers `GET /git/<index>/<name>.git/<file>` from the repositories in `repos`.
pub fn serve(repos: &[PathBuf], path: &str) -> Response {
    let Some((index, file)) = split(path) else {
        return Response::text(404, "no such repository");
    };
    let Some(repo) = repos.get(index) else {
        return Response::text(404, "no such repository");
    };
    let git_dir = repo.join(".git");
    let target = git_dir.join(file);
    match std::fs::read(&target) {
        Ok(bytes) => Response::bytes(200, "application/octet-stream", bytes),
        Err(_) => Response::text(404, "not found"),
    }
}

/// `(index, relative file)` of a served path; `None` for anything that leaves the `.git` folder.
fn split(path: &str) -> Option<(usize, PathBuf)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (index, rest) = rest.split_once('/')?;
    let (_, file) = rest.split_once(".git/")?;
    let file = PathBuf::from(file);
    let safe = file.components().all(|c| matches!(c, Component::Normal(_)));
    Some((index.parse().ok()?, file)).filter(|_| safe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_git_folder() {
        assert_eq!(
            split("/git/0/repo.git/info/refs"),
            Some((0, PathBuf::from("info/refs")))
        );
        assert_eq!(split("/git/0/repo.git/../config"), None);
        assert_eq!(split("/git/x/repo.git/HEAD"), None);
    }
}
