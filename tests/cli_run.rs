//! `run` and `run-single` refuse a runner entry they cannot use before taking any job.

use std::process::Command;

fn run_with_config(config: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!(
        "alloy-cli-run-{}-{}",
        std::process::id(),
        args.len()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("config.toml");
    std::fs::write(&path, config).expect("config written");
    let output = Command::new(env!("CARGO_BIN_EXE_alloy-runner"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .expect("runner runs");
    std::fs::remove_dir_all(&dir).ok();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_runner_without_url_is_a_configuration_error() {
    let config = "[[runners]]\n  name = \"no-url\"\n  token = \"t\"\n  executor = \"kubernetes\"\n";
    let (code, stderr) = run_with_config(config, &["run-single", "--max-builds", "1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("runner \"no-url\" has no url in the config file"),
        "{stderr}"
    );
}

#[test]
fn run_without_runners_is_a_usage_error() {
    let (code, stderr) = run_with_config("concurrent = 2\n", &["run"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("has no [[runners]] entry; register one first"),
        "{stderr}"
    );
}

#[test]
fn a_config_path_that_is_no_regular_file_or_too_large_is_refused() {
    let runner = |path: &str| {
        Command::new(env!("CARGO_BIN_EXE_alloy-runner"))
            .args(["--config", path, "list"])
            .output()
            .expect("runner runs")
    };
    let output = runner("/dev/zero");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read config file /dev/zero: not a regular file"),
        "{stderr}"
    );

    let big = std::env::temp_dir().join(format!("alloy-big-config-{}.toml", std::process::id()));
    std::fs::write(&big, vec![b'#'; 2 * 1024 * 1024]).expect("file written");
    let output = runner(big.to_str().expect("utf-8 path"));
    std::fs::remove_file(&big).ok();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("larger than 1024 KiB"), "{stderr}");
}
