//! MS-DOS date and time, the timestamp of zip entries: local time with two-second steps, years
//! 1980 to 2107. We write and read it as UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First year a DOS date can hold.
const FIRST_YEAR: u64 = 1980;
/// Last year a DOS date can hold.
const LAST_YEAR: u64 = 2107;
/// Seconds in a day.
const DAY: u64 = 86_400;

/// `(time, date)` fields for `when`, clamped to the years DOS dates can hold.
pub fn from_system_time(when: SystemTime) -> (u16, u16) {
    let secs = when.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (mut days, rest) = (secs / DAY, secs % DAY);

    let mut year = 1970;
    while days >= days_in_year(year) {
        days -= days_in_year(year);
        year += 1;
    }
    if year < FIRST_YEAR {
        return (0, (1 << 5) | 1);
    }
    if year > LAST_YEAR {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let mut month = 1;
    while days >= days_in_month(year, month) {
        days -= days_in_month(year, month);
        month += 1;
    }

    let time = (rest / 3600) << 11 | (rest % 3600 / 60) << 5 | (rest % 60 / 2);
    let date = (year - FIRST_YEAR) << 9 | month << 5 | (days + 1);
    // Every field was bounded above: hours < 24, year offset <= 127, month <= 12, day <= 31.
    (time as u16, date as u16)
}

/// The instant the `(time, date)` fields name, or `None` when they name no real date.
pub fn to_system_time(time: u16, date: u16) -> Option<SystemTime> {
    let (time, date) = (u64::from(time), u64::from(date));
    let year = FIRST_YEAR + (date >> 9);
    let month = (date >> 5) & 0xf;
    let day = date & 0x1f;
    let (hour, minute, second) = (time >> 11, (time >> 5) & 0x3f, (time & 0x1f) * 2);
    let month_ok = (1..=12).contains(&month);
    if !month_ok || day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 {
        return None;
    }

    let mut days = day - 1;
    days += (1970..year).map(days_in_year).sum::<u64>();
    days += (1..month).map(|m| days_in_month(year, m)).sum::<u64>();
    let secs = days * DAY + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn is_leap(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_year(year: u64) -> u64 {
    if is_leap(year) {
        366
    } else {
        365
    }
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instant_converts_both_ways() {
        // 2024-02-29 13:45:30 UTC.
        let when = UNIX_EPOCH + Duration::from_secs(1_709_214_330);
        let (time, date) = from_system_time(when);
        assert_eq!(date, (44 << 9) | (2 << 5) | 29);
        assert_eq!(time, (13 << 11) | (45 << 5) | 15);
        assert_eq!(to_system_time(time, date), Some(when));
    }

    #[test]
    fn instants_before_1980_clamp_to_its_first_day() {
        let (time, date) = from_system_time(UNIX_EPOCH);
        assert_eq!(
            to_system_time(time, date),
            Some(UNIX_EPOCH + Duration::from_secs(315_532_800))
        );
    }

    #[test]
    fn impossible_date_is_none() {
        assert_eq!(to_system_time(0, 1 << 5), None);
        assert_eq!(to_system_time(0, (13 << 5) | 1), None);
    }
}
