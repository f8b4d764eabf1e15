//! The rolling drift scan's budget: what reading every project of ours again costs, and how
//! long one cycle takes when the scan may spend `share` of each family's configured rate.
//! `serve` runs the scan (`server/scan.rs`); `plan` and `config check` show the estimate.
//!
//! Once a cycle the scan lists the store's groups ([`Groups`]) and users ([`Users`]), one
//! request per 100 each. Then it reads each project as a scoped run does
//! (`directory::observe_records`): each group's members (one request per 100), and the
//! assignments of each (account, permission set) pair, or of each group with
//! `list-assignments-for-principal`. A synced project of three roles on one permission set
//! each costs 3 SCIM requests and 3 sso-admin requests (1 with one permission set shared),
//! besides its share of the listings.

use crate::desired::Desired;
use crate::directory::{AssignmentReads, GroupRecord};
use crate::model::{Euid, GroupIdentity, ProjectKey, UserId, UserName};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The store's groups as the scan listed them at the start of its cycle: a slice's groups are
/// taken from here rather than looked up one by one. A group renamed or deleted by hand since
/// the listing is found in the next cycle (or at once, when it was to have members).
pub struct Groups {
    ours: HashMap<ProjectKey, Vec<GroupRecord>>,
    by_name: HashMap<String, GroupRecord>,
    roles: BTreeSet<crate::model::RoleId>,
}

impl Groups {
    pub fn new(platform: &str, records: Vec<GroupRecord>) -> Self {
        let mut ours: HashMap<ProjectKey, Vec<GroupRecord>> = HashMap::new();
        let mut by_name = HashMap::new();
        let mut roles = BTreeSet::new();
        for record in records {
            if let Some(identity) =
                GroupIdentity::of_ours(platform, &record.name, record.external_id.as_ref())
            {
                roles.insert(identity.role);
                ours.entry(identity.project)
                    .or_default()
                    .push(record.clone());
            }
            by_name.insert(record.name.as_str().to_lowercase(), record);
        }
        Groups {
            ours,
            by_name,
            roles,
        }
    }

    /// The roles of the groups of ours in the store.
    pub fn roles(&self) -> &BTreeSet<crate::model::RoleId> {
        &self.roles
    }

    /// The projects with groups of ours in the store.
    pub fn projects(&self) -> impl Iterator<Item = &ProjectKey> {
        self.ours.keys()
    }

    /// The groups a plan for `slice` (a desired state narrowed to some projects) must see:
    /// ours of those projects, and any group named as one of its wanted groups.
    pub fn records(&self, slice: &Desired) -> Vec<GroupRecord> {
        let mut out: Vec<GroupRecord> = self
            .ours
            .iter()
            .filter(|(project, _)| slice.scope.contains(project))
            .flat_map(|(_, records)| records.iter().cloned())
            .collect();
        for group in slice.groups.values() {
            if let Some(record) = self.by_name.get(&group.name.as_str().to_lowercase())
                && !out.iter().any(|r| r.id == record.id)
            {
                out.push(record.clone());
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// The store's userNames as the scan listed them at the start of its cycle, by their lower
/// case: a desired member is spelled as AWS spells it, or left out when AWS has nobody of that
/// name. Without it, every slice with a member AWS lacks would list every user again to
/// compare ignoring case (aws-sso.md §F.6), ⌈users/100⌉ requests a slice.
pub struct Users(HashMap<String, Vec<(UserId, UserName)>>);

impl Users {
    pub fn new(users: impl IntoIterator<Item = (UserId, UserName)>) -> Self {
        let mut by_folded: HashMap<String, Vec<(UserId, UserName)>> = HashMap::new();
        for (id, name) in users {
            by_folded
                .entry(name.as_str().to_lowercase())
                .or_default()
                .push((id, name));
        }
        Users(by_folded)
    }

    /// The users whose name is `name` ignoring case.
    pub fn folded(&self, name: &str) -> &[(UserId, UserName)] {
        self.0.get(&name.to_lowercase()).map_or(&[], Vec::as_slice)
    }

    /// `euid` as AWS spells it: the exact name, else the only one that matches ignoring case
    /// (as `directory::pick_user` decides).
    fn spelling(&self, euid: &Euid) -> Option<Euid> {
        let names = self.0.get(&euid.as_str().to_lowercase())?;
        if names.iter().any(|(_, n)| n.as_str() == euid.as_str()) {
            return Some(euid.clone());
        }
        (names.len() == 1).then(|| Euid::from(names[0].1.as_str()))
    }

    /// `desired` with each member spelled as AWS spells it, and without those AWS lacks:
    /// what the scan compares AWS with. Missing users are a finding of the runs, not drift.
    pub fn resolve(&self, desired: &mut Desired) {
        for group in desired.groups.values_mut() {
            group.members = group
                .members
                .iter()
                .filter_map(|euid| self.spelling(euid))
                .collect();
        }
    }
}

/// One cycle of the drift scan over an estate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cycle {
    /// Projects read (those not held).
    pub projects: usize,
    pub scim_calls: u64,
    pub sso_admin_calls: u64,
    /// At `share` of each family's rate; the slower family decides.
    pub seconds: f64,
}

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} project(s): {} SCIM and {} sso-admin reads, {} per cycle",
            self.projects,
            self.scim_calls,
            self.sso_admin_calls,
            human(self.seconds)
        )
    }
}

/// Seconds as people read a duration: `45 s`, `12 min`, `3.4 h`.
pub fn human(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{} s", seconds.ceil())
    } else if seconds < 7200.0 {
        format!("{} min", (seconds / 60.0).ceil())
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// The cost of one cycle over `desired` (scope: all), at `share` (0–1) of the rates in its
/// policy.
pub fn cycle(desired: &Desired, reads: AssignmentReads, share: f64) -> Cycle {
    let mut groups: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for group in desired.groups.values() {
        if !desired.held.contains(&group.identity.project) {
            groups
                .entry(&group.identity.project)
                .or_default()
                .push(group);
        }
    }
    // The store's groups listed once a cycle (ours, at least), then each group's members.
    let ours: usize = groups.values().map(Vec::len).sum();
    let (mut scim, mut sso) = (ours.div_ceil(100).max(1) as u64, 0u64);
    for of_project in groups.values() {
        scim += of_project
            .iter()
            .map(|g| (g.members.len() as u64).div_ceil(100).max(1))
            .sum::<u64>();
        sso += match reads {
            AssignmentReads::PerGroup => of_project.len() as u64,
            AssignmentReads::PerPair => of_project
                .iter()
                .flat_map(|g| g.permission_sets.iter().map(move |ps| (&g.account, ps)))
                .collect::<BTreeSet<_>>()
                .len() as u64,
        };
    }
    Cycle {
        projects: groups.len(),
        scim_calls: scim,
        sso_admin_calls: sso,
        seconds: seconds(
            scim,
            sso,
            share * desired.policy.scim_rate,
            share * desired.policy.sso_admin_rate,
        ),
    }
}

/// A cycle of `projects` projects shaped as the configuration makes them: `roles` groups each
/// (of up to 100 members), `pairs` (account, permission set) pairs to read per project.
pub fn cycle_of_shape(
    projects: usize,
    roles: usize,
    pairs: usize,
    scim_rate: f64,
    sso_admin_rate: f64,
    share: f64,
) -> Cycle {
    let scim = ((projects * roles).div_ceil(100).max(1) + projects * roles) as u64;
    let sso = (projects * pairs) as u64;
    Cycle {
        projects,
        scim_calls: scim,
        sso_admin_calls: sso,
        seconds: seconds(scim, sso, share * scim_rate, share * sso_admin_rate),
    }
}

fn seconds(scim: u64, sso: u64, scim_rate: f64, sso_rate: f64) -> f64 {
    if scim_rate <= 0.0 || sso_rate <= 0.0 {
        return f64::INFINITY;
    }
    (scim as f64 / scim_rate).max(sso as f64 / sso_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_costs_two_scim_reads_per_group_and_one_per_pair_at_the_share_of_the_rate() {
        let cycle = cycle_of_shape(33_000, 3, 1, 20.0, 20.0, 0.25);
        // 990 pages of groups, then 99,000 groups' members.
        assert_eq!(cycle.scim_calls, 99_990);
        assert_eq!(cycle.sso_admin_calls, 33_000);
        // 99,990 reads at 5 per second.
        assert_eq!(cycle.seconds, 19_998.0);
        assert_eq!(human(cycle.seconds), "5.6 h");
        assert_eq!(human(90.2), "91 s");
        assert_eq!(human(600.0), "10 min");
        assert!(
            cycle_of_shape(10, 3, 1, 5.0, 5.0, 0.0)
                .seconds
                .is_infinite()
        );
    }

    #[test]
    fn members_are_spelled_as_aws_spells_them_and_those_it_lacks_are_left_out() {
        let users = Users::new(
            ["alice@x", "Grace@X", "bob@x", "Bob@x"]
                .into_iter()
                .map(|n| (UserId::from(n), UserName::from(n))),
        );
        let spell = |e: &str| users.spelling(&Euid::from(e)).map(|e| e.to_string());
        assert_eq!(spell("alice@x").as_deref(), Some("alice@x"));
        assert_eq!(spell("grace@x").as_deref(), Some("Grace@X"));
        assert_eq!(spell("Bob@x").as_deref(), Some("Bob@x"));
        // Two users differ from it in case only: neither is it.
        assert_eq!(spell("BOB@x"), None);
        assert_eq!(spell("heidi@x"), None);
    }
}
