//! Helper verbs that talk to the coordinator from inside the helper container: upload this
//! job's artifact archive, download a dependency's. Tokens come from files in the pod's scripts
//! volume, never from the command line.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use lexopt::prelude::*;

use crate::coordinator::artifacts::ArtifactsUpload;
use crate::coordinator::client::Client;
use crate::coordinator::CoordinatorError;
use crate::secret::Secret;

/// Why a transfer verb failed.
#[derive(Debug)]
pub enum TransferError {
    /// A required option is absent.
    MissingOption {
        verb: &'static str,
        option: &'static str,
    },
    /// The token file could not be read.
    Token { path: PathBuf, source: io::Error },
    /// The coordinator refused or could not be reached.
    Coordinator(CoordinatorError),
    /// The result could not be printed.
    Output(io::Error),
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::MissingOption { verb, option } => {
                write!(f, "helper {verb} needs {option}")
            }
            TransferError::Token { path, .. } => {
                write!(f, "cannot read the job token file {}", path.display())
            }
            TransferError::Coordinator(err) => write!(f, "{err}"),
            TransferError::Output(_) => f.write_str("cannot write to stdout"),
        }
    }
}

impl std::error::Error for TransferError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TransferError::Token { source, .. } | TransferError::Output(source) => Some(source),
            TransferError::Coordinator(err) => err.source(),
            TransferError::MissingOption { .. } => None,
        }
    }
}

/// Options both verbs share.
#[derive(Default)]
struct Common {
    url: Option<String>,
    job_id: Option<u64>,
    token_file: Option<PathBuf>,
}

/// `helper upload-artifacts --url URL --job-id ID --token-file F --file ZIP [--name N]
/// [--expire-in E]`.
pub fn upload(
    args: &mut lexopt::Parser,
    out: &mut dyn Write,
) -> Result<(), super::cli::HelperError> {
    let (mut common, mut file, mut name, mut expire_in) = (Common::default(), None, None, None);
    while let Some(arg) = args.next()? {
        match arg {
            Long("file") => file = Some(PathBuf::from(args.value()?)),
            Long("name") => name = Some(args.value()?.string()?),
            Long("expire-in") => expire_in = Some(args.value()?.string()?),
            Long(name) => {
                let name = name.to_string();
                common.take(&name, args)?;
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let verb = "upload-artifacts";
    let file = file.ok_or(TransferError::MissingOption {
        verb,
        option: "--file",
    })?;
    let (client, job_id, token) = common.resolve(verb)?;
    let size = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let upload = ArtifactsUpload {
        name: name.as_deref(),
        expire_in: expire_in.as_deref(),
    };
    client
        .upload_artifacts(job_id, &token, &file, &upload)
        .map_err(TransferError::Coordinator)?;
    writeln!(
        out,
        "Uploaded {} ({size} bytes) as the artifacts of job {job_id}",
        file.display()
    )
    .map_err(TransferError::Output)?;
    Ok(())
}

/// `helper download-artifacts --url URL --job-id ID --token-file F --out ZIP`.
pub fn download(
    args: &mut lexopt::Parser,
    out: &mut dyn Write,
) -> Result<(), super::cli::HelperError> {
    let (mut common, mut dest) = (Common::default(), None);
    while let Some(arg) = args.next()? {
        match arg {
            Long("out") => dest = Some(PathBuf::from(args.value()?)),
            Long(name) => {
                let name = name.to_string();
                common.take(&name, args)?;
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let verb = "download-artifacts";
    let dest = dest.ok_or(TransferError::MissingOption {
        verb,
        option: "--out",
    })?;
    let (client, job_id, token) = common.resolve(verb)?;
    let bytes = client
        .download_artifacts(job_id, &token, &dest, 1)
        .map_err(TransferError::Coordinator)?;
    writeln!(
        out,
        "Downloaded the artifacts of job {job_id} ({bytes} bytes)"
    )
    .map_err(TransferError::Output)?;
    Ok(())
}

impl Common {
    fn take(&mut self, name: &str, args: &mut lexopt::Parser) -> Result<(), lexopt::Error> {
        match name {
            "url" => self.url = Some(args.value()?.string()?),
            "job-id" => self.job_id = Some(args.value()?.parse()?),
            "token-file" => self.token_file = Some(PathBuf::from(args.value()?)),
            other => return Err(lexopt::Error::UnexpectedOption(format!("--{other}"))),
        }
        Ok(())
    }

    fn resolve(self, verb: &'static str) -> Result<(Client, u64, Secret), TransferError> {
        let missing = |option| TransferError::MissingOption { verb, option };
        let url = self.url.ok_or(missing("--url"))?;
        let job_id = self.job_id.ok_or(missing("--job-id"))?;
        let path = self.token_file.ok_or(missing("--token-file"))?;
        let token = read_token(&path)?;
        let client = Client::new(&url).map_err(TransferError::Coordinator)?;
        Ok((client, job_id, token))
    }
}

fn read_token(path: &Path) -> Result<Secret, TransferError> {
    let text = fs::read_to_string(path).map_err(|source| TransferError::Token {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Secret::new(text.trim()))
}
