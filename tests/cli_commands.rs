//! The real binary: global options, `list`, exit codes and where the log level comes from.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/config")
        .join(name)
}

fn runner() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alloy-runner"));
    command
        .env_remove("RUST_LOG")
        .env_remove("ALLOY_RUNNER_CONFIG");
    command
}

fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the binary runs");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (status.code(), text(stdout), text(stderr))
}

/// A folder of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("alloy-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn list_prints_the_seed_runner_without_its_token() {
    let path = fixture("seed-example.toml");
    let (code, stdout, stderr) = run(runner().arg("--config").arg(&path).arg("list"));
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("{}: 1 runner(s), concurrent 4", path.display())
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "URL", "EXECUTOR", "NAMESPACE", "HOST"]
    );
    assert!(lines[2].starts_with("Kubernetes Runner  https://alloy.com/ci  kubernetes  alloy"));
    assert!(lines[2].ends_with("https://127.0.0.1:4892"));
    assert!(!stdout.contains("......") && !stderr.contains("......"));
}

#[test]
fn list_says_in_cluster_when_no_host_is_set() {
    let (code, stdout, _) = run(runner()
        .arg("-c")
        .arg(fixture("seed-volumes-fixed.toml"))
        .arg("list"));
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout
            .lines()
            .nth(2)
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec![
            "(unnamed)",
            "-",
            "kubernetes",
            "default",
            "in-cluster"
        ])
    );
}

#[test]
fn environment_variable_replaces_the_default_path_and_the_flag_wins() {
    let dir = TempDir::new("env");
    let from_env = dir.write("env.toml", "concurrent = 3\n");
    let (code, stdout, _) = run(runner().env("ALLOY_RUNNER_CONFIG", &from_env).arg("list"));
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with(&format!(
        "{}: 0 runner(s), concurrent 3",
        from_env.display()
    )));

    let from_flag = dir.write("flag.toml", "concurrent = 5\n");
    let mut command = runner();
    command
        .env("ALLOY_RUNNER_CONFIG", &from_env)
        .arg("--config")
        .arg(&from_flag)
        .arg("list");
    let (code, stdout, _) = run(&mut command);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("concurrent 5"), "{stdout}");
}

#[test]
fn missing_config_file_exits_2_naming_it() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("absent.toml");
    let (code, stdout, stderr) = run(runner().arg("--config").arg(&path).arg("list"));
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert!(
        stderr.starts_with(&format!(
            "alloy-runner: error: cannot read config file {}: ",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn unknown_command_is_a_usage_error_listing_the_known_ones() {
    let (code, _, stderr) = run(runner().arg("lsit"));
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "alloy-runner: error: unknown command \"lsit\" (known commands: run, run-single, exec, register, verify, unregister, list, helper)\n\
         Run 'alloy-runner --help' for usage.\n"
    );
}

#[test]
fn no_command_and_unknown_options_exit_2() {
    let (code, _, stderr) = run(&mut runner());
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("alloy-runner: error: no command given\n"),
        "{stderr}"
    );

    let (code, _, stderr) = run(runner().arg("--verbose").arg("list"));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--verbose"), "{stderr}");

    let (code, _, stderr) = run(runner().args(["--config"]));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--config"), "{stderr}");

    let (code, _, stderr) = run(runner().args(["-c", "x.toml", "list", "extra"]));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("extra"), "{stderr}");
}

#[test]
fn help_lists_options_commands_and_exit_codes() {
    let (code, stdout, stderr) = run(runner().arg("--help"));
    assert_eq!(code, Some(0));
    assert!(stderr.is_empty());
    assert!(stdout.starts_with("Usage: alloy-runner [--config PATH] [--log-level LEVEL] COMMAND"));
    assert!(stdout.contains("  list "));
    assert!(stdout.contains("2 usage or configuration error"));

    let (code, stdout, _) = run(runner().args(["list", "--help"]));
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("Usage: alloy-runner [--config PATH] list"));
}

#[test]
fn version_prints_version_revision_and_target() {
    let (code, stdout, _) = run(runner().arg("--version"));
    assert_eq!(code, Some(0));
    let line = stdout.trim_end();
    let prefix = format!("alloy-runner {} (revision ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&prefix), "{line}");
    let rest = &line[prefix.len()..];
    let (revision, target) = rest
        .trim_end_matches(')')
        .split_once(", ")
        .expect("two fields");
    assert!(
        revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()),
        "{line}"
    );
    assert!(target.contains("-linux-"), "{line}");
}

/// `list` logs the loaded file at debug level, which shows which level won.
fn logs_debug(file_level: Option<&str>, flag: Option<&str>, rust_log: Option<&str>) -> bool {
    let dir = TempDir::new(&format!(
        "log-{}-{}-{}",
        file_level.is_some(),
        flag.is_some(),
        rust_log.is_some()
    ));
    let text = file_level
        .map(|l| format!("log_level = \"{l}\"\n"))
        .unwrap_or_default();
    let path = dir.write("config.toml", &text);
    let mut command = runner();
    command.arg("--config").arg(&path);
    if let Some(flag) = flag {
        command.args(["--log-level", flag]);
    }
    if let Some(rust_log) = rust_log {
        command.env("RUST_LOG", rust_log);
    }
    let (code, _, stderr) = run(command.arg("list"));
    assert_eq!(code, Some(0), "{stderr}");
    stderr.contains("loaded")
}

#[test]
fn log_level_comes_from_flag_then_file_then_rust_log_then_info() {
    assert!(!logs_debug(None, None, None), "info by default");
    assert!(logs_debug(None, None, Some("debug")), "RUST_LOG");
    assert!(logs_debug(Some("debug"), None, None), "file");
    assert!(
        !logs_debug(Some("warn"), None, Some("debug")),
        "file wins over RUST_LOG"
    );
    assert!(
        logs_debug(Some("warn"), Some("debug"), None),
        "flag wins over file"
    );
    assert!(
        !logs_debug(Some("debug"), Some("info"), Some("debug")),
        "flag wins over both"
    );
}
