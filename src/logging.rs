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
            let mut builder = env_logger::Builder::from_env(env_logger::Env::default());
            builder.format(format_record);
            builder.build()
        }
        None => with_level(LevelFilter::Info),
    };
    install(logger);
}

/// Whether a record comes from a library whose detailed logs carry secrets: ureq logs request
/// headers (`JOB-TOKEN`, `Authorization`) and tungstenite logs whole WebSocket frames (stage
/// scripts with their variables, unmasked output). Those never pass, whatever the level.
fn leaks_secrets(metadata: &Metadata) -> bool {
    const CHATTY: &[&str] = &["ureq", "tungstenite"];
    metadata.level() > log::Level::Info
        && CHATTY
            .iter()
            .any(|name| metadata.target().starts_with(name))
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
        .format(format_record)
        .build()
}

/// `[2026-12-04T16:55:16Z INFO  alloy_runner::service] message`: UTC to the second, computed
/// here rather than with a date crate, to keep the binary small.
fn format_record(out: &mut env_logger::fmt::Formatter, record: &Record) -> std::io::Result<()> {
    use std::io::Write;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = utc_timestamp(secs);
    writeln!(
        out,
        "[{stamp} {:<5} {}] {}",
        record.level(),
        record.target(),
        record.args()
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (proleptic Gregorian calendar).
fn utc_timestamp(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
    // Days to a civil date, after Howard Hinnant's days_from_civil inverse.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

fn install(logger: env_logger::Logger) {
    let max_level = logger.filter();
    *LOGGER.inner.write().unwrap_or_else(PoisonError::into_inner) = Some(logger);
    // Fails only when a logger is already installed, which is this same one.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(max_level);
}

#[cfg(test)]
mod tests {
    use log::{Level, Metadata};

    #[test]
    fn libraries_that_log_secrets_are_cut_above_info() {
        let meta = |target, level| Metadata::builder().target(target).level(level).build();
        assert!(super::leaks_secrets(&meta(
            "tungstenite::protocol",
            Level::Trace
        )));
        assert!(super::leaks_secrets(&meta("ureq::unit", Level::Debug)));
        assert!(!super::leaks_secrets(&meta("ureq::unit", Level::Warn)));
        assert!(!super::leaks_secrets(&meta(
            "alloy_runner::kube",
            Level::Trace
        )));
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(super::utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc_timestamp(1_796_402_921), "2026-12-04T16:48:41Z");
    }
}
