//! Date helpers for templates (`date_add`, `date_format`, `month_start`, `month_end`) and
//! the logical-date values (`ds`, `prev_ds`, ...). All arithmetic is checked: a result past
//! the dates etl can represent is an error, never a crash.

use chrono::{Datelike, Days, Duration, NaiveDate};
use minijinja::{Error, ErrorKind};

/// The years a logical date (`--date`, `ds`) may fall in.
pub const DS_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

pub(super) fn parse_date(s: &str) -> Result<NaiveDate, Error> {
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
        .map_err(|_| invalid(format!("`{}` is not a date (YYYY-MM-DD)", short(s))))
}

fn short(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `d | date_add(n)`: `n` days later (earlier when negative).
pub(super) fn date_add(d: &str, days: i64) -> Result<String, Error> {
    let date = parse_date(d)?;
    Duration::try_days(days)
        .and_then(|n| date.checked_add_signed(n))
        .map(|r| r.to_string())
        .ok_or_else(|| {
            invalid(format!(
                "date_add({days}) takes {date} past the dates etl can represent ({} to {})",
                NaiveDate::MIN,
                NaiveDate::MAX
            ))
        })
}

/// `d | date_format('%Y%m')`: a date in a strftime format.
pub(super) fn date_format(d: &str, fmt: &str) -> Result<String, Error> {
    use std::fmt::Write;
    let date = parse_date(d)?;
    let mut out = String::new();
    write!(out, "{}", date.format(fmt))
        .map_err(|_| invalid(format!("bad date format `{}`", short(fmt))))?;
    Ok(out)
}

/// `d | month_start`: the first day of the date's month.
pub(super) fn month_start(d: &str) -> Result<String, Error> {
    let date = parse_date(d)?;
    Ok(date.with_day(1).unwrap_or(date).to_string())
}

/// `d | month_end`: the last day of the date's month.
pub(super) fn month_end(d: &str) -> Result<String, Error> {
    let date = parse_date(d)?;
    let first = date.with_day(1).unwrap_or(date);
    first
        .checked_add_months(chrono::Months::new(1))
        .and_then(|next| next.checked_sub_days(Days::new(1)))
        .map(|r| r.to_string())
        .ok_or_else(|| {
            invalid(format!(
                "the month of {date} ends past the dates etl can represent"
            ))
        })
}

/// Parses a logical date given on the command line (years 1 to 9999).
pub fn parse_ds(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|d| DS_YEARS.contains(&d.year()))
}

/// The day before, or the same day at the start of the calendar.
pub(super) fn prev_day(d: NaiveDate) -> NaiveDate {
    d.pred_opt().unwrap_or(d)
}

/// The day after, or the same day at the end of the calendar.
pub(super) fn next_day(d: NaiveDate) -> NaiveDate {
    d.succ_opt().unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_past_the_calendar_is_an_error() {
        assert_eq!(date_add("2024-03-01", -1).unwrap(), "2024-02-29");
        let e = date_add("2024-03-01", 9_999_999_999).unwrap_err();
        assert!(e.to_string().contains("past the dates"), "{e}");
        assert!(date_add("2024-03-01", i64::MAX).is_err());
        assert!(date_add("2024-03-01", i64::MIN).is_err());
        assert!(date_add("not a date", 1).is_err());
        assert_eq!(month_end("2024-02-10").unwrap(), "2024-02-29");
        assert!(month_end(&NaiveDate::MAX.to_string()).is_err());
        assert_eq!(month_start("2024-02-10").unwrap(), "2024-02-01");
        assert_eq!(next_day(NaiveDate::MAX), NaiveDate::MAX);
        assert_eq!(prev_day(NaiveDate::MIN), NaiveDate::MIN);
    }

    #[test]
    fn logical_dates_are_years_1_to_9999() {
        assert!(parse_ds("2024-01-31").is_some());
        assert!(parse_ds("9999-12-31").is_some());
        assert!(parse_ds("262142-12-31").is_none());
        assert!(parse_ds("0000-01-01").is_none());
        assert!(parse_ds("2024-02-30").is_none());
    }
}
