//! Events, recorded as client-go's `EventCorrelator` records them: an event identical to
//! one already recorded is counted on it, and after 10 events of one object with the same
//! type and reason but different messages within 10 minutes, the next ones are combined into
//! one event, `(combined from similar events): <latest message>`, with a count. A Job that
//! creates 100,000 pods so has a handful of `SuccessfulCreate` events, as on a cluster,
//! rather than 100,000. (client-go's spam filter, which then drops an object's events beyond
//! a burst of 25, is not copied: it would drop a long Job's `Completed`.)

use std::hash::{BuildHasher, Hasher};

// One event per pod created keeps these maps hot: hashed with foldhash rather than SipHash
// (the keys are the host's own, not an attacker's).
use foldhash::HashMap;

use jiff::{SignedDuration, Timestamp};

use super::Host;
use crate::store::Event;

/// Distinct messages of similar events before they are combined (client-go's
/// `defaultAggregateMaxEvents`).
pub const AGGREGATE_MAX_EVENTS: usize = 10;
/// How long similar events count towards combining (`defaultAggregateIntervalInSeconds`).
const AGGREGATE_INTERVAL: SignedDuration = SignedDuration::from_mins(10);
/// The message prefix of a combined event.
pub const COMBINED: &str = "(combined from similar events): ";

/// Which object an event is about, with its type and reason: the aggregation key.
type GroupKey = (&'static str, usize, &'static str, &'static str);

/// Similar events of one object.
#[derive(Default)]
pub(super) struct Group {
    /// Hashes of the distinct messages seen within the interval (at most one fewer than the
    /// maximum once combining began; a fresh message combined then is not kept: see
    /// [`Message::Fresh`]).
    recent: Recent,
    /// When the last of them was seen.
    last: Option<Timestamp>,
    /// The recorded events by message, for counting identical ones.
    by_message: HashMap<String, usize>,
    /// The combined event, once there is one.
    combined: Option<usize>,
}

/// Whether `time` is more than [`AGGREGATE_INTERVAL`] after `last`, in nanoseconds (jiff's
/// duration arithmetic, once per pod of a wide Job, cost more).
fn longer_apart(last: Timestamp, time: Timestamp) -> bool {
    let nanos = |t: Timestamp| {
        i128::from(t.as_second()) * 1_000_000_000 + i128::from(t.subsec_nanosecond())
    };
    nanos(time) - nanos(last) > AGGREGATE_INTERVAL.as_nanos()
}

/// The hashes of a group's recent distinct messages, oldest first: at most
/// [`AGGREGATE_MAX_EVENTS`], in place (a wide Job looks through them once per pod).
#[derive(Default)]
struct Recent {
    hashes: [u64; AGGREGATE_MAX_EVENTS],
    len: usize,
}

impl Recent {
    fn contains(&self, hash: u64) -> bool {
        self.hashes[..self.len].contains(&hash)
    }

    /// Adds `hash` (there is room: the group pops one when it reaches the maximum).
    fn push(&mut self, hash: u64) {
        if let Some(slot) = self.hashes.get_mut(self.len) {
            *slot = hash;
            self.len += 1;
        }
    }

    /// Forgets the oldest.
    fn pop_oldest(&mut self) {
        if self.len > 0 {
            self.hashes.copy_within(1..self.len, 0);
            self.len -= 1;
        }
    }
}

/// An event's message: whole, or in parts that are joined only if an event keeps them.
pub(super) enum Message<'a> {
    /// The message.
    Whole(String),
    /// The message's parts, in order, of a message never recorded before (it names a new
    /// pod): one that similar events combine into is combined without looking at the
    /// recent ones.
    Fresh(&'a [&'a str]),
}

impl Message<'_> {
    fn for_each(&self, mut f: impl FnMut(&str)) {
        match self {
            Message::Whole(s) => f(s),
            Message::Fresh(parts) => parts.iter().for_each(|p| f(p)),
        }
    }

    fn into_string(self) -> String {
        match self {
            Message::Whole(s) => s,
            Message::Fresh(parts) => parts.concat(),
        }
    }
}

/// The host's event bookkeeping.
#[derive(Default)]
pub(super) struct Events {
    groups: Vec<Group>,
    /// Where each object's similar events are in `groups`.
    index: HashMap<GroupKey, usize>,
    /// The group of the last event: a wide Job records one `SuccessfulCreate` after
    /// another, and comparing four keys costs less than hashing them.
    last: Option<(GroupKey, usize)>,
    /// Events changed after they were saved: their index, with the message and count the
    /// state database has for them.
    pub(super) changed: HashMap<usize, (String, i32)>,
    /// Events before this index are in the state database.
    pub(super) saved: usize,
    /// When `changed` was last written (see [`Host::commit`]).
    pub(super) changes_saved: Option<tokio::time::Instant>,
}

impl Events {
    /// The group of events like `key`, made if new.
    fn group(&mut self, key: GroupKey) -> &mut Group {
        // The keys are the host's own constants: the same text is the same pointer (a
        // different pointer only takes the slower path).
        let same = |a: GroupKey, b: GroupKey| {
            a.1 == b.1
                && [(a.0, b.0), (a.2, b.2), (a.3, b.3)]
                    .iter()
                    .all(|(x, y)| std::ptr::eq(*x, *y))
        };
        let g = match self.last {
            Some((last, g)) if same(last, key) => g,
            _ => {
                let groups = &mut self.groups;
                let g = *self.index.entry(key).or_insert_with(|| {
                    groups.push(Group::default());
                    groups.len() - 1
                });
                self.last = Some((key, g));
                g
            }
        };
        &mut self.groups[g]
    }
}

impl Host {
    /// Records an event on Job `index` (kind `Job`), CronJob `index` or pod `index` (kind
    /// `Pod`), counted on an identical one or combined with similar ones as Kubernetes does.
    pub(super) fn event(
        &mut self,
        kind: &'static str,
        index: usize,
        type_: &'static str,
        reason: &'static str,
        message: String,
        time: Timestamp,
    ) {
        self.event_of(kind, index, type_, reason, Message::Whole(message), time);
    }

    /// [`Host::event`] with the message whole or in parts, joined only if a new event keeps
    /// it: a message combined into an existing event (a wide Job's `Created pod: …`) is
    /// copied once, into that event.
    pub(super) fn event_of(
        &mut self,
        kind: &'static str,
        index: usize,
        type_: &'static str,
        reason: &'static str,
        message: Message<'_>,
        time: Timestamp,
    ) {
        let group = self.events.group((kind, index, type_, reason));
        if group.last.is_none_or(|last| longer_apart(last, time)) {
            group.recent.len = 0;
        }
        group.last = Some(time);
        // A new message in a group that combines is combined whatever the recent ones are
        // (it is not among them), and no later message can be it: its hash is not kept,
        // and the recent ones stay as they were (one per pod of a wide Job saved).
        let steady = matches!(message, Message::Fresh(_))
            && group.combined.is_some()
            && group.recent.len + 1 == AGGREGATE_MAX_EVENTS;
        let combine = steady || {
            let mut h = foldhash::fast::FixedState::default().build_hasher();
            message.for_each(|p| h.write(p.as_bytes()));
            let hash = h.finish();
            if !group.recent.contains(hash) {
                group.recent.push(hash);
            }
            group.recent.len >= AGGREGATE_MAX_EVENTS
        };
        let (existing, message) = if combine {
            if !steady {
                group.recent.pop_oldest();
            }
            (group.combined, message)
        } else {
            let whole = message.into_string();
            (group.by_message.get(&whole).copied(), Message::Whole(whole))
        };
        if let Some(e) = existing {
            let event = &mut self.store.events[e];
            // Only a state database needs to know what changed since it was written.
            if e < self.events.saved && self.db.is_some() {
                self.events
                    .changed
                    .entry(e)
                    .or_insert_with(|| (event.message.clone(), event.count));
            }
            event.count += 1;
            event.time = time;
            if combine {
                // The combined event's text is rewritten in place, once per pod of a wide Job.
                event.message.clear();
                event.message.push_str(COMBINED);
                message.for_each(|p| event.message.push_str(p));
            }
            return;
        }
        let message = match combine {
            true => {
                let mut m = String::from(COMBINED);
                message.for_each(|p| m.push_str(p));
                m
            }
            false => message.into_string(),
        };
        let e = self.store.events.len();
        if combine {
            group.combined = Some(e);
        } else {
            group.by_message.insert(message.clone(), e);
        }
        let (meta, source) = match kind {
            "Job" => (&self.store.jobs[index].metadata, "job-controller"),
            "CronJob" => (&self.store.cronjobs[index].metadata, "cronjob-controller"),
            _ => (&self.store.pods[index].pod().metadata, "kubelet"),
        };
        self.store.events.push(Box::new(Event {
            type_: type_.into(),
            reason: reason.into(),
            message,
            kind: kind.into(),
            namespace: meta.namespace.as_deref().unwrap_or_default().to_string(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            source: source.into(),
            first_time: time,
            time,
            count: 1,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events more than ten minutes apart start a new round of combining; at exactly ten
    /// they do not. Times before 1970 (negative seconds and nanoseconds) compare alike.
    #[test]
    fn similar_events_count_together_within_ten_minutes() {
        let t = |s: i64, ns: i32| Timestamp::new(s, ns).unwrap();
        for base in [t(1_700_000_000, 250_000_000), t(-1, -500_000_000)] {
            let after = |d: SignedDuration| base.checked_add(d).unwrap();
            assert!(!longer_apart(base, after(AGGREGATE_INTERVAL)));
            assert!(longer_apart(
                base,
                after(AGGREGATE_INTERVAL + SignedDuration::from_nanos(1))
            ));
            assert!(!longer_apart(base, after(SignedDuration::from_secs(-3600))));
            assert!(!longer_apart(base, base));
        }
    }

    /// The recent hashes keep the newest, oldest first, up to the maximum.
    #[test]
    fn recent_messages_forget_the_oldest() {
        let mut recent = Recent::default();
        for h in 0..AGGREGATE_MAX_EVENTS as u64 {
            recent.push(h);
        }
        recent.push(99);
        assert_eq!(recent.len, AGGREGATE_MAX_EVENTS);
        assert!(recent.contains(0) && !recent.contains(99));
        recent.pop_oldest();
        recent.push(99);
        assert!(!recent.contains(0) && recent.contains(1) && recent.contains(99));
    }
}
