//! Cache and artifact archives: round trips, git untracked files, zips made by Python, and
//! hostile archives built byte by byte.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use alloy_runner::helper::{create_archive, extract_archive, ArchiveError, ExtractLimits};
use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};
use std::io::Write;

/// A folder under the system temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("alloy-helper-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, rel: &str, content: &[u8]) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn strings(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

fn extract_with(
    archive: &Path,
    dest: &Path,
    limits: ExtractLimits,
) -> Result<String, ArchiveError> {
    let mut log = Vec::new();
    extract_archive(archive, dest, &limits, &mut log)?;
    Ok(String::from_utf8(log).unwrap())
}

fn extract(archive: &Path, dest: &Path) -> Result<String, ArchiveError> {
    extract_with(archive, dest, ExtractLimits::default())
}

/// Names of the entries Python's zipfile sees in `archive`.
fn python_names(archive: &Path) -> Vec<String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
        ])
        .arg(archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn files_dirs_globs_empty_dirs_and_symlinks_round_trip() {
    let src = TempDir::new("src");
    let big = pseudo_random(300_000);
    src.write("src/a.txt", b"alpha\n");
    src.write("src/sub/b.bin", &big);
    let script = src.write("src/run.sh", b"#!/bin/sh\necho hi\n");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    src.write("build/x.txt", b"x");
    src.write("build/y.log", b"y");
    src.write("build/deep/z.txt", b"z");
    fs::create_dir_all(src.path().join("empty")).unwrap();
    symlink("a.txt", src.path().join("src/link")).unwrap();
    symlink("../build/x.txt", src.path().join("src/up")).unwrap();
    symlink("/etc/passwd", src.path().join("src/out")).unwrap();
    symlink("../../outside", src.path().join("escape")).unwrap();

    let work = TempDir::new("work");
    let zip = work.path().join("artifacts.zip");
    let paths = strings(&["src", "build/*.txt", "empty/", "escape", "missing/file"]);
    let mut log = Vec::new();
    let summary = create_archive(src.path(), &paths, false, &zip, &mut log).unwrap();
    let log = String::from_utf8(log).unwrap();

    assert_eq!((summary.files, summary.dirs, summary.symlinks), (4, 3, 2));
    assert_eq!(summary.bytes, 6 + 300_000 + 18 + 1);
    assert_eq!(summary.archive_bytes, fs::metadata(&zip).unwrap().len());
    assert!(
        log.contains("WARNING: src/out: symlink target is absolute, skipped"),
        "{log}"
    );
    assert!(
        log.contains("WARNING: escape: symlink target points outside, skipped"),
        "{log}"
    );
    assert!(
        log.contains("WARNING: missing/file: no matching files"),
        "{log}"
    );
    assert!(log.contains("4 files, 3 directories, 2 symlinks"), "{log}");

    let dest = TempDir::new("dest");
    let extract_log = extract(&zip, dest.path()).unwrap();
    assert!(
        extract_log.contains("Extracted 4 files, 3 directories, 2 symlinks"),
        "{extract_log}"
    );
    let d = dest.path();
    assert_eq!(fs::read(d.join("src/a.txt")).unwrap(), b"alpha\n");
    assert_eq!(fs::read(d.join("src/sub/b.bin")).unwrap(), big);
    assert_eq!(fs::read(d.join("build/x.txt")).unwrap(), b"x");
    assert!(!d.join("build/y.log").exists());
    assert!(!d.join("build/deep").exists());
    assert!(d.join("empty").is_dir());
    assert_eq!(
        fs::read_link(d.join("src/link")).unwrap(),
        Path::new("a.txt")
    );
    assert_eq!(fs::read(d.join("src/up")).unwrap(), b"x");
    assert!(fs::symlink_metadata(d.join("src/out")).is_err());
    assert!(fs::symlink_metadata(d.join("escape")).is_err());
    let mode = fs::metadata(d.join("src/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let original = fs::metadata(src.path().join("src/a.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let restored = fs::metadata(d.join("src/a.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let drift = original
        .duration_since(restored)
        .unwrap_or_else(|e| e.duration());
    assert!(drift.as_secs() <= 2, "mtime drifted by {drift:?}");
}

#[test]
fn double_star_glob_collects_files_at_every_depth() {
    let src = TempDir::new("src");
    src.write("a.txt", b"1");
    src.write("p/b.txt", b"2");
    src.write("p/q/c.txt", b"3");
    src.write("p/q/d.md", b"4");
    let work = TempDir::new("work");
    let zip = work.path().join("c.zip");
    create_archive(
        src.path(),
        &strings(&["**/*.txt"]),
        false,
        &zip,
        &mut Vec::new(),
    )
    .unwrap();
    assert_eq!(python_names(&zip), ["a.txt", "p/b.txt", "p/q/c.txt"]);
}

#[test]
fn paths_through_a_symlinked_folder_or_outside_the_base_are_skipped() {
    let outside = TempDir::new("outside");
    outside.write("secret.txt", b"secret");
    let src = TempDir::new("src");
    src.write("ok.txt", b"ok");
    symlink(outside.path(), src.path().join("door")).unwrap();
    let work = TempDir::new("work");
    let zip = work.path().join("c.zip");
    let mut log = Vec::new();
    let paths = strings(&["door/secret.txt", "door/*.txt", "../outside", "ok.txt"]);
    create_archive(src.path(), &paths, false, &zip, &mut log).unwrap();
    let log = String::from_utf8(log).unwrap();
    assert_eq!(python_names(&zip), ["ok.txt"]);
    assert!(
        log.contains("door/secret.txt: path goes through symlink door, skipped"),
        "{log}"
    );
    assert!(
        log.contains("../outside: path is outside the base folder, skipped"),
        "{log}"
    );
}

#[test]
fn archive_written_inside_the_base_does_not_contain_itself() {
    let src = TempDir::new("src");
    src.write("a.txt", b"a");
    let zip = src.path().join("cache.zip");
    fs::write(&zip, b"old archive").unwrap();
    create_archive(src.path(), &strings(&["."]), false, &zip, &mut Vec::new()).unwrap();
    assert_eq!(python_names(&zip), ["a.txt"]);
}

#[test]
fn untracked_files_come_from_git() {
    let repo = TempDir::new("repo");
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(repo.path())
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    git(&["init", "-q"]);
    repo.write("tracked.txt", b"t");
    repo.write(".gitignore", b"*.log\n");
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    repo.write("new.txt", b"n");
    repo.write("deps/lib/x.ex", b"x");
    repo.write("debug.log", b"ignored");

    let work = TempDir::new("work");
    let zip = work.path().join("u.zip");
    let summary = create_archive(repo.path(), &[], true, &zip, &mut Vec::new()).unwrap();
    assert_eq!(summary.files, 2);
    assert_eq!(python_names(&zip), ["deps/lib/x.ex", "new.txt"]);
}

#[test]
fn untracked_nested_repository_is_archived_as_a_folder() {
    let repo = TempDir::new("outer");
    let init = |dir: &Path| {
        let out = Command::new("git")
            .args(["init", "-q"])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    init(repo.path());
    repo.write("vendor/lib/f.txt", b"f");
    init(&repo.path().join("vendor/lib"));

    let work = TempDir::new("work");
    let zip = work.path().join("n.zip");
    create_archive(repo.path(), &[], true, &zip, &mut Vec::new()).unwrap();
    let names = python_names(&zip);
    assert!(names.contains(&"vendor/lib/".to_string()), "{names:?}");
    assert!(names.contains(&"vendor/lib/f.txt".to_string()), "{names:?}");
    assert!(names.iter().all(|n| !n.contains("//")), "{names:?}");
}

#[test]
fn untracked_outside_a_git_repository_is_an_error() {
    let plain = TempDir::new("plain");
    let ceiling = plain.path().parent().unwrap();
    let zip = plain.path().join("u.zip");
    std::env::set_var("GIT_CEILING_DIRECTORIES", ceiling);
    let err = create_archive(plain.path(), &[], true, &zip, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, ArchiveError::UntrackedFailed { .. }), "{err}");
    assert!(
        err.to_string().starts_with("git ls-files failed in "),
        "{err}"
    );
}

#[test]
fn extraction_replaces_existing_files() {
    let src = TempDir::new("src");
    src.write("f.txt", b"new");
    let work = TempDir::new("work");
    let zip = work.path().join("c.zip");
    create_archive(
        src.path(),
        &strings(&["f.txt"]),
        false,
        &zip,
        &mut Vec::new(),
    )
    .unwrap();
    let dest = TempDir::new("dest");
    dest.write("f.txt", b"old content");
    extract(&zip, dest.path()).unwrap();
    assert_eq!(fs::read(dest.path().join("f.txt")).unwrap(), b"new");
}

// ---------------------------------------------------------------------------------------------
// Interoperability with Python's zipfile

#[test]
fn archives_we_create_pass_python_zipfile_test() {
    let src = TempDir::new("src");
    src.write("big.bin", &pseudo_random(2_000_000));
    src.write("text/readme.md", "héllo\n".repeat(1000).as_bytes());
    src.write("empty.txt", b"");
    let work = TempDir::new("work");
    let zip = work.path().join("a.zip");
    create_archive(src.path(), &strings(&["."]), false, &zip, &mut Vec::new()).unwrap();

    let out = Command::new("python3")
        .args(["-m", "zipfile", "-t"])
        .arg(&zip)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Done testing"), "{stdout}");
    assert_eq!(
        python_names(&zip),
        ["big.bin", "empty.txt", "text/", "text/readme.md"]
    );
}

#[test]
fn zip_made_by_python_extracts() {
    let work = TempDir::new("work");
    let zip = work.path().join("py.zip");
    let script = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("dir/", "")
    z.writestr("dir/deflated.txt", "squeeze me " * 500, compress_type=zipfile.ZIP_DEFLATED)
    z.writestr("stored.txt", "as is", compress_type=zipfile.ZIP_STORED)
    z.writestr("ünïcode.txt", "u", compress_type=zipfile.ZIP_DEFLATED)
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&zip)
        .status()
        .unwrap();
    assert!(status.success());

    let dest = TempDir::new("dest");
    let log = extract(&zip, dest.path()).unwrap();
    assert!(log.contains("Extracted 3 files, 1 directories"), "{log}");
    let d = dest.path();
    assert_eq!(
        fs::read_to_string(d.join("dir/deflated.txt")).unwrap(),
        "squeeze me ".repeat(500)
    );
    assert_eq!(fs::read_to_string(d.join("stored.txt")).unwrap(), "as is");
    assert_eq!(fs::read_to_string(d.join("ünïcode.txt")).unwrap(), "u");
}

// ---------------------------------------------------------------------------------------------
// Hostile archives, built byte by byte

/// One entry of a hand-made zip; every header field can lie.
struct Raw {
    name: String,
    data: Vec<u8>,
    method: u16,
    crc: u32,
    compressed: u32,
    size: u32,
    /// Unix mode (type and permission bits).
    mode: u32,
}

impl Raw {
    fn file(name: &str, content: &[u8]) -> Raw {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(content).unwrap();
        let data = encoder.finish().unwrap();
        let mut crc = Crc::new();
        crc.update(content);
        Raw {
            name: name.to_string(),
            compressed: data.len() as u32,
            size: content.len() as u32,
            data,
            method: 8,
            crc: crc.sum(),
            mode: 0o100_644,
        }
    }

    fn symlink(name: &str, target: &str) -> Raw {
        let mut crc = Crc::new();
        crc.update(target.as_bytes());
        Raw {
            name: name.to_string(),
            data: target.as_bytes().to_vec(),
            method: 0,
            crc: crc.sum(),
            compressed: target.len() as u32,
            size: target.len() as u32,
            mode: 0o120_777,
        }
    }
}

fn u16le(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Lays the entries out as a zip: local headers and data, central directory, end record.
fn build_zip(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        for (buf, sig) in [(&mut out, 0x0403_4b50u32), (&mut central, 0x0201_4b50)] {
            u32le(buf, sig);
            if sig == 0x0201_4b50 {
                u16le(buf, (3 << 8) | 20);
            }
            u16le(buf, 20);
            u16le(buf, 1 << 11);
            u16le(buf, e.method);
            u16le(buf, 0);
            u16le(buf, (44 << 9) | (1 << 5) | 1);
            u32le(buf, e.crc);
            u32le(buf, e.compressed);
            u32le(buf, e.size);
            u16le(buf, e.name.len() as u16);
            u16le(buf, 0);
        }
        u16le(&mut central, 0);
        u16le(&mut central, 0);
        u16le(&mut central, 0);
        u32le(&mut central, e.mode << 16);
        u32le(&mut central, offset);
        central.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(&e.data);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    u32le(&mut out, 0x0605_4b50);
    u16le(&mut out, 0);
    u16le(&mut out, 0);
    u16le(&mut out, entries.len() as u16);
    u16le(&mut out, entries.len() as u16);
    u32le(&mut out, central.len() as u32);
    u32le(&mut out, cd_offset);
    u16le(&mut out, 0);
    out
}

/// Writes the zip into `dir` and extracts it into `dir/dest`; returns the error.
fn extract_hostile(dir: &TempDir, entries: &[Raw], limits: ExtractLimits) -> ArchiveError {
    let zip = dir.path().join("hostile.zip");
    fs::write(&zip, build_zip(entries)).unwrap();
    extract_with(&zip, &dir.path().join("dest"), limits).unwrap_err()
}

fn assert_unsafe(err: ArchiveError, name: &str, reason_part: &str) {
    match &err {
        ArchiveError::UnsafeEntry { entry, reason } => {
            assert_eq!(entry, name);
            assert!(reason.contains(reason_part), "{err}");
        }
        other => panic!("expected an unsafe entry error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("refusing entry {name:?}: ")),
        "{err}"
    );
}

#[test]
fn zip_slip_entry_is_refused_and_nothing_is_written() {
    let dir = TempDir::new("slip");
    let err = extract_hostile(
        &dir,
        &[Raw::file("ok.txt", b"ok"), Raw::file("../evil", b"x")],
        ExtractLimits::default(),
    );
    assert_unsafe(err, "../evil", "`..`");
    assert!(!dir.path().join("evil").exists());
    assert!(
        !dir.path().join("dest/ok.txt").exists(),
        "entries are checked before any is written"
    );
}

#[test]
fn absolute_entry_is_refused() {
    let dir = TempDir::new("abs");
    let err = extract_hostile(&dir, &[Raw::file("/etc/x", b"x")], ExtractLimits::default());
    assert_unsafe(err, "/etc/x", "absolute path");
}

#[test]
fn symlink_entry_pointing_outside_is_refused() {
    let dir = TempDir::new("linkout");
    let entries = [
        Raw::symlink("link", "../outside"),
        Raw::file("link/evil", b"x"),
    ];
    let err = extract_hostile(&dir, &entries, ExtractLimits::default());
    assert_unsafe(err, "link", "points outside");
    assert!(!dir.path().join("outside").exists());
}

#[test]
fn file_through_an_extracted_symlink_is_refused() {
    let dir = TempDir::new("linkthrough");
    fs::create_dir_all(dir.path().join("dest/real")).unwrap();
    let entries = [Raw::symlink("link", "real"), Raw::file("link/evil", b"x")];
    let err = extract_hostile(&dir, &entries, ExtractLimits::default());
    assert_unsafe(err, "link/evil", "goes through the symlink link");
    assert!(!dir.path().join("dest/real/evil").exists());
}

#[test]
fn symlink_already_on_disk_is_never_followed() {
    let dir = TempDir::new("ondisk");
    let outside = TempDir::new("ondisk-outside");
    let target = outside.write("victim.txt", b"precious");
    fs::create_dir_all(dir.path().join("dest")).unwrap();
    symlink(outside.path(), dir.path().join("dest/pre")).unwrap();
    symlink(&target, dir.path().join("dest/victim")).unwrap();

    let err = extract_hostile(
        &dir,
        &[Raw::file("pre/evil", b"x")],
        ExtractLimits::default(),
    );
    assert_unsafe(err, "pre/evil", "goes through the symlink pre");
    assert!(!outside.path().join("evil").exists());

    let zip = dir.path().join("replace.zip");
    fs::write(&zip, build_zip(&[Raw::file("victim", b"replaced")])).unwrap();
    extract(&zip, &dir.path().join("dest")).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"precious");
    assert_eq!(
        fs::read(dir.path().join("dest/victim")).unwrap(),
        b"replaced"
    );
    assert!(!fs::symlink_metadata(dir.path().join("dest/victim"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn entry_declaring_more_than_the_limit_is_refused_before_writing() {
    let dir = TempDir::new("declared");
    let limits = ExtractLimits {
        max_entry_bytes: 1000,
        ..ExtractLimits::default()
    };
    let entries = [
        Raw::file("small.txt", b"s"),
        Raw::file("big.bin", &[0u8; 5000]),
    ];
    let err = extract_hostile(&dir, &entries, limits);
    assert!(
        matches!(&err, ArchiveError::EntryTooLarge { entry, limit: 1000 } if entry == "big.bin"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "refusing entry \"big.bin\": larger than the limit of 1000 bytes"
    );
    assert!(!dir.path().join("dest/small.txt").exists());
}

#[test]
fn entry_inflating_past_its_lying_header_is_stopped_and_removed() {
    let dir = TempDir::new("bomb");
    let mut bomb = Raw::file("bomb.bin", &vec![0u8; 10 << 20]);
    bomb.size = 100;
    let limits = ExtractLimits {
        max_entry_bytes: 1 << 20,
        ..ExtractLimits::default()
    };
    let err = extract_hostile(&dir, &[bomb], limits);
    match &err {
        ArchiveError::Corrupt {
            entry: Some(entry),
            reason,
            ..
        } => {
            assert_eq!(entry, "bomb.bin");
            assert_eq!(reason, "data is longer than its declared 100 bytes");
        }
        other => panic!("expected a corrupt entry, got {other:?}"),
    }
    assert!(!dir.path().join("dest/bomb.bin").exists());
}

#[test]
fn entry_inflating_past_the_limit_is_refused_even_if_header_agrees_later() {
    let dir = TempDir::new("bomb2");
    // Declared under the limit, but the real data is far bigger than both.
    let mut bomb = Raw::file("bomb.bin", &vec![7u8; 4 << 20]);
    bomb.size = 1000;
    let limits = ExtractLimits {
        max_entry_bytes: 1000,
        ..ExtractLimits::default()
    };
    let err = extract_hostile(&dir, &[bomb], limits);
    assert!(
        matches!(&err, ArchiveError::EntryTooLarge { entry, .. } if entry == "bomb.bin"),
        "{err}"
    );
}

#[test]
fn too_many_entries_and_too_much_in_total_are_refused() {
    let dir = TempDir::new("counts");
    let entries: Vec<Raw> = (0..5)
        .map(|i| Raw::file(&format!("f{i}"), &[1u8; 100]))
        .collect();
    let limits = ExtractLimits {
        max_entries: 4,
        ..ExtractLimits::default()
    };
    let err = extract_hostile(&dir, &entries, limits);
    assert!(
        matches!(err, ArchiveError::TooManyEntries { count: 5, limit: 4 }),
        "{err}"
    );

    let limits = ExtractLimits {
        max_total_bytes: 450,
        ..ExtractLimits::default()
    };
    let err = extract_hostile(&dir, &entries, limits);
    assert!(
        matches!(err, ArchiveError::TotalTooLarge { limit: 450 }),
        "{err}"
    );
}

#[test]
fn truncated_archive_is_a_clear_error() {
    let src = TempDir::new("src");
    src.write("a.bin", &pseudo_random(50_000));
    let zip = src.path().join("t.zip");
    create_archive(
        src.path(),
        &strings(&["a.bin"]),
        false,
        &zip,
        &mut Vec::new(),
    )
    .unwrap();
    let bytes = fs::read(&zip).unwrap();
    for keep in [0, 10, bytes.len() / 2, bytes.len() - 10] {
        fs::write(&zip, &bytes[..keep]).unwrap();
        let err = extract(&zip, &src.path().join("dest")).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Corrupt { .. }),
            "kept {keep}: {err}"
        );
        assert!(err.to_string().starts_with("corrupt archive "), "{err}");
    }
}

#[test]
fn corrupt_entry_data_is_an_error_naming_the_entry() {
    let dir = TempDir::new("corrupt");
    let mut entry = Raw::file("data.bin", &pseudo_random(10_000));
    let middle = entry.data.len() / 2;
    for byte in &mut entry.data[middle..middle + 16] {
        *byte ^= 0x5a;
    }
    let err = extract_hostile(&dir, &[entry], ExtractLimits::default());
    match &err {
        ArchiveError::Corrupt {
            entry: Some(name), ..
        } => assert_eq!(name, "data.bin"),
        other => panic!("expected a corrupt entry, got {other:?}"),
    }
    assert!(err.to_string().contains("entry \"data.bin\""), "{err}");
}

#[test]
fn data_offset_past_the_central_directory_names_the_entry() {
    let dir = TempDir::new("offset");
    let mut entry = Raw::file("liar.txt", b"hello");
    entry.compressed = 1 << 20;
    let err = extract_hostile(&dir, &[entry], ExtractLimits::default());
    let text = err.to_string();
    assert!(
        text.contains("entry \"liar.txt\": data runs past the central directory"),
        "{text}"
    );
}

#[test]
fn zip64_archive_is_refused() {
    let dir = TempDir::new("zip64");
    let mut bytes = build_zip(&[Raw::file("a", b"a")]);
    let len = bytes.len();
    bytes[len - 6..len - 2].copy_from_slice(&u32::MAX.to_le_bytes());
    let zip = dir.path().join("z.zip");
    fs::write(&zip, bytes).unwrap();
    let err = extract(&zip, &dir.path().join("dest")).unwrap_err();
    assert!(matches!(err, ArchiveError::Zip64 { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("uses zip64, which is not supported"),
        "{err}"
    );
}

#[test]
fn unknown_compression_method_is_refused_with_the_entry_named() {
    let dir = TempDir::new("method");
    let mut entry = Raw::file("x.bz2", b"x");
    entry.method = 12;
    let err = extract_hostile(&dir, &[entry], ExtractLimits::default());
    assert_eq!(
        err.to_string(),
        "unsupported entry \"x.bz2\": compression method 12 is not supported"
    );
}
