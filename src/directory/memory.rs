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
        Self {
            state: Mutex::new(State {
                observed,
                next_id,
                groups_of,
            }),
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
        self.observed
            .groups
            .iter_mut()
            .find(|g| &g.id == id)
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
        let clash = state.observed.groups.iter().any(|g| {
            g.name.as_str().eq_ignore_ascii_case(name.as_str())
                || g.external_id.as_ref() == Some(external_id)
        });
        if clash {
            return Err(DirectoryError::Conflict {
                name: name.clone(),
                external_id: external_id.clone(),
            });
        }
        let n = state.next_id;
        state.next_id += 1;
        let id = GroupId::from(format!("90676d0a3c-{n:08x}-0000-4000-8000-000000000000"));
        state.observed.groups.push(ObservedGroup {
            id: id.clone(),
            name: name.clone(),
            external_id: Some(external_id.clone()),
            members: members.iter().cloned().collect(),
        });
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
            .observed
            .groups
            .iter()
            .any(|g| &g.id != group && g.name.as_str().eq_ignore_ascii_case(name.as_str()));
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
        state.group(group)?.name = name.clone();
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
            .observed
            .assignments
            .iter()
            .filter(|a| &a.group == group)
            .map(|a| (a.account.clone(), a.permission_set.clone()))
            .collect())
    }

    async fn groups_on(
        &self,
        account: &AccountId,
        permission_set: &PermissionSetArn,
    ) -> Result<Vec<GroupId>, DirectoryError> {
        Ok(self
            .lock()
            .observed
            .assignments
            .iter()
            .filter(|a| &a.account == account && &a.permission_set == permission_set)
            .map(|a| a.group.clone())
            .collect())
    }

    async fn create_assignment(&self, assignment: &Assignment) -> Result<Receipt, DirectoryError> {
        let mut state = self.lock();
        state.group(&assignment.group)?;
        state.observed.assignments.insert(assignment.clone());
        Ok(Receipt::default())
    }

    async fn delete_assignment(&self, assignment: &Assignment) -> Result<Receipt, DirectoryError> {
        self.lock().observed.assignments.remove(assignment);
        Ok(Receipt::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<UserId> {
        names.iter().map(|n| UserId::from(*n)).collect()
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
