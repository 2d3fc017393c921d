//! `pods/exec` over WebSocket: the checks an API server makes before the upgrade, the 101
//! answer, then the kubelet's stream (`exec_stream`).

use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::Role;
use tungstenite::WebSocket;

use crate::api::Ctx;
use crate::exec_stream::{self, ExecFaults, Protocol};
use crate::http::{self, Conn, Request};
use crate::kubelet::ExecProcess;
use crate::status::ApiError;
use crate::tls::Stream;

/// Read timeout on an exec connection: the longest output waits for a quiet client.
const EXEC_READ_TIMEOUT: Duration = Duration::from_millis(10);

/// A checked exec request with its process already started.
pub struct ExecPlan {
    key: String,
    protocol: Protocol,
    target: Target,
    faults: ExecFaults,
}

/// What the upgraded connection serves.
enum Target {
    /// The started command.
    Process(ExecProcess),
    /// A refusal sent as a Failure Status on channel 3 (v5: the translator upgrades first).
    Refused(String),
}

/// How the kubelet words a container that is not running (it answers before any upgrade).
const NOT_RUNNING: &str = "unable to upgrade connection";

/// Checks an exec request and starts the command; refusals are HTTP errors before any upgrade.
pub fn plan(
    ctx: &Ctx,
    request: &Request,
    namespace: &str,
    name: &str,
) -> Result<ExecPlan, ApiError> {
    let pod = ctx
        .store
        .get("pods", namespace, name)
        .ok_or_else(|| ApiError::not_found("pods", name))?;
    let container = container_of(&pod, request.param("container").unwrap_or(""), name)?;
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let command = request.params("command");
    if command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container".into(),
        ));
    }
    let key = websocket_key(request)?;
    let protocol = choose_protocol(request, ctx.v4_only_exec)?;

    let stdin = request.flag("stdin");
    let target = match ctx.node.exec(namespace, name, &container, &command, stdin) {
        Ok(process) => Target::Process(process),
        Err(refusal) if refusal.message.starts_with(NOT_RUNNING) => match protocol {
            Protocol::V5 => Target::Refused(refusal.message),
            // The legacy path proxies the kubelet's plain-text 500.
            Protocol::V4 => return Err(ApiError::plain(500, refusal.message)),
        },
        Err(refusal) => {
            return Err(ApiError::from_refusal(
                refusal.code,
                &refusal.reason,
                refusal.message,
            ))
        }
    };
    let faults = ExecFaults {
        drop_after_bytes: ctx.faults.exec_drop_after(),
    };
    Ok(ExecPlan {
        key,
        protocol,
        target,
        faults,
    })
}

/// The container an exec targets: the one named, or the only one.
fn container_of(pod: &Value, asked: &str, name: &str) -> Result<String, ApiError> {
    let names: Vec<&str> = ["containers", "initContainers"]
        .iter()
        .flat_map(|list| pod["spec"][list].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    if !asked.is_empty() {
        return match names.contains(&asked) {
            true => Ok(asked.to_string()),
            false => Err(ApiError::bad_request(format!(
                "container {asked} is not valid for pod {name}"
            ))),
        };
    }
    let main: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match main.as_slice() {
        [only] => Ok(only.to_string()),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            main.join(" ")
        ))),
    }
}

fn websocket_key(request: &Request) -> Result<String, ApiError> {
    let upgrade = request
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    match (upgrade, request.header("sec-websocket-key")) {
        (true, Some(key)) => Ok(key.to_string()),
        // TODO: SPDY is not served; kubectl only falls back to it when the WebSocket fails.
        _ => Err(ApiError::bad_request("Upgrade request required".into())),
    }
}

/// Picks v5 when offered (unless the server is v4-only), else v4.
fn choose_protocol(request: &Request, v4_only: bool) -> Result<Protocol, ApiError> {
    let offered: Vec<&str> = request
        .headers
        .iter()
        .filter(|(k, _)| k == "sec-websocket-protocol")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    if offered.contains(&Protocol::V5.name()) && !v4_only {
        return Ok(Protocol::V5);
    }
    if offered.contains(&Protocol::V4.name()) {
        return Ok(Protocol::V4);
    }
    Err(ApiError::bad_request(format!(
        "unable to upgrade: none of the offered subprotocols {offered:?} is supported"
    )))
}

/// Answers 101 and hands the connection to the exec stream until the command ends.
pub fn run(plan: ExecPlan, mut conn: Conn<Stream>) {
    let protocol = plan.protocol.name();
    let head = format!(
        "{}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\
         Sec-WebSocket-Protocol: {protocol}\r\n\r\n",
        http::status_line(101),
        derive_accept_key(plan.key.as_bytes())
    );
    if conn
        .stream
        .write_all(head.as_bytes())
        .and_then(|_| conn.stream.flush())
        .is_err()
    {
        return;
    }
    // The stream writes pending output whenever a read times out, so reads must time out soon.
    if conn
        .stream
        .tcp()
        .set_read_timeout(Some(EXEC_READ_TIMEOUT))
        .is_err()
    {
        return;
    }
    let early = conn.take_buffered();
    let ws = WebSocket::from_partially_read(conn.stream, early, Role::Server, None);
    // How it ended (completed, dropped by a fault, client gone) shows on the client's side.
    let _ending = match plan.target {
        Target::Process(process) => exec_stream::serve(ws, plan.protocol, process, plan.faults),
        Target::Refused(message) => exec_stream::refuse(ws, &message),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"spec": {
            "containers": [{"name": "build"}, {"name": "helper"}],
            "initContainers": [{"name": "init"}],
        }})
    }

    #[test]
    fn an_unknown_container_is_a_bad_request_naming_it() {
        let e = container_of(&pod(), "nope", "p1").unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.status["message"],
            "container nope is not valid for pod p1"
        );
        assert_eq!(container_of(&pod(), "helper", "p1").unwrap(), "helper");
    }

    #[test]
    fn several_containers_need_a_name() {
        let e = container_of(&pod(), "", "p1").unwrap_err();
        assert_eq!(
            e.status["message"],
            "a container name must be specified for pod p1, choose one of: [build helper]"
        );
    }

    #[test]
    fn prefers_v5_unless_the_server_is_v4_only() {
        let request = Request {
            method: "GET".into(),
            path: "/".into(),
            query: vec![],
            headers: vec![(
                "sec-websocket-protocol".into(),
                "v5.channel.k8s.io, v4.channel.k8s.io".into(),
            )],
            body: vec![],
        };
        assert_eq!(choose_protocol(&request, false).unwrap(), Protocol::V5);
        assert_eq!(choose_protocol(&request, true).unwrap(), Protocol::V4);
    }
}
