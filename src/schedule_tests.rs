//! Schedules against next-fire times worked out by hand from robfig/cron v3's rules.

use super::*;

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn next(spec: &str, from: &str, zone: &str) -> Option<String> {
    let (s, _) = Schedule::parse_standard(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    let from: Timestamp = from.parse().unwrap();
    let z = tz(zone);
    s.next(from, &z).map(|t| {
        t.to_zoned_datetime(z.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    })
}

#[test]
fn next_fire_times_match_robfig() {
    // 2026-11-23 is a Monday.
    let from = "2026-11-23T10:30:00Z";
    let cases: &[(&str, &str, &str, &str)] = &[
        ("*/1 * * * *", from, "UTC", "2026-11-23T10:31:00+00:00"),
        (
            "* * * * *",
            "2026-11-23T10:30:00.5Z",
            "UTC",
            "2026-11-23T10:31:00+00:00",
        ),
        ("0 * * * *", from, "UTC", "2026-11-23T11:00:00+00:00"),
        ("30 10 * * *", from, "UTC", "2026-11-24T10:30:00+00:00"),
        ("0 9-17/2 * * *", from, "UTC", "2026-11-23T11:00:00+00:00"),
        ("5/15 * * * *", from, "UTC", "2026-11-23T10:35:00+00:00"),
        ("0 0 1 * *", from, "UTC", "2026-12-01T00:00:00+00:00"),
        ("@yearly", from, "UTC", "2027-01-01T00:00:00+00:00"),
        ("@annually", from, "UTC", "2027-01-01T00:00:00+00:00"),
        ("@monthly", from, "UTC", "2026-12-01T00:00:00+00:00"),
        ("@weekly", from, "UTC", "2026-11-29T00:00:00+00:00"),
        ("@daily", from, "UTC", "2026-11-24T00:00:00+00:00"),
        ("@midnight", from, "UTC", "2026-11-24T00:00:00+00:00"),
        ("@hourly", from, "UTC", "2026-11-23T11:00:00+00:00"),
        ("@every 90m", from, "UTC", "2026-11-23T12:00:00+00:00"),
        ("@every 1.5h", from, "UTC", "2026-11-23T12:00:00+00:00"),
        // Both day fields restricted: OR-ed (the 13th, or a Friday).
        ("0 0 13 * 5", from, "UTC", "2026-11-27T00:00:00+00:00"),
        ("0 0 13 * *", from, "UTC", "2026-12-13T00:00:00+00:00"),
        // `*/2` is not a star (step > 1): OR-ed with the 1st; `*/1` is: AND-ed.
        ("0 0 1 * */2", from, "UTC", "2026-11-24T00:00:00+00:00"),
        ("0 0 1 * */1", from, "UTC", "2026-12-01T00:00:00+00:00"),
        ("0 0 * * 1-5", from, "UTC", "2026-11-24T00:00:00+00:00"),
        (
            "0 12 * jan,FEB mon",
            from,
            "UTC",
            "2027-01-04T12:00:00+00:00",
        ),
        ("0 0 * * SUN", from, "UTC", "2026-11-29T00:00:00+00:00"),
        ("0 0 ? * MON", from, "UTC", "2026-11-30T00:00:00+00:00"),
        (
            "0 9 * * *",
            from,
            "Europe/Paris",
            "2026-11-24T09:00:00+01:00",
        ),
        // New York, DST begins 2026-03-08 02:00 -> 03:00: that day has no 02:30.
        (
            "30 2 * * *",
            "2026-03-07T17:00:00Z",
            "America/New_York",
            "2026-03-09T02:30:00-04:00",
        ),
        // DST ends 2026-11-01 02:00 -> 01:00: 01:30 happens twice and fires twice.
        (
            "30 1 * * *",
            "2026-10-31T16:00:00Z",
            "America/New_York",
            "2026-11-01T01:30:00-04:00",
        ),
        (
            "30 1 * * *",
            "2026-11-01T05:30:00Z",
            "America/New_York",
            "2026-11-01T01:30:00-05:00",
        ),
        // Cairo 2026: midnight of 04-24 does not exist (00:00 +02 -> 01:00 +03); Go resolves
        // it east of UTC so that robfig's day step skips the 24th.
        (
            "30 1 24 4 *",
            "2026-04-01T00:00:00Z",
            "Africa/Cairo",
            "2027-04-24T01:30:00+02:00",
        ),
        // Sao Paulo 2018: midnight of 11-04 did not exist (00:00 -> 01:00).
        (
            "0 0 * * *",
            "2018-11-03T15:00:00Z",
            "America/Sao_Paulo",
            "2018-11-05T00:00:00-02:00",
        ),
    ];
    for (spec, from, zone, want) in cases {
        assert_eq!(
            next(spec, from, zone).as_deref(),
            Some(*want),
            "{spec} after {from} in {zone}"
        );
    }
    assert_eq!(
        next("0 0 30 2 *", from, "UTC"),
        None,
        "February 30th never comes"
    );
}

#[test]
fn rejects_what_robfig_rejects_with_its_messages() {
    let cases = [
        ("", "empty spec string"),
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        (
            "* * * * * *",
            "expected exactly 5 fields, found 6: [* * * * * *]",
        ),
        ("61 * * * *", "end of range (61) above maximum (59): 61"),
        (
            "99999999999 * * * *",
            "end of range (99999999999) above maximum (59): 99999999999",
        ),
        ("0 0 * * 7", "end of range (7) above maximum (6): 7"),
        ("0 24 * * *", "end of range (24) above maximum (23): 24"),
        ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("0 0 * 13 *", "end of range (13) above maximum (12): 13"),
        (
            "5-1 * * * *",
            "beginning of range (5) beyond end of range (1): 5-1",
        ),
        (
            "*/0 * * * *",
            "step of range should be a positive number: */0",
        ),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("*/2/3 * * * *", "too many slashes: */2/3"),
        (
            "a * * * *",
            "failed to parse int from a: strconv.Atoi: parsing \"a\": invalid syntax",
        ),
        ("*/-1 * * * *", "negative number (-1) not allowed: -1"),
        (
            "0 0 * * funday",
            "failed to parse int from funday: strconv.Atoi: parsing \"funday\": invalid syntax",
        ),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        (
            "@every 5x",
            "failed to parse duration @every 5x: time: unknown unit \"x\" in duration \"5x\"",
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(
            Schedule::parse_standard(spec).err().as_deref(),
            Some(want),
            "{spec:?}"
        );
    }
}

#[test]
fn accepts_robfig_quirks() {
    // Empty list elements are skipped; `*-5` is a star (the range part after `*` is ignored);
    // `@every` below a second becomes a second.
    for ok in [
        "1,,2 * * * *",
        "*-5 * * * *",
        "0 0 * * MON-fri",
        "1/4294967295 * * * *",
        "1/99999999999 * * * *",
    ] {
        assert!(Schedule::parse_standard(ok).is_ok(), "{ok}");
    }
    let (every, _) = Schedule::parse_standard("@every 10ms").unwrap();
    assert_eq!(every, Schedule::Every(Duration::from_secs(1)));
    let (_, tz) = Schedule::parse_standard("CRON_TZ=Europe/Paris 0 9 * * *").unwrap();
    assert_eq!(
        tz.and_then(|t| t.iana_name().map(str::to_string))
            .as_deref(),
        Some("Europe/Paris")
    );
}
