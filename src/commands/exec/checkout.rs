//! The local git checkout `exec` runs a job of: its commit and branch, and its working tree
//! (uncommitted changes to tracked files included) packed as a tar archive for the pod.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A git checkout on this machine.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// The top-level folder of the working tree.
    pub root: PathBuf,
    /// The commit `HEAD` points at.
    pub sha: String,
    /// The checked-out branch, `HEAD` when detached.
    pub branch: String,
}

/// Why git could not tell about or pack the checkout.
#[derive(Debug)]
pub enum CheckoutError {
    /// git could not be started.
    Spawn { dir: PathBuf, source: io::Error },
    /// git ran and refused; `message` is what it printed on stderr.
    Git {
        dir: PathBuf,
        command: String,
        message: String,
    },
}

impl fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckoutError::Spawn { dir, .. } => {
                write!(f, "cannot run git in {}", dir.display())
            }
            CheckoutError::Git {
                dir,
                command,
                message,
            } => write!(f, "`git {command}` failed in {}: {message}", dir.display()),
        }
    }
}

impl std::error::Error for CheckoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckoutError::Spawn { source, .. } => Some(source),
            CheckoutError::Git { .. } => None,
        }
    }
}

impl Checkout {
    /// The checkout that `dir` is in (`dir` may be any folder of its working tree).
    pub fn open(dir: &Path) -> Result<Checkout, CheckoutError> {
        let root = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
        let sha = git(&root, &["rev-parse", "--verify", "HEAD^{commit}"])?;
        let branch = git(&root, &["rev-parse", "--abbrev-ref", "HEAD"])?;
        Ok(Checkout { root, sha, branch })
    }

    /// The folder's name, for the project name.
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "project".to_string())
    }

    /// A commit of the working tree as it is now: `git stash create` when tracked files have
    /// changes (the stash list and the files are left alone), else `HEAD`.
    pub fn snapshot(&self) -> Result<String, CheckoutError> {
        // The commit is never referenced, so its identity does not matter; a fixed one keeps
        // `stash create` working where git has none configured.
        let identity = [
            "-c",
            "user.name=alloy-runner",
            "-c",
            "user.email=alloy-runner@localhost",
        ];
        let stash = git(
            &self.root,
            &[&identity[..], &["stash", "create"][..]].concat(),
        )?;
        Ok(if stash.is_empty() {
            self.sha.clone()
        } else {
            stash
        })
    }

    /// Files that are neither tracked nor ignored: a snapshot leaves them out.
    pub fn untracked(&self) -> Result<Vec<String>, CheckoutError> {
        let list = git(&self.root, &["ls-files", "--others", "--exclude-standard"])?;
        Ok(list.lines().map(str::to_string).collect())
    }

    /// Writes the tree of `commit` as an uncompressed tar file at `dest`. The tree rather than
    /// the commit is packed, so the archive has no pax global header for older tars to trip on.
    pub fn archive(&self, commit: &str, dest: &Path) -> Result<(), CheckoutError> {
        let output = format!("--output={}", dest.display());
        let tree = format!("{commit}^{{tree}}");
        git(&self.root, &["archive", "--format=tar", &output, &tree]).map(drop)
    }
}

/// Runs `git args` in `dir` and returns its stdout, trimmed.
fn git(dir: &Path, args: &[&str]) -> Result<String, CheckoutError> {
    log::debug!("running git {} in {}", args.join(" "), dir.display());
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| CheckoutError::Spawn {
            dir: dir.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr.trim();
        return Err(CheckoutError::Git {
            dir: dir.to_path_buf(),
            command: args.join(" "),
            message: if message.is_empty() {
                output.status.to_string()
            } else {
                message.replace('\n', "; ")
            },
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh repository with one commit on `main`, removed on drop.
    struct Repo(PathBuf);

    impl Repo {
        fn new(tag: &str) -> Repo {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!("alloy-checkout-{tag}-{}-{nanos}", std::process::id());
            let path = std::env::temp_dir().join(name);
            std::fs::create_dir_all(path.join("sub")).expect("temp folder");
            std::fs::write(path.join("a.txt"), "committed\n").expect("file");
            std::fs::write(path.join("sub/keep"), "").expect("file");
            let repo = Repo(path);
            repo.git(&["init", "-q", "-b", "main"]);
            repo.git(&["add", "-A"]);
            repo.git(&[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@localhost",
                "commit",
                "-qm",
                "c",
            ]);
            repo
        }

        fn git(&self, args: &[&str]) -> String {
            git(&self.0, args).expect("git works")
        }

        fn unpacked(&self, commit: &str, file: &str) -> String {
            let checkout = Checkout::open(&self.0).expect("checkout");
            let tar = self.0.join("../").join(format!("{}.tar", self.name()));
            checkout.archive(commit, &tar).expect("archive written");
            let listed = Command::new("tar")
                .arg("-xOf")
                .arg(&tar)
                .arg(file)
                .output()
                .expect("tar runs");
            std::fs::remove_file(&tar).ok();
            String::from_utf8_lossy(&listed.stdout).into_owned()
        }

        fn name(&self) -> String {
            self.0
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        }
    }

    impl Drop for Repo {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    #[test]
    fn opens_from_a_subfolder_with_branch_and_head() {
        let repo = Repo::new("open");
        let checkout = Checkout::open(&repo.0.join("sub")).expect("checkout");
        assert_eq!(
            checkout.root.canonicalize().ok(),
            repo.0.canonicalize().ok()
        );
        assert_eq!(checkout.branch, "main");
        assert_eq!(checkout.sha, repo.git(&["rev-parse", "HEAD"]));
        assert_eq!(checkout.name(), repo.name());
    }

    #[test]
    fn the_archive_starts_with_a_file_not_a_pax_header() {
        let repo = Repo::new("pax");
        let checkout = Checkout::open(&repo.0).expect("checkout");
        let tar = repo.0.join("../").join(format!("{}.tar", repo.name()));
        checkout
            .archive(&checkout.sha, &tar)
            .expect("archive written");
        let bytes = std::fs::read(&tar).expect("archive readable");
        std::fs::remove_file(&tar).ok();
        // The first header's name field, then its type flag at offset 156.
        let name = bytes[..100].split(|b| *b == 0).next().unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(name), "a.txt");
        assert_eq!(bytes[156], b'0');
    }

    #[test]
    fn clean_tree_snapshots_head() {
        let repo = Repo::new("clean");
        let checkout = Checkout::open(&repo.0).expect("checkout");
        assert_eq!(checkout.snapshot().expect("snapshot"), checkout.sha);
    }

    #[test]
    fn snapshot_carries_uncommitted_changes_and_leaves_the_tree_alone() {
        let repo = Repo::new("dirty");
        std::fs::write(repo.0.join("a.txt"), "changed\n").expect("edit");
        std::fs::write(repo.0.join("new.txt"), "untracked\n").expect("new file");
        let checkout = Checkout::open(&repo.0).expect("checkout");
        let snapshot = checkout.snapshot().expect("snapshot");
        assert_ne!(snapshot, checkout.sha);
        assert_eq!(repo.unpacked(&snapshot, "a.txt"), "changed\n");
        assert_eq!(repo.unpacked(&checkout.sha, "a.txt"), "committed\n");
        assert_eq!(checkout.untracked().expect("untracked"), ["new.txt"]);
        assert_eq!(
            std::fs::read_to_string(repo.0.join("a.txt"))
                .ok()
                .as_deref(),
            Some("changed\n")
        );
        assert_eq!(repo.git(&["stash", "list"]), "");
    }

    #[test]
    fn a_folder_outside_any_checkout_is_refused_with_git_message() {
        let dir = std::env::temp_dir().join(format!("alloy-not-git-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp folder");
        let err = Checkout::open(&dir).expect_err("not a checkout");
        std::fs::remove_dir_all(&dir).ok();
        let text = err.to_string();
        assert!(
            text.starts_with("`git rev-parse --show-toplevel` failed in"),
            "{text}"
        );
        assert!(text.contains("not a git repository"), "{text}");
    }
}
