//! When a cron job runs next: the schedule an app declares in its manifest, checked once at
//! deploy time ([`Schedule::validate`]) and asked after every run for the next run time
//! ([`Schedule::next_after`]).
//!
//! A schedule is either a fixed period (`{"interval": {"ms": 3600000}}`) or a cron expression
//! read in a time zone (`{"cron": {"expression": "0 9 * * 1-5", "timeZone": "Europe/Paris"}}`).
//!
//! # Cron syntax
//!
//! Five fields, `minute hour day-of-month month day-of-week`, with lists (`1,15`), ranges
//! (`1-5`), steps (`*/15`, `0-30/10`) and names (`MON`, `JAN`, any case). Six fields put a
//! seconds field first. As in Vixie cron, when both day fields are restricted a day matches if
//! *either* does. The parser is [`croner`], so its extensions also work: `L` (last day or last
//! weekday of the month), `15W` (nearest weekday), `FRI#2` (second Friday), `?`, a leading `+`
//! on the day-of-week field (both day fields must match), and `@hourly`, `@daily`, `@weekly`,
//! `@monthly`, `@yearly`/`@annually`.
//!
//! # Daylight-saving time
//!
//! A cron expression names wall-clock times in its zone, and each wall-clock time runs at most
//! once:
//! - a time that a spring-forward skips runs at the first instant after the gap if the
//!   expression fixes second, minute and hour (`30 2 * * *` runs at 03:00 that day); an
//!   expression with steps or wildcards in those fields just has no runs in the gap;
//! - a time that a fall-back repeats runs at its first occurrence only, so `*/15 * * * *` has no
//!   runs during the repeated hour's second pass. Apps that need a steady period whatever the
//!   clocks do should use an interval, or a cron expression in UTC.

use std::fmt::Write as _;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

/// The shortest interval accepted: a job that wants to run more often than every second is a
/// busy loop, not a cron job.
pub const MIN_INTERVAL_MS: u64 = 1_000;

/// The longest interval accepted, 10 years of 365.25 days: anything longer is almost surely a
/// unit mistake, and capping it keeps grid arithmetic far from overflow.
pub const MAX_INTERVAL_MS: u64 = 315_576_000_000;

/// Longest cron expression accepted. Real expressions are a few dozen characters; the cap keeps
/// hostile manifests from making the parser and the per-field error attribution do much work.
pub const MAX_EXPRESSION_LEN: usize = 256;

/// Bound on the steps [`Schedule::next_after`] takes to get past a repeated (fall-back) stretch
/// of wall-clock time, one step per match in it. One hour of a six-field every-second
/// expression is 3,600 steps; the bound leaves room for the longest historical overlaps.
const MAX_OVERLAP_STEPS: u32 = 100_000;

/// The field names of a five-field expression, in order; a six-field one has "second" first.
const FIVE_FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// The nicknames croner expands; any other `@…` is refused by name rather than with croner's
/// field-count message.
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// A cron job's schedule, as an app declares it in its manifest.
///
/// In JSON: `{"interval": {"ms": 3600000}}` or
/// `{"cron": {"expression": "0 9 * * 1-5", "timeZone": "Europe/Paris"}}`, where `timeZone` is an
/// IANA name and defaults to `"UTC"`. Unknown fields are refused, so a typo such as `"timezone"`
/// fails the deploy instead of silently running in UTC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Schedule {
    /// Runs every `ms` milliseconds, on a grid fixed by an anchor time (see
    /// [`Schedule::next_after`]).
    Interval {
        /// The period, from [`MIN_INTERVAL_MS`] to [`MAX_INTERVAL_MS`].
        ms: u64,
    },
    /// Runs at the wall-clock times a cron expression matches in a time zone.
    Cron {
        /// The cron expression (see the module docs for the syntax).
        expression: String,
        /// The IANA time zone the expression is read in, such as `Europe/Paris`.
        #[serde(default = "default_time_zone", rename = "timeZone")]
        time_zone: String,
    },
}

/// Why a schedule is refused, or why no next run time can be given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// The cron expression does not parse, or matches no date at all.
    #[error("invalid cron expression `{expression}`: {reason}")]
    InvalidExpression {
        /// The expression as the app wrote it.
        expression: String,
        /// What is wrong, naming the field where one is at fault.
        reason: String,
    },
    /// The time zone is not an IANA name known to this server.
    #[error(
        "unknown time zone `{0}`: expected an IANA name such as `Europe/Paris` or `UTC` (names are case-sensitive)"
    )]
    UnknownTimeZone(String),
    /// The interval is shorter than [`MIN_INTERVAL_MS`].
    #[error("interval of {ms} ms is too short: the minimum is {MIN_INTERVAL_MS} ms (1s)")]
    IntervalTooShort {
        /// The interval the app asked for.
        ms: u64,
    },
    /// The interval is longer than [`MAX_INTERVAL_MS`].
    #[error("interval of {ms} ms is too long: the maximum is {MAX_INTERVAL_MS} ms (10 years)")]
    IntervalTooLong {
        /// The interval the app asked for.
        ms: u64,
    },
    /// No run time after `after_ms` can be represented: the times involved are out of range
    /// (cron searches stop at the year 5000; interval times must fit an `i64` of milliseconds).
    #[error("no run time after {after_ms} (Unix ms) can be computed: it is out of range")]
    NoRunAfter {
        /// The `now_ms` that was asked about.
        after_ms: i64,
    },
}

impl Schedule {
    /// Checks the schedule at deploy time: the interval is within bounds, or the expression
    /// parses, matches at least one date, and the time zone is known.
    ///
    /// # Errors
    ///
    /// The [`ScheduleError`] saying what is wrong.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        match self {
            Self::Interval { ms } => check_interval(*ms),
            Self::Cron {
                expression,
                time_zone,
            } => {
                let cron = parse_expression(expression)?;
                parse_time_zone(time_zone)?;
                // Whether any date matches does not depend on the zone. Croner searches up to
                // the year 5000, well past the 400-year Gregorian cycle, so a pattern it cannot
                // place from 2000 never matches (30 February, `0 0 31 4 *`).
                let reference = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(10_957);
                match cron.find_next_occurrence(&reference, false) {
                    Ok(_) => Ok(()),
                    Err(_) => Err(ScheduleError::InvalidExpression {
                        expression: expression.clone(),
                        reason: "it matches no date (such as 30 February)".to_owned(),
                    }),
                }
            }
        }
    }

    /// The first run time strictly after `now_ms` (Unix milliseconds).
    ///
    /// For an interval, runs stay on the grid `anchor_ms + k * ms` for every integer `k`, and
    /// missed ticks are skipped: the answer is the smallest grid time after `now_ms`, so it is
    /// never more than one interval away. That holds for an anchor in the future too (a clock
    /// that stepped back): the job keeps its phase instead of stalling until the anchor.
    ///
    /// For a cron expression, the answer is the next matching time in the schedule's zone
    /// (whole seconds), with daylight-saving changes handled as the module docs describe;
    /// `anchor_ms` is not used.
    ///
    /// # Errors
    ///
    /// The [`ScheduleError`] of [`Schedule::validate`] for a schedule that does not validate
    /// (this does not search for impossible dates up front: such an expression ends in
    /// [`ScheduleError::NoRunAfter`]), or [`ScheduleError::NoRunAfter`] when the next time is
    /// out of range.
    pub fn next_after(&self, now_ms: i64, anchor_ms: i64) -> Result<i64, ScheduleError> {
        match self {
            Self::Interval { ms } => {
                check_interval(*ms)?;
                next_on_grid(*ms, now_ms, anchor_ms)
            }
            Self::Cron {
                expression,
                time_zone,
            } => {
                let cron = parse_expression(expression)?;
                let tz = parse_time_zone(time_zone)?;
                next_cron_time(&cron, tz, now_ms)
            }
        }
    }

    /// A short description for listings: `every 1h`, `every 1m30s`,
    /// `cron `0 9 * * 1-5` Europe/Paris`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Interval { ms } => format!("every {}", format_period(*ms)),
            Self::Cron {
                expression,
                time_zone,
            } => format!("cron `{expression}` {time_zone}"),
        }
    }
}

/// Serde's default for `timeZone`.
fn default_time_zone() -> String {
    "UTC".to_owned()
}

fn check_interval(ms: u64) -> Result<(), ScheduleError> {
    if ms < MIN_INTERVAL_MS {
        Err(ScheduleError::IntervalTooShort { ms })
    } else if ms > MAX_INTERVAL_MS {
        Err(ScheduleError::IntervalTooLong { ms })
    } else {
        Ok(())
    }
}

/// The smallest `anchor_ms + k * ms` greater than `now_ms`, over all integers `k`.
fn next_on_grid(ms: u64, now_ms: i64, anchor_ms: i64) -> Result<i64, ScheduleError> {
    // i128 holds every difference and sum of two i64 and a u64, so nothing here overflows;
    // only the final answer may not fit.
    let period = i128::from(ms);
    let since_anchor = i128::from(now_ms) - i128::from(anchor_ms);
    let next = i128::from(now_ms) + period - since_anchor.rem_euclid(period);
    i64::try_from(next).map_err(|_| ScheduleError::NoRunAfter { after_ms: now_ms })
}

fn next_cron_time(cron: &Cron, tz: Tz, now_ms: i64) -> Result<i64, ScheduleError> {
    let out_of_range = || ScheduleError::NoRunAfter { after_ms: now_ms };
    // Croner keeps the sub-second part of its starting point in what it returns, so start from
    // the whole second `now` falls in; croner answers at least a second later, still after now.
    let start = DateTime::from_timestamp(now_ms.div_euclid(1000), 0).ok_or_else(out_of_range)?;
    let mut from = start.with_timezone(&tz);
    for _ in 0..MAX_OVERLAP_STEPS {
        let next = cron
            .find_next_occurrence(&from, false)
            .map_err(|_| out_of_range())?;
        let next_ms = next.timestamp_millis();
        if next_ms > now_ms {
            return Ok(next_ms);
        }
        // Croner searches wall-clock time and answers a time that a fall-back repeats with its
        // first occurrence. When `now` is in the repeated stretch's second pass, that first
        // occurrence is already past: the time has had its one run (or missed it), so search on
        // from its second occurrence. Each step moves the wall clock forward, so this ends.
        from = tz
            .from_local_datetime(&next.naive_local())
            .latest()
            .ok_or_else(out_of_range)?;
    }
    Err(out_of_range())
}

fn parse_time_zone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownTimeZone(name.to_owned()))
}

/// The one parser configuration: seconds optional (five or six fields), no year field (so six
/// fields always means seconds first), Vixie-style OR of the two day fields.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

fn parse_expression(expression: &str) -> Result<Cron, ScheduleError> {
    let invalid = |reason: String| ScheduleError::InvalidExpression {
        expression: expression.to_owned(),
        reason,
    };
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(invalid(format!(
            "it is longer than {MAX_EXPRESSION_LEN} characters"
        )));
    }
    let trimmed = expression.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    let names = if trimmed.starts_with('@') {
        if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(trimmed)) {
            return Err(invalid(format!(
                "unknown nickname; known ones are {}",
                NICKNAMES.join(", ")
            )));
        }
        Vec::new()
    } else {
        let names = field_names(fields.len()).ok_or_else(|| {
            invalid(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {}",
                fields.len()
            ))
        })?;
        // Croner skips empty list items, so `,,` would parse as a field matching nothing, and
        // searching for a time that never comes takes croner a minute and a half.
        for (field, name) in fields.iter().zip(&names) {
            if field.split(',').any(str::is_empty) {
                return Err(invalid(format!(
                    "{name} field `{field}` has an empty list item"
                )));
            }
        }
        names
    };
    parser().parse(trimmed).map_err(|whole| {
        invalid(blame_field(&fields, &names).unwrap_or_else(|| describe_cron_error(&whole)))
    })
}

/// The field names for an expression of `count` fields, or `None` for a count we refuse.
fn field_names(count: usize) -> Option<Vec<&'static str>> {
    match count {
        5 => Some(FIVE_FIELD_NAMES.to_vec()),
        6 => Some(std::iter::once("second").chain(FIVE_FIELD_NAMES).collect()),
        _ => None,
    }
}

/// Croner's errors do not say which field is wrong, so parse each field alone (the others set
/// to `*`) and report the first that fails.
fn blame_field(fields: &[&str], names: &[&str]) -> Option<String> {
    fields
        .iter()
        .zip(names)
        .enumerate()
        .find_map(|(i, (field, name))| {
            let mut alone = vec!["*"; fields.len()];
            if let Some(slot) = alone.get_mut(i) {
                *slot = field;
            }
            parser()
                .parse(&alone.join(" "))
                .err()
                .map(|e| format!("{name} field `{field}`: {}", describe_cron_error(&e)))
        })
}

fn describe_cron_error(error: &CronError) -> String {
    match error {
        CronError::IllegalCharacters(_) => "it has a character not allowed there (fields take digits and , - * /; day fields also L W # ?; names such as MON or JAN)".to_owned(),
        CronError::InvalidPattern(message) | CronError::ComponentError(message) => {
            lower_first(message.trim_end_matches('.'))
        }
        CronError::EmptyPattern => "it is empty".to_owned(),
        CronError::InvalidDate | CronError::InvalidTime | CronError::TimeSearchLimitExceeded => {
            error.to_string()
        }
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// `90_000` → `1m30s`: each non-zero unit from days down to milliseconds.
fn format_period(ms: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    if ms == 0 {
        return "0ms".to_owned();
    }
    let mut rest = ms;
    let mut text = String::new();
    for (size, unit) in UNITS {
        let count = rest / size;
        if count > 0 {
            // Writing to a String cannot fail.
            let _ = write!(text, "{count}{unit}");
            rest %= size;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix ms of an RFC 3339 time, so tests read as wall-clock times with their offsets.
    fn at(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn cron(expression: &str, time_zone: &str) -> Schedule {
        Schedule::Cron {
            expression: expression.to_owned(),
            time_zone: time_zone.to_owned(),
        }
    }

    fn reason_of(error: ScheduleError) -> String {
        match error {
            ScheduleError::InvalidExpression { reason, .. } => reason,
            other => panic!("expected InvalidExpression, got {other:?}"),
        }
    }

    const MINUTE: i64 = 60_000;

    #[test]
    fn interval_next_run_is_the_next_grid_point_strictly_after_now() {
        let every_minute = Schedule::Interval { ms: 60_000 };
        let anchor = at("2024-06-01T12:00:00Z");
        assert_eq!(every_minute.next_after(anchor, anchor), Ok(anchor + MINUTE));
        assert_eq!(
            every_minute.next_after(anchor + MINUTE - 1, anchor),
            Ok(anchor + MINUTE)
        );
        assert_eq!(
            every_minute.next_after(anchor + MINUTE, anchor),
            Ok(anchor + 2 * MINUTE)
        );
    }

    #[test]
    fn interval_skips_several_missed_ticks_to_one_next_time() {
        let every_minute = Schedule::Interval { ms: 60_000 };
        let anchor = at("2024-06-01T12:00:00Z");
        let after_downtime = anchor + 5 * MINUTE + 17;
        assert_eq!(
            every_minute.next_after(after_downtime, anchor),
            Ok(anchor + 6 * MINUTE)
        );
    }

    #[test]
    fn interval_with_future_anchor_keeps_its_phase_within_one_period() {
        let every_minute = Schedule::Interval { ms: 60_000 };
        let now = at("2024-06-01T12:00:00Z");
        // Anchor less than one period ahead: the anchor itself is next.
        assert_eq!(every_minute.next_after(now, now + 10_000), Ok(now + 10_000));
        // Anchor far ahead (clock stepped back): the grid point in the next minute, not a
        // stall until the anchor.
        assert_eq!(
            every_minute.next_after(now, now + 150_000),
            Ok(now + 30_000)
        );
    }

    #[test]
    fn interval_works_on_a_grid_before_1970() {
        let every_10s = Schedule::Interval { ms: 10_000 };
        assert_eq!(every_10s.next_after(-25_000, 0), Ok(-20_000));
        assert_eq!(every_10s.next_after(-20_000, 0), Ok(-10_000));
    }

    #[test]
    fn interval_bounds_are_checked() {
        let cases = [
            (0, Err(ScheduleError::IntervalTooShort { ms: 0 })),
            (999, Err(ScheduleError::IntervalTooShort { ms: 999 })),
            (1_000, Ok(())),
            (MAX_INTERVAL_MS, Ok(())),
            (
                MAX_INTERVAL_MS + 1,
                Err(ScheduleError::IntervalTooLong {
                    ms: MAX_INTERVAL_MS + 1,
                }),
            ),
            (
                u64::MAX,
                Err(ScheduleError::IntervalTooLong { ms: u64::MAX }),
            ),
        ];
        for (ms, expected) in cases {
            assert_eq!(Schedule::Interval { ms }.validate(), expected, "ms = {ms}");
        }
    }

    #[test]
    fn zero_interval_is_refused_by_next_after_rather_than_dividing_by_zero() {
        assert_eq!(
            Schedule::Interval { ms: 0 }.next_after(0, 0),
            Err(ScheduleError::IntervalTooShort { ms: 0 })
        );
    }

    #[test]
    fn interval_next_time_past_i64_is_an_error_not_an_overflow() {
        let schedule = Schedule::Interval {
            ms: MAX_INTERVAL_MS,
        };
        assert_eq!(
            schedule.next_after(i64::MAX - 1, 0),
            Err(ScheduleError::NoRunAfter {
                after_ms: i64::MAX - 1
            })
        );
        // Extreme but representable inputs still work.
        assert_eq!(
            schedule.next_after(i64::MIN, i64::MIN),
            Ok(i64::MIN + 315_576_000_000)
        );
    }

    #[test]
    fn weekday_cron_in_utc_skips_the_weekend() {
        let schedule = cron("0 9 * * 1-5", "UTC");
        // Friday 7 June 2024, at the run itself: next is Monday.
        assert_eq!(
            schedule.next_after(at("2024-06-07T09:00:00Z"), 0),
            Ok(at("2024-06-10T09:00:00Z"))
        );
        assert_eq!(
            schedule.next_after(at("2024-06-10T08:59:59.999Z"), 0),
            Ok(at("2024-06-10T09:00:00Z"))
        );
    }

    #[test]
    fn cron_next_time_is_strictly_after_a_sub_second_now() {
        let schedule = cron("* * * * *", "UTC");
        assert_eq!(
            schedule.next_after(at("2024-06-10T09:00:00.500Z"), 0),
            Ok(at("2024-06-10T09:01:00Z"))
        );
        assert_eq!(
            schedule.next_after(at("2024-06-10T09:00:59.999Z"), 0),
            Ok(at("2024-06-10T09:01:00Z"))
        );
    }

    #[test]
    fn cron_accepts_names_lists_steps_and_ranges() {
        let now = at("2024-06-07T12:00:00Z"); // a Friday
        let cases = [
            ("0 9 * * MON-FRI", "2024-06-10T09:00:00Z"),
            ("0 9 * * mon,wed", "2024-06-10T09:00:00Z"),
            ("*/20 * * * *", "2024-06-07T12:20:00Z"),
            ("5-10/5 13 * * *", "2024-06-07T13:05:00Z"),
            ("0 0 1 JAN *", "2025-01-01T00:00:00Z"),
            ("0 0 1 1,7 *", "2024-07-01T00:00:00Z"),
            ("@daily", "2024-06-08T00:00:00Z"),
            ("@HOURLY", "2024-06-07T13:00:00Z"),
            ("0 12 L * *", "2024-06-30T12:00:00Z"),
            ("0 0 29 2 *", "2028-02-29T00:00:00Z"),
        ];
        for (expression, expected) in cases {
            assert_eq!(
                cron(expression, "UTC").next_after(now, 0),
                Ok(at(expected)),
                "{expression}"
            );
        }
    }

    #[test]
    fn six_fields_put_seconds_first() {
        let schedule = cron("*/10 * * * * *", "UTC");
        assert_eq!(schedule.validate(), Ok(()));
        assert_eq!(
            schedule.next_after(at("2024-06-07T12:00:05Z"), 0),
            Ok(at("2024-06-07T12:00:10Z"))
        );
    }

    #[test]
    fn paris_cron_follows_the_wall_clock_across_spring_forward() {
        let schedule = cron("0 9 * * *", "Europe/Paris");
        // Clocks go 02:00 CET -> 03:00 CEST on 31 March 2024.
        assert_eq!(
            schedule.next_after(at("2024-03-30T09:00:00+01:00"), 0),
            Ok(at("2024-03-31T09:00:00+02:00"))
        );
    }

    #[test]
    fn paris_time_skipped_by_spring_forward_runs_once_after_the_gap() {
        let schedule = cron("30 2 * * *", "Europe/Paris");
        let snapped = at("2024-03-31T03:00:00+02:00");
        assert_eq!(
            schedule.next_after(at("2024-03-30T02:30:00+01:00"), 0),
            Ok(snapped)
        );
        assert_eq!(
            schedule.next_after(snapped, 0),
            Ok(at("2024-04-01T02:30:00+02:00"))
        );
    }

    #[test]
    fn paris_time_repeated_by_fall_back_runs_only_at_its_first_occurrence() {
        let schedule = cron("30 2 * * *", "Europe/Paris");
        // Clocks go 03:00 CEST -> 02:00 CET on 27 October 2024, so 02:30 happens twice.
        let first = at("2024-10-27T02:30:00+02:00");
        assert_eq!(
            schedule.next_after(at("2024-10-26T02:30:00+02:00"), 0),
            Ok(first)
        );
        let next_day = at("2024-10-28T02:30:00+01:00");
        assert_eq!(schedule.next_after(first, 0), Ok(next_day));
        // Asked from inside the second pass, before the repeated 02:30: still not again.
        assert_eq!(
            schedule.next_after(at("2024-10-27T02:10:00+01:00"), 0),
            Ok(next_day)
        );
    }

    #[test]
    fn new_york_steps_skip_the_spring_forward_gap() {
        let schedule = cron("*/30 * * * *", "America/New_York");
        // Clocks go 02:00 EST -> 03:00 EDT on 10 March 2024.
        assert_eq!(
            schedule.next_after(at("2024-03-10T01:30:00-05:00"), 0),
            Ok(at("2024-03-10T03:00:00-04:00"))
        );
    }

    #[test]
    fn new_york_steps_run_once_per_wall_clock_time_across_fall_back() {
        let schedule = cron("*/15 * * * *", "America/New_York");
        // Clocks go 02:00 EDT -> 01:00 EST on 3 November 2024.
        assert_eq!(
            schedule.next_after(at("2024-11-03T01:30:00-04:00"), 0),
            Ok(at("2024-11-03T01:45:00-04:00"))
        );
        assert_eq!(
            schedule.next_after(at("2024-11-03T01:45:00-04:00"), 0),
            Ok(at("2024-11-03T02:00:00-05:00"))
        );
        // From inside the second pass the answer is in the future, never a past first pass.
        assert_eq!(
            schedule.next_after(at("2024-11-03T01:10:00-05:00"), 0),
            Ok(at("2024-11-03T02:00:00-05:00"))
        );
    }

    #[test]
    fn chained_runs_across_both_dst_changes_always_move_forward() {
        let cases = [
            (
                "*/15 * * * *",
                "America/New_York",
                "2024-11-02T22:00:00-04:00",
            ),
            (
                "*/15 * * * *",
                "America/New_York",
                "2024-03-09T22:00:00-05:00",
            ),
            (
                "30 1,2 * * *",
                "America/New_York",
                "2024-11-01T00:00:00-04:00",
            ),
            ("0 * * * *", "Europe/Paris", "2024-10-26T20:00:00+02:00"),
            ("*/7 2 * * *", "Europe/Paris", "2024-03-29T00:00:00+01:00"),
            (
                "30 * * * * *",
                "Australia/Lord_Howe",
                "2024-04-07T01:00:00+11:00",
            ),
        ];
        for (expression, time_zone, start) in cases {
            let schedule = cron(expression, time_zone);
            let tz: Tz = time_zone.parse().unwrap();
            let mut now = at(start);
            let mut seen_wall_clock = std::collections::HashSet::new();
            for _ in 0..200 {
                let next = schedule.next_after(now, 0).unwrap();
                assert!(
                    next > now,
                    "{expression} in {time_zone}: {next} after {now}"
                );
                let wall_clock = DateTime::from_timestamp_millis(next)
                    .unwrap()
                    .with_timezone(&tz)
                    .naive_local();
                assert!(
                    seen_wall_clock.insert(wall_clock),
                    "{expression} in {time_zone} ran twice at {wall_clock}"
                );
                now = next;
            }
        }
    }

    #[test]
    fn bad_expressions_are_refused_saying_why() {
        let cases = [
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("* * *", "expected 5 fields"),
            ("* * * * * * *", "found 7"),
            ("60 * * * *", "minute field `60`: number out of bounds"),
            ("* 24 * * *", "hour field `24`"),
            ("0 0 0 * *", "day-of-month field `0`"),
            ("0 0 * 13 *", "month field `13`"),
            ("0 0 * * 8", "day-of-week field `8`"),
            ("*/0 * * * *", "step cannot be zero"),
            ("5-1 * * * *", "range out of bounds"),
            (
                "a b c d e",
                "minute field `a`: it has a character not allowed",
            ),
            ("0 9 * * MONDAY", "day-of-week field `MONDAY`"),
            (",,, * * * *", "minute field `,,,` has an empty list item"),
            ("1,,2 * * * *", "empty list item"),
            ("0 0 * * MON#9", "nth specifier out of bounds"),
            ("@reboot", "unknown nickname"),
            ("0 0 30 2 *", "matches no date"),
            ("0 0 31 4,6,9,11 *", "matches no date"),
        ];
        for (expression, fragment) in cases {
            let reason = reason_of(cron(expression, "UTC").validate().unwrap_err());
            assert!(
                reason.contains(fragment),
                "{expression:?}: {reason:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn overlong_expression_is_refused_before_parsing() {
        let long = format!("{} * * * *", "1,".repeat(200));
        let reason = reason_of(cron(&long, "UTC").validate().unwrap_err());
        assert!(reason.contains("longer than 256"), "{reason}");
    }

    #[test]
    fn next_after_refuses_a_bad_expression_instead_of_guessing() {
        assert!(matches!(
            cron("61 * * * *", "UTC").next_after(0, 0),
            Err(ScheduleError::InvalidExpression { .. })
        ));
    }

    #[test]
    fn cron_next_time_out_of_range_is_an_error() {
        let schedule = cron("* * * * *", "UTC");
        assert_eq!(
            schedule.next_after(i64::MAX, 0),
            Err(ScheduleError::NoRunAfter { after_ms: i64::MAX })
        );
        // Croner stops searching at the year 5000.
        let year_6000 = at("6000-01-01T00:00:00Z");
        assert_eq!(
            schedule.next_after(year_6000, 0),
            Err(ScheduleError::NoRunAfter {
                after_ms: year_6000
            })
        );
    }

    #[test]
    fn unknown_time_zones_are_refused() {
        for time_zone in [
            "Mars/Olympus_Mons",
            "europe/paris",
            "",
            "UTC+2",
            "Europe/Paris ",
        ] {
            let schedule = cron("0 9 * * *", time_zone);
            let expected = Err(ScheduleError::UnknownTimeZone(time_zone.to_owned()));
            assert_eq!(schedule.validate(), expected, "{time_zone:?}");
            assert_eq!(schedule.next_after(0, 0).map(|_| ()), expected);
        }
    }

    #[test]
    fn known_time_zones_validate() {
        for time_zone in ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"] {
            assert_eq!(cron("0 9 * * 1-5", time_zone).validate(), Ok(()));
        }
    }

    #[test]
    fn both_json_forms_deserialize_and_round_trip() {
        let cases = [
            (
                r#"{"interval":{"ms":3600000}}"#,
                Schedule::Interval { ms: 3_600_000 },
            ),
            (
                r#"{"cron":{"expression":"0 9 * * 1-5","timeZone":"Europe/Paris"}}"#,
                cron("0 9 * * 1-5", "Europe/Paris"),
            ),
        ];
        for (json, expected) in cases {
            let parsed: Schedule = serde_json::from_str(json).unwrap();
            assert_eq!(parsed, expected);
            assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
        }
    }

    #[test]
    fn cron_time_zone_defaults_to_utc() {
        let parsed: Schedule = serde_json::from_str(r#"{"cron":{"expression":"@daily"}}"#).unwrap();
        assert_eq!(parsed, cron("@daily", "UTC"));
    }

    #[test]
    fn unknown_fields_and_shapes_are_refused() {
        let cases = [
            r#"{"interval":{"ms":1000,"jitter":5}}"#,
            r#"{"cron":{"expression":"@daily","timezone":"Europe/Paris"}}"#,
            r#"{"cron":{"expression":"@daily","time_zone":"Europe/Paris"}}"#,
            r#"{"every":{"ms":1000}}"#,
            r#"{"Interval":{"ms":1000}}"#,
            r#"{"interval":{"ms":1000},"cron":{"expression":"@daily"}}"#,
            r#"{"interval":{"ms":-1000}}"#,
            r#"{"interval":{}}"#,
            r#"{"cron":{"timeZone":"UTC"}}"#,
            r#""interval""#,
        ];
        for json in cases {
            assert!(
                serde_json::from_str::<Schedule>(json).is_err(),
                "accepted {json}"
            );
        }
    }

    #[test]
    fn describe_is_short_and_readable() {
        let cases = [
            (Schedule::Interval { ms: 3_600_000 }, "every 1h"),
            (Schedule::Interval { ms: 1_000 }, "every 1s"),
            (Schedule::Interval { ms: 90_000 }, "every 1m30s"),
            (Schedule::Interval { ms: 86_400_000 }, "every 1d"),
            (Schedule::Interval { ms: 1_500 }, "every 1s500ms"),
            (
                cron("0 9 * * 1-5", "Europe/Paris"),
                "cron `0 9 * * 1-5` Europe/Paris",
            ),
            (cron("@daily", "UTC"), "cron `@daily` UTC"),
        ];
        for (schedule, expected) in cases {
            assert_eq!(schedule.describe(), expected);
        }
    }

    #[test]
    fn errors_read_as_english() {
        assert_eq!(
            ScheduleError::IntervalTooShort { ms: 10 }.to_string(),
            "interval of 10 ms is too short: the minimum is 1000 ms (1s)"
        );
        assert_eq!(
            reason_of(cron("60 * * * *", "UTC").validate().unwrap_err()),
            "minute field `60`: number out of bounds"
        );
        assert_eq!(
            cron("60 * * * *", "UTC")
                .validate()
                .unwrap_err()
                .to_string(),
            "invalid cron expression `60 * * * *`: minute field `60`: number out of bounds"
        );
    }
}
