//! Errors of the archive verbs: each names the file, entry or key that failed.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why creating or extracting an archive, or deriving a cache path, failed.
#[derive(Debug)]
pub enum ArchiveError {
    /// A `paths` pattern is not a valid glob.
    Pattern {
        pattern: String,
        source: regex::Error,
    },
    /// `git ls-files` could not run in the base directory.
    Untracked { dir: PathBuf, source: io::Error },
    /// `git ls-files` ran and failed.
    UntrackedFailed { dir: PathBuf, stderr: String },
    /// A file or folder to archive could not be read.
    ReadSource { path: PathBuf, source: io::Error },
    /// The archive file could not be created or written.
    WriteArchive { path: PathBuf, source: io::Error },
    /// The archive would need zip64 (an entry or the whole over 4 GiB, or 65535 entries).
    NeedsZip64 { path: PathBuf, what: &'static str },
    /// The archive file could not be opened or read.
    ReadArchive { path: PathBuf, source: io::Error },
    /// The archive is not a well-formed zip; `entry` names the entry when one is at fault.
    Corrupt {
        path: PathBuf,
        entry: Option<String>,
        reason: String,
    },
    /// The archive uses zip64, which we do not read.
    Zip64 { path: PathBuf },
    /// An entry uses a feature we do not read (encryption, a compression method).
    Unsupported { entry: String, reason: String },
    /// An entry would land outside the destination or write through a symlink.
    UnsafeEntry { entry: String, reason: String },
    /// An entry is larger than the per-entry limit (declared or once inflated).
    EntryTooLarge { entry: String, limit: u64 },
    /// The archive's entries together are larger than the total limit.
    TotalTooLarge { limit: u64 },
    /// The archive has more entries than the limit.
    TooManyEntries { count: u64, limit: u64 },
    /// The destination folder could not be created.
    CreateDestination { path: PathBuf, source: io::Error },
    /// An entry could not be written to the destination.
    WriteEntry {
        entry: String,
        path: PathBuf,
        source: io::Error,
    },
    /// A cache key cannot become a safe relative path.
    CacheKey { key: String, reason: &'static str },
    /// The log could not be written.
    Log(io::Error),
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ArchiveError::*;
        match self {
            Pattern { pattern, .. } => write!(f, "invalid path pattern {pattern:?}"),
            Untracked { dir, .. } => {
                write!(f, "cannot run git ls-files in {}", dir.display())
            }
            UntrackedFailed { dir, stderr } => {
                write!(
                    f,
                    "git ls-files failed in {}: {}",
                    dir.display(),
                    stderr.trim()
                )
            }
            ReadSource { path, .. } => write!(f, "cannot read {}", path.display()),
            WriteArchive { path, .. } => write!(f, "cannot write archive {}", path.display()),
            NeedsZip64 { path, what } => {
                write!(
                    f,
                    "archive {} would need zip64, which is not supported: {what}",
                    path.display()
                )
            }
            ReadArchive { path, .. } => write!(f, "cannot read archive {}", path.display()),
            Corrupt {
                path,
                entry: Some(entry),
                reason,
            } => {
                write!(
                    f,
                    "corrupt archive {}: entry {entry:?}: {reason}",
                    path.display()
                )
            }
            Corrupt {
                path,
                entry: None,
                reason,
            } => {
                write!(f, "corrupt archive {}: {reason}", path.display())
            }
            Zip64 { path } => write!(
                f,
                "archive {} uses zip64, which is not supported",
                path.display()
            ),
            Unsupported { entry, reason } => write!(f, "unsupported entry {entry:?}: {reason}"),
            UnsafeEntry { entry, reason } => write!(f, "refusing entry {entry:?}: {reason}"),
            EntryTooLarge { entry, limit } => {
                write!(
                    f,
                    "refusing entry {entry:?}: larger than the limit of {limit} bytes"
                )
            }
            TotalTooLarge { limit } => {
                write!(
                    f,
                    "refusing archive: its entries exceed the total limit of {limit} bytes"
                )
            }
            TooManyEntries { count, limit } => {
                write!(
                    f,
                    "refusing archive: {count} entries, more than the limit of {limit}"
                )
            }
            CreateDestination { path, .. } => {
                write!(f, "cannot create destination folder {}", path.display())
            }
            WriteEntry { entry, path, .. } => {
                write!(f, "cannot extract entry {entry:?} to {}", path.display())
            }
            CacheKey { key, reason } => write!(f, "invalid cache key {key:?}: {reason}"),
            Log(_) => write!(f, "cannot write the log"),
        }
    }
}

impl std::error::Error for ArchiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        use ArchiveError::*;
        match self {
            Pattern { source, .. } => Some(source),
            Untracked { source, .. }
            | ReadSource { source, .. }
            | WriteArchive { source, .. }
            | ReadArchive { source, .. }
            | CreateDestination { source, .. }
            | WriteEntry { source, .. }
            | Log(source) => Some(source),
            _ => None,
        }
    }
}
