//! `wasmjob schedule 'EXPR'`: the next fire times of a CronJob schedule, one RFC 3339 time a
//! line in the schedule's zone, or Kubernetes' validation error (exit 2), so a schedule can
//! be checked before it is deployed.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::Outcome;
use crate::api::field::Path;
use crate::api::validation::{validate_schedule, validate_time_zone};
use crate::schedule::Schedule;

/// `wasmjob schedule`.
#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    /// The schedule, e.g. `*/1 * * * *` or `@daily` (quote it for the shell).
    schedule: String,
    /// An IANA time zone, as `spec.timeZone` [default: this machine's].
    #[arg(long, value_name = "TZ")]
    time_zone: Option<String>,
    /// Start after this time (RFC 3339) [default: now].
    #[arg(long, value_name = "RFC3339")]
    from: Option<String>,
    /// How many fire times.
    #[arg(short, default_value_t = 5)]
    n: usize,
}

/// Runs `wasmjob schedule`.
pub fn schedule(args: ScheduleArgs) -> Outcome {
    let spec = Path::new("spec");
    let mut errs = validate_schedule(&args.schedule, &spec.child("schedule"));
    errs.extend(validate_time_zone(
        args.time_zone.as_deref(),
        &spec.child("timeZone"),
    ));
    if !errs.is_empty() {
        for e in errs {
            eprintln!("error: {e}");
        }
        return Outcome::Invalid;
    }
    let from = match args
        .from
        .as_deref()
        .map(str::parse::<Timestamp>)
        .transpose()
    {
        Ok(t) => t.unwrap_or_else(Timestamp::now),
        Err(e) => {
            eprintln!("error: --from: {e} (use RFC 3339, e.g. 2026-11-23T10:00:00Z)");
            return Outcome::Invalid;
        }
    };
    let tz = match &args.time_zone {
        Some(name) => TimeZone::get(name).unwrap_or(TimeZone::UTC),
        None => TimeZone::system(),
    };
    let Ok((schedule, _)) = Schedule::parse_standard(&args.schedule) else {
        return Outcome::Invalid;
    };
    let mut t = from;
    for _ in 0..args.n {
        let Some(next) = schedule.next(t, &tz) else {
            eprintln!("note: the schedule does not fire again within five years");
            break;
        };
        println!(
            "{}",
            next.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
        );
        t = next;
    }
    Outcome::Success
}
