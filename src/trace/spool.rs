//! The spool: the job's trace kept in an anonymous temporary file, so memory stays bounded
//! whatever the size of the output.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Size of the chunks [`Spool::copy_all_to`] reads.
const COPY_CHUNK: usize = 64 * 1024;

/// The trace so far, in a temporary file under [`std::env::temp_dir`] removed on drop; one
/// writer appends while any thread reads at any offset.
#[derive(Debug)]
pub struct Spool {
    /// The file, opened for appending and reading.
    file: File,
    /// The file's path while it still has a name (on Unix it is unlinked right away).
    path: Option<PathBuf>,
    /// Bytes written so far; readers never look past it.
    len: AtomicU64,
    /// Serialises appends so `len` always matches the file's content.
    append: Mutex<()>,
}

impl Spool {
    /// Creates an empty spool file in the temporary directory.
    pub fn new() -> io::Result<Arc<Spool>> {
        let (file, path) = create_unique()?;
        let path = unlink_if_possible(path);
        Ok(Arc::new(Spool {
            file,
            path,
            len: AtomicU64::new(0),
            append: Mutex::new(()),
        }))
    }

    /// Bytes in the spool.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `data` at the end.
    pub fn append(&self, data: &[u8]) -> io::Result<()> {
        let _guard = self
            .append
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (&self.file).write_all(data)?;
        self.len.fetch_add(data.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Reads from `offset` into `buf`; returns 0 at or past the end.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.len();
        if offset >= len || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(len - offset).unwrap_or(usize::MAX));
        read_at(&self.file, offset, &mut buf[..want])
    }

    /// Copies the whole spool (as long as it is when the call starts) to `w`; returns the bytes
    /// copied.
    pub fn copy_all_to(&self, w: &mut dyn Write) -> io::Result<u64> {
        let end = self.len();
        let mut buf = vec![0u8; COPY_CHUNK];
        let mut offset = 0u64;
        while offset < end {
            let want = buf
                .len()
                .min(usize::try_from(end - offset).unwrap_or(usize::MAX));
            let got = self.read_at(offset, &mut buf[..want])?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "trace spool shrank",
                ));
            }
            w.write_all(&buf[..got])?;
            offset += got as u64;
        }
        Ok(offset)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            if let Err(err) = std::fs::remove_file(path) {
                log::warn!("cannot remove trace spool {}: {err}", path.display());
            }
        }
    }
}

/// Creates a new file with a name no other spool uses.
fn create_unique() -> io::Result<(File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("alloy-trace-{}-{n}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let opened = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path);
        match opened {
            Ok(file) => return Ok((file, path)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Removes the file's name while it stays open (Unix), so nothing is left even after a crash;
/// returns the path still to remove on drop otherwise.
fn unlink_if_possible(path: PathBuf) -> Option<PathBuf> {
    if cfg!(unix) && std::fs::remove_file(&path).is_ok() {
        return None;
    }
    Some(path)
}

#[cfg(unix)]
fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    // The file is opened for appending, so moving its cursor does not affect where writes go.
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

impl crate::coordinator::trace_sender::TraceSource for Spool {
    fn len(&self) -> u64 {
        Spool::len(self)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        Spool::read_at(self, offset, buf)
    }
}
