//! Streams the `file` part of a `multipart/form-data` body to disk without holding it in
//! memory.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const READ_SIZE: usize = 64 * 1024;

/// The stored `file` part.
#[derive(Debug)]
pub struct StoredFile {
    pub filename: String,
    pub path: PathBuf,
    pub size: u64,
}

/// Why an upload was refused.
#[derive(Debug)]
pub enum UploadError {
    /// The body is not the multipart form announced.
    Malformed(String),
    /// The `file` part is bigger than the limit.
    TooLarge,
    Io(io::Error),
}

impl From<io::Error> for UploadError {
    fn from(err: io::Error) -> Self {
        UploadError::Io(err)
    }
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<&str> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        (name.trim() == "boundary").then(|| value.trim().trim_matches('"'))
    })
}

/// Reads every part; the one named `file` goes to `dir/<prefix><filename>`, at most `limit`
/// bytes. `Ok(None)` when there is no such part.
pub fn store_file_part(
    body: &mut dyn Read,
    boundary: &str,
    dir: &Path,
    prefix: &str,
    limit: u64,
) -> Result<Option<StoredFile>, UploadError> {
    let mut scanner = Scanner {
        reader: body,
        buf: Vec::new(),
        eof: false,
    };
    let first = format!("--{boundary}");
    if !scanner.skip_past(first.as_bytes())? {
        return Err(UploadError::Malformed("no opening boundary".into()));
    }
    let delimiter = format!("\r\n--{boundary}");
    let mut stored = None;
    loop {
        // After a boundary: `--` ends the body, CRLF starts a part.
        let tail = scanner.take(2)?;
        if tail == b"--" {
            return Ok(stored);
        }
        if tail != b"\r\n" {
            return Err(UploadError::Malformed(
                "boundary not followed by CRLF".into(),
            ));
        }
        let headers = scanner.read_headers()?;
        let (name, filename) = disposition(&headers);
        if name.as_deref() == Some("file") {
            let filename = filename.unwrap_or_else(|| "artifacts.zip".into());
            let path = dir.join(format!("{prefix}{}", sanitize(&filename)));
            let mut out = File::create(&path)?;
            let size = scanner.copy_until(delimiter.as_bytes(), &mut out, limit)?;
            stored = Some(StoredFile {
                filename,
                path,
                size,
            });
        } else {
            scanner.copy_until(delimiter.as_bytes(), &mut io::sink(), u64::MAX)?;
        }
    }
}

/// `name` and `filename` of a part's `Content-Disposition`.
fn disposition(headers: &str) -> (Option<String>, Option<String>) {
    let line = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
        .unwrap_or("");
    let param = |key: &str| {
        line.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
    };
    (param("name"), param("filename"))
}

/// Keeps a received file name inside the data folder.
fn sanitize(filename: &str) -> String {
    filename
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect()
}

struct Scanner<'a> {
    reader: &'a mut dyn Read,
    buf: Vec<u8>,
    eof: bool,
}

impl Scanner<'_> {
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let start = self.buf.len();
        self.buf.resize(start + READ_SIZE, 0);
        let got = self.reader.read(&mut self.buf[start..])?;
        self.buf.truncate(start + got);
        self.eof = got == 0;
        Ok(got > 0)
    }

    fn find(&self, pattern: &[u8]) -> Option<usize> {
        self.buf.windows(pattern.len()).position(|w| w == pattern)
    }

    fn skip_past(&mut self, pattern: &[u8]) -> io::Result<bool> {
        loop {
            if let Some(at) = self.find(pattern) {
                self.buf.drain(..at + pattern.len());
                return Ok(true);
            }
            if !self.fill()? {
                return Ok(false);
            }
        }
    }

    fn take(&mut self, count: usize) -> Result<Vec<u8>, UploadError> {
        while self.buf.len() < count {
            if !self.fill()? {
                return Err(UploadError::Malformed("body ends inside a boundary".into()));
            }
        }
        Ok(self.buf.drain(..count).collect())
    }

    fn read_headers(&mut self) -> Result<String, UploadError> {
        loop {
            if let Some(at) = self.find(b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..at + 4).collect();
                return Ok(String::from_utf8_lossy(&head).into_owned());
            }
            if self.buf.len() > READ_SIZE || !self.fill()? {
                return Err(UploadError::Malformed("part headers do not end".into()));
            }
        }
    }

    /// Copies up to the delimiter (consumed, not copied); returns the bytes copied.
    fn copy_until(
        &mut self,
        delimiter: &[u8],
        out: &mut dyn Write,
        limit: u64,
    ) -> Result<u64, UploadError> {
        let mut copied = 0u64;
        loop {
            if let Some(at) = self.find(delimiter) {
                copied += at as u64;
                if copied > limit {
                    return Err(UploadError::TooLarge);
                }
                out.write_all(&self.buf[..at])?;
                self.buf.drain(..at + delimiter.len());
                return Ok(copied);
            }

            // Keep a delimiter's length back: it may be split across two reads.
            let safe = self.buf.len().saturating_sub(delimiter.len());
            copied += safe as u64;
            if copied > limit {
                return Err(UploadError::TooLarge);
            }
            out.write_all(&self.buf[..safe])?;
            self.buf.drain(..safe);
            if !self.fill()? {
                return Err(UploadError::Malformed("body ends inside a part".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out one byte per read, so every delimiter is split across reads.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    fn temp_dir(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sim-multipart-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const BODY: &[u8] = b"--xx\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\nignored\r\n\
        --xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../a.zip\"\r\n\
        Content-Type: application/zip\r\n\r\nPK\r\n-x\r\n--x end\r\n--xx--\r\n";

    #[test]
    fn stores_the_file_part_when_reads_split_every_delimiter() {
        let dir = temp_dir("trickle");
        let stored = store_file_part(&mut Trickle(BODY), "xx", &dir, "p-", 1000)
            .unwrap()
            .unwrap();
        assert_eq!(stored.filename, "../a.zip");
        assert_eq!(stored.path, dir.join("p-.._a.zip"));
        assert_eq!(std::fs::read(&stored.path).unwrap(), b"PK\r\n-x\r\n--x end");
        assert_eq!(stored.size, 15);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_a_file_part_over_the_limit() {
        let dir = temp_dir("limit");
        let result = store_file_part(&mut Trickle(BODY), "xx", &dir, "p-", 10);
        assert!(matches!(result, Err(UploadError::TooLarge)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn truncated_body_is_malformed() {
        let dir = temp_dir("truncated");
        let result = store_file_part(&mut &BODY[..120], "xx", &dir, "p-", 1000);
        assert!(matches!(result, Err(UploadError::Malformed(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reads_the_boundary_parameter() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc\""),
            Some("abc")
        );
        assert_eq!(
            boundary("multipart/form-data; charset=x; boundary=q1"),
            Some("q1")
        );
        assert_eq!(boundary("application/json; boundary=q1"), None);
    }
}
