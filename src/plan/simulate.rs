//! Applying a plan to an observation in memory: what AWS would hold if every operation
//! succeeded. Used by property tests (planning again must give an empty plan) and the demo.

use super::{Op, Plan};
use crate::model::GroupId;
use crate::observed::{Assignment, Observed, ObservedGroup};

pub fn apply_in_memory(plan: &Plan, observed: &Observed) -> Observed {
    let mut out = observed.clone();
    for op in &plan.ops {
        let group_id = |out: &Observed| -> Option<GroupId> {
            let g = op.group();
            g.id.clone().or_else(|| {
                out.groups
                    .iter()
                    .find(|o| o.external_id.as_ref() == Some(&g.external_id))
                    .map(|o| o.id.clone())
            })
        };
        match op {
            Op::CreateGroup { group, members, .. } => out.groups.push(ObservedGroup {
                id: GroupId(format!("sim-{}", group.external_id)),
                name: group.name.clone(),
                external_id: Some(group.external_id.clone()),
                members: members.iter().map(|m| m.id.clone()).collect(),
            }),
            Op::RenameGroup { group, .. } => {
                let id = group_id(&out);
                if let Some(g) = find(&mut out, id.as_ref()) {
                    g.name = group.name.clone();
                }
            }
            Op::AddMembers { members, .. } => {
                let id = group_id(&out);
                if let Some(g) = find(&mut out, id.as_ref()) {
                    g.members.extend(members.iter().map(|m| m.id.clone()));
                }
            }
            Op::RemoveMembers { members, .. } => {
                let id = group_id(&out);
                if let Some(g) = find(&mut out, id.as_ref()) {
                    for m in members {
                        g.members.remove(&m.id);
                    }
                }
            }
            Op::CreateAssignment {
                account,
                permission_set,
                ..
            }
            | Op::DeleteAssignment {
                account,
                permission_set,
                ..
            } => {
                let Some(group) = group_id(&out) else {
                    continue;
                };
                let a = Assignment {
                    account: account.clone(),
                    permission_set: permission_set.clone(),
                    group,
                };
                if matches!(op, Op::CreateAssignment { .. }) {
                    out.assignments.insert(a);
                } else {
                    out.assignments.remove(&a);
                }
            }
            Op::DeleteGroup { .. } => {
                if let Some(id) = group_id(&out) {
                    out.groups.retain(|g| g.id != id);
                    out.assignments.retain(|a| a.group != id);
                }
            }
        }
    }
    out
}

fn find<'a>(out: &'a mut Observed, id: Option<&GroupId>) -> Option<&'a mut ObservedGroup> {
    let id = id?;
    out.groups.iter_mut().find(|g| &g.id == id)
}
