//! CronJob schedules with exactly the semantics Kubernetes uses: robfig/cron v3's
//! `ParseStandard` (five fields, `*`/`?`, lists, ranges, steps, month and weekday names,
//! the `@yearly`...`@hourly` and `@every` descriptors, the same bounds and error messages)
//! and its `SpecSchedule.Next` (day-of-month and day-of-week OR-ed unless either is a
//! star, five-year search limit, the same handling of DST). Popular Rust crates differ on
//! each of these points, so this is a faithful port, kept pure.

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ZonedDateTime as Zoned};

/// Set in a field parsed from `*` or `?` (without a step above 1): a "star" day field makes
/// the day fields AND-ed instead of OR-ed.
const STAR: u64 = 1 << 63;

/// A field's bounds and names.
struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A crontab spec: bit sets per field (bit N: value N).
    Spec {
        /// Minutes.
        minute: u64,
        /// Hours.
        hour: u64,
        /// Days of the month.
        dom: u64,
        /// Months.
        month: u64,
        /// Days of the week, Sunday = 0.
        dow: u64,
    },
    /// `@every DURATION`: fires every DURATION (whole seconds, at least one).
    Every(Duration),
}

/// `getBits`: the values `min..=max` stepping by `step` (max is at most 59).
fn bits(min: u64, max: u64, step: u64) -> u64 {
    let mut b = 0u64;
    let mut i = min;
    while i <= max {
        b |= 1 << i;
        match i.checked_add(step) {
            Some(n) => i = n,
            None => break,
        }
    }
    b
}

fn all(r: &Bounds) -> u64 {
    bits(r.min, r.max, 1) | STAR
}

/// Go's `strconv.Atoi` with robfig's `mustParseInt` messages (robfig's `uint` is 64 bits).
fn parse_int(expr: &str) -> Result<u64, String> {
    let syntax = || {
        format!("failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax")
    };
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let n: i64 = expr.parse().map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: value out of range"
        )
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    Ok(n.unsigned_abs())
}

fn int_or_name(expr: &str, r: &Bounds) -> Result<u64, String> {
    let lower = expr.to_ascii_lowercase();
    match r.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => parse_int(expr),
    }
}

/// `getRange`: `*`, `?`, `N`, `N-M`, each with an optional `/STEP`.
fn range(expr: &str, r: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (start, end, extra) = (r.min, r.max, STAR);
    } else {
        start = int_or_name(low_and_high[0], r)?;
        end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], r)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        extra = 0;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = r.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < r.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            r.min
        ));
    }
    if end > r.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            r.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start, end, step) | extra)
}

/// `getField`: a comma-separated list of ranges (empty elements are skipped, as Go's
/// `FieldsFunc` does).
fn field(f: &str, r: &Bounds) -> Result<u64, String> {
    let mut b = 0;
    for expr in f.split(',').filter(|e| !e.is_empty()) {
        b |= range(expr, r)?;
    }
    Ok(b)
}

impl Schedule {
    /// `cron.ParseStandard`: five fields or a descriptor. A `TZ=`/`CRON_TZ=` prefix is
    /// parsed as robfig does and returned with the schedule (Kubernetes' validation then
    /// rejects it).
    pub fn parse_standard(spec: &str) -> Result<(Schedule, Option<TimeZone>), String> {
        if spec.is_empty() {
            return Err("empty spec string".into());
        }
        let mut spec = spec;
        let mut tz = None;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').unwrap_or(0);
            let Some(space) = spec.find(' ') else {
                return Err(format!(
                    "provided bad location {}: no schedule after it",
                    &spec[eq + 1..]
                ));
            };
            let name = &spec[eq + 1..space];
            tz =
                Some(jiff::tz::db().get(name).map_err(|_| {
                    format!("provided bad location {name}: unknown time zone {name}")
                })?);
            spec = spec[space..].trim();
        }
        if spec.starts_with('@') {
            return descriptor(spec).map(|s| (s, tz));
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        Ok((
            Schedule::Spec {
                minute: field(fields[0], &MINUTES)?,
                hour: field(fields[1], &HOURS)?,
                dom: field(fields[2], &DOM)?,
                month: field(fields[3], &MONTHS)?,
                dow: field(fields[4], &DOW)?,
            },
            tz,
        ))
    }

    /// `Next`: the first time strictly after `after` that the schedule fires, computed in
    /// time zone `tz`; `None` if there is none within five years (e.g. `0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every(d) => {
                let nanos = i64::from(after.subsec_nanosecond());
                let d = SignedDuration::try_from(*d).ok()?;
                after
                    .checked_add(d - SignedDuration::from_nanos(nanos))
                    .ok()
            }
            Schedule::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
            } => spec_next(
                Fields {
                    minute: *minute,
                    hour: *hour,
                    dom: *dom,
                    month: *month,
                    dow: *dow,
                },
                after,
                tz,
            ),
        }
    }
}

/// `parseDescriptor`.
fn descriptor(spec: &str) -> Result<Schedule, String> {
    let one = |r: &Bounds| 1u64 << r.min;
    let s = |minute, hour, dom, month, dow| Schedule::Spec {
        minute,
        hour,
        dom,
        month,
        dow,
    };
    Ok(match spec {
        "@yearly" | "@annually" => s(
            one(&MINUTES),
            one(&HOURS),
            one(&DOM),
            one(&MONTHS),
            all(&DOW),
        ),
        "@monthly" => s(
            one(&MINUTES),
            one(&HOURS),
            one(&DOM),
            all(&MONTHS),
            all(&DOW),
        ),
        "@weekly" => s(
            one(&MINUTES),
            one(&HOURS),
            all(&DOM),
            all(&MONTHS),
            one(&DOW),
        ),
        "@daily" | "@midnight" => s(
            one(&MINUTES),
            one(&HOURS),
            all(&DOM),
            all(&MONTHS),
            all(&DOW),
        ),
        "@hourly" => s(
            one(&MINUTES),
            all(&HOURS),
            all(&DOM),
            all(&MONTHS),
            all(&DOW),
        ),
        _ => {
            if let Some(d) = spec.strip_prefix("@every ") {
                let parsed =
                    go_duration(d).map_err(|e| format!("failed to parse duration {spec}: {e}"))?;
                // `Every`: at least a second, truncated to whole seconds.
                let secs = parsed.max(SignedDuration::from_secs(1)).as_secs();
                return Ok(Schedule::Every(Duration::from_secs(secs.unsigned_abs())));
            }
            return Err(format!("unrecognized descriptor: {spec}"));
        }
    })
}

/// Go's `time.ParseDuration` (`1h30m`, `1.5h`, `300ms`, `-2m`...).
fn go_duration(s: &str) -> Result<SignedDuration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {s:?}"))?;
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, after) = tail.split_at(unit_end);
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {s:?}")),
        };
        total += value * nanos;
        rest = after;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let d = SignedDuration::from_nanos(total as i64);
    Ok(if neg { -d } else { d })
}

#[derive(Clone, Copy)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
}

/// `dayMatches`: OR-ed, unless either day field is a star (then AND-ed).
fn day_matches(s: Fields, t: &Zoned) -> bool {
    let dom_match = s.dom & (1 << t.day()) != 0;
    let dow_match = s.dow & (1 << t.weekday().to_sunday_zero_offset()) != 0;
    if s.dom & STAR != 0 || s.dow & STAR != 0 {
        dom_match && dow_match
    } else {
        dom_match || dow_match
    }
}

/// Go's `time.Date`: fields may overflow and are normalized, and a wall time in a DST gap
/// or fold resolves as Go resolves it: take the offset in effect at the wall time read as
/// UTC; if the instant that gives has another offset, use that one instead. (West of UTC
/// that is the earlier instant, east of it the later one.)
fn go_date(year: i16, month: i32, day: i32, hour: i8, tz: &TimeZone) -> Option<Zoned> {
    let months = i32::from(year) * 12 + (month - 1);
    let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
    let first = Date::new(i16::try_from(y).ok()?, i8::try_from(m).ok()?, 1).ok()?;
    let date = first
        .checked_add(jiff::Span::new().days(i64::from(day - 1)))
        .ok()?;
    let dt = DateTime::from_parts(date, jiff::civil::Time::new(hour, 0, 0, 0).ok()?);
    let unix = TimeZone::UTC
        .to_ambiguous_timestamp(dt)
        .compatible()
        .ok()?
        .as_second();
    let offset_at = |secs: i64| -> Option<i64> {
        let ts = Timestamp::from_second(secs).ok()?;
        Some(i64::from(tz.to_offset(ts).seconds()))
    };
    let guess = offset_at(unix)?;
    let offset = offset_at(unix - guess)?;
    let ts = Timestamp::from_second(unix - offset).ok()?;
    Some(ts.to_zoned_datetime(tz.clone()))
}

fn add(t: &Zoned, d: SignedDuration) -> Option<Zoned> {
    t.checked_add(d).ok()
}

/// `SpecSchedule.Next`, step for step.
fn spec_next(s: Fields, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    // The upcoming whole second.
    let start = Timestamp::from_second(after.as_second().checked_add(1)?).ok()?;
    let mut t = start.to_zoned_datetime(tz.clone());
    let mut added = false;
    let year_limit = t.year() + 5;
    'wrap: loop {
        if t.year() > year_limit {
            return None;
        }
        while s.month & (1 << t.month()) == 0 {
            if !added {
                added = true;
                t = go_date(t.year(), i32::from(t.month()), 1, 0, tz)?;
            }
            t = go_date(
                t.year(),
                i32::from(t.month()) + 1,
                i32::from(t.day()),
                t.hour(),
                tz,
            )?;
            if t.month() == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(s, &t) {
            if !added {
                added = true;
                t = go_date(t.year(), i32::from(t.month()), i32::from(t.day()), 0, tz)?;
            }
            t = go_date(
                t.year(),
                i32::from(t.month()),
                i32::from(t.day()) + 1,
                t.hour(),
                tz,
            )?;
            // Midnight may not exist (DST): back to hour 0 of the intended day.
            if t.hour() != 0 {
                let h = i64::from(t.hour());
                t = if h > 12 {
                    add(&t, SignedDuration::from_hours(24 - h))?
                } else {
                    add(&t, SignedDuration::from_hours(-h))?
                };
            }
            if t.day() == 1 {
                continue 'wrap;
            }
        }
        while s.hour & (1 << t.hour()) == 0 {
            if !added {
                added = true;
                t = go_date(
                    t.year(),
                    i32::from(t.month()),
                    i32::from(t.day()),
                    t.hour(),
                    tz,
                )?;
            }
            t = add(&t, SignedDuration::from_hours(1))?;
            if t.hour() == 0 {
                continue 'wrap;
            }
        }
        while s.minute & (1 << t.minute()) == 0 {
            if !added {
                added = true;
                let secs = t.timestamp().as_second().div_euclid(60) * 60;
                t = Timestamp::from_second(secs)
                    .ok()?
                    .to_zoned_datetime(tz.clone());
            }
            t = add(&t, SignedDuration::from_mins(1))?;
            if t.minute() == 0 {
                continue 'wrap;
            }
        }
        // The seconds field is always 0.
        while t.second() != 0 {
            if !added {
                added = true;
            }
            t = add(&t, SignedDuration::from_secs(1))?;
            if t.second() == 0 {
                continue 'wrap;
            }
        }
        return Some(t.timestamp());
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
