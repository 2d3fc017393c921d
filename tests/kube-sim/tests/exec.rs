//! `pods/exec` through the API server: errors before the upgrade, subprotocol choice (v5, or
//! v4 on a v4-only server), and the drop fault.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{call, call_with, create_running, pod, sim};
use kube_sim::{Sim, SimHandle, SimOptions};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

/// What an exec stream delivered.
#[derive(Debug, Default)]
struct Outcome {
    protocol: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<Value>,
}

fn exec(sim: &SimHandle, query: &str, offer: &str) -> Result<Outcome, tungstenite::Error> {
    let url = format!(
        "ws://{}/api/v1/namespaces/ci/pods/p/exec?{query}",
        sim.addr()
    );
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", offer.parse().unwrap());
    let tcp = TcpStream::connect(sim.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (mut ws, response) = tungstenite::client(request, tcp).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
    })?;
    let mut outcome = Outcome {
        protocol: response.headers()["sec-websocket-protocol"]
            .to_str()
            .unwrap()
            .to_string(),
        ..Outcome::default()
    };
    loop {
        match ws.read() {
            Ok(Message::Binary(data)) if !data.is_empty() => match data[0] {
                1 => outcome.stdout.extend_from_slice(&data[1..]),
                2 => outcome.stderr.extend_from_slice(&data[1..]),
                3 => outcome.status = Some(serde_json::from_slice(&data[1..]).unwrap()),
                _ => {}
            },
            Ok(Message::Close(_)) => return Ok(outcome),
            Err(e) => {
                eprintln!("exec stream ended: {e}");
                return Ok(outcome);
            }
            Ok(_) => {}
        }
    }
}

const BOTH: &str = "v5.channel.k8s.io, v4.channel.k8s.io";

#[test]
fn exec_answers_v5_with_output_and_the_exit_status() {
    let sim = sim();
    create_running(&sim, "ci", "p");
    let out = exec(
        &sim,
        "command=sh&command=-c&command=echo+hi;+exit+3&stdout=true&stderr=true",
        BOTH,
    )
    .unwrap();
    assert_eq!(out.protocol, "v5.channel.k8s.io");
    assert_eq!(out.stdout, b"hi\n");
    let status = out.status.unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
}

#[test]
fn a_v4_only_server_picks_v4_from_the_offer_and_refuses_a_v5_only_client() {
    let options = SimOptions {
        v4_only_exec: true,
        ..SimOptions::default()
    };
    let sim = Sim::start(options).unwrap();
    create_running(&sim, "ci", "p");
    let out = exec(&sim, "command=true&stdout=true", BOTH).unwrap();
    assert_eq!(out.protocol, "v4.channel.k8s.io");
    assert_eq!(out.status.unwrap()["status"], "Success");
    let refused = exec(&sim, "command=true&stdout=true", "v5.channel.k8s.io");
    assert!(
        matches!(refused, Err(tungstenite::Error::Http(ref r)) if r.status() == 400),
        "{refused:?}"
    );
}

#[test]
fn the_drop_fault_cuts_the_stream_without_a_status() {
    let sim = sim();
    create_running(&sim, "ci", "p");
    // Five lines, 0.2 s apart, so that they leave in separate frames.
    let script =
        "command=sh&command=-c&command=for+i+in+1+2+3+4+5;+do+echo+line$i;+sleep+0.2;+done";
    let query = format!("{script}&stdout=true");
    sim.drop_exec_after(Some(10));
    let cut = exec(&sim, &query, BOTH).unwrap();
    assert!(cut.status.is_none());
    let text = String::from_utf8(cut.stdout).unwrap();
    assert!(
        text.starts_with("line1\n") && !text.contains("line5"),
        "{text:?}"
    );
    sim.drop_exec_after(None);
    let whole = exec(&sim, &query, BOTH).unwrap();
    assert_eq!(whole.status.unwrap()["status"], "Success");
    assert_eq!(whole.stdout, b"line1\nline2\nline3\nline4\nline5\n");
}

/// The headers of a WebSocket upgrade offering v5 and v4.
fn upgrade_headers() -> [(&'static str, &'static str); 5] {
    [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Protocol", BOTH),
    ]
}

#[test]
fn exec_errors_come_before_the_upgrade_as_status_answers() {
    let sim = sim();
    let ws = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Protocol", BOTH),
    ];
    let path = |pod: &str, query: &str| {
        format!("/api/v1/namespaces/ci/pods/{pod}/exec?command=true&stdout=true{query}")
    };
    let missing = call_with(sim.addr(), "GET", &path("nope", ""), &ws, None);
    assert_eq!(missing.code, 404);
    assert_eq!(missing.json()["message"], "pods \"nope\" not found");

    let mut two = pod("two", "sleep 30");
    two["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "d", "image": "alpine", "command": ["sleep", "30"]}));
    assert_eq!(
        call(&sim, "POST", "/api/v1/namespaces/ci/pods", Some(&two)).code,
        201
    );
    let unnamed = call_with(sim.addr(), "GET", &path("two", ""), &ws, None);
    assert_eq!(unnamed.code, 400);
    assert_eq!(
        unnamed.json()["message"],
        "a container name must be specified for pod two, choose one of: [c d]"
    );
    let wrong = call_with(sim.addr(), "GET", &path("two", "&container=x"), &ws, None);
    assert_eq!(
        wrong.json()["message"],
        "container x is not valid for pod two"
    );

    let mut unscheduled = pod("lost", "true");
    unscheduled["spec"]["nodeSelector"] = json!({"pool": "none"});
    call(
        &sim,
        "POST",
        "/api/v1/namespaces/ci/pods",
        Some(&unscheduled),
    );
    let lost = call_with(sim.addr(), "GET", &path("lost", ""), &ws, None);
    assert_eq!(
        lost.json()["message"],
        "pod lost does not have a host assigned"
    );
}

/// A running pod named `p` whose container `d` has already exited.
fn pod_with_an_exited_container(sim: &SimHandle) {
    let mut p = pod("p", "sleep 300");
    let quick = json!({"name": "d", "image": "alpine", "command": ["true"]});
    p["spec"]["containers"].as_array_mut().unwrap().push(quick);
    assert_eq!(
        call(sim, "POST", "/api/v1/namespaces/ci/pods", Some(&p)).code,
        201
    );
    let exited = sim.wait_for_pod("ci", "p", Duration::from_secs(20), |p| {
        let statuses = p
            .map(|p| p["status"]["containerStatuses"].clone())
            .unwrap_or_default();
        let d = statuses
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == "d");
        d.is_some_and(|d| d["state"]["terminated"].is_object())
    });
    assert!(exited, "container d exits: {:?}", sim.pod("ci", "p"));
}

#[test]
fn a_stopped_container_fails_on_channel_3_under_v5() {
    let sim = sim();
    pod_with_an_exited_container(&sim);
    let out = exec(&sim, "command=true&stdout=true&container=d", BOTH).unwrap();
    let status = out.status.unwrap();
    assert_eq!(status["reason"], "InternalError");
    assert_eq!(status["code"], 500);
}

#[test]
fn a_stopped_container_is_a_plain_500_on_the_v4_path() {
    let options = SimOptions {
        v4_only_exec: true,
        ..SimOptions::default()
    };
    let sim = Sim::start(options).unwrap();
    pod_with_an_exited_container(&sim);
    let path = "/api/v1/namespaces/ci/pods/p/exec?command=true&stdout=true&container=d";
    let refused = call_with(sim.addr(), "GET", path, &upgrade_headers(), None);
    assert_eq!(refused.code, 500);
    assert_eq!(
        refused.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let body = String::from_utf8(refused.body).unwrap();
    assert!(body.starts_with("unable to upgrade connection"), "{body}");
}
