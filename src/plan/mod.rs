//! The plan: `plan(&desired, &observed)`, the fewest operations that make AWS IAM Identity
//! Center hold the desired state, each with a reason for people, plus findings.
//!
//! Pure and deterministic. Invariants, each checked by a property test:
//! - only groups that carry our marker (and the `mst-` prefix) appear in an operation;
//! - every operation is within AWS's limits (≤ 100 member changes per request);
//! - applying the plan to the observation and planning again gives an empty plan.

pub mod guard;
mod render;
mod simulate;

use crate::desired::{Desired, DesiredGroup, Scope};
use crate::finding::Finding;
use crate::model::{
    AccountId, Euid, ExternalId, GROUP_PREFIX, GroupId, GroupIdentity, GroupName, PermissionSetArn,
    ProjectKey, UserId, UserName,
};
use crate::observed::{Assignment, AssignmentCoverage, Observed, ObservedGroup};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use simulate::apply_in_memory;

pub const PLAN_FORMAT_VERSION: u32 = 1;
/// AWS SCIM: at most 100 members inline in a create, 100 member changes in a PATCH.
pub const MAX_MEMBERS_PER_REQUEST: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub platform: String,
    pub observed_digest: String,
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
    pub seconds: f64,
}

fn is_all(scope: &Scope) -> bool {
    *scope == Scope::All
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The user index: exact `userName` first; a case-insensitive match only when it is unique.
struct Users<'a> {
    all: &'a BTreeMap<UserId, UserName>,
    /// Keyed by a copy of each name (inline when short): a lookup compares within the table.
    exact: HashMap<smol_str::SmolStr, (&'a UserId, &'a UserName)>,
    /// Built on the first euid without an exact match: most directories never need it.
    folded: std::cell::OnceCell<HashMap<String, Vec<(&'a UserId, &'a UserName)>>>,
}

enum Resolved<'a> {
    Found(&'a UserId, &'a UserName),
    Missing,
    Ambiguous(Vec<(&'a UserId, &'a UserName)>),
}

impl<'a> Users<'a> {
    fn new(users: &'a BTreeMap<UserId, UserName>) -> Self {
        let exact = users
            .iter()
            .map(|(id, name)| (name.0.clone(), (id, name)))
            .collect();
        Self {
            all: users,
            exact,
            folded: std::cell::OnceCell::new(),
        }
    }

    fn resolve(&self, euid: &Euid) -> Resolved<'a> {
        if let Some((id, name)) = self.exact.get(euid.as_str()) {
            return Resolved::Found(id, name);
        }
        let folded = self.folded.get_or_init(|| {
            let mut folded: HashMap<String, Vec<_>> = HashMap::new();
            for (id, name) in self.all {
                folded
                    .entry(name.as_str().to_lowercase())
                    .or_default()
                    .push((id, name));
            }
            folded
        });
        match folded.get(&euid.as_str().to_lowercase()).map(Vec::as_slice) {
            None | Some([]) => Resolved::Missing,
            Some([(id, name)]) => Resolved::Found(id, name),
            Some(many) => Resolved::Ambiguous(many.to_vec()),
        }
    }
}

/// A group's assignments as observed. Most groups have one: kept without an allocation.
enum GroupAssignments<'a> {
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

    fn as_slice(&self) -> &[&'a Assignment] {
        match self {
            GroupAssignments::One(a) => std::slice::from_ref(a),
            GroupAssignments::Many(all) => all,
        }
    }
}

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
    let users = Users::new(&observed.users);
    let member = |id: &UserId| Member {
        id: id.clone(),
        user_name: observed
            .users
            .get(id)
            .cloned()
            .unwrap_or_else(|| UserName(id.0.clone())),
    };

    // Sort the directory's groups into ours (by identity) and everybody else's. When two of
    // ours carry one marker, the smaller id is kept, so the choice does not depend on order.
    let platform = desired.platform.as_str();
    let mut ours: HashMap<&ExternalId, &ObservedGroup> =
        HashMap::with_capacity(observed.groups.len());
    let mut duplicates: Vec<&ObservedGroup> = Vec::new();
    let mut foreign_by_name: HashMap<String, &ObservedGroup> = HashMap::new();
    let mut foreign_markers: HashMap<&ExternalId, &ObservedGroup> = HashMap::new();
    let mut by_group: HashMap<&GroupId, GroupAssignments> =
        HashMap::with_capacity(observed.groups.len());
    for a in &observed.assignments {
        by_group
            .entry(&a.group)
            .and_modify(|held| held.push(a))
            .or_insert(GroupAssignments::One(a));
    }
    for g in &observed.groups {
        let ext = g.external_id.as_ref();
        let marked_ours = ext.is_some_and(|e| GroupIdentity::is_ours(platform, e.as_str()));
        let prefixed = g.name.as_str().starts_with(GROUP_PREFIX);
        match ext {
            Some(ext) if marked_ours && prefixed => match ours.get_mut(ext) {
                Some(kept) if kept.id <= g.id => duplicates.push(g),
                Some(kept) => duplicates.push(std::mem::replace(kept, g)),
                None => {
                    ours.insert(ext, g);
                }
            },
            Some(ext) if marked_ours => {
                foreign_markers.insert(ext, g);
                foreign_by_name.insert(g.name.as_str().to_lowercase(), g);
            }
            _ => {
                let marked_elsewhere = ext.is_some_and(|e| GroupIdentity::is_marked(e.as_str()));
                if prefixed && !marked_elsewhere {
                    findings.insert(Finding::ForeignGroupIgnored {
                        name: g.name.clone(),
                        id: g.id.clone(),
                    });
                }
                foreign_by_name.insert(g.name.as_str().to_lowercase(), g);
            }
        }
    }
    for g in duplicates {
        let ext = g.external_id.as_ref().expect("duplicates are marked");
        findings.insert(Finding::DuplicateManagedGroup {
            name: g.name.clone(),
            id: g.id.clone(),
            kept: ours[ext].id.clone(),
        });
    }

    let mut ops = Ops::default();
    let mut unresolved: BTreeMap<&Euid, usize> = BTreeMap::new();
    let mut wanted: Vec<(&ExternalId, &DesiredGroup)> = desired.groups.iter().collect();
    // Names are distinct (desired state drops clashing ones); the id only breaks a tie in a
    // hand-made desired state, in the order the stable sort kept.
    wanted.sort_unstable_by(|a, b| a.1.name.cmp(&b.1.name).then_with(|| a.0.cmp(b.0)));

    // Reused from group to group: a large estate has tens of thousands of groups, most in sync.
    let mut members: Vec<(&UserId, &UserName)> = Vec::new();
    for (ext, want) in wanted {
        // Resolve members; a user matched ambiguously is neither added nor removed.
        members.clear();
        let mut protected: HashSet<&UserId> = HashSet::new();
        for euid in &want.members {
            match users.resolve(euid) {
                Resolved::Found(id, name) => members.push((id, name)),
                Resolved::Missing => *unresolved.entry(euid).or_default() += 1,
                Resolved::Ambiguous(candidates) => {
                    findings.insert(Finding::AmbiguousEuid {
                        euid: euid.clone(),
                        candidates: candidates.iter().map(|(_, n)| n.to_string()).collect(),
                    });
                    protected.extend(candidates.iter().map(|(id, _)| *id));
                }
            }
        }
        // Two euids may resolve to one user (one exactly, one ignoring case).
        members.sort_unstable_by_key(|(id, _)| *id);
        members.dedup_by_key(|(id, _)| *id);
        // Sorted, as the permission sets are.
        let wanted_assignments = want.permission_sets.iter().map(|ps| (&want.account, ps));

        // Taken out, so that what remains afterwards is what is no longer wanted.
        let Some(have) = ours.remove(ext) else {
            if let Some(g) = foreign_markers.get(ext) {
                findings.insert(Finding::NameTakenByForeignGroup {
                    name: g.name.clone(),
                    id: g.id.clone(),
                });
                continue;
            }
            if let Some(g) = foreign_by_name.get(&want.name.as_str().to_lowercase()) {
                findings.insert(Finding::NameTakenByForeignGroup {
                    name: g.name.clone(),
                    id: g.id.clone(),
                });
                continue;
            }
            let group = GroupRef {
                name: want.name.clone(),
                external_id: ext.clone(),
                id: None,
            };
            let all: Vec<Member> = members
                .iter()
                .map(|(id, name)| Member {
                    id: (*id).clone(),
                    user_name: (*name).clone(),
                })
                .collect();
            let mut chunks = sorted_chunks(all);
            let first = if chunks.is_empty() {
                Vec::new()
            } else {
                chunks.remove(0)
            };
            ops.create.push(Op::CreateGroup {
                group: group.clone(),
                members: first,
                reason: Reason::GroupMissing,
            });
            for chunk in chunks {
                ops.add.push(Op::AddMembers {
                    group: group.clone(),
                    members: chunk,
                    reason: Reason::GroupMissing,
                });
            }
            for (account, ps) in wanted_assignments {
                ops.assign.push(Op::CreateAssignment {
                    group: group.clone(),
                    account: account.clone(),
                    permission_set: ps.clone(),
                    reason: Reason::AssignmentMissing,
                });
            }
            continue;
        };

        let mut name = &want.name;
        if have.name != want.name {
            let group = GroupRef {
                name: want.name.clone(),
                external_id: ext.clone(),
                id: Some(have.id.clone()),
            };
            match foreign_by_name.get(&want.name.as_str().to_lowercase()) {
                Some(g) => {
                    findings.insert(Finding::NameTakenByForeignGroup {
                        name: g.name.clone(),
                        id: g.id.clone(),
                    });
                    name = &have.name;
                }
                None => ops.rename.push(Op::RenameGroup {
                    group,
                    from: have.name.clone(),
                    reason: Reason::NameChanged,
                }),
            }
        }
        // Built only when an operation needs it: most groups are in sync.
        let group = || GroupRef {
            name: name.clone(),
            external_id: ext.clone(),
            id: Some(have.id.clone()),
        };

        // Both sides are sorted by id: one walk finds what to add and what to remove.
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        let mut had = have.members.iter().peekable();
        for &(id, name) in &members {
            while let Some(gone) = had.next_if(|h| *h < id) {
                if !protected.contains(gone) {
                    remove.push(member(gone));
                }
            }
            if had.next_if(|h| *h == id).is_none() {
                add.push(Member {
                    id: id.clone(),
                    user_name: name.clone(),
                });
            }
        }
        remove.extend(had.filter(|h| !protected.contains(h)).map(member));
        for chunk in sorted_chunks(add) {
            ops.add.push(Op::AddMembers {
                group: group(),
                members: chunk,
                reason: Reason::RoleBound,
            });
        }
        for chunk in sorted_chunks(remove) {
            ops.remove.push(Op::RemoveMembers {
                group: group(),
                members: chunk,
                reason: Reason::RoleUnbound,
            });
        }

        // Sorted and distinct: a group's assignments were gathered in the set's order.
        let held = by_group
            .get(&have.id)
            .map(GroupAssignments::as_slice)
            .unwrap_or_default();
        let is_held = |&(account, ps): &(&AccountId, &PermissionSetArn)| {
            held.iter()
                .any(|a| a.account == *account && a.permission_set == *ps)
        };
        for (account, ps) in wanted_assignments.filter(|p| !is_held(p)) {
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

    // Our groups that are no longer wanted.
    let mut obsolete: Vec<(&ExternalId, &ObservedGroup)> = ours.into_iter().collect();
    // By name, then id: the map hands them out in a per-process order, and two may share a name.
    obsolete.sort_by(|a, b| (&a.1.name, &a.1.id).cmp(&(&b.1.name, &b.1.id)));
    // Needed only to word the reason for a deletion; most plans delete nothing.
    let desired_projects: HashSet<&ProjectKey> = if obsolete.is_empty() {
        HashSet::new()
    } else {
        desired
            .groups
            .values()
            .map(|g| &g.identity.project)
            .collect()
    };
    for (ext, have) in obsolete {
        let identity = GroupIdentity::parse(&desired.platform, ext.as_str()).expect("ours parse");
        if desired.held.contains(&identity.project) || !desired.scope.contains(&identity.project) {
            continue;
        }
        let reason = if desired_projects.contains(&identity.project) {
            Reason::RoleUnmapped
        } else {
            Reason::ProjectGone
        };
        let group = GroupRef {
            name: have.name.clone(),
            external_id: ext.clone(),
            id: Some(have.id.clone()),
        };
        let assignments = by_group
            .get(&have.id)
            .map(GroupAssignments::as_slice)
            .unwrap_or_default();
        // Deleting a group leaves its assignments behind, pointing at nobody (aws-sso.md
        // §F.10): a group is deleted only when its assignments are known and can go first.
        let unseen = observed.assignment_coverage == AssignmentCoverage::DesiredPairs;
        if unseen || (!assignments.is_empty() && !desired.policy.may_delete_assignments) {
            findings.insert(Finding::GroupKeptForAssignments {
                name: have.name.clone(),
                assignments: (!unseen).then_some(assignments.len()),
            });
            let all: Vec<Member> = have.members.iter().map(member).collect();
            for chunk in sorted_chunks(all) {
                ops.remove.push(Op::RemoveMembers {
                    group: group.clone(),
                    members: chunk,
                    reason: Reason::GroupRetired,
                });
            }
            continue;
        }
        for a in assignments {
            ops.unassign.push(Op::DeleteAssignment {
                group: group.clone(),
                account: a.account.clone(),
                permission_set: a.permission_set.clone(),
                reason,
            });
        }
        ops.delete.push(Op::DeleteGroup { group, reason });
    }

    for (euid, groups) in unresolved {
        findings.insert(Finding::UnresolvedEuid {
            euid: euid.clone(),
            groups,
        });
    }

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
    let estimate = estimate(&ops, desired);
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        platform: desired.platform.clone(),
        observed_digest: observed.digest(),
        scope: desired.scope.clone(),
        ops,
        findings: findings.into_iter().collect(),
        summary,
        estimate,
    }
}

fn sorted_chunks(mut members: Vec<Member>) -> Vec<Vec<Member>> {
    members.sort();
    members
        .chunks(MAX_MEMBERS_PER_REQUEST)
        .map(<[Member]>::to_vec)
        .collect()
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

fn estimate(ops: &[Op], desired: &Desired) -> Estimate {
    let scim_calls = ops.iter().filter(|o| o.family() == Family::Scim).count();
    let sso_admin_calls = 2 * ops
        .iter()
        .filter(|o| o.family() == Family::SsoAdmin)
        .count();
    let seconds = (scim_calls as f64 / desired.policy.scim_rate)
        .max(sso_admin_calls as f64 / desired.policy.sso_admin_rate);
    Estimate {
        scim_calls,
        sso_admin_calls,
        seconds,
    }
}
