//! Groups: the directory's groups sorted into ours (by identity marker) and everybody else's;
//! a wanted group created (unless a foreign group holds its name) or renamed; a group of ours
//! no longer wanted deleted, or emptied while its assignments must stay.

use super::assignments::GroupAssignments;
use super::members::sorted_chunks;
use super::{GroupRef, Member, Op, Ops, Reason};
use crate::desired::{Desired, DesiredGroup};
use crate::finding::Finding;
use crate::model::{
    ExternalId, GROUP_PREFIX, GroupId, GroupIdentity, GroupName, ProjectKey, UserId, UserName,
};
use crate::observed::{AssignmentCoverage, Observed, ObservedGroup};
use foldhash::{HashMap, HashMapExt, HashSet};
use std::collections::BTreeSet;

/// The directory's groups as the plan sees them.
pub(super) struct Directory<'a> {
    /// Ours by identity; what is left once the wanted ones are taken out is no longer wanted.
    pub(super) ours: HashMap<&'a ExternalId, &'a ObservedGroup>,
    /// Every group that is not ours, by its name folded to lower case.
    foreign_by_name: HashMap<String, &'a ObservedGroup>,
    /// Groups carrying our marker without the `mst-` prefix: not ours to touch.
    foreign_markers: HashMap<&'a ExternalId, &'a ObservedGroup>,
}

impl<'a> Directory<'a> {
    /// Sorts the observed groups. When two of ours carry one marker, the smaller id is kept, so
    /// the choice does not depend on order.
    pub(super) fn sort(
        platform: &str,
        observed: &'a Observed,
        findings: &mut BTreeSet<Finding>,
    ) -> Self {
        let mut ours: HashMap<&ExternalId, &ObservedGroup> =
            HashMap::with_capacity(observed.groups.len());
        let mut duplicates: Vec<&ObservedGroup> = Vec::new();
        let mut foreign_by_name: HashMap<String, &ObservedGroup> = HashMap::new();
        let mut foreign_markers: HashMap<&ExternalId, &ObservedGroup> = HashMap::new();
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
                    let marked_elsewhere =
                        ext.is_some_and(|e| GroupIdentity::is_marked(e.as_str()));
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
        Self {
            ours,
            foreign_by_name,
            foreign_markers,
        }
    }

    /// A wanted group that does not exist: created with its first 100 members inline, the
    /// rest added, then assigned; unless a group that is not ours holds its name or marker.
    pub(super) fn create(
        &self,
        ops: &mut Ops,
        findings: &mut BTreeSet<Finding>,
        ext: &ExternalId,
        want: &DesiredGroup,
        members: &[(&UserId, &UserName)],
    ) {
        let taken = self
            .foreign_markers
            .get(ext)
            .or_else(|| self.foreign_by_name.get(&want.name.as_str().to_lowercase()));
        if let Some(g) = taken {
            findings.insert(Finding::NameTakenByForeignGroup {
                name: g.name.clone(),
                id: g.id.clone(),
            });
            return;
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
        for ps in want.permission_sets.iter() {
            ops.assign.push(Op::CreateAssignment {
                group: group.clone(),
                account: want.account.clone(),
                permission_set: ps.clone(),
                reason: Reason::AssignmentMissing,
            });
        }
    }

    /// Renames `have` when its name is not the wanted one and no foreign group holds that; the
    /// name the group's other operations go under.
    pub(super) fn rename<'w>(
        &self,
        ops: &mut Ops,
        findings: &mut BTreeSet<Finding>,
        ext: &ExternalId,
        want: &'w DesiredGroup,
        have: &'w ObservedGroup,
    ) -> &'w GroupName {
        if have.name == want.name {
            return &want.name;
        }
        match self.foreign_by_name.get(&want.name.as_str().to_lowercase()) {
            Some(g) => {
                findings.insert(Finding::NameTakenByForeignGroup {
                    name: g.name.clone(),
                    id: g.id.clone(),
                });
                &have.name
            }
            None => {
                ops.rename.push(Op::RenameGroup {
                    group: GroupRef {
                        name: want.name.clone(),
                        external_id: ext.clone(),
                        id: Some(have.id.clone()),
                    },
                    from: have.name.clone(),
                    reason: Reason::NameChanged,
                });
                &want.name
            }
        }
    }
}

/// Our groups that are no longer wanted, in scope and not held: deleted after their
/// assignments, or emptied and reported while their assignments cannot be seen or removed.
pub(super) fn obsolete(
    ops: &mut Ops,
    findings: &mut BTreeSet<Finding>,
    desired: &Desired,
    observed: &Observed,
    ours: HashMap<&ExternalId, &ObservedGroup>,
    by_group: &HashMap<&GroupId, GroupAssignments<'_>>,
    member: &impl Fn(&UserId) -> Member,
) {
    let mut obsolete: Vec<(&ExternalId, &ObservedGroup)> = ours.into_iter().collect();
    // By name, then id: the map hands them out in a per-process order, and two may share a name.
    obsolete.sort_by(|a, b| (&a.1.name, &a.1.id).cmp(&(&b.1.name, &b.1.id)));
    // Needed only to word the reason for a deletion; most plans delete nothing.
    let desired_projects: HashSet<&ProjectKey> = if obsolete.is_empty() {
        HashSet::default()
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
}
