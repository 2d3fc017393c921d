//! The verbs the runner binary runs inside the job's helper container: zip the cache or the
//! artifacts, unzip a downloaded one, turn a cache key into a path.
//!
//! The zip format is our own code ([`zip`]) so that every name, size and offset read from an
//! archive is checked here: nothing lands outside the destination, nothing is written through a
//! symlink, and sizes are limited as the data inflates.

mod archive;
mod cache_key;
pub mod cli;
mod collect;
mod error;
mod extract;
mod glob;
mod paths;
pub mod transfer;
mod zip;

pub use archive::create_archive;
pub use cache_key::cache_key_path;
pub use error::ArchiveError;
pub use extract::extract_archive;

/// What an archive run handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Regular files.
    pub files: u64,
    /// Directories (only those listed as entries).
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Content of the regular files, in bytes.
    pub bytes: u64,
    /// Size of the zip file written, in bytes (0 for an extraction).
    pub archive_bytes: u64,
}

/// Limits an extraction enforces before and while writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Largest entry, in bytes (default 4 GiB - 1, the most a zip without zip64 holds).
    pub max_entry_bytes: u64,
    /// Largest sum of all entries, in bytes (default 16 GiB).
    pub max_total_bytes: u64,
    /// Most entries (default 65535, the most a zip without zip64 holds).
    pub max_entries: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_entry_bytes: u64::from(u32::MAX),
            max_total_bytes: 16 << 30,
            max_entries: 0xffff,
        }
    }
}
