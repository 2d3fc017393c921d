//! The zip container format, written by hand so that every size, offset and name is checked
//! by our code. Entries are written deflated; stored and deflated entries are read. Zip64,
//! encryption and multi-disk archives are refused.
//!
//! Layout (all integers little-endian): each entry is a local header, its name and its data;
//! then the central directory lists every entry with its sizes, CRC-32, Unix mode and the
//! offset of its local header; the end-of-central-directory record closes the file.

pub mod dostime;
pub mod read;
pub mod write;

/// Local file header signature (`PK\3\4`).
pub const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
/// Central directory header signature (`PK\1\2`).
pub const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
/// End of central directory record signature (`PK\5\6`).
pub const END_OF_CENTRAL_SIG: u32 = 0x0605_4b50;
/// Zip64 end of central directory locator signature (`PK\6\7`).
pub const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;

/// Fixed part of a local header, in bytes.
pub const LOCAL_HEADER_LEN: usize = 30;
/// Fixed part of the end of central directory record, in bytes.
pub const END_OF_CENTRAL_LEN: usize = 22;
/// Length of the zip64 end of central directory locator, in bytes.
pub const ZIP64_LOCATOR_LEN: usize = 20;

/// Compression method: stored as is.
pub const METHOD_STORED: u16 = 0;
/// Compression method: deflate.
pub const METHOD_DEFLATED: u16 = 8;

/// General purpose flag: the entry is encrypted.
pub const FLAG_ENCRYPTED: u16 = 1;
/// General purpose flag: the name is UTF-8.
pub const FLAG_UTF8: u16 = 1 << 11;

/// "Version made by": Unix (3) in the high byte, so the external attributes carry a Unix mode;
/// format version 2.0 in the low byte.
pub const MADE_BY_UNIX: u16 = (3 << 8) | 20;
/// "Version needed to extract": 2.0 (deflate, directories).
pub const VERSION_NEEDED: u16 = 20;
/// MS-DOS directory attribute, set next to the Unix mode on directory entries.
pub const DOS_DIRECTORY: u32 = 0x10;

/// Unix file type bits of a mode.
pub const S_IFMT: u32 = 0o170_000;
/// Unix file type: directory.
pub const S_IFDIR: u32 = 0o040_000;
/// Unix file type: regular file.
pub const S_IFREG: u32 = 0o100_000;
/// Unix file type: symbolic link.
pub const S_IFLNK: u32 = 0o120_000;

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file; its data is the content.
    File,
    /// A directory; its name ends with `/` and it has no data.
    Dir,
    /// A symbolic link; its data is the target.
    Symlink,
}

/// Reads little-endian integers from a byte slice without ever going past its end.
pub struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    /// Reads from the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields { bytes }
    }

    /// The next `n` bytes, or `None` when fewer are left.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    /// The next two bytes as a little-endian integer.
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    /// The next four bytes as a little-endian integer.
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}
