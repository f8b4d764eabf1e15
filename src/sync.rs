//! One sync: observe what AWS holds, plan, apply, then observe again what was touched to
//! report the drift that is left. The scheduler, the webhook, `sync` and the demo all run this.

use crate::apply::{self, Options, Outcome, Report};
use crate::audit::Audit;
use crate::desired::Desired;
use crate::directory::{
    AccountAssignments, AssignmentReads, DirectoryError, IdentityStore, Users, observe_knowing,
};
use crate::model::{GroupIdentity, ProjectKey};
use crate::observed::Observed;
use crate::plan::basis::{Basis, Changed};
use crate::plan::guard::{self, Limits, Managed, Tripped};
use crate::plan::{Family, Op, Plan, plan};
use serde::Serialize;
use std::collections::BTreeSet;

/// How a sync reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub reads: AssignmentReads,
    pub options: Options,
    /// The mass-deletion guard; `None` lets a plan delete any amount (`--allow-mass-delete`).
    pub guard: Option<Limits>,
    /// Apply only additions: `serve` while the guard has paused removals across reads.
    pub withhold_removals: bool,
}

/// The version of the sync report's JSON (`sync --json`, `docs/schema/sync-report.schema.json`).
pub const REPORT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub format_version: u32,
    pub plan: Plan,
    pub report: Report,
    /// What is left to do in the projects the plan touched, observed after applying.
    pub remaining: Plan,
    /// Requests the apply step made, per API family, beside the plan's estimate.
    pub calls: Calls,
    /// Set when the mass-deletion guard refused the plan: nothing was applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<Tripped>,
    /// Projects left as they are because their desired state could not be computed (the
    /// findings say why): a person must fix what stands in the way.
    pub held: BTreeSet<ProjectKey>,
    /// What the plan would also have taken away, left out because removals are paused
    /// ([`Settings::withhold_removals`]).
    #[serde(skip)]
    pub withheld: Vec<crate::plan::Op>,
    /// The projects with groups of ours in AWS as observed before applying, wanted or not
    /// (`serve`'s drift scan keeps reading a project no longer wanted while its groups remain).
    #[serde(skip)]
    pub seen: BTreeSet<ProjectKey>,
}

/// Requests per API family: `scim` and `sso_admin` are the apply step's (beside the plan's
/// estimate); the `_reads` are the observations' before and after it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Calls {
    pub scim: u64,
    pub scim_estimate: usize,
    pub sso_admin: u64,
    pub sso_admin_estimate: usize,
    pub scim_reads: u64,
    pub sso_admin_reads: u64,
}

/// Why `sync --plan` did not apply a saved plan, or could not read AWS.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(
        "{0}; nothing was applied: make a new plan with `aws-replicator plan --out` and review it"
    )]
    Stale(Changed),
}

impl SyncReport {
    /// Everything was applied, and nothing is left to do (held projects aside).
    pub fn is_success(&self) -> bool {
        self.refused.is_none() && self.report.is_success() && self.remaining.ops.is_empty()
    }
}

/// Observes, plans and reports the plan through `planned` (to show it before it runs), then
/// applies it and checks what was touched.
pub async fn sync(
    desired: &Desired,
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    settings: Settings,
    audit: &Audit,
    planned: impl FnMut(&Plan),
    done: &(dyn Fn(&Outcome) + Sync),
) -> Result<SyncReport, DirectoryError> {
    let choose = |desired: &Desired, observed: &Observed| Ok(plan(desired, observed));
    run::<DirectoryError>(
        desired,
        identity,
        assignments,
        settings,
        audit,
        choose,
        None,
        None,
        planned,
        done,
    )
    .await
}

/// A sync by change: `changed` is the desired state narrowed to the projects whose desired
/// state changed (or that a drift scan or an earlier failure marked), and `estate` what we
/// manage across the platform once the last run's state holds. The guard measures deletions
/// against the estate, not against the few projects observed. Nothing is observed again after
/// applying: AWS confirmed each write, what failed is what remains, and the drift scan reads
/// the projects again in its turn. `listed_users`: the drift scan's listing of the users, in
/// place of a new one when a wanted user is not found by name.
#[allow(clippy::too_many_arguments)]
pub async fn sync_changes(
    changed: &Desired,
    estate: Managed,
    listed_users: Option<&Users>,
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    settings: Settings,
    audit: &Audit,
    planned: impl FnMut(&Plan),
    done: &(dyn Fn(&Outcome) + Sync),
) -> Result<SyncReport, DirectoryError> {
    let choose = |desired: &Desired, observed: &Observed| Ok(plan(desired, observed));
    run::<DirectoryError>(
        changed,
        identity,
        assignments,
        settings,
        audit,
        choose,
        Some(estate),
        listed_users,
        planned,
        done,
    )
    .await
}

/// What one slice of the drift scan found.
pub struct ScanSlice {
    /// What would bring the slice's projects to their desired state; the scan applies none of
    /// it, a run does.
    pub plan: Plan,
    /// The groups `plan` touches.
    pub drifted: BTreeSet<crate::model::ExternalId>,
    /// The projects with groups of ours in AWS, wanted or not.
    pub seen: BTreeSet<ProjectKey>,
}

/// Reads one slice of the drift scan: `narrowed` (the known desired state within the slice's
/// projects) observed through the cycle's listings of the store's groups and users, and
/// planned. Nothing is written.
pub async fn scan_slice(
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    mut narrowed: Desired,
    reads: AssignmentReads,
    groups: &crate::scan::Groups,
    users: &Users,
) -> Result<ScanSlice, DirectoryError> {
    users.resolve(&mut narrowed);
    let records = groups.records(&narrowed);
    let observed = crate::directory::observe_records(
        identity,
        assignments,
        &narrowed,
        reads,
        records,
        Some(users),
    )
    .await?;
    let plan = plan(&narrowed, &observed);
    Ok(ScanSlice {
        drifted: groups_of(&plan),
        seen: projects_seen(&narrowed.platform, &observed),
        plan,
    })
}

/// Applies `saved` (a plan made earlier by `plan --out` and reviewed) exactly as it is, once
/// what it rests on reads as it did when it was made: the desired state of the projects it
/// touches (meshStack and the config, read again) and AWS's state of the groups it touches
/// (observed again for `desired`). Otherwise nothing is written, and the error names what
/// changed.
#[allow(clippy::too_many_arguments)]
pub async fn sync_saved(
    saved: Plan,
    desired: &Desired,
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    settings: Settings,
    audit: &Audit,
    planned: impl FnMut(&Plan),
    done: &(dyn Fn(&Outcome) + Sync),
) -> Result<SyncReport, SavedPlanError> {
    let choose = move |desired: &Desired, observed: &Observed| {
        let changed = saved
            .basis
            .changed(&Basis::of(desired, observed, &saved.ops));
        if !changed.is_empty() {
            return Err(SavedPlanError::Stale(changed));
        }
        Ok(saved)
    };
    run(
        desired,
        identity,
        assignments,
        settings,
        audit,
        choose,
        None,
        None,
        planned,
        done,
    )
    .await
}

/// One sync with the plan `choose` picks once AWS has been observed: a fresh one, or a saved
/// one that still fits. With `estate`, a sync by change ([`sync_changes`]).
#[allow(clippy::too_many_arguments)]
async fn run<E: From<DirectoryError>>(
    desired: &Desired,
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    settings: Settings,
    audit: &Audit,
    choose: impl FnOnce(&Desired, &Observed) -> Result<Plan, E>,
    estate: Option<Managed>,
    listed_users: Option<&Users>,
    mut planned: impl FnMut(&Plan),
    done: &(dyn Fn(&Outcome) + Sync),
) -> Result<SyncReport, E> {
    let start = (identity.calls_made(), assignments.calls_made());
    let observed = observe_knowing(
        identity,
        assignments,
        desired,
        settings.reads,
        None,
        estate.and(listed_users),
    )
    .await?;
    let seen = projects_seen(&desired.platform, &observed);
    let plan = choose(desired, &observed)?;
    let (plan, withheld) = if settings.withhold_removals {
        plan.without_removals(desired, &observed)
    } else {
        (plan, Vec::new())
    };
    planned(&plan);
    if let Some(tripped) = settings.guard.and_then(|limits| match estate {
        Some(estate) => guard::check(&plan, estate, limits, true),
        // One rule for every scope: removing every managed group, membership or assignment
        // that the run sees (the estate, or the scope's) is refused. A scoped run whose
        // projects meshStack answered empty looks exactly like an unscoped one.
        None => {
            let managed = Managed::observed(&desired.platform, &observed);
            guard::check(&plan, managed, limits, true)
        }
    }) {
        tracing::error!(%tripped, "plan refused; nothing applied");
        return Ok(SyncReport {
            format_version: REPORT_FORMAT_VERSION,
            remaining: plan.clone(),
            plan,
            report: Report::default(),
            calls: Calls {
                scim_reads: identity.calls_made() - start.0,
                sso_admin_reads: assignments.calls_made() - start.1,
                ..Calls::default()
            },
            refused: Some(tripped),
            withheld,
            held: desired.held.clone(),
            seen,
        });
    }
    if !assignments.proven() {
        // Boxed: one more await inline here outgrows the compiler's layout depth for serve.
        Box::pin(prove_the_role(&plan, assignments)).await?;
    }
    let before = (identity.calls_made(), assignments.calls_made());
    let report = apply::apply(&plan, identity, assignments, settings.options, audit, done).await;
    let after_apply = (identity.calls_made(), assignments.calls_made());
    let remaining = if plan.ops.is_empty() {
        plan.clone()
    } else if estate.is_some() {
        let left: BTreeSet<usize> = report
            .outcomes
            .iter()
            .filter(|o| o.status != apply::Status::Ok)
            .map(|o| o.op)
            .collect();
        Plan {
            ops: plan
                .ops
                .iter()
                .enumerate()
                .filter(|(i, _)| left.contains(i))
                .map(|(_, op)| op.clone())
                .collect(),
            ..plan.clone()
        }
    } else {
        let touched: BTreeSet<ProjectKey> = plan
            .ops
            .iter()
            .filter_map(|op| {
                GroupIdentity::parse(&desired.platform, op.group().external_id.as_str())
            })
            .map(|identity| identity.project)
            .collect();
        let narrowed = desired.within(&touched);
        // After an unscoped observation the store's size is known, and checking many
        // projects is cheaper by listing than by looking each up.
        let known = (desired.scope == crate::desired::Scope::All).then_some(observed.groups.len());
        let after = observe_knowing(
            identity,
            assignments,
            &narrowed,
            settings.reads,
            known,
            None,
        )
        .await?;
        crate::plan::plan(&narrowed, &after)
    };
    let end = (identity.calls_made(), assignments.calls_made());
    let calls = Calls {
        scim: after_apply.0 - before.0,
        scim_estimate: plan.estimate.scim_calls,
        sso_admin: after_apply.1 - before.1,
        sso_admin_estimate: plan.estimate.sso_admin_calls,
        scim_reads: (before.0 - start.0) + (end.0 - after_apply.0),
        sso_admin_reads: (before.1 - start.1) + (end.1 - after_apply.1),
    };
    Ok(SyncReport {
        format_version: REPORT_FORMAT_VERSION,
        plan,
        report,
        remaining,
        calls,
        refused: None,
        withheld,
        held: desired.held.clone(),
        seen,
    })
}

/// The groups of a plan's operations: those a run left unfinished when the plan is what
/// remains, those drifted when it is a scan's.
pub fn groups_of(plan: &Plan) -> BTreeSet<crate::model::ExternalId> {
    plan.ops
        .iter()
        .map(|op| op.group().external_id.clone())
        .collect()
}

/// The projects with groups of ours in an observation, wanted or not.
pub fn projects_seen(platform: &str, observed: &Observed) -> BTreeSet<ProjectKey> {
    observed
        .groups
        .iter()
        .filter_map(|g| GroupIdentity::of_ours(platform, &g.name, g.external_id.as_ref()))
        .map(|identity| identity.project)
        .collect()
}

/// No call of this client has proven the management role yet (a first run on an empty AWS:
/// no group of ours, so no assignment was read): one read of a pair the plan assigns checks it (AssumeRole with the
/// ExternalId, then sso-admin) before the first SCIM write, so that a broken role or policy
/// leaves no group behind without its assignments.
async fn prove_the_role(
    plan: &Plan,
    assignments: &impl AccountAssignments,
) -> Result<(), DirectoryError> {
    if !plan.ops.iter().any(|op| op.family() == Family::Scim) {
        return Ok(());
    }
    let pair = plan.ops.iter().find_map(|op| match op {
        Op::CreateAssignment {
            account,
            permission_set,
            ..
        } => Some((account, permission_set)),
        _ => None,
    });
    if let Some((account, permission_set)) = pair {
        assignments.groups_on(account, permission_set).await?;
    }
    Ok(())
}
