//! The mass-deletion guard: a plan that would take away more than a set share *and* a set number
//! of what we manage (groups, memberships or assignments) is refused. A meshStack answer that is
//! wrong but well-formed (an empty page, a missing workspace) looks exactly like that.

use super::{Op, Plan};
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
        write!(
            f,
            "the plan removes {} of {} managed {}, more than replicator.deletion-guard allows; \
             check what meshStack returned, then apply once with --allow-mass-delete if it is meant",
            self.deleted, self.managed, self.what
        )
    }
}

/// The first kind of object the plan would delete too much of, if any.
pub fn check(plan: &Plan, observed: &Observed, limits: Limits) -> Option<Tripped> {
    let ours: Vec<_> = observed
        .groups
        .iter()
        .filter(|g| {
            g.external_id
                .as_ref()
                .is_some_and(|e| GroupIdentity::is_ours(&plan.platform, e.as_str()))
        })
        .collect();
    let managed_members: u64 = ours.iter().map(|g| g.members.len() as u64).sum();
    let (mut groups, mut members, mut assignments) = (0u64, 0u64, 0u64);
    for op in &plan.ops {
        match op {
            Op::DeleteGroup { .. } => groups += 1,
            Op::RemoveMembers { members: m, .. } => members += m.len() as u64,
            Op::DeleteAssignment { .. } => assignments += 1,
            _ => {}
        }
    }
    [
        ("groups", groups, ours.len() as u64),
        ("memberships", members, managed_members),
        (
            "assignments",
            assignments,
            observed.assignments.len() as u64,
        ),
    ]
    .into_iter()
    .find(|(_, deleted, managed)| {
        *deleted > limits.max_count && *deleted as f64 > limits.max_share * *managed as f64
    })
    .map(|(what, deleted, managed)| Tripped {
        what,
        deleted,
        managed,
    })
}
