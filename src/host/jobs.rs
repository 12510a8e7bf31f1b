//! The host's Job work: reconciling a Job, creating and starting its pods, terminating
//! them, and folding the pods' updates into their status.

use rand::rngs::SmallRng;

use super::*;

impl Host {
    /// While shutting down nothing is reconciled, but the Job's counters and index lists
    /// keep up with its pods, so that what is saved agrees with them.
    pub(super) fn count_pods(&mut self, j: usize) {
        let state = &self.jobs[j];
        let observed = Observed {
            active: &state.active,
            tally: &state.tally,
            counts: state.counts,
        };
        let job = &self.store.jobs[j];
        let mut status = job.status.clone();
        crate::controller::job::count_pods(&job.spec, &observed, &mut status);
        if status != job.status {
            self.store.jobs[j].status = status;
            self.touch_job(j);
        }
    }

    /// Reconciles Job `j` as of the turn's clock reading `now`.
    pub(super) fn sync_job(&mut self, j: usize, now: Reading) {
        if self.jobs[j].deleted {
            return;
        }
        let Reading { instant, time: now } = now;
        let state = &self.jobs[j];
        let observed = Observed {
            active: &state.active,
            tally: &state.tally,
            counts: state.counts,
        };
        let job = &mut self.store.jobs[j];
        // Only a state database needs to know whether the status changed.
        let old = self.db.as_ref().map(|_| job.status.clone());
        let before = job.status.conditions.len();
        let was_finished = job.status.finished().is_some();
        let status = &mut job.status;
        let plan = reconcile_status(&job.spec, status, &observed, now, &self.config.backoff);
        if old.is_some_and(|old| old != job.status) {
            self.touch_job(j);
        }
        if !was_finished && self.store.jobs[j].status.finished().is_some() {
            self.job_finished(j);
        }
        tracing::debug!(
            job = self.store.jobs[j].name(),
            active = self.jobs[j].active.len(),
            create = plan.create,
            delete = plan.delete.len(),
            requeue = ?plan.requeue_after,
            "reconciled"
        );
        self.apply_plan(j, plan, before, now, instant);
    }

    /// Carries out `plan` for Job `j`, whose status the reconcile pass set (it had `before`
    /// conditions).
    fn apply_plan(
        &mut self,
        j: usize,
        plan: Plan,
        before: usize,
        now: Timestamp,
        instant: Instant,
    ) {
        if self.config.watch {
            let job = &self.store.jobs[j];
            self.changes.extend(
                job.status.conditions[before..]
                    .iter()
                    .map(|cond| Change::Job {
                        name: job.name().to_string(),
                        condition: cond.type_.clone(),
                        reason: cond.reason.clone(),
                    }),
            );
        }
        for note in plan.notes {
            self.event("Job", j, note.type_, note.reason, note.message, now);
        }
        for p in plan.delete {
            self.kill(p, plan.delete_reason);
            let name = self.pod_name(p);
            self.event(
                "Job",
                j,
                "Normal",
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
                now,
            );
        }
        if plan.indexes.is_empty() {
            for _ in 0..plan.create {
                self.create_pod(j, now, None);
            }
        } else {
            for i in plan.indexes {
                self.create_pod(j, now, Some(i));
            }
        }
        self.jobs[j].requeue_at = plan.requeue_after.map(|d| instant + d);
    }

    /// Changes pod `p`'s entry in its Job's active list (while it has not finished), and
    /// the Job's counts with it.
    fn update_active(&mut self, p: usize, change: impl FnOnce(&mut ActivePod)) {
        let j = self.store.pods[p].job;
        let state = &mut self.jobs[j];
        if let Some(a) = state
            .active
            .get_mut(self.pods[p].slot)
            .filter(|a| a.id == p)
        {
            state.counts.remove(a);
            change(a);
            state.counts.add(a);
        }
    }

    /// Pod `p` finished: it leaves its Job's active list.
    fn remove_active(&mut self, p: usize) {
        let j = self.store.pods[p].job;
        let slot = std::mem::replace(&mut self.pods[p].slot, usize::MAX);
        let state = &mut self.jobs[j];
        if state.active.get(slot).is_some_and(|a| a.id == p) {
            let gone = state.active.swap_remove(slot);
            state.counts.remove(&gone);
            if let Some(moved) = state.active.get(slot) {
                self.pods[moved.id].slot = slot;
            }
        }
    }

    /// How pod `p` stands now, for live views.
    pub(super) fn pod_change(&self, p: usize) -> Change {
        let entry = &self.store.pods[p];
        // A lean pod never restarted, and is not made into a Pod for a live view.
        let restarts = match entry.is_lean() {
            true => 0,
            false => (entry.pod().status.container_statuses.first()).map_or(0, |c| c.restart_count),
        };
        Change::Pod {
            name: entry.name().to_string(),
            status: entry.status_column(),
            restarts,
        }
    }

    /// Keeps a change for `on_change`, built only if anyone watches.
    pub(super) fn emit(&mut self, change: impl FnOnce(&Host) -> Change) {
        if self.config.watch {
            let change = change(self);
            self.changes.push(change);
        }
    }

    pub(super) fn pod_name(&self, p: usize) -> String {
        self.store.pods[p].name().to_string()
    }

    pub(super) fn kill(&mut self, p: usize, reason: &str) {
        if let Some(kill) = self.pods[p].kill.take() {
            tracing::debug!(pod = p, reason, "terminating");
            self.update_active(p, |a| a.terminating = true);
            // A pod that already finished ignores it (its task may run another pod by then).
            kill.kill(p, reason.to_string());
        }
    }

    /// The state database's pod names under Job `j`'s prefix (`<job>-`, which an Indexed
    /// Job's `<job>-<index>-` names share), read once per Job so that its thousands of pods
    /// do not query it one by one.
    fn load_stored_names(&mut self, j: usize) {
        let Some(db) = &self.db else { return };
        if std::mem::replace(&mut self.jobs[j].stored_names_loaded, true) {
            return;
        }
        let job = &self.store.jobs[j];
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        // A failed lookup only risks a collision, which the commit would then report.
        let stored = db
            .names_with_prefix("Pod", namespace, &self.jobs[j].template.prefix)
            .unwrap_or_default();
        self.names.extend(stored.iter().map(|n| name_key(n)));
    }

    /// `prefix` plus five characters from Kubernetes' alphabet, unique in this host (and,
    /// once [`Host::load_stored_names`] ran for the Job, in its state database).
    pub(super) fn generate_name(&mut self, prefix: &Arc<str>) -> String {
        let sequence = match self.name_sequences.get_mut(&**prefix) {
            Some(sequence) => sequence,
            None => {
                let sequence = NameSequence::new(&mut self.rng);
                self.name_sequences
                    .entry(prefix.clone())
                    .or_insert(sequence)
            }
        };
        loop {
            let name = sequence.next(prefix);
            // Only names this host did not draw can collide with a drawn one.
            if self.names.is_empty() || !self.names.contains(&name_key(&name)) {
                return name;
            }
        }
    }

    pub(super) fn create_pod(&mut self, j: usize, now: Timestamp, index: Option<i32>) {
        self.load_stored_names(j);
        // The Job's template: a lean pod keeps it, and its prefix names the pod (cloned
        // once, rather than the prefix too).
        let template = self.jobs[j].template.clone();
        // Indexed pods are `<job>-<index>-<suffix>`.
        let indexed: Option<Arc<str>> =
            index.map(|i| pods::name_prefix(&format!("{}-{i}", self.store.jobs[j].name())).into());
        let name = self.generate_name(indexed.as_ref().unwrap_or(&template.prefix));
        let uid = pods::Uid::draw(&mut self.rng);
        // The event first, while the name is at hand: past the first few, a wide Job's
        // creations are combined into one event, and the name is not copied.
        let parts = ["Created pod: ", name.as_str()];
        let message = events::Message::Fresh(&parts);
        self.event_of("Job", j, "Normal", "SuccessfulCreate", message, now);
        let job = &self.store.jobs[j];
        let prepared = &self.jobs[j].prepared;
        // The kubelet names the pod only in the prefix of streamed logs.
        let run_name = match self.config.log_stream {
            Some(_) => name.clone(),
            None => String::new(),
        };
        // An Indexed Job's pod has its own prefix, and its index in its labels and
        // annotations (and, under backoffLimitPerIndex, its index's failures).
        let indexed = index.zip(indexed).map(|(i, prefix)| {
            let (mut labels, mut annotations) =
                (template.labels.clone(), template.annotations.clone());
            for map in [&mut annotations, &mut labels] {
                Arc::make_mut(map).insert(pods::COMPLETION_INDEX.into(), i.to_string());
            }
            if job.spec.backoff_limit_per_index.is_some() {
                for (k, v) in self.jobs[j].tally.index_annotations(i) {
                    Arc::make_mut(&mut annotations).insert(k.into(), v);
                }
            }
            pods::Indexed {
                index: i,
                prefix,
                labels,
                annotations,
            }
        });
        // A pod is lean until something reads it as a Pod.
        let lean = pods::LeanPod::new(template, name, uid, now, indexed);
        let entry = Box::new(PodEntry::lean(lean, j));
        let (labels, annotations) = entry.labels_and_annotations();
        let queues = self.jobs[j]
            .queues
            .as_ref()
            .map(|(req, broker)| QueueGrant {
                broker: broker.clone(),
                queues: req.queues.clone(),
                holder: uid.text(),
            });
        let identity = PodIdentity {
            name: entry.name(),
            namespace: job.metadata.namespace.as_deref().unwrap_or_default(),
            uid: &uid,
            labels,
            annotations,
            queues: queues.as_ref(),
        };
        // A pod of the shared sandbox gets none of its own: its task has its Job's.
        let shared = self.jobs[j].run.shared.is_some();
        let sandbox = match shared && prepared.shares_sandbox(&identity) {
            true => Ok(None),
            false => prepared.sandbox(&identity).map(Some),
        };
        let p = self.store.pods.len();
        self.store.pods.push(entry);
        let state = &mut self.jobs[j];
        let slot = state.active.len();
        let a = ActivePod {
            id: p,
            restart_count: 0,
            ready: false,
            terminating: false,
            index,
        };
        state.counts.add(&a);
        state.active.push(a);
        // The kill switch comes with the task that runs it (see `start_pods`).
        self.pods.push(PodState {
            kill: None,
            slot,
            dirty: false,
            unsaved_run: 0,
        });
        self.touch_pod(p);
        self.emit(|h| Change::Pod {
            name: h.pod_name(p),
            status: "Pending".into(),
            restarts: 0,
        });
        let run = sandbox.map(|sandbox| PodRun {
            pod: p,
            name: run_name,
            sandbox,
        });
        self.starts.push(Start { pod: p, run });
    }

    /// Starts the pods created this turn; they are in the store by now. With `keep` (the
    /// Job of the pod the caller ran, and the caller's kill switch) the first that can run is
    /// returned instead, for the caller (a pod's task) to run.
    pub(super) fn start_pods(
        &mut self,
        mut keep: Option<(usize, &Arc<KillSwitch>)>,
    ) -> Option<Successor> {
        let mut kept = None;
        // The list keeps its capacity from turn to turn.
        let mut starts = std::mem::take(&mut self.starts);
        for Start { pod, run } in starts.drain(..) {
            if self.store_error.is_some() {
                // Nothing durable knows of this pod: it never ran.
                self.updates_tx.send(PodUpdate::Finished {
                    pod,
                    exit: PodExit::Terminated(pods::REASON_SHUTDOWN.into()),
                    started: None,
                    at: self.clock.now(),
                    log: None,
                    blank: false,
                });
                continue;
            }
            match run {
                Ok(run) => match keep.take() {
                    Some((kept_job, kill)) => {
                        let j = self.store.pods[pod].job;
                        self.pods[pod].kill = Some(kill.clone());
                        // The caller's task already holds its Job's template.
                        let template = (kept_job != j).then(|| self.jobs[j].run.clone());
                        kept = Some(Successor { run, template });
                    }
                    None => {
                        let template = self.jobs[self.store.pods[pod].job].run.clone();
                        let reporter =
                            Reporter::new(self.updates_tx.clone(), self.shared.upgrade());
                        let (clock, kill) = (self.clock.clone(), Arc::new(KillSwitch::default()));
                        self.pods[pod].kill = Some(kill.clone());
                        tokio::spawn(run_pod(run, template, clock, reporter, kill));
                    }
                },
                Err(msg) => {
                    // Reported like a container that could not start: the pod fails at once.
                    self.updates_tx.send(PodUpdate::Finished {
                        pod,
                        exit: PodExit::CannotRun(msg),
                        started: None,
                        at: self.clock.now(),
                        log: None,
                        blank: false,
                    });
                }
            }
        }
        self.starts = starts;
        kept
    }

    /// A run of pod `p` started at `at`, writing to `log`.
    fn started(&mut self, p: usize, at: Timestamp, log: Arc<crate::logs::PodLog>) {
        let entry = &mut self.store.pods[p];
        entry.logs.push(log);
        if !entry.lean_mut().is_some_and(|lean| lean.start(at)) {
            pods::started(entry.pod_mut(), at);
        }
    }

    pub(super) fn apply(&mut self, update: PodUpdate) {
        let (p, finished) = match update {
            PodUpdate::Started { pod: p, at, log } => {
                self.started(p, at, log);
                self.update_active(p, |a| a.ready = true);
                (p, None)
            }
            PodUpdate::Restarting {
                pod: p,
                exit,
                started,
                at,
            } => {
                pods::restarting(self.store.pods[p].pod_mut(), &exit, started, at);
                self.update_active(p, |a| {
                    a.ready = false;
                    a.restart_count += 1;
                });
                self.settle_leases(p, false);
                self.event(
                    "Pod",
                    p,
                    "Warning",
                    "BackOff",
                    "Back-off restarting failed container".into(),
                    at,
                );
                (p, None)
            }
            PodUpdate::Finished {
                pod: p,
                exit,
                started,
                at,
                log,
                blank,
            } => {
                if let Some(log) = log {
                    // A run that ended before it waited: its start comes with its end.
                    self.started(p, started.unwrap_or(at), log);
                }
                let success = exit.success();
                let entry = &mut self.store.pods[p];
                match entry.lean_mut() {
                    Some(lean) if lean.can_finish() => lean.finish(exit, started, at),
                    _ => pods::finished(entry.pod_mut(), &exit, started, at),
                }
                // A last run that wrote nothing keeps the host's one blank log rather than
                // its own: a wide Job of quiet pods keeps one allocation fewer per pod.
                // Nothing writes to a run's log once it has finished (its output, the
                // kubelet's notes and `finish`, which tells `blank`, all come before this
                // update), so no pod's output can land in the shared log.
                if blank && let Some(log) = self.store.pods[p].logs.last_mut() {
                    *log = self.blank_log.clone();
                }
                self.settle_leases(p, success);
                (p, Some(at))
            }
        };
        self.touch_pod(p);
        self.emit(|h| h.pod_change(p));
        let j = self.store.pods[p].job;
        if let Some(at) = finished {
            self.remove_active(p);
            self.pods[p].kill = None;
            let store = &mut self.store;
            let (spec, entry) = (&store.jobs[j].spec, &mut store.pods[p]);
            let tally = &mut self.jobs[j].tally;
            // A lean pod's success counts without making its Pod.
            match entry.lean_mut().filter(|lean| lean.succeeded()) {
                Some(lean) => tally.pod_succeeded(lean.index()),
                None => tally.finished(spec, entry.pod_mut(), at),
            }
        }
        // Any change may move the Job on: reconcile it in this turn of the loop.
        self.jobs[j].requeue_at = Some(self.last_turn);
    }
}

/// What [`Host::names`] keeps of a pod name: a hash. Two names with one hash (one chance in
/// 2^64) only make the second pod draw another name.
pub(super) fn name_key(name: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(name)
}

/// The suffixes of one name prefix: every one of the 27^5 five-character suffixes once, in
/// an order that looks random (`a·n + b` modulo 27^5, `a` prime to it, both drawn per
/// prefix), so that a drawn name needs no look-up among the names drawn before it. That
/// look-up, in a set as large as the host's pods, cost a cache miss per pod.
pub(super) struct NameSequence {
    factor: u64,
    offset: u64,
    next: u64,
}

impl NameSequence {
    const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";
    /// How many five-character suffixes there are.
    const SPACE: u64 = 27u64.pow(5);

    pub(super) fn new(rng: &mut SmallRng) -> Self {
        // 27^5 is a power of 3: a factor is prime to it unless divisible by 3.
        let factor = 3 * rng.random_range(0..Self::SPACE / 3) + rng.random_range(1..3);
        NameSequence {
            factor,
            offset: rng.random_range(0..Self::SPACE),
            next: 0,
        }
    }

    /// `prefix` and the next suffix. Past the 27^5 five-character ones (Kubernetes would
    /// have run out), suffixes are longer: six characters and more, still each once.
    pub(super) fn next(&mut self, prefix: &str) -> String {
        let n = self.next;
        self.next += 1;
        let (mut digits, mut len) = match n < Self::SPACE {
            true => ((self.factor * n + self.offset) % Self::SPACE, 5),
            false => (n, 6),
        };
        let mut name = String::with_capacity(prefix.len() + len);
        name.push_str(prefix);
        while len > 0 || digits > 0 {
            name.push(char::from(Self::ALPHABET[(digits % 27) as usize]));
            digits /= 27;
            len = len.saturating_sub(1);
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::clock::TokioClock;
    use crate::runtime::fake::FakeRuntime;

    /// A host on the fake runtime, with nothing submitted.
    fn fake_host() -> Host {
        let clock = Arc::new(TokioClock::new());
        Host::new(Arc::new(FakeRuntime), clock, HostConfig::default())
    }

    fn suffix<'a>(name: &'a str, prefix: &str) -> &'a str {
        name.strip_prefix(prefix).unwrap()
    }

    /// A prefix's suffixes are five characters of Kubernetes' alphabet, never twice, and
    /// past the 27^5 of them they grow to six.
    #[test]
    fn a_name_sequence_draws_each_suffix_once_then_longer_ones() {
        let alphabet = "bcdfghjklmnpqrstvwxz2456789";
        for seed in 0..20 {
            let mut sequence = NameSequence::new(&mut SmallRng::seed_from_u64(seed));
            assert_ne!(sequence.factor % 3, 0, "seed {seed}");
            let names: HashSet<String> = (0..50_000).map(|_| sequence.next("pi-")).collect();
            assert_eq!(names.len(), 50_000, "seed {seed}");
            for name in &names {
                let s = suffix(name, "pi-");
                assert_eq!(s.len(), 5, "{name}");
                assert!(s.chars().all(|c| alphabet.contains(c)), "{name}");
            }
        }
        let mut sequence = NameSequence::new(&mut SmallRng::seed_from_u64(1));
        sequence.next = NameSequence::SPACE - 1;
        assert_eq!(suffix(&sequence.next("pi-"), "pi-").len(), 5);
        let longer: Vec<String> = (0..3).map(|_| sequence.next("pi-")).collect();
        assert_eq!(longer, ["pi-bbbbbc", "pi-cbbbbc", "pi-dbbbbc"]);
    }

    /// Names the host did not draw (a state database's, adopted pods') are never drawn;
    /// prefixes keep their own sequences.
    #[tokio::test]
    async fn drawn_names_skip_the_names_already_in_use() {
        let mut host = fake_host();
        let prefix: Arc<str> = "job-".into();
        // Where a fresh sequence of the same seed would start.
        host.rng = SmallRng::seed_from_u64(9);
        let first = host.generate_name(&prefix);
        let second = host.generate_name(&prefix);
        let mut host = fake_host();
        host.rng = SmallRng::seed_from_u64(9);
        host.names.insert(name_key(&first));
        assert_eq!(host.generate_name(&prefix), second);
        let other = host.generate_name(&"other-".into());
        assert!(other.starts_with("other-") && other.len() == 11, "{other}");
        // Each prefix has its own sequence: drawing under another did not move this one.
        let mut alone = fake_host();
        alone.rng = SmallRng::seed_from_u64(9);
        let expected: Vec<String> = (0..3).map(|_| alone.generate_name(&prefix)).collect();
        assert_eq!(host.generate_name(&prefix), expected[2]);
    }

    /// A pod handed to the task that ran a pod of the same Job comes without that Job's run
    /// settings (the task holds them); a pod of another Job brings its own. Either way the
    /// host stops it through the task's kill switch.
    #[tokio::test]
    async fn a_successor_of_another_job_brings_its_run_template() {
        let manifest = |name: &str| {
            format!(
                "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  \
                 completions: 2\n  template:\n    spec:\n      restartPolicy: Never\n      \
                 containers: [{{name: c, image: fake.wasm}}]\n"
            )
        };
        let text = format!("{}---\n{}", manifest("a"), manifest("b"));
        let (jobs, errs) =
            crate::api::manifest::parse_documents(&text, "t.yaml", std::path::Path::new("."));
        assert!(errs.is_empty(), "{errs:?}");
        let mut host = fake_host();
        let subs = host.prepare(jobs).map_err(|r| format!("{r:?}")).unwrap();
        host.submit(subs);
        // The first turn creates a pod of each Job: a task that ran one of Job b is handed
        // the first, of Job a (the other is spawned; this runtime never polls it).
        let kill = Arc::new(KillSwitch::default());
        let (_, first) = host.turn(Some((1, &kill)), None);
        let first = first.expect("a pod for the caller");
        assert_eq!(host.store.pods[first.run.pod].job, 0);
        let template = first.template.expect("Job a's settings");
        assert!(Arc::ptr_eq(&template, &host.jobs[0].run));
        // Its end makes Job a create its second pod, for the same task: no settings then.
        host.apply(PodUpdate::Finished {
            pod: first.run.pod,
            exit: PodExit::Exited(0),
            started: None,
            at: host.clock.now(),
            log: None,
            blank: false,
        });
        let (_, second) = host.turn(Some((0, &kill)), None);
        let second = second.expect("a pod for the caller");
        assert_eq!(host.store.pods[second.run.pod].job, 0);
        assert!(second.template.is_none());
        host.kill(second.run.pod, pods::REASON_DELETED);
        let reason = tokio::time::timeout(Duration::from_secs(5), kill.killed(second.run.pod));
        assert_eq!(reason.await.as_deref(), Ok(pods::REASON_DELETED));
    }
}
