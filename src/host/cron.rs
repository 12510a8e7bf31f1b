//! CronJobs in the host: each is reconciled with the pure controller
//! ([`crate::controller::cronjob`]) at its next schedule time or when one of its Jobs
//! finishes; the Jobs it creates run like any other (the template's module is compiled once
//! per CronJob).

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::time::Instant;

use super::{Change, Host, JobQueues, Reading, Rejected, absolute};
use crate::api::cronjob::{CronJob, ObjectReference, SCHEDULED_TIMESTAMP_ANNOTATION};
use crate::api::defaults::admit_job;
use crate::api::manifest::CronJobManifest;
use crate::api::types::{Job, ObjectMeta, OwnerReference};
use crate::controller::cronjob::{ChildJob, reconcile};
use crate::runtime::PreparedPod;
use crate::store::db::{JobSource, manifest_hash};

/// A CronJob accepted by the host, with its prepared Job template.
pub struct CronSubmission {
    cronjob: CronJob,
    prepared: Arc<dyn PreparedPod>,
    source: JobSource,
    queues: Option<JobQueues>,
}

impl CronSubmission {
    /// The CronJob.
    pub fn cronjob(&self) -> &CronJob {
        &self.cronjob
    }

    /// Where it came from.
    pub fn source(&self) -> &JobSource {
        &self.source
    }
}

/// Per-CronJob bookkeeping.
pub(super) struct CronState {
    prepared: Arc<dyn PreparedPod>,
    queues: Option<JobQueues>,
    tz: TimeZone,
    pub(super) requeue_at: Option<Instant>,
    source: Option<JobSource>,
    /// Jobs created by this host (for `--schedules N`).
    created: u32,
    pub(super) dirty: bool,
    pub(super) deleted: bool,
}

impl CronState {
    /// The source to record with the CronJob's first commit.
    pub(super) fn take_source(&mut self) -> Option<JobSource> {
        self.source.take()
    }
}

/// A Job for schedule time `scheduled`, as `getJobFromTemplate2` makes it.
fn job_from_template(cj: &CronJob, name: String, scheduled: Timestamp) -> Job {
    let tmpl = &cj.spec.job_template;
    let mut annotations = tmpl.metadata.annotations.clone();
    // In `spec.timeZone`, or UTC (Go's LoadLocation("")), formatted as Go's RFC 3339 (`Z`
    // for a zero offset).
    let zone = cj
        .spec
        .time_zone
        .as_deref()
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or(TimeZone::UTC);
    let zoned = scheduled.to_zoned_datetime(zone);
    let stamp = if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    };
    Arc::make_mut(&mut annotations).insert(SCHEDULED_TIMESTAMP_ANNOTATION.into(), stamp);
    Job {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        metadata: ObjectMeta {
            name: Some(name),
            namespace: cj.metadata.namespace.clone(),
            labels: tmpl.metadata.labels.clone(),
            annotations,
            owner_references: Arc::new(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cj.name().into(),
                uid: cj.uid().into(),
                controller: true,
                block_owner_deletion: true,
            }]),
            ..Default::default()
        },
        spec: tmpl.spec.clone(),
        status: Default::default(),
        other: Default::default(),
    }
}

/// The schedule's zone: `spec.timeZone`, else the host's own.
fn zone_of(cj: &CronJob) -> TimeZone {
    cj.spec
        .time_zone
        .as_deref()
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or_else(TimeZone::system)
}

impl Host {
    /// Prepares CronJobs' Job templates (compiles their modules once each).
    pub fn prepare_cronjobs(
        &self,
        manifests: Vec<CronJobManifest>,
    ) -> Result<Vec<CronSubmission>, Vec<Rejected>> {
        let mut ok = Vec::new();
        let mut rejected = Vec::new();
        for m in manifests {
            let probe =
                job_from_template(&m.cronjob, m.cronjob.name().into(), Timestamp::UNIX_EPOCH);
            let prepared = self
                .broker_for(&probe)
                .and_then(|queues| Ok((self.runtime.prepare(&probe, &m.base_dir)?, queues)));
            match prepared {
                Ok((prepared, queues)) => ok.push(CronSubmission {
                    source: JobSource {
                        source: m.source,
                        base_dir: absolute(&m.base_dir),
                        spec_hash: cron_hash(&m.cronjob),
                    },
                    cronjob: m.cronjob,
                    prepared,
                    queues,
                }),
                Err(errors) => rejected.push(Rejected {
                    source: m.source,
                    name: m.cronjob.name().to_string(),
                    errors: errors
                        .into_iter()
                        .map(|e| e.under("spec.jobTemplate"))
                        .collect(),
                }),
            }
        }
        if rejected.is_empty() {
            Ok(ok)
        } else {
            Err(rejected)
        }
    }

    /// Admits CronJobs (uid, creation time) and schedules them.
    pub fn submit_cronjobs(&mut self, submissions: Vec<CronSubmission>) {
        let now = self.clock.now();
        for mut s in submissions {
            s.cronjob.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
            s.cronjob.metadata.creation_timestamp = Some(now);
            let source = Some(s.source.clone());
            self.push_cronjob(s, source);
        }
    }

    /// Takes over CronJob `stored` recorded by an earlier host with its Jobs (and their
    /// pods): it goes on from its `lastScheduleTime`; unfinished Jobs resume as Jobs do.
    pub fn adopt_cronjob(
        &mut self,
        mut submission: CronSubmission,
        stored: CronJob,
        jobs: Vec<(Job, Vec<crate::api::types::Pod>)>,
    ) {
        submission.cronjob = stored;
        let prepared = submission.prepared.clone();
        let queues = submission.queues.clone();
        self.push_cronjob(submission, None);
        for (job, pods) in jobs {
            self.adopt_parts(job, prepared.clone(), queues.clone(), pods);
        }
    }

    fn push_cronjob(&mut self, s: CronSubmission, source: Option<JobSource>) {
        let c = self.store.cronjobs.len();
        self.crons.push(CronState {
            tz: zone_of(&s.cronjob),
            prepared: s.prepared,
            queues: s.queues,
            requeue_at: Some(self.last_turn),
            source,
            created: 0,
            dirty: false,
            deleted: false,
        });
        self.store.cronjobs.push(s.cronjob);
        self.touch_cron(c);
    }

    /// `wasmjob delete cronjob` while this host runs: the CronJob stops scheduling and goes,
    /// with its Jobs and their pods, in one transaction with the request.
    pub(super) fn delete_cronjob(&mut self, req: &crate::store::db::Request) {
        self.commit(false);
        if let Some(c) = self
            .store
            .cronjobs
            .iter()
            .position(|cj| cj.uid() == req.uid)
        {
            self.crons[c].deleted = true;
            self.crons[c].requeue_at = None;
            self.store.cronjobs[c].metadata.deletion_timestamp = Some(self.clock.now());
            self.deleted.insert(req.uid.clone());
            let children: Vec<(String, String)> = self
                .store
                .jobs
                .iter()
                .filter(|j| {
                    j.metadata
                        .owner_references
                        .iter()
                        .any(|o| o.controller && o.uid == req.uid)
                })
                .map(|j| (j.uid().to_string(), j.name().to_string()))
                .collect();
            for (uid, name) in children {
                self.store.deleted_by_user.insert(uid.clone());
                self.delete_job(&uid, &name, false, None);
            }
        }
        let Some(db) = self.db.as_mut() else { return };
        if let Err(e) = db.delete_cronjob(&req.uid, Some(req.id)) {
            self.store_error.get_or_insert(e);
        }
    }

    pub(super) fn touch_cron(&mut self, c: usize) {
        // Without a state database nothing is saved: see `touch_pod`.
        if self.db.is_some() && !self.crons[c].dirty {
            self.crons[c].dirty = true;
            self.dirty_crons.push(c);
        }
    }

    /// A Job of a CronJob finished: its CronJob looks again now, as Kubernetes' controller
    /// does on the Job's update.
    pub(super) fn job_finished(&mut self, j: usize) {
        let owner = self.store.jobs[j]
            .metadata
            .owner_references
            .iter()
            .find(|o| o.controller && o.kind == "CronJob")
            .map(|o| o.uid.clone());
        if let Some(uid) = owner
            && let Some(c) = self.store.cronjobs.iter().position(|cj| cj.uid() == uid)
            && !self.crons[c].deleted
        {
            self.crons[c].requeue_at = Some(self.last_turn);
        }
    }

    /// One pass of the CronJob controller for CronJob `c`, applied, as of the turn's clock
    /// reading `now`.
    pub(super) fn sync_cron(&mut self, c: usize, now: Reading) {
        if self.crons[c].deleted {
            return;
        }
        let Reading { instant, time: now } = now;
        let cj = &self.store.cronjobs[c];
        let uid = cj.uid().to_string();
        let children: Vec<ChildJob> = self
            .store
            .jobs
            .iter()
            .zip(&self.jobs)
            .filter(|(j, s)| {
                !s.deleted
                    && j.metadata
                        .owner_references
                        .iter()
                        .any(|o| o.controller && o.uid == uid)
            })
            .map(|(j, _)| ChildJob {
                name: j.name().to_string(),
                uid: j.uid().to_string(),
                start: j.status.start_time,
                finished: j.status.finished().map(|c| {
                    let at = j.status.completion_time.unwrap_or(c.last_transition_time);
                    (c.type_ == crate::api::types::COMPLETE, at)
                }),
            })
            .collect();
        let limit_reached = self
            .config
            .schedules_limit
            .is_some_and(|n| self.crons[c].created >= n);
        // Past `--schedules N` the CronJob is as good as suspended: its Jobs are still
        // followed (active list, history), nothing new is scheduled or replaced.
        let suspended;
        let view = if limit_reached {
            let mut s = cj.clone();
            s.spec.suspend = Some(true);
            suspended = s;
            &suspended
        } else {
            cj
        };
        let mut plan = reconcile(view, &children, now, &self.crons[c].tz);
        let taken = |host: &Host, name: &str| {
            let ns = host.store.cronjobs[c]
                .metadata
                .namespace
                .as_deref()
                .unwrap_or("default");
            host.store
                .jobs
                .iter()
                .zip(&host.jobs)
                .any(|(j, s)| !s.deleted && j.name() == name)
                || host
                    .db
                    .as_ref()
                    .is_some_and(|db| db.name_taken("Job", ns, name).unwrap_or(false))
        };
        if let Some(new) = plan.create.take_if(|new| taken(self, &new.name)) {
            // Job names have minute resolution: a second run in one minute cannot be
            // created, as in Kubernetes (AlreadyExists).
            plan.notes.retain(|n| n.reason != "SuccessfulCreate");
            plan.notes.push(crate::controller::job::Note {
                type_: "Warning",
                reason: "FailedCreate",
                message: format!(
                    "Error creating job: jobs.batch {:?} already exists",
                    new.name
                ),
            });
        }
        for victim in &plan.delete {
            if let Some(j) = self.store.jobs.iter().position(|j| j.uid() == victim) {
                let name = self.store.jobs[j].name().to_string();
                self.delete_job(victim, &name, false, None);
            }
        }
        for note in plan.notes {
            self.event("CronJob", c, note.type_, note.reason, note.message, now);
        }
        self.store.cronjobs[c].status = plan.status;
        if let Some(new) = plan.create {
            let mut job =
                job_from_template(&self.store.cronjobs[c], new.name.clone(), new.scheduled);
            let job_uid = uuid::Uuid::new_v4().to_string();
            admit_job(&mut job, job_uid.clone(), now);
            let reference = ObjectReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: new.name.clone(),
                namespace: job
                    .metadata
                    .namespace
                    .as_deref()
                    .unwrap_or_default()
                    .to_string(),
                uid: job_uid,
            };
            let prepared = self.crons[c].prepared.clone();
            let queues = self.crons[c].queues.clone();
            self.push_job(job, prepared, None, queues, Vec::new());
            self.store.cronjobs[c].status.active.push(reference);
            self.crons[c].created += 1;
            self.emit(|h| Change::JobCreated {
                name: new.name,
                cronjob: h.store.cronjobs[c].name().to_string(),
            });
        }
        self.crons[c].requeue_at = plan.requeue_after.map(|d| instant + d);
        self.touch_cron(c);
    }
}

/// The hash of a CronJob manifest (labels, annotations, spec) that tells a re-run of the
/// same CronJob from a changed one.
pub fn cron_hash(cj: &CronJob) -> String {
    let mut probe = Job {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        metadata: cj.metadata.clone(),
        spec: cj.spec.job_template.spec.clone(),
        status: Default::default(),
        other: Default::default(),
    };
    Arc::make_mut(&mut probe.metadata.annotations).insert(
        "wasmjob.dev/cron-spec".into(),
        serde_json::to_string(&(
            &cj.spec.schedule,
            &cj.spec.time_zone,
            &cj.spec.concurrency_policy,
            &cj.spec.starting_deadline_seconds,
            &cj.spec.suspend,
            &cj.spec.successful_jobs_history_limit,
            &cj.spec.failed_jobs_history_limit,
            &cj.spec.job_template.metadata,
        ))
        .unwrap_or_default(),
    );
    manifest_hash(&probe)
}
