//! Reading a zip archive: the central directory is the index, every size and offset in it is
//! checked against the file, and entry data is inflated with its size, CRC-32 and a caller's
//! limit enforced as the bytes come out.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::read::DeflateDecoder;
use flate2::Crc;

use super::{EntryKind, Fields, CENTRAL_HEADER_SIG, DOS_DIRECTORY};
use super::{END_OF_CENTRAL_LEN, END_OF_CENTRAL_SIG, FLAG_ENCRYPTED, LOCAL_HEADER_LEN};
use super::{LOCAL_HEADER_SIG, METHOD_DEFLATED, METHOD_STORED, S_IFDIR, S_IFLNK, S_IFMT};
use super::{ZIP64_LOCATOR_LEN, ZIP64_LOCATOR_SIG};
use crate::helper::ArchiveError;

/// Longest possible archive comment, which bounds the search for the end record.
const MAX_COMMENT: usize = 0xffff;
/// Read buffer for entry data.
const COPY_CHUNK: usize = 64 * 1024;

/// One entry as the central directory describes it.
#[derive(Debug, Clone)]
pub struct CentralEntry {
    /// The name, as stored (checked to be UTF-8, not yet checked to be safe).
    pub name: String,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Permission bits when the archive was made on Unix.
    pub mode: Option<u32>,
    /// Declared uncompressed size in bytes.
    pub size: u64,
    /// DOS time and date fields.
    pub time: u16,
    pub date: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    local_offset: u64,
}

/// An open archive and its checked central directory.
#[derive(Debug)]
pub struct ZipReader {
    file: File,
    path: PathBuf,
    /// Where the central directory starts: entry data must end before it.
    cd_offset: u64,
    entries: Vec<CentralEntry>,
}

impl ZipReader {
    /// Opens `path` and reads its central directory, refusing more than `max_entries` entries.
    pub fn open(path: &Path, max_entries: u64) -> Result<ZipReader, ArchiveError> {
        let read_err = |source| ArchiveError::ReadArchive {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_err)?;
        let len = file.metadata().map_err(read_err)?.len();

        let tail = find_end_record(&file, len).map_err(read_err)?;
        let end = EndRecord::parse(path, &tail)?;
        if u64::from(end.entries) > max_entries {
            return Err(ArchiveError::TooManyEntries {
                count: end.entries.into(),
                limit: max_entries,
            });
        }

        let cd = read_at(&file, end.cd_offset, end.cd_size as usize).map_err(read_err)?;
        let entries = parse_central(path, &cd, end.entries)?;
        Ok(ZipReader {
            file,
            path: path.to_path_buf(),
            cd_offset: end.cd_offset,
            entries,
        })
    }

    /// The entries in central directory order.
    pub fn entries(&self) -> &[CentralEntry] {
        &self.entries
    }

    /// Writes the entry's content to `out` (`dest` names it in errors), refusing more than
    /// `limit` bytes; checks the inflated size and CRC-32 against the directory.
    pub fn copy_entry(
        &self,
        entry: &CentralEntry,
        limit: u64,
        out: &mut dyn Write,
        dest: &Path,
    ) -> Result<u64, ArchiveError> {
        let mut reader = self.open_data(entry)?;
        let mut crc = Crc::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.corrupt(entry, format!("cannot inflate: {err}"))),
            };
            total += n as u64;
            self.check_growth(entry, total, limit)?;
            crc.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|source| ArchiveError::WriteEntry {
                    entry: entry.name.clone(),
                    path: dest.to_path_buf(),
                    source,
                })?;
        }

        if total < entry.size {
            let reason = format!(
                "data ends after {total} of its declared {} bytes",
                entry.size
            );
            return Err(self.corrupt(entry, reason));
        }
        if crc.sum() != entry.crc {
            return Err(self.corrupt(entry, "CRC-32 mismatch".to_string()));
        }
        Ok(total)
    }

    /// A reader of the entry's content: its compressed bytes, inflated when deflated.
    fn open_data(&self, entry: &CentralEntry) -> Result<Box<dyn Read + '_>, ArchiveError> {
        let data_at = self.data_offset(entry)?;
        let mut file = &self.file;
        file.seek(SeekFrom::Start(data_at))
            .map_err(|source| ArchiveError::ReadArchive {
                path: self.path.clone(),
                source,
            })?;
        let raw = file.take(entry.compressed);
        Ok(match entry.method {
            METHOD_DEFLATED => Box::new(DeflateDecoder::new(raw)),
            _ => Box::new(raw),
        })
    }

    /// Stops an entry whose content, `total` bytes so far, passed the limit or its declared size.
    fn check_growth(
        &self,
        entry: &CentralEntry,
        total: u64,
        limit: u64,
    ) -> Result<(), ArchiveError> {
        if total > limit {
            return Err(ArchiveError::EntryTooLarge {
                entry: entry.name.clone(),
                limit,
            });
        }
        if total > entry.size {
            let reason = format!("data is longer than its declared {} bytes", entry.size);
            return Err(self.corrupt(entry, reason));
        }
        Ok(())
    }

    /// Where the entry's data starts, after checking its local header.
    fn data_offset(&self, entry: &CentralEntry) -> Result<u64, ArchiveError> {
        let header = read_at(&self.file, entry.local_offset, LOCAL_HEADER_LEN)
            .map_err(|_| self.corrupt(entry, "local header is cut off".into()))?;
        let mut fields = Fields::new(&header);
        if fields.u32() != Some(LOCAL_HEADER_SIG) {
            return Err(self.corrupt(entry, "bad local header signature".into()));
        }
        let lengths = &header[26..30];
        let name_len = u64::from(u16::from_le_bytes([lengths[0], lengths[1]]));
        let extra_len = u64::from(u16::from_le_bytes([lengths[2], lengths[3]]));

        let data_at = entry.local_offset + LOCAL_HEADER_LEN as u64 + name_len + extra_len;
        if data_at + entry.compressed > self.cd_offset {
            return Err(self.corrupt(entry, "data runs past the central directory".into()));
        }
        Ok(data_at)
    }

    /// An error naming the archive and the entry.
    fn corrupt(&self, entry: &CentralEntry, reason: String) -> ArchiveError {
        let path = self.path.clone();
        ArchiveError::Corrupt {
            path,
            entry: Some(entry.name.clone()),
            reason,
        }
    }
}

/// The end of central directory record's fields we use.
struct EndRecord {
    entries: u16,
    cd_size: u32,
    cd_offset: u64,
}

impl EndRecord {
    /// Checks the record found in the file's tail.
    fn parse(path: &Path, tail: &Tail) -> Result<EndRecord, ArchiveError> {
        let corrupt_archive = |reason: &str| ArchiveError::Corrupt {
            path: path.to_path_buf(),
            entry: None,
            reason: reason.to_string(),
        };
        let Some(pos) = tail.record else {
            return Err(corrupt_archive(
                "no end of central directory record (truncated or not a zip)",
            ));
        };
        let locator_sig = ZIP64_LOCATOR_SIG.to_le_bytes();
        let bytes = &tail.bytes;
        if pos >= ZIP64_LOCATOR_LEN && bytes[pos - ZIP64_LOCATOR_LEN..].starts_with(&locator_sig) {
            return Err(ArchiveError::Zip64 {
                path: path.to_path_buf(),
            });
        }

        let mut f = Fields::new(&bytes[pos + 4..]);
        let fields = (f.u16(), f.u16(), f.u16(), f.u16(), f.u32(), f.u32());
        let (
            Some(disk),
            Some(cd_disk),
            Some(on_disk),
            Some(entries),
            Some(cd_size),
            Some(cd_offset),
        ) = fields
        else {
            return Err(corrupt_archive(
                "end of central directory record is cut off",
            ));
        };
        if entries == 0xffff || cd_size == u32::MAX || cd_offset == u32::MAX {
            return Err(ArchiveError::Zip64 {
                path: path.to_path_buf(),
            });
        }
        if disk != 0 || cd_disk != 0 || on_disk != entries {
            return Err(corrupt_archive("multi-disk archives are not supported"));
        }
        if u64::from(cd_offset) + u64::from(cd_size) > tail.start + pos as u64 {
            return Err(corrupt_archive("central directory lies outside the file"));
        }
        Ok(EndRecord {
            entries,
            cd_size,
            cd_offset: cd_offset.into(),
        })
    }
}

/// The file's tail, where the end record must be.
struct Tail {
    bytes: Vec<u8>,
    /// Offset of `bytes[0]` in the file.
    start: u64,
    /// Position of the end record's signature in `bytes`, when found.
    record: Option<usize>,
}

/// Reads the file's tail and finds the end record in it (the last signature found).
fn find_end_record(file: &File, len: u64) -> io::Result<Tail> {
    let tail_len = len.min((END_OF_CENTRAL_LEN + MAX_COMMENT) as u64);
    let start = len - tail_len;
    let bytes = read_at(file, start, tail_len as usize)?;
    let sig = END_OF_CENTRAL_SIG.to_le_bytes();
    let last = bytes.len().checked_sub(END_OF_CENTRAL_LEN);
    let record = last.and_then(|last| (0..=last).rev().find(|&pos| bytes[pos..].starts_with(&sig)));
    Ok(Tail {
        bytes,
        start,
        record,
    })
}

/// Parses `count` central directory headers from `cd`.
fn parse_central(path: &Path, cd: &[u8], count: u16) -> Result<Vec<CentralEntry>, ArchiveError> {
    let mut fields = Fields::new(cd);
    let mut entries = Vec::with_capacity(usize::from(count));
    for index in 1..=count {
        let Some(raw) = RawCentral::parse(&mut fields) else {
            let reason = format!("central directory header {index} of {count} is cut off");
            return Err(ArchiveError::Corrupt {
                path: path.to_path_buf(),
                entry: None,
                reason,
            });
        };
        entries.push(raw.check(path)?);
    }
    Ok(entries)
}

/// A central directory header's fields as stored.
struct RawCentral<'a> {
    made_by: u16,
    flags: u16,
    method: u16,
    time: u16,
    date: u16,
    crc: u32,
    compressed: u32,
    size: u32,
    external: u32,
    local_offset: u32,
    name: &'a [u8],
}

impl<'a> RawCentral<'a> {
    /// Reads one header; `None` when the bytes run out or the signature is wrong.
    fn parse(f: &mut Fields<'a>) -> Option<RawCentral<'a>> {
        if f.u32()? != CENTRAL_HEADER_SIG {
            return None;
        }
        let made_by = f.u16()?;
        let _needed = f.u16()?;
        let (flags, method, time, date) = (f.u16()?, f.u16()?, f.u16()?, f.u16()?);
        let (crc, compressed, size) = (f.u32()?, f.u32()?, f.u32()?);
        let (name_len, extra_len, comment_len) = (f.u16()?, f.u16()?, f.u16()?);
        let (_disk, _internal) = (f.u16()?, f.u16()?);
        let (external, local_offset) = (f.u32()?, f.u32()?);
        let name = f.take(name_len.into())?;
        f.take(extra_len.into())?;
        f.take(comment_len.into())?;
        Some(RawCentral {
            made_by,
            flags,
            method,
            time,
            date,
            crc,
            compressed,
            size,
            external,
            local_offset,
            name,
        })
    }

    /// The checked entry, or why it is refused (name not UTF-8, zip64, encryption, method).
    fn check(self, path: &Path) -> Result<CentralEntry, ArchiveError> {
        let Ok(name) = std::str::from_utf8(self.name) else {
            let entry = Some(String::from_utf8_lossy(self.name).into_owned());
            let reason = "entry name is not UTF-8".to_string();
            return Err(ArchiveError::Corrupt {
                path: path.to_path_buf(),
                entry,
                reason,
            });
        };
        if [self.compressed, self.size, self.local_offset].contains(&u32::MAX) {
            return Err(ArchiveError::Zip64 {
                path: path.to_path_buf(),
            });
        }
        if let Some(reason) = refusal(self.flags, self.method, self.compressed, self.size) {
            return Err(ArchiveError::Unsupported {
                entry: name.to_string(),
                reason,
            });
        }

        let (kind, mode) = self.kind_and_mode(name);
        Ok(CentralEntry {
            name: name.to_string(),
            kind,
            mode,
            size: self.size.into(),
            time: self.time,
            date: self.date,
            method: self.method,
            crc: self.crc,
            compressed: self.compressed.into(),
            local_offset: self.local_offset.into(),
        })
    }

    /// What the entry is, from its Unix mode when made on Unix, else from its name and DOS
    /// attributes; and its permission bits when known.
    fn kind_and_mode(&self, name: &str) -> (EntryKind, Option<u32>) {
        let unix_mode = self.external >> 16;
        let mode = ((self.made_by >> 8) == 3 && unix_mode != 0).then_some(unix_mode);
        let kind = match mode.map(|m| m & S_IFMT) {
            Some(S_IFLNK) => EntryKind::Symlink,
            Some(S_IFDIR) => EntryKind::Dir,
            _ if name.ends_with('/') || self.external & DOS_DIRECTORY != 0 => EntryKind::Dir,
            _ => EntryKind::File,
        };
        (kind, mode.map(|m| m & 0o777))
    }
}

/// Why an entry with these header fields cannot be read, if it cannot.
fn refusal(flags: u16, method: u16, compressed: u32, size: u32) -> Option<String> {
    if flags & FLAG_ENCRYPTED != 0 {
        return Some("encrypted entries are not supported".into());
    }
    match method {
        METHOD_DEFLATED => None,
        METHOD_STORED if compressed != size => Some(format!(
            "stored entry declares {compressed} bytes stored for {size} bytes"
        )),
        METHOD_STORED => None,
        other => Some(format!("compression method {other} is not supported")),
    }
}

/// Reads exactly `len` bytes at `offset`.
fn read_at(mut file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file ends early",
        ));
    }
    Ok(buf)
}
