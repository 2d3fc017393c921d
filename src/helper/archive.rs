//! `create_archive`: the job's cache or artifacts, zipped from the paths the job lists.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use super::collect::{collect, Collected, Source};
use super::zip::write::{WriteError, ZipWriter};
use super::{ArchiveError, ArchiveSummary};

/// Zips what `paths` (files, folders, globs) and, when `untracked`, the files git does not track
/// name under `base_dir` into `out`; symlinks are stored as symlinks, those pointing outside
/// are skipped with a notice in `log`.
pub fn create_archive(
    base_dir: &Path,
    paths: &[String],
    untracked: bool,
    out: &Path,
    log: &mut dyn Write,
) -> Result<ArchiveSummary, ArchiveError> {
    let mut found = collect(base_dir, paths, untracked, log)?;
    let file = create_out(out)?;
    leave_out_the_archive_itself(base_dir, out, &mut found);

    let written = write_entries(base_dir, &found, file, out);
    let summary = match written {
        Ok(summary) => summary,
        Err(err) => {
            let _ = fs::remove_file(out);
            return Err(err);
        }
    };
    writeln!(
        log,
        "Created archive {}: {} files, {} directories, {} symlinks, {} bytes ({} bytes zipped)",
        out.display(),
        summary.files,
        summary.dirs,
        summary.symlinks,
        summary.bytes,
        summary.archive_bytes
    )
    .map_err(ArchiveError::Log)?;
    Ok(summary)
}

/// Creates (or empties) the archive file, and its folder when missing.
fn create_out(out: &Path) -> Result<File, ArchiveError> {
    let write_err = |source| ArchiveError::WriteArchive {
        path: out.to_path_buf(),
        source,
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(write_err)?;
    }
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .map_err(write_err)
}

/// Drops the archive being written from the list when it lies under the base folder.
fn leave_out_the_archive_itself(base: &Path, out: &Path, found: &mut Collected) {
    let (Ok(base), Ok(out)) = (base.canonicalize(), out.canonicalize()) else {
        return;
    };
    if let Ok(rel) = out.strip_prefix(&base) {
        let rel: Vec<_> = rel.iter().map(|c| c.to_string_lossy()).collect();
        found.remove(&rel.join("/"));
    }
}

/// Writes every collected path into the archive.
fn write_entries(
    base: &Path,
    found: &Collected,
    file: File,
    out: &Path,
) -> Result<ArchiveSummary, ArchiveError> {
    let mut zip = ZipWriter::new(file);
    let mut summary = ArchiveSummary::default();
    for (rel, source) in found {
        let path = base.join(rel);
        let read_err = |source| ArchiveError::ReadSource {
            path: path.clone(),
            source,
        };
        let zip_err = |err| zip_error(err, &path, out);
        match source {
            Source::Dir => {
                let meta = fs::symlink_metadata(&path).map_err(read_err)?;
                zip.add_dir(&format!("{rel}/"), mode(&meta), mtime(&meta))
                    .map_err(zip_err)?;
                summary.dirs += 1;
            }
            Source::Symlink(target) => {
                let meta = fs::symlink_metadata(&path).map_err(read_err)?;
                zip.add_symlink(rel, target, mtime(&meta))
                    .map_err(zip_err)?;
                summary.symlinks += 1;
            }
            Source::File => {
                let mut content = File::open(&path).map_err(read_err)?;
                let meta = content.metadata().map_err(read_err)?;
                let size = zip.add_file(rel, mode(&meta), mtime(&meta), &mut content);
                summary.bytes += size.map_err(zip_err)?;
                summary.files += 1;
            }
        }
    }
    summary.archive_bytes = zip.finish().map_err(|err| zip_error(err, base, out))?;
    Ok(summary)
}

/// The archive error for a failed write of the entry from `source`.
fn zip_error(err: WriteError, source: &Path, out: &Path) -> ArchiveError {
    match err {
        WriteError::Source(e) => ArchiveError::ReadSource {
            path: source.to_path_buf(),
            source: e,
        },
        WriteError::Archive(e) => ArchiveError::WriteArchive {
            path: out.to_path_buf(),
            source: e,
        },
        WriteError::NeedsZip64(what) => ArchiveError::NeedsZip64 {
            path: out.to_path_buf(),
            what,
        },
    }
}

#[cfg(unix)]
fn mode(meta: &fs::Metadata) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777
}

#[cfg(not(unix))]
fn mode(meta: &fs::Metadata) -> u32 {
    match (meta.is_dir(), meta.permissions().readonly()) {
        (true, _) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    }
}

/// The modification time, or now when the platform has none.
fn mtime(meta: &fs::Metadata) -> SystemTime {
    meta.modified().unwrap_or_else(|_| SystemTime::now())
}
