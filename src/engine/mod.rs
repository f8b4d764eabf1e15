//! The reconcile engine, in kube-rs's `Controller` manner: the unit of work is one project
//! (its groups, members and assignments); sources only *queue* projects, a worker reconciles
//! what the queue hands it, and what was applied is known by content.
//!
//! ```text
//! meshStack read (all, or a webhook's scope) ─▶ Engine::read / ::scoped
//!      desired state ─▶ digest per project ─▶ Record::to_reconcile ─▶ Queue::push (priority)
//! drift scan ─▶ Engine::scanned ─▶ drifted projects forgotten by the record, queued
//! worker: Engine::batch ─▶ Engine::slice (desired of those projects, every role that may
//!         have groups) ─▶ observe, plan, apply (sync::sync_changes) ─▶ Engine::settle
//!         (confirmed at the digest it reconciled, or failed: backoff, held after N)
//! record ─▶ Saved (buckets) ─▶ replicator.state / the Lease ─▶ Record::load at the next start
//! ```
//!
//! Everything here is plain data and plain functions: the caller passes the time in (`serve`
//! passes `Instant`, which never leaves the process: no wall clock is compared with another
//! replica's). The I/O around it is `server/`.

pub mod queue;
pub mod reconcile;
pub mod record;
pub mod removals;

use crate::desired::{Desired, Scope};
pub use crate::digest::{self, Digest, PLANNING_VERSION};
use crate::model::{ExternalId, GroupIdentity, ProjectKey, RoleId};
use crate::plan::guard::Managed;
use core::time::Duration;
pub use queue::{Priority, Queue};
pub use record::{Record, Saved, Unusable};
pub use removals::{Gate, Paused};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Add;

/// One project handed to a worker, with the digest of the desired state it is reconciled to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    pub project: ProjectKey,
    pub priority: Priority,
    pub digest: Digest,
}

/// How many projects are in each state (`aws_replicator_projects{state}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// AWS was confirmed to hold their current desired state.
    pub confirmed: usize,
    /// Queued or being reconciled, never failed.
    pub pending: usize,
    /// Their last reconcile failed; retried with backoff.
    pub failed: usize,
    /// Failed [`queue::HOLD_AFTER`] times in a row, or held by their desired state (a finding).
    pub held: usize,
    /// Reconciled but for their removals, which the deletion guard paused.
    pub paused: usize,
}

pub struct Engine<T> {
    platform: String,
    configured: Vec<RoleId>,
    /// meshStack's desired state as last read in full, with later scoped reads merged in.
    desired: Option<Desired>,
    digests: BTreeMap<ProjectKey, Digest>,
    absent: Option<Digest>,
    record: Record<T>,
    /// A saved record waiting for the first read, against which it is loaded.
    saved: Option<Saved>,
    /// A saved record was taken (or refused): the saved copy may claim more than this one,
    /// and must be replaced before the first write.
    loaded: bool,
    queue: Queue<T>,
    /// The projects the drift scan reads: wanted and not held, or with groups of ours listed
    /// in the store.
    scan_set: BTreeSet<ProjectKey>,
    /// What the read before the last one wanted: with the last one, the deletion guard's base
    /// while the removals of the last read are applied.
    managed_before: Managed,
    /// Projects AWS was confirmed to hold as an earlier read wanted them, and the groups that
    /// changed since: their reconcile reads and writes only those groups (a membership costs
    /// its group's few requests, not the project's). The drift scan reads the rest.
    narrow: BTreeMap<ProjectKey, BTreeSet<ExternalId>>,
    /// The deletion guard across reads; `None`: reads are not measured.
    gate: Option<Gate<T>>,
}

impl<T: Copy + Ord + Add<Duration, Output = T>> Engine<T> {
    /// Nothing read and nothing confirmed; `saved`, the record of an earlier run, is taken
    /// against the first read of meshStack.
    pub fn new(platform: &str, configured: Vec<RoleId>, saved: Option<Saved>) -> Self {
        Engine {
            platform: platform.to_owned(),
            record: Record::new(platform, configured.iter().cloned()),
            configured,
            desired: None,
            digests: BTreeMap::new(),
            absent: None,
            saved,
            loaded: false,
            queue: Queue::default(),
            scan_set: BTreeSet::new(),
            managed_before: Managed::default(),
            narrow: BTreeMap::new(),
            gate: None,
        }
    }

    /// Reads are measured by the deletion guard across `window` ([`removals`]). Removals that a
    /// saved record says were paused stay paused until a person allows them.
    pub fn guarded(mut self, limits: crate::plan::guard::Limits, window: Duration) -> Self {
        let mut gate = Gate::new(limits, window);
        if let Some(why) = self
            .saved
            .as_ref()
            .filter(|s| s.platform == self.platform)
            .and_then(|s| s.removals_paused.as_ref())
        {
            gate.pause_loaded(why.tripped());
        }
        self.gate = Some(gate);
        self
    }

    /// meshStack was read in full (`desired`'s scope is all): every project whose desired
    /// state AWS is not confirmed to hold is queued; a project whose digest changed since the
    /// last read as a change, the rest (at the first read: the start-up backlog) behind.
    /// Returns the projects queued, and the reason a saved record was not taken, if it was not.
    pub fn read(&mut self, desired: Desired, now: T) -> (BTreeSet<ProjectKey>, Option<Unusable>) {
        debug_assert_eq!(desired.scope, Scope::All);
        let digests = digest::project_digests(&desired);
        let absent = digest::absent(&desired);
        let mut unusable = None;
        let mut saved_counts = None;
        if let Some(saved) = self.saved.take() {
            self.loaded = true;
            match Record::load(
                &saved,
                &self.platform,
                self.configured.iter().cloned(),
                &digests,
                now,
            ) {
                Ok(record) => {
                    self.record = record;
                    saved_counts = saved.managed;
                }
                Err(why) => unusable = Some(why),
            }
        }
        let first = self.desired.is_none();
        // A new process has no read before this one: it is measured against what the saved
        // record's projects wanted, so that a wrong answer at a start (or a take-over) that
        // strips the estate pauses removals as it would at any later read.
        if first
            && let Some(gate) = &mut self.gate
            && let Some(saved_counts) = saved_counts.as_deref()
            && let Some((removed, estate)) = record::taken_away(
                saved_counts,
                &record::bucket_counts(project_counts(&desired)),
                &desired.held,
            )
        {
            gate.measured(removed, estate, now);
        }
        if let Some(old) = &self.desired {
            for id in changed_groups(old, &desired) {
                let Some(project) =
                    GroupIdentity::parse(&self.platform, id.as_str()).map(|i| i.project)
                else {
                    continue;
                };
                let confirmed_old = self
                    .record
                    .entry(&project)
                    .is_some_and(|e| Some(&e.applied) == self.digests.get(&project));
                if confirmed_old || self.narrow.contains_key(&project) {
                    self.narrow.entry(project).or_default().insert(id);
                }
            }
        }
        let todo = self.record.to_reconcile(&digests, absent);
        for project in &todo {
            let changed = !first && self.digests.get(project) != digests.get(project);
            let priority = if changed {
                Priority::Change
            } else {
                Priority::Backlog
            };
            self.queue.push(project.clone(), priority, now);
        }
        self.scan_set = digests
            .keys()
            .filter(|p| !desired.held.contains(*p))
            .cloned()
            .chain(
                self.scan_set
                    .iter()
                    .filter(|p| !digests.contains_key(*p))
                    .cloned(),
            )
            .collect();
        self.digests = digests;
        self.absent = Some(absent);
        if let Some(last) = &self.desired {
            self.managed_before = Managed::desired(last);
            if let Some(gate) = &mut self.gate
                && let removals::Verdict::Resumed(parked) = gate.read(last, &desired, None, now)
            {
                for project in parked {
                    self.queue.push(project, Priority::Change, now);
                }
            }
        }
        self.desired = Some(desired);
        (todo, unusable)
    }

    /// The projects of `desired` (scope: all) whose desired state AWS is not confirmed to
    /// hold: what a read of it would queue.
    pub fn differing(&self, desired: &Desired) -> BTreeSet<ProjectKey> {
        let digests = digest::project_digests(desired);
        self.record.to_reconcile(&digests, digest::absent(desired))
    }

    /// A worker is about to write to `projects`: the record stops claiming them until each is
    /// confirmed again. Returns whether the saved copy may claim any of them (then it must be
    /// saved before the writes, so that a kill in between leaves no claim AWS may not hold).
    /// The first time after a saved record was loaded that is always so: the saved copy still
    /// claims the buckets that did not digest alike, whose projects may be written now and
    /// read back alike by a later start whose desired state is the older one again.
    pub fn forget_all(&mut self, projects: &BTreeSet<ProjectKey>) -> bool {
        let mut claimed = std::mem::take(&mut self.loaded);
        // A webhook before the first read of everything: the saved record, not loaded yet,
        // may claim these projects' buckets; it stops claiming them, and is saved so.
        if let Some(saved) = &mut self.saved {
            for project in projects {
                saved.taint(project);
            }
            claimed = true;
        }
        for project in projects {
            claimed |= self.record.entry(project).is_some();
            self.record.forget(project);
        }
        claimed
    }

    /// A scoped read of meshStack (a webhook): its projects take the new desired state and
    /// are queued first, whether they changed or not (a person asked). Before the first full
    /// read only these projects are known.
    pub fn scoped(&mut self, scoped: &Desired, projects: &BTreeSet<ProjectKey>, now: T) {
        if let (Some(gate), Some(last)) = (&mut self.gate, &self.desired) {
            gate.read(last, scoped, Some(projects), now);
        }
        let whole = self.desired.get_or_insert_with(|| Desired {
            scope: Scope::All,
            groups: BTreeMap::new(),
            held: BTreeSet::new(),
            findings: BTreeSet::new(),
            only_groups: None,
            ..scoped.clone()
        });
        whole
            .groups
            .retain(|_, g| !projects.contains(&g.identity.project));
        whole.held.retain(|p| !projects.contains(p));
        whole.groups.extend(
            scoped
                .groups
                .iter()
                .filter(|(_, g)| projects.contains(&g.identity.project))
                .map(|(k, g)| (k.clone(), g.clone())),
        );
        whole.held.extend(
            scoped
                .held
                .iter()
                .filter(|p| projects.contains(*p))
                .cloned(),
        );
        let within = slice_of(whole, projects);
        let digests = digest::project_digests(&within);
        let absent = digest::absent(whole);
        for project in projects {
            // A person asked: the whole project is read.
            self.narrow.remove(project);
            match digests.get(project) {
                Some(d) => {
                    self.digests.insert(project.clone(), *d);
                    if !whole.held.contains(project) {
                        self.scan_set.insert(project.clone());
                    }
                }
                None => {
                    self.digests.remove(project);
                }
            }
            self.queue.push(project.clone(), Priority::Webhook, now);
        }
        self.absent = Some(absent);
    }

    /// The digest `project` should be at now.
    fn current(&self, project: &ProjectKey) -> Option<Digest> {
        self.digests.get(project).copied().or(self.absent)
    }

    /// Whether the last read of meshStack has `project` (held or not).
    pub fn wants(&self, project: &ProjectKey) -> bool {
        self.digests.contains_key(project)
            || self
                .desired
                .as_ref()
                .is_some_and(|d| d.held.contains(project))
    }

    /// The digest `project` should be at now, as the last read computed it.
    pub fn digest_of(&self, project: &ProjectKey) -> Option<Digest> {
        self.current(project)
    }

    /// Up to `n` projects to reconcile now, most urgent first. A project AWS is already
    /// confirmed to hold at its current digest (the drift scan saw it so) is settled without
    /// work, unless a person asked for it; so is a held one (nothing of it is touched).
    pub fn batch(&mut self, n: usize, now: T) -> Vec<Work> {
        let mut out = Vec::new();
        while out.len() < n {
            let taken = self.queue.take(n - out.len(), now);
            if taken.is_empty() {
                break;
            }
            for (project, priority) in taken {
                let Some(digest) = self.current(&project) else {
                    // Nothing read yet: back to the queue.
                    self.queue.put_back(&project, priority, now);
                    return out;
                };
                let held = self
                    .desired
                    .as_ref()
                    .is_some_and(|d| d.held.contains(&project));
                let confirmed = self
                    .record
                    .entry(&project)
                    .is_some_and(|e| e.applied == digest);
                if held || (confirmed && priority != Priority::Webhook) {
                    self.settle(&project, digest, Ok(()), now);
                    continue;
                }
                out.push(Work {
                    project,
                    priority,
                    digest,
                });
            }
        }
        out
    }

    /// The desired state of `projects` for a reconcile: their groups and holds, scoped to
    /// them, with every role whose groups may be in AWS to look up; only the changed groups of
    /// a project AWS held as an earlier read wanted it.
    pub fn slice(&self, projects: &BTreeSet<ProjectKey>) -> Option<Desired> {
        let mut out = slice_of(self.desired.as_ref()?, projects);
        out.roles = self.record.roles().iter().cloned().collect();
        if projects.iter().any(|p| self.narrow.contains_key(p)) {
            let mut only = BTreeSet::new();
            for project in projects {
                match self.narrow.get(project) {
                    Some(groups) => only.extend(groups.iter().cloned()),
                    None => only.extend(out.roles.iter().map(|role| {
                        GroupIdentity {
                            project: project.clone(),
                            role: role.clone(),
                        }
                        .external_id(&self.platform)
                    })),
                }
            }
            // The rest of a narrowed project is left as it is: neither read nor planned.
            out.groups.retain(|id, _| only.contains(id));
            out.only_groups = Some(only);
        }
        Some(out)
    }

    /// A worker is done with `project`, reconciled to `digest`: confirmed, or failed with an
    /// error (the project is retried after its backoff; the record no longer claims it). A
    /// project whose desired state changed meanwhile is queued again.
    pub fn settle(
        &mut self,
        project: &ProjectKey,
        digest: Digest,
        outcome: Result<(), String>,
        now: T,
    ) {
        self.narrow.remove(project);
        match outcome {
            Ok(()) => {
                if let Some(gate) = &mut self.gate {
                    gate.unpark(project);
                }
                let absent = self.absent.unwrap_or(digest);
                self.record.confirm(project, digest, absent, now);
                self.queue.done(project, now);
                if digest == absent && !self.digests.contains_key(project) {
                    self.scan_set.remove(project);
                }
                if self.current(project) != Some(digest) {
                    self.queue.push(project.clone(), Priority::Change, now);
                }
            }
            Err(error) => {
                self.record.forget(project);
                self.queue.failed(project, error, now);
            }
        }
    }

    /// A worker reconciled `project` to `digest` but for its removals, which are paused: it
    /// waits for them, unconfirmed. Reconciled again at once if removals went on meanwhile or
    /// its desired state changed.
    pub fn park(&mut self, project: &ProjectKey, digest: Digest, now: T) {
        self.narrow.remove(project);
        self.record.forget(project);
        self.queue.done(project, now);
        let waits = self.gate.as_mut().is_some_and(|g| g.park(project));
        if !waits || self.current(project) != Some(digest) {
            self.queue.push(project.clone(), Priority::Change, now);
        }
    }

    /// Why removals are paused, and which projects wait for them.
    pub fn removals_paused(&self) -> Option<&Paused> {
        self.gate.as_ref().and_then(Gate::paused)
    }

    /// A person allowed the paused removals: the projects that waited are queued again.
    /// Returns what had paused them, if anything did.
    pub fn allow_removals(&mut self, now: T) -> Option<Paused> {
        let paused = self.gate.as_mut()?.allow()?;
        for project in &paused.parked {
            self.queue.push(project.clone(), Priority::Change, now);
        }
        Some(paused)
    }

    /// The record to keep outside the process, with the pause if removals are paused.
    pub fn save(&self, written_by: &str, written_at: &str) -> Saved {
        // Not loaded yet (no read of everything): the record as it was, less what was written
        // since, not the nearly empty one of this process.
        let mut saved = match &self.saved {
            Some(pending) => Saved {
                written_by: written_by.to_owned(),
                written_at: written_at.to_owned(),
                ..pending.clone()
            },
            None => {
                let mut saved = self.record.save(written_by, written_at);
                // Counted for the projects the record confirms at what the last read wants.
                let counts = self
                    .desired
                    .as_ref()
                    .map(project_counts)
                    .unwrap_or_default();
                saved.managed = Some(record::bucket_counts(
                    self.record
                        .entries()
                        .filter(|(p, e)| self.digests.get(*p) == Some(&e.applied))
                        .filter_map(|(p, _)| Some((p, *counts.get(p)?))),
                ));
                saved
            }
        };
        saved.removals_paused = self
            .removals_paused()
            .map(|p| record::SavedPause::of(&p.why));
        saved
    }

    /// A worker took `project` but did not work on it (shutting down, or lost the lease).
    pub fn put_back(&mut self, work: &Work, now: T) {
        self.queue.put_back(&work.project, work.priority, now);
    }

    /// Up to `n` projects the drift scan reads next, in key order after `after`.
    pub fn scan_slice(&self, after: Option<&ProjectKey>, n: usize) -> Vec<ProjectKey> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.scan_set
            .range((from, Bound::Unbounded))
            .take(n)
            .cloned()
            .collect()
    }

    /// The store holds groups of ours of `projects` and `roles` (the drift scan's listing):
    /// a project no longer wanted is scanned until none of its groups is left; a role no
    /// longer configured is looked up until none of its groups is left.
    pub fn listed(
        &mut self,
        projects: impl IntoIterator<Item = ProjectKey>,
        roles: &BTreeSet<RoleId>,
    ) {
        let held = self.desired.as_ref().map(|d| &d.held);
        for project in projects {
            if held.is_none_or(|h| !h.contains(&project)) {
                self.scan_set.insert(project);
            }
        }
        self.record
            .roles_listed(self.configured.iter().cloned(), roles);
    }

    /// The drift scan read `projects` against `digests` (their desired state when it read
    /// them) at `now`, through a listing of the store made at `listed_at`; `drifted` differed,
    /// `seen` had groups of ours. Returns the projects newly queued as drifted.
    ///
    /// A project queued or being reconciled is left to that reconcile, and one confirmed since
    /// the listing was read through a listing older than what was written: neither is judged.
    /// A drifted project is forgotten by the record and queued; the others are confirmed at
    /// what was read (a project of the start-up backlog read alike then needs no reconcile).
    pub fn scanned(
        &mut self,
        projects: &[ProjectKey],
        digests: &BTreeMap<ProjectKey, Digest>,
        drifted: &BTreeSet<ProjectKey>,
        seen: &BTreeSet<ProjectKey>,
        listed_at: T,
        now: T,
    ) -> BTreeSet<ProjectKey> {
        let mut queued = BTreeSet::new();
        let Some(absent) = self.absent else {
            return queued;
        };
        for project in projects {
            let newer = self
                .record
                .entry(project)
                .is_some_and(|e| e.confirmed_at > listed_at);
            if self.queue.is_working(project) || newer {
                continue;
            }
            if drifted.contains(project) {
                if !self.queue.contains(project) {
                    self.narrow.remove(project);
                    self.record.forget(project);
                    self.queue.push(project.clone(), Priority::Drift, now);
                    queued.insert(project.clone());
                }
                continue;
            }
            let digest = digests.get(project).copied().unwrap_or(absent);
            if self.current(project) == Some(digest) {
                self.record.confirm(project, digest, absent, now);
            }
            if !seen.contains(project) && !self.digests.contains_key(project) {
                self.scan_set.remove(project);
            }
        }
        queued
    }

    /// The desired state of `projects` as the scan reads it, with their digests.
    pub fn scan_view(
        &self,
        projects: &[ProjectKey],
    ) -> Option<(Desired, BTreeMap<ProjectKey, Digest>)> {
        let set: BTreeSet<ProjectKey> = projects.iter().cloned().collect();
        let desired = self.slice(&set)?;
        let digests = projects
            .iter()
            .filter_map(|p| Some((p.clone(), *self.digests.get(p)?)))
            .collect();
        Some((desired, digests))
    }

    /// What we manage, as the last two reads of meshStack want it (the larger of each kind):
    /// the deletion guard's base for one batch, so that a project meshStack dropped is measured
    /// against the estate that still held it.
    pub fn managed(&self) -> Managed {
        let now = self
            .desired
            .as_ref()
            .map(Managed::desired)
            .unwrap_or_default();
        let before = self.managed_before;
        Managed {
            groups: now.groups.max(before.groups),
            memberships: now.memberships.max(before.memberships),
            assignments: now.assignments.max(before.assignments),
        }
    }

    pub fn desired(&self) -> Option<&Desired> {
        self.desired.as_ref()
    }

    pub fn record(&self) -> &Record<T> {
        &self.record
    }

    pub fn queue(&self) -> &Queue<T> {
        &self.queue
    }

    /// Projects per state.
    pub fn counts(&self) -> Counts {
        let failures = self.queue.failures();
        let held_by_failures = self.queue.held().count();
        let held_by_data = self.desired.as_ref().map_or(0, |d| d.held.len());
        let known = self.digests.len().max(self.record.confirmed());
        let confirmed = self
            .digests
            .iter()
            .filter(|(p, d)| self.record.entry(p).is_some_and(|e| e.applied == **d))
            .count();
        let failed = failures.len() - held_by_failures;
        let paused = self.removals_paused().map_or(0, |p| p.parked.len());
        Counts {
            confirmed,
            failed,
            held: held_by_failures + held_by_data,
            paused,
            pending: known.saturating_sub(confirmed + failures.len() + held_by_data + paused),
        }
    }
}

/// The groups whose desired state differs between `old` and `new` (added, gone, or changed in
/// name, account, members or permission sets). Groups of projects held in `new` are left out:
/// nothing of theirs is touched.
pub fn changed_groups(old: &Desired, new: &Desired) -> BTreeSet<ExternalId> {
    let mut out = BTreeSet::new();
    let (mut a, mut b) = (old.groups.iter().peekable(), new.groups.iter().peekable());
    // Both maps are sorted by external id: one walk finds every difference.
    loop {
        let differing = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some((ka, ga)), Some((kb, gb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    let differs = ga != gb;
                    let (ga, _) = (a.next(), b.next());
                    ga.filter(|_| differs)
                }
            },
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
        };
        if let Some((external_id, group)) = differing
            && !new.held.contains(&group.identity.project)
        {
            out.insert(external_id.clone());
        }
    }
    out
}

/// Every group of `projects` and their holds, in one range per project (groups are keyed by
/// external id, which starts with the project), scoped to them.
fn slice_of(desired: &Desired, projects: &BTreeSet<ProjectKey>) -> Desired {
    let mut groups = BTreeMap::new();
    for project in projects {
        let prefix = GroupIdentity {
            project: project.clone(),
            role: RoleId::from(""),
        }
        .external_id(&desired.platform);
        let range = desired.groups.range::<ExternalId, _>((
            std::ops::Bound::Included(&prefix),
            std::ops::Bound::Unbounded,
        ));
        for (k, g) in range {
            if !k.as_str().starts_with(prefix.as_str()) {
                break;
            }
            groups.insert(k.clone(), g.clone());
        }
    }
    Desired {
        platform: desired.platform.clone(),
        scope: Scope::projects(projects.iter().cloned()),
        groups,
        held: desired.held.intersection(projects).cloned().collect(),
        findings: BTreeSet::new(),
        policy: desired.policy,
        roles: desired.roles.clone(),
        only_groups: None,
    }
}

/// What each project of `desired` (held ones aside) wants: groups, memberships, assignments.
fn project_counts(desired: &Desired) -> BTreeMap<&ProjectKey, Managed> {
    let mut counts: BTreeMap<&ProjectKey, Managed> = BTreeMap::new();
    for group in desired.groups.values() {
        let project = &group.identity.project;
        if !desired.held.contains(project) {
            let sum = counts.entry(project).or_default();
            *sum = *sum + Managed::of_group(group);
        }
    }
    counts
}

#[cfg(test)]
mod tests;
