//! The server side of an exec over WebSocket (`v4.channel.k8s.io`, `v5.channel.k8s.io`).
//!
//! Channels and the final Status follow `staging/src/k8s.io/apimachinery/pkg/util/remotecommand`
//! and `pkg/kubelet/cri/streaming/remotecommand` of kubernetes/kubernetes: one binary message
//! is one channel byte plus data; 0 stdin, 1 stdout, 2 stderr, 3 error (the Status), 4
//! resize, 255 close (v5 only, `[255, 0]` closes stdin).

use crate::kubelet::{ExecProcess, ExitOutcome};
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;
/// How long to wait for the client's Close after ours.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Most output chunks sent before the client gets read again.
const BURST: usize = 64;
/// Largest output chunk put in one message.
const CHUNK: usize = 32 * 1024;
/// Output chunks read ahead of the WebSocket (256, 8 MiB): past that the command blocks on its
/// pipe, as it does behind a real kubelet, instead of the simulator holding all its output.
const READ_AHEAD: usize = 256;

/// The exec subprotocol agreed in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `v4.channel.k8s.io`: no way to close stdin.
    V4,
    /// `v5.channel.k8s.io`: `[255, 0]` closes stdin.
    V5,
}

impl Protocol {
    /// The subprotocol's name, to echo in `Sec-WebSocket-Protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }

    /// The protocol to pick from a `Sec-WebSocket-Protocol` list (v5 preferred), if any.
    pub fn negotiate(offered: &str) -> Option<Protocol> {
        let names: Vec<&str> = offered.split(',').map(str::trim).collect();
        [Protocol::V5, Protocol::V4]
            .into_iter()
            .find(|p| names.contains(&p.name()))
    }
}

/// Faults to inject into one exec stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecFaults {
    /// Cut the connection once this many output bytes (stdout and stderr payload) went out,
    /// with no Status and no Close frame.
    pub drop_after_bytes: Option<u64>,
}

/// How a served exec stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The Status went out on channel 3 and the connection was closed with 1000.
    Completed,
    /// The fault `drop_after_bytes` cut the connection.
    Dropped,
    /// The client went away (or closed) before the command ended.
    ClientGone,
}

enum Output {
    Data(u8, Vec<u8>),
    Eof,
}

/// Serves an exec on a WebSocket whose 101 answer was already written, until the command
/// ends; the stream is dropped (closed) on return.
///
/// `ws` must have a short read timeout (e.g. `TcpStream::set_read_timeout(Some(10 ms))`):
/// a read that times out is when pending output is written, so without one output waits
/// for the client's next message.
pub fn serve<S: Read + Write>(
    mut ws: WebSocket<S>,
    protocol: Protocol,
    mut process: ExecProcess,
    faults: ExecFaults,
) -> Ending {
    let output = start_readers(&mut process);
    let mut stdin = process.stdin.take().map(start_stdin_writer);
    let mut sent = 0u64;
    if send(&mut ws, vec![STDOUT]).is_err() {
        return Ending::ClientGone;
    }

    // Pump output out and client messages in until both output streams end.
    let mut open = 2;
    while open > 0 {
        if let Err(ending) = send_pending(&mut ws, &output, &mut open, &mut sent, faults) {
            return ending;
        }
        if open == 0 {
            break;
        }
        match read_client(&mut ws, protocol, &mut stdin) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Ending::ClientGone,
        }
    }

    // The command's end: its Status on channel 3, then a Close 1000.
    drop(stdin);
    let status = status_json(
        process
            .wait()
            .map_err(|e| format!("waiting for the command: {e}")),
    );
    finish(ws, &status)
}

/// Refuses an exec after the upgrade (a container that is not running, under v5): sends the
/// initial frame, an InternalError Status with `message`, then a Close 1000.
pub fn refuse<S: Read + Write>(mut ws: WebSocket<S>, message: &str) -> Ending {
    if send(&mut ws, vec![STDOUT]).is_err() {
        return Ending::ClientGone;
    }
    finish(ws, &status_json(Err(message.to_string())))
}

/// The Status JSON (no kind, no apiVersion) an exec ends with, as the kubelet words it.
pub fn status_json(outcome: Result<ExitOutcome, String>) -> String {
    match outcome.map(ExitOutcome::code) {
        Ok(0) => r#"{"metadata":{},"status":"Success"}"#.to_string(),
        Ok(code) => format!(
            "{{\"metadata\":{{}},\"status\":\"Failure\",\"message\":\"command terminated with \
             non-zero exit code: command terminated with exit code {code}\",\"reason\":\
             \"NonZeroExitCode\",\"details\":{{\"causes\":[{{\"reason\":\"ExitCode\",\
             \"message\":\"{code}\"}}]}}}}"
        ),
        Err(message) => {
            let quoted = |s: &str| serde_json::Value::from(s).to_string();
            format!(
                "{{\"metadata\":{{}},\"status\":\"Failure\",\"message\":{},\"reason\":\
                 \"InternalError\",\"details\":{{\"causes\":[{{\"message\":{}}}]}},\"code\":500}}",
                quoted(&format!("Internal error occurred: {message}")),
                quoted(&message)
            )
        }
    }
}

fn finish<S: Read + Write>(mut ws: WebSocket<S>, status: &str) -> Ending {
    let mut frame = vec![ERROR];
    frame.extend_from_slice(status.as_bytes());
    if send(&mut ws, frame).is_err() {
        return Ending::ClientGone;
    }
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    if ws.close(Some(close)).is_err() {
        return Ending::ClientGone;
    }
    // Wait for the client's Close (or the connection's end), answering pings meanwhile.
    let deadline = Instant::now() + CLOSE_WAIT;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if is_retry(&e) => {}
            Err(_) => break,
        }
    }
    Ending::Completed
}

fn start_readers(process: &mut ExecProcess) -> Receiver<Output> {
    let (tx, rx) = mpsc::sync_channel(READ_AHEAD);
    let streams: [(u8, Option<Box<dyn Read + Send>>); 2] = [
        (
            STDOUT,
            process
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
        (
            STDERR,
            process
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
    ];
    for (channel, stream) in streams {
        let tx = tx.clone();
        match stream {
            Some(stream) => {
                thread::spawn(move || pump(channel, stream, &tx));
            }
            None => {
                let _ = tx.send(Output::Eof);
            }
        }
    }
    rx
}

/// Reads one output pipe into the channel until EOF or until nobody listens.
fn pump(channel: u8, mut stream: Box<dyn Read + Send>, tx: &SyncSender<Output>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if tx.send(Output::Data(channel, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = tx.send(Output::Eof);
}

/// Feeds stdin from its own thread, so a command that does not read cannot stall the
/// stream; dropping the sender closes the process's stdin.
fn start_stdin_writer(mut pipe: std::process::ChildStdin) -> Sender<Vec<u8>> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    thread::spawn(move || {
        for chunk in rx {
            if pipe.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    tx
}

/// Sends pending output, at most `BURST` chunks so that client messages (stdin, pings) are
/// still read under a flood; an error is how the stream ended.
fn send_pending<S: Read + Write>(
    ws: &mut WebSocket<S>,
    output: &Receiver<Output>,
    open: &mut u8,
    sent: &mut u64,
    faults: ExecFaults,
) -> Result<(), Ending> {
    for _ in 0..BURST {
        match output.try_recv() {
            Ok(Output::Data(channel, data)) => match send_output(ws, channel, data, sent, faults) {
                Ok(true) => {}
                Ok(false) => return Err(Ending::Dropped),
                Err(_) => return Err(Ending::ClientGone),
            },
            Ok(Output::Eof) => *open = open.saturating_sub(1),
            Err(TryRecvError::Empty) => return Ok(()),
            Err(TryRecvError::Disconnected) => {
                *open = 0;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Sends one output chunk, honouring the byte budget; `Ok(false)` once the fault fired.
fn send_output<S: Read + Write>(
    ws: &mut WebSocket<S>,
    channel: u8,
    data: Vec<u8>,
    sent: &mut u64,
    faults: ExecFaults,
) -> tungstenite::Result<bool> {
    let budget = faults
        .drop_after_bytes
        .map(|limit| limit.saturating_sub(*sent));
    let cut = budget.is_some_and(|left| data.len() as u64 >= left);
    let take = match budget {
        Some(left) if cut => left as usize,
        _ => data.len(),
    };
    if take > 0 {
        let mut frame = Vec::with_capacity(take + 1);
        frame.push(channel);
        frame.extend_from_slice(&data[..take]);
        send(ws, frame)?;
        *sent += take as u64;
    }
    Ok(!cut)
}

/// Handles what the client sent, if anything; `Ok(false)` when the client closed.
fn read_client<S: Read + Write>(
    ws: &mut WebSocket<S>,
    protocol: Protocol,
    stdin: &mut Option<Sender<Vec<u8>>>,
) -> tungstenite::Result<bool> {
    let message = match ws.read() {
        Ok(message) => message,
        Err(tungstenite::Error::Io(e)) if is_retry(&e) => return Ok(true),
        Err(e) => return Err(e),
    };
    match message {
        Message::Binary(data) => match data.first() {
            Some(&STDIN) => {
                if let Some(tx) = stdin.as_ref() {
                    let _ = tx.send(data[1..].to_vec());
                }
            }
            Some(&CLOSE) if protocol == Protocol::V5 && data.len() == 2 && data[1] == STDIN => {
                stdin.take();
            }
            _ => {}
        },
        Message::Ping(_) => ws.flush()?,
        Message::Close(_) => {
            // Send the Close reply tungstenite queued before the connection goes.
            let _ = ws.flush();
            return Ok(false);
        }
        _ => {}
    }
    Ok(true)
}

fn send<S: Read + Write>(ws: &mut WebSocket<S>, frame: Vec<u8>) -> tungstenite::Result<()> {
    ws.send(Message::binary(frame))
}

fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_v5_over_v4() {
        let offered = "v4.channel.k8s.io, v5.channel.k8s.io";
        assert_eq!(Protocol::negotiate(offered), Some(Protocol::V5));
        assert_eq!(Protocol::negotiate("v4.channel.k8s.io"), Some(Protocol::V4));
        assert_eq!(Protocol::negotiate("channel.k8s.io"), None);
    }

    #[test]
    fn status_json_matches_the_kubelet_wording() {
        assert_eq!(
            status_json(Ok(ExitOutcome::Code(0))),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let failed = status_json(Ok(ExitOutcome::Code(3)));
        assert_eq!(
            failed,
            concat!(
                r#"{"metadata":{},"status":"Failure","message":"command terminated with "#,
                r#"non-zero exit code: command terminated with exit code 3","reason":"#,
                r#""NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
            )
        );
        let killed: serde_json::Value =
            serde_json::from_str(&status_json(Ok(ExitOutcome::Signal(9)))).unwrap();
        assert_eq!(killed["details"]["causes"][0]["message"], "137");
        let internal: serde_json::Value =
            serde_json::from_str(&status_json(Err("boom \"x\"".into()))).unwrap();
        assert_eq!(internal["message"], "Internal error occurred: boom \"x\"");
        assert_eq!(internal["details"]["causes"][0]["message"], "boom \"x\"");
        assert_eq!(internal["code"], 500);
    }
}
