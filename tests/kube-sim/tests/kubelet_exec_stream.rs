//! The exec stream's server side over loopback TCP, read by a tungstenite client.

use kube_sim::exec_stream::{serve, Ending, ExecFaults, Protocol};
use kube_sim::kubelet::ExecProcess;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response};
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

type Client = WebSocket<TcpStream>;

/// The server handshake's answer: echo the one subprotocol served.
struct EchoProtocol(Protocol);

impl Callback for EchoProtocol {
    fn on_request(self, _: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
        let value = HeaderValue::from_static(self.0.name());
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", value);
        Ok(response)
    }
}

/// Runs `script` on the host and serves it to one client offering `protocol`.
fn exec_pair(script: &str, protocol: Protocol, faults: ExecFaults) -> (Client, JoinHandle<Ending>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let child = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let ws = tungstenite::accept_hdr(stream, EchoProtocol(protocol)).unwrap();
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        serve(ws, protocol, ExecProcess::from(child), faults)
    });

    let mut request = format!("ws://{addr}/exec").into_client_request().unwrap();
    let offer = HeaderValue::from_static(protocol.name());
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", offer);
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (client, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(
        response.headers()["Sec-WebSocket-Protocol"],
        protocol.name()
    );
    (client, server)
}

#[derive(Debug, Default)]
struct Transcript {
    frames: Vec<Vec<u8>>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<serde_json::Value>,
    close_code: Option<u16>,
    ended_with_error: bool,
    /// Pong payloads, with whether the Status had already arrived.
    pongs: Vec<(Vec<u8>, bool)>,
}

/// The next message, reading again after EINTR.
fn next(client: &mut Client) -> tungstenite::Result<Message> {
    loop {
        match client.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Reads every message until the server's Close or the connection's end.
fn read_all(client: &mut Client) -> Transcript {
    let mut t = Transcript::default();
    loop {
        match next(client) {
            Ok(Message::Binary(data)) => {
                match data.first() {
                    Some(1) => t.stdout.extend_from_slice(&data[1..]),
                    Some(2) => t.stderr.extend_from_slice(&data[1..]),
                    Some(3) => t.status = Some(serde_json::from_slice(&data[1..]).unwrap()),
                    _ => {}
                }
                t.frames.push(data.to_vec());
            }
            Ok(Message::Pong(data)) => t.pongs.push((data.to_vec(), t.status.is_some())),
            Ok(Message::Close(frame)) => {
                t.close_code = frame.map(|f| u16::from(f.code));
            }
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(_) => {
                t.ended_with_error = true;
                break;
            }
        }
    }
    t
}

#[test]
fn v5_sends_an_initial_frame_the_output_the_status_and_close_1000() {
    let script = "echo out; echo err >&2; exit 7";
    let (mut client, server) = exec_pair(script, Protocol::V5, ExecFaults::default());
    let t = read_all(&mut client);

    assert_eq!(
        t.frames[0],
        vec![1u8],
        "the first frame is an empty stdout frame"
    );
    assert_eq!(t.stdout, b"out\n");
    assert_eq!(t.stderr, b"err\n");
    let status = t.status.unwrap();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "7");
    assert_eq!(t.close_code, Some(1000));
    assert!(!t.ended_with_error);
    assert_eq!(server.join().unwrap(), Ending::Completed);
}

#[test]
fn a_successful_command_ends_with_a_success_status() {
    let (mut client, server) = exec_pair("true", Protocol::V4, ExecFaults::default());
    let t = read_all(&mut client);

    assert_eq!(
        t.status.unwrap(),
        serde_json::json!({"metadata": {}, "status": "Success"})
    );
    assert_eq!(server.join().unwrap(), Ending::Completed);
}

#[test]
fn binary_output_arrives_byte_exact_over_several_frames() {
    let script = "printf '\\324'; head -c 200000 /dev/zero | tr '\\0' 'x'";
    let (mut client, server) = exec_pair(script, Protocol::V5, ExecFaults::default());
    let t = read_all(&mut client);

    assert_eq!(t.stdout.len(), 200_001);
    assert_eq!(t.stdout[0], 0xD4);
    assert!(t.stdout[1..].iter().all(|&b| b == b'x'));
    let stdout_frames = t.frames.iter().filter(|f| f.len() > 1 && f[0] == 1).count();
    assert!(stdout_frames > 1, "{stdout_frames} frames");
    assert_eq!(server.join().unwrap(), Ending::Completed);
}

#[test]
fn v5_close_message_closes_the_commands_stdin() {
    let script = "cat > /dev/null; echo done";
    let (mut client, server) = exec_pair(script, Protocol::V5, ExecFaults::default());
    client.send(Message::binary(b"\x00hello".to_vec())).unwrap();
    client.send(Message::binary(vec![255u8, 0])).unwrap();
    let t = read_all(&mut client);

    assert_eq!(t.stdout, b"done\n");
    assert_eq!(t.status.unwrap()["status"], "Success");
    assert_eq!(server.join().unwrap(), Ending::Completed);
}

#[test]
fn stdin_frames_reach_the_command() {
    let script = "head -c 5; echo";
    let (mut client, server) = exec_pair(script, Protocol::V4, ExecFaults::default());
    client.send(Message::binary(b"\x00hel".to_vec())).unwrap();
    client.send(Message::binary(b"\x00lo".to_vec())).unwrap();
    let t = read_all(&mut client);

    assert_eq!(t.stdout, b"hello\n");
    assert_eq!(server.join().unwrap(), Ending::Completed);
}

#[test]
fn v4_ignores_the_close_message() {
    let (mut client, server) = exec_pair("cat; echo eof", Protocol::V4, ExecFaults::default());
    client.send(Message::binary(vec![255u8, 0])).unwrap();
    client
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();

    // Only the initial frame comes: cat never sees EOF.
    assert_eq!(next(&mut client).unwrap(), Message::binary(vec![1u8]));
    assert!(
        next(&mut client).is_err(),
        "nothing more may arrive while stdin is open"
    );
    drop(client);
    assert_eq!(server.join().unwrap(), Ending::ClientGone);
}

#[test]
fn pings_are_answered_while_the_command_runs() {
    let (mut client, server) = exec_pair("sleep 1; echo late", Protocol::V5, ExecFaults::default());
    client
        .send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();

    let mut pong = None;
    for _ in 0..5 {
        match next(&mut client).unwrap() {
            Message::Pong(data) => {
                pong = Some(data.to_vec());
                break;
            }
            Message::Binary(data) => assert_eq!(data.to_vec(), vec![1u8]),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pong.as_deref(), Some(&b"are you there"[..]));
    let t = read_all(&mut client);
    let ending = server.join().unwrap();
    assert_eq!(t.stdout, b"late\n", "{t:?} {ending:?}");
    assert_eq!(ending, Ending::Completed);
}

#[test]
fn drop_after_bytes_cuts_the_connection_without_a_status() {
    let faults = ExecFaults {
        drop_after_bytes: Some(10),
    };
    let (mut client, server) = exec_pair("echo 0123456789abcdef; exit 0", Protocol::V5, faults);
    let t = read_all(&mut client);

    assert_eq!(t.stdout, b"0123456789");
    assert!(t.status.is_none());
    assert_eq!(t.close_code, None);
    assert!(
        t.ended_with_error,
        "the connection must end without a closing handshake"
    );
    assert_eq!(server.join().unwrap(), Ending::Dropped);
}

#[test]
fn pings_are_answered_during_a_flood_of_output() {
    let script = "head -c 20000000 /dev/zero";
    let (mut client, server) = exec_pair(script, Protocol::V5, ExecFaults::default());
    assert_eq!(next(&mut client).unwrap(), Message::binary(vec![1u8]));
    next(&mut client).unwrap();
    client
        .send(Message::Ping(b"flood".to_vec().into()))
        .unwrap();
    let t = read_all(&mut client);

    assert_eq!(t.pongs, vec![(b"flood".to_vec(), false)]);
    assert_eq!(t.status.unwrap()["status"], "Success");
    assert_eq!(server.join().unwrap(), Ending::Completed);
}

#[test]
fn a_client_close_ends_the_stream_with_a_close_reply() {
    let (mut client, server) = exec_pair("sleep 5", Protocol::V5, ExecFaults::default());
    assert_eq!(next(&mut client).unwrap(), Message::binary(vec![1u8]));
    client.close(None).unwrap();
    let t = read_all(&mut client);

    assert!(!t.ended_with_error, "the server answers the Close: {t:?}");
    assert!(t.status.is_none());
    assert_eq!(server.join().unwrap(), Ending::ClientGone);
}
