//! Exec over WebSocket against a loopback server sending hand-made frames.

mod kube_support;

use std::io::{self, Cursor, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use alloy_runner::config::KubernetesConfig;
use alloy_runner::kube::{
    AbortHandle, Client, ExecError, ExecIo, ExecOutcome, ExecProtocol, ExecRequest,
};
use kube_support::{
    close, pki, read_until, send, send_exit, status_body, token_client, ExecServer, ServerStream,
    Sink, TempDir, Upgrade,
};
use tungstenite::{Message, WebSocket};

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

fn request(command: &[&str]) -> ExecRequest {
    ExecRequest {
        namespace: "ci".into(),
        pod: "ci-1".into(),
        container: "build".into(),
        command: command.iter().map(|s| s.to_string()).collect(),
    }
}

struct Run {
    result: Result<ExecOutcome, ExecError>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn run_exec(server: &ExecServer, stdin: Option<&[u8]>, abort: Option<AbortHandle>) -> Run {
    let client = token_client(&server.url(), "exec-token");
    let (stdout, stderr) = (Sink::default(), Sink::default());
    let io = ExecIo {
        stdin: stdin.map(|s| Box::new(Cursor::new(s.to_vec())) as Box<dyn io::Read + Send>),
        stdout: Box::new(stdout.clone()),
        stderr: Box::new(stderr.clone()),
        abort,
    };
    let result = client.exec(&request(&["sh", "-c", "cat > /tmp/s; echo done"]), io);
    Run {
        result,
        stdout: stdout.bytes(),
        stderr: stderr.bytes(),
    }
}

fn accept(protocols: &[&'static str]) -> Upgrade {
    Upgrade::Accept(protocols.to_vec())
}

// C13: the close-stdin message lets `cat` end; output and status follow.
#[test]
fn v5_sends_stdin_then_closes_it_and_reads_on_to_the_status() {
    let server = ExecServer::start(accept(&[V5, V4]), |ws| {
        let frames = read_until(ws, |f| f == [255, 0]);
        let mut input = Vec::new();
        for frame in &frames[..frames.len() - 1] {
            assert_eq!(frame[0], 0, "stdin frames are on channel 0");
            input.extend_from_slice(&frame[1..]);
        }
        send(ws, 1, &[]);
        send(ws, 1, &input);
        send(ws, 1, b"done\n");
        send_exit(ws, 0);
        close(ws);
    });
    let run = run_exec(&server, Some(b"hello"), None);

    let outcome = run.result.expect("exec ends with a status");
    assert_eq!(
        outcome,
        ExecOutcome {
            exit_code: 0,
            protocol: ExecProtocol::V5
        }
    );
    assert_eq!(run.stdout, b"hellodone\n");
    let seen = &server.seen()[0];
    assert_eq!(seen.offered, "v5.channel.k8s.io, v4.channel.k8s.io");
    assert_eq!(seen.authorization.as_deref(), Some("Bearer exec-token"));
    assert_eq!(
        seen.uri,
        "/api/v1/namespaces/ci/pods/ci-1/exec?command=sh&command=-c&\
         command=cat%20%3E%20%2Ftmp%2Fs%3B%20echo%20done&container=build&stdin=true&\
         stdout=true&stderr=true"
    );
}

#[test]
fn large_stdin_arrives_whole_and_in_order() {
    let input: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let expected_len = input.len();
    let server = ExecServer::start(accept(&[V5]), move |ws| {
        let frames = read_until(ws, |f| f == [255, 0]);
        let total: usize = frames
            .iter()
            .filter(|f| f[0] == 0)
            .map(|f| f.len() - 1)
            .sum();
        send(ws, 1, total.to_string().as_bytes());
        let first = frames.first().map(|f| f[1..4].to_vec()).unwrap_or_default();
        send(ws, 2, &first);
        send_exit(ws, 0);
        close(ws);
    });
    let run = run_exec(&server, Some(&input), None);
    run.result.expect("status");
    assert_eq!(run.stdout, expected_len.to_string().as_bytes());
    assert_eq!(run.stderr, [0, 1, 2]);
}

#[test]
fn v4_is_used_when_the_server_only_speaks_v4() {
    let server = ExecServer::start(accept(&[V4]), |ws| {
        send(ws, 1, b"out\n");
        send(ws, 2, b"err\n");
        send_exit(ws, 3);
        close(ws);
    });
    let run = run_exec(&server, None, None);
    assert_eq!(
        run.result.expect("status"),
        ExecOutcome {
            exit_code: 3,
            protocol: ExecProtocol::V4
        }
    );
    assert_eq!(run.stdout, b"out\n");
    assert_eq!(run.stderr, b"err\n");
    assert!(
        !server.seen()[0].uri.contains("stdin="),
        "no stdin asked without a reader"
    );
}

// C13: under v4 stdin EOF cannot be sent; the client must not invent a message for it.
#[test]
fn v4_sends_stdin_but_never_the_close_message() {
    let server = ExecServer::start(accept(&[V4]), |ws| {
        let tcp = ws.get_ref().get_ref();
        tcp.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("socket timeout");
        let mut frames = Vec::new();
        while let Ok(message) = ws.read() {
            if let Message::Binary(data) = message {
                frames.push(data.to_vec());
            }
        }
        let report = format!("{frames:?}");
        send(ws, 1, report.as_bytes());
        send_exit(ws, 0);
        close(ws);
    });
    let run = run_exec(&server, Some(b"hello"), None);
    assert_eq!(run.result.expect("status").protocol, ExecProtocol::V4);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "[[0, 104, 101, 108, 108, 111]]"
    );
}

// C11: bytes pass through untouched, whatever the frame boundaries.
#[test]
fn output_bytes_pass_through_unchanged_across_frames() {
    let server = ExecServer::start(accept(&[V5]), |ws| {
        send(ws, 1, &[b'a', 0xC3]);
        send(ws, 1, &[0xA9, b'\n']);
        send(ws, 1, &[0xD4]);
        send(ws, 2, &[0xFF, 0xFE]);
        send_exit(ws, 0);
        close(ws);
    });
    let run = run_exec(&server, None, None);
    run.result.expect("status");
    assert_eq!(run.stdout, [b'a', 0xC3, 0xA9, b'\n', 0xD4]);
    assert_eq!(run.stderr, [0xFF, 0xFE]);
}

#[test]
fn exit_codes_are_read_from_the_status() {
    for code in [0, 1, 7, 255] {
        let server = ExecServer::start(accept(&[V5]), move |ws| {
            send_exit(ws, code);
            close(ws);
        });
        let run = run_exec(&server, None, None);
        assert_eq!(run.result.expect("status").exit_code, code);
    }
}

// C12: output, then the connection closes with nothing on channel 3.
#[test]
fn closed_connection_without_status_is_lost_status_not_success() {
    let server = ExecServer::start(accept(&[V5]), |ws| {
        send(ws, 1, b"partial output\n");
        close(ws);
    });
    let run = run_exec(&server, None, None);
    let err = run.result.expect_err("no status is no success");
    assert!(matches!(err, ExecError::LostStatus { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with("exec in pod ci-1: the connection ended without the command's exit status"));
    assert_eq!(run.stdout, b"partial output\n");
}

#[test]
fn dropped_connection_without_status_is_lost_status() {
    let server = ExecServer::start(accept(&[V5]), |ws| {
        send(ws, 1, b"x");
        // Cut the TCP connection: no Close frame, no TLS close_notify.
        let _ = ws.get_ref().get_ref().shutdown(std::net::Shutdown::Both);
    });
    let run = run_exec(&server, None, None);
    assert!(
        matches!(run.result, Err(ExecError::LostStatus { .. })),
        "{:?}",
        run.result
    );
}

#[test]
fn failure_without_exit_code_cause_is_a_failure_with_its_message() {
    let server = ExecServer::start(accept(&[V5]), |ws| {
        let status = br#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: container is not running","reason":"InternalError","details":{"causes":[{"message":"container is not running"}]},"code":500}"#;
        send(ws, 3, status);
        close(ws);
    });
    let err = run_exec(&server, None, None).result.expect_err("failure");
    assert_eq!(
        err.to_string(),
        "exec in pod ci-1 failed: Internal error occurred: error executing command in \
         container: container is not running"
    );
}

#[test]
fn server_pings_are_answered() {
    let server = ExecServer::start(accept(&[V5]), |ws| {
        let tcp = ws.get_ref().get_ref();
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        ws.send(Message::Ping(b"are you there".to_vec().into()))
            .expect("ping");
        loop {
            match ws.read() {
                Ok(Message::Pong(data)) if data.as_ref() == b"are you there" => break,
                Ok(_) => continue,
                Err(_) => return,
            }
        }
        send(ws, 1, b"pong seen");
        send_exit(ws, 0);
        close(ws);
    });
    let run = run_exec(&server, None, None);
    run.result.expect("status after the pong");
    assert_eq!(run.stdout, b"pong seen");
}

// C18 for exec: a refused token makes the token file be read again, and the exec tried again.
#[test]
fn exec_refused_with_401_reads_the_token_file_again_and_retries() {
    let server = ExecServer::start(Upgrade::RequireToken("Bearer t2"), |ws| {
        send(ws, 1, b"ok");
        send_exit(ws, 0);
        close(ws);
    });
    let dir = TempDir::new("exec-sa");
    dir.write("token", b"t1");
    dir.write("ca.crt", &std::fs::read(pki("ca.crt")).expect("fixture"));
    let port = server.addr.port().to_string();
    let client = Client::in_cluster_from("127.0.0.1", &port, &dir.0).expect("in-cluster");
    dir.write("token", b"t2");

    let stdout = Sink::default();
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(stdout.clone()),
        stderr: Box::new(io::sink()),
        abort: None,
    };
    client
        .exec(&request(&["true"]), io)
        .expect("second upgrade with t2 works");
    assert_eq!(stdout.bytes(), b"ok");
    let tokens: Vec<_> = server.seen().into_iter().map(|s| s.authorization).collect();
    assert_eq!(
        tokens,
        [Some("Bearer t1".to_string()), Some("Bearer t2".to_string())]
    );
}

#[test]
fn status_then_a_cut_connection_still_gives_the_exit_code() {
    let server = ExecServer::start(accept(&[V5]), |ws| {
        send(ws, 1, b"last line\n");
        send_exit(ws, 4);
        let _ = ws.get_ref().get_ref().shutdown(std::net::Shutdown::Both);
    });
    let run = run_exec(&server, None, None);
    assert_eq!(run.result.expect("status arrived").exit_code, 4);
    assert_eq!(run.stdout, b"last line\n");
}

#[test]
fn status_without_close_ends_the_exec_after_a_short_grace() {
    let server = ExecServer::start(accept(&[V5]), |ws| {
        send_exit(ws, 0);
        thread::sleep(Duration::from_secs(30));
    });
    let started = Instant::now();
    let run = run_exec(&server, None, None);
    assert_eq!(run.result.expect("status arrived").exit_code, 0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn refused_upgrade_shows_the_api_status_message() {
    let body = status_body(
        400,
        "BadRequest",
        "container nope is not valid for pod ci-1",
    );
    let server = ExecServer::start(Upgrade::Reject(400, body.to_string()), |_| {});
    let err = run_exec(&server, None, None).result.expect_err("refused");
    assert_eq!(
        err.to_string(),
        "exec in pod ci-1 refused: container nope is not valid for pod ci-1 (http 400, BadRequest)"
    );

    let body = status_body(404, "NotFound", "pods \"ci-1\" not found");
    let server = ExecServer::start(Upgrade::Reject(404, body.to_string()), |_| {});
    match run_exec(&server, None, None).result {
        Err(ExecError::Rejected { status, .. }) => assert!(status.is_not_found()),
        other => panic!("expected a 404 refusal, got {other:?}"),
    }
}

#[test]
fn abort_from_another_thread_ends_the_exec_promptly() {
    let server = ExecServer::start(accept(&[V5]), |ws| {
        send(ws, 1, b"started\n");
        thread::sleep(Duration::from_secs(20));
    });
    let abort = AbortHandle::new();
    let remote = abort.clone();
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        remote.abort();
    });
    let started = Instant::now();
    let run = run_exec(&server, None, Some(abort));
    assert!(
        matches!(run.result, Err(ExecError::Aborted { .. })),
        "{:?}",
        run.result
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(run.stdout, b"started\n");
}

#[test]
fn aborted_handle_stops_a_later_exec_before_it_starts() {
    let server = ExecServer::start(accept(&[V5]), |ws| {
        send_exit(ws, 0);
        close(ws);
    });
    let abort = AbortHandle::new();
    abort.abort();
    let run = run_exec(&server, None, Some(abort));
    assert!(
        matches!(run.result, Err(ExecError::Aborted { .. })),
        "{:?}",
        run.result
    );
}

/// Counts bytes and sums them without keeping them.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>, Arc<AtomicUsize>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(buf.len(), Ordering::Relaxed);
        let sum: usize = buf.iter().map(|b| *b as usize).sum();
        self.1.fetch_add(sum, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn large_output_streams_through_many_frames() {
    const FRAMES: usize = 256;
    let server = ExecServer::start(accept(&[V5]), |ws: &mut WebSocket<ServerStream>| {
        let chunk: Vec<u8> = (0..32 * 1024).map(|i| (i % 7) as u8).collect();
        for _ in 0..FRAMES {
            send(ws, 1, &chunk);
        }
        send_exit(ws, 0);
        close(ws);
    });
    let client = token_client(&server.url(), "t");
    let counter = Counter::default();
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(counter.clone()),
        stderr: Box::new(io::sink()),
        abort: None,
    };
    client.exec(&request(&["yes"]), io).expect("status");
    let per_chunk: usize = (0..32 * 1024).map(|i| i % 7).sum();
    assert_eq!(counter.0.load(Ordering::Relaxed), FRAMES * 32 * 1024);
    assert_eq!(counter.1.load(Ordering::Relaxed), FRAMES * per_chunk);
}

#[test]
fn exec_server_certificate_from_another_ca_is_a_tls_error_naming_the_host() {
    let server = ExecServer::start(accept(&[V5]), |_| {});
    let cfg = KubernetesConfig {
        host: Some(server.url()),
        ca_file: Some(pki("other-ca.crt")),
        ..KubernetesConfig::default()
    };
    let client = Client::from_config(&cfg).expect("client builds");
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(io::sink()),
        stderr: Box::new(io::sink()),
        abort: None,
    };
    let err = client
        .exec(&request(&["true"]), io)
        .expect_err("does not verify");
    assert!(matches!(err, ExecError::Tls { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("tls with {} failed", server.addr)),
        "{err}"
    );
}

#[test]
fn refused_connection_names_the_exec_url_without_the_command() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("addr").port()
    };
    let client = token_client(&format!("https://127.0.0.1:{port}"), "t");
    let io = ExecIo {
        stdin: None,
        stdout: Box::new(io::sink()),
        stderr: Box::new(io::sink()),
        abort: None,
    };
    let err = client
        .exec(&request(&["sh", "-c", "echo secret-script"]), io)
        .expect_err("refused");
    let message = err.to_string();
    let expected =
        format!("cannot connect to https://127.0.0.1:{port}/api/v1/namespaces/ci/pods/ci-1/exec: ");
    assert!(message.starts_with(&expected), "{message}");
    assert!(!message.contains("secret-script"), "{message}");
}
