//! The emulator's one store: users, groups with their members, account assignments and the
//! asynchronous assignment operations. SCIM, sso-admin and identitystore are views of it, with
//! the same ids, as in AWS.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default)]
    pub members: BTreeSet<String>,
}

/// An account assignment, keyed as AWS keys it (the instance is the emulator's one instance).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal_type: String,
    pub principal_id: String,
}

/// Everything the store holds, as plain data: what `/_emulator/state` dumps and loads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub assignments: Vec<Assignment>,
    /// The permission sets the instance has (ARNs); `None` takes any well-formed ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_sets: Option<BTreeSet<String>>,
    /// The accounts in the organization; `None` takes any 12-digit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<BTreeSet<String>>,
}

impl State {
    /// The store that holds what an observation describes: users, groups with their members,
    /// and group assignments.
    pub fn from_observed(observed: &crate::observed::Observed) -> Self {
        Self {
            users: observed
                .users
                .iter()
                .map(|(id, name)| {
                    let (given, family) = name
                        .as_str()
                        .split_once('@')
                        .unwrap_or((name.as_str(), "User"));
                    User {
                        id: id.to_string(),
                        user_name: name.to_string(),
                        external_id: None,
                        display_name: name.to_string(),
                        given_name: given.to_owned(),
                        family_name: family.to_owned(),
                        email: None,
                    }
                })
                .collect(),
            groups: observed
                .groups
                .iter()
                .map(|g| Group {
                    id: g.id.to_string(),
                    display_name: g.name.to_string(),
                    external_id: g.external_id.as_ref().map(|e| e.to_string()),
                    members: g.members.iter().map(|m| m.to_string()).collect(),
                })
                .collect(),
            assignments: observed
                .assignments
                .iter()
                .map(|a| Assignment {
                    account_id: a.account.to_string(),
                    permission_set_arn: a.permission_set.to_string(),
                    principal_type: "GROUP".into(),
                    principal_id: a.group.to_string(),
                })
                .collect(),
            permission_sets: None,
            accounts: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Store {
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
    pub assignments: BTreeSet<Assignment>,
    /// The instance's permission sets; `None`: any well-formed ARN is taken.
    pub permission_sets: Option<BTreeSet<String>>,
    /// The organization's accounts; `None`: any 12-digit id is taken.
    pub accounts: Option<BTreeSet<String>>,
    next: u64,
    /// The 10-hex-digit prefix AWS puts in front of ids of one identity store.
    prefix: String,
}

impl Store {
    pub fn new(identity_store_suffix: &str) -> Self {
        Self {
            prefix: identity_store_suffix.to_owned(),
            ..Self::default()
        }
    }

    /// A new id in AWS's format, `<10 hex>-<uuid>`; deterministic so that tests can be
    /// compared run to run.
    pub fn new_id(&mut self) -> String {
        self.next += 1;
        let n = self.next;
        format!(
            "{}-{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            self.prefix,
            n,
            (n >> 32) & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            n
        )
    }

    pub fn load(&mut self, state: State) {
        self.users = state.users.into_iter().map(|u| (u.id.clone(), u)).collect();
        self.groups = state
            .groups
            .into_iter()
            .map(|g| (g.id.clone(), g))
            .collect();
        self.assignments = state.assignments.into_iter().collect();
        self.permission_sets = state.permission_sets;
        self.accounts = state.accounts;
        // Ids handed out later must not meet a loaded one: the counter moves past them.
        let loaded = self
            .users
            .keys()
            .chain(self.groups.keys())
            .filter_map(|id| id.rsplit('-').next())
            .filter_map(|n| u64::from_str_radix(n, 16).ok())
            .max()
            .unwrap_or(0);
        self.next = self.next.max(loaded);
    }

    pub fn dump(&self) -> State {
        State {
            users: self.users.values().cloned().collect(),
            groups: self.groups.values().cloned().collect(),
            assignments: self.assignments.iter().cloned().collect(),
            permission_sets: self.permission_sets.clone(),
            accounts: self.accounts.clone(),
        }
    }

    pub fn user_by_name(&self, user_name: &str) -> Option<&User> {
        self.users
            .values()
            .find(|u| u.user_name.eq_ignore_ascii_case(user_name))
    }

    /// Groups of a user, in id order.
    pub fn groups_of<'a>(&'a self, user_id: &str) -> impl Iterator<Item = &'a Group> + use<'a> {
        let user = user_id.to_owned();
        self.groups
            .values()
            .filter(move |g| g.members.contains(&user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_aws_shape_and_are_unique() {
        let mut store = Store::new("9067d0a3c1");
        let a = store.new_id();
        let b = store.new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 47, "{a}");
        let (prefix, uuid) = a.split_at(11);
        assert_eq!(prefix, "9067d0a3c1-");
        assert_eq!(
            uuid.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
    }
}
