//! Serves pipeline repositories over git's HTTP protocols, so job pods clone over the network as
//! they do from a real coordinator, never through a host path a pod cannot see: the "smart"
//! protocol (`git upload-pack --stateless-rpc`, which shallow fetches need) and, for old
//! clients, the "dumb" one (static files of the `.git` folder after `git update-server-info`).

use std::path::{Component, Path, PathBuf};

use crate::http::{Request, Response};

/// URL path prefix of served repositories: `/git/<index>/<name>.git/...`.
pub const PREFIX: &str = "/git/";

/// The served path of repository `index` named `name`.
pub fn repo_path(index: usize, name: &str) -> String {
    format!("{PREFIX}{index}/{name}.git")
}

/// Prepares `repo` for dumb HTTP (refreshes `info/refs` and `objects/info/packs`).
pub fn prepare(repo: &Path) -> std::io::Result<()> {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .arg("update-server-info")
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "git update-server-info failed in {}",
            repo.display()
        )))
    }
}

/// Largest upload-pack request body read (the client's wants and haves).
const MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024;

/// Answers a request under `/git/<index>/<name>.git/` from the repositories in `repos`.
pub fn serve(repos: &[PathBuf], req: &mut Request<'_>) -> Response {
    let Some((index, file)) = split(&req.path) else {
        return Response::text(404, "no such repository");
    };
    let Some(repo) = repos.get(index) else {
        return Response::text(404, "no such repository");
    };
    let git_dir = repo.join(".git");
    let smart = req.query_param("service").as_deref() == Some("git-upload-pack");
    match (req.method.as_str(), file.to_str()) {
        ("GET", Some("info/refs")) if smart => advertise(&git_dir),
        ("POST", Some("git-upload-pack")) => upload_pack(&git_dir, req),
        ("GET", _) => match std::fs::read(git_dir.join(file)) {
            Ok(bytes) => Response::bytes(200, "application/octet-stream", bytes),
            Err(_) => Response::text(404, "not found"),
        },
        _ => Response::text(405, "method not allowed"),
    }
}

/// `GET info/refs?service=git-upload-pack`: the smart protocol's reference advertisement.
fn advertise(git_dir: &Path) -> Response {
    let refs = match upload_pack_command(git_dir, &["--advertise-refs"], &[]) {
        Ok(refs) => refs,
        Err(err) => return Response::text(500, &err),
    };
    let mut body = pkt_line(b"# service=git-upload-pack\n");
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&refs);
    Response::bytes(200, "application/x-git-upload-pack-advertisement", body)
}

/// `POST git-upload-pack`: one stateless negotiation round.
fn upload_pack(git_dir: &Path, req: &mut Request<'_>) -> Response {
    if req
        .header("content-encoding")
        .is_some_and(|e| e != "identity")
    {
        return Response::text(415, "compressed upload-pack requests are not served");
    }
    let input = match req.read_body(MAX_REQUEST_BYTES) {
        Ok(input) => input,
        Err(err) => return Response::text(400, &err.to_string()),
    };
    match upload_pack_command(git_dir, &[], &input) {
        Ok(output) => Response::bytes(200, "application/x-git-upload-pack-result", output),
        Err(err) => Response::text(500, &err),
    }
}

fn upload_pack_command(git_dir: &Path, extra: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("git")
        .arg("upload-pack")
        .arg("--stateless-rpc")
        .args(extra)
        .arg(git_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot run git upload-pack: {err}"))?;
    let mut stdin = child.stdin.take().ok_or("git upload-pack has no stdin")?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child
        .wait_with_output()
        .map_err(|err| format!("git upload-pack: {err}"))?;
    let _ = writer.join();
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!("git upload-pack failed in {}", git_dir.display()))
    }
}

fn pkt_line(data: &[u8]) -> Vec<u8> {
    let mut line = format!("{:04x}", data.len() + 4).into_bytes();
    line.extend_from_slice(data);
    line
}

/// `(index, relative file)` of a served path; `None` for anything that leaves the `.git` folder.
fn split(path: &str) -> Option<(usize, PathBuf)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (index, rest) = rest.split_once('/')?;
    let (_, file) = rest.split_once(".git/")?;
    let file = PathBuf::from(file);
    let safe = file.components().all(|c| matches!(c, Component::Normal(_)));
    Some((index.parse().ok()?, file)).filter(|_| safe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_git_folder() {
        assert_eq!(
            split("/git/0/repo.git/info/refs"),
            Some((0, PathBuf::from("info/refs")))
        );
        assert_eq!(split("/git/0/repo.git/../config"), None);
        assert_eq!(split("/git/x/repo.git/HEAD"), None);
    }
}
