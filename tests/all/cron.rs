//! `wasmjob schedule`: next fire times in a schedule's zone, and Kubernetes' rejections.

use std::path::Path;

use crate::support::*;

fn schedule(args: &[&str]) -> Output {
    let mut all = vec!["schedule"];
    all.extend_from_slice(args);
    wasmjob(Path::new("."), &all)
}

#[test]
fn prints_next_fire_times_in_the_schedules_zone() {
    let out = schedule(&[
        "*/15 9-17 * * MON-FRI",
        "--time-zone",
        "Europe/Paris",
        "--from",
        "2026-11-27T16:40:00Z",
        "-n",
        "3",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Friday 17:45 Paris time, then Monday 09:00 and 09:15.
    assert_eq!(
        out.stdout,
        "2026-11-27T17:45:00+01:00\n2026-11-30T09:00:00+01:00\n2026-11-30T09:15:00+01:00\n"
    );
    let dst = schedule(&[
        "30 1 * * *",
        "--time-zone",
        "America/New_York",
        "--from",
        "2026-11-01T04:00:00Z",
        "-n",
        "2",
    ]);
    assert_eq!(
        dst.stdout, "2026-11-01T01:30:00-04:00\n2026-11-01T01:30:00-05:00\n",
        "the repeated hour fires twice"
    );
    let macro_ = schedule(&[
        "@weekly",
        "--time-zone",
        "UTC",
        "--from",
        "2026-11-23T10:30:00Z",
        "-n",
        "1",
    ]);
    assert_eq!(macro_.stdout, "2026-11-29T00:00:00+00:00\n");
}

#[test]
fn invalid_schedules_and_zones_exit_2_with_field_paths() {
    let cases = [
        (
            vec!["0 0 * * 7"],
            "spec.schedule: Invalid value: \"0 0 * * 7\": end of range (7) above maximum (6): 7",
        ),
        (
            vec!["* * * *"],
            "expected exactly 5 fields, found 4: [* * * *]",
        ),
        (
            vec!["TZ=UTC 0 * * * *"],
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ),
        (
            vec!["0 * * * *", "--time-zone", "Mars/Olympus"],
            "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus",
        ),
        (
            vec!["0 * * * *", "--time-zone", "Local"],
            "timeZone must be an explicit time zone",
        ),
    ];
    for (args, want) in cases {
        let out = schedule(&args);
        assert_eq!(out.code, 2, "{args:?}");
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}
