//! The deletion guard across reads. One batch's guard sees only its few projects; a meshStack
//! answer that loses half the estate, or loses a little at every read, passes it batch by
//! batch. So each read is measured too: what it takes away from the read before, added to what
//! the reads of the last interval took away, against the estate. Past the guard's limits,
//! removals pause: every project is still reconciled, its additions applied and its removals
//! left out ("parked"), until a person allows them (`POST /v1/removals/allow`) or a later read
//! of everything takes away little enough from what was wanted before the pause (meshStack
//! answered wrongly once, and answers right again).

use crate::desired::Desired;
use crate::model::ProjectKey;
use crate::plan::guard::{Limits, Managed, Tripped, check_counts};
use core::time::Duration;
use std::collections::{BTreeSet, VecDeque};
use std::ops::Add;

/// Removals are paused.
#[derive(Debug, Clone)]
pub struct Paused {
    /// The read that tripped the guard, measured.
    pub why: Tripped,
    /// What meshStack wanted before that read; `None` when the pause was loaded from a saved
    /// record (then only a person resumes).
    baseline: Option<Desired>,
    /// Projects reconciled with their removals left out.
    pub parked: BTreeSet<ProjectKey>,
}

/// The guard across reads: its limits, the removals of the reads within its window, and the
/// pause.
#[derive(Debug, Clone)]
pub struct Gate<T> {
    limits: Limits,
    window: Duration,
    recent: VecDeque<(T, Managed)>,
    paused: Option<Paused>,
}

/// What the gate made of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed: removals go on, or stay paused.
    Same,
    /// This read paused removals.
    Paused(Tripped),
    /// This read took away little enough from what was wanted before the pause: the parked
    /// projects are to be reconciled again, with their removals.
    Resumed(BTreeSet<ProjectKey>),
}

impl<T: Copy + Ord + Add<Duration, Output = T>> Gate<T> {
    /// Removals go on; `window`: how far back the reads' removals add up (the schedule's
    /// interval).
    pub fn new(limits: Limits, window: Duration) -> Self {
        Gate {
            limits,
            window,
            recent: VecDeque::new(),
            paused: None,
        }
    }

    /// Paused by an earlier process (its saved record said so): only a person resumes.
    pub fn pause_loaded(&mut self, why: Tripped) {
        self.paused = Some(Paused {
            why,
            baseline: None,
            parked: BTreeSet::new(),
        });
    }

    pub fn paused(&self) -> Option<&Paused> {
        self.paused.as_ref()
    }

    /// A read replaced `last` by `new`: of everything (`scope` `None`), or of `scope`'s projects.
    /// `last` is what was wanted before it, whole (it becomes the baseline if this read pauses).
    pub fn read(
        &mut self,
        last: &Desired,
        new: &Desired,
        scope: Option<&BTreeSet<ProjectKey>>,
        now: T,
    ) -> Verdict {
        let window = self.window;
        self.recent.retain(|(at, _)| *at + window >= now);
        let recent = self
            .recent
            .iter()
            .fold(Managed::default(), |sum, (_, m)| sum + *m);
        if let Some(paused) = &self.paused {
            let Some(baseline) = paused.baseline.as_ref().filter(|_| scope.is_none()) else {
                return Verdict::Same;
            };
            let (removed, _) = removed(baseline, new, None);
            let within = check_counts(
                recent + removed,
                Managed::desired(baseline),
                self.limits,
                true,
            )
            .is_none();
            if !within {
                return Verdict::Same;
            }
            let paused = self.paused.take().expect("paused");
            self.recent.push_back((now, removed));
            return Verdict::Resumed(paused.parked);
        }
        let (removed, of_scope) = removed(last, new, scope);
        if removed == Managed::default() {
            return Verdict::Same;
        }
        // A scoped read that takes away every group, membership or assignment of its scope
        // is measured by that alone: an empty answer for a project looks exactly like it.
        let all_of_scope = || {
            let only_all = Limits {
                max_share: 1.0,
                max_count: u64::MAX,
            };
            scope.and_then(|_| check_counts(removed, of_scope, only_all, true))
        };
        let tripped = check_counts(recent + removed, Managed::desired(last), self.limits, true)
            .or_else(all_of_scope);
        self.judge(tripped, removed, || Some(last.clone()), now)
    }

    /// A read with no read before it in this process (the first after a start or a
    /// take-over), measured as `removed` of `estate` (what a saved record's projects wanted).
    /// Past the guard, removals pause until a person allows them: there is no earlier
    /// desired state to resume against.
    pub fn measured(&mut self, removed: Managed, estate: Managed, now: T) -> Verdict {
        if self.paused.is_some() || removed == Managed::default() {
            return Verdict::Same;
        }
        let tripped = check_counts(removed, estate, self.limits, true);
        self.judge(tripped, removed, || None, now)
    }

    /// Within the guard, the read's removals count towards the interval; past it, removals
    /// pause, to resume against `baseline` (what was wanted before), if there is one.
    fn judge(
        &mut self,
        tripped: Option<Tripped>,
        removed: Managed,
        baseline: impl FnOnce() -> Option<Desired>,
        now: T,
    ) -> Verdict {
        match tripped {
            None => {
                self.recent.push_back((now, removed));
                Verdict::Same
            }
            Some(why) => {
                self.paused = Some(Paused {
                    why: why.clone(),
                    baseline: baseline(),
                    parked: BTreeSet::new(),
                });
                Verdict::Paused(why)
            }
        }
    }

    /// `project` was reconciled with removals left out: it waits for them. Returns `false`
    /// when removals go on meanwhile (then it is to be reconciled again at once).
    pub fn park(&mut self, project: &ProjectKey) -> bool {
        match &mut self.paused {
            Some(paused) => {
                paused.parked.insert(project.clone());
                true
            }
            None => false,
        }
    }

    /// `project` was reconciled whole (with nothing left to remove): it no longer waits.
    pub fn unpark(&mut self, project: &ProjectKey) {
        if let Some(paused) = &mut self.paused {
            paused.parked.remove(project);
        }
    }

    /// A person allowed the removals: what paused them and the projects that waited, to be
    /// reconciled again. The interval's count starts over.
    pub fn allow(&mut self) -> Option<Paused> {
        self.recent.clear();
        self.paused.take()
    }
}

/// The groups, memberships and assignments `old` wants and `new` does not, of `scope`'s
/// projects (all when `None`), and how many of each `old` wants there. A project `new` holds
/// takes nothing away: nothing of it is touched.
pub fn removed(
    old: &Desired,
    new: &Desired,
    scope: Option<&BTreeSet<ProjectKey>>,
) -> (Managed, Managed) {
    let mut removed = Managed::default();
    let mut of_scope = Managed::default();
    for (id, group) in &old.groups {
        let project = &group.identity.project;
        if new.held.contains(project) || scope.is_some_and(|s| !s.contains(project)) {
            continue;
        }
        let whole = Managed::of_group(group);
        of_scope = of_scope + whole;
        match new.groups.get(id) {
            None => removed = removed + whole,
            Some(now) => {
                removed.memberships += group.members.difference(&now.members).count() as u64;
                removed.assignments += group
                    .permission_sets
                    .difference(&now.permission_sets)
                    .count() as u64;
            }
        }
    }
    (removed, of_scope)
}
