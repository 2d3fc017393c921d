//! A small blocking HTTP/1.1 server: one thread per connection, keep-alive, request bodies
//! by `Content-Length` or chunked transfer coding, handed to the handler as a stream.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAX_HEAD_BYTES: usize = 64 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A request with its head read and its body still on the wire.
pub struct Request<'a> {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: &'a mut dyn Read,
}

impl Request<'_> {
    /// The first header of that (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a query parameter (no percent-decoding: the runner sends plain values).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// Reads the whole body, at most `limit` bytes (more is an error).
    pub fn read_body(&mut self, limit: u64) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        self.body.take(limit + 1).read_to_end(&mut body)?;
        if body.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request body too large",
            ));
        }
        Ok(body)
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no body.
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let body = value.to_string().into_bytes();
        Response::empty(status)
            .with_header("Content-Type", "application/json")
            .with_body(body)
    }

    /// A response whose JSON body is given as text (possibly not valid JSON, on purpose).
    pub fn json_text(status: u16, body: String) -> Response {
        Response::empty(status)
            .with_header("Content-Type", "application/json")
            .with_body(body.into_bytes())
    }

    /// A response carrying `body` as `content_type`.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response::empty(status)
            .with_header("Content-Type", content_type)
            .with_body(body)
    }

    /// A plain-text response (error explanations).
    pub fn text(status: u16, text: &str) -> Response {
        Response::empty(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(text.as_bytes().to_vec())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn with_body(mut self, body: Vec<u8>) -> Response {
        self.body = body;
        self
    }
}

/// What the server calls for each request.
pub type Handler = dyn Fn(&mut Request<'_>) -> Response + Send + Sync;

/// Accepts connections until `stop` is set (and one more connection wakes the loop).
pub fn serve(listener: TcpListener, handler: Arc<Handler>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let handler = Arc::clone(&handler);
        thread::spawn(move || {
            if let Err(err) = serve_connection(stream, &*handler) {
                log::trace!("connection closed: {err}");
            }
        });
    }
}

fn serve_connection(stream: TcpStream, handler: &Handler) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let keep_alive = !head.wants_close();
        let response = {
            let mut body = BodyReader::new(&mut reader, &head.headers)?;
            let mut request = Request {
                method: head.method,
                path: head.path,
                query: head.query,
                headers: head.headers,
                body: &mut body,
            };
            let response = handler(&mut request);

            // Whatever the handler left unread must go, or the next request is garbage.
            io::copy(&mut body, &mut io::sink())?;
            response
        };
        write_response(&mut writer, &response, keep_alive)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

struct Head {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    version: String,
}

impl Head {
    fn wants_close(&self) -> bool {
        let connection = self.headers.iter().find(|(n, _)| n == "connection");
        match connection {
            Some((_, value)) => value.eq_ignore_ascii_case("close"),
            None => self.version == "HTTP/1.0",
        }
    }
}

fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed request line"));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut head = Head {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers: Vec::new(),
        version: version.to_string(),
    };

    let mut total = line.len();
    loop {
        line.clear();
        total += reader.read_line(&mut line)?;
        if total > MAX_HEAD_BYTES {
            return Err(invalid("request head too large"));
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            return Ok(Some(head));
        }
        let Some((name, value)) = trimmed.split_once(':') else {
            return Err(invalid("malformed header line"));
        };
        head.headers
            .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

fn write_response(out: &mut impl Write, response: &Response, keep_alive: bool) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(&response.body)?;
    out.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// An HTTP date (RFC 1123, always GMT): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn date(at: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Year, month (1-12) and day of the month of a count of days since 1970-01-01 (Howard
/// Hinnant's civil-from-days algorithm, for dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// The request body: a fixed length, or chunked.
enum BodyReader<'r, R: BufRead> {
    Fixed(io::Take<&'r mut R>),
    Chunked {
        inner: &'r mut R,
        left_in_chunk: u64,
        done: bool,
    },
}

impl<'r, R: BufRead> BodyReader<'r, R> {
    fn new(inner: &'r mut R, headers: &[(String, String)]) -> io::Result<Self> {
        let value = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        if value("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            return Ok(BodyReader::Chunked {
                inner,
                left_in_chunk: 0,
                done: false,
            });
        }
        let length = match value("content-length") {
            Some(text) => text.parse().map_err(|_| invalid("bad content-length"))?,
            None => 0,
        };
        Ok(BodyReader::Fixed(inner.take(length)))
    }
}

impl<R: BufRead> Read for BodyReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BodyReader::Fixed(take) => take.read(buf),
            BodyReader::Chunked {
                inner,
                left_in_chunk,
                done,
            } => {
                if *done {
                    return Ok(0);
                }
                if *left_in_chunk == 0 {
                    *left_in_chunk = read_chunk_size(*inner)?;
                    if *left_in_chunk == 0 {
                        skip_trailers(*inner)?;
                        *done = true;
                        return Ok(0);
                    }
                }
                let want = buf.len().min(*left_in_chunk as usize);
                let got = inner.read(&mut buf[..want])?;
                if got == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left_in_chunk -= got as u64;
                if *left_in_chunk == 0 {
                    let mut crlf = [0u8; 2];
                    inner.read_exact(&mut crlf)?;
                }
                Ok(got)
            }
        }
    }
}

fn read_chunk_size(reader: &mut impl BufRead) -> io::Result<u64> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let size = line.trim().split(';').next().unwrap_or("");
    u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))
}

fn skip_trailers(reader: &mut impl BufRead) -> io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_http_dates() {
        let at = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(date(at), "Sun, 06 Nov 1994 08:49:37 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_800);
        assert_eq!(date(leap), "Thu, 29 Feb 2024 00:00:00 GMT");
    }
}
