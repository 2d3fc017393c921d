//! The runner API v4 endpoints, in the AlloyCI or the GitLab dialect, with strict checks of
//! what the runner sends.

use serde_json::{json, Value};

mod artifacts;
mod jobs;

use std::time::{Duration, SystemTime};

use crate::http::{self, Request, Response};
use crate::record::RegisteredRunner;
use crate::state::{Retry, Shared};
use crate::{Dialect, Endpoint};

/// Largest JSON body read (a final PUT carries the whole trace).
const MAX_JSON_BYTES: u64 = 64 * 1024 * 1024;

/// Routes one request, applying checks and injected faults.
pub(crate) fn handle(shared: &Shared, req: &mut Request<'_>) -> Response {
    if let Some(id) = storage_object(&req.method, &req.path) {
        return artifacts::storage(shared, id);
    }
    if req.path.starts_with(crate::git_http::PREFIX) {
        let repos = shared.lock().repos.clone();
        return crate::git_http::serve(&repos, req);
    }
    let Some((endpoint, job_id)) = route(&req.method, &req.path) else {
        let what = format!("unexpected request {} {}", req.method, req.path);
        shared.lock().violation(what);
        return Response::text(404, "not found");
    };
    common_checks(shared, req);
    shared.lock().count(endpoint);
    let fault = shared.lock().take_fault(endpoint);
    if let Some(fault) = fault {
        if endpoint == Endpoint::UpdateJob && fault.status == 412 {
            jobs::drop_trace(&mut shared.lock(), job_id);
        }
        let mut response = Response::text(fault.status, "injected fault");
        match fault.retry {
            Some(Retry::After(secs)) => {
                response = response.with_header("Retry-After", secs.to_string());
            }
            Some(Retry::ResetIn(secs)) => {
                let at = SystemTime::now() + Duration::from_secs(secs);
                response = response.with_header("RateLimit-ResetTime", http::date(at));
            }
            None => {}
        }
        return response;
    }

    let response = match endpoint {
        Endpoint::Register => register(shared, req),
        Endpoint::Verify => verify(shared, req),
        Endpoint::Unregister => unregister(shared, req),
        Endpoint::RequestJob => jobs::request_job(shared, req),
        Endpoint::UpdateJob => jobs::update_job(shared, req, job_id),
        Endpoint::PatchTrace => jobs::patch_trace(shared, req, job_id),
        Endpoint::UploadArtifacts => artifacts::upload(shared, req, job_id),
        Endpoint::DownloadArtifacts => artifacts::download(shared, req, job_id),
    };
    shared.notify();
    response
}

fn route(method: &str, path: &str) -> Option<(Endpoint, u64)> {
    let rest = path.strip_prefix("/api/v4/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let endpoint = match (method, parts.as_slice()) {
        ("POST", ["runners"]) => Endpoint::Register,
        ("POST", ["runners", "verify"]) => Endpoint::Verify,
        ("DELETE", ["runners"]) => Endpoint::Unregister,
        ("POST", ["jobs", "request"]) => Endpoint::RequestJob,
        ("PUT", ["jobs", id]) => return Some((Endpoint::UpdateJob, id.parse().ok()?)),
        ("PATCH", ["jobs", id, "trace"]) => return Some((Endpoint::PatchTrace, id.parse().ok()?)),
        ("POST", ["jobs", id, "artifacts"]) => {
            return Some((Endpoint::UploadArtifacts, id.parse().ok()?))
        }
        ("GET", ["jobs", id, "artifacts"]) => {
            return Some((Endpoint::DownloadArtifacts, id.parse().ok()?))
        }
        _ => return None,
    };
    Some((endpoint, 0))
}

/// The job id of a `GET /storage/artifacts/:id` request.
fn storage_object(method: &str, path: &str) -> Option<u64> {
    let id = path.strip_prefix("/storage/artifacts/")?;
    (method == "GET").then(|| id.parse().ok()).flatten()
}

fn common_checks(shared: &Shared, req: &Request<'_>) {
    let mut state = shared.lock();
    let what = format!("{} {}", req.method, req.path);
    if req.header("user-agent").is_none_or(str::is_empty) {
        state.violation(format!("{what}: no User-Agent header"));
    }
    if req.header("private-token").is_some() {
        state.violation(format!(
            "{what}: PRIVATE-TOKEN header sent (the API takes none)"
        ));
    }
}

/// Reads a JSON body, recording a violation for a wrong content type or a token that is not
/// in the body (every JSON call of the API carries one there).
pub(super) fn json_body(shared: &Shared, req: &mut Request<'_>) -> Result<Value, Response> {
    let what = format!("{} {}", req.method, req.path);
    let content_type = req.header("content-type").unwrap_or("").to_string();
    if !content_type.starts_with("application/json") {
        let text = format!("{what}: Content-Type is `{content_type}`, not application/json");
        shared.lock().violation(text);
    }
    let bytes = req
        .read_body(MAX_JSON_BYTES)
        .map_err(|_| Response::text(413, "too large"))?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|err| {
        shared
            .lock()
            .violation(format!("{what}: body is not JSON: {err}"));
        Response::text(400, "body is not JSON")
    })?;

    if body_token(&body).is_none() {
        let text = match req.header("job-token") {
            Some(_) => format!("{what}: token in the JOB-TOKEN header, not the body"),
            None => format!("{what}: no `token` in the body"),
        };
        shared.lock().violation(text);
    }
    Ok(body)
}

pub(super) fn body_token(body: &Value) -> Option<&str> {
    body["token"].as_str()
}

pub(super) fn bad_runner_token(dialect: Dialect) -> Response {
    match dialect {
        Dialect::AlloyCi => Response::text(401, "unauthorized"),
        Dialect::GitLab => Response::text(403, "forbidden"),
    }
}

// Runners.

fn register(shared: &Shared, req: &mut Request<'_>) -> Response {
    let body = match json_body(shared, req) {
        Ok(body) => body,
        Err(response) => return response,
    };
    if body_token(&body) != Some(shared.options.registration_token.as_str()) {
        return Response::text(403, "invalid registration token");
    }
    let dialect = shared.options.dialect;
    if dialect == Dialect::AlloyCi && !body["info"].is_object() {
        shared
            .lock()
            .violation("POST /api/v4/runners: no `info` object".into());
        return Response::text(500, "internal server error");
    }

    let runner = RegisteredRunner {
        id: 0,
        description: body["description"].as_str().unwrap_or("").to_string(),
        tags: tag_list(&body["tag_list"]),
        run_untagged: body["run_untagged"].as_bool().unwrap_or(true),
        locked: body["locked"].as_bool().unwrap_or(false),
        info: body["info"].clone(),
    };
    let mut state = shared.lock();
    let token = state.token(if dialect == Dialect::AlloyCi { 14 } else { 20 });
    let id = state.add_runner(&token, runner);
    Response::json(201, &json!({"id": id, "token": token}))
}

/// `tag_list` as `"a,b"` or `["a", "b"]`.
fn tag_list(value: &Value) -> Vec<String> {
    let joined = match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    };
    joined
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

fn verify(shared: &Shared, req: &mut Request<'_>) -> Response {
    let body = match json_body(shared, req) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let state = shared.lock();
    match body_token(&body).and_then(|token| state.runner(token)) {
        Some(runner) => Response::json(200, &json!({"id": runner.public.id})),
        None => Response::text(403, "forbidden"),
    }
}

fn unregister(shared: &Shared, req: &mut Request<'_>) -> Response {
    let body = match json_body(shared, req) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut state = shared.lock();
    let token = body_token(&body).unwrap_or("");
    let before = state.runners.len();
    state.runners.retain(|r| r.token != token);
    if state.runners.len() < before {
        Response::empty(204)
    } else {
        Response::text(403, "forbidden")
    }
}
