//! The `alloy-runner helper ...` command line, run inside the job's helper container:
//!
//! - `helper archive --base DIR --path P... [--untracked] --out FILE`
//! - `helper extract --archive FILE --dest DIR [--max-entry-bytes N] [--max-total-bytes N]
//!   [--max-entries N]`
//! - `helper cache-key KEY` prints the key's relative cache path.
//!
//! Progress goes to stdout, which the runner puts in the job's trace.

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use lexopt::prelude::*;

use super::{cache_key_path, create_archive, extract_archive, ArchiveError, ExtractLimits};

/// Why a helper verb failed.
#[derive(Debug)]
pub enum HelperError {
    /// The command line could not be parsed.
    Usage(lexopt::Error),
    /// No verb after `helper`.
    MissingVerb,
    /// A verb we do not know.
    UnknownVerb(String),
    /// A required option is absent.
    MissingOption {
        verb: &'static str,
        option: &'static str,
    },
    /// The verb itself failed.
    Archive(ArchiveError),
    /// The result could not be printed.
    Output(io::Error),
    /// An upload or download failed.
    Transfer(super::transfer::TransferError),
}

impl fmt::Display for HelperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelperError::Usage(err) => write!(f, "invalid helper command line: {err}"),
            HelperError::MissingVerb => {
                write!(f, "missing helper verb (archive, extract, cache-key, upload-artifacts, download-artifacts)")
            }
            HelperError::UnknownVerb(verb) => {
                write!(
                    f,
                    "unknown helper verb {verb:?} (expected archive, extract, cache-key, upload-artifacts, download-artifacts)"
                )
            }
            HelperError::MissingOption { verb, option } => {
                write!(f, "helper {verb} needs {option}")
            }
            HelperError::Archive(err) => write!(f, "{err}"),
            HelperError::Output(_) => write!(f, "cannot write to stdout"),
            HelperError::Transfer(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for HelperError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HelperError::Usage(err) => Some(err),
            HelperError::Archive(err) => err.source(),
            HelperError::Output(err) => Some(err),
            HelperError::Transfer(err) => err.source(),
            _ => None,
        }
    }
}

impl From<lexopt::Error> for HelperError {
    fn from(err: lexopt::Error) -> Self {
        HelperError::Usage(err)
    }
}

impl From<super::transfer::TransferError> for HelperError {
    fn from(err: super::transfer::TransferError) -> Self {
        HelperError::Transfer(err)
    }
}

impl From<ArchiveError> for HelperError {
    fn from(err: ArchiveError) -> Self {
        HelperError::Archive(err)
    }
}

const USAGE: &str = "\
Usage: alloy-runner helper VERB [OPTIONS]

Verbs the runner runs inside a job's helper container:
  archive --base DIR --path P... [--untracked] --out ZIP
  extract --archive ZIP --dest DIR [--max-entry-bytes N] [--max-total-bytes N] [--max-entries N]
  cache-key KEY
  upload-artifacts --url URL --job-id ID --token-file F --file ZIP [--name N] [--expire-in E]
  download-artifacts --url URL --job-id ID --token-file F --out ZIP
";

/// Runs the helper verb that follows `helper` on the command line.
pub fn run(args: &mut lexopt::Parser) -> Result<(), HelperError> {
    let verb = match args.next()? {
        Some(Short('h') | Long("help")) => {
            print!("{USAGE}");
            return Ok(());
        }
        Some(Value(verb)) => verb.string()?,
        Some(other) => return Err(other.unexpected().into()),
        None => return Err(HelperError::MissingVerb),
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match verb.as_str() {
        "archive" => archive(args, &mut out),
        "extract" => extract(args, &mut out),
        "cache-key" => cache_key(args, &mut out),
        "upload-artifacts" => super::transfer::upload(args, &mut out),
        "download-artifacts" => super::transfer::download(args, &mut out),
        _ => Err(HelperError::UnknownVerb(verb)),
    }
}

/// `helper archive`.
fn archive(args: &mut lexopt::Parser, out: &mut dyn Write) -> Result<(), HelperError> {
    let (mut base, mut paths, mut untracked, mut file) = (None, Vec::new(), false, None);
    while let Some(arg) = args.next()? {
        match arg {
            Long("base") => base = Some(PathBuf::from(args.value()?)),
            Long("path") => {
                for value in args.values()? {
                    paths.push(value.string()?);
                }
            }
            Long("untracked") => untracked = true,
            Long("out") => file = Some(PathBuf::from(args.value()?)),
            other => return Err(other.unexpected().into()),
        }
    }
    let missing = |option| HelperError::MissingOption {
        verb: "archive",
        option,
    };
    let base = base.ok_or_else(|| missing("--base"))?;
    let file = file.ok_or_else(|| missing("--out"))?;
    create_archive(&base, &paths, untracked, &file, out)?;
    Ok(())
}

/// `helper extract`.
fn extract(args: &mut lexopt::Parser, out: &mut dyn Write) -> Result<(), HelperError> {
    let (mut archive, mut dest, mut limits) = (None, None, ExtractLimits::default());
    while let Some(arg) = args.next()? {
        match arg {
            Long("archive") => archive = Some(PathBuf::from(args.value()?)),
            Long("dest") => dest = Some(PathBuf::from(args.value()?)),
            Long("max-entry-bytes") => limits.max_entry_bytes = args.value()?.parse()?,
            Long("max-total-bytes") => limits.max_total_bytes = args.value()?.parse()?,
            Long("max-entries") => limits.max_entries = args.value()?.parse()?,
            other => return Err(other.unexpected().into()),
        }
    }
    let missing = |option| HelperError::MissingOption {
        verb: "extract",
        option,
    };
    let archive = archive.ok_or_else(|| missing("--archive"))?;
    let dest = dest.ok_or_else(|| missing("--dest"))?;
    extract_archive(&archive, &dest, &limits, out)?;
    Ok(())
}

/// `helper cache-key`.
fn cache_key(args: &mut lexopt::Parser, out: &mut dyn Write) -> Result<(), HelperError> {
    let key = match args.next()? {
        Some(Value(key)) => key.string()?,
        Some(other) => return Err(other.unexpected().into()),
        None => {
            return Err(HelperError::MissingOption {
                verb: "cache-key",
                option: "KEY",
            })
        }
    };
    if let Some(extra) = args.next()? {
        return Err(extra.unexpected().into());
    }
    let path = cache_key_path(&key)?;
    writeln!(out, "{path}").map_err(HelperError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(args: &[&str]) -> lexopt::Parser {
        lexopt::Parser::from_args(args.iter().copied())
    }

    #[test]
    fn cache_key_prints_the_sanitised_path() {
        let mut out = Vec::new();
        cache_key(&mut parser(&["a b/c"]), &mut out).unwrap();
        assert_eq!(out, b"a_b/c\n");
    }

    #[test]
    fn unknown_verb_and_missing_options_are_named() {
        let err = run(&mut parser(&["explode"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown helper verb \"explode\" (expected archive, extract, cache-key, upload-artifacts, download-artifacts)"
        );
        let err = extract(&mut parser(&["--archive", "x.zip"]), &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "helper extract needs --dest");
    }

    #[test]
    fn bad_number_is_a_usage_error() {
        let args = [
            "--archive",
            "a.zip",
            "--dest",
            "d",
            "--max-entry-bytes",
            "lots",
        ];
        let err = extract(&mut parser(&args), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, HelperError::Usage(_)), "{err}");
    }
}
