//! The executor: turns a plan into calls through the directory seams.
//!
//! - **Order.** Each group's operations run in plan order, which is dependency order
//!   (create → rename → add → assign → unassign → remove → delete); different groups run side
//!   by side, at most `concurrency` at once. The clients' rate limiters set the pace per API
//!   family, and retry what is worth retrying.
//! - **sso-admin.** Assignment writes are serialized per account (AWS answers concurrent
//!   writes to one account with ConflictException) and at most `max_in_flight` are in flight
//!   (AWS allows 15).
//! - **Failure.** A group that could not be created skips its later operations; a group is
//!   deleted only when every earlier operation on it succeeded, so that no assignment is left
//!   pointing at nobody. Everything else goes on: every operation is idempotent, and the next
//!   run converges.
//! - **Trail.** Every operation ends in one [`Outcome`] and one audit line.

use crate::audit::{Audit, AuditLine, Phase};
use crate::directory::{AccountAssignments, DirectoryError, IdentityStore, Receipt};
use crate::model::{AccountId, ExternalId, GroupId, UserId};
use crate::observed::Assignment;
use crate::plan::{Member, Op, Plan};
use futures_util::{StreamExt, stream};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::{Mutex, Semaphore};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Groups worked on at once.
    pub concurrency: usize,
    /// Assignment creations and deletions in flight at once.
    pub max_in_flight: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            concurrency: 16,
            max_in_flight: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Index of the operation in `plan.ops`.
    pub op: usize,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub applied: usize,
    pub failed: usize,
    pub skipped: usize,
    /// One per operation, in plan order.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn is_success(&self) -> bool {
        self.failed == 0 && self.skipped == 0
    }

    /// The failed and skipped operations, for people.
    pub fn problems<'a>(&'a self, plan: &'a Plan) -> impl Iterator<Item = String> + 'a {
        self.outcomes
            .iter()
            .filter(|o| o.status != Status::Ok)
            .map(|o| {
                format!(
                    "{} {}: {}",
                    op_name(&plan.ops[o.op]),
                    plan.ops[o.op].group().name,
                    o.error.as_deref().unwrap_or("no reason given")
                )
            })
    }
}

/// Applies `plan`. `done` is called once per finished operation (for a progress bar).
pub async fn apply(
    plan: &Plan,
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    options: Options,
    audit: &Audit,
    done: &(dyn Fn(&Outcome) + Sync),
) -> Report {
    // Each group's operations, in plan order; groups in order of first appearance.
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut chain_of: HashMap<&ExternalId, usize> = HashMap::new();
    for (index, op) in plan.ops.iter().enumerate() {
        let next = chains.len();
        let chain = *chain_of.entry(&op.group().external_id).or_insert(next);
        if chain == next {
            chains.push(Vec::new());
        }
        chains[chain].push(index);
    }
    let accounts: BTreeMap<&AccountId, Mutex<()>> = plan
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::CreateAssignment { account, .. } | Op::DeleteAssignment { account, .. } => {
                Some((account, Mutex::new(())))
            }
            _ => None,
        })
        .collect();
    let run = Run {
        plan,
        identity,
        assignments,
        accounts,
        in_flight: Semaphore::new(options.max_in_flight.max(1)),
        audit,
        done,
    };
    let mut outcomes: Vec<Outcome> = stream::iter(chains)
        .map(|chain| run.chain(chain))
        .buffer_unordered(options.concurrency.max(1))
        .flat_map(stream::iter)
        .collect()
        .await;
    outcomes.sort_by_key(|o| o.op);
    let count = |status| outcomes.iter().filter(|o| o.status == status).count();
    Report {
        applied: count(Status::Ok),
        failed: count(Status::Failed),
        skipped: count(Status::Skipped),
        outcomes,
    }
}

struct Run<'a, I, A> {
    plan: &'a Plan,
    identity: &'a I,
    assignments: &'a A,
    accounts: BTreeMap<&'a AccountId, Mutex<()>>,
    in_flight: Semaphore,
    audit: &'a Audit,
    done: &'a (dyn Fn(&Outcome) + Sync),
}

impl<I: IdentityStore, A: AccountAssignments> Run<'_, I, A> {
    /// One group's operations, one after another.
    async fn chain(&self, chain: Vec<usize>) -> Vec<Outcome> {
        let mut id: Option<GroupId> = self.plan.ops[chain[0]].group().id.clone();
        let mut earlier_failure: Option<String> = None;
        let mut outcomes = Vec::with_capacity(chain.len());
        for index in chain {
            let op = &self.plan.ops[index];
            let blocked = match (op, &id, &earlier_failure) {
                (Op::CreateGroup { .. }, _, _) => None,
                (_, None, Some(e)) => Some(format!("the group was not created: {e}")),
                (_, None, None) => Some("the group does not exist".to_owned()),
                (Op::DeleteGroup { .. }, _, Some(e)) => {
                    Some(format!("kept, as an earlier change to it failed: {e}"))
                }
                _ => None,
            };
            // Checked before each write: a replica that cannot vouch for its lease sends
            // nothing (the fence is always open without leader election).
            let blocked = blocked.or_else(|| {
                crate::fence::check(op_name(op))
                    .err()
                    .map(|closed| closed.to_string())
            });
            let result = match blocked {
                Some(reason) => Err(Stop::Skip(reason)),
                None => {
                    self.audit(op, id.as_ref(), None);
                    self.write(op, id.as_ref())
                        .await
                        .map(|(created, receipt)| {
                            if let Some(created) = created {
                                id = Some(created);
                            }
                            receipt
                        })
                        .map_err(Stop::Fail)
                }
            };
            let outcome = match result {
                Ok(receipt) => Outcome {
                    op: index,
                    status: Status::Ok,
                    error: None,
                    request_id: receipt.request_id,
                },
                Err(Stop::Skip(reason)) => Outcome {
                    op: index,
                    status: Status::Skipped,
                    error: Some(reason),
                    request_id: None,
                },
                Err(Stop::Fail(e)) => {
                    let text = e.to_string();
                    earlier_failure.get_or_insert_with(|| text.clone());
                    tracing::warn!(operation = op_name(op), group = %op.group().name, error = %text, "change failed");
                    Outcome {
                        op: index,
                        status: Status::Failed,
                        request_id: request_id(&e),
                        error: Some(text),
                    }
                }
            };
            self.audit(op, id.as_ref(), Some(&outcome));
            (self.done)(&outcome);
            outcomes.push(outcome);
        }
        outcomes
    }

    /// One write; a create returns the new group's id.
    async fn write(
        &self,
        op: &Op,
        id: Option<&GroupId>,
    ) -> Result<(Option<GroupId>, Receipt), DirectoryError> {
        let group = op.group();
        let id = || id.expect("checked by the caller").clone();
        let receipt = match op {
            Op::CreateGroup { members, .. } => {
                let (id, receipt) = self
                    .identity
                    .create_group(&group.name, &group.external_id, &user_ids(members))
                    .await?;
                return Ok((Some(id), receipt));
            }
            Op::RenameGroup { .. } => self.identity.rename_group(&id(), &group.name).await?,
            Op::AddMembers { members, .. } => {
                self.identity.add_members(&id(), &user_ids(members)).await?
            }
            Op::RemoveMembers { members, .. } => {
                self.identity
                    .remove_members(&id(), &user_ids(members))
                    .await?
            }
            Op::DeleteGroup { .. } => self.identity.delete_group(&id()).await?,
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
                let assignment = Assignment {
                    account: account.clone(),
                    permission_set: permission_set.clone(),
                    group: id(),
                };
                let _account = self.accounts[account].lock().await;
                let _slot = self.in_flight.acquire().await.expect("never closed");
                if matches!(op, Op::CreateAssignment { .. }) {
                    self.assignments.create_assignment(&assignment).await?
                } else {
                    self.assignments.delete_assignment(&assignment).await?
                }
            }
        };
        Ok((None, receipt))
    }

    /// The intent line of `op` before it is sent (`outcome` is `None`), or its outcome after.
    fn audit(&self, op: &Op, id: Option<&GroupId>, outcome: Option<&Outcome>) {
        let (users, account, permission_set) = match op {
            Op::CreateGroup { members, .. }
            | Op::AddMembers { members, .. }
            | Op::RemoveMembers { members, .. } => (
                members.iter().map(|m| m.user_name.as_str()).collect(),
                None,
                None,
            ),
            Op::CreateAssignment {
                account,
                permission_set,
                ..
            }
            | Op::DeleteAssignment {
                account,
                permission_set,
                ..
            } => (
                Vec::new(),
                Some(account.as_str()),
                Some(permission_set.as_str()),
            ),
            Op::RenameGroup { .. } | Op::DeleteGroup { .. } => (Vec::new(), None, None),
        };
        self.audit.record(&AuditLine {
            timestamp: crate::audit::now(),
            platform: &self.plan.platform,
            operation: op_name(op),
            reason: op.reason(),
            group: op.group().name.as_str(),
            group_id: id.map(GroupId::as_str),
            users,
            account,
            permission_set,
            phase: if outcome.is_some() {
                Phase::Outcome
            } else {
                Phase::Intent
            },
            outcome: outcome.map(|o| o.status),
            request_id: outcome.and_then(|o| o.request_id.as_deref()),
            error: outcome.and_then(|o| o.error.as_deref()),
        });
    }
}

/// Why an operation did not succeed: it was not tried, or AWS refused it.
enum Stop {
    Skip(String),
    Fail(DirectoryError),
}

fn request_id(e: &DirectoryError) -> Option<String> {
    match e {
        DirectoryError::Aws { request_id, .. } => request_id.clone(),
        _ => None,
    }
}

pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::CreateGroup { .. } => "create_group",
        Op::RenameGroup { .. } => "rename_group",
        Op::AddMembers { .. } => "add_members",
        Op::CreateAssignment { .. } => "create_assignment",
        Op::DeleteAssignment { .. } => "delete_assignment",
        Op::RemoveMembers { .. } => "remove_members",
        Op::DeleteGroup { .. } => "delete_group",
    }
}

fn user_ids(members: &[Member]) -> Vec<UserId> {
    members.iter().map(|m| m.id.clone()).collect()
}
