//! One sync: observe what AWS holds, plan, apply, then observe again what was touched to
//! report the drift that is left. The scheduler, the webhook, `sync` and the demo all run this.

use crate::apply::{self, Options, Outcome, Report};
use crate::audit::Audit;
use crate::desired::Desired;
use crate::directory::{
    AccountAssignments, AssignmentReads, DirectoryError, IdentityStore, observe, observe_knowing,
};
use crate::model::{GroupIdentity, ProjectKey};
use crate::plan::guard::{self, Limits, Tripped};
use crate::plan::{Plan, plan};
use serde::Serialize;
use std::collections::BTreeSet;

/// How a sync reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub reads: AssignmentReads,
    pub options: Options,
    /// The mass-deletion guard; `None` lets a plan delete any amount (`--allow-mass-delete`).
    pub guard: Option<Limits>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
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
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Calls {
    pub scim: u64,
    pub scim_estimate: usize,
    pub sso_admin: u64,
    pub sso_admin_estimate: usize,
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
    mut planned: impl FnMut(&Plan),
    done: &(dyn Fn(&Outcome) + Sync),
) -> Result<SyncReport, DirectoryError> {
    let observed = observe(identity, assignments, desired, settings.reads).await?;
    let plan = plan(desired, &observed);
    planned(&plan);
    if let Some(tripped) = settings.guard.and_then(|limits| {
        let whole = desired.scope == crate::desired::Scope::All;
        guard::check(&plan, &observed, limits, whole)
    }) {
        tracing::error!(%tripped, "plan refused; nothing applied");
        return Ok(SyncReport {
            remaining: plan.clone(),
            plan,
            report: Report::default(),
            calls: Calls::default(),
            refused: Some(tripped),
            held: desired.held.clone(),
        });
    }
    let before = (identity.calls_made(), assignments.calls_made());
    let report = apply::apply(&plan, identity, assignments, settings.options, audit, done).await;
    let calls = Calls {
        scim: identity.calls_made() - before.0,
        scim_estimate: plan.estimate.scim_calls,
        sso_admin: assignments.calls_made() - before.1,
        sso_admin_estimate: plan.estimate.sso_admin_calls,
    };
    let remaining = if plan.ops.is_empty() {
        plan.clone()
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
        let after =
            observe_knowing(identity, assignments, &narrowed, settings.reads, known).await?;
        crate::plan::plan(&narrowed, &after)
    };
    Ok(SyncReport {
        plan,
        report,
        remaining,
        calls,
        refused: None,
        held: desired.held.clone(),
    })
}
