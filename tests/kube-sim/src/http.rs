//! HTTP/1.1 on a blocking stream: request parsing, whole and chunked responses.

use std::fmt;
use std::io::{self, Read, Write};

/// Largest request head (request line plus headers) accepted, in bytes.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted, in bytes.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection before a new request began.
    Closed,
    /// The bytes are not an HTTP/1.1 request.
    Malformed(String),
    /// The stream failed.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => write!(f, "connection closed"),
            ReadError::Malformed(what) => write!(f, "malformed request: {what}"),
            ReadError::Io(e) => write!(f, "reading request: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// One parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Upper-case method, e.g. `GET`.
    pub method: String,
    /// Percent-decoded path without the query.
    pub path: String,
    /// Decoded query pairs in their order; a key may repeat (`command=...`).
    pub query: Vec<(String, String)>,
    /// Headers in their order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a query parameter, in order.
    pub fn params(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean the Kubernetes way: false only when absent, `0` or `false`.
    pub fn flag(&self, name: &str) -> bool {
        match self.param(name) {
            None => false,
            Some(v) => !(v == "0" || v.eq_ignore_ascii_case("false")),
        }
    }

    /// Whether the client asked to close the connection after this exchange.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A buffered reader over a connection that can hand back unread bytes (for a WebSocket).
pub struct Conn<S> {
    /// The underlying stream.
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: Read + Write> Conn<S> {
    /// Wraps a stream.
    pub fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Bytes read past the last request (a client that speaks before the upgrade answer).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Reads one request; `Closed` when the peer left cleanly between requests.
    pub fn read_request(&mut self) -> Result<Request, ReadError> {
        let head_end = self.fill_until_head()?;
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let (method, target, headers) = parse_head(&head)?;
        let (path, query) = split_target(&target);
        let mut request = Request {
            method,
            path,
            query,
            headers,
            body: Vec::new(),
        };
        request.body = self.read_body(&request)?;
        Ok(request)
    }

    fn fill_until_head(&mut self) -> Result<usize, ReadError> {
        loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                return Ok(at);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::Malformed("request head too large".into()));
            }
            if self.fill()? == 0 {
                return match self.buf.is_empty() {
                    true => Err(ReadError::Closed),
                    false => Err(ReadError::Malformed("truncated request head".into())),
                };
            }
        }
    }

    fn fill(&mut self) -> Result<usize, ReadError> {
        let mut chunk = [0u8; 8192];
        let n = match self.stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e.into()),
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn read_body(&mut self, request: &Request) -> Result<Vec<u8>, ReadError> {
        // A client that asks before sending its body (curl with a large one) is told to go on.
        if request
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            self.stream.flush()?;
        }
        let chunked = request
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return self.read_chunked();
        }
        let length = match request.header("content-length") {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| ReadError::Malformed(format!("content-length {v:?}")))?,
        };
        self.read_exact_body(length)
    }

    fn read_exact_body(&mut self, length: usize) -> Result<Vec<u8>, ReadError> {
        if length > MAX_BODY {
            return Err(ReadError::Malformed("body too large".into()));
        }
        while self.buf.len() < length {
            if self.fill()? == 0 {
                return Err(ReadError::Malformed("truncated body".into()));
            }
        }
        Ok(self.buf.drain(..length).collect())
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| ReadError::Malformed(format!("chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers, if any, end with an empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.read_exact_body(size)?);
            self.read_line()?;
            if body.len() > MAX_BODY {
                return Err(ReadError::Malformed("body too large".into()));
            }
        }
    }

    fn read_line(&mut self) -> Result<String, ReadError> {
        loop {
            if let Some(at) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(ReadError::Malformed("truncated chunked body".into()));
            }
        }
    }
}

type Head = (String, String, Vec<(String, String)>);

fn parse_head(head: &str) -> Result<Head, ReadError> {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed(format!(
            "request line {request_line:?}"
        )));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Malformed(format!("version {version:?}")));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Malformed(format!("header line {line:?}")));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok((method.to_ascii_uppercase(), target.to_string(), headers))
}

fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (percent_decode_path(path), pairs)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes `%XX` escapes and `+` (a space in a query).
pub fn percent_decode(text: &str) -> String {
    decode(text, true)
}

fn percent_decode_path(text: &str) -> String {
    decode(text, false)
}

fn decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A response whose body is known in full.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub code: u16,
    /// Extra headers (Content-Length and Connection are added when written).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(code: u16, value: &serde_json::Value) -> Self {
        Response {
            code,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }

    /// A plain-text response.
    pub fn text(code: u16, text: &str) -> Self {
        Response {
            code,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: text.as_bytes().to_vec(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Writes the whole response.
    pub fn write_to(&self, out: &mut impl Write, close: bool) -> io::Result<()> {
        let mut head = status_line(self.code);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }
}

/// The first line of a response, with its CRLF.
pub fn status_line(code: u16) -> String {
    format!("HTTP/1.1 {code} {}\r\n", reason_phrase(code))
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        410 => "Gone",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes the head of a chunked response; follow with [`write_chunk`] and [`end_chunks`].
pub fn start_chunked(out: &mut impl Write, code: u16, content_type: &str) -> io::Result<()> {
    let head = format!(
        "{}Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        status_line(code)
    );
    out.write_all(head.as_bytes())?;
    out.flush()
}

/// Writes one chunk and flushes it.
pub fn write_chunk(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    out.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
    out.write_all(data)?;
    out.write_all(b"\r\n")?;
    out.flush()
}

/// Ends a chunked body.
pub fn end_chunks(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"0\r\n\r\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    struct Pipe(Cursor<Vec<u8>>, Vec<u8>);

    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn conn(bytes: &str) -> Conn<Pipe> {
        Conn::new(Pipe(Cursor::new(bytes.as_bytes().to_vec()), Vec::new()))
    }

    #[test]
    fn parses_query_with_repeated_keys_and_escapes() {
        let mut c = conn(
            "GET /api/v1/x?command=sh&command=-c&command=echo%20a+b HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        let r = c.read_request().unwrap();
        assert_eq!(r.path, "/api/v1/x");
        assert_eq!(r.params("command"), vec!["sh", "-c", "echo a b"]);
        assert_eq!(r.header("host"), Some("h"));
    }

    #[test]
    fn reads_content_length_and_chunked_bodies_back_to_back() {
        let text = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
                    POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                    2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n";
        let mut c = conn(text);
        assert_eq!(c.read_request().unwrap().body, b"abc");
        assert_eq!(c.read_request().unwrap().body, b"xyz");
        assert!(matches!(c.read_request(), Err(ReadError::Closed)));
    }

    #[test]
    fn flag_is_true_unless_absent_zero_or_false() {
        let mut c = conn("GET /?a=&b=0&c=false&d=1 HTTP/1.1\r\n\r\n");
        let r = c.read_request().unwrap();
        assert!(r.flag("a"));
        assert!(!r.flag("b"));
        assert!(!r.flag("c"));
        assert!(r.flag("d"));
        assert!(!r.flag("e"));
    }

    #[test]
    fn answers_100_continue_before_reading_the_body() {
        let mut c = conn("POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(c.read_request().unwrap().body, b"ok");
        assert_eq!(c.stream.1, b"HTTP/1.1 100 Continue\r\n\r\n");
    }
}
