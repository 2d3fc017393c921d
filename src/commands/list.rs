//! `list`: checks `config.toml` and prints one line per runner, never a token.

use super::{load_config, no_more_args, write_stdout, CommandError, Globals};
use crate::config::{Config, RunnerConfig};

const USAGE: &str = "\
Usage: alloy-runner [--config PATH] list

Checks config.toml and prints each runner: name, coordinator URL, executor, namespace and
API server (\"in-cluster\" when no host is set). Tokens are never printed.
";

const HEADER: [&str; 5] = ["NAME", "URL", "EXECUTOR", "NAMESPACE", "HOST"];

/// Runs `list`.
pub fn run(globals: &Globals, args: &mut lexopt::Parser) -> Result<(), CommandError> {
    if no_more_args(args, USAGE)? {
        return Ok(());
    }
    let config = load_config(globals)?;
    write_stdout(&render(&config))
}

/// The listing: a line naming the file, then an aligned table with one row per runner.
pub fn render(config: &Config) -> String {
    let rows: Vec<[String; 5]> = config.runners.iter().map(row).collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }

    let mut out = format!(
        "{}: {} runner(s), concurrent {}\n",
        config.path.display(),
        rows.len(),
        config.concurrent
    );
    out.push_str(&line(&HEADER.map(str::to_string), &widths));
    for row in &rows {
        out.push_str(&line(row, &widths));
    }
    out
}

fn row(runner: &RunnerConfig) -> [String; 5] {
    let name = if runner.name.is_empty() {
        "(unnamed)"
    } else {
        &runner.name
    };
    [
        name.to_string(),
        runner.url.clone().unwrap_or_else(|| "-".into()),
        "kubernetes".to_string(),
        runner.kubernetes.namespace.clone(),
        runner
            .kubernetes
            .host
            .clone()
            .unwrap_or_else(|| "in-cluster".into()),
    ]
}

fn line(cells: &[String; 5], widths: &[usize; 5]) -> String {
    let mut text = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        text.push_str(&format!("{cell:<width$}  "));
    }
    format!("{}\n", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn lists_each_runner_without_its_token() {
        let text = r#"
            [[runners]]
            name = "first"
            url = "https://coordinator.test/ci"
            token = "glrt-very-secret"
            executor = "kubernetes"
            [runners.kubernetes]
            namespace = "ci"
            host = "https://127.0.0.1:6443"

            [[runners]]
            executor = "kubernetes"
        "#;
        let config = crate::config::parse(text, Path::new("/tmp/c.toml")).unwrap();
        let out = render(&config);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "/tmp/c.toml: 2 runner(s), concurrent 1");
        assert_eq!(
            lines[2],
            "first      https://coordinator.test/ci  kubernetes  ci         https://127.0.0.1:6443"
        );
        assert_eq!(
            lines[3],
            "(unnamed)  -                            kubernetes  default    in-cluster"
        );
        assert!(!out.contains("glrt-very-secret"));
    }
}
