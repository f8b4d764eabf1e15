//! `World`: an in-memory identity store and assignment table with AWS's semantics where they
//! matter to a plan (unique names and external ids, ≤ 100 members per request).

use super::{AccountAssignments, DirectoryError, GroupRecord, IdentityStore, Receipt};
use crate::model::{AccountId, ExternalId, GroupId, GroupName, PermissionSetArn, UserId, UserName};
use crate::observed::{Assignment, Observed, ObservedGroup};
use crate::plan::MAX_MEMBERS_PER_REQUEST;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct World {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    observed: Observed,
    next_id: u64,
    /// Membership the other way round: the groups of each user, kept with every change, so a
    /// user's groups cost a look-up, not a scan of every group.
    groups_of: HashMap<UserId, BTreeSet<GroupId>>,
    /// Each group's place in `observed.groups`, its name (lowercase: AWS compares names
    /// ignoring case) and external id, and its assignments: what a request names is found by
    /// a look-up. A scan per request made observing an estate quadratic (321 s at 33,000
    /// projects).
    at: HashMap<GroupId, usize>,
    names: HashMap<String, GroupId>,
    external_ids: HashMap<ExternalId, GroupId>,
    assigned: HashMap<GroupId, BTreeSet<(AccountId, PermissionSetArn)>>,
}

impl World {
    /// A world holding exactly what `observed` describes.
    pub fn new(observed: Observed) -> Self {
        let next_id = observed.groups.len() as u64 + 1;
        let mut groups_of: HashMap<UserId, BTreeSet<GroupId>> = HashMap::new();
        for g in &observed.groups {
            for m in &g.members {
                groups_of.entry(m.clone()).or_default().insert(g.id.clone());
            }
        }
        let mut assigned: HashMap<GroupId, BTreeSet<(AccountId, PermissionSetArn)>> =
            HashMap::new();
        for a in &observed.assignments {
            assigned
                .entry(a.group.clone())
                .or_default()
                .insert((a.account.clone(), a.permission_set.clone()));
        }
        let mut state = State {
            observed,
            next_id,
            groups_of,
            assigned,
            ..State::default()
        };
        state.index();
        Self {
            state: Mutex::new(state),
        }
    }

    /// Everything the world holds, as plain data.
    pub fn dump(&self) -> Observed {
        self.lock().observed.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("world lock poisoned")
    }
}

impl State {
    /// The look-ups by id, name and external id, from `observed.groups`.
    fn index(&mut self) {
        self.at.clear();
        self.names.clear();
        self.external_ids.clear();
        for (i, g) in self.observed.groups.iter().enumerate() {
            self.at.insert(g.id.clone(), i);
            self.names
                .insert(g.name.as_str().to_lowercase(), g.id.clone());
            if let Some(e) = &g.external_id {
                self.external_ids.insert(e.clone(), g.id.clone());
            }
        }
    }

    fn joined(&mut self, group: &GroupId, members: impl IntoIterator<Item = UserId>) {
        for m in members {
            self.groups_of.entry(m).or_default().insert(group.clone());
        }
    }

    fn left(&mut self, group: &GroupId, members: impl IntoIterator<Item = UserId>) {
        for m in members {
            if let Some(groups) = self.groups_of.get_mut(&m) {
                groups.remove(group);
                if groups.is_empty() {
                    self.groups_of.remove(&m);
                }
            }
        }
    }

    fn group(&mut self, id: &GroupId) -> Result<&mut ObservedGroup, DirectoryError> {
        self.at
            .get(id)
            .and_then(|i| self.observed.groups.get_mut(*i))
            .ok_or_else(|| DirectoryError::NoSuchGroup(id.clone()))
    }

    fn check_members(&self, members: &[UserId]) -> Result<(), DirectoryError> {
        if members.len() > MAX_MEMBERS_PER_REQUEST {
            return Err(DirectoryError::Other(format!(
                "{} member changes in one request; AWS allows {MAX_MEMBERS_PER_REQUEST}",
                members.len()
            )));
        }
        match members
            .iter()
            .find(|m| !self.observed.users.contains_key(*m))
        {
            Some(m) => Err(DirectoryError::NoSuchUser(m.clone())),
            None => Ok(()),
        }
    }
}

impl IdentityStore for World {
    async fn list_groups(&self) -> Result<Vec<GroupRecord>, DirectoryError> {
        Ok(self
            .lock()
            .observed
            .groups
            .iter()
            .map(|g| GroupRecord {
                id: g.id.clone(),
                name: g.name.clone(),
                external_id: g.external_id.clone(),
            })
            .collect())
    }

    async fn group_members(
        &self,
        group: &GroupId,
    ) -> Result<Vec<(UserId, UserName)>, DirectoryError> {
        let mut state = self.lock();
        let members: Vec<UserId> = state.group(group)?.members.iter().cloned().collect();
        Ok(members
            .into_iter()
            .filter_map(|id| {
                let name = state.observed.users.get(&id)?.clone();
                Some((id, name))
            })
            .collect())
    }

    async fn groups_of_user(&self, user: &UserId) -> Result<Vec<GroupId>, DirectoryError> {
        Ok(self
            .lock()
            .groups_of
            .get(user)
            .map(|groups| groups.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn find_user(&self, name: &str) -> Result<Option<(UserId, UserName)>, DirectoryError> {
        Ok(super::pick_user(&self.lock().observed.users, name))
    }

    async fn list_users(&self) -> Result<Vec<(UserId, UserName)>, DirectoryError> {
        Ok(self
            .lock()
            .observed
            .users
            .iter()
            .map(|(id, name)| (id.clone(), name.clone()))
            .collect())
    }

    async fn create_group(
        &self,
        name: &GroupName,
        external_id: &ExternalId,
        members: &[UserId],
    ) -> Result<(GroupId, Receipt), DirectoryError> {
        let mut state = self.lock();
        state.check_members(members)?;
        let clash = state.names.contains_key(&name.as_str().to_lowercase())
            || state.external_ids.contains_key(external_id);
        if clash {
            return Err(DirectoryError::Conflict {
                name: name.clone(),
                external_id: external_id.clone(),
            });
        }
        let n = state.next_id;
        state.next_id += 1;
        let id = GroupId::from(format!("90676d0a3c-{n:08x}-0000-4000-8000-000000000000"));
        let at = state.observed.groups.len();
        state.observed.groups.push(ObservedGroup {
            id: id.clone(),
            name: name.clone(),
            external_id: Some(external_id.clone()),
            members: members.iter().cloned().collect(),
        });
        state.at.insert(id.clone(), at);
        state.names.insert(name.as_str().to_lowercase(), id.clone());
        state.external_ids.insert(external_id.clone(), id.clone());
        state.joined(&id, members.iter().cloned());
        Ok((id, Receipt::default()))
    }

    async fn rename_group(
        &self,
        group: &GroupId,
        name: &GroupName,
    ) -> Result<Receipt, DirectoryError> {
        let mut state = self.lock();
        let clash = state
            .names
            .get(&name.as_str().to_lowercase())
            .is_some_and(|holder| holder != group);
        if clash {
            let external_id = state
                .group(group)?
                .external_id
                .clone()
                .unwrap_or(ExternalId::from(String::new()));
            return Err(DirectoryError::Conflict {
                name: name.clone(),
                external_id,
            });
        }
        let old = std::mem::replace(&mut state.group(group)?.name, name.clone());
        state.names.remove(&old.as_str().to_lowercase());
        state
            .names
            .insert(name.as_str().to_lowercase(), group.clone());
        Ok(Receipt::default())
    }

    async fn add_members(
        &self,
        group: &GroupId,
        members: &[UserId],
    ) -> Result<Receipt, DirectoryError> {
        let mut state = self.lock();
        state.check_members(members)?;
        state.group(group)?.members.extend(members.iter().cloned());
        state.joined(group, members.iter().cloned());
        Ok(Receipt::default())
    }

    async fn remove_members(
        &self,
        group: &GroupId,
        members: &[UserId],
    ) -> Result<Receipt, DirectoryError> {
        let mut state = self.lock();
        if members.len() > MAX_MEMBERS_PER_REQUEST {
            return Err(DirectoryError::Other(
                "more than 100 member changes in one request".into(),
            ));
        }
        let g = state.group(group)?;
        for m in members {
            g.members.remove(m);
        }
        state.left(group, members.iter().cloned());
        Ok(Receipt::default())
    }

    async fn delete_group(&self, group: &GroupId) -> Result<Receipt, DirectoryError> {
        let mut state = self.lock();
        let members: Vec<UserId> = state
            .observed
            .groups
            .iter()
            .filter(|g| &g.id == group)
            .flat_map(|g| g.members.iter().cloned())
            .collect();
        state.observed.groups.retain(|g| &g.id != group);
        // Deletes are few: the look-ups are built again.
        state.index();
        state.left(group, members);
        Ok(Receipt::default())
    }
}

impl AccountAssignments for World {
    async fn assignments_of(
        &self,
        group: &GroupId,
    ) -> Result<Vec<(AccountId, PermissionSetArn)>, DirectoryError> {
        Ok(self
            .lock()
            .assigned
            .get(group)
            .map(|pairs| pairs.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn groups_on(
        &self,
        account: &AccountId,
        permission_set: &PermissionSetArn,
    ) -> Result<Vec<GroupId>, DirectoryError> {
        // Assignments sort by account, then permission set: the pair's are one range.
        let from = Assignment {
            account: account.clone(),
            permission_set: permission_set.clone(),
            group: GroupId::from(String::new()),
        };
        Ok(self
            .lock()
            .observed
            .assignments
            .range(from..)
            .take_while(|a| &a.account == account && &a.permission_set == permission_set)
            .map(|a| a.group.clone())
            .collect())
    }

    async fn create_assignment(&self, assignment: &Assignment) -> Result<Receipt, DirectoryError> {
        let mut state = self.lock();
        state.group(&assignment.group)?;
        state.observed.assignments.insert(assignment.clone());
        state
            .assigned
            .entry(assignment.group.clone())
            .or_default()
            .insert((
                assignment.account.clone(),
                assignment.permission_set.clone(),
            ));
        Ok(Receipt::default())
    }

    async fn delete_assignment(&self, assignment: &Assignment) -> Result<Receipt, DirectoryError> {
        let mut state = self.lock();
        state.observed.assignments.remove(assignment);
        if let Some(pairs) = state.assigned.get_mut(&assignment.group) {
            pairs.remove(&(
                assignment.account.clone(),
                assignment.permission_set.clone(),
            ));
        }
        Ok(Receipt::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<UserId> {
        names.iter().map(|n| UserId::from(*n)).collect()
    }

    /// The look-ups by id, name, external id and assignment follow every change, with AWS's
    /// rules: names unique ignoring case, external ids unique, a deleted group's name free.
    #[tokio::test]
    async fn names_ids_and_assignments_are_found_by_look_up_and_stay_unique() {
        let world = World::new(Observed::default());
        let (a, b) = (
            ExternalId::from("mst:v1:p:w:a:r"),
            ExternalId::from("mst:v1:p:w:b:r"),
        );
        let (g1, _) = world
            .create_group(&GroupName::from("mst-One"), &a, &[])
            .await
            .unwrap();
        let conflict = |r: Result<(GroupId, Receipt), DirectoryError>| {
            matches!(r, Err(DirectoryError::Conflict { .. }))
        };
        assert!(conflict(
            world
                .create_group(&GroupName::from("MST-one"), &b, &[])
                .await
        ));
        assert!(conflict(
            world
                .create_group(&GroupName::from("mst-two"), &a, &[])
                .await
        ));
        let (g2, _) = world
            .create_group(&GroupName::from("mst-two"), &b, &[])
            .await
            .unwrap();
        assert!(
            world
                .rename_group(&g2, &GroupName::from("MST-ONE"))
                .await
                .is_err()
        );
        world
            .rename_group(&g1, &GroupName::from("mst-uno"))
            .await
            .unwrap();
        world
            .rename_group(&g2, &GroupName::from("mst-one"))
            .await
            .unwrap();
        let (account, ps) = (
            AccountId::from("111111111111"),
            PermissionSetArn::from("arn:ps"),
        );
        let assignment = Assignment {
            account: account.clone(),
            permission_set: ps.clone(),
            group: g2.clone(),
        };
        world.create_assignment(&assignment).await.unwrap();
        assert_eq!(
            world.assignments_of(&g2).await.unwrap(),
            [(account.clone(), ps.clone())]
        );
        assert_eq!(
            world.groups_on(&account, &ps).await.unwrap(),
            std::slice::from_ref(&g2)
        );
        world.delete_assignment(&assignment).await.unwrap();
        assert!(world.assignments_of(&g2).await.unwrap().is_empty());
        world.delete_group(&g1).await.unwrap();
        assert!(world.group_members(&g1).await.is_err());
        assert!(world.group_members(&g2).await.unwrap().is_empty());
        let c = ExternalId::from("mst:v1:p:w:c:r");
        world
            .create_group(&GroupName::from("mst-uno"), &c, &[])
            .await
            .unwrap();
    }

    /// The user → groups index follows every change: create, add, remove, delete.
    #[tokio::test]
    async fn a_users_groups_follow_every_membership_change() {
        let mut observed = Observed::default();
        for u in ["u1", "u2", "u3"] {
            observed
                .users
                .insert(UserId::from(u), UserName::from(format!("{u}@x").as_str()));
        }
        observed.groups.push(ObservedGroup {
            id: GroupId::from("g0"),
            name: GroupName::from("mst-zero"),
            external_id: None,
            members: ids(&["u1"]).into_iter().collect(),
        });
        let world = World::new(observed);
        let groups = |u: &str| {
            let world = &world;
            let u = UserId::from(u);
            async move { world.groups_of_user(&u).await.unwrap() }
        };
        assert_eq!(groups("u1").await, [GroupId::from("g0")]);
        let ext = ExternalId::from("mst:v1:p:w:a:r");
        let (g1, _) = world
            .create_group(&GroupName::from("mst-one"), &ext, &ids(&["u1", "u2"]))
            .await
            .unwrap();
        assert_eq!(groups("u2").await, vec![g1.clone()]);
        assert_eq!(groups("u1").await.len(), 2);
        world.add_members(&g1, &ids(&["u3"])).await.unwrap();
        assert_eq!(groups("u3").await, vec![g1.clone()]);
        world.remove_members(&g1, &ids(&["u1"])).await.unwrap();
        assert_eq!(groups("u1").await, [GroupId::from("g0")]);
        world.delete_group(&g1).await.unwrap();
        assert!(groups("u2").await.is_empty() && groups("u3").await.is_empty());
        // The index agrees with a scan of every group.
        for u in ["u1", "u2", "u3"] {
            let scanned: Vec<GroupId> = world
                .dump()
                .groups
                .iter()
                .filter(|g| g.members.contains(&UserId::from(u)))
                .map(|g| g.id.clone())
                .collect();
            assert_eq!(groups(u).await, scanned, "{u}");
        }
    }
}
