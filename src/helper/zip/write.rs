//! Writing a zip archive: entries are streamed deflated into the file, then each local header
//! is patched with the CRC-32 and sizes, so headers carry the real sizes up front.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::time::SystemTime;

use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};

use super::{dostime, EntryKind};
use super::{CENTRAL_HEADER_SIG, END_OF_CENTRAL_SIG, LOCAL_HEADER_SIG};
use super::{DOS_DIRECTORY, FLAG_UTF8, MADE_BY_UNIX, METHOD_DEFLATED, METHOD_STORED};
use super::{S_IFDIR, S_IFLNK, S_IFREG, VERSION_NEEDED};

/// Offset of the CRC-32 field inside a local header.
const LOCAL_CRC_OFFSET: u64 = 14;
/// Largest count of entries without zip64.
const MAX_ENTRIES: usize = 0xffff;
/// Read buffer for file contents.
const COPY_CHUNK: usize = 64 * 1024;

/// Why an entry could not be added.
#[derive(Debug)]
pub enum WriteError {
    /// Reading the entry's source failed.
    Source(io::Error),
    /// Writing the archive failed.
    Archive(io::Error),
    /// The archive would need zip64; says which limit was passed.
    NeedsZip64(&'static str),
}

/// An entry's fields as they go into its headers.
struct Header<'a> {
    name: &'a str,
    kind: EntryKind,
    method: u16,
    mode: u32,
    time: u16,
    date: u16,
    crc: u32,
    compressed: u32,
    size: u32,
}

/// A zip archive being written to a file.
pub struct ZipWriter {
    out: BufWriter<File>,
    /// Where the next local header goes.
    offset: u64,
    /// The central directory built so far.
    central: Vec<u8>,
    entries: usize,
}

impl ZipWriter {
    /// Starts an archive in `file`, which must be empty.
    pub fn new(file: File) -> ZipWriter {
        ZipWriter {
            out: BufWriter::new(file),
            offset: 0,
            central: Vec::new(),
            entries: 0,
        }
    }

    /// Adds a directory entry; `name` ends with `/`.
    pub fn add_dir(&mut self, name: &str, mode: u32, mtime: SystemTime) -> Result<(), WriteError> {
        let header = Header::new(name, EntryKind::Dir, METHOD_STORED, mode, mtime);
        let header_at = self.start_entry(&header)?;
        self.finish_entry(header, header_at)
    }

    /// Adds a symbolic link pointing at `target`, stored uncompressed.
    pub fn add_symlink(
        &mut self,
        name: &str,
        target: &str,
        mtime: SystemTime,
    ) -> Result<(), WriteError> {
        let mut header = Header::new(name, EntryKind::Symlink, METHOD_STORED, 0o777, mtime);
        let mut crc = Crc::new();
        crc.update(target.as_bytes());
        header.crc = crc.sum();
        header.size = size32(target.len() as u64, "symlink target too long")?;
        header.compressed = header.size;

        let header_at = self.start_entry(&header)?;
        self.out
            .write_all(target.as_bytes())
            .map_err(WriteError::Archive)?;
        self.offset += target.len() as u64;
        self.finish_entry(header, header_at)
    }

    /// Adds a regular file whose content is read from `source` and deflated; returns its size.
    pub fn add_file(
        &mut self,
        name: &str,
        mode: u32,
        mtime: SystemTime,
        source: &mut dyn Read,
    ) -> Result<u64, WriteError> {
        let mut header = Header::new(name, EntryKind::File, METHOD_DEFLATED, mode, mtime);
        let header_at = self.start_entry(&header)?;

        let data_at = self.out.stream_position().map_err(WriteError::Archive)?;
        let (crc, size) = self.deflate(source)?;
        let end = self.out.stream_position().map_err(WriteError::Archive)?;
        header.crc = crc;
        header.size = size32(size, "a file is 4 GiB or larger")?;
        header.compressed = size32(end - data_at, "a file compresses to 4 GiB or more")?;

        // Patch the local header's CRC and sizes now that they are known.
        let mut fields = Vec::with_capacity(12);
        push_u32(&mut fields, header.crc);
        push_u32(&mut fields, header.compressed);
        push_u32(&mut fields, header.size);
        self.patch(u64::from(header_at) + LOCAL_CRC_OFFSET, &fields, end)?;
        self.offset = end;
        self.finish_entry(header, header_at)?;
        Ok(size)
    }

    /// Writes the central directory and the end record; returns the archive's size in bytes.
    pub fn finish(mut self) -> Result<u64, WriteError> {
        let cd_offset = size32(self.offset, "the archive is 4 GiB or larger")?;
        let cd_size = size32(
            self.central.len() as u64,
            "the central directory is too large",
        )?;
        let count =
            u16::try_from(self.entries).map_err(|_| WriteError::NeedsZip64("too many entries"))?;

        let mut end = Vec::with_capacity(22);
        push_u32(&mut end, END_OF_CENTRAL_SIG);
        push_u16(&mut end, 0); // this disk
        push_u16(&mut end, 0); // disk where the central directory starts
        push_u16(&mut end, count);
        push_u16(&mut end, count);
        push_u32(&mut end, cd_size);
        push_u32(&mut end, cd_offset);
        push_u16(&mut end, 0); // comment length

        let write = |out: &mut BufWriter<File>| -> io::Result<()> {
            out.write_all(&self.central)?;
            out.write_all(&end)?;
            out.flush()?;
            out.get_ref().sync_all()
        };
        write(&mut self.out).map_err(WriteError::Archive)?;
        Ok(self.offset + self.central.len() as u64 + end.len() as u64)
    }

    /// Writes the local header and name; returns the header's offset.
    fn start_entry(&mut self, header: &Header) -> Result<u32, WriteError> {
        if self.entries >= MAX_ENTRIES {
            return Err(WriteError::NeedsZip64("more than 65535 entries"));
        }
        if header.name.len() > usize::from(u16::MAX) {
            let err = io::Error::new(io::ErrorKind::InvalidInput, "entry name over 65535 bytes");
            return Err(WriteError::Archive(err));
        }
        let header_at = size32(self.offset, "the archive is 4 GiB or larger")?;
        let mut bytes = Vec::with_capacity(30 + header.name.len());
        push_u32(&mut bytes, LOCAL_HEADER_SIG);
        push_u16(&mut bytes, VERSION_NEEDED);
        header.push_common(&mut bytes);
        push_u16(&mut bytes, 0); // extra field length
        bytes.extend_from_slice(header.name.as_bytes());
        self.out.write_all(&bytes).map_err(WriteError::Archive)?;
        self.offset += bytes.len() as u64;
        Ok(header_at)
    }

    /// Adds the entry's central directory record.
    fn finish_entry(&mut self, header: Header, header_at: u32) -> Result<(), WriteError> {
        let external = match header.kind {
            EntryKind::Dir => ((S_IFDIR | header.mode) << 16) | DOS_DIRECTORY,
            EntryKind::Symlink => (S_IFLNK | header.mode) << 16,
            EntryKind::File => (S_IFREG | header.mode) << 16,
        };

        let c = &mut self.central;
        push_u32(c, CENTRAL_HEADER_SIG);
        push_u16(c, MADE_BY_UNIX);
        push_u16(c, VERSION_NEEDED);
        header.push_common(c);
        push_u16(c, 0); // extra field length
        push_u16(c, 0); // comment length
        push_u16(c, 0); // disk number
        push_u16(c, 0); // internal attributes
        push_u32(c, external);
        push_u32(c, header_at);
        c.extend_from_slice(header.name.as_bytes());
        self.entries += 1;
        Ok(())
    }

    /// Deflates `source` into the archive; returns its CRC-32 and size.
    fn deflate(&mut self, source: &mut dyn Read) -> Result<(u32, u64), WriteError> {
        let mut encoder = DeflateEncoder::new(&mut self.out, Compression::default());
        let mut crc = Crc::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(WriteError::Source(err)),
            };
            crc.update(&buf[..n]);
            size += n as u64;
            encoder.write_all(&buf[..n]).map_err(WriteError::Archive)?;
        }
        encoder.finish().map_err(WriteError::Archive)?;
        Ok((crc.sum(), size))
    }

    /// Overwrites bytes at `at`, then returns to `end`.
    fn patch(&mut self, at: u64, bytes: &[u8], end: u64) -> Result<(), WriteError> {
        let mut go = || -> io::Result<()> {
            self.out.seek(SeekFrom::Start(at))?;
            self.out.write_all(bytes)?;
            self.out.seek(SeekFrom::Start(end))?;
            Ok(())
        };
        go().map_err(WriteError::Archive)
    }
}

impl<'a> Header<'a> {
    fn new(name: &'a str, kind: EntryKind, method: u16, mode: u32, mtime: SystemTime) -> Self {
        let (time, date) = dostime::from_system_time(mtime);
        let mode = mode & 0o777;
        Header {
            name,
            kind,
            method,
            mode,
            time,
            date,
            crc: 0,
            compressed: 0,
            size: 0,
        }
    }

    /// The fields local and central headers share, from the flags to the extra field length.
    fn push_common(&self, bytes: &mut Vec<u8>) {
        push_u16(bytes, FLAG_UTF8);
        push_u16(bytes, self.method);
        push_u16(bytes, self.time);
        push_u16(bytes, self.date);
        push_u32(bytes, self.crc);
        push_u32(bytes, self.compressed);
        push_u32(bytes, self.size);
        // `start_entry` refuses names over 65535 bytes before any header is written.
        push_u16(bytes, u16::try_from(self.name.len()).unwrap_or(u16::MAX));
    }
}

/// `value` as a 32-bit field, or the zip64 error saying `what` passed the limit.
fn size32(value: u64, what: &'static str) -> Result<u32, WriteError> {
    u32::try_from(value).map_err(|_| WriteError::NeedsZip64(what))
}

fn push_u16(bytes: &mut Vec<u8>, value: u16) {
    bytes.extend_from_slice(&value.to_le_bytes());
}

fn push_u32(bytes: &mut Vec<u8>, value: u32) {
    bytes.extend_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn entry_past_65535_is_refused_as_needing_zip64() {
        let name = format!("alloy-zip-many-{}.zip", std::process::id());
        let path = std::env::temp_dir().join(name);
        let mut zip = ZipWriter::new(File::create(&path).unwrap());
        for i in 0..MAX_ENTRIES {
            zip.add_dir(&format!("d{i}/"), 0o755, UNIX_EPOCH).unwrap();
        }
        let err = zip.add_dir("one-more/", 0o755, UNIX_EPOCH).unwrap_err();
        assert!(
            matches!(err, WriteError::NeedsZip64("more than 65535 entries")),
            "{err:?}"
        );
        let size = zip.finish().unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        std::fs::remove_file(&path).unwrap();
    }
}
