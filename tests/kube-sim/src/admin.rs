//! The `/__sim/...` admin paths (a real API server never serves them): faults, token
//! rotation, outside deletes, history compaction and the request log, for tests in any language.
//!
//! - `POST /__sim/faults/fail`
//!   `{"verb":"create","count":2,"code":500|429|410|504,"retryAfter":1,"plainText":false}`
//!   (504: the request takes effect, then times out)
//! - `POST /__sim/faults/latency` `{"millis":200}`
//! - `POST /__sim/faults/watch` `{"mode":"normal|expired-as-http|refuse|close-at-once"}`
//! - `POST /__sim/faults/exec` `{"dropAfterBytes":100}` (null: never)
//! - `POST /__sim/faults/reset`
//! - `POST /__sim/tokens/rotate` `{"old":"a","new":"b"}`
//! - `POST /__sim/pods/{ns}/{name}/delete` `{"graceSeconds":0}`
//! - `POST /__sim/compact`
//! - `GET /__sim/requests`, `DELETE /__sim/requests`

use std::time::Duration;

use serde_json::{json, Value};

use crate::api::Ctx;
use crate::faults::{Failure, WatchMode};
use crate::http::{Request, Response};
use crate::pods;

/// Serves one admin request.
pub fn handle(ctx: &Ctx, request: &Request) -> Response {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(json!({}));
    let parts: Vec<&str> = request.path.split('/').filter(|p| !p.is_empty()).collect();
    let result = match (request.method.as_str(), &parts[1..]) {
        ("POST", ["faults", "fail"]) => fail(ctx, &body),
        ("POST", ["faults", "latency"]) => {
            ctx.faults
                .set_latency(Duration::from_millis(body["millis"].as_u64().unwrap_or(0)));
            Ok(())
        }
        ("POST", ["faults", "watch"]) => watch_mode(ctx, &body),
        ("POST", ["faults", "exec"]) => {
            ctx.faults
                .set_exec_drop_after(body["dropAfterBytes"].as_u64());
            Ok(())
        }
        ("POST", ["faults", "reset"]) => {
            ctx.faults.reset();
            Ok(())
        }
        ("POST", ["tokens", "rotate"]) => rotate(ctx, &body),
        ("POST", ["pods", ns, name, "delete"]) => delete(ctx, ns, name, &body),
        ("POST", ["compact"]) => {
            ctx.store.compact();
            Ok(())
        }
        ("GET", ["requests"]) => return Response::json(200, &requests(ctx)),
        ("DELETE", ["requests"]) => {
            ctx.recorder.clear();
            Ok(())
        }
        _ => Err((
            404,
            format!("no admin path {} {}", request.method, request.path),
        )),
    };
    match result {
        Ok(()) => Response::json(200, &json!({"ok": true})),
        Err((code, message)) => Response::json(code, &json!({"error": message})),
    }
}

type AdminResult = Result<(), (u16, String)>;

fn fail(ctx: &Ctx, body: &Value) -> AdminResult {
    let verb = body["verb"].as_str().unwrap_or("*");
    let count = body["count"].as_u64().unwrap_or(1) as u32;
    let failure = match body["code"].as_u64().unwrap_or(500) {
        500 => Failure::ServerError,
        429 if body["plainText"] == true => Failure::Throttled {
            retry_after: body["retryAfter"].as_u64().unwrap_or(1),
        },
        429 => Failure::TooManyRequests {
            retry_after: body["retryAfter"].as_u64().unwrap_or(1),
        },
        410 => Failure::Expired,
        504 => Failure::TimeoutAfterCommit,
        other => {
            return Err((
                400,
                format!("code {other} is not one of 500, 429, 410, 504"),
            ))
        }
    };
    ctx.faults.fail_next(verb, count, failure);
    Ok(())
}

fn watch_mode(ctx: &Ctx, body: &Value) -> AdminResult {
    let mode = match body["mode"].as_str().unwrap_or("") {
        "normal" => WatchMode::Normal,
        "expired-as-http" => WatchMode::ExpiredAsHttp,
        "refuse" => WatchMode::Refuse,
        "close-at-once" => WatchMode::CloseAtOnce,
        other => return Err((400, format!("unknown watch mode {other:?}"))),
    };
    ctx.faults.set_watch_mode(mode);
    Ok(())
}

fn rotate(ctx: &Ctx, body: &Value) -> AdminResult {
    let (Some(old), Some(new)) = (body["old"].as_str(), body["new"].as_str()) else {
        return Err((400, "rotate needs \"old\" and \"new\"".into()));
    };
    match ctx.auth.rotate(old, new) {
        true => Ok(()),
        false => Err((404, "no such token".into())),
    }
}

fn delete(ctx: &Ctx, namespace: &str, name: &str, body: &Value) -> AdminResult {
    let pod = ctx
        .store
        .get("pods", namespace, name)
        .ok_or((404, format!("no pod {namespace}/{name}")))?;
    pods::delete_pod(ctx, &pod, body["graceSeconds"].as_u64().unwrap_or(0));
    Ok(())
}

fn requests(ctx: &Ctx) -> Value {
    let entries: Vec<Value> = ctx
        .recorder
        .all()
        .into_iter()
        .map(|r| {
            json!({
                "method": r.method,
                "path": r.path,
                "query": r.query,
                "headers": r.headers,
                "body": String::from_utf8_lossy(&r.body),
                "user": r.user,
                "code": r.code,
            })
        })
        .collect();
    Value::Array(entries)
}
