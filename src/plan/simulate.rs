//! Applying a plan to an observation in memory: what AWS would hold if every operation
//! succeeded. Used by property tests (planning again must give an empty plan) and the demo.

use super::{Op, Plan};
use crate::model::{ExternalId, GroupId};
use crate::observed::{Assignment, Observed, ObservedGroup};
use std::collections::HashMap;

pub fn apply_in_memory(plan: &Plan, observed: &Observed) -> Observed {
    let mut out = observed.clone();
    // Groups by id, and ids by external id for groups created by this plan.
    let mut index: HashMap<GroupId, usize> = out
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.clone(), i))
        .collect();
    let mut created: HashMap<ExternalId, GroupId> = HashMap::new();
    let mut deleted = Vec::new();
    for op in &plan.ops {
        let g = op.group();
        let id =
            g.id.clone()
                .or_else(|| created.get(&g.external_id).cloned());
        let group = |out: &mut Observed, id: &Option<GroupId>| -> Option<usize> {
            id.as_ref()
                .and_then(|id| index.get(id).copied())
                .filter(|i| *i < out.groups.len())
        };
        match op {
            Op::CreateGroup {
                group: g, members, ..
            } => {
                let id = GroupId::from(format!("sim-{}", g.external_id));
                created.insert(g.external_id.clone(), id.clone());
                index.insert(id.clone(), out.groups.len());
                out.groups.push(ObservedGroup {
                    id,
                    name: g.name.clone(),
                    external_id: Some(g.external_id.clone()),
                    members: members.iter().map(|m| m.id.clone()).collect(),
                });
            }
            Op::RenameGroup { group: g, .. } => {
                if let Some(i) = group(&mut out, &id) {
                    out.groups[i].name = g.name.clone();
                }
            }
            Op::AddMembers { members, .. } => {
                if let Some(i) = group(&mut out, &id) {
                    out.groups[i]
                        .members
                        .extend(members.iter().map(|m| m.id.clone()));
                }
            }
            Op::RemoveMembers { members, .. } => {
                if let Some(i) = group(&mut out, &id) {
                    for m in members {
                        out.groups[i].members.remove(&m.id);
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
                let Some(group) = id else { continue };
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
                if let Some(id) = id {
                    out.assignments.retain(|a| a.group != id);
                    deleted.push(id);
                }
            }
        }
    }
    if !deleted.is_empty() {
        out.groups.retain(|g| !deleted.contains(&g.id));
    }
    out
}
