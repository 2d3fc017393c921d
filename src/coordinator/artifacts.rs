//! Artifacts upload (streamed multipart) and download (streamed to a file, following 302).

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;
use std::thread;

use super::client::{answer, status_error, Client};
use super::error::CoordinatorError;
use crate::secret::Secret;

/// Redirects followed by a download (object storage answers behind a 302).
const MAX_REDIRECTS: u32 = 5;

/// What to upload and how long the coordinator keeps it.
#[derive(Debug, Clone, Default)]
pub struct ArtifactsUpload<'a> {
    /// `artifacts.name`; the file part is named `<name>.zip`, `artifacts.zip` when `None`.
    pub name: Option<&'a str>,
    /// `artifacts.expire_in` (`7d`, `1 day`); left out when `None`.
    pub expire_in: Option<&'a str>,
}

/// A multipart/form-data body with one part `file`, streamed from the zip on disk.
struct Multipart {
    boundary: String,
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Multipart {
    fn new(filename: &str) -> Multipart {
        let boundary = format!("alloy-runner-{:016x}", boundary_seed());
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
             Content-Type: application/zip\r\n\r\n",
            quote_safe(filename)
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        Multipart {
            boundary,
            head: head.into_bytes(),
            tail: tail.into_bytes(),
        }
    }

    fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    fn content_length(&self, file_len: u64) -> u64 {
        self.head.len() as u64 + file_len + self.tail.len() as u64
    }

    /// The body: head, then the file (read as sent, never whole in memory), then the tail.
    fn reader(&self, file: File) -> impl Read + '_ {
        Cursor::new(&self.head[..])
            .chain(file)
            .chain(Cursor::new(&self.tail[..]))
    }
}

/// A filename safe inside a quoted header parameter.
fn quote_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if matches!(c, '"' | '\\' | '\r' | '\n') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Varies the boundary from upload to upload; a collision with the zip bytes is harmless in
/// practice because the boundary is also preceded by CRLF.
fn boundary_seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0x5EED, |d| d.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

impl Client {
    /// `POST /jobs/:id/artifacts`: uploads the zip at `path`. 201 ok; 403 and 413 are final;
    /// other answers are retried (3 tries, 1 s apart by default).
    pub fn upload_artifacts(
        &self,
        job_id: u64,
        job_token: &Secret,
        path: &Path,
        upload: &ArtifactsUpload<'_>,
    ) -> Result<(), CoordinatorError> {
        let url = self.endpoint(&format!("jobs/{job_id}/artifacts"));
        let attempts = self.options.upload_attempts;
        self.retry_transient("upload", attempts, || {
            self.upload_once(&url, job_token, path, upload)
        })
    }

    /// Runs `op` up to `attempts` times (at least once), pausing between tries, while it
    /// fails in a way a retry may cure; returns the last failure otherwise.
    fn retry_transient<T>(
        &self,
        what: &str,
        attempts: u32,
        mut op: impl FnMut() -> Result<T, CoordinatorError>,
    ) -> Result<T, CoordinatorError> {
        let attempts = attempts.max(1);
        let mut attempt = 1;
        loop {
            match op() {
                Err(e) if e.is_transient() && attempt < attempts => {
                    log::warn!("artifacts {what} try {attempt}/{attempts} failed: {e}");
                    thread::sleep(self.options.artifacts_retry_wait);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn upload_once(
        &self,
        url: &str,
        job_token: &Secret,
        path: &Path,
        upload: &ArtifactsUpload<'_>,
    ) -> Result<(), CoordinatorError> {
        let file_error = |source| CoordinatorError::File {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(file_error)?;
        let file_len = file.metadata().map_err(file_error)?.len();
        let multipart = Multipart::new(&format!("{}.zip", upload.name.unwrap_or("artifacts")));

        let mut request = self
            .agent
            .post(url)
            .set("JOB-TOKEN", job_token.expose())
            .set("Content-Type", &multipart.content_type())
            .set(
                "Content-Length",
                &multipart.content_length(file_len).to_string(),
            );
        if let Some(expire_in) = upload.expire_in {
            request = request.query("expire_in", expire_in);
        }
        request = request
            .query("artifact_format", "zip")
            .query("artifact_type", "archive");

        let response = answer(url, request.send(multipart.reader(file)))?;
        match response.status() {
            200 | 201 => Ok(()),
            403 => Err(CoordinatorError::Forbidden {
                url: url.to_string(),
                status: 403,
            }),
            413 => Err(CoordinatorError::TooLarge {
                url: url.to_string(),
            }),
            _ => Err(status_error(url.to_string(), &response)),
        }
    }

    /// `GET /jobs/:id/artifacts` of a dependency (its id and token): streams the zip to `dest`,
    /// following redirects without sending the token on. 403/404 are final; other failures are
    /// tried `attempts` times in all. Returns the bytes written.
    pub fn download_artifacts(
        &self,
        dependency_id: u64,
        dependency_token: &Secret,
        dest: &Path,
        attempts: u32,
    ) -> Result<u64, CoordinatorError> {
        let url = self.endpoint(&format!("jobs/{dependency_id}/artifacts"));
        self.retry_transient("download", attempts, || {
            self.download_once(&url, dependency_token, dest)
        })
    }

    fn download_once(
        &self,
        url: &str,
        token: &Secret,
        dest: &Path,
    ) -> Result<u64, CoordinatorError> {
        let request = self.agent.get(url).set("JOB-TOKEN", token.expose());
        let mut response = answer(url, request.call())?;
        let mut current = url.to_string();
        for _ in 0..MAX_REDIRECTS {
            if !matches!(response.status(), 301 | 302 | 303 | 307 | 308) {
                break;
            }
            let Some(location) = response.header("Location") else {
                break;
            };
            // The token is for the coordinator only: object storage gets a signed URL.
            current = resolve_location(&current, location);
            response = answer(&current, self.agent.get(&current).call())?;
        }
        match response.status() {
            200 => write_body(response, dest),
            403 => Err(CoordinatorError::Forbidden {
                url: current,
                status: 403,
            }),
            404 => Err(CoordinatorError::NotFound { url: current }),
            _ => Err(status_error(current, &response)),
        }
    }
}

fn write_body(response: ureq::Response, dest: &Path) -> Result<u64, CoordinatorError> {
    let file_error = |source| CoordinatorError::File {
        path: dest.to_path_buf(),
        source,
    };
    let mut file = File::create(dest).map_err(file_error)?;
    let written = io::copy(&mut response.into_reader(), &mut file).map_err(file_error)?;
    file.sync_all().map_err(file_error)?;
    Ok(written)
}

/// An absolute `Location`, or one relative to the origin of `current`.
fn resolve_location(current: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let scheme_end = current.find("://").map_or(0, |i| i + 3);
    let origin_end = current[scheme_end..]
        .find('/')
        .map_or(current.len(), |i| scheme_end + i);
    let origin = &current[..origin_end];
    if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        format!("{origin}/{location}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_length_counts_head_file_and_tail() {
        let multipart = Multipart::new("rel.zip");
        let head = String::from_utf8(multipart.head.clone()).unwrap();
        assert!(head.contains("name=\"file\"; filename=\"rel.zip\""));
        let expected = multipart.head.len() + 10 + multipart.tail.len();
        assert_eq!(multipart.content_length(10), expected as u64);
        assert!(multipart.content_type().ends_with(&multipart.boundary));
    }

    #[test]
    fn quotes_and_newlines_cannot_break_the_part_header() {
        assert_eq!(quote_safe("a\"b\r\nc.zip"), "a_b__c.zip");
    }

    #[test]
    fn relative_locations_resolve_against_the_origin() {
        let current = "http://127.0.0.1:9/api/v4/jobs/3/artifacts";
        assert_eq!(
            resolve_location(current, "/store/x.zip"),
            "http://127.0.0.1:9/store/x.zip"
        );
        assert_eq!(resolve_location(current, "https://s3/x"), "https://s3/x");
    }
}
