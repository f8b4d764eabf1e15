//! The emulator's one store: users, groups with their members, account assignments and the
//! asynchronous assignment operations. SCIM, sso-admin and identitystore are views of it, with
//! the same ids, as in AWS.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// Key → ids: a look-up that would otherwise scan the store. AWS answers a filter on one
/// attribute of 100,000 groups as fast as on ten; at that size a scan per request made the
/// emulator, not the client, the cost of a run.
#[derive(Debug, Default)]
struct Index(HashMap<String, BTreeSet<String>>);

impl Index {
    fn add(&mut self, key: &str, id: &str) {
        self.0
            .entry(key.to_owned())
            .or_default()
            .insert(id.to_owned());
    }

    fn remove(&mut self, key: &str, id: &str) {
        if let Some(ids) = self.0.get_mut(key) {
            ids.remove(id);
            if ids.is_empty() {
                self.0.remove(key);
            }
        }
    }

    fn get<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a String> + use<'a> {
        self.0.get(key).into_iter().flatten()
    }
}

/// Whether two names are the same, as AWS compares `userName` and `displayName`
/// (case-insensitively, unless the quirk asks for exact).
fn same_name(exact: bool, a: &str, b: &str) -> bool {
    if exact {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

/// The index key of a name: the folding [`same_name`] ignores.
fn folded(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Users and groups change only through the methods below, which keep the indexes.
#[derive(Debug, Default)]
pub struct Store {
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, Group>,
    pub assignments: BTreeSet<Assignment>,
    /// The instance's permission sets; `None`: any well-formed ARN is taken.
    pub permission_sets: Option<BTreeSet<String>>,
    /// The organization's accounts; `None`: any 12-digit id is taken.
    pub accounts: Option<BTreeSet<String>>,
    /// Membership the other way round (user → groups), kept by every change through
    /// [`Store::insert_group`], [`Store::add_members`], [`Store::remove_members`] and
    /// [`Store::remove_group`], so that `members.value eq` costs a look-up, not a scan.
    groups_of_user: Index,
    users_by_name: Index,
    groups_by_name: Index,
    groups_by_external_id: Index,
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
        self.users.clear();
        self.groups.clear();
        self.groups_of_user = Index::default();
        self.users_by_name = Index::default();
        self.groups_by_name = Index::default();
        self.groups_by_external_id = Index::default();
        for user in state.users {
            self.insert_user(user);
        }
        for group in state.groups {
            self.insert_group(group);
        }
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

    pub fn users(&self) -> &BTreeMap<String, User> {
        &self.users
    }

    pub fn groups(&self) -> &BTreeMap<String, Group> {
        &self.groups
    }

    /// The users of that `userName` (AWS takes no two that differ only in case).
    pub fn users_named(&self, user_name: &str, exact: bool) -> Vec<&User> {
        self.users_by_name
            .get(&folded(user_name))
            .filter_map(|id| self.users.get(id))
            .filter(|u| same_name(exact, &u.user_name, user_name))
            .collect()
    }

    pub fn user_by_name(&self, user_name: &str) -> Option<&User> {
        self.users_named(user_name, false).into_iter().next()
    }

    pub fn groups_named(&self, display_name: &str, exact: bool) -> Vec<&Group> {
        self.groups_by_name
            .get(&folded(display_name))
            .filter_map(|id| self.groups.get(id))
            .filter(|g| same_name(exact, &g.display_name, display_name))
            .collect()
    }

    pub fn groups_with_external_id(&self, external_id: &str) -> Vec<&Group> {
        self.groups_by_external_id
            .get(external_id)
            .filter_map(|id| self.groups.get(id))
            .collect()
    }

    /// The assignments of one (account, permission set) pair: a range of the ordered set.
    pub fn assignments_of<'a>(
        &'a self,
        account: &'a str,
        permission_set: &'a str,
    ) -> impl Iterator<Item = &'a Assignment> + use<'a> {
        let from = Assignment {
            account_id: account.to_owned(),
            permission_set_arn: permission_set.to_owned(),
            principal_type: String::new(),
            principal_id: String::new(),
        };
        self.assignments
            .range(from..)
            .take_while(move |a| a.account_id == account && a.permission_set_arn == permission_set)
    }

    pub fn insert_user(&mut self, user: User) {
        if let Some(old) = self.users.get(&user.id) {
            self.users_by_name.remove(&folded(&old.user_name), &user.id);
        }
        self.users_by_name.add(&folded(&user.user_name), &user.id);
        self.users.insert(user.id.clone(), user);
    }

    /// Groups of a user, in id order, from the index.
    pub fn groups_of<'a>(&'a self, user_id: &str) -> impl Iterator<Item = &'a Group> + use<'a> {
        self.groups_of_user
            .get(user_id)
            .filter_map(|id| self.groups.get(id))
    }

    /// Adds a group with its members.
    pub fn insert_group(&mut self, group: Group) {
        self.remove_group(&group.id);
        for m in &group.members {
            self.groups_of_user.add(m, &group.id);
        }
        self.groups_by_name
            .add(&folded(&group.display_name), &group.id);
        if let Some(ext) = &group.external_id {
            self.groups_by_external_id.add(ext, &group.id);
        }
        self.groups.insert(group.id.clone(), group);
    }

    /// Removes a group; `None` when there is none with that id.
    pub fn remove_group(&mut self, id: &str) -> Option<Group> {
        let group = self.groups.remove(id)?;
        for m in &group.members {
            self.groups_of_user.remove(m, id);
        }
        self.groups_by_name.remove(&folded(&group.display_name), id);
        if let Some(ext) = &group.external_id {
            self.groups_by_external_id.remove(ext, id);
        }
        Some(group)
    }

    /// Renames a group that exists.
    pub fn rename_group(&mut self, id: &str, display_name: String) {
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        self.groups_by_name.remove(&folded(&group.display_name), id);
        self.groups_by_name.add(&folded(&display_name), id);
        group.display_name = display_name;
    }

    /// Sets the `externalId` of a group that exists.
    pub fn set_group_external_id(&mut self, id: &str, external_id: String) {
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        if let Some(old) = &group.external_id {
            self.groups_by_external_id.remove(old, id);
        }
        self.groups_by_external_id.add(&external_id, id);
        group.external_id = Some(external_id);
    }

    /// Adds members to a group that exists.
    pub fn add_members(&mut self, id: &str, members: impl IntoIterator<Item = String>) {
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        for m in members {
            self.groups_of_user.add(&m, id);
            group.members.insert(m);
        }
    }

    /// Removes members from a group that exists.
    pub fn remove_members<'m>(&mut self, id: &str, members: impl IntoIterator<Item = &'m String>) {
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        let mut gone = Vec::new();
        for m in members {
            if group.members.remove(m) {
                gone.push(m);
            }
        }
        for m in gone {
            self.groups_of_user.remove(m, id);
        }
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

    fn group(id: &str, members: &[&str]) -> Group {
        Group {
            id: id.into(),
            display_name: id.into(),
            external_id: None,
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn groups_of(store: &Store, user: &str) -> Vec<String> {
        store.groups_of(user).map(|g| g.id.clone()).collect()
    }

    /// The user → groups index follows loads and every change, and agrees with a scan.
    #[test]
    fn a_users_groups_come_from_the_index_and_follow_every_change() {
        let mut store = Store::new("9067d0a3c1");
        store.load(State {
            groups: vec![group("g1", &["u1", "u2"]), group("g2", &["u2"])],
            ..State::default()
        });
        assert_eq!(groups_of(&store, "u2"), ["g1", "g2"]);
        store.insert_group(group("g3", &["u1"]));
        store.add_members("g2", ["u1".to_owned()]);
        assert_eq!(groups_of(&store, "u1"), ["g1", "g2", "g3"]);
        store.remove_members("g1", [&"u1".to_owned()]);
        store.remove_group("g2");
        assert_eq!(groups_of(&store, "u1"), ["g3"]);
        assert_eq!(groups_of(&store, "u2"), ["g1"]);
        for user in ["u1", "u2", "u3"] {
            let scanned: Vec<String> = store
                .groups
                .values()
                .filter(|g| g.members.contains(user))
                .map(|g| g.id.clone())
                .collect();
            assert_eq!(groups_of(&store, user), scanned, "{user}");
        }
    }

    /// The name and externalId indexes follow renames, loads and deletions, fold case as AWS
    /// does, and an assignment range holds exactly its pair's assignments.
    #[test]
    fn look_ups_by_name_external_id_and_pair_follow_every_change() {
        let mut store = Store::new("9067d0a3c1");
        let named = |id: &str, name: &str, ext: Option<&str>| Group {
            display_name: name.into(),
            external_id: ext.map(str::to_owned),
            ..group(id, &[])
        };
        store.load(State {
            groups: vec![named("g1", "mst-a", Some("e1")), named("g2", "Other", None)],
            ..State::default()
        });
        let ids = |gs: Vec<&Group>| gs.iter().map(|g| g.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(store.groups_named("MST-A", false)), ["g1"]);
        assert!(store.groups_named("MST-A", true).is_empty());
        assert_eq!(ids(store.groups_with_external_id("e1")), ["g1"]);
        store.rename_group("g1", "mst-b".into());
        store.set_group_external_id("g2", "e2".into());
        assert!(store.groups_named("mst-a", false).is_empty());
        assert_eq!(ids(store.groups_named("mst-b", false)), ["g1"]);
        assert_eq!(ids(store.groups_with_external_id("e2")), ["g2"]);
        store.set_group_external_id("g2", "e3".into());
        assert!(store.groups_with_external_id("e2").is_empty());
        store.remove_group("g1");
        assert!(store.groups_named("mst-b", false).is_empty());
        assert!(store.groups_with_external_id("e1").is_empty());

        let assignment = |account: &str, ps: &str, group: &str| Assignment {
            account_id: account.into(),
            permission_set_arn: ps.into(),
            principal_type: "GROUP".into(),
            principal_id: group.into(),
        };
        for (a, p, g) in [
            ("1", "p1", "g1"),
            ("1", "p2", "g1"),
            ("1", "p1", "g2"),
            ("2", "p1", "g1"),
        ] {
            store.assignments.insert(assignment(a, p, g));
        }
        let of: Vec<_> = store.assignments_of("1", "p1").cloned().collect();
        assert_eq!(
            of,
            [assignment("1", "p1", "g1"), assignment("1", "p1", "g2")]
        );
        assert_eq!(store.assignments_of("3", "p1").count(), 0);
    }

    /// A loaded state moves the id counter past its ids: new ids never meet loaded ones.
    #[test]
    fn a_loaded_state_moves_the_id_counter_on() {
        let mut source = Store::new("9067d0a3c1");
        let loaded: Vec<String> = (0..5).map(|_| source.new_id()).collect();
        let mut store = Store::new("9067d0a3c1");
        store.load(State {
            groups: loaded.iter().map(|id| group(id, &[])).collect(),
            ..State::default()
        });
        let next = store.new_id();
        assert!(!loaded.contains(&next), "{next}");
        assert!(next > *loaded.iter().max().unwrap());
    }
}
