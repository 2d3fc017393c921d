//! The runner API v4 endpoints, in the AlloyCI or the GitLab dialect, with strict checks of
//! what the runner sends.

use serde_json::{json, Value};

use crate::http::{Request, Response};
use crate::multipart::{self, UploadError};
use crate::record::{crc32, JobState, Update};
use crate::state::{Shared, State};
use crate::{CancelMode, Dialect, Endpoint};

/// Largest JSON body read (a final PUT carries the whole trace).
const MAX_JSON_BYTES: u64 = 64 * 1024 * 1024;
/// Largest trace PATCH the runner may send.
const MAX_PATCH_BYTES: usize = 1024 * 1024;
/// AlloyCI answers every trace PATCH with this range.
const ALLOYCI_RANGE: &str = "0-100";

const STATES: [&str; 3] = ["running", "success", "failed"];
const FAILURE_REASONS: [&str; 5] = [
    "script_failure",
    "runner_system_failure",
    "job_execution_timeout",
    "stuck_or_timeout_failure",
    "unknown_failure",
];

/// Routes one request, applying checks and injected faults.
pub(crate) fn handle(shared: &Shared, req: &mut Request<'_>) -> Response {
    let Some((endpoint, job_id)) = route(&req.method, &req.path) else {
        let what = format!("unexpected request {} {}", req.method, req.path);
        shared.lock().violation(what);
        return Response::text(404, "not found");
    };
    common_checks(shared, req);
    if let Some(fault) = shared.lock().take_fault(endpoint) {
        let mut response = Response::text(fault.status, "injected fault");
        if let Some(secs) = fault.retry_after {
            response = response.with_header("Retry-After", secs.to_string());
        }
        return response;
    }

    let response = match endpoint {
        Endpoint::Register => register(shared, req),
        Endpoint::Verify => verify(shared, req),
        Endpoint::Unregister => unregister(shared, req),
        Endpoint::RequestJob => request_job(shared, req),
        Endpoint::UpdateJob => update_job(shared, req, job_id),
        Endpoint::PatchTrace => patch_trace(shared, req, job_id),
        Endpoint::UploadArtifacts => upload_artifacts(shared, req, job_id),
        Endpoint::DownloadArtifacts => download_artifacts(shared, req, job_id),
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

/// Reads a JSON body, recording a violation for a wrong content type.
fn json_body(shared: &Shared, req: &mut Request<'_>) -> Result<Value, Response> {
    let what = format!("{} {}", req.method, req.path);
    let content_type = req.header("content-type").unwrap_or("").to_string();
    if !content_type.starts_with("application/json") {
        let text = format!("{what}: Content-Type is `{content_type}`, not application/json");
        shared.lock().violation(text);
    }
    let body = req
        .read_body(MAX_JSON_BYTES)
        .map_err(|_| Response::text(413, "too large"))?;
    serde_json::from_slice(&body).map_err(|err| {
        shared
            .lock()
            .violation(format!("{what}: body is not JSON: {err}"));
        Response::text(400, "body is not JSON")
    })
}

fn body_token(body: &Value) -> Option<&str> {
    body["token"].as_str()
}

fn bad_runner_token(dialect: Dialect) -> Response {
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

    let tags = tag_list(&body["tag_list"]);
    let run_untagged = body["run_untagged"].as_bool().unwrap_or(true);
    let mut state = shared.lock();
    let token = state.token(if dialect == Dialect::AlloyCi { 14 } else { 20 });
    let id = state.add_runner(&token, tags, run_untagged);
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
        Some(runner) => Response::json(200, &json!({"id": runner.id})),
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

// Jobs.

fn request_job(shared: &Shared, req: &mut Request<'_>) -> Response {
    let body = match json_body(shared, req) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut state = shared.lock();
    let Some(runner) = body_token(&body).and_then(|token| state.runner(token)) else {
        return bad_runner_token(state.dialect);
    };
    let (tags, run_untagged) = (runner.tags.clone(), runner.run_untagged);
    if !body["info"].is_object() {
        state.violation("POST /api/v4/jobs/request: no `info` object".into());
    }
    if body
        .get("last_update")
        .is_some_and(|v| v.as_str().is_none_or(str::is_empty))
    {
        state.violation("POST /api/v4/jobs/request: empty `last_update` sent".into());
    }

    let job = state.take_job(&tags, run_untagged);
    let last_update = state.last_update.to_string();
    let response = match job {
        Some(payload) => Response::json(201, &payload),
        None => Response::empty(204),
    };
    response.with_header("X-GitLab-Last-Update", last_update)
}

fn update_job(shared: &Shared, req: &mut Request<'_>, id: u64) -> Response {
    let body = match json_body(shared, req) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut state = shared.lock();
    let dialect = state.dialect;
    let header_token = req.header("job-token").is_some();
    let Some(job) = state.jobs.get(&id) else {
        return Response::text(404, "job not found");
    };

    // The job token belongs in the body here.
    if body_token(&body) != Some(job.token.as_str()) {
        if body_token(&body).is_none() && header_token {
            state.violation(format!(
                "PUT job {id}: job token in JOB-TOKEN header, not the body"
            ));
        }
        return Response::text(403, "forbidden");
    }
    if let Some(response) = refuse_update_after_end(&mut state, id) {
        return response;
    }

    let status_text = body["state"].as_str().unwrap_or("").to_string();
    if !STATES.contains(&status_text.as_str()) {
        state.violation(format!("PUT job {id}: unknown state `{status_text}`"));
        return match dialect {
            Dialect::AlloyCi => Response::text(500, "internal server error"),
            Dialect::GitLab => Response::text(400, "invalid state"),
        };
    }
    let update = read_update(&mut state, id, &body, &status_text);
    if dialect == Dialect::GitLab {
        if let Some(reason) = &update.failure_reason {
            if !FAILURE_REASONS.contains(&reason.as_str()) {
                return Response::text(400, "invalid failure_reason");
            }
        }
    }
    if let Some(trace) = body["trace"].as_str() {
        state.with_job(id, |job| {
            job.record.trace_final = Some(trace.as_bytes().to_vec())
        });
    }
    apply_update(&mut state, id, update, &body)
}

/// 403 to a PUT for a job that is over; for a cancelled job, the answer its mode asks for.
fn refuse_update_after_end(state: &mut State, id: u64) -> Option<Response> {
    let job = state.jobs.get(&id)?;
    not_running_answer(job.record.state, job.cancel)
}

/// 403 for a job the runner may not touch: not handed out, over, or cancelled with 403.
fn not_running_answer(state: JobState, cancel: Option<CancelMode>) -> Option<Response> {
    match (state, cancel) {
        (_, Some(CancelMode::Forbidden)) => Some(Response::text(403, "job canceled")),
        (JobState::Running | JobState::Canceled, _) => None,
        _ => Some(Response::text(403, "job is not running")),
    }
}

/// Reads the update's fields, recording what breaks the API.
fn read_update(state: &mut State, id: u64, body: &Value, status_text: &str) -> Update {
    let failure_reason = body["failure_reason"].as_str().map(String::from);
    let exit_code = body["exit_code"].as_i64();
    if let Some(reason) = &failure_reason {
        if !FAILURE_REASONS.contains(&reason.as_str()) {
            state.violation(format!("PUT job {id}: unknown failure_reason `{reason}`"));
        }
        if status_text != "failed" {
            state.violation(format!(
                "PUT job {id}: failure_reason with state `{status_text}`"
            ));
        }
    }
    match exit_code {
        Some(0) => state.violation(format!("PUT job {id}: exit_code 0 sent (leave it out)")),
        Some(code) if status_text != "failed" => state.violation(format!(
            "PUT job {id}: exit_code {code} with state `{status_text}`"
        )),
        _ => {}
    }
    if let Some(checksum) = body["output"]["checksum"].as_str() {
        if !is_crc32_form(checksum) {
            state.violation(format!(
                "PUT job {id}: checksum `{checksum}` is not crc32:%08x"
            ));
        }
    }
    Update {
        state: status_text.to_string(),
        failure_reason,
        exit_code,
        status: 200,
    }
}

fn is_crc32_form(checksum: &str) -> bool {
    checksum.strip_prefix("crc32:").is_some_and(|hex| {
        hex.len() == 8
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn apply_update(state: &mut State, id: u64, mut update: Update, body: &Value) -> Response {
    let dialect = state.dialect;
    let Some(job) = state.jobs.get_mut(&id) else {
        return Response::text(404, "job not found");
    };

    // GitLab compares the runner's checksum with the trace it assembled.
    if dialect == Dialect::GitLab {
        if let Some(checksum) = body["output"]["checksum"].as_str() {
            let trace = &job.record.trace_incremental;
            let expected = format!("crc32:{:08x}", crc32(trace));
            let size_ok = body["output"]["bytesize"]
                .as_u64()
                .is_none_or(|n| n == trace.len() as u64);
            if checksum != expected || !size_ok {
                update.status = 412;
                job.record.updates.push(update);
                return Response::text(412, "trace checksum mismatch");
            }
        }
    }
    if job.accept_next_put {
        job.accept_next_put = false;
        update.status = 202;
        job.record.updates.push(update);
        return Response::empty(202);
    }

    let cancel = job.cancel;
    let record = &mut job.record;
    record.reported_state = Some(update.state.clone());
    if update.state != "running" && record.state == JobState::Running {
        record.state = if update.state == "success" {
            JobState::Success
        } else {
            JobState::Failed
        };
        record.failure_reason = update.failure_reason.clone();
        record.exit_code = update.exit_code;
    }
    let job_state = record.state;
    record.updates.push(update);
    state.job_changed(id);
    with_job_status(Response::json(200, &json!({})), cancel, dialect, job_state)
}

/// Adds `Job-Status`: the cancel spelling of the dialect, or (GitLab) the job's own state.
fn with_job_status(
    response: Response,
    cancel: Option<CancelMode>,
    dialect: Dialect,
    state: JobState,
) -> Response {
    let value = match (cancel, dialect) {
        (Some(CancelMode::JobStatusHeader), Dialect::AlloyCi) => "cancelled",
        (Some(CancelMode::JobStatusHeader), Dialect::GitLab) => "canceled",
        (Some(CancelMode::Canceling), _) => "canceling",
        (_, Dialect::GitLab) => state.as_str(),
        _ => return response,
    };
    response.with_header("Job-Status", value)
}

/// Checks the JOB-TOKEN header against job `id`: `Err` is the answer to send.
fn check_job_token(state: &mut State, req: &Request<'_>, id: u64) -> Result<(), Response> {
    let what = format!("{} {}", req.method, req.path);
    let Some(job) = state.jobs.get(&id) else {
        return Err(Response::text(404, "job not found"));
    };
    match req.header("job-token") {
        Some(token) if token == job.token => Ok(()),
        Some(_) => Err(Response::text(403, "forbidden")),
        None => {
            state.violation(format!("{what}: no JOB-TOKEN header"));
            Err(match state.dialect {
                Dialect::AlloyCi => Response::text(500, "internal server error"),
                Dialect::GitLab => Response::text(403, "forbidden"),
            })
        }
    }
}

fn patch_trace(shared: &Shared, req: &mut Request<'_>, id: u64) -> Response {
    let mut state = shared.lock();
    if let Err(response) = check_job_token(&mut state, req, id) {
        return response;
    }
    let Some(job) = state.jobs.get(&id) else {
        return Response::text(404, "job not found");
    };
    if let Some(response) = not_running_answer(job.record.state, job.cancel) {
        return response;
    }
    let content_type = req.header("content-type").unwrap_or("").to_string();
    if !content_type.starts_with("text/plain") {
        state.violation(format!(
            "PATCH trace {id}: Content-Type is `{content_type}`"
        ));
    }
    let range = req.header("content-range").map(String::from);
    drop(state);

    let body = match req.read_body(64 * 1024 * 1024) {
        Ok(body) => body,
        Err(_) => return Response::text(413, "too large"),
    };
    let mut state = shared.lock();
    if body.len() > MAX_PATCH_BYTES {
        state.violation(format!(
            "PATCH trace {id}: {} bytes in one patch",
            body.len()
        ));
    }
    append_trace(
        &mut state,
        shared.options.trace_update_interval,
        id,
        range.as_deref(),
        &body,
    )
}

fn append_trace(
    state: &mut State,
    interval: Option<u64>,
    id: u64,
    range: Option<&str>,
    body: &[u8],
) -> Response {
    let dialect = state.dialect;
    let Some(job) = state.jobs.get_mut(&id) else {
        return Response::text(404, "job not found");
    };
    job.record.patches += 1;
    let size = job.record.trace_incremental.len();
    let range_answer = |size: usize| format!("0-{size}");

    if job.reject_next_range {
        job.reject_next_range = false;
        return Response::text(416, "range not satisfiable")
            .with_header("Range", range_answer(size));
    }
    let problem = range_problem(range, size, body.len());
    if let Some(problem) = &problem {
        let text = format!("PATCH trace {id}: {problem}");
        if dialect == Dialect::GitLab {
            state.violation(text);
            return Response::text(416, "range not satisfiable")
                .with_header("Range", range_answer(size));
        }
        // AlloyCI ignores Content-Range and appends what it got.
        state.violation(text);
    }

    let Some(job) = state.jobs.get_mut(&id) else {
        return Response::text(404, "job not found");
    };
    job.record.trace_incremental.extend_from_slice(body);
    let new_size = job.record.trace_incremental.len();
    let cancel = job.cancel;
    let mut response = match dialect {
        Dialect::AlloyCi => Response::empty(202).with_header("Range", ALLOYCI_RANGE),
        Dialect::GitLab => Response::empty(202).with_header("Range", range_answer(new_size)),
    };
    if let (Dialect::GitLab, Some(secs)) = (dialect, interval) {
        response = response.with_header("X-GitLab-Trace-Update-Interval", secs.to_string());
    }
    with_job_status(response, cancel, dialect, JobState::Running)
}

/// What is wrong with a patch's `Content-Range` given the stored size, if anything.
fn range_problem(range: Option<&str>, size: usize, len: usize) -> Option<String> {
    let Some(range) = range else {
        return Some("no Content-Range header".into());
    };
    let parsed = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    let Some((start, end)): Option<(u64, u64)> = parsed else {
        return Some(format!("Content-Range `{range}` is not <start>-<end>"));
    };
    if start != size as u64 {
        return Some(format!(
            "Content-Range starts at {start}, the trace has {size} bytes"
        ));
    }
    // An empty keep-alive patch carries no meaningful end.
    if len > 0 && end + 1 != start + len as u64 {
        return Some(format!(
            "Content-Range `{range}` does not match a {len}-byte body"
        ));
    }
    None
}

// Artifacts.

fn upload_artifacts(shared: &Shared, req: &mut Request<'_>, id: u64) -> Response {
    let limit = shared.options.max_artifact_bytes;
    let boundary = match check_upload(&mut shared.lock(), req, id, limit) {
        Ok(boundary) => boundary,
        Err(response) => return response,
    };
    let expire_in = req.query_param("expire_in").map(String::from);

    // Stream the part to disk without holding the lock.
    let prefix = format!("job-{id}-");
    let stored = multipart::store_file_part(req.body, &boundary, &shared.data_dir, &prefix, limit);
    let mut state = shared.lock();
    match stored {
        Ok(Some(file)) => {
            state.with_job(id, |job| {
                job.record.artifacts = Some(file.path);
                job.record.artifacts_filename = Some(file.filename);
                job.record.artifacts_size = Some(file.size);
                job.record.artifacts_expire_in = expire_in;
            });
            Response::json(201, &json!({}))
        }
        Ok(None) => {
            state.violation(format!("POST artifacts {id}: no part named `file`"));
            Response::text(400, "no file part")
        }
        Err(UploadError::TooLarge) => Response::text(413, "too large"),
        Err(UploadError::Malformed(detail)) => {
            state.violation(format!(
                "POST artifacts {id}: malformed multipart body: {detail}"
            ));
            Response::text(400, "malformed multipart body")
        }
        Err(UploadError::Io(err)) => Response::text(500, &format!("cannot store upload: {err}")),
    }
}

/// Token, declared artifacts, announced size and form type; `Ok` is the multipart boundary.
fn check_upload(
    state: &mut State,
    req: &Request<'_>,
    id: u64,
    limit: u64,
) -> Result<String, Response> {
    check_job_token(state, req, id)?;
    let declared = state
        .jobs
        .get(&id)
        .is_some_and(|job| job.artifacts_declared);
    if state.dialect == Dialect::AlloyCi && !declared {
        return Err(Response::text(404, "job declares no artifacts"));
    }
    if req.query_param("artifact_format").is_none() {
        state.violation(format!(
            "POST artifacts {id}: no artifact_format query parameter"
        ));
    }
    let announced = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(Response::text(413, "too large"));
    }
    let content_type = req.header("content-type").unwrap_or("");
    match multipart::boundary(content_type) {
        Some(boundary) => Ok(boundary.to_string()),
        None => {
            state.violation(format!(
                "POST artifacts {id}: Content-Type `{content_type}`"
            ));
            Err(Response::text(400, "expected multipart/form-data"))
        }
    }
}

fn download_artifacts(shared: &Shared, req: &mut Request<'_>, id: u64) -> Response {
    let mut state = shared.lock();
    if let Err(response) = check_job_token(&mut state, req, id) {
        return response;
    }
    let Some(path) = state
        .jobs
        .get(&id)
        .and_then(|job| job.record.artifacts.clone())
    else {
        return Response::text(404, "no artifacts");
    };
    drop(state);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut response = Response::empty(200).with_header("Content-Type", "application/zip");
            response.body = bytes;
            response
        }
        Err(_) => Response::text(404, "no artifacts"),
    }
}
