//! Applying a plan through the directory seams, one operation after another, in plan order
//! (create → rename → add → assign → unassign → remove → delete), which is dependency order.
//!
//! This is the simple executor the in-memory demo uses. The AWS executor (bounded
//! concurrency, rate limits per API family, retries, audit trail) replaces it in "Apply".

use crate::directory::{AccountAssignments, DirectoryError, IdentityStore};
use crate::model::{ExternalId, GroupId, UserId};
use crate::observed::Assignment;
use crate::plan::{Op, Plan};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Index of the operation in `plan.ops`.
    pub op: usize,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub applied: usize,
    pub failed: usize,
    pub skipped: usize,
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn is_success(&self) -> bool {
        self.failed == 0 && self.skipped == 0
    }
}

pub async fn apply(
    plan: &Plan,
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
) -> Report {
    let mut report = Report::default();
    let mut created: HashMap<ExternalId, GroupId> = HashMap::new();
    for (index, op) in plan.ops.iter().enumerate() {
        let group = op.group();
        let id = group
            .id
            .clone()
            .or_else(|| created.get(&group.external_id).cloned());
        let result = match (op, id) {
            (Op::CreateGroup { members, .. }, _) => {
                let ids = user_ids(members);
                identity
                    .create_group(&group.name, &group.external_id, &ids)
                    .await
                    .map(|id| {
                        created.insert(group.external_id.clone(), id);
                    })
            }
            (_, None) => {
                report.skipped += 1;
                report.outcomes.push(Outcome {
                    op: index,
                    ok: false,
                    error: Some(format!("group {} was not created", group.name)),
                });
                continue;
            }
            (Op::RenameGroup { .. }, Some(id)) => identity.rename_group(&id, &group.name).await,
            (Op::AddMembers { members, .. }, Some(id)) => {
                identity.add_members(&id, &user_ids(members)).await
            }
            (Op::RemoveMembers { members, .. }, Some(id)) => {
                identity.remove_members(&id, &user_ids(members)).await
            }
            (
                Op::CreateAssignment {
                    account,
                    permission_set,
                    ..
                },
                Some(id),
            ) => {
                assignments
                    .create_assignment(&assignment(account, permission_set, id))
                    .await
            }
            (
                Op::DeleteAssignment {
                    account,
                    permission_set,
                    ..
                },
                Some(id),
            ) => {
                assignments
                    .delete_assignment(&assignment(account, permission_set, id))
                    .await
            }
            (Op::DeleteGroup { .. }, Some(id)) => identity.delete_group(&id).await,
        };
        record(&mut report, index, result);
    }
    report
}

fn user_ids(members: &[crate::plan::Member]) -> Vec<UserId> {
    members.iter().map(|m| m.id.clone()).collect()
}

fn assignment(
    account: &crate::model::AccountId,
    permission_set: &crate::model::PermissionSetArn,
    group: GroupId,
) -> Assignment {
    Assignment {
        account: account.clone(),
        permission_set: permission_set.clone(),
        group,
    }
}

fn record(report: &mut Report, op: usize, result: Result<(), DirectoryError>) {
    match result {
        Ok(()) => {
            report.applied += 1;
            report.outcomes.push(Outcome {
                op,
                ok: true,
                error: None,
            });
        }
        Err(e) => {
            report.failed += 1;
            report.outcomes.push(Outcome {
                op,
                ok: false,
                error: Some(e.to_string()),
            });
        }
    }
}
