//! Assignments: each group's (account, permission set) pairs as wanted against those AWS
//! holds; what is no longer mapped goes only where the role may delete assignments.

use super::{GroupRef, Op, Ops, Reason};
use crate::desired::{Desired, DesiredGroup};
use crate::finding::Finding;
use crate::model::{AccountId, GroupId, GroupName, PermissionSetArn};
use crate::observed::{Assignment, Observed};
use foldhash::{HashMap, HashMapExt};
use std::collections::BTreeSet;

/// A group's assignments as observed. Most groups have one: kept without an allocation.
pub(super) enum GroupAssignments<'a> {
    One(&'a Assignment),
    Many(Vec<&'a Assignment>),
}

impl<'a> GroupAssignments<'a> {
    fn push(&mut self, a: &'a Assignment) {
        match self {
            GroupAssignments::One(first) => *self = GroupAssignments::Many(vec![*first, a]),
            GroupAssignments::Many(all) => all.push(a),
        }
    }

    pub(super) fn as_slice(&self) -> &[&'a Assignment] {
        match self {
            GroupAssignments::One(a) => std::slice::from_ref(a),
            GroupAssignments::Many(all) => all,
        }
    }
}

/// The observed assignments by group.
pub(super) fn by_group(observed: &Observed) -> HashMap<&GroupId, GroupAssignments<'_>> {
    let mut by_group: HashMap<&GroupId, GroupAssignments> =
        HashMap::with_capacity(observed.groups.len());
    for a in &observed.assignments {
        by_group
            .entry(&a.group)
            .and_modify(|held| held.push(a))
            .or_insert(GroupAssignments::One(a));
    }
    by_group
}

/// The assignments to create for an existing group, and to delete (or report) where it holds
/// one that is no longer mapped.
pub(super) fn diff(
    ops: &mut Ops,
    findings: &mut BTreeSet<Finding>,
    desired: &Desired,
    want: &DesiredGroup,
    held: &[&Assignment],
    name: &GroupName,
    group: &impl Fn() -> GroupRef,
) {
    // Sorted and distinct: a group's assignments were gathered in the set's order.
    let is_held = |&(account, ps): &(&AccountId, &PermissionSetArn)| {
        held.iter()
            .any(|a| a.account == *account && a.permission_set == *ps)
    };
    let wanted = want.permission_sets.iter().map(|ps| (&want.account, ps));
    for (account, ps) in wanted.filter(|p| !is_held(p)) {
        ops.assign.push(Op::CreateAssignment {
            group: group(),
            account: account.clone(),
            permission_set: ps.clone(),
            reason: Reason::AssignmentMissing,
        });
    }
    for (account, ps) in held
        .iter()
        .map(|a| (&a.account, &a.permission_set))
        .filter(|&(account, ps)| *account != want.account || !want.permission_sets.contains(ps))
    {
        if desired.policy.may_delete_assignments {
            ops.unassign.push(Op::DeleteAssignment {
                group: group(),
                account: (*account).clone(),
                permission_set: (*ps).clone(),
                reason: Reason::AssignmentUnmapped,
            });
        } else {
            findings.insert(Finding::AssignmentKept {
                name: name.clone(),
                account: (*account).clone(),
                permission_set: ps.to_string(),
            });
        }
    }
}
