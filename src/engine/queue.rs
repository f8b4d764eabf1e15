//! (pure) The work queue, in client-go's manner: a project is in it at most once, at the most
//! urgent priority any source asked for; a project whose reconcile failed comes back after an
//! exponential backoff (capped), and after [`HOLD_AFTER`] failures in a row it is *held*: named
//! in the metrics and findings, retried only at the cap, until meshStack changes it or a person
//! asks for it (a webhook). The caller passes the time in (any ordered value that a `Duration`
//! can be added to).

use crate::model::ProjectKey;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Add;

/// Why a project is queued, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A person or meshStack asked for this project (`POST /v1/sync` with a scope).
    Webhook,
    /// meshStack's desired state for it changed.
    Change,
    /// Its last reconcile failed.
    Retry,
    /// The drift scan found AWS differing from it.
    Drift,
    /// Not confirmed since this process started (the start-up backlog).
    Backlog,
}

impl Priority {
    pub fn label(self) -> &'static str {
        match self {
            Priority::Webhook => "webhook",
            Priority::Change => "change",
            Priority::Retry => "retry",
            Priority::Drift => "drift",
            Priority::Backlog => "backlog",
        }
    }
}

/// Failures in a row after which a project is held.
pub const HOLD_AFTER: u32 = 5;
/// The first retry's wait; each failure doubles it, up to [`BACKOFF_CAP`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(5);
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);

/// The wait after `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_CAP)
}

#[derive(Debug, Clone, Copy)]
struct Item<T> {
    priority: Priority,
    ready_at: T,
    /// Order of arrival within a priority.
    seq: u64,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub count: u32,
    pub error: String,
}

#[derive(Debug)]
pub struct Queue<T> {
    items: BTreeMap<ProjectKey, Item<T>>,
    /// Being reconciled: a push for one of these is kept until it is done.
    working: BTreeSet<ProjectKey>,
    /// Pushed while being worked on.
    again: BTreeMap<ProjectKey, Priority>,
    failures: BTreeMap<ProjectKey, Failure>,
    seq: u64,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            items: BTreeMap::new(),
            working: BTreeSet::new(),
            again: BTreeMap::new(),
            failures: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<T: Copy + Ord + Add<Duration, Output = T>> Queue<T> {
    /// Queues `project`, or raises its priority. A webhook or a change makes a backing-off or
    /// held project ready at once: a person asked, or the new desired state may be what fixes
    /// it.
    pub fn push(&mut self, project: ProjectKey, priority: Priority, now: T) {
        if self.working.contains(&project) {
            let again = self.again.entry(project).or_insert(priority);
            *again = (*again).min(priority);
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        let urgent = priority <= Priority::Change;
        match self.items.get_mut(&project) {
            Some(item) => {
                if priority < item.priority {
                    item.priority = priority;
                    item.seq = seq;
                }
                if urgent && item.ready_at > now {
                    item.ready_at = now;
                }
            }
            None => {
                self.items.insert(
                    project,
                    Item {
                        priority,
                        ready_at: now,
                        seq,
                    },
                );
            }
        }
    }

    /// Up to `n` projects ready at `now`, most urgent first; they are being worked on until
    /// [`Queue::done`] or [`Queue::failed`].
    pub fn take(&mut self, n: usize, now: T) -> Vec<(ProjectKey, Priority)> {
        let mut ready: Vec<(&ProjectKey, &Item<T>)> = self
            .items
            .iter()
            .filter(|(_, item)| item.ready_at <= now)
            .collect();
        ready.sort_unstable_by_key(|(_, item)| (item.priority, item.seq));
        let taken: Vec<(ProjectKey, Priority)> = ready
            .into_iter()
            .take(n)
            .map(|(p, item)| (p.clone(), item.priority))
            .collect();
        for (project, _) in &taken {
            self.items.remove(project);
            self.working.insert(project.clone());
        }
        taken
    }

    /// `project` was reconciled: its failures are forgotten.
    pub fn done(&mut self, project: &ProjectKey, now: T) {
        self.failures.remove(project);
        self.release(project, now);
    }

    /// `project`'s reconcile failed with `error`: it comes back after its backoff. Returns
    /// the failures in a row.
    pub fn failed(&mut self, project: &ProjectKey, error: String, now: T) -> u32 {
        let failure = self.failures.entry(project.clone()).or_insert(Failure {
            count: 0,
            error: String::new(),
        });
        failure.count += 1;
        failure.error = error;
        let count = failure.count;
        self.working.remove(project);
        let again = self.again.remove(project);
        self.seq += 1;
        let ready_at = match again {
            Some(p) if p <= Priority::Change => now,
            _ => now + backoff(count),
        };
        self.items.insert(
            project.clone(),
            Item {
                priority: again.unwrap_or(Priority::Retry).min(Priority::Retry),
                ready_at,
                seq: self.seq,
            },
        );
        count
    }

    /// `project` was taken but not worked on (the batch was split, or stopped): it goes back
    /// as it was, without counting a failure.
    pub fn put_back(&mut self, project: &ProjectKey, priority: Priority, now: T) {
        self.working.remove(project);
        let again = self.again.remove(project);
        self.push(
            project.clone(),
            again.unwrap_or(priority).min(priority),
            now,
        );
    }

    fn release(&mut self, project: &ProjectKey, now: T) {
        self.working.remove(project);
        if let Some(priority) = self.again.remove(project) {
            self.push(project.clone(), priority, now);
        }
    }

    /// Forgets `project` entirely (it left the estate and nothing of it is left in AWS).
    pub fn remove(&mut self, project: &ProjectKey) {
        self.items.remove(project);
        self.again.remove(project);
        self.failures.remove(project);
    }

    /// When the next queued project is ready, if any is queued.
    pub fn next_ready(&self) -> Option<T> {
        self.items.values().map(|i| i.ready_at).min()
    }

    /// When `project`, queued, is ready to be taken.
    pub fn ready_at(&self, project: &ProjectKey) -> Option<T> {
        self.items.get(project).map(|i| i.ready_at)
    }

    /// A worker has `project` in hand.
    pub fn is_working(&self, project: &ProjectKey) -> bool {
        self.working.contains(project)
    }

    pub fn contains(&self, project: &ProjectKey) -> bool {
        self.items.contains_key(project)
            || self.working.contains(project)
            || self.again.contains_key(project)
    }

    /// Queued (not being worked on), by priority.
    pub fn pending(&self) -> BTreeMap<Priority, usize> {
        let mut out = BTreeMap::new();
        for item in self.items.values() {
            *out.entry(item.priority).or_insert(0) += 1;
        }
        out
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Projects whose last reconciles failed, with how often and why.
    pub fn failures(&self) -> &BTreeMap<ProjectKey, Failure> {
        &self.failures
    }

    /// Projects held: [`HOLD_AFTER`] failures in a row or more.
    pub fn held(&self) -> impl Iterator<Item = (&ProjectKey, &Failure)> {
        self.failures.iter().filter(|(_, f)| f.count >= HOLD_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str) -> ProjectKey {
        ProjectKey::new("ws", p)
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn one_entry_per_project_most_urgent_first() {
        let mut q: Queue<Duration> = Queue::default();
        let t0 = Duration::ZERO;
        q.push(key("a"), Priority::Backlog, t0);
        q.push(key("b"), Priority::Drift, t0);
        q.push(key("c"), Priority::Change, t0);
        q.push(key("a"), Priority::Webhook, t0);
        q.push(key("c"), Priority::Backlog, t0);
        assert_eq!(q.len(), 3);
        let taken = q.take(10, t0);
        assert_eq!(
            taken,
            [
                (key("a"), Priority::Webhook),
                (key("c"), Priority::Change),
                (key("b"), Priority::Drift)
            ]
        );
        // While a is worked on, a push waits for it to be done, then queues it once.
        q.push(key("a"), Priority::Change, t0);
        q.push(key("a"), Priority::Drift, t0);
        assert!(q.is_empty() && q.contains(&key("a")));
        q.done(&key("a"), t0);
        assert_eq!(q.take(10, t0), [(key("a"), Priority::Change)]);
    }

    #[test]
    fn a_failing_project_backs_off_is_held_and_leaves_the_others_alone() {
        let mut q: Queue<Duration> = Queue::default();
        let mut now = Duration::ZERO;
        q.push(key("bad"), Priority::Change, now);
        q.push(key("good"), Priority::Change, now);
        let mut waits = Vec::new();
        for _ in 0..HOLD_AFTER {
            let taken = q.take(10, now);
            assert!(taken.iter().any(|(p, _)| *p == key("bad")), "{taken:?}");
            for (p, _) in taken {
                if p == key("bad") {
                    q.failed(&p, "ValidationException".into(), now);
                } else {
                    q.done(&p, now);
                }
            }
            let ready = q.next_ready().unwrap();
            waits.push(ready - now);
            // Not before its backoff.
            assert!(q.take(10, ready - S / 2).is_empty());
            now = ready;
        }
        assert_eq!(waits, [5 * S, 10 * S, 20 * S, 40 * S, 80 * S]);
        assert_eq!(
            q.held().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            [key("bad")]
        );
        assert_eq!(backoff(30), BACKOFF_CAP);
        assert!(!q.failures().contains_key(&key("good")));

        // meshStack changing it, or a person asking, retries it at once; success forgets.
        q.push(key("bad"), Priority::Webhook, now - 10 * S);
        assert_eq!(q.take(10, now - 10 * S), [(key("bad"), Priority::Webhook)]);
        q.done(&key("bad"), now);
        assert_eq!(q.held().count(), 0);
        assert!(q.is_empty());

        // A project split out of a failed batch goes back without a failure counted.
        q.push(key("c"), Priority::Drift, now);
        let taken = q.take(1, now);
        q.put_back(&taken[0].0, taken[0].1, now);
        assert_eq!(q.take(1, now), [(key("c"), Priority::Drift)]);
        assert!(q.failures().is_empty());
    }
}
