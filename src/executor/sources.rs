//! Where a job's sources come from: a git clone or fetch in the helper container (the default),
//! or a tar archive on the runner's machine streamed into the helper container over exec stdin,
//! for jobs of a local checkout that the pod cannot reach.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::executor::script::quote;
use crate::executor::stage::{run_command, PodTarget, StageError};
use crate::executor::stop::StopSignal;
use crate::trace::TraceWriter;

/// How the project folder is filled before the job's script runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sources {
    /// Clone or fetch `git_info.repo_url` in the helper container (`GIT_STRATEGY` applies).
    #[default]
    Git,
    /// Unpack this local tar file into the project folder; `GIT_STRATEGY` is not read.
    Archive(PathBuf),
}

/// Why unpacking an archive did not fill the project folder.
#[derive(Debug)]
pub enum SourcesError {
    /// The local archive could not be opened or measured.
    Unreadable { path: PathBuf, source: io::Error },
    /// The unpacking command in the helper container exited with this status.
    Exit(i32),
    /// The exec ended without an exit status or was aborted.
    Stage(StageError),
}

impl fmt::Display for SourcesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcesError::Unreadable { path, .. } => {
                write!(f, "cannot read the sources archive {}", path.display())
            }
            SourcesError::Exit(code) => {
                write!(f, "unpacking the sources failed with exit code {code}")
            }
            SourcesError::Stage(err) => write!(f, "unpacking the sources: {err}"),
        }
    }
}

impl std::error::Error for SourcesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourcesError::Unreadable { source, .. } => Some(source),
            SourcesError::Exit(_) => None,
            SourcesError::Stage(err) => Some(err),
        }
    }
}

/// Streams the tar file `archive` into the `helper` container and unpacks it into
/// `project_dir`, which is created if missing.
pub fn unpack_archive(
    target: &PodTarget,
    archive: &Path,
    project_dir: &str,
    trace: &TraceWriter,
    stop: &StopSignal,
) -> Result<(), SourcesError> {
    let unreadable = |source| SourcesError::Unreadable {
        path: archive.to_path_buf(),
        source,
    };
    let file = File::open(archive).map_err(unreadable)?;
    let len = file.metadata().map_err(unreadable)?.len();
    trace.say(&format!(
        "Unpacking the local sources ({len} bytes) into {project_dir}..."
    ));

    let command = unpack_command(project_dir, len);
    match run_command(target, "helper", command, Box::new(file), trace, stop) {
        Ok(0) => Ok(()),
        Ok(code) => Err(SourcesError::Exit(code)),
        Err(err) => Err(SourcesError::Stage(err)),
    }
}

/// The helper command that unpacks `len` bytes of tar read from stdin into `dir`. Stdin is read
/// by byte count, never to EOF, which the v4 exec protocol cannot send.
pub fn unpack_command(dir: &str, len: u64) -> Vec<String> {
    let program = format!(
        "mkdir -p {dir} && cd {dir} && head -c {len} | tar -xf -",
        dir = quote(dir)
    );
    vec!["sh".into(), "-c".into(), program]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn unpack_command_quotes_the_folder_and_reads_by_count() {
        assert_eq!(
            unpack_command("/builds/it's here", 2048),
            [
                "sh",
                "-c",
                "mkdir -p '/builds/it'\\''s here' && cd '/builds/it'\\''s here' && \
                 head -c 2048 | tar -xf -"
            ]
        );
    }

    #[test]
    fn unpack_command_stops_after_the_archive_while_stdin_stays_open() {
        // A tar archive followed by bytes that would corrupt it; stdin is never closed
        // before the command returns, as under the v4 exec protocol.
        let dir = std::env::temp_dir().join(format!("alloy-sources-{}", std::process::id()));
        let src = dir.join("src");
        std::fs::create_dir_all(&src).expect("temp folder");
        std::fs::write(src.join("a.txt"), "from the archive\n").expect("file");
        let tar = Command::new("tar")
            .arg("-cf")
            .arg("-")
            .arg("-C")
            .arg(&src)
            .arg("a.txt")
            .output()
            .expect("tar runs");
        let out = dir.join("out").to_string_lossy().into_owned();
        let command = unpack_command(&out, tar.stdout.len() as u64);
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let mut stdin = child.stdin.take().expect("piped stdin");
        io::Write::write_all(&mut stdin, &tar.stdout).expect("archive sent");
        // The command may already be gone, as it should: then these bytes find no reader.
        io::Write::write_all(&mut stdin, b"trailing garbage").ok();
        let status = child.wait().expect("sh ends");
        drop(stdin);
        let unpacked = std::fs::read_to_string(dir.join("out/a.txt"));
        std::fs::remove_dir_all(&dir).ok();
        assert!(status.success());
        assert_eq!(unpacked.expect("file unpacked"), "from the archive\n");
    }
}
