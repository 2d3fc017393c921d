//! Finding what to archive: literal paths, globs and untracked files under the base folder,
//! without following symlinks and without leaving the base folder.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::paths::{check_link_target, relative_pattern};
use super::{glob, ArchiveError};

/// What a collected path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File,
    Dir,
    /// A symlink and its target, already checked to stay inside the base folder.
    Symlink(String),
}

/// Paths to archive, relative to the base folder with `/` separators, sorted so that each
/// folder comes before its content.
pub type Collected = BTreeMap<String, Source>;

/// Walks the base folder for the given patterns and, when `untracked`, the files git does not
/// track; what is skipped is said in `log`.
pub fn collect(
    base: &Path,
    patterns: &[String],
    untracked: bool,
    log: &mut dyn Write,
) -> Result<Collected, ArchiveError> {
    let mut collector = Collector {
        base,
        found: Collected::new(),
        log,
    };
    for pattern in patterns {
        collector.add_pattern(pattern)?;
    }
    if untracked {
        for path in untracked_files(base)? {
            // git lists a nested repository as `dir/`; names are literal, never globs.
            match relative_pattern(&base.to_string_lossy(), &path) {
                Some(rel) if !rel.is_empty() => collector.add_literal(&path, &rel)?,
                _ => collector.notice(&path, "path is outside the base folder, skipped")?,
            }
        }
    }
    Ok(collector.found)
}

struct Collector<'a> {
    base: &'a Path,
    found: Collected,
    log: &'a mut dyn Write,
}

impl Collector<'_> {
    /// Adds what one `paths` entry names.
    fn add_pattern(&mut self, pattern: &str) -> Result<(), ArchiveError> {
        let base = self.base.to_string_lossy();
        let Some(rel) = relative_pattern(&base, pattern) else {
            return self.notice(pattern, "path is outside the base folder, skipped");
        };
        if glob::is_glob(&rel) {
            self.add_glob(pattern, &rel)
        } else {
            self.add_literal(pattern, &rel)
        }
    }

    /// Adds the file, folder or symlink at `rel`.
    fn add_literal(&mut self, pattern: &str, rel: &str) -> Result<(), ArchiveError> {
        if !self.parents_are_real_dirs(pattern, rel)? {
            return Ok(());
        }
        match fs::symlink_metadata(self.full(rel)) {
            Ok(meta) => self.add_path(rel, &meta),
            Err(_) => self.notice(pattern, "no matching files"),
        }
    }

    /// Adds every path under the glob's literal folder that the glob matches.
    fn add_glob(&mut self, pattern: &str, rel: &str) -> Result<(), ArchiveError> {
        let regex = glob::compile(rel).map_err(|source| ArchiveError::Pattern {
            pattern: pattern.to_string(),
            source,
        })?;
        let prefix = glob::literal_prefix(rel);
        if !prefix.is_empty() {
            let real_dir = fs::symlink_metadata(self.full(&prefix)).is_ok_and(|m| m.is_dir());
            if !self.parents_are_real_dirs(pattern, &prefix)? || !real_dir {
                return self.notice(pattern, "no matching files");
            }
        }

        let before = self.found.len();
        self.walk_glob(&regex, &prefix)?;
        if self.found.len() == before {
            self.notice(pattern, "no matching files")?;
        }
        Ok(())
    }

    /// Visits the folder `dir`: matched paths are added, unmatched folders are walked into.
    fn walk_glob(&mut self, regex: &regex::Regex, dir: &str) -> Result<(), ArchiveError> {
        for (rel, meta) in self.children(dir)? {
            if regex.is_match(&rel) {
                self.add_path(&rel, &meta)?;
            } else if meta.is_dir() {
                self.walk_glob(regex, &rel)?;
            }
        }
        Ok(())
    }

    /// Adds one path of any kind; a folder with all it holds.
    fn add_path(&mut self, rel: &str, meta: &Metadata) -> Result<(), ArchiveError> {
        let kind = meta.file_type();
        if kind.is_symlink() {
            return self.add_symlink(rel);
        }
        if kind.is_file() {
            self.found.insert(rel.to_string(), Source::File);
            return Ok(());
        }
        if !kind.is_dir() {
            return self.notice(rel, "not a file, folder or symlink, skipped");
        }

        if !rel.is_empty() {
            self.found.insert(rel.to_string(), Source::Dir);
        }
        for (child, meta) in self.children(rel)? {
            self.add_path(&child, &meta)?;
        }
        Ok(())
    }

    /// Adds a symlink as a symlink when its target stays inside the base folder.
    fn add_symlink(&mut self, rel: &str) -> Result<(), ArchiveError> {
        let path = self.full(rel);
        let target =
            fs::read_link(&path).map_err(|source| ArchiveError::ReadSource { path, source })?;
        let Some(target) = target.to_str() else {
            return self.notice(rel, "symlink target is not UTF-8, skipped");
        };
        let link: Vec<&str> = rel.split('/').collect();
        match check_link_target(&link, target) {
            Ok(()) => {
                self.found
                    .insert(rel.to_string(), Source::Symlink(target.to_string()));
                Ok(())
            }
            Err(reason) => self.notice(rel, &format!("{reason}, skipped")),
        }
    }

    /// The entries of folder `rel`, sorted by name, with their own (not followed) metadata.
    fn children(&mut self, rel: &str) -> Result<Vec<(String, Metadata)>, ArchiveError> {
        let dir = self.full(rel);
        let read_err = |source| ArchiveError::ReadSource {
            path: dir.clone(),
            source,
        };
        let mut children = Vec::new();
        for entry in fs::read_dir(&dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                let shown = entry.path().to_string_lossy().into_owned();
                self.notice(&shown, "name is not UTF-8, skipped")?;
                continue;
            };
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let meta = entry
                .metadata()
                .map_err(|source| ArchiveError::ReadSource {
                    path: entry.path(),
                    source,
                })?;
            children.push((child, meta));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(children)
    }

    /// Whether every folder above `rel` is a real folder, not a symlink (which could lead out).
    fn parents_are_real_dirs(&mut self, pattern: &str, rel: &str) -> Result<bool, ArchiveError> {
        let components: Vec<&str> = rel.split('/').collect();
        for depth in 1..components.len() {
            let parent = components[..depth].join("/");
            match fs::symlink_metadata(self.full(&parent)) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    self.notice(
                        pattern,
                        &format!("path goes through symlink {parent}, skipped"),
                    )?;
                    return Ok(false);
                }
                Ok(meta) if meta.is_dir() => {}
                _ => {
                    self.notice(pattern, "no matching files")?;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn full(&self, rel: &str) -> PathBuf {
        self.base.join(rel)
    }

    /// Tells the job's log about a path that was skipped or matched nothing.
    fn notice(&mut self, path: &str, what: &str) -> Result<(), ArchiveError> {
        writeln!(self.log, "WARNING: {path}: {what}").map_err(ArchiveError::Log)
    }
}

/// Files in `base` that git neither tracks nor ignores, relative to `base`.
fn untracked_files(base: &Path) -> Result<Vec<String>, ArchiveError> {
    let output = Command::new("git")
        .args(["ls-files", "--others", "--exclude-standard", "-z"])
        .current_dir(base)
        .output()
        .map_err(|source| ArchiveError::Untracked {
            dir: base.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        return Err(ArchiveError::UntrackedFailed {
            dir: base.to_path_buf(),
            stderr,
        });
    }
    let listed = output.stdout.split(|&b| b == 0).filter(|p| !p.is_empty());
    Ok(listed
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}
