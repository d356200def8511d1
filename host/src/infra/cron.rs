//! Cron schedules in UTC: five fields (minute hour day-of-month month day-of-week), or six
//! with seconds first. Each field is `*`, a number, a range `a-b`, a list `a,b` or a step
//! `*/n` / `a-b/n`; day-of-week 0 and 7 are Sunday. As in classic cron, when both day fields
//! are restricted a day matching either fires.

use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc};

/// A parsed schedule: the allowed values of each field as a bit set.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day-of-month and day-of-week fields were both something other than `*`.
    both_days_restricted: bool,
}

/// How far ahead [`Schedule::next_after`] looks before deciding a schedule never fires
/// (`0 0 30 2 *`).
const HORIZON_DAYS: i64 = 5 * 366;

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            _ => {
                return Err(
                    "has five fields (minute hour day month weekday) or six (seconds first)".into(),
                );
            }
        };
        let (day_field, weekday_field) = (rest[2], rest[4]);
        let mut weekdays = field(weekday_field, 0, 7, "weekday")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Schedule {
            seconds: field(seconds, 0, 59, "seconds")?,
            minutes: field(rest[0], 0, 59, "minute")?,
            hours: field(rest[1], 0, 23, "hour")?,
            days: field(day_field, 1, 31, "day of month")?,
            months: field(rest[3], 1, 12, "month")?,
            weekdays,
            both_days_restricted: day_field != "*" && weekday_field != "*",
        })
    }

    /// The first firing strictly after `after`, if there is one within five years.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.duration_trunc(Duration::seconds(1)).ok()? + Duration::seconds(1);
        let mut minute = start.duration_trunc(Duration::minutes(1)).ok()?;
        let end = start + Duration::days(HORIZON_DAYS);
        while minute < end {
            if !self.day_matches(minute) {
                minute = (minute + Duration::days(1))
                    .duration_trunc(Duration::days(1))
                    .ok()?;
                continue;
            }
            if !has(self.hours, minute.hour()) {
                minute = (minute + Duration::hours(1))
                    .duration_trunc(Duration::hours(1))
                    .ok()?;
                continue;
            }
            if has(self.minutes, minute.minute()) {
                let from = if minute < start { start.second() } else { 0 };
                if let Some(second) = (from..60).find(|s| has(self.seconds, *s)) {
                    return Some(minute + Duration::seconds(i64::from(second)));
                }
            }
            minute += Duration::minutes(1);
        }
        None
    }

    fn day_matches(&self, t: DateTime<Utc>) -> bool {
        if !has(self.months, t.month()) {
            return false;
        }
        let by_day = has(self.days, t.day());
        let by_weekday = has(self.weekdays, t.weekday().num_days_from_sunday());
        if self.both_days_restricted {
            by_day || by_weekday
        } else {
            by_day && by_weekday
        }
    }
}

fn has(set: u64, value: u32) -> bool {
    set & (1 << value) != 0
}

/// One field's allowed values between `low` and `high`.
fn field(text: &str, low: u32, high: u32, name: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "the {name} field `{text}` is not *, a number {low}-{high}, a range, a list or a step"
        )
    };
    let number = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|n| (low..=high).contains(n))
            .ok_or_else(bad)
    };
    let mut set = 0u64;
    for part in text.split(',') {
        let (base, step) = match part.split_once('/') {
            Some((b, s)) => (
                b,
                s.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(bad)?,
            ),
            None => (part, 1),
        };
        let (from, to) = if base == "*" {
            (low, high)
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(bad());
            }
            (a, b)
        } else {
            let n = number(base)?;
            (n, if part.contains('/') { high } else { n })
        };
        for value in (from..=to).step_by(step as usize) {
            set |= 1 << value;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn fields() {
        for good in [
            "0 9 * * 1-5",
            "*/5 * * * *",
            "0,30 8-18 1 1 0",
            "*/2 * * * * *",
        ] {
            assert!(Schedule::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "* * * *",
            "60 * * * *",
            "* * * * * * *",
            "a * * * *",
            "*/0 * * * *",
            "5-1 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_firings() {
        let s = Schedule::parse("0 9 * * 1-5").unwrap();
        // 2026-12-04 is a Friday: the next weekday 09:00 after Friday 10:00 is Monday.
        assert_eq!(
            s.next_after(at("2026-12-04T10:00:00Z")),
            Some(at("2026-12-07T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-12-04T08:59:59Z")),
            Some(at("2026-12-04T09:00:00Z"))
        );
        let every_two = Schedule::parse("*/2 * * * * *").unwrap();
        assert_eq!(
            every_two.next_after(at("2026-12-04T10:00:00Z")),
            Some(at("2026-12-04T10:00:02Z"))
        );
        assert_eq!(
            every_two.next_after(at("2026-12-04T10:00:59Z")),
            Some(at("2026-12-04T10:01:00Z"))
        );
        let new_year = Schedule::parse("30 0 1 1 *").unwrap();
        assert_eq!(
            new_year.next_after(at("2026-12-04T10:00:00Z")),
            Some(at("2027-01-01T00:30:00Z"))
        );
        // Day 13 or a Friday (both restricted: either).
        let either = Schedule::parse("0 0 13 * 5").unwrap();
        assert_eq!(
            either.next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-04T00:00:00Z"))
        );
        assert_eq!(
            Schedule::parse("0 0 30 2 *")
                .unwrap()
                .next_after(at("2026-12-01T00:00:00Z")),
            None
        );
    }
}
