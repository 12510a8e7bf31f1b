//! The CronJob controller driven by a simulated clock: days of schedules in milliseconds.

use super::*;
use crate::api::cronjob::{CronJob, ObjectReference, default_cronjob};

const T0: &str = "2026-11-23T10:00:30Z";

fn cronjob(extra: &str) -> CronJob {
    let yaml = format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: hello, creationTimestamp: '{T0}'}}\nspec:\n  schedule: '*/1 * * * *'\n{extra}\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers: [{{name: c, image: x.wasm}}]\n"
    );
    let mut cj: CronJob = serde_yaml_ng::from_str(&yaml).unwrap();
    default_cronjob(&mut cj);
    cj
}

struct SimJob {
    child: ChildJob,
    ends: Timestamp,
    success: bool,
}

/// Runs the controller as a host would until `until`; Jobs run `run` long and succeed unless
/// `fails` says otherwise for their index.
struct Sim {
    cj: CronJob,
    tz: TimeZone,
    now: Timestamp,
    jobs: Vec<SimJob>,
    created: Vec<(String, Timestamp)>,
    notes: Vec<Note>,
    max_active: usize,
    /// Whether a Job was ever created while another was active (Replace checks this).
    overlapped: bool,
}

impl Sim {
    fn new(cj: CronJob, tz: &str) -> Sim {
        Sim {
            cj,
            tz: TimeZone::get(tz).unwrap(),
            now: T0.parse().unwrap(),
            jobs: Vec::new(),
            created: Vec::new(),
            notes: Vec::new(),
            max_active: 0,
            overlapped: false,
        }
    }

    fn children(&self) -> Vec<ChildJob> {
        self.jobs.iter().map(|j| j.child.clone()).collect()
    }

    fn run(&mut self, until: Timestamp, run: SignedDuration, fails: impl Fn(usize) -> bool) {
        while self.now <= until {
            for j in &mut self.jobs {
                if j.child.finished.is_none() && j.ends <= self.now {
                    j.child.finished = Some((j.success, j.ends));
                }
            }
            let plan = reconcile(&self.cj, &self.children(), self.now, &self.tz);
            self.jobs.retain(|j| !plan.delete.contains(&j.child.uid));
            self.cj.status = plan.status;
            self.notes.extend(plan.notes);
            if let Some(new) = plan.create {
                let running = self
                    .jobs
                    .iter()
                    .filter(|j| j.child.finished.is_none())
                    .count();
                self.overlapped |= running > 0;
                let index = self.created.len();
                self.created.push((new.name.clone(), new.scheduled));
                self.cj.status.active.push(ObjectReference {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    name: new.name.clone(),
                    namespace: "default".into(),
                    uid: new.name.clone(),
                });
                self.jobs.push(SimJob {
                    child: ChildJob {
                        name: new.name.clone(),
                        uid: new.name,
                        start: Some(self.now),
                        finished: None,
                    },
                    ends: self.now + run,
                    success: !fails(index),
                });
            }
            let active = self
                .jobs
                .iter()
                .filter(|j| j.child.finished.is_none())
                .count();
            self.max_active = self.max_active.max(active);
            // Wake at the requeue time or the next Job end, whichever comes first.
            let mut next = plan
                .requeue_after
                .map(|d| self.now + SignedDuration::try_from(d).unwrap());
            for j in self.jobs.iter().filter(|j| j.child.finished.is_none()) {
                next = Some(next.map_or(j.ends, |n| n.min(j.ends)));
            }
            match next {
                Some(n) if n > self.now => self.now = n,
                Some(_) => self.now += SignedDuration::from_millis(100),
                None => break,
            }
        }
    }

    fn reasons(&self, reason: &str) -> usize {
        self.notes.iter().filter(|n| n.reason == reason).count()
    }
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn a_day_of_every_minute_creates_one_job_a_minute_named_by_minute() {
    let mut sim = Sim::new(cronjob(""), "UTC");
    sim.run(
        at("2026-11-24T10:00:30Z"),
        SignedDuration::from_secs(20),
        |_| false,
    );
    assert_eq!(sim.created.len(), 24 * 60);
    let (name, t) = &sim.created[0];
    assert_eq!(*t, at("2026-11-23T10:01:00Z"));
    assert_eq!(name, &format!("hello-{}", t.as_second() / 60));
    for w in sim.created.windows(2) {
        assert_eq!(w[1].1.duration_since(w[0].1), SignedDuration::from_mins(1));
    }
    // History: 3 successful kept, none failed.
    assert_eq!(
        sim.jobs
            .iter()
            .filter(|j| j.child.finished.is_some())
            .count(),
        3
    );
    assert!(sim.cj.status.last_successful_time.is_some());
    assert_eq!(sim.reasons("SuccessfulCreate"), 24 * 60);
}

#[test]
fn concurrency_policies_allow_forbid_replace() {
    let long = SignedDuration::from_secs(150);
    let until = at("2026-11-23T11:00:30Z");
    let mut allow = Sim::new(cronjob(""), "UTC");
    allow.run(until, long, |_| false);
    assert!(
        allow.max_active >= 3,
        "Allow overlaps: {}",
        allow.max_active
    );
    assert_eq!(allow.created.len(), 60);

    let mut forbid = Sim::new(cronjob("  concurrencyPolicy: Forbid"), "UTC");
    forbid.run(until, long, |_| false);
    assert_eq!(forbid.max_active, 1, "Forbid never has two active Jobs");
    assert!(forbid.reasons("JobAlreadyActive") > 0);
    assert!(forbid.created.len() < 60);

    let mut replace = Sim::new(cronjob("  concurrencyPolicy: Replace"), "UTC");
    replace.run(until, long, |_| false);
    assert_eq!(replace.max_active, 1, "Replace ends the old Job first");
    assert!(!replace.overlapped);
    assert_eq!(replace.created.len(), 60);
    assert!(replace.reasons("SuccessfulDelete") >= 59);
}

#[test]
fn history_limits_hold_after_many_runs() {
    let mut sim = Sim::new(
        cronjob("  successfulJobsHistoryLimit: 2\n  failedJobsHistoryLimit: 1"),
        "UTC",
    );
    sim.run(
        at("2026-11-23T13:00:30Z"),
        SignedDuration::from_secs(5),
        |i| i % 3 == 0,
    );
    let kept = |success: bool| {
        sim.jobs
            .iter()
            .filter(|j| j.child.finished.is_some_and(|(s, _)| s == success))
            .count()
    };
    assert_eq!((kept(true), kept(false)), (2, 1));
    assert_eq!(sim.created.len(), 180);
}

#[test]
fn missed_schedules_beyond_the_starting_deadline_are_skipped() {
    // The host was down from 10:00:30 to 10:10:40: with a 30 s deadline the 10:10 run is
    // too late and skipped; the next starts at 10:11.
    let mut cj = cronjob("  startingDeadlineSeconds: 30");
    cj.status.last_schedule_time = Some(at("2026-11-23T10:00:00Z"));
    let plan = reconcile(&cj, &[], at("2026-11-23T10:10:40Z"), &TimeZone::UTC);
    assert_eq!(plan.create, None);
    assert_eq!(plan.requeue_after, Some(Duration::from_millis(20_100)));
    // With 60 s, the 10:10 run is still on time.
    cj.spec.starting_deadline_seconds = Some(60);
    let plan = reconcile(&cj, &[], at("2026-11-23T10:10:40Z"), &TimeZone::UTC);
    assert_eq!(
        plan.create.map(|j| j.scheduled),
        Some(at("2026-11-23T10:10:00Z"))
    );
    // Without a deadline, a run 40 s late still starts; with 10 s it is reported missed.
    cj.spec.starting_deadline_seconds = Some(10);
    let plan = reconcile(&cj, &[], at("2026-11-23T10:10:40Z"), &TimeZone::UTC);
    assert_eq!(plan.create, None);
}

#[test]
fn more_than_100_missed_warn_and_start_only_the_most_recent() {
    let mut cj = cronjob("");
    cj.status.last_schedule_time = Some(at("2026-11-23T10:00:00Z"));
    let now = at("2026-11-23T13:00:20Z");
    let plan = reconcile(&cj, &[], now, &TimeZone::UTC);
    assert!(plan.notes.iter().any(|n| {
        n.reason == "TooManyMissedTimes"
            && n.message
                .starts_with("too many missed start times. Set or decrease")
    }));
    assert_eq!(
        plan.create.map(|j| j.scheduled),
        Some(at("2026-11-23T13:00:00Z"))
    );
}

#[test]
fn schedules_that_never_fire_and_huge_deadlines_are_handled() {
    let mut cj = cronjob("  startingDeadlineSeconds: 9223372036854775807");
    let plan = reconcile(&cj, &[], at("2026-11-23T10:05:00Z"), &TimeZone::UTC);
    assert_eq!(
        plan.create.map(|j| j.scheduled),
        Some(at("2026-11-23T10:05:00Z"))
    );
    cj.spec.schedule = "0 0 30 2 *".into();
    let plan = reconcile(&cj, &[], at("2026-11-23T10:05:00Z"), &TimeZone::UTC);
    assert_eq!(plan.create, None);
    assert!(plan.notes.iter().any(|n| n.reason == "InvalidSchedule"
        && n.message == "invalid schedule: 0 0 30 2 * : time difference between two schedules is less than 1 second"));
}

#[test]
fn suspended_cronjobs_create_nothing_and_wait() {
    let plan = reconcile(
        &cronjob("  suspend: true"),
        &[],
        at("2026-11-23T10:05:00Z"),
        &TimeZone::UTC,
    );
    assert_eq!((plan.create, plan.requeue_after), (None, None));
}

#[test]
fn schedules_follow_the_time_zone_across_dst() {
    // 02:30 New York time: 2026-03-08 has none (clocks skip 02:00-03:00).
    let mut cj = cronjob("  timeZone: America/New_York");
    cj.spec.schedule = "30 2 * * *".into();
    cj.metadata.creation_timestamp = Some(at("2026-03-06T12:00:00Z"));
    let mut sim = Sim::new(cj, "America/New_York");
    sim.now = at("2026-03-06T12:00:00Z");
    sim.run(
        at("2026-03-10T12:00:00Z"),
        SignedDuration::from_secs(5),
        |_| false,
    );
    let days: Vec<String> = sim
        .created
        .iter()
        .map(|(_, t)| {
            t.to_zoned_datetime(sim.tz.clone())
                .strftime("%m-%d %H:%M %z")
                .to_string()
        })
        .collect();
    assert_eq!(
        days,
        [
            "03-07 02:30 -0500",
            "03-09 02:30 -0400",
            "03-10 02:30 -0400"
        ]
    );
}
