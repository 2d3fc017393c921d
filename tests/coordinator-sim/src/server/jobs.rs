//! Job request, update and trace.

use serde_json::{json, Value};

use super::{bad_runner_token, body_token, json_body};
use crate::http::{Request, Response};
use crate::record::{crc32, JobState, Update};
use crate::state::{Shared, State};
use crate::{CancelMode, Dialect};

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

pub(super) fn request_job(shared: &Shared, req: &mut Request<'_>) -> Response {
    let body = match json_body(shared, req) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut state = shared.lock();
    let Some(runner) = body_token(&body).and_then(|token| state.runner(token)) else {
        return bad_runner_token(state.dialect);
    };
    let (tags, run_untagged) = (runner.public.tags.clone(), runner.public.run_untagged);
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
        Some(body) => Response::json_text(201, body),
        None => Response::empty(204),
    };
    response.with_header("X-GitLab-Last-Update", last_update)
}

pub(super) fn update_job(shared: &Shared, req: &mut Request<'_>, id: u64) -> Response {
    let body = match json_body(shared, req) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut state = shared.lock();
    let dialect = state.dialect;
    let Some(job) = state.jobs.get(&id) else {
        return Response::text(404, "job not found");
    };

    // The job token belongs in the body here (a header-only token is a recorded violation).
    if body_token(&body) != Some(job.token.as_str()) {
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
                // The runner resends the whole trace from offset 0 (see `drop_trace`).
                job.record.trace_incremental.clear();
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

/// After a 412 the runner resends the whole trace from offset 0: the stored copy is dropped so
/// that the resend continues it instead of counting as a wrong `Content-Range`.
pub(super) fn drop_trace(state: &mut State, id: u64) {
    state.with_job(id, |job| job.record.trace_incremental.clear());
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
pub(super) fn check_job_token(
    state: &mut State,
    req: &Request<'_>,
    id: u64,
) -> Result<(), Response> {
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

pub(super) fn patch_trace(shared: &Shared, req: &mut Request<'_>, id: u64) -> Response {
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
