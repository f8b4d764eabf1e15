//! What `serve` knows between runs, so that a run costs what changed rather than what exists:
//! the desired state as last reconciled, when each project was last seen in AWS as it should
//! be, and which projects must be looked at again whatever meshStack says. Plain data; the
//! caller passes the time in, as any ordered value (`serve` uses `Instant`).
//!
//! A scheduled run reads meshStack in full (meshStack's budget), computes the desired state,
//! and reconciles only [`Known::to_reconcile`]: the projects whose desired state differs from
//! the last one, and those a run left unfinished or the drift scan found drifted. Drift made
//! by hand in AWS is not in meshStack's data; the rolling drift scan ([`crate::scan`]) finds it
//! by reading each project again in turn, spending a set share of each family's rate.

use crate::desired::{Desired, Scope};
use crate::model::{ExternalId, GroupIdentity, ProjectKey};
use crate::observed::Observed;
use crate::plan::Plan;
use crate::plan::guard::Managed;
use std::collections::{BTreeMap, BTreeSet};

pub struct Known<T> {
    /// The whole platform's desired state as last reconciled (scope: all).
    desired: Desired,
    /// When each project (not held) was last seen in AWS as it should be: read by the drift
    /// scan, or reconciled whole by a full or scoped run. These are the projects the scan
    /// reads: those with groups wanted, and those no longer wanted whose groups AWS still
    /// holds (a retired group is emptied, not deleted, when its assignments cannot be; a
    /// member added to it by hand would still reach the account).
    confirmed: BTreeMap<ProjectKey, T>,
    /// Groups to reconcile on the next run whatever meshStack says: a run left something
    /// undone in them, or the drift scan found them differing.
    dirty: BTreeSet<ExternalId>,
}

/// The groups whose desired state differs between `old` and `new` (added, gone, or changed in
/// name, account, members or permission sets), and those of projects that stopped being held.
/// Groups of projects held in `new` are left out: nothing of theirs is touched.
pub fn changed(old: &Desired, new: &Desired) -> BTreeSet<ExternalId> {
    let mut out = BTreeSet::new();
    let (mut a, mut b) = (old.groups.iter().peekable(), new.groups.iter().peekable());
    // Both maps are sorted by external id: one walk finds every difference.
    loop {
        let differing = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some((ka, ga)), Some((kb, gb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => a.next(),
                std::cmp::Ordering::Greater => b.next(),
                std::cmp::Ordering::Equal => {
                    let differs = ga != gb;
                    let (ga, _) = (a.next(), b.next());
                    ga.filter(|_| differs)
                }
            },
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
        };
        if let Some((external_id, group)) = differing
            && !new.held.contains(&group.identity.project)
        {
            out.insert(external_id.clone());
        }
    }
    out
}

/// The groups of a plan's operations: those a run left unfinished when the plan is what
/// remains, those drifted when it is a scan's.
pub fn groups_of(plan: &Plan) -> BTreeSet<ExternalId> {
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

fn project_of(desired: &Desired, external_id: &ExternalId) -> Option<ProjectKey> {
    GroupIdentity::parse(&desired.platform, external_id.as_str()).map(|i| i.project)
}

impl<T: Copy + Ord> Known<T> {
    /// After a full run reconciled `desired` (scope: all) at `now`; `unfinished` are the
    /// groups it left work in, `seen` the projects it saw groups of ours of.
    pub fn new(
        desired: Desired,
        unfinished: &BTreeSet<ExternalId>,
        seen: &BTreeSet<ProjectKey>,
        now: T,
    ) -> Self {
        let mut known = Known {
            desired,
            confirmed: BTreeMap::new(),
            dirty: BTreeSet::new(),
        };
        known.settle(&Scope::All, unfinished, seen, now);
        known
    }

    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// The groups a run for `new` (scope: all) must reconcile.
    pub fn to_reconcile(&self, new: &Desired) -> BTreeSet<ExternalId> {
        let mut out = changed(&self.desired, new);
        out.extend(
            self.dirty
                .iter()
                .filter(|e| project_of(new, e).is_none_or(|p| !new.held.contains(&p)))
                .cloned(),
        );
        out
    }

    /// A full or scoped run reconciled `run` at `now`: its desired state replaces what was
    /// known within its scope, whose projects count as confirmed; `unfinished` are the groups
    /// it left work in, which the next run takes up again; `seen` the projects it saw groups
    /// of ours of.
    pub fn record(
        &mut self,
        run: &Desired,
        unfinished: &BTreeSet<ExternalId>,
        seen: &BTreeSet<ProjectKey>,
        now: T,
    ) {
        if run.scope == Scope::All {
            self.desired = run.clone();
        } else {
            let scope = &run.scope;
            self.desired
                .groups
                .retain(|_, g| !scope.contains(&g.identity.project));
            self.desired.held.retain(|p| !scope.contains(p));
            self.desired.groups.extend(
                run.groups
                    .iter()
                    .filter(|(_, g)| scope.contains(&g.identity.project))
                    .map(|(k, g)| (k.clone(), g.clone())),
            );
            self.desired
                .held
                .extend(run.held.iter().filter(|p| scope.contains(p)).cloned());
        }
        self.settle(&run.scope, unfinished, seen, now);
    }

    /// A run by change reconciled the groups of `run` (made by [`Desired::only`] from `new`,
    /// the whole platform's desired state) at `now`. Only those groups take their new state;
    /// projects are confirmed by the scan, not by a run that read part of them.
    pub fn record_changes(
        &mut self,
        new: &Desired,
        run: &Desired,
        unfinished: &BTreeSet<ExternalId>,
        now: T,
    ) {
        for external_id in run.only_groups.iter().flatten() {
            match new.groups.get(external_id) {
                Some(group) => {
                    self.desired
                        .groups
                        .insert(external_id.clone(), group.clone());
                }
                None => {
                    self.desired.groups.remove(external_id);
                }
            }
            if !unfinished.contains(external_id) {
                self.dirty.remove(external_id);
            }
        }
        self.dirty.extend(unfinished.iter().cloned());
        // A project held now keeps its groups in AWS as they are; forgetting them here makes
        // them count as changed once it is no longer held.
        self.desired.held = new.held.clone();
        let held = &self.desired.held;
        self.desired
            .groups
            .retain(|_, g| !held.contains(&g.identity.project));
        // A project no longer wanted stays in the scan until it reads no group of ours.
        self.confirmed.retain(|p, _| !held.contains(p));
        for group in self.desired.groups.values() {
            // New projects are scanned from now on, as if confirmed by the run that made them.
            if !self.confirmed.contains_key(&group.identity.project) {
                self.confirmed.insert(group.identity.project.clone(), now);
            }
        }
    }

    /// The drift scan read `projects` at `now`, saw groups of ours of `seen`, and found
    /// `drifted` groups differing from what they should be: those go to the next run; the
    /// projects are confirmed. A project no longer wanted with no group left leaves the scan.
    pub fn scanned(
        &mut self,
        projects: &[ProjectKey],
        drifted: &BTreeSet<ExternalId>,
        seen: &BTreeSet<ProjectKey>,
        now: T,
    ) {
        self.dirty.extend(drifted.iter().cloned());
        let wanted: BTreeSet<&ProjectKey> = self
            .desired
            .groups
            .values()
            .map(|g| &g.identity.project)
            .collect();
        for project in projects {
            if !seen.contains(project) && !wanted.contains(project) {
                self.confirmed.remove(project);
            }
        }
        let drifted_projects: BTreeSet<ProjectKey> = drifted
            .iter()
            .filter_map(|e| project_of(&self.desired, e))
            .collect();
        for project in projects {
            if !drifted_projects.contains(project)
                && let Some(at) = self.confirmed.get_mut(project)
            {
                *at = now;
            }
        }
    }

    /// The store holds groups of ours of `projects` (the drift scan's listing, at `now`): one
    /// no longer wanted, and not held, is scanned until none of its groups is left.
    pub fn listed<'a>(&mut self, projects: impl IntoIterator<Item = &'a ProjectKey>, now: T) {
        for project in projects {
            if !self.desired.held.contains(project) && !self.confirmed.contains_key(project) {
                self.confirmed.insert(project.clone(), now);
            }
        }
    }

    /// The groups that need a run whatever meshStack says.
    pub fn dirty(&self) -> &BTreeSet<ExternalId> {
        &self.dirty
    }

    /// Up to `n` projects the drift scan reads next, in key order after `after`; fewer than
    /// `n` when the cycle reaches its end. Held projects are not read: nothing of them changes.
    pub fn scan_slice(&self, after: Option<&ProjectKey>, n: usize) -> Vec<ProjectKey> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.confirmed
            .range((from, Bound::Unbounded))
            .take(n)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// When the project seen longest ago was last seen as it should be.
    pub fn oldest_confirmation(&self) -> Option<T> {
        self.confirmed.values().min().copied()
    }

    /// The projects the scan covers (every project with groups, not held).
    pub fn scanned_projects(&self) -> usize {
        self.confirmed.len()
    }

    /// What we manage once the known state holds: the guard's base for a run by change.
    pub fn managed(&self) -> Managed {
        Managed::desired(&self.desired)
    }

    /// The projects of `scope` were just reconciled whole at `now`: confirmed; their dirty
    /// groups are replaced by `unfinished`; held projects, and those neither wanted nor `seen`
    /// in AWS, are no longer scanned.
    fn settle(
        &mut self,
        scope: &Scope,
        unfinished: &BTreeSet<ExternalId>,
        seen: &BTreeSet<ProjectKey>,
        now: T,
    ) {
        let platform = self.desired.platform.clone();
        self.dirty.retain(|e| {
            GroupIdentity::parse(&platform, e.as_str()).is_some_and(|i| !scope.contains(&i.project))
        });
        self.dirty.extend(unfinished.iter().cloned());
        let held = &self.desired.held;
        let present: BTreeSet<&ProjectKey> = self
            .desired
            .groups
            .values()
            .map(|g| &g.identity.project)
            .chain(
                seen.iter()
                    .filter(|p| scope.contains(p) && !held.contains(*p)),
            )
            .collect();
        self.confirmed
            .retain(|p, _| !scope.contains(p) || present.contains(p));
        for project in present.into_iter().filter(|p| scope.contains(p)) {
            self.confirmed.insert(project.clone(), now);
        }
    }
}

/// What a follower keeps so that, once it leads, it can go by change at once instead of
/// starting with a full run: the desired state as it last read meshStack, and when each group's
/// desired state was seen to change in its reads. Times are wall-clock (any ordered value
/// here): they are compared with the leader's mark of what it applied.
pub struct Warm<T> {
    desired: Desired,
    first_read: T,
    changed_at: BTreeMap<ExternalId, T>,
    /// Stamps before this are forgotten.
    forgotten_before: T,
}

impl<T: Copy + Ord> Warm<T> {
    /// The first read, at `now`: which groups changed before it is not known.
    pub fn new(desired: Desired, now: T) -> Self {
        Warm {
            desired,
            first_read: now,
            changed_at: BTreeMap::new(),
            forgotten_before: now,
        }
    }

    /// A later read at `now`: the groups whose desired state differs from the last read are
    /// stamped `now`; stamps before `forget_before` are dropped.
    pub fn read(&mut self, desired: Desired, now: T, forget_before: T) {
        for external_id in changed(&self.desired, &desired) {
            self.changed_at.insert(external_id, now);
        }
        if forget_before > self.forgotten_before {
            self.changed_at.retain(|_, at| *at >= forget_before);
            self.forgotten_before = forget_before;
        }
        self.desired = desired;
    }

    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// This replica takes the lead at `now`; the last leader marked that it had applied
    /// everything meshStack said up to `synced`. The first run by change must then do the
    /// groups seen changing since `synced`, with those whose desired state changes between
    /// the last read and the run's own. That is known only when this replica was reading
    /// meshStack by `synced` and still holds the stamps since: otherwise `None`, and the
    /// first run is full. Every project counts as confirmed at `now`; drift made by hand, and
    /// work the last leader found after `synced` and had not done, are the drift scan's to find.
    pub fn lead<U: Copy + Ord>(self, synced: T, now: U) -> Option<Known<U>> {
        if self.first_read > synced || self.forgotten_before > synced {
            return None;
        }
        let since: BTreeSet<ExternalId> = self
            .changed_at
            .into_iter()
            .filter(|(_, at)| *at >= synced)
            .map(|(external_id, _)| external_id)
            .collect();
        Some(Known::new(self.desired, &since, &BTreeSet::new(), now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::DesiredGroup;
    use crate::model::{AccountId, Euid, GroupName, RoleId};

    fn group(project: &str, role: &str, members: &[&str]) -> (ExternalId, DesiredGroup) {
        let identity = GroupIdentity {
            project: ProjectKey::new("ws", project),
            role: RoleId::from(role),
        };
        (
            identity.external_id("p"),
            DesiredGroup {
                name: GroupName::from(format!("mst-ws.{project}.{role}").as_str()),
                account: AccountId::from("111111111111"),
                members: members.iter().map(|m| Euid::from(*m)).collect(),
                permission_sets: Default::default(),
                identity,
            },
        )
    }

    fn desired(groups: &[(ExternalId, DesiredGroup)], held: &[&str]) -> Desired {
        Desired {
            platform: "p".into(),
            scope: Scope::All,
            groups: groups.iter().cloned().collect(),
            held: held.iter().map(|p| ProjectKey::new("ws", *p)).collect(),
            findings: BTreeSet::new(),
            policy: crate::desired::ApplyPolicy {
                may_delete_assignments: false,
                scim_rate: 5.0,
                sso_admin_rate: 5.0,
            },
            roles: vec![RoleId::from("admin"), RoleId::from("user")],
            only_groups: None,
        }
    }

    #[test]
    fn changed_names_the_groups_that_differ_and_leaves_held_projects_alone() {
        let a = group("a", "admin", &["x"]);
        let a2 = group("a", "admin", &["x", "y"]);
        let b = group("b", "admin", &[]);
        let c = group("c", "user", &[]);
        let d = group("d", "user", &[]);
        let old = desired(&[a.clone(), b.clone(), c.clone()], &[]);
        // a's members changed, b is gone, d is new, c is held now (its group stays in AWS).
        let new = desired(&[a2, d.clone()], &["c"]);
        let found = changed(&old, &new);
        assert_eq!(found, [a.0.clone(), b.0, d.0.clone()].into_iter().collect());
        assert!(changed(&new, &new).is_empty());

        // A run by change reconciles exactly those; the next run has nothing to do.
        let now = 100u64;
        let mut known = Known::new(old, &BTreeSet::new(), &BTreeSet::new(), now);
        assert_eq!(known.scanned_projects(), 3);
        let run = new.only(&known.to_reconcile(&new));
        assert_eq!(run.only_groups.as_ref().unwrap().len(), 3);
        known.record_changes(&new, &run, &BTreeSet::new(), now);
        assert!(known.to_reconcile(&new).is_empty());
        // a and d are scanned, and b until a scan finds none of its groups left; c is held.
        let key = |p| ProjectKey::new("ws", p);
        assert_eq!(known.scan_slice(None, 10), [key("a"), key("b"), key("d")]);
        known.scanned(&[key("b")], &BTreeSet::new(), &[key("b")].into(), now);
        assert_eq!(known.scan_slice(None, 10), [key("a"), key("b"), key("d")]);
        known.scanned(&[key("b")], &BTreeSet::new(), &BTreeSet::new(), now);
        assert_eq!(known.scan_slice(None, 10), [key("a"), key("d")]);

        // What a run left undone, or a scan found drifted, is done again until it succeeds.
        let unfinished: BTreeSet<ExternalId> = [a.0.clone()].into_iter().collect();
        known.record_changes(&new, &run, &unfinished, now);
        assert_eq!(known.to_reconcile(&new), unfinished);
        known.record_changes(&new, &new.only(&unfinished), &BTreeSet::new(), now);
        assert!(known.to_reconcile(&new).is_empty());
        let later = now + 60;
        known.scanned(
            &[key("a"), key("d")],
            &[d.0.clone()].into(),
            &[key("a"), key("d")].into(),
            later,
        );
        assert_eq!(known.to_reconcile(&new), [d.0].into_iter().collect());
        // d drifted, so it keeps its older confirmation.
        assert_eq!(known.oldest_confirmation(), Some(now));
    }

    #[test]
    fn a_follower_leads_by_change_from_its_reads_since_the_leaders_mark() {
        let a = group("a", "admin", &["x"]);
        let a2 = group("a", "admin", &["x", "y"]);
        let b = group("b", "admin", &[]);
        let b2 = group("b", "admin", &["z"]);
        let c = group("c", "user", &[]);
        let c2 = group("c", "user", &["w"]);
        let reads = || {
            let mut warm = Warm::new(desired(&[a.clone(), b.clone(), c.clone()], &[]), 0);
            // b changes by the read at 10, a by the one at 50; the read at 60 forgets
            // stamps before 20.
            warm.read(desired(&[a.clone(), b2.clone(), c.clone()], &[]), 10, 0);
            warm.read(desired(&[a2.clone(), b2.clone(), c.clone()], &[]), 50, 0);
            warm.read(desired(&[a2.clone(), b2.clone(), c.clone()], &[]), 60, 20);
            warm
        };
        assert_eq!(reads().desired().groups[&a.0], a2.1);

        // The last leader had applied everything up to 40: a (changed by 50) is reconciled,
        // b is not; c, changed in meshStack since the last read, is too.
        let known = reads().lead(40, 1000u64).unwrap();
        let now = desired(&[a2.clone(), b2.clone(), c2.clone()], &[]);
        assert_eq!(
            known.to_reconcile(&now),
            [a.0.clone(), c.0.clone()].into_iter().collect()
        );
        // Every project is scanned, counted from the take-over.
        assert_eq!(known.scanned_projects(), 3);
        assert_eq!(known.oldest_confirmation(), Some(1000));

        // A mark older than what this replica still knows of: the first run is full.
        assert!(reads().lead(15, 1000u64).is_none());
        let young = Warm::new(desired(&[a2, b2, c2], &[]), 30);
        assert!(young.lead(20, 1000u64).is_none());
    }

    #[test]
    fn the_scan_walks_every_project_in_slices_and_ends_its_cycle() {
        let groups: Vec<_> = (0..25)
            .map(|i| group(&format!("p{i:02}"), "admin", &[]))
            .collect();
        let known = Known::new(desired(&groups, &[]), &BTreeSet::new(), &BTreeSet::new(), 0);
        let mut after = None;
        let mut seen = Vec::new();
        loop {
            let slice = known.scan_slice(after.as_ref(), 10);
            if slice.is_empty() {
                break;
            }
            after = slice.last().cloned();
            seen.extend(slice);
        }
        assert_eq!(seen.len(), 25);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
    }
}
