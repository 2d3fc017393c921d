//! Artifacts upload (multipart, streamed to a file) and download.

use serde_json::json;

use super::jobs::check_job_token;
use crate::http::{Request, Response};
use crate::multipart::{self, UploadError};
use crate::state::{Shared, State};
use crate::Dialect;

pub(super) fn upload(shared: &Shared, req: &mut Request<'_>, id: u64) -> Response {
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

pub(super) fn download(shared: &Shared, req: &mut Request<'_>, id: u64) -> Response {
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
    if shared.options.artifacts_redirect {
        let location = format!("{}/storage/artifacts/{id}", state.server_url);
        return Response::empty(302).with_header("Location", location);
    }
    drop(state);
    serve_file(&path)
}

/// `GET /storage/artifacts/:id`: the object-storage side of a redirected download (no token,
/// as a pre-signed URL needs none).
pub(super) fn storage(shared: &Shared, id: u64) -> Response {
    let path = shared
        .lock()
        .jobs
        .get(&id)
        .and_then(|job| job.record.artifacts.clone());
    match path {
        Some(path) => serve_file(&path),
        None => Response::text(404, "no such object"),
    }
}

fn serve_file(path: &std::path::Path) -> Response {
    match std::fs::read(path) {
        Ok(bytes) => {
            let mut response = Response::empty(200).with_header("Content-Type", "application/zip");
            response.body = bytes;
            response
        }
        Err(_) => Response::text(404, "no artifacts"),
    }
}
