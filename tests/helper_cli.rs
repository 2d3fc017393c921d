//! The `helper` verbs as the runner binary parses them.

use std::fs;
use std::path::PathBuf;

use alloy_runner::helper::cli::{run, HelperError};
use alloy_runner::helper::ArchiveError;

/// A folder under the system temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("alloy-cli-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn helper(args: &[&str]) -> Result<(), HelperError> {
    run(&mut lexopt::Parser::from_args(args.iter().copied()))
}

#[test]
fn archive_then_extract_through_the_command_line() {
    let dir = TempDir::new("roundtrip");
    let base = dir.0.join("base");
    fs::create_dir_all(base.join("out")).unwrap();
    fs::write(base.join("out/a.txt"), b"a").unwrap();
    fs::write(base.join("b.txt"), b"b").unwrap();
    fs::write(base.join("c.txt"), b"c").unwrap();
    let zip = dir.0.join("cache/deps.zip");
    let (base_s, zip_s) = (base.to_str().unwrap(), zip.to_str().unwrap());

    helper(&[
        "archive", "--base", base_s, "--path", "out", "b.txt", "--out", zip_s,
    ])
    .unwrap();
    let dest = dir.0.join("dest");
    let dest_s = dest.to_str().unwrap();
    helper(&[
        "extract",
        "--archive",
        zip_s,
        "--dest",
        dest_s,
        "--max-entry-bytes",
        "10",
    ])
    .unwrap();

    assert_eq!(fs::read(dest.join("out/a.txt")).unwrap(), b"a");
    assert_eq!(fs::read(dest.join("b.txt")).unwrap(), b"b");
    assert!(!dest.join("c.txt").exists());
}

#[test]
fn extract_limit_from_the_command_line_is_enforced() {
    let dir = TempDir::new("limit");
    let base = dir.0.join("base");
    fs::create_dir_all(&base).unwrap();
    fs::write(base.join("big.txt"), [b'x'; 100]).unwrap();
    let zip = dir.0.join("a.zip");
    let (base_s, zip_s) = (base.to_str().unwrap(), zip.to_str().unwrap());
    helper(&[
        "archive", "--base", base_s, "--path", "big.txt", "--out", zip_s,
    ])
    .unwrap();

    let dest = dir.0.join("dest");
    let args = [
        "extract",
        "--archive",
        zip_s,
        "--dest",
        dest.to_str().unwrap(),
        "--max-entry-bytes",
        "99",
    ];
    let err = helper(&args).unwrap_err();
    assert!(
        matches!(
            err,
            HelperError::Archive(ArchiveError::EntryTooLarge { limit: 99, .. })
        ),
        "{err}"
    );
}

#[test]
fn archive_without_out_is_a_usage_error() {
    let err = helper(&["archive", "--base", "/nonexistent", "--path", "x"]).unwrap_err();
    assert_eq!(err.to_string(), "helper archive needs --out");
}
