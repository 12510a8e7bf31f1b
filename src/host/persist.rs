//! Making the host's state durable: what changed since the last commit is written in one
//! transaction (with queue lease settlements) before the pods it created start; changes that
//! start no pod wait at most [`COMMIT_DELAY`] for the next commit.

use super::*;

impl Host {
    /// A run of pod `p` ended: its queue leases are acknowledged (success) or returned, in
    /// the commit that records how the run ended.
    pub(super) fn settle_leases(&mut self, p: usize, success: bool) {
        let Some((req, broker)) = &self.jobs[self.store.pods[p].job].queues else {
            return;
        };
        let pod = self.store.pods[p].pod();
        let Some(uid) = &pod.metadata.uid else {
            return;
        };
        // Leases belong to one container run (`UID/RUN`): the next run's never go with this one.
        let run = pod
            .status
            .container_statuses
            .first()
            .map_or(0, |c| pods::runs(c) - 1)
            .max(0);
        let uid = queue::holder(uid, run);
        if broker.settles_in_store() {
            self.settle.push((uid, success));
        } else {
            self.outbox.push(PendingSettle {
                holder: uid,
                url: req.url.clone(),
                queues: req.queues.clone(),
                success,
            });
        }
    }

    /// Carries out the external settlements just committed; each one done is dropped from
    /// the outbox with the next commit (a host that dies first leaves it to the next host).
    pub(super) fn settle_external(&mut self, done: Vec<PendingSettle>) {
        for p in done {
            let broker = self.jobs.iter().find_map(|j| {
                j.queues
                    .as_ref()
                    .filter(|(r, _)| r.url == p.url)
                    .map(|(_, b)| b.clone())
            });
            let Some(broker) = broker else { continue };
            match broker.settle(&p.holder, &p.queues, p.success) {
                Ok(()) => self.settled.push(p.holder),
                Err(e) => tracing::warn!(error = %e, holder = p.holder, "settling leases failed"),
            }
        }
    }

    pub(super) fn touch_job(&mut self, j: usize) {
        // Without a state database nothing is saved: see `touch_pod`.
        if self.db.is_some() && !self.jobs[j].dirty {
            self.jobs[j].dirty = true;
            self.dirty_jobs.push(j);
        }
    }

    pub(super) fn touch_pod(&mut self, p: usize) {
        // Without a state database nothing is saved, and a pod's turn need not track it.
        if self.db.is_some() && !self.pods[p].dirty {
            self.pods[p].dirty = true;
            self.dirty_pods.push(p);
        }
    }

    /// Marks running pods with new log output so that it is saved with the next commit.
    pub(super) fn touch_running_pods(&mut self) {
        let active: Vec<usize> = self
            .jobs
            .iter()
            .flat_map(|j| j.active.iter().map(|a| a.id))
            .collect();
        for p in active {
            let logs = &self.store.pods[p].logs;
            if logs
                .iter()
                .skip(self.pods[p].unsaved_run)
                .any(|log| log.has_unsaved())
            {
                self.touch_pod(p);
            }
        }
    }

    /// Whether anything waits to be written to the state database.
    pub(super) fn unsaved(&self) -> bool {
        self.db.is_some()
            && (!self.dirty_jobs.is_empty()
                || !self.dirty_crons.is_empty()
                || !self.dirty_pods.is_empty()
                || self.events.saved < self.store.events.len()
                || !self.events.changed.is_empty()
                || !self.done_requests.is_empty()
                || !self.settle.is_empty()
                || !self.outbox.is_empty()
                || !self.settled.is_empty())
    }

    /// Gives the dirty lists back, emptied, so that a turn per pod does not allocate them
    /// anew.
    fn keep_dirty_lists(&mut self, jobs: Vec<usize>, crons: Vec<usize>, pods: Vec<usize>) {
        for (list, mut taken) in [
            (&mut self.dirty_jobs, jobs),
            (&mut self.dirty_crons, crons),
            (&mut self.dirty_pods, pods),
        ] {
            if list.is_empty() {
                taken.clear();
                *list = taken;
            }
        }
    }

    /// Writes what changed since the last commit in one transaction. After a failure the
    /// host stops (terminating its pods); `last` makes the final attempt after that.
    pub(super) fn commit(&mut self, last: bool) {
        if self.db.is_none() {
            // Nothing is saved (nor tracked: see `touch_pod`); what a commit would settle
            // is settled now. This runs every turn.
            self.events.saved = self.store.events.len();
            self.events.changed.clear();
            self.settle.clear();
            if !self.outbox.is_empty() {
                let outbox = std::mem::take(&mut self.outbox);
                self.settle_external(outbox);
            }
            self.settled.clear();
            return;
        }
        let dirty_jobs = std::mem::take(&mut self.dirty_jobs);
        let dirty_crons = std::mem::take(&mut self.dirty_crons);
        let dirty_pods = std::mem::take(&mut self.dirty_pods);
        for &j in &dirty_jobs {
            self.jobs[j].dirty = false;
        }
        for &c in &dirty_crons {
            self.crons[c].dirty = false;
        }
        for &p in &dirty_pods {
            self.pods[p].dirty = false;
        }
        // Always there: a host without a database returned above.
        let Some(db) = self.db.as_mut() else {
            return;
        };
        if self.store_error.is_some() && !last {
            return;
        }
        self.last_commit = Instant::now();
        let mut batch = Batch::default();
        let deleted = |uid: Option<&str>| {
            !self.deleted.is_empty() && self.deleted.contains(uid.unwrap_or_default())
        };
        for &j in &dirty_jobs {
            let state = &mut self.jobs[j];
            let job = &self.store.jobs[j];
            if deleted(job.metadata.uid.as_deref()) {
                continue;
            }
            batch.jobs.push(job);
            if let Some(source) = state.source.take() {
                batch.job_sources.push((job.uid().to_string(), source));
            }
        }
        for &c in &dirty_crons {
            let cj = &self.store.cronjobs[c];
            if deleted(cj.metadata.uid.as_deref()) {
                continue;
            }
            batch.cronjobs.push(cj);
            if let Some(source) = self.crons[c].take_source() {
                batch.job_sources.push((cj.uid().to_string(), source));
            }
        }
        for &p in &dirty_pods {
            let entry = &self.store.pods[p];
            let pod = entry.pod();
            if deleted(pod.metadata.uid.as_deref()) {
                continue;
            }
            batch.pods.push(pod);
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let state = &mut self.pods[p];
            for (run, log) in entry.logs.iter().enumerate().skip(state.unsaved_run) {
                let data = log.take_unsaved();
                if !data.is_empty() {
                    batch.logs.push(LogChunk {
                        pod_uid: uid.clone(),
                        run: i32::try_from(run).unwrap_or(i32::MAX),
                        data,
                    });
                }
            }
            // The last run may still write; earlier ones are complete.
            state.unsaved_run = entry.logs.len().saturating_sub(1);
        }
        for e in &self.store.events[self.events.saved..] {
            if !deleted(Some(&e.uid)) {
                batch.events.push(&**e);
            }
        }
        // Changes to events already saved (a count, a combined event's newest message) are
        // written at most every COMMIT_DELAY: a wide Job's combined `SuccessfulCreate`
        // changes with every pod, and its row and key were two of the ~11 pages each
        // commit wrote. `turn` brings a commit once they are due.
        let events_due = last
            || (self.events.changes_saved).is_none_or(|t| self.last_commit >= t + COMMIT_DELAY);
        let changed = match events_due {
            true => {
                self.events.changes_saved = Some(self.last_commit);
                std::mem::take(&mut self.events.changed)
            }
            false => Default::default(),
        };
        for (e, (saved_message, saved_count)) in changed {
            let event = &self.store.events[e];
            if !deleted(Some(&event.uid)) {
                batch.event_changes.push(EventChange {
                    event,
                    saved_message,
                    saved_count,
                });
            }
        }
        batch.done_requests = std::mem::take(&mut self.done_requests);
        batch.settle = std::mem::take(&mut self.settle);
        let outbox = std::mem::take(&mut self.outbox);
        batch.outbox = outbox.clone();
        batch.settled = std::mem::take(&mut self.settled);
        self.events.saved = self.store.events.len();
        let committed = db.commit(&batch);
        drop(batch);
        self.keep_dirty_lists(dirty_jobs, dirty_crons, dirty_pods);
        match committed {
            Ok(()) => self.settle_external(outbox),
            Err(e) => {
                tracing::error!(error = %e, "committing the host's state failed");
                self.store_error.get_or_insert(e);
            }
        }
    }
}
