//! Logging to stderr through `log` and `env_logger`.
//!
//! The level comes from `--log-level`, else `log_level` in `config.toml`, else `RUST_LOG`
//! (with its per-module directives), else `info`. The file is read after the logger starts, so
//! the logger sits behind a lock and [`apply_config_level`] swaps it once the file is known.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use log::{LevelFilter, Log, Metadata, Record};

static LOGGER: Swappable = Swappable {
    inner: RwLock::new(None),
    pinned: AtomicBool::new(false),
};

/// A logger whose filter can be replaced after it is installed.
struct Swappable {
    inner: RwLock<Option<env_logger::Logger>>,
    /// Set when `--log-level` was given: the file may not change the level then.
    pinned: AtomicBool,
}

impl Log for Swappable {
    fn enabled(&self, metadata: &Metadata) -> bool {
        if leaks_secrets(metadata) {
            return false;
        }
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .as_ref()
            .is_some_and(|logger| logger.enabled(metadata))
    }

    fn log(&self, record: &Record) {
        if leaks_secrets(record.metadata()) {
            return;
        }
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(logger) = inner.as_ref() {
            logger.log(record);
        }
    }

    fn flush(&self) {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(logger) = inner.as_ref() {
            logger.flush();
        }
    }
}

/// Starts logging to stderr; `level` is `--log-level` (`None`: `RUST_LOG`, else `info`).
/// Calling it again replaces the filter.
pub fn init(level: Option<LevelFilter>) {
    LOGGER.pinned.store(level.is_some(), Ordering::Relaxed);
    let logger = match level {
        Some(level) => with_level(level),
        None if std::env::var_os("RUST_LOG").is_some() => {
            env_logger::Builder::from_env(env_logger::Env::default()).build()
        }
        None => with_level(LevelFilter::Info),
    };
    install(logger);
}

/// Whether a record comes from a library whose detailed logs print request headers, tokens
/// included (ureq logs `JOB-TOKEN` and `Authorization` at debug level). Those never pass,
/// whatever the configured level.
fn leaks_secrets(metadata: &Metadata) -> bool {
    metadata.level() > log::Level::Info && metadata.target().starts_with("ureq")
}

/// Applies `log_level` from `config.toml`, unless `--log-level` was given or the file has none.
pub fn apply_config_level(level: Option<LevelFilter>) {
    if let Some(level) = level {
        if !LOGGER.pinned.load(Ordering::Relaxed) {
            install(with_level(level));
        }
    }
}

fn with_level(level: LevelFilter) -> env_logger::Logger {
    env_logger::Builder::new()
        .filter_level(level)
        .parse_write_style(&std::env::var("RUST_LOG_STYLE").unwrap_or_default())
        .build()
}

fn install(logger: env_logger::Logger) {
    let max_level = logger.filter();
    *LOGGER.inner.write().unwrap_or_else(PoisonError::into_inner) = Some(logger);
    // Fails only when a logger is already installed, which is this same one.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(max_level);
}
