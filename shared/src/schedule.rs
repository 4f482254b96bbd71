//! Schedule expressions as EventBridge Scheduler understands them: `rate(...)`, 6-field `cron(...)` and
//! `at(...)`, each evaluated in an IANA time zone, plus the seven names the original scheduler offered.
//!
//! The API validates with [`ScheduleExpr::parse`] (moto accepts any string, AWS does not), and the local
//! event pump fires schedules with [`ScheduleExpr::next_after`].

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// The original Data Sync Scheduler's named schedules and the expressions they stand for.
pub const NAMED: [(&str, &str); 7] = [
    ("quinqueminutely", "rate(5 minutes)"),
    ("decaminutely", "rate(10 minutes)"),
    ("half-hourly", "rate(30 minutes)"),
    ("hourly", "rate(1 hour)"),
    ("daily", "rate(1 day)"),
    ("weekly", "rate(7 days)"),
    ("monthly", "cron(0 0 1 * ? *)"),
];

/// Resolves a schedule as a user gives it: one of [`NAMED`] (case-insensitive) or an expression.
pub fn resolve(input: &str) -> Result<ScheduleExpr, ScheduleError> {
    let trimmed = input.trim();
    let lower = trimmed.to_ascii_lowercase();
    match NAMED.iter().find(|(name, _)| *name == lower) {
        Some((_, expr)) => ScheduleExpr::parse(expr),
        None => ScheduleExpr::parse(trimmed),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ScheduleError> {
    Err(ScheduleError(msg.into()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleExpr {
    Rate { seconds: i64, text: String },
    Cron(Box<Cron>),
    At(NaiveDateTime),
}

impl ScheduleExpr {
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let expr = expr.trim();
        let inner = |prefix: &str| {
            expr.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(')'))
                .map(str::trim)
        };
        if let Some(body) = inner("rate(") {
            return parse_rate(body);
        }
        if let Some(body) = inner("cron(") {
            return Ok(ScheduleExpr::Cron(Box::new(Cron::parse(body)?)));
        }
        if let Some(body) = inner("at(") {
            return NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S")
                .map(ScheduleExpr::At)
                .or_else(|_| err("at() takes yyyy-mm-ddThh:mm:ss"));
        }
        err(
            "schedule must be one of quinqueminutely, decaminutely, half-hourly, hourly, daily, weekly, monthly, or a rate(...), cron(...) or at(...) expression",
        )
    }

    /// The expression in EventBridge Scheduler's own syntax.
    pub fn to_aws(&self) -> String {
        match self {
            ScheduleExpr::Rate { text, .. } => format!("rate({text})"),
            ScheduleExpr::Cron(c) => format!("cron({})", c.text),
            ScheduleExpr::At(t) => format!("at({})", t.format("%Y-%m-%dT%H:%M:%S")),
        }
    }

    /// The first firing strictly after `after`. Rate schedules count whole intervals from `anchor` (the
    /// schedule's creation or start date), as Scheduler does; `at` fires once.
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
        anchor: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        match self {
            ScheduleExpr::Rate { seconds, .. } => {
                let elapsed = (after - anchor).num_seconds();
                let k = if elapsed < 0 {
                    1
                } else {
                    elapsed / seconds + 1
                };
                Some(anchor + Duration::seconds(k * seconds))
            }
            ScheduleExpr::At(local) => {
                let t = local_to_utc(tz, *local)?;
                (t > after).then_some(t)
            }
            ScheduleExpr::Cron(c) => c.next_after(after, tz),
        }
    }
}

fn parse_rate(body: &str) -> Result<ScheduleExpr, ScheduleError> {
    let mut parts = body.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return err("rate() takes a value and a unit, e.g. rate(5 minutes)");
    };
    let n: i64 = match n.parse() {
        Ok(v) if v > 0 => v,
        _ => return err("rate() value must be a positive whole number"),
    };
    let unit_secs = match (unit, n == 1) {
        ("minute", true) | ("minutes", false) => 60,
        ("hour", true) | ("hours", false) => 3600,
        ("day", true) | ("days", false) => 86_400,
        _ => return err("rate() unit must be minute(s), hour(s) or day(s), singular only for 1"),
    };
    Ok(ScheduleExpr::Rate {
        seconds: n * unit_secs,
        text: format!("{n} {unit}"),
    })
}

fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// An AWS 6-field cron: minutes hours day-of-month month day-of-week year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: Vec<u32>,
    hours: Vec<u32>,
    /// None stands for `?`.
    dom: Option<DomSpec>,
    months: Vec<u32>,
    /// None stands for `?`; values 1..=7 with 1 = Sunday, as AWS numbers them.
    dow: Option<Vec<u32>>,
    years: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DomSpec {
    Days(Vec<u32>),
    Last,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    pub fn parse(body: &str) -> Result<Self, ScheduleError> {
        let f: Vec<&str> = body.split_whitespace().collect();
        if f.len() != 6 {
            return err("cron() takes 6 fields: minutes hours day-of-month month day-of-week year");
        }
        let dom = match f[2] {
            "?" => None,
            "L" => Some(DomSpec::Last),
            s => Some(DomSpec::Days(field(s, 1, 31, &[], "day-of-month")?)),
        };
        let dow = match f[4] {
            "?" => None,
            s => Some(field(s, 1, 7, &DAYS, "day-of-week")?),
        };
        if dom.is_some() == dow.is_some() {
            return err("cron(): exactly one of day-of-month and day-of-week must be ?");
        }
        Ok(Cron {
            text: f.join(" "),
            minutes: field(f[0], 0, 59, &[], "minutes")?,
            hours: field(f[1], 0, 23, &[], "hours")?,
            dom,
            months: field(f[3], 1, 12, &MONTHS, "month")?,
            dow,
            years: field(f[5], 1970, 2199, &[], "year")?,
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        if !self.years.contains(&(d.year() as u32)) || !self.months.contains(&d.month()) {
            return false;
        }
        match (&self.dom, &self.dow) {
            (Some(DomSpec::Days(days)), _) => days.contains(&d.day()),
            (Some(DomSpec::Last), _) => d.succ_opt().is_none_or(|n| n.month() != d.month()),
            (None, Some(dows)) => dows.contains(&(d.weekday().num_days_from_sunday() + 1)),
            (None, None) => false,
        }
    }

    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let start = after.with_timezone(&tz).date_naive();
        // Five years of days bounds the search; an expression that never fires again returns None.
        for offset in 0..(366 * 5) {
            let day = start.checked_add_signed(Duration::days(offset))?;
            if !self.day_matches(day) {
                continue;
            }
            for &h in &self.hours {
                for &m in &self.minutes {
                    let local = day.and_hms_opt(h, m, 0)?;
                    if let Some(t) = local_to_utc(tz, local)
                        && t > after
                        && t.second() == 0
                    {
                        return Some(t);
                    }
                }
            }
        }
        None
    }
}

fn field(s: &str, lo: u32, hi: u32, names: &[&str], what: &str) -> Result<Vec<u32>, ScheduleError> {
    let value = |v: &str| -> Result<u32, ScheduleError> {
        let upper = v.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == upper) {
            return Ok(lo + i as u32);
        }
        match v.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => err(format!("cron(): {what} value {v:?} is outside {lo}-{hi}")),
        }
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => match st.parse::<u32>() {
                Ok(n) if n > 0 => (r, n),
                _ => {
                    return err(format!(
                        "cron(): {what} step {st:?} must be a positive number"
                    ));
                }
            },
            None => (part, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if part.contains('/') => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if a > b {
            return err(format!("cron(): {what} range {range:?} is reversed"));
        }
        out.extend((a..=b).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn named_schedules_resolve_case_insensitively() {
        assert_eq!(resolve("Hourly").unwrap().to_aws(), "rate(1 hour)");
        assert_eq!(
            resolve("quinqueminutely").unwrap().to_aws(),
            "rate(5 minutes)"
        );
        assert_eq!(resolve("monthly").unwrap().to_aws(), "cron(0 0 1 * ? *)");
        assert!(resolve("every 5 minutes").is_err());
    }

    #[test]
    fn rate_fires_whole_intervals_after_anchor() {
        let e = ScheduleExpr::parse("rate(1 minute)").unwrap();
        let anchor = utc("2026-01-01T00:00:30Z");
        let next = e.next_after(anchor, anchor, Tz::UTC).unwrap();
        assert_eq!(next, utc("2026-01-01T00:01:30Z"));
        let later = e
            .next_after(utc("2026-01-01T00:05:31Z"), anchor, Tz::UTC)
            .unwrap();
        assert_eq!(later, utc("2026-01-01T00:06:30Z"));
    }

    #[test]
    fn rate_rejects_bad_units_and_plurals() {
        assert!(ScheduleExpr::parse("rate(1 minutes)").is_err());
        assert!(ScheduleExpr::parse("rate(0 minutes)").is_err());
        assert!(ScheduleExpr::parse("rate(5 weeks)").is_err());
        assert!(ScheduleExpr::parse("rate(5 minutes)").is_ok());
    }

    #[test]
    fn cron_honours_time_zone() {
        let e = ScheduleExpr::parse("cron(30 9 * * ? *)").unwrap();
        let tz: Tz = "Europe/Paris".parse().unwrap();
        // 09:30 in Paris in winter is 08:30 UTC.
        let next = e
            .next_after(utc("2026-01-10T00:00:00Z"), utc("2026-01-01T00:00:00Z"), tz)
            .unwrap();
        assert_eq!(next, utc("2026-01-10T08:30:00Z"));
    }

    #[test]
    fn cron_day_of_week_uses_aws_numbering() {
        // 2 = MON in AWS; 2026-11-23 is a Monday.
        let e = ScheduleExpr::parse("cron(0 12 ? * 2 *)").unwrap();
        let next = e
            .next_after(
                utc("2026-11-20T00:00:00Z"),
                utc("2026-11-20T00:00:00Z"),
                Tz::UTC,
            )
            .unwrap();
        assert_eq!(next, utc("2026-11-23T12:00:00Z"));
        let named = ScheduleExpr::parse("cron(0/15 * ? * MON-FRI *)").unwrap();
        let n = named
            .next_after(
                utc("2026-11-21T10:00:00Z"),
                utc("2026-11-21T10:00:00Z"),
                Tz::UTC,
            )
            .unwrap();
        assert_eq!(n, utc("2026-11-23T00:00:00Z"));
    }

    #[test]
    fn cron_requires_exactly_one_question_mark() {
        assert!(ScheduleExpr::parse("cron(0 12 * * * *)").is_err());
        assert!(ScheduleExpr::parse("cron(0 12 ? * ? *)").is_err());
        assert!(ScheduleExpr::parse("cron(0 12 * *)").is_err());
        assert!(ScheduleExpr::parse("cron(61 12 * * ? *)").is_err());
    }

    #[test]
    fn cron_last_day_of_month() {
        let e = ScheduleExpr::parse("cron(0 0 L * ? *)").unwrap();
        let n = e
            .next_after(
                utc("2026-02-01T00:00:00Z"),
                utc("2026-02-01T00:00:00Z"),
                Tz::UTC,
            )
            .unwrap();
        assert_eq!(n, utc("2026-02-28T00:00:00Z"));
    }

    #[test]
    fn at_fires_once_in_its_zone() {
        let e = ScheduleExpr::parse("at(2026-12-01T10:00:00)").unwrap();
        let tz: Tz = "America/New_York".parse().unwrap();
        let first = e
            .next_after(utc("2026-11-30T00:00:00Z"), utc("2026-11-30T00:00:00Z"), tz)
            .unwrap();
        assert_eq!(first, utc("2026-12-01T15:00:00Z"));
        assert_eq!(e.next_after(first, first, tz), None);
    }
}
