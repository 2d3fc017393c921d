//! `extract_archive`: a downloaded cache or artifacts zip, unpacked without letting any entry
//! land outside the destination, write through a symlink or exceed the size limits.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::paths::{check_link_target, entry_components};
use super::zip::read::{CentralEntry, ZipReader};
use super::zip::{dostime, EntryKind};
use super::{ArchiveError, ArchiveSummary, ExtractLimits};

/// Longest symlink target we read, in bytes.
const MAX_LINK_TARGET: u64 = 4096;

/// Unpacks `archive` into `dest_dir`. Every entry is checked before anything is written (names,
/// declared sizes, counts); data is then checked as it inflates. Existing files are replaced,
/// existing symlinks on the way are never followed.
pub fn extract_archive(
    archive: &Path,
    dest_dir: &Path,
    limits: &ExtractLimits,
    log: &mut dyn Write,
) -> Result<ArchiveSummary, ArchiveError> {
    let reader = ZipReader::open(archive, limits.max_entries)?;
    let plan = check_entries(reader.entries(), limits)?;
    fs::create_dir_all(dest_dir).map_err(|source| ArchiveError::CreateDestination {
        path: dest_dir.to_path_buf(),
        source,
    })?;

    let mut extractor = Extractor {
        reader: &reader,
        dest: dest_dir,
        limits,
        summary: Default::default(),
    };
    for (entry, components) in &plan {
        extractor.extract(entry, components)?;
    }
    let summary = extractor.summary;
    writeln!(
        log,
        "Extracted {} files, {} directories, {} symlinks ({} bytes) from {} to {}",
        summary.files,
        summary.dirs,
        summary.symlinks,
        summary.bytes,
        archive.display(),
        dest_dir.display()
    )
    .map_err(ArchiveError::Log)?;
    Ok(summary)
}

/// Checks every entry's name and declared size; returns the entries with their path components.
fn check_entries<'a>(
    entries: &'a [CentralEntry],
    limits: &ExtractLimits,
) -> Result<Vec<(&'a CentralEntry, Vec<&'a str>)>, ArchiveError> {
    let mut total = 0u64;
    let mut plan = Vec::with_capacity(entries.len());
    for entry in entries {
        let components =
            entry_components(&entry.name).map_err(|reason| unsafe_entry(entry, reason))?;
        if entry.size > limits.max_entry_bytes {
            let limit = limits.max_entry_bytes;
            return Err(ArchiveError::EntryTooLarge {
                entry: entry.name.clone(),
                limit,
            });
        }
        total = total.saturating_add(entry.size);
        if total > limits.max_total_bytes {
            return Err(ArchiveError::TotalTooLarge {
                limit: limits.max_total_bytes,
            });
        }
        if !components.is_empty() {
            plan.push((entry, components));
        }
    }
    Ok(plan)
}

struct Extractor<'a> {
    reader: &'a ZipReader,
    dest: &'a Path,
    limits: &'a ExtractLimits,
    summary: ArchiveSummary,
}

impl Extractor<'_> {
    /// Writes one entry.
    fn extract(&mut self, entry: &CentralEntry, components: &[&str]) -> Result<(), ArchiveError> {
        match entry.kind {
            EntryKind::Dir => {
                let path = self.make_dirs(entry, components)?;
                set_mode(&path, entry.mode.map(|m| m | 0o700))
                    .map_err(|e| write_err(entry, &path, e))?;
                self.summary.dirs += 1;
            }
            EntryKind::File => {
                self.summary.bytes += self.extract_file(entry, components)?;
                self.summary.files += 1;
            }
            EntryKind::Symlink => {
                self.extract_symlink(entry, components)?;
                self.summary.symlinks += 1;
            }
        }
        Ok(())
    }

    /// Writes a regular file in place of whatever (but a folder) is at its path.
    fn extract_file(
        &mut self,
        entry: &CentralEntry,
        components: &[&str],
    ) -> Result<u64, ArchiveError> {
        let (parent, name) = components.split_at(components.len() - 1);
        let path = self.make_dirs(entry, parent)?.join(name[0]);
        clear_path(entry, &path)?;

        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| write_err(entry, &path, e))?;
        let limit = self.limits.max_entry_bytes;
        let size = match self.reader.copy_entry(entry, limit, &mut file, &path) {
            Ok(size) => size,
            Err(err) => {
                drop(file);
                let _ = fs::remove_file(&path);
                return Err(err);
            }
        };

        if let Some(when) = dostime::to_system_time(entry.time, entry.date) {
            file.set_modified(when)
                .map_err(|e| write_err(entry, &path, e))?;
        }
        drop(file);
        set_mode(&path, entry.mode).map_err(|e| write_err(entry, &path, e))?;
        Ok(size)
    }

    /// Creates a symlink after checking that its target stays inside the destination.
    fn extract_symlink(
        &mut self,
        entry: &CentralEntry,
        components: &[&str],
    ) -> Result<(), ArchiveError> {
        let (parent, name) = components.split_at(components.len() - 1);
        let mut target = Vec::new();
        let shown = self.dest.join(components.join("/"));
        self.reader
            .copy_entry(entry, MAX_LINK_TARGET, &mut target, &shown)?;
        let Ok(target) = String::from_utf8(target) else {
            return Err(unsafe_entry(entry, "symlink target is not UTF-8"));
        };
        check_link_target(components, &target).map_err(|reason| unsafe_entry(entry, reason))?;

        let path = self.make_dirs(entry, parent)?.join(name[0]);
        clear_path(entry, &path)?;
        make_symlink(&target, &path).map_err(|e| write_err(entry, &path, e))
    }

    /// Creates the folders `components` under the destination, one at a time, refusing to go
    /// through a symlink or a file; returns the last one's path.
    fn make_dirs(
        &self,
        entry: &CentralEntry,
        components: &[&str],
    ) -> Result<PathBuf, ArchiveError> {
        let mut path = self.dest.to_path_buf();
        for (depth, component) in components.iter().enumerate() {
            path.push(component);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let through = components[..=depth].join("/");
                    let reason = format!("path goes through the symlink {through}");
                    return Err(unsafe_entry(entry, &reason));
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    let err = io::Error::new(io::ErrorKind::AlreadyExists, "a file is in the way");
                    return Err(write_err(entry, &path, err));
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path).map_err(|e| write_err(entry, &path, e))?;
                }
                Err(err) => return Err(write_err(entry, &path, err)),
            }
        }
        Ok(path)
    }
}

/// Removes a file or symlink at `path` (the link itself, never what it points at); a folder
/// there is an error.
fn clear_path(entry: &CentralEntry, path: &Path) -> Result<(), ArchiveError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let err = io::Error::new(io::ErrorKind::AlreadyExists, "a folder is in the way");
            Err(write_err(entry, path, err))
        }
        Ok(_) => fs::remove_file(path).map_err(|e| write_err(entry, path, e)),
        Err(_) => Ok(()),
    }
}

fn unsafe_entry(entry: &CentralEntry, reason: &str) -> ArchiveError {
    ArchiveError::UnsafeEntry {
        entry: entry.name.clone(),
        reason: reason.to_string(),
    }
}

fn write_err(entry: &CentralEntry, path: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::WriteEntry {
        entry: entry.name.clone(),
        path: path.to_path_buf(),
        source,
    }
}

/// Applies the entry's permission bits (never setuid, setgid or sticky).
#[cfg(unix)]
fn set_mode(path: &Path, mode: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match mode {
        Some(mode) => fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o777)),
        None => Ok(()),
    }
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: Option<u32>) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn make_symlink(target: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn make_symlink(_target: &str, _path: &Path) -> io::Result<()> {
    // TODO: symlink entries are refused off Unix, where making one needs privileges.
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are only extracted on Unix",
    ))
}
