//! The live exec stream: one loop owns the socket, sends queued stdin, pings when quiet and
//! copies each output message straight to its sink.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::{Message, WebSocket};

use super::{
    is_timeout, AbortHandle, ExecError, ExecIo, ExecOutcome, TlsStream, IDLE_LIMIT, PING_INTERVAL,
};
use crate::kube::channel::{self, ExecProtocol, ExitStatus};

/// How long the server may keep the connection open after sending the exit status (2 s).
const STATUS_GRACE: Duration = Duration::from_secs(2);
/// How often the loop looks for stdin while stdin is open (20 ms), and while it flows (1 ms).
const STDIN_TICK: Duration = Duration::from_millis(20);
const STDIN_BUSY_TICK: Duration = Duration::from_millis(1);
/// Size of one stdin read, and how many reads may wait for the socket.
const STDIN_CHUNK: usize = 32 << 10;
const STDIN_QUEUE: usize = 4;
/// Most stdin chunks sent in a row before output is read again (64, 2 MiB).
const STDIN_BURST: usize = 64;
/// Largest error-channel payload kept (64 KiB).
const MAX_STATUS: usize = 64 << 10;

/// One read of stdin, framed for channel 0, or its end.
pub(super) enum StdinChunk {
    Frame(Vec<u8>),
    Eof,
    Failed(io::Error),
}

pub(super) fn spawn_stdin(
    mut reader: Box<dyn Read + Send>,
    pod: &str,
) -> Result<Receiver<StdinChunk>, ExecError> {
    let (tx, rx) = mpsc::sync_channel(STDIN_QUEUE);
    thread::Builder::new()
        .name(format!("exec-stdin-{pod}"))
        .spawn(move || read_stdin(&mut reader, &tx))
        .map_err(|source| ExecError::Io {
            pod: pod.to_string(),
            source,
        })?;
    Ok(rx)
}

/// Reads stdin into frames that already start with the channel byte (no copy later).
fn read_stdin(reader: &mut dyn Read, tx: &SyncSender<StdinChunk>) {
    loop {
        let mut frame = vec![0u8; 1 + STDIN_CHUNK];
        frame[0] = channel::STDIN;
        let chunk = match reader.read(&mut frame[1..]) {
            Ok(0) => StdinChunk::Eof,
            Ok(n) => {
                frame.truncate(1 + n);
                StdinChunk::Frame(frame)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => StdinChunk::Failed(e),
        };
        let last = !matches!(chunk, StdinChunk::Frame(_));
        if tx.send(chunk).is_err() || last {
            return;
        }
    }
}

/// How the read loop ended.
enum End {
    /// The server closed the WebSocket properly.
    Closed,
    /// The connection broke or was cut; the text says how.
    Dropped(String),
    /// The status came and the server did not close within the grace period.
    StatusGrace,
}

/// A live exec stream, from the upgrade to the end of the connection.
pub(super) struct Session {
    ws: WebSocket<TlsStream>,
    protocol: ExecProtocol,
    pod: String,
    io: ExecIo,
    stdin: Option<Receiver<StdinChunk>>,
    status: Vec<u8>,
    status_at: Option<Instant>,
    heard_at: Instant,
    pinged_at: Instant,
    read_timeout: Option<Duration>,
}

impl Session {
    pub(super) fn new(
        ws: WebSocket<TlsStream>,
        protocol: ExecProtocol,
        pod: String,
        io: ExecIo,
        stdin: Option<Receiver<StdinChunk>>,
    ) -> Session {
        let now = Instant::now();
        Session {
            ws,
            protocol,
            pod,
            io,
            stdin,
            status: Vec::new(),
            status_at: None,
            heard_at: now,
            pinged_at: now,
            read_timeout: None,
        }
    }

    pub(super) fn run(mut self) -> Result<ExecOutcome, ExecError> {
        let end = self.pump();
        let flushed = self.io.stdout.flush().and_then(|()| self.io.stderr.flush());
        if self.io.abort.as_ref().is_some_and(AbortHandle::is_aborted) {
            return Err(ExecError::Aborted { pod: self.pod });
        }
        let end = end?;
        flushed.map_err(|source| ExecError::Output {
            pod: self.pod.clone(),
            source,
        })?;
        self.outcome(end)
    }

    /// Moves bytes both ways until the connection ends.
    fn pump(&mut self) -> Result<End, ExecError> {
        loop {
            let sent = match self.send_stdin() {
                Ok(sent) => sent,
                Err(e) => return self.failed_write(e),
            };
            if let Some(end) = self.keepalive()? {
                return Ok(end);
            }
            self.set_read_timeout(sent);
            match self.ws.read() {
                Ok(message) => {
                    self.heard_at = Instant::now();
                    self.handle(message)?;
                }
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(End::Closed)
                }
                Err(e) => return Ok(End::Dropped(e.to_string())),
            }
        }
    }

    fn failed_write(&self, e: WriteFailure) -> Result<End, ExecError> {
        match e {
            WriteFailure::Socket(e) => Ok(End::Dropped(e.to_string())),
            WriteFailure::Stdin(source) => Err(ExecError::Input {
                pod: self.pod.clone(),
                source,
            }),
        }
    }

    /// Sends what stdin has ready (at most [`STDIN_BURST`] chunks, then output gets its turn);
    /// true when something was sent.
    // TODO: a stdin write blocks the loop, so output is not read meanwhile; a command that
    // neither reads its stdin nor stops writing output can stall both sides until the 30 s
    // write timeout cuts the exec (LostStatus). Fine for scripts handed over at the start.
    fn send_stdin(&mut self) -> Result<bool, WriteFailure> {
        let mut sent = false;
        for _ in 0..STDIN_BURST {
            if !self.send_stdin_chunk()? {
                break;
            }
            sent = true;
        }
        Ok(sent)
    }

    /// Sends one ready chunk, or the close-stdin message at the end (v5); false when there was
    /// nothing to send.
    fn send_stdin_chunk(&mut self) -> Result<bool, WriteFailure> {
        let Some(rx) = &self.stdin else {
            return Ok(false);
        };
        let chunk = match rx.try_recv() {
            Ok(chunk) => chunk,
            Err(TryRecvError::Empty) => return Ok(false),
            Err(TryRecvError::Disconnected) => StdinChunk::Eof,
        };
        match chunk {
            StdinChunk::Frame(frame) => self.ws.send(Message::binary(frame))?,
            StdinChunk::Failed(e) => return Err(WriteFailure::Stdin(e)),
            StdinChunk::Eof => {
                self.stdin = None;
                match self.protocol {
                    ExecProtocol::V5 => self
                        .ws
                        .send(Message::binary(vec![channel::CLOSE, channel::STDIN]))?,
                    ExecProtocol::V4 => log::debug!(
                        "exec in pod {}: stdin ended, but v4.channel.k8s.io cannot say so",
                        self.pod
                    ),
                }
            }
        }
        Ok(true)
    }

    /// Pings a quiet connection, gives up a silent one, ends the wait after the status.
    fn keepalive(&mut self) -> Result<Option<End>, ExecError> {
        if self
            .status_at
            .is_some_and(|at| at.elapsed() >= STATUS_GRACE)
        {
            return Ok(Some(End::StatusGrace));
        }
        let silence = self.heard_at.elapsed();
        if silence >= IDLE_LIMIT {
            return Err(ExecError::Idle {
                pod: self.pod.clone(),
                silence,
            });
        }
        if silence >= PING_INTERVAL && self.pinged_at.elapsed() >= PING_INTERVAL {
            self.pinged_at = Instant::now();
            if let Err(e) = self.ws.send(Message::Ping(Default::default())) {
                return Ok(Some(End::Dropped(e.to_string())));
            }
        }
        Ok(None)
    }

    /// Barely wait while stdin flows, short waits while it may, else wake up for pings and the
    /// status grace.
    fn set_read_timeout(&mut self, stdin_busy: bool) {
        let wanted = match (stdin_busy, self.stdin.is_some()) {
            (true, _) => STDIN_BUSY_TICK,
            (false, true) => STDIN_TICK,
            (false, false) => PING_INTERVAL.min(STATUS_GRACE),
        };
        if self.read_timeout != Some(wanted) {
            self.read_timeout = Some(wanted);
            if let Err(e) = self
                .ws
                .get_ref()
                .get_ref()
                .tcp()
                .set_read_timeout(Some(wanted))
            {
                log::debug!("exec in pod {}: cannot set the read timeout: {e}", self.pod);
            }
        }
    }

    fn handle(&mut self, message: Message) -> Result<(), ExecError> {
        match message {
            Message::Binary(data) => self.demultiplex(&data),
            Message::Ping(_) => {
                // tungstenite queued the pong; push it out now.
                if let Err(e) = self.ws.flush() {
                    log::debug!("exec in pod {}: cannot answer a ping: {e}", self.pod);
                }
                Ok(())
            }
            Message::Text(_) => {
                log::debug!("exec in pod {}: ignoring a text message", self.pod);
                Ok(())
            }
            Message::Close(frame) => {
                log::trace!("exec in pod {}: close {frame:?}", self.pod);
                Ok(())
            }
            Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    /// Copies one message's data to its sink as raw bytes.
    fn demultiplex(&mut self, message: &[u8]) -> Result<(), ExecError> {
        let Some((channel, data)) = channel::split_frame(message) else {
            return Ok(());
        };
        if data.is_empty() {
            return Ok(());
        }
        let sink = match channel {
            channel::STDOUT => &mut self.io.stdout,
            channel::STDERR => &mut self.io.stderr,
            channel::ERROR => {
                self.keep_status(data);
                return Ok(());
            }
            other => {
                log::trace!(
                    "exec in pod {}: {} bytes on channel {other}",
                    self.pod,
                    data.len()
                );
                return Ok(());
            }
        };
        sink.write_all(data).map_err(|source| ExecError::Output {
            pod: self.pod.clone(),
            source,
        })
    }

    fn keep_status(&mut self, data: &[u8]) {
        let room = MAX_STATUS.saturating_sub(self.status.len());
        self.status.extend_from_slice(&data[..data.len().min(room)]);
        if self.status_at.is_none() && channel::decode_exit_status(&self.status).is_ok() {
            self.status_at = Some(Instant::now());
        }
    }

    fn outcome(self, end: End) -> Result<ExecOutcome, ExecError> {
        let pod = self.pod;
        if self.status.is_empty() {
            let detail = match end {
                End::Closed => "closed by the server".to_string(),
                End::Dropped(how) => how,
                End::StatusGrace => "status grace ended".to_string(),
            };
            return Err(ExecError::LostStatus { pod, detail });
        }
        match channel::decode_exit_status(&self.status) {
            Ok(ExitStatus::Exited(exit_code)) => Ok(ExecOutcome {
                exit_code,
                protocol: self.protocol,
            }),
            Ok(ExitStatus::Failure(message)) => Err(ExecError::Failure { pod, message }),
            Err(detail) => Err(ExecError::InvalidStatus { pod, detail }),
        }
    }
}

enum WriteFailure {
    Socket(tungstenite::Error),
    Stdin(io::Error),
}

impl From<tungstenite::Error> for WriteFailure {
    fn from(e: tungstenite::Error) -> Self {
        WriteFailure::Socket(e)
    }
}
