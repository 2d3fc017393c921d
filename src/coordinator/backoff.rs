//! Exponential backoff with jitter, and the waits a 429 asks for.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First wait after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two tries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Exponential backoff: 100 ms doubling up to 60 s, each wait drawn between half and all of the
/// current step; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BACKOFF_MIN, BACKOFF_MAX)
    }
}

impl Backoff {
    /// A backoff from `min` doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            step: min,
        }
    }

    /// The next wait, honouring `asked` (a 429's wait) when the coordinator gave one.
    pub fn next_delay(&mut self, asked: Option<Duration>) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        if let Some(asked) = asked {
            return asked;
        }
        jitter(step)
    }

    /// Back to the shortest wait, after a success.
    pub fn reset(&mut self) {
        self.step = self.min;
    }
}

/// A wait between half and all of `step`, so that many runners do not retry in lockstep.
fn jitter(step: Duration) -> Duration {
    let half = step / 2;
    let spread = half.as_nanos() as u64;
    if spread == 0 {
        return step;
    }
    half + Duration::from_nanos(random_u64() % (spread + 1))
}

/// A cheap pseudo-random number (xorshift seeded from the clock); only for jitter.
fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
                | 1,
        );
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}

/// The wait a 429 asks for: `Retry-After` in seconds, else `RateLimit-ResetTime` as an RFC 1123
/// date (`Wed, 21 Oct 2015 07:28:00 GMT`), counted from `now`.
pub fn retry_after(
    retry_after: Option<&str>,
    reset_time: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(secs) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    let reset = parse_rfc1123(reset_time?)?;
    Some(reset.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses `Wed, 21 Oct 2015 07:28:00 GMT`.
pub fn parse_rfc1123(text: &str) -> Option<SystemTime> {
    let (_weekday, rest) = text.trim().split_once(", ")?;
    let parts: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == month)? as u32 + 1;
    let (day, year): (u32, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + s))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_100ms_up_to_60s_and_reset() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay(None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let second = backoff.next_delay(None);
        assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
        for _ in 0..20 {
            assert!(backoff.next_delay(None) <= BACKOFF_MAX);
        }
        assert!(backoff.next_delay(None) >= Duration::from_secs(30));
        backoff.reset();
        assert!(backoff.next_delay(None) <= Duration::from_millis(100));
    }

    #[test]
    fn a_429_wait_is_taken_as_asked() {
        let mut backoff = Backoff::default();
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn retry_after_reads_seconds_then_the_reset_date() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(
            retry_after(Some("12"), None, now),
            Some(Duration::from_secs(12))
        );
        let reset = Some("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(retry_after(None, reset, now), Some(Duration::from_secs(10)));
        assert_eq!(retry_after(Some("soon"), Some("not a date"), now), None);
    }

    #[test]
    fn rfc1123_dates_parse_to_the_right_instant() {
        let parsed = parse_rfc1123("Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(parsed, Some(UNIX_EPOCH));
        let parsed = parse_rfc1123("Tue, 29 Feb 2000 12:00:01 GMT");
        assert_eq!(parsed, Some(UNIX_EPOCH + Duration::from_secs(951_825_601)));
        assert_eq!(parse_rfc1123("Tue, 29 Foo 2000 12:00:01 GMT"), None);
    }
}
