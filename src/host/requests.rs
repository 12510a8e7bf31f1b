//! Work the host does for other processes and for the TTL controller: deletions requested
//! through the state database, and Jobs past their `ttlSecondsAfterFinished`.

use super::*;

impl Host {
    /// Carries out requests that other `wasmjob` processes left in the state database.
    pub(super) fn serve_requests(&mut self) {
        let Some(db) = self.db.as_ref() else { return };
        let requests = match db.requests() {
            Ok(r) => r,
            Err(e) => {
                self.store_error.get_or_insert(e);
                return;
            }
        };
        for req in requests {
            if req.verb == "delete" && req.kind == "Job" {
                self.delete_job(&req.uid, &req.name, req.option == "orphan", Some(req.id));
            } else if req.verb == "patch" && req.kind == "Job" {
                self.patch_job(&req);
            } else if req.verb == "delete" && req.kind == "Pod" && req.option == "stop" {
                self.stop_pod(&req);
            } else if req.verb == "delete" && req.kind == "Pod" {
                self.delete_pod(&req);
            } else if req.verb == "delete" && req.kind == "CronJob" {
                self.delete_cronjob(&req);
            } else {
                self.done_requests.push(req.id);
            }
        }
    }

    /// `wasmjob delete pod` of a pod no running Job owns: stops it if it still runs here.
    pub(super) fn delete_pod(&mut self, req: &Request) {
        self.commit(false);
        if let Some(p) = self.store.pods.iter().position(|e| e.has_uid(&req.uid)) {
            self.store.pods[p].pod_mut().metadata.deletion_timestamp = Some(self.clock.now());
            self.deleted.insert(req.uid.clone());
            self.kill(p, pods::REASON_DELETED);
        }
        let Some(db) = self.db.as_mut() else { return };
        if let Err(e) = db.delete_pod(&req.uid, Some(req.id)) {
            self.store_error.get_or_insert(e);
        }
    }

    /// `wasmjob delete pod` of a running pod of a Job this host runs: the pod is interrupted
    /// (terminating until it stops) and then replaced as the Job's `podReplacementPolicy`
    /// says. It stays recorded, with its deletion time, because the Job counts it.
    pub(super) fn stop_pod(&mut self, req: &Request) {
        let found = self
            .store
            .pods
            .iter()
            .position(|e| e.has_uid(&req.uid) && !pods::is_finished(e.pod()));
        if let Some(p) = found
            && self.pods[p].kill.is_some()
        {
            let now = self.clock.now();
            self.store.pods[p].pod_mut().metadata.deletion_timestamp = Some(now);
            self.kill(p, pods::REASON_DELETED);
            self.touch_pod(p);
            let container = self.store.pods[p].pod().spec.containers[0].name.clone();
            self.event(
                "Pod",
                p,
                "Normal",
                "Killing",
                format!("Stopping container {container}"),
                now,
            );
            self.emit(|h| h.pod_change(p));
            let j = self.store.pods[p].job;
            self.jobs[j].requeue_at = Some(self.last_turn);
        }
        self.done_requests.push(req.id);
    }

    /// `wasmjob patch job` while this host runs: `spec.suspend` (the only field that may
    /// change), applied at once.
    pub(super) fn patch_job(&mut self, req: &Request) {
        let suspend = match req.option.as_str() {
            "suspend=true" => true,
            "suspend=false" => false,
            _ => {
                self.done_requests.push(req.id);
                return;
            }
        };
        if let Some(j) = self.store.jobs.iter().position(|j| j.uid() == req.uid) {
            self.store.jobs[j].spec.suspend = Some(suspend);
            self.jobs[j].requeue_at = Some(self.last_turn);
            self.touch_job(j);
        }
        self.done_requests.push(req.id);
    }

    /// Deletes the Jobs whose `ttlSecondsAfterFinished` has run out, with their pods.
    pub(super) fn collect_expired(&mut self) {
        let Some(db) = self.db.as_ref() else { return };
        match db.expired_jobs(self.clock.now()) {
            Ok(expired) => {
                for (uid, name) in expired {
                    self.delete_job(&uid, &name, false, None);
                }
            }
            Err(e) => {
                self.store_error.get_or_insert(e);
            }
        }
    }

    /// `wasmjob delete job` (request `request`) or the TTL controller while this host runs:
    /// terminates the Job's pods (unless orphaned) and removes it from the store, with the
    /// request, in one transaction; nothing of it is written again.
    pub(super) fn delete_job(&mut self, uid: &str, name: &str, orphan: bool, request: Option<i64>) {
        // Commit first so that the deletion sees every pod this host created.
        self.commit(false);
        let found = self.store.jobs.iter().position(|j| j.uid() == uid);
        if request.is_some() {
            self.store.deleted_by_user.insert(uid.to_string());
        }
        let now = self.clock.now();
        if let Some(j) = found.filter(|&j| !self.jobs[j].deleted) {
            let state = &mut self.jobs[j];
            state.deleted = true;
            state.requeue_at = None;
            self.store.jobs[j].metadata.deletion_timestamp = Some(now);
            self.deleted.insert(uid.to_string());
            let pods: Vec<usize> = (0..self.store.pods.len())
                .filter(|&p| self.store.pods[p].job == j)
                .collect();
            for p in pods {
                let meta = &mut self.store.pods[p].pod_mut().metadata;
                if orphan {
                    // Orphans keep running and are saved as pods without an owner.
                    meta.owner_references = Default::default();
                    self.touch_pod(p);
                } else {
                    meta.deletion_timestamp = Some(now);
                    self.deleted.insert(meta.uid.clone().unwrap_or_default());
                    self.kill(p, pods::REASON_DELETED);
                }
            }
            self.emit(|_| Change::JobDeleted { name: name.into() });
        }
        let Some(db) = self.db.as_mut() else { return };
        if let Err(e) = db.delete_job(uid, orphan, request) {
            self.store_error.get_or_insert(e);
        }
    }
}
