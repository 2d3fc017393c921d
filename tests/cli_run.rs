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
