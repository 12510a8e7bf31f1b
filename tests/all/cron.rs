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

/// The docs' CronJob for real: two schedules a minute apart (this test waits for the wall
/// clock, up to two minutes; the controller's logic is tested on a fake clock elsewhere).
#[test]
fn docs_cronjob_runs_two_schedules_a_minute_apart() {
    let state = tempfile::tempdir().unwrap();
    let examples = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"));
    let out = wasmjob_with_state(
        state.path(),
        examples,
        &[
            "run",
            "cronjob.yaml",
            "--schedules",
            "2",
            "-o",
            "json",
            "--logs",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    let cj = &items(&list, "CronJob")[0];
    assert_eq!(cj["spec"]["schedule"], "*/1 * * * *");
    let jobs = items(&list, "Job");
    assert_eq!(jobs.len(), 2);
    let scheduled: Vec<jiff::Timestamp> = jobs
        .iter()
        .map(|j| {
            ts(&j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"])
        })
        .collect();
    assert_eq!(
        scheduled[1].duration_since(scheduled[0]),
        jiff::SignedDuration::from_mins(1)
    );
    for (j, t) in jobs.iter().zip(&scheduled) {
        assert_eq!(conditions(j).last().unwrap().0, "Complete");
        assert_eq!(
            j["metadata"]["name"],
            format!("hello-{}", t.as_second() / 60)
        );
    }
    assert_eq!(
        out.stderr
            .matches("Hello from the Kubernetes cluster")
            .count(),
        2,
        "{}",
        out.stderr
    );

    let get = wasmjob_with_state(state.path(), examples, &["get", "cronjob", "hello"]);
    let row: Vec<&str> = get
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..6], ["hello", "*/1", "*", "*", "*", "*"]);
    let describe = wasmjob_with_state(state.path(), examples, &["describe", "cronjob", "hello"]);
    for want in [
        "Schedule:",
        "*/1 * * * *",
        "Concurrency Policy:",
        "Allow",
        "SawCompletedJob",
        "Created job hello-",
    ] {
        assert!(
            describe.stdout.contains(want),
            "{want}:\n{}",
            describe.stdout
        );
    }
    let del = wasmjob_with_state(state.path(), examples, &["delete", "cronjob", "hello"]);
    assert_eq!(
        del.stdout, "cronjob.batch \"hello\" deleted\n",
        "{}",
        del.stderr
    );
    let left = wasmjob_with_state(state.path(), examples, &["get", "jobs"]);
    assert_eq!(
        left.stderr, "No resources found in default namespace.\n",
        "its Jobs went with it"
    );
}

#[test]
fn cronjob_manifests_are_validated_like_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: a-cronjob-name-that-is-far-too-long-for-its-job-names-x}\nspec:\n  schedule: '0 0 * * 7'\n  timeZone: Mars/Olympus\n  concurrencyPolicy: Sometimes\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Always\n          containers: [{name: c, image: x.wasm}]\n";
    let path = write(dir.path(), "bad.yaml", bad);
    let out = wasmjob(dir.path(), &["run", &path]);
    assert_eq!(out.code, 2);
    for want in [
        "metadata.name: Invalid value: \"a-cronjob-name-that-is-far-too-long-for-its-job-names-x\": must be no more than 52 characters",
        "spec.schedule: Invalid value: \"0 0 * * 7\": end of range (7) above maximum (6): 7",
        "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus",
        "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
        "spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\"",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in:\n{}",
            out.stderr
        );
    }
}
