//! The exec stream's channels and its exit status, without any I/O.
//!
//! Channel numbers and subprotocols: `staging/src/k8s.io/apimachinery/pkg/util/remotecommand/
//! constants.go` and `staging/src/k8s.io/apiserver/pkg/util/wsstream/conn.go`; the exit status
//! on the error channel: `staging/src/k8s.io/client-go/tools/remotecommand/v4.go`
//! (`NonZeroExitCodeReason`, `ExitCodeCauseType`).

use super::error::Status;

/// Subprotocol with the close-stream message (the API server's own WebSocket translator).
pub const PROTOCOL_V5: &str = "v5.channel.k8s.io";
/// Subprotocol spoken by the kubelet; no way to close stdin.
pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";

/// Client to server: the command's stdin.
pub const STDIN: u8 = 0;
/// Server to client: the command's stdout.
pub const STDOUT: u8 = 1;
/// Server to client: the command's stderr.
pub const STDERR: u8 = 2;
/// Server to client: the JSON `Status` that ends the command.
pub const ERROR: u8 = 3;
/// Client to server (v5 only): `[CLOSE, channel]` closes that channel.
pub const CLOSE: u8 = 255;

/// Cause reason that carries the exit code in its message.
const EXIT_CODE_CAUSE: &str = "ExitCode";

/// The subprotocol the server chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecProtocol {
    /// `v5.channel.k8s.io`: stdin can be closed.
    V5,
    /// `v4.channel.k8s.io`: stdin EOF cannot be sent; callers must not rely on it.
    V4,
}

impl ExecProtocol {
    /// Reads the `Sec-WebSocket-Protocol` the server echoed.
    pub fn from_header(value: &str) -> Option<ExecProtocol> {
        match value.trim() {
            PROTOCOL_V5 => Some(ExecProtocol::V5),
            PROTOCOL_V4 => Some(ExecProtocol::V4),
            _ => None,
        }
    }
}

/// What a complete error-channel payload says about the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command ran to its end with this code (0-255).
    Exited(i32),
    /// The exec failed without an exit code (container gone, internal error).
    Failure(String),
}

/// Splits one binary message into its channel and data; `None` for an empty message.
pub fn split_frame(message: &[u8]) -> Option<(u8, &[u8])> {
    message
        .split_first()
        .map(|(channel, data)| (*channel, data))
}

/// Decodes the error channel's JSON `Status`: Success is exit 0, a Failure with an `ExitCode`
/// cause is that code, any other Failure keeps its message. `Err` describes an unreadable one.
pub fn decode_exit_status(payload: &[u8]) -> Result<ExitStatus, String> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let status = Status::from_value(&value).ok_or_else(|| "not a Status object".to_string())?;
    match status.outcome.as_str() {
        "Success" => Ok(ExitStatus::Exited(0)),
        "Failure" => failure_exit(&status),
        other => Err(format!("unknown status {other:?}")),
    }
}

fn failure_exit(status: &Status) -> Result<ExitStatus, String> {
    let cause = status.causes.iter().find(|c| c.reason == EXIT_CODE_CAUSE);
    let Some(cause) = cause else {
        let message = if status.message.is_empty() {
            &status.reason
        } else {
            &status.message
        };
        return Ok(ExitStatus::Failure(message.clone()));
    };
    match cause.message.trim().parse::<i32>() {
        Ok(code) if (0..=255).contains(&code) => Ok(ExitStatus::Exited(code)),
        _ => Err(format!(
            "exit code {:?} is not a number from 0 to 255",
            cause.message
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit_status(code: &str) -> Vec<u8> {
        format!(
            r#"{{"metadata":{{}},"status":"Failure","message":"command terminated with non-zero exit code: command terminated with exit code {code}","reason":"NonZeroExitCode","details":{{"causes":[{{"reason":"ExitCode","message":"{code}"}}]}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn success_status_is_exit_zero() {
        let payload = br#"{"metadata":{},"status":"Success"}"#;
        assert_eq!(decode_exit_status(payload), Ok(ExitStatus::Exited(0)));
    }

    #[test]
    fn exit_code_comes_from_the_exit_code_cause() {
        for code in [1, 7, 255] {
            let payload = exit_status(&code.to_string());
            assert_eq!(decode_exit_status(&payload), Ok(ExitStatus::Exited(code)));
        }
    }

    #[test]
    fn failure_without_exit_code_keeps_the_message() {
        let payload = br#"{"metadata":{},"status":"Failure","message":"Internal error occurred: container not running","reason":"InternalError","details":{"causes":[{"message":"container not running"}]},"code":500}"#;
        assert_eq!(
            decode_exit_status(payload),
            Ok(ExitStatus::Failure(
                "Internal error occurred: container not running".into()
            ))
        );
    }

    #[test]
    fn exit_code_out_of_range_or_garbage_is_an_error() {
        assert!(decode_exit_status(&exit_status("256")).is_err());
        assert!(decode_exit_status(&exit_status("-1")).is_err());
        assert!(decode_exit_status(&exit_status("x")).is_err());
        assert!(decode_exit_status(b"{\"metadata\":{}").is_err());
        assert!(decode_exit_status(br#"{"status":"Pending"}"#).is_err());
    }

    #[test]
    fn splits_channel_from_raw_bytes() {
        assert_eq!(split_frame(&[1, 0xD4]), Some((STDOUT, &[0xD4][..])));
        assert_eq!(split_frame(&[2]), Some((STDERR, &[][..])));
        assert_eq!(split_frame(&[]), None);
    }

    #[test]
    fn reads_the_echoed_protocol() {
        assert_eq!(
            ExecProtocol::from_header("v5.channel.k8s.io"),
            Some(ExecProtocol::V5)
        );
        assert_eq!(
            ExecProtocol::from_header(" v4.channel.k8s.io"),
            Some(ExecProtocol::V4)
        );
        assert_eq!(ExecProtocol::from_header("channel.k8s.io"), None);
    }
}
