//! What a sync of a plan costs in requests per family: the writes (one request per operation,
//! plus one status poll per assignment change), the reads of the observation the plan was made
//! from, and the reads of the check after applying (`sync::sync` observes the touched projects
//! again). The reads follow `directory::observe`'s choices, so that the estimate of a first
//! sync is close to the calls a sync makes (`tests/scoped_cost.rs` compares them).

use super::{Estimate, Family, Op};
use crate::desired::{Desired, Scope};
use crate::model::{ExternalId, GroupIdentity, ProjectKey};
use crate::observed::{AssignmentCoverage, Observed, ObservedGroup};
use std::collections::{BTreeSet, HashSet};

/// A listing of `n` items: one request per 100, at least one.
fn pages(n: usize) -> usize {
    n.div_ceil(100).max(1)
}

pub(super) fn estimate(ops: &[Op], desired: &Desired, observed: &Observed) -> Estimate {
    let scim_calls = ops.iter().filter(|o| o.family() == Family::Scim).count();
    let sso_admin_calls = 2 * ops
        .iter()
        .filter(|o| o.family() == Family::SsoAdmin)
        .count();
    let (before_scim, before_sso) = observation(desired, observed);
    let (after_scim, after_sso) = check_after(ops, desired, observed);
    let scim_reads = before_scim + after_scim;
    let sso_admin_reads = before_sso + after_sso;
    let seconds = ((scim_calls + scim_reads) as f64 / desired.policy.scim_rate)
        .max((sso_admin_calls + sso_admin_reads) as f64 / desired.policy.sso_admin_rate);
    Estimate {
        scim_calls,
        sso_admin_calls,
        scim_reads,
        sso_admin_reads,
        seconds,
    }
}

fn ours<'a>(desired: &'a Desired, observed: &'a Observed) -> Vec<&'a ObservedGroup> {
    observed
        .groups
        .iter()
        .filter(|g| desired.takes_in(&g.name, g.external_id.as_ref()))
        .collect()
}

/// The reads `directory::observe` made for this plan.
fn observation(desired: &Desired, observed: &Observed) -> (usize, usize) {
    let ours = ours(desired, observed);
    let full = desired.scope == Scope::All;
    let mut scim = match &desired.scope {
        Scope::Only {
            workspaces,
            projects,
        } if workspaces.is_empty() => {
            let lookups = match &desired.only_groups {
                Some(only) => only.len(),
                None => {
                    projects
                        .iter()
                        .filter(|p| !desired.held.contains(*p))
                        .count()
                        * desired.roles.len()
                }
            };
            let found: HashSet<String> = observed
                .groups
                .iter()
                .map(|g| g.name.as_str().to_lowercase())
                .collect();
            let by_name = desired
                .groups
                .values()
                .filter(|g| !found.contains(&g.name.as_str().to_lowercase()))
                .count();
            lookups + by_name
        }
        _ => pages(observed.groups.len()),
    };
    let users = observed.users.len();
    if full {
        scim += pages(users);
        if users < ours.len() {
            let mut groups_of: std::collections::HashMap<&crate::model::UserId, usize> =
                std::collections::HashMap::new();
            for g in &ours {
                for m in &g.members {
                    *groups_of.entry(m).or_default() += 1;
                }
            }
            scim += observed
                .users
                .keys()
                .map(|u| pages(groups_of.get(u).copied().unwrap_or(0)))
                .sum::<usize>();
        } else {
            scim += ours.iter().map(|g| pages(g.members.len())).sum::<usize>();
        }
    } else {
        scim += ours.iter().map(|g| pages(g.members.len())).sum::<usize>();
        let members: HashSet<String> = ours
            .iter()
            .flat_map(|g| g.members.iter())
            .filter_map(|m| observed.users.get(m))
            .map(|n| n.as_str().to_lowercase())
            .collect();
        let wanted: BTreeSet<String> = desired
            .groups
            .values()
            .flat_map(|g| g.members.iter().map(|e| e.as_str().to_lowercase()))
            .filter(|e| !members.contains(e))
            .collect();
        scim += wanted.len();
        let known: HashSet<String> = observed
            .users
            .values()
            .map(|n| n.as_str().to_lowercase())
            .collect();
        if wanted.iter().any(|e| !known.contains(e)) {
            scim += pages(users);
        }
    }
    let existing: HashSet<&ExternalId> =
        ours.iter().filter_map(|g| g.external_id.as_ref()).collect();
    let sso = match observed.assignment_coverage {
        AssignmentCoverage::OurGroups => ours.len(),
        AssignmentCoverage::DesiredPairs => desired
            .groups
            .iter()
            .filter(|(e, _)| existing.contains(e))
            .flat_map(|(_, g)| g.permission_sets.iter().map(move |ps| (&g.account, ps)))
            .collect::<BTreeSet<_>>()
            .len(),
    };
    (scim, sso)
}

/// The reads of the check after applying: the touched projects observed again (looked up, or
/// listed when the store is known to be small enough), every wanted group by then existing.
fn check_after(ops: &[Op], desired: &Desired, observed: &Observed) -> (usize, usize) {
    if ops.is_empty() || desired.only_groups.is_some() {
        // A run by change is not checked again after applying.
        return (0, 0);
    }
    let touched: BTreeSet<ProjectKey> = ops
        .iter()
        .filter_map(|op| GroupIdentity::parse(&desired.platform, op.group().external_id.as_str()))
        .map(|i| i.project)
        .collect();
    let created = ops
        .iter()
        .filter(|o| matches!(o, Op::CreateGroup { .. }))
        .count();
    let deleted = ops
        .iter()
        .filter(|o| matches!(o, Op::DeleteGroup { .. }))
        .count();
    let store = (observed.groups.len() + created).saturating_sub(deleted);
    let lookups = touched.len() * desired.roles.len();
    let mut scim = if desired.scope == Scope::All && lookups >= store.div_ceil(100) {
        pages(store)
    } else {
        lookups
    };
    let wanted: Vec<_> = desired
        .groups
        .values()
        .filter(|g| touched.contains(&g.identity.project))
        .collect();
    scim += wanted.iter().map(|g| pages(g.members.len())).sum::<usize>();
    let sso = match observed.assignment_coverage {
        AssignmentCoverage::OurGroups => wanted.len(),
        AssignmentCoverage::DesiredPairs => wanted
            .iter()
            .flat_map(|g| g.permission_sets.iter().map(move |ps| (&g.account, ps)))
            .collect::<BTreeSet<_>>()
            .len(),
    };
    (scim, sso)
}
