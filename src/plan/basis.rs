//! (pure) What a saved plan rests on (`plan --out`, applied by `sync --plan`): for each project
//! its operations touch, the digest of that project's desired state as meshStack and the config
//! made it ([`crate::digest`]); for each group they touch, a digest of what AWS held of it: the
//! group and any other group of its name or marker, their members and account assignments, and
//! the users the operations name. `sync --plan` computes both again from fresh reads and applies
//! the plan only when nothing differs, naming what does: a binding removed after planning
//! refuses it, a user or group the plan does not touch never does.

use super::Op;
use crate::desired::Desired;
use crate::digest::{Feed, digests_of};
use crate::model::{GroupIdentity, ProjectKey};
use crate::observed::{Assignment, Observed, ObservedGroup};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basis {
    /// `workspace.project` → the digest of its desired state, for every project touched.
    pub meshstack: BTreeMap<String, String>,
    /// A touched group's name → the digest of what AWS held of it.
    pub aws: BTreeMap<String, String>,
}

/// Where a saved plan no longer fits: the projects whose desired state and the groups whose
/// AWS state differ from when it was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    pub projects: Vec<String>,
    pub groups: Vec<String>,
}

impl Basis {
    pub fn of(desired: &Desired, observed: &Observed, ops: &[Op]) -> Self {
        let projects: BTreeSet<ProjectKey> = ops
            .iter()
            .filter_map(|op| {
                GroupIdentity::parse(&desired.platform, op.group().external_id.as_str())
            })
            .map(|identity| identity.project)
            .collect();
        let meshstack = digests_of(desired, &projects)
            .into_iter()
            .map(|(project, digest)| (project.to_string(), digest.to_string()))
            .collect();
        Self {
            meshstack,
            aws: touched(observed, ops),
        }
    }

    /// What differs in `now` from this basis, the plan's.
    pub fn changed(&self, now: &Basis) -> Changed {
        Changed {
            projects: differing(&self.meshstack, &now.meshstack),
            groups: differing(&self.aws, &now.aws),
        }
    }
}

impl Changed {
    pub fn is_empty(&self) -> bool {
        self.projects.is_empty() && self.groups.is_empty()
    }
}

impl std::fmt::Display for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.projects.is_empty() {
            parts.push(format!(
                "meshStack changed since the plan was made for {} project(s) it touches: {}",
                self.projects.len(),
                listed(&self.projects)
            ));
        }
        if !self.groups.is_empty() {
            parts.push(format!(
                "AWS IAM Identity Center changed since the plan was made for {} group(s) it touches: {}",
                self.groups.len(),
                listed(&self.groups)
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

fn listed(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

fn differing(planned: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<String> {
    planned
        .keys()
        .chain(now.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|key| planned.get(*key) != now.get(*key))
        .cloned()
        .collect()
}

/// Per group the operations name, what AWS holds of it. A group is matched by its marker, its
/// name and a rename's old name, so that a group someone else made under one of those names, or
/// one of ours renamed or re-created meanwhile, differs.
fn touched(observed: &Observed, ops: &[Op]) -> BTreeMap<String, String> {
    struct Touch<'a> {
        external_id: &'a str,
        names: BTreeSet<&'a str>,
        users: BTreeSet<&'a str>,
    }
    let mut touches: BTreeMap<&str, Touch> = BTreeMap::new();
    for op in ops {
        let group = op.group();
        let touch = touches.entry(group.name.as_str()).or_insert_with(|| Touch {
            external_id: group.external_id.as_str(),
            names: BTreeSet::from([group.name.as_str()]),
            users: BTreeSet::new(),
        });
        match op {
            Op::RenameGroup { from, .. } => {
                touch.names.insert(from.as_str());
            }
            Op::CreateGroup { members, .. }
            | Op::AddMembers { members, .. }
            | Op::RemoveMembers { members, .. } => {
                touch
                    .users
                    .extend(members.iter().map(|m| m.user_name.as_str()));
            }
            _ => {}
        }
    }
    let named: BTreeSet<&str> = touches
        .values()
        .flat_map(|t| t.users.iter().copied())
        .collect();
    let mut users: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, name) in &observed.users {
        if named.contains(name.as_str()) {
            users.entry(name.as_str()).or_default().push(id.as_str());
        }
    }
    // Indexed once: a first sync touches every group of the estate.
    let mut by_key: BTreeMap<&str, Vec<&ObservedGroup>> = BTreeMap::new();
    for g in &observed.groups {
        by_key.entry(g.name.as_str()).or_default().push(g);
        if let Some(e) = &g.external_id {
            by_key.entry(e.as_str()).or_default().push(g);
        }
    }
    let mut pairs: BTreeMap<&str, Vec<&Assignment>> = BTreeMap::new();
    for a in &observed.assignments {
        pairs.entry(a.group.as_str()).or_default().push(a);
    }
    touches
        .into_iter()
        .map(|(name, touch)| {
            let mut groups: BTreeMap<&str, &ObservedGroup> = BTreeMap::new();
            for key in touch.names.iter().chain([&touch.external_id]) {
                for g in by_key.get(key).into_iter().flatten() {
                    groups.insert(g.id.as_str(), g);
                }
            }
            let mut feed = Feed::new();
            feed.put(&groups.len().to_string());
            for g in groups.into_values() {
                feed.put(g.id.as_str());
                feed.put(g.name.as_str());
                feed.put(g.external_id.as_ref().map_or("", |e| e.as_str()));
                feed.put(&g.members.len().to_string());
                g.members.iter().for_each(|m| feed.put(m.as_str()));
                let pairs = pairs.get(g.id.as_str()).map_or(&[][..], Vec::as_slice);
                feed.put(&pairs.len().to_string());
                for a in pairs {
                    feed.put(a.account.as_str());
                    feed.put(a.permission_set.as_str());
                }
            }
            feed.put(&touch.users.len().to_string());
            for user in &touch.users {
                feed.put(user);
                let ids = users.get(user).map_or(&[][..], Vec::as_slice);
                feed.put(&ids.len().to_string());
                ids.iter().for_each(|id| feed.put(id));
            }
            (name.to_owned(), feed.finish().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::desired::{Scope, Settings, desired};
    use crate::model::{Euid, GroupId, GroupName, UserId, UserName};
    use crate::observed::ObservedGroup;
    use crate::snapshot::Snapshot;
    use std::path::Path;

    fn sample() -> Desired {
        let config = Config::load(Path::new("config/demo.dhall")).unwrap();
        let snapshot = Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap();
        let settings = Settings::new(&config, config.sso.as_ref().unwrap());
        desired(&snapshot, &settings, &Scope::All)
    }

    fn with_users(names: &[&str]) -> Observed {
        let mut observed = Observed::default();
        for (n, name) in names.iter().enumerate() {
            observed.users.insert(
                UserId::from(format!("u-{n}").as_str()),
                UserName::from(*name),
            );
        }
        observed
    }

    const USERS: [&str; 4] = [
        "alice@acme.example",
        "bob@acme.example",
        "carol@globex.example",
        "erin@globex.example",
    ];

    #[test]
    fn what_the_plan_does_not_touch_never_changes_its_basis() {
        let desired = sample();
        let observed = with_users(&USERS);
        let plan = crate::plan::plan(&desired, &observed);
        assert!(!plan.ops.is_empty());
        let basis = &plan.basis;
        assert!(basis.meshstack.contains_key("acme.web"), "{basis:?}");
        assert!(
            basis
                .aws
                .contains_key("mst-acme.web.meshstack-project-admin"),
            "{basis:?}"
        );

        // A group of someone else's and a user the IdP added, neither named by the plan.
        let mut later = observed.clone();
        later.groups.push(ObservedGroup {
            id: GroupId::from("g-other"),
            name: GroupName::from("someone-elses-group"),
            external_id: None,
            members: [UserId::from("u-0")].into(),
        });
        later.users.insert(
            UserId::from("u-new"),
            UserName::from("newcomer@acme.example"),
        );
        assert!(
            basis
                .changed(&Basis::of(&desired, &later, &plan.ops))
                .is_empty()
        );
    }

    #[test]
    fn a_touched_group_or_project_that_changed_is_named() {
        let desired = sample();
        let observed = with_users(&USERS);
        let plan = crate::plan::plan(&desired, &observed);

        // Someone made a group under a name the plan creates.
        let mut later = observed.clone();
        later.groups.push(ObservedGroup {
            id: GroupId::from("g-squat"),
            name: GroupName::from("mst-acme.web.meshstack-project-admin"),
            external_id: None,
            members: Default::default(),
        });
        let changed = plan.basis.changed(&Basis::of(&desired, &later, &plan.ops));
        assert_eq!(
            changed.groups,
            ["mst-acme.web.meshstack-project-admin"],
            "{changed}"
        );
        assert!(changed.projects.is_empty(), "{changed}");

        // A user the plan adds was re-created by the IdP under another id.
        let mut later = observed.clone();
        later.users.remove(&UserId::from("u-0"));
        later.users.insert(
            UserId::from("u-again"),
            UserName::from("alice@acme.example"),
        );
        let changed = plan.basis.changed(&Basis::of(&desired, &later, &plan.ops));
        assert!(!changed.groups.is_empty(), "{changed}");
        assert!(
            changed.groups.iter().all(|g| g.starts_with("mst-acme.")),
            "{changed}"
        );

        // A binding removed in meshStack after planning: its project is named.
        let mut fewer = desired.clone();
        let group = fewer
            .groups
            .values_mut()
            .find(|g| g.name.as_str() == "mst-acme.web.meshstack-project-admin")
            .unwrap();
        assert!(group.members.remove(&Euid::from("alice@acme.example")));
        let changed = plan.basis.changed(&Basis::of(&fewer, &observed, &plan.ops));
        assert_eq!(changed.projects, ["acme.web"], "{changed}");
        assert!(changed.groups.is_empty(), "{changed}");
        assert!(
            changed.to_string().starts_with(
                "meshStack changed since the plan was made for 1 project(s) it touches: acme.web"
            ),
            "{changed}"
        );
    }
}
