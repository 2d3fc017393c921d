//! The top level of `config.toml` and its `[[runners]]` entries.

use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

use toml::Table;

use super::error::{ConfigError, KeyError};
use super::kubernetes::kubernetes;
use super::reader::Section;
use super::rules;
use super::{Config, RunnerConfig};
use crate::secret::Secret;

const TOP_KEYS: &[&str] = &["concurrent", "check_interval", "log_level", "runners"];

const RUNNER_KEYS: &[&str] = &[
    "name",
    "url",
    "token",
    "executor",
    "limit",
    "output_limit",
    "environment",
    "builds_dir",
    "cache_dir",
    "kubernetes",
];

const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

const DEFAULT_CHECK_INTERVAL_SECS: u32 = 3;
const DEFAULT_OUTPUT_LIMIT_KB: u32 = 4096;
const DEFAULT_BUILDS_DIR: &str = "/builds";

/// Largest config file read (a real one is a few KiB).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_file() {
        return Err(read_error(io::Error::other("not a regular file")));
    }
    if metadata.len() > MAX_CONFIG_BYTES {
        let message = format!(
            "larger than {} KiB; this is not a config file",
            MAX_CONFIG_BYTES / 1024
        );
        return Err(read_error(io::Error::other(message)));
    }
    // The size is checked again while reading: the file may grow in between.
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
        .map_err(read_error)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(read_error(io::Error::other("grew while it was read")));
    }
    parse(&text, path)
}

/// Checks `text`, the content of the file at `path` (used in messages only).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let table: Table = toml::from_str(text).map_err(|error| syntax_error(path, text, &error))?;
    let top = Section::new(path, String::new(), &table, TOP_KEYS)?;

    let concurrent = top.u32("concurrent", 1)?.unwrap_or(1);
    let check_interval = top
        .u32("check_interval", 1)?
        .unwrap_or(DEFAULT_CHECK_INTERVAL_SECS);
    let log_level = log_level(&top)?;
    let runners = top
        .tables("runners", RUNNER_KEYS)?
        .iter()
        .map(runner)
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Config {
        path: path.to_path_buf(),
        concurrent,
        check_interval: Duration::from_secs(u64::from(check_interval)),
        log_level,
        runners,
    })
}

/// Turns a TOML parse error into one with a 1-based line and column.
fn syntax_error(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let offset = error.span().map_or(0, |span| span.start).min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let message = error.message().trim_end().replace('\n', " ");
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

fn log_level(top: &Section) -> Result<Option<log::LevelFilter>, ConfigError> {
    let Some(value) = top.string("log_level")? else {
        return Ok(None);
    };
    match value.parse::<log::LevelFilter>() {
        Ok(level) if LOG_LEVELS.contains(&value.to_ascii_lowercase().as_str()) => Ok(Some(level)),
        _ => Err(top.error(
            "log_level",
            KeyError::NotOneOf {
                value,
                accepted: LOG_LEVELS,
            },
        )),
    }
}

/// One `[[runners]]` entry.
fn runner(section: &Section) -> Result<RunnerConfig, ConfigError> {
    executor(section)?;

    let url = section.string("url")?;
    if let Some(url) = &url {
        check(section, "url", url, rules::is_http_url, rules::HTTP_URL)?;
    }
    let builds_dir = section
        .string("builds_dir")?
        .unwrap_or_else(|| DEFAULT_BUILDS_DIR.into());
    check(
        section,
        "builds_dir",
        &builds_dir,
        rules::is_absolute_path,
        rules::ABSOLUTE_PATH,
    )?;
    let cache_dir = section.string("cache_dir")?;
    if let Some(dir) = &cache_dir {
        check(
            section,
            "cache_dir",
            dir,
            rules::is_absolute_path,
            rules::ABSOLUTE_PATH,
        )?;
    }
    let output_limit_kb = section
        .u32("output_limit", 1)?
        .unwrap_or(DEFAULT_OUTPUT_LIMIT_KB);

    let kubernetes = kubernetes(section, &builds_dir)?;
    Ok(RunnerConfig {
        name: section.string("name")?.unwrap_or_default(),
        url,
        token: section.string("token")?.map(Secret::new),
        limit: section.u32("limit", 0)?.unwrap_or(0),
        output_limit: u64::from(output_limit_kb) * 1024,
        environment: environment(section)?,
        builds_dir,
        cache_dir,
        kubernetes,
    })
}

/// `executor` must be present and be `kubernetes`.
fn executor(section: &Section) -> Result<(), ConfigError> {
    match section.string("executor")? {
        Some(value) if value == "kubernetes" => Ok(()),
        Some(value) => Err(section.error("executor", KeyError::UnsupportedExecutor { value })),
        None => {
            let problem = KeyError::Missing {
                accepted: "kubernetes".into(),
            };
            Err(section.error("executor", problem))
        }
    }
}

/// `environment = ["KEY=value", ...]`.
fn environment(section: &Section) -> Result<Vec<(String, String)>, ConfigError> {
    let entries = section.string_list("environment")?;
    let mut pairs = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let Some((name, value)) = rules::split_environment(entry) else {
            let key = format!("{}[{index}]", section.key("environment"));
            let problem = KeyError::Invalid {
                value: entry.clone(),
                accepted: rules::ENVIRONMENT.into(),
            };
            return Err(section.error_at(key, problem));
        };
        pairs.push((name.to_string(), value.to_string()));
    }
    Ok(pairs)
}

/// Rejects `value` of key `name` unless `rule` holds; `accepted` says what would.
pub(super) fn check(
    section: &Section,
    name: &str,
    value: &str,
    rule: fn(&str) -> bool,
    accepted: &str,
) -> Result<(), ConfigError> {
    if rule(value) {
        return Ok(());
    }
    let problem = KeyError::Invalid {
        value: rules::without_credentials(value),
        accepted: accepted.into(),
    };
    Err(section.error(name, problem))
}
