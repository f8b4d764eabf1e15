//! (pure) What a project's desired state *is*, as a short digest: its groups as computed (name,
//! account, members, permission sets), whether it is held, and the configuration that shapes
//! every project the same way (the roles mapped, whether assignments may be deleted, and
//! [`PLANNING_VERSION`]). Two desired states of one project digest alike exactly when a
//! reconcile of one would do what a reconcile of the other does. A config change, a new
//! version of the code's meaning, a project no longer held: each is a differing digest.

use crate::desired::Desired;
use crate::model::ProjectKey;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Bumped whenever the code's meaning of a desired state changes (what a plan makes of it):
/// every project recorded under an older version is reconciled again.
pub const PLANNING_VERSION: u32 = 1;

/// A project's desired state, digested (128 bits of SHA-256).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 16]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Length-prefixed fields, so that no two states share a byte stream.
#[derive(Clone)]
pub(crate) struct Feed(Sha256);

impl Feed {
    pub(crate) fn new() -> Self {
        Self(Sha256::new())
    }

    pub(crate) fn put(&mut self, s: &str) {
        self.0.update((s.len() as u32).to_le_bytes());
        self.0.update(s.as_bytes());
    }

    pub(crate) fn finish(self) -> Digest {
        let full = self.0.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        Digest(out)
    }
}

/// The part of the configuration every project's digest carries.
fn shaping(desired: &Desired) -> Feed {
    let mut feed = Feed::new();
    feed.put(&PLANNING_VERSION.to_string());
    feed.put(&desired.platform);
    let mut roles: Vec<&str> = desired.roles.iter().map(|r| r.as_str()).collect();
    roles.sort_unstable();
    feed.put(&roles.len().to_string());
    roles.into_iter().for_each(|r| feed.put(r));
    feed.put(if desired.policy.may_delete_assignments {
        "delete-assignments"
    } else {
        "keep-assignments"
    });
    feed
}

/// The digest of every project `desired` has groups of or holds. A project it has neither of
/// digests as [`absent`].
pub fn project_digests(desired: &Desired) -> BTreeMap<ProjectKey, Digest> {
    digests(desired, |_| true)
}

/// The digest of each of `projects`, [`absent`] for those `desired` has neither groups of nor
/// holds.
pub fn digests_of(
    desired: &Desired,
    projects: &BTreeSet<ProjectKey>,
) -> BTreeMap<ProjectKey, Digest> {
    let mut out = digests(desired, |p| projects.contains(p));
    let absent = absent(desired);
    for project in projects {
        out.entry(project.clone()).or_insert(absent);
    }
    out
}

fn digests(
    desired: &Desired,
    wanted: impl Fn(&ProjectKey) -> bool,
) -> BTreeMap<ProjectKey, Digest> {
    let base = shaping(desired);
    let mut feeds: BTreeMap<ProjectKey, Feed> = BTreeMap::new();
    for project in desired.held.iter().filter(|p| wanted(p)) {
        let mut feed = base.clone();
        feed.put("held");
        feeds.insert(project.clone(), feed);
    }
    // Groups come sorted by external id, which starts with the project: each project's
    // groups are fed in one order whatever else the estate holds.
    for group in desired.groups.values() {
        if desired.held.contains(&group.identity.project) || !wanted(&group.identity.project) {
            continue;
        }
        let feed = feeds
            .entry(group.identity.project.clone())
            .or_insert_with(|| {
                let mut feed = base.clone();
                feed.put("groups");
                feed
            });
        feed.put(group.identity.role.as_str());
        feed.put(group.name.as_str());
        feed.put(group.account.as_str());
        feed.put(&group.members.len().to_string());
        group.members.iter().for_each(|m| feed.put(m.as_str()));
        feed.put(&group.permission_sets.len().to_string());
        group
            .permission_sets
            .iter()
            .for_each(|p| feed.put(p.as_str()));
    }
    feeds.into_iter().map(|(p, f)| (p, f.finish())).collect()
}

/// The digest of a project that has no group wanted and is not held (gone from meshStack, or
/// without an account): what it reads as once every group of it is retired.
pub fn absent(desired: &Desired) -> Digest {
    let mut feed = shaping(desired);
    feed.put("absent");
    feed.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{ApplyPolicy, DesiredGroup, Scope};
    use crate::model::{AccountId, Euid, GroupIdentity, GroupName, RoleId};
    use std::collections::BTreeSet;

    fn desired(groups: &[(&str, &str, &[&str])], held: &[&str], roles: &[&str]) -> Desired {
        Desired {
            platform: "p".into(),
            scope: Scope::All,
            groups: groups
                .iter()
                .map(|(project, role, members)| {
                    let identity = GroupIdentity {
                        project: ProjectKey::new("ws", *project),
                        role: RoleId::from(*role),
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
                })
                .collect(),
            held: held.iter().map(|p| ProjectKey::new("ws", *p)).collect(),
            findings: BTreeSet::new(),
            policy: ApplyPolicy {
                may_delete_assignments: false,
                scim_rate: 5.0,
                sso_admin_rate: 5.0,
            },
            roles: roles.iter().map(|r| RoleId::from(*r)).collect(),
            only_groups: None,
        }
    }

    #[test]
    fn a_project_digests_alike_exactly_when_its_reconcile_would_do_the_same() {
        let roles = ["admin", "reader"];
        let base = desired(&[("a", "admin", &["x"]), ("b", "admin", &[])], &[], &roles);
        let digests = project_digests(&base);
        let a = ProjectKey::new("ws", "a");
        let b = ProjectKey::new("ws", "b");
        assert_eq!(digests.len(), 2);
        assert_ne!(digests[&a], digests[&b]);

        // Another project's change, or the rates, leave a's digest alone.
        let mut other = desired(
            &[("a", "admin", &["x"]), ("b", "admin", &["y"])],
            &[],
            &roles,
        );
        other.policy.scim_rate = 1.0;
        assert_eq!(project_digests(&other)[&a], digests[&a]);
        assert_ne!(project_digests(&other)[&b], digests[&b]);

        // A member, a role mapping removed, a policy, a hold: each changes it.
        let member = desired(
            &[("a", "admin", &["x", "z"]), ("b", "admin", &[])],
            &[],
            &roles,
        );
        assert_ne!(project_digests(&member)[&a], digests[&a]);
        let unmapped = desired(
            &[("a", "admin", &["x"]), ("b", "admin", &[])],
            &[],
            &["admin"],
        );
        assert_ne!(project_digests(&unmapped)[&a], digests[&a]);
        let mut deleting = base.clone();
        deleting.policy.may_delete_assignments = true;
        assert_ne!(project_digests(&deleting)[&a], digests[&a]);
        let held = desired(
            &[("a", "admin", &["x"]), ("b", "admin", &[])],
            &["a"],
            &roles,
        );
        let held_digests = project_digests(&held);
        assert_ne!(held_digests[&a], digests[&a]);
        assert_eq!(held_digests[&b], digests[&b]);
        // Whatever a held project's groups say, it digests as held.
        let held_other = desired(
            &[("a", "admin", &["q"]), ("b", "admin", &[])],
            &["a"],
            &roles,
        );
        assert_eq!(project_digests(&held_other)[&a], held_digests[&a]);

        // Gone is its own digest, never that of a project with groups.
        assert!(!digests.values().any(|d| *d == absent(&base)));
        assert_eq!(absent(&base), absent(&other));
        assert_ne!(absent(&base), absent(&unmapped));
        assert_eq!(format!("{}", digests[&a]).len(), 32);
    }
}
