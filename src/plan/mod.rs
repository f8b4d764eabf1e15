//! The plan: `plan(&desired, &observed)`, the fewest operations that make AWS IAM Identity
//! Center hold the desired state, each with a reason for people, plus findings. `plan()` walks
//! the wanted groups once; each concern has its own module: `groups` (ours and others', create,
//! rename, retire), `members` (euids to users, adds and removes), `assignments`.
//!
//! Pure and deterministic. Invariants, each checked by a property test:
//! - only groups that carry our marker (and the `mst-` prefix) appear in an operation;
//! - every operation is within AWS's limits (≤ 100 member changes per request);
//! - applying the plan to the observation and planning again gives an empty plan.

mod assignments;
pub mod basis;
mod estimate;
mod groups;
pub mod guard;
mod members;
mod render;
mod simulate;

use crate::desired::{Desired, DesiredGroup, Scope};
use crate::finding::Finding;
use crate::model::{
    AccountId, Euid, ExternalId, GroupId, GroupName, PermissionSetArn, UserId, UserName,
};
use crate::observed::Observed;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use simulate::apply_in_memory;

pub const PLAN_FORMAT_VERSION: u32 = 2;
/// AWS SCIM: at most 100 members inline in a create, 100 member changes in a PATCH.
pub const MAX_MEMBERS_PER_REQUEST: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub platform: String,
    /// What the plan rests on: the desired state of the projects it touches and AWS's state
    /// of the groups it touches. `sync --plan` applies a saved plan only while both still
    /// read alike.
    pub basis: basis::Basis,
    /// The projects the plan was made for (absent: all of them). `sync --plan` observes the
    /// same scope again before it applies a saved plan.
    #[serde(default, skip_serializing_if = "is_all")]
    pub scope: Scope,
    pub ops: Vec<Op>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
    pub estimate: Estimate,
}

/// A group as an operation names it. A group that does not exist yet has no id; apply
/// resolves it through its external id once it has been created.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupRef {
    pub name: GroupName,
    pub external_id: ExternalId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<GroupId>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    pub user_name: UserName,
    pub id: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    CreateGroup {
        group: GroupRef,
        /// At most [`MAX_MEMBERS_PER_REQUEST`]; the rest follow as `AddMembers`.
        members: Vec<Member>,
        reason: Reason,
    },
    RenameGroup {
        group: GroupRef,
        from: GroupName,
        reason: Reason,
    },
    AddMembers {
        group: GroupRef,
        members: Vec<Member>,
        reason: Reason,
    },
    CreateAssignment {
        group: GroupRef,
        account: AccountId,
        permission_set: PermissionSetArn,
        reason: Reason,
    },
    DeleteAssignment {
        group: GroupRef,
        account: AccountId,
        permission_set: PermissionSetArn,
        reason: Reason,
    },
    RemoveMembers {
        group: GroupRef,
        members: Vec<Member>,
        reason: Reason,
    },
    DeleteGroup {
        group: GroupRef,
        reason: Reason,
    },
}

impl Op {
    pub fn group(&self) -> &GroupRef {
        match self {
            Op::CreateGroup { group, .. }
            | Op::RenameGroup { group, .. }
            | Op::AddMembers { group, .. }
            | Op::CreateAssignment { group, .. }
            | Op::DeleteAssignment { group, .. }
            | Op::RemoveMembers { group, .. }
            | Op::DeleteGroup { group, .. } => group,
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Op::CreateGroup { reason, .. }
            | Op::RenameGroup { reason, .. }
            | Op::AddMembers { reason, .. }
            | Op::CreateAssignment { reason, .. }
            | Op::DeleteAssignment { reason, .. }
            | Op::RemoveMembers { reason, .. }
            | Op::DeleteGroup { reason, .. } => *reason,
        }
    }

    pub fn family(&self) -> Family {
        match self {
            Op::CreateAssignment { .. } | Op::DeleteAssignment { .. } => Family::SsoAdmin,
            _ => Family::Scim,
        }
    }

    /// Whether it takes something away: a group, members or an assignment.
    pub fn removes(&self) -> bool {
        matches!(
            self,
            Op::DeleteAssignment { .. } | Op::RemoveMembers { .. } | Op::DeleteGroup { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Scim,
    SsoAdmin,
}

/// Why an operation is in the plan. For people: apply never reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The project role has a tenant and a role mapping, and its group does not exist yet.
    GroupMissing,
    /// The group exists under another name (the name pattern or aws-role-name changed).
    NameChanged,
    /// The user holds the role in meshStack, directly or through a user group.
    RoleBound,
    /// The user does not hold the role in meshStack (any more, or never did).
    RoleUnbound,
    /// The role's permission set is not assigned to the project's account yet.
    AssignmentMissing,
    /// The permission set is no longer mapped to the role, or the account changed.
    AssignmentUnmapped,
    /// The project has no tenant on this platform any more.
    ProjectGone,
    /// The role is no longer in `role-mappings`.
    RoleUnmapped,
    /// The group should go, but still has assignments this role may not delete.
    GroupRetired,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub groups_to_create: usize,
    pub groups_to_rename: usize,
    pub groups_to_delete: usize,
    pub members_to_add: usize,
    pub members_to_remove: usize,
    pub assignments_to_create: usize,
    pub assignments_to_delete: usize,
}

/// API calls the plan costs to apply, and the time that takes at the configured rates
/// (aws-sso.md §D.2). Families run in parallel, so the time is the slower family's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub scim_calls: usize,
    /// Creates and deletes, plus one status poll each.
    pub sso_admin_calls: usize,
    /// Reads: the observation the plan was made from, and the check after applying.
    #[serde(default)]
    pub scim_reads: usize,
    #[serde(default)]
    pub sso_admin_reads: usize,
    /// Writes and reads at the configured rates.
    pub seconds: f64,
}

fn is_all(scope: &Scope) -> bool {
    *scope == Scope::All
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The plan without what it takes away, and the operations left out: what is applied while
    /// the deletion guard has paused removals (additions go on).
    pub fn without_removals(mut self, desired: &Desired, observed: &Observed) -> (Plan, Vec<Op>) {
        let (removals, rest) = self.ops.into_iter().partition(Op::removes);
        self.ops = rest;
        self.summary = summarize(&self.ops);
        self.estimate = estimate::estimate(&self.ops, desired, observed);
        (self, removals)
    }
}

/// Operations by kind, concatenated in dependency order at the end.
#[derive(Default)]
struct Ops {
    create: Vec<Op>,
    rename: Vec<Op>,
    add: Vec<Op>,
    assign: Vec<Op>,
    unassign: Vec<Op>,
    remove: Vec<Op>,
    delete: Vec<Op>,
}

pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut findings: BTreeSet<Finding> = desired.findings.clone();
    let users = members::Users::new(&observed.users);
    let member = |id: &UserId| members::member(observed, id);
    let mut directory = groups::Directory::sort(&desired.platform, observed, &mut findings);
    let by_group = assignments::by_group(observed);

    let mut ops = Ops::default();
    let mut unresolved: BTreeMap<&Euid, usize> = BTreeMap::new();
    let mut wanted: Vec<(&ExternalId, &DesiredGroup)> = desired.groups.iter().collect();
    // Names are distinct (desired state drops clashing ones); the id only breaks a tie in a
    // hand-made desired state, in the order the stable sort kept.
    wanted.sort_unstable_by(|a, b| a.1.name.cmp(&b.1.name).then_with(|| a.0.cmp(b.0)));

    // Reused from group to group: a large estate has tens of thousands of groups, most in sync.
    let mut resolved: Vec<(&UserId, &UserName)> = Vec::new();
    for (ext, want) in wanted {
        let protected =
            members::resolve(want, &users, &mut findings, &mut unresolved, &mut resolved);
        // Taken out, so that what remains afterwards is what is no longer wanted.
        let Some(have) = directory.ours.remove(ext) else {
            directory.create(&mut ops, &mut findings, ext, want, &resolved);
            continue;
        };
        let name = directory.rename(&mut ops, &mut findings, ext, want, have);
        // Built only when an operation needs it: most groups are in sync.
        let group = || GroupRef {
            name: name.clone(),
            external_id: ext.clone(),
            id: Some(have.id.clone()),
        };
        members::diff(&mut ops, &group, &resolved, have, &protected, &member);
        let held = by_group
            .get(&have.id)
            .map(assignments::GroupAssignments::as_slice)
            .unwrap_or_default();
        assignments::diff(&mut ops, &mut findings, desired, want, held, name, &group);
    }
    groups::obsolete(
        &mut ops,
        &mut findings,
        desired,
        observed,
        directory.ours,
        &by_group,
        &member,
    );
    members::report_unresolved(&mut findings, unresolved);

    let Ops {
        create,
        rename,
        add,
        assign,
        unassign,
        remove,
        delete,
    } = ops;
    let ops: Vec<Op> = [create, rename, add, assign, unassign, remove, delete]
        .into_iter()
        .flatten()
        .collect();
    let summary = summarize(&ops);
    if let Some(quota) = store_quota(desired, observed, &summary) {
        findings.insert(quota);
    }
    let estimate = estimate::estimate(&ops, desired, observed);
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        platform: desired.platform.clone(),
        basis: basis::Basis::of(desired, observed, &ops),
        scope: desired.scope.clone(),
        ops,
        findings: findings.into_iter().collect(),
        summary,
        estimate,
    }
}

/// AWS's quota of groups in one identity store.
pub const MAX_GROUPS_PER_STORE: usize = 100_000;

/// A finding when the plan wants more groups than an identity store holds, said before any
/// write: a 50,000-project estate with three roles wants 150,000. The store's count after the
/// plan is known when the observation read every group (an unscoped run).
fn store_quota(desired: &Desired, observed: &Observed, summary: &Summary) -> Option<Finding> {
    let wanted = desired.groups.len();
    let in_store = (desired.scope == crate::desired::Scope::All).then(|| {
        (observed.groups.len() + summary.groups_to_create).saturating_sub(summary.groups_to_delete)
    });
    let over = wanted > MAX_GROUPS_PER_STORE || in_store.is_some_and(|n| n > MAX_GROUPS_PER_STORE);
    over.then_some(Finding::StoreGroupQuota {
        wanted,
        in_store,
        limit: MAX_GROUPS_PER_STORE,
    })
}

fn summarize(ops: &[Op]) -> Summary {
    let mut s = Summary::default();
    for op in ops {
        match op {
            Op::CreateGroup { members, .. } => {
                s.groups_to_create += 1;
                s.members_to_add += members.len();
            }
            Op::RenameGroup { .. } => s.groups_to_rename += 1,
            Op::AddMembers { members, .. } => s.members_to_add += members.len(),
            Op::CreateAssignment { .. } => s.assignments_to_create += 1,
            Op::DeleteAssignment { .. } => s.assignments_to_delete += 1,
            Op::RemoveMembers { members, .. } => s.members_to_remove += members.len(),
            Op::DeleteGroup { .. } => s.groups_to_delete += 1,
        }
    }
    s
}
