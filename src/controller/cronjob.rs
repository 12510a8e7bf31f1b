//! The CronJob controller's decision, mirroring `syncCronJob` in kubernetes/kubernetes
//! pkg/controller/cronjob (cronjob_controllerv2.go and utils.go): a pure function of the
//! CronJob, its Jobs and `now` that says which Job to create, which to delete (Replace,
//! history limits), the new status, events, and when to look again.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::job::Note;
use crate::api::cronjob::{CronJob, CronJobStatus};
use crate::schedule::Schedule;

/// Slack added to the next schedule time before looking again (`nextScheduleDelta`).
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// A Job of the CronJob, as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildJob {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// When it started (`status.startTime`), for the history's order.
    pub start: Option<Timestamp>,
    /// How it finished: `(succeeded, when)`.
    pub finished: Option<(bool, Timestamp)>,
}

/// A Job to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// `<cronjob>-<scheduled time in minutes>`.
    pub name: String,
    /// The schedule time it is for.
    pub scheduled: Timestamp,
}

/// What the host must do after a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct CronPlan {
    /// Jobs to delete (with their pods), by uid: Replace, history limits.
    pub delete: Vec<String>,
    /// The Job to create (added to `status.active` by the host once it has a uid).
    pub create: Option<NewJob>,
    /// The new status.
    pub status: CronJobStatus,
    /// Events to record on the CronJob.
    pub notes: Vec<Note>,
    /// Look again after this long (the next schedule time); `None` when suspended.
    pub requeue_after: Option<Duration>,
}

fn note(type_: &'static str, reason: &'static str, message: String) -> Note {
    Note {
        type_,
        reason,
        message,
    }
}

/// The name of the Job for schedule time `t` (`getJobName`: minutes since the epoch).
pub fn job_name(cronjob: &str, t: Timestamp) -> String {
    format!("{cronjob}-{}", t.as_second().div_euclid(60))
}

/// Time `t` as Kubernetes prints it in events (Go's RFC 1123 with zone).
fn rfc1123(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

/// `mostRecentScheduleTime`: the earliest time to consider, the most recent schedule time
/// in (earliest, now], and roughly how many schedule times were missed.
fn most_recent(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    tz: &TimeZone,
    with_deadline: bool,
) -> Result<(Timestamp, Option<Timestamp>, i64), String> {
    let mut earliest = cj
        .status
        .last_schedule_time
        .or(cj.metadata.creation_timestamp)
        .unwrap_or(now);
    // A deadline too large to subtract is no deadline.
    if with_deadline
        && let Some(d) = cj.spec.starting_deadline_seconds
        && let Ok(deadline) = now.checked_sub(SignedDuration::from_secs(d))
        && deadline > earliest
    {
        earliest = deadline;
    }
    // A schedule that never fires: robfig returns the zero time twice, which Kubernetes
    // reports as follows.
    let Some(t1) = sched.next(earliest, tz) else {
        return Err("time difference between two schedules is less than 1 second".into());
    };
    if now < t1 {
        return Ok((earliest, None, 0));
    }
    let Some(t2) = sched.next(t1, tz) else {
        return Ok((earliest, Some(t1), 1));
    };
    if now < t2 {
        return Ok((earliest, Some(t1), 1));
    }
    // As Kubernetes does: estimate the count from the first interval...
    let between = t2.duration_since(t1).as_secs_f64().round() as i64;
    if between < 1 {
        return Err("time difference between two schedules is less than 1 second".into());
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed = elapsed / between + 1;
    // ...and find the most recent time exactly (irregular schedules too), stepping from a
    // schedule time close before it when many were missed.
    let mut recent = t1;
    if missed > 1000 {
        let near = t1 + SignedDuration::from_secs((missed - 3) * between);
        if let Some(n) = sched.next(near - SignedDuration::from_secs(1), tz)
            && n <= now
        {
            recent = n;
        }
    }
    while let Some(n) = sched.next(recent, tz) {
        if n > now {
            break;
        }
        recent = n;
    }
    Ok((earliest, Some(recent), missed))
}

/// `nextScheduleTimeDuration`: how long until the next schedule time (plus slack).
fn next_after(cj: &CronJob, now: Timestamp, sched: &Schedule, tz: &TimeZone) -> Option<Duration> {
    let (earliest, recent, missed) = most_recent(cj, now, sched, tz, false).ok()?;
    let base = match recent {
        Some(t) => t,
        None if missed == 0 => earliest,
        None => return None,
    };
    let next = sched.next(base, tz)?;
    let wait = next.duration_since(now).unsigned_abs() + NEXT_SCHEDULE_DELTA;
    Some(if next < now {
        NEXT_SCHEDULE_DELTA
    } else {
        wait
    })
}

/// One pass of the CronJob controller. `tz` is the schedule's zone (`spec.timeZone`, or the
/// host's own).
pub fn reconcile(cj: &CronJob, jobs: &[ChildJob], now: Timestamp, tz: &TimeZone) -> CronPlan {
    let mut status = cj.status.clone();
    let mut plan = CronPlan {
        delete: Vec::new(),
        create: None,
        status: CronJobStatus::default(),
        notes: Vec::new(),
        requeue_after: None,
    };
    // Fold finished Jobs out of the active list.
    for j in jobs {
        let active = status.active.iter().any(|a| a.uid == j.uid);
        match j.finished {
            Some((success, at)) => {
                if active {
                    status.active.retain(|a| a.uid != j.uid);
                    let condition = if success { "Complete" } else { "Failed" };
                    plan.notes.push(note(
                        "Normal",
                        "SawCompletedJob",
                        format!("Saw completed job: {}, condition: {condition}", j.name),
                    ));
                }
                if success && status.last_successful_time.is_none_or(|t| at > t) {
                    status.last_successful_time = Some(at);
                }
            }
            None if !active => plan.notes.push(note(
                "Warning",
                "UnexpectedJob",
                format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    j.name
                ),
            )),
            None => {}
        }
    }
    let missing: Vec<String> = status
        .active
        .iter()
        .filter(|a| !jobs.iter().any(|j| j.uid == a.uid))
        .map(|a| a.name.clone())
        .collect();
    for name in missing {
        plan.notes.push(note(
            "Normal",
            "MissingJob",
            format!("Active job went missing: {name}"),
        ));
        status.active.retain(|a| a.name != name);
    }
    // History limits: the oldest finished Jobs beyond them go.
    for (want_success, limit) in [
        (true, cj.spec.successful_jobs_history_limit),
        (false, cj.spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut done: Vec<&ChildJob> = jobs
            .iter()
            .filter(|j| j.finished.is_some_and(|(s, _)| s == want_success))
            .collect();
        let excess = done
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        // byJobStartTime: oldest first; a Job that never started sorts by name, last.
        done.sort_by(|a, b| match (a.start, b.start) {
            (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.name.cmp(&b.name)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.name.cmp(&b.name),
        });
        for j in done.into_iter().take(excess) {
            plan.delete.push(j.uid.clone());
            plan.notes.push(note(
                "Normal",
                "SuccessfulDelete",
                format!("Deleted job {}", j.name),
            ));
        }
    }
    if cj.metadata.deletion_timestamp.is_some() || cj.spec.suspend == Some(true) {
        plan.status = status;
        return plan;
    }
    let sched = match Schedule::parse_standard(&cj.spec.schedule) {
        Ok((s, _)) => s,
        Err(e) => {
            plan.notes.push(note(
                "Warning",
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", cj.spec.schedule),
            ));
            plan.status = status;
            return plan;
        }
    };
    // Decide on the most recent unmet schedule time with the status as it now stands.
    let mut view = cj.clone();
    view.status = status.clone();
    plan.requeue_after = next_after(&view, now, &sched, tz);
    let scheduled = match most_recent(&view, now, &sched, tz, true) {
        Ok((_, t, missed)) => {
            if missed > 100 {
                plan.notes.push(note(
                    "Warning",
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
                        .into(),
                ));
            }
            t
        }
        Err(e) => {
            plan.notes.push(note(
                "Warning",
                "InvalidSchedule",
                format!("invalid schedule: {} : {e}", cj.spec.schedule),
            ));
            None
        }
    };
    let Some(scheduled) = scheduled else {
        plan.status = status;
        return plan;
    };
    let too_late = cj.spec.starting_deadline_seconds.is_some_and(|d| {
        scheduled
            .checked_add(SignedDuration::from_secs(d))
            .is_ok_and(|latest| latest < now)
    });
    if too_late {
        plan.notes.push(note(
            "Warning",
            "MissSchedule",
            format!(
                "Missed scheduled time to start a job: {}",
                rfc1123(scheduled, &TimeZone::UTC)
            ),
        ));
        plan.status = status;
        return plan;
    }
    let name = job_name(cj.name(), scheduled);
    if status.active.iter().any(|a| a.name == name) || status.last_schedule_time == Some(scheduled)
    {
        plan.status = status;
        return plan;
    }
    let policy = cj.spec.concurrency_policy.as_deref().unwrap_or("Allow");
    if policy == "Forbid" && !status.active.is_empty() {
        // Not recorded as scheduled: it starts late if the running Job ends in time.
        plan.notes.push(note(
            "Normal",
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
                .into(),
        ));
        plan.status = status;
        return plan;
    }
    if policy == "Replace" {
        for a in std::mem::take(&mut status.active) {
            plan.notes.push(note(
                "Normal",
                "SuccessfulDelete",
                format!("Deleted job {}", a.name),
            ));
            plan.delete.push(a.uid);
        }
    }
    plan.notes.push(note(
        "Normal",
        "SuccessfulCreate",
        format!("Created job {name}"),
    ));
    status.last_schedule_time = Some(scheduled);
    plan.create = Some(NewJob { name, scheduled });
    plan.status = status;
    plan
}

#[cfg(test)]
#[path = "cronjob_tests.rs"]
mod tests;
