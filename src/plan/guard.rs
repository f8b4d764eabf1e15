//! The mass-deletion guard: a plan that would take away more than a set share *and* a set number
//! of what we manage (groups, memberships or assignments) is refused. A meshStack answer that is
//! wrong but well-formed (an empty page, a missing workspace) looks exactly like that.
//!
//! Whatever the limits say, a run that would remove *every* managed group, membership or
//! assignment it sees (any number from one up; the whole platform, or a scope's projects) is
//! refused too: on a small estate or a scope that is exactly what an empty answer from
//! meshStack looks like, and `max-count` would let it through.

use super::{Op, Plan};
use crate::desired::{Desired, DesiredGroup};
use crate::model::GroupIdentity;
use crate::observed::Observed;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Refuse when the deletions exceed this share (0.0–1.0) of the managed objects …
    pub max_share: f64,
    /// … and this many of them.
    pub max_count: u64,
}

/// Why a plan was refused: what it would delete, out of how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tripped {
    pub what: &'static str,
    pub deleted: u64,
    pub managed: u64,
}

impl std::fmt::Display for Tripped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = if self.deleted >= self.managed {
            "every one of them"
        } else {
            "more than replicator.deletion-guard allows"
        };
        write!(
            f,
            "the plan removes {} of {} managed {}, {why}; \
             check what meshStack returned, then apply once with --allow-mass-delete if it is meant",
            self.deleted, self.managed, self.what
        )
    }
}

/// How many groups, memberships and assignments we manage: the base the guard's share is
/// taken of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Managed {
    pub groups: u64,
    pub memberships: u64,
    pub assignments: u64,
}

impl Managed {
    /// What an observation shows of ours.
    pub fn observed(platform: &str, observed: &Observed) -> Self {
        let ours: Vec<_> = observed
            .groups
            .iter()
            .filter(|g| {
                g.external_id
                    .as_ref()
                    .is_some_and(|e| GroupIdentity::is_ours(platform, e.as_str()))
            })
            .collect();
        Managed {
            groups: ours.len() as u64,
            memberships: ours.iter().map(|g| g.members.len() as u64).sum(),
            assignments: observed.assignments.len() as u64,
        }
    }

    /// What AWS holds once `desired` is reconciled: the estate a run by change stands for.
    pub fn desired(desired: &Desired) -> Self {
        desired
            .groups
            .values()
            .map(Managed::of_group)
            .fold(Managed::default(), |sum, m| sum + m)
    }

    /// One wanted group: itself, its members and its assignments.
    pub fn of_group(group: &DesiredGroup) -> Self {
        Managed {
            groups: 1,
            memberships: group.members.len() as u64,
            assignments: group.permission_sets.len() as u64,
        }
    }
}

impl std::ops::Add for Managed {
    type Output = Managed;

    fn add(self, other: Managed) -> Managed {
        Managed {
            groups: self.groups + other.groups,
            memberships: self.memberships + other.memberships,
            assignments: self.assignments + other.assignments,
        }
    }
}

/// The first kind of object the plan would delete too much of, if any, out of `managed`.
/// `whole_platform`: `managed` is every group of ours (an unscoped run, or a run by change
/// measured against the estate), so "all of them" means all.
pub fn check(
    plan: &Plan,
    managed: Managed,
    limits: Limits,
    whole_platform: bool,
) -> Option<Tripped> {
    let mut deleted = Managed::default();
    for op in &plan.ops {
        match op {
            Op::DeleteGroup { .. } => deleted.groups += 1,
            Op::RemoveMembers { members: m, .. } => deleted.memberships += m.len() as u64,
            Op::DeleteAssignment { .. } => deleted.assignments += 1,
            _ => {}
        }
    }
    check_counts(deleted, managed, limits, whole_platform)
}

/// [`check`] on counts: the first kind `deleted` takes too much of out of `managed`.
pub fn check_counts(
    deleted: Managed,
    managed: Managed,
    limits: Limits,
    whole_platform: bool,
) -> Option<Tripped> {
    [
        ("groups", deleted.groups, managed.groups),
        ("memberships", deleted.memberships, managed.memberships),
        ("assignments", deleted.assignments, managed.assignments),
    ]
    .into_iter()
    .find(|(_, deleted, managed)| {
        let all = whole_platform && *deleted >= 1 && *deleted >= *managed;
        all || (*deleted > limits.max_count && *deleted as f64 > limits.max_share * *managed as f64)
    })
    .map(|(what, deleted, managed)| Tripped {
        what,
        deleted,
        managed,
    })
}
