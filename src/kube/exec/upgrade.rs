//! The exec's WebSocket upgrade (RFC 6455 section 4), written out here rather than left to
//! tungstenite so that a refusal's whole body is read: the API server's Status (`container x is
//! not valid for pod y`) may arrive after the response head, in another TLS record.

use std::io::{self, Read, Write};

use tungstenite::handshake::derive_accept_key;

use crate::kube::channel::{ExecProtocol, PROTOCOL_V4, PROTOCOL_V5};
use crate::kube::error::Status;
use crate::secret::Secret;

/// Largest response head accepted, and largest refusal body kept (64 KiB each).
const MAX_HEAD: usize = 64 << 10;
const MAX_BODY: usize = 64 << 10;

/// A successful upgrade: the chosen protocol and the bytes read past the head (first frames).
#[derive(Debug)]
pub(super) struct Upgraded {
    pub protocol: ExecProtocol,
    pub tail: Vec<u8>,
}

/// Why the upgrade did not happen.
#[derive(Debug)]
pub(super) enum UpgradeError {
    /// The server answered with an HTTP failure.
    Refused(Status),
    /// The answer is not a valid upgrade.
    Invalid(String),
    Io(io::Error),
}

impl From<io::Error> for UpgradeError {
    fn from(e: io::Error) -> Self {
        UpgradeError::Io(e)
    }
}

/// Sends the upgrade request for `target` (path and query) with `key` (from
/// `tungstenite::handshake::client::generate_key`) and reads the answer.
pub(super) fn upgrade(
    stream: &mut (impl Read + Write),
    authority: &str,
    target: &str,
    key: &str,
    token: Option<&Secret>,
) -> Result<Upgraded, UpgradeError> {
    let request = request_text(authority, target, key, token)?;
    stream.write_all(request.as_bytes())?;
    stream.flush()?;

    let (head, mut tail) = read_head(stream)?;
    let response = Head::parse(&head)?;
    if response.code != 101 {
        let body = read_body(stream, &response, &mut tail);
        return Err(UpgradeError::Refused(Status::parse(response.code, &body)));
    }
    response.check_upgrade(key)?;
    let echoed = response
        .header("sec-websocket-protocol")
        .unwrap_or_default();
    let protocol = ExecProtocol::from_header(echoed).ok_or_else(|| {
        UpgradeError::Invalid(format!(
            "the server chose no known subprotocol ({echoed:?})"
        ))
    })?;
    Ok(Upgraded { protocol, tail })
}

fn request_text(
    authority: &str,
    target: &str,
    key: &str,
    token: Option<&Secret>,
) -> Result<String, UpgradeError> {
    let mut text = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Protocol: {PROTOCOL_V5}, {PROTOCOL_V4}\r\n\
         User-Agent: alloy-runner/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(token) = token {
        if token.expose().chars().any(|c| c.is_control()) {
            let detail = "the bearer token holds characters not allowed in a header";
            return Err(UpgradeError::Invalid(detail.into()));
        }
        text.push_str(&format!("Authorization: Bearer {}\r\n", token.expose()));
    }
    text.push_str("\r\n");
    Ok(text)
}

/// Reads up to the blank line; returns the head and whatever was read past it.
fn read_head(stream: &mut impl Read) -> Result<(Vec<u8>, Vec<u8>), UpgradeError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let tail = buf.split_off(end + 4);
            return Ok((buf, tail));
        }
        if buf.len() > MAX_HEAD {
            return Err(UpgradeError::Invalid(
                "the answer's head is too long".into(),
            ));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            let detail = "the connection closed before the upgrade answer";
            return Err(UpgradeError::Invalid(detail.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The body of a refusal, as much as can be read (by length, chunked, or to the end).
fn read_body(stream: &mut impl Read, head: &Head, tail: &mut Vec<u8>) -> Vec<u8> {
    let length = head
        .header("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let wanted = length.unwrap_or(MAX_BODY).min(MAX_BODY);
    let mut chunk = [0u8; 4096];
    while tail.len() < wanted && !(chunked && find(tail, b"0\r\n\r\n").is_some()) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => tail.extend_from_slice(&chunk[..n]),
        }
    }
    tail.truncate(wanted);
    if chunked {
        dechunk(tail)
    } else {
        std::mem::take(tail)
    }
}

/// Joins the data of a chunked body; stops at the last chunk or at anything malformed.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        let data = &raw[line_end + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        raw = data.get(size + 2..).unwrap_or_default();
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A response head: status code and headers (names in lowercase).
struct Head {
    code: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(bytes: &[u8]) -> Result<Head, UpgradeError> {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let code = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| UpgradeError::Invalid(format!("bad status line {status_line:?}")))?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(Head { code, headers })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The checks of RFC 6455 4.1: upgrade to websocket and the accept key of our key.
    fn check_upgrade(&self, key: &str) -> Result<(), UpgradeError> {
        let has = |name: &str, token: &str| {
            self.header(name).is_some_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        };
        if !has("upgrade", "websocket") || !has("connection", "upgrade") {
            return Err(UpgradeError::Invalid(
                "the answer does not upgrade to websocket".into(),
            ));
        }
        if self.header("sec-websocket-accept") != Some(derive_accept_key(key.as_bytes()).as_str()) {
            return Err(UpgradeError::Invalid("wrong Sec-WebSocket-Accept".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// A stream that answers from `input` a few bytes at a time and records what is written.
    struct Fake {
        input: Cursor<Vec<u8>>,
        step: usize,
        written: Vec<u8>,
    }

    impl Fake {
        fn new(input: &[u8], step: usize) -> Fake {
            Fake {
                input: Cursor::new(input.to_vec()),
                step,
                written: Vec::new(),
            }
        }
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step);
            self.input.read(&mut buf[..n])
        }
    }

    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn switching(protocol: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn sends_protocols_and_token_and_keeps_the_bytes_after_the_head() {
        let mut input = switching("v5.channel.k8s.io");
        input.extend_from_slice(&[0x82, 0x01, 0x01]);
        let mut stream = Fake::new(&input, 7);
        let token = Secret::new("tok");
        let upgraded = upgrade(&mut stream, "[::1]:6443", "/api/x?a=b", KEY, Some(&token))
            .expect("valid upgrade");

        assert_eq!(upgraded.protocol, ExecProtocol::V5);
        assert_eq!(upgraded.tail, [0x82, 0x01, 0x01]);
        let sent = String::from_utf8(stream.written).expect("ascii request");
        assert!(
            sent.starts_with("GET /api/x?a=b HTTP/1.1\r\nHost: [::1]:6443\r\n"),
            "{sent}"
        );
        assert!(
            sent.contains("\r\nSec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io\r\n")
        );
        assert!(sent.contains("\r\nAuthorization: Bearer tok\r\n"));
        assert!(sent.ends_with("\r\n\r\n"));
    }

    #[test]
    fn reads_a_refusal_body_that_comes_after_the_head() {
        let body = r#"{"kind":"Status","status":"Failure","message":"container nope is not valid for pod p1","reason":"BadRequest","code":400}"#;
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut stream = Fake::new(answer.as_bytes(), 5);
        match upgrade(&mut stream, "h:1", "/", KEY, None) {
            Err(UpgradeError::Refused(status)) => {
                assert_eq!(status.message, "container nope is not valid for pod p1");
                assert_eq!(status.code, 400);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_chunked_refusal_body() {
        let answer = "HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5\r\npods \r\na\r\nis forbidd\r\n2\r\nen\r\n0\r\n\r\n";
        match upgrade(&mut Fake::new(answer.as_bytes(), 3), "h:1", "/", KEY, None) {
            Err(UpgradeError::Refused(status)) => {
                assert_eq!(
                    (status.code, status.message.as_str()),
                    (403, "pods is forbidden")
                )
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn refuses_a_wrong_accept_key_or_an_unknown_protocol() {
        let wrong = String::from_utf8(switching("v5.channel.k8s.io"))
            .expect("ascii")
            .replace("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "AAAA");
        let result = upgrade(&mut Fake::new(wrong.as_bytes(), 64), "h:1", "/", KEY, None);
        assert!(matches!(result, Err(UpgradeError::Invalid(d)) if d.contains("Accept")));

        let result = upgrade(
            &mut Fake::new(&switching("channel.k8s.io"), 64),
            "h:1",
            "/",
            KEY,
            None,
        );
        assert!(matches!(result, Err(UpgradeError::Invalid(d)) if d.contains("subprotocol")));
    }

    #[test]
    fn a_token_with_a_line_break_is_not_sent() {
        let token = Secret::new("a\r\nX-Evil: 1");
        let mut stream = Fake::new(&switching(PROTOCOL_V5), 64);
        let result = upgrade(&mut stream, "h:1", "/", KEY, Some(&token));
        assert!(matches!(result, Err(UpgradeError::Invalid(_))));
        assert!(stream.written.is_empty());
    }

    #[test]
    fn connection_closed_before_the_answer_is_invalid() {
        let result = upgrade(&mut Fake::new(b"HTTP/1.1 101", 64), "h:1", "/", KEY, None);
        assert!(matches!(result, Err(UpgradeError::Invalid(d)) if d.contains("closed")));
    }
}
