//! One batch of projects reconciled against AWS: their groups looked up, read, planned and
//! written ([`crate::sync::sync_changes`]), and the outcome told apart per project. A failure
//! that stops the batch (a read AWS refuses for one account, say) is retried project by
//! project, so that it stays the failing project's and every other project goes on.

use crate::audit::Audit;
use crate::desired::{Desired, Scope};
use crate::directory::{AccountAssignments, IdentityStore, Users};
use crate::model::{GroupIdentity, ProjectKey};
use crate::plan::Plan;
use crate::plan::guard::{Managed, Tripped};
use crate::sync::{Settings, SyncReport, sync_changes};
use std::collections::{BTreeMap, BTreeSet};

/// What a reconcile did to one project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectOutcome {
    pub applied: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Removals left out because the deletion guard paused them.
    pub withheld: usize,
    /// Why it is not done, for people: AWS's error, or the operations that failed.
    pub error: Option<String>,
}

/// A batch's outcome: per project, and the requests it made.
#[derive(Debug, Default)]
pub struct BatchReport {
    pub projects: BTreeMap<ProjectKey, ProjectOutcome>,
    /// The plans applied (one, or one per project after a split) with what came of their
    /// operations, for the metrics.
    pub plans: Vec<(Plan, crate::apply::Report)>,
    /// What was left undone, with the projects each plan covered (the drift that remains).
    pub remaining: Vec<(Vec<ProjectKey>, Plan)>,
    pub scim_calls: u64,
    pub sso_admin_calls: u64,
    pub scim_reads: u64,
    pub sso_admin_reads: u64,
    pub refused: Option<Tripped>,
    /// The projects with groups of ours seen in AWS.
    pub seen: BTreeSet<ProjectKey>,
}

fn projects_of(desired: &Desired) -> BTreeSet<ProjectKey> {
    match &desired.scope {
        Scope::Only { projects, .. } => projects.clone(),
        Scope::All => desired
            .groups
            .values()
            .map(|g| g.identity.project.clone())
            .collect(),
    }
}

impl BatchReport {
    fn add(&mut self, slice: &Desired, result: Result<SyncReport, String>) {
        let projects = projects_of(slice);
        let report = match result {
            Ok(report) => report,
            Err(error) => {
                for project in projects {
                    self.projects.insert(
                        project,
                        ProjectOutcome {
                            error: Some(error.clone()),
                            ..ProjectOutcome::default()
                        },
                    );
                }
                return;
            }
        };
        self.scim_calls += report.calls.scim;
        self.sso_admin_calls += report.calls.sso_admin;
        self.scim_reads += report.calls.scim_reads;
        self.sso_admin_reads += report.calls.sso_admin_reads;
        self.seen.extend(report.seen.iter().cloned());
        let mut outcomes: BTreeMap<ProjectKey, ProjectOutcome> = projects
            .into_iter()
            .map(|p| (p, ProjectOutcome::default()))
            .collect();
        if let Some(tripped) = &report.refused {
            self.refused = Some(tripped.clone());
            for outcome in outcomes.values_mut() {
                outcome.error = Some(format!("refused, nothing applied: {tripped}"));
            }
        }
        let plan = &report.plan;
        let project_of_op = |op: &crate::plan::Op| {
            GroupIdentity::parse(&slice.platform, op.group().external_id.as_str())
                .map(|i| i.project)
        };
        let project_of = |op: usize| project_of_op(&plan.ops[op]);
        let problems: Vec<String> = report.report.problems(plan).collect();
        let mut failing = report
            .report
            .outcomes
            .iter()
            .filter(|o| o.status != crate::apply::Status::Ok);
        for outcome in &report.report.outcomes {
            let Some(entry) = project_of(outcome.op).and_then(|p| outcomes.get_mut(&p)) else {
                continue;
            };
            match outcome.status {
                crate::apply::Status::Ok => entry.applied += 1,
                crate::apply::Status::Failed => entry.failed += 1,
                crate::apply::Status::Skipped => entry.skipped += 1,
            }
        }
        for op in &report.withheld {
            if let Some(entry) = project_of_op(op).and_then(|p| outcomes.get_mut(&p)) {
                entry.withheld += 1;
            }
        }
        for problem in problems {
            let Some(outcome) = failing.next() else { break };
            if let Some(entry) = project_of(outcome.op).and_then(|p| outcomes.get_mut(&p))
                && entry.error.is_none()
            {
                entry.error = Some(problem);
            }
        }
        // An op left over without an outcome (the guard refused, or it was never reached).
        for op in &report.remaining.ops {
            if let Some(entry) = project_of_op(op).and_then(|p| outcomes.get_mut(&p))
                && entry.error.is_none()
            {
                entry.error = Some(format!("{} is left to do", op.group().name));
            }
        }
        self.remaining
            .push((outcomes.keys().cloned().collect(), report.remaining));
        self.projects.extend(outcomes);
        self.plans.push((report.plan, report.report));
    }
}

/// Reconciles `slice` (the desired state of a few projects, scoped to them); `estate` is what
/// we manage across the platform, the deletion guard's base. `planned` sees each plan before
/// it is applied.
#[allow(clippy::too_many_arguments)]
pub async fn reconcile(
    slice: &Desired,
    estate: Managed,
    listed_users: Option<&Users>,
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    settings: Settings,
    audit: &Audit,
    mut planned: impl FnMut(&Plan),
) -> BatchReport {
    let mut out = BatchReport::default();
    let projects = projects_of(slice);
    let whole = sync_changes(
        slice,
        estate,
        listed_users,
        identity,
        assignments,
        settings,
        audit,
        &mut planned,
        &|_| {},
    )
    .await;
    match whole {
        Ok(report) => out.add(slice, Ok(report)),
        Err(error) if projects.len() <= 1 => out.add(slice, Err(error.to_string())),
        Err(error) => {
            tracing::info!(%error, projects = projects.len(), "a batch failed; reconciling its projects one by one");
            for project in projects {
                let mut one = slice.within(&[project.clone()].into());
                // A narrowed slice stays narrowed: without its groups, the rest of the project
                // would read as unwanted and be retired.
                one.only_groups = slice.only_groups.as_ref().map(|only| {
                    only.iter()
                        .filter(|id| {
                            GroupIdentity::parse(&slice.platform, id.as_str())
                                .is_some_and(|i| i.project == project)
                        })
                        .cloned()
                        .collect()
                });
                let result = sync_changes(
                    &one,
                    estate,
                    listed_users,
                    identity,
                    assignments,
                    settings,
                    audit,
                    &mut planned,
                    &|_| {},
                )
                .await
                .map_err(|e| e.to_string());
                out.add(&one, result);
            }
        }
    }
    out
}
