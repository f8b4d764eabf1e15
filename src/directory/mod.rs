//! The seams to AWS IAM Identity Center: [`IdentityStore`] (users, groups, members; SCIM in
//! AWS) and [`AccountAssignments`] (sso-admin), and [`observe`], which reads an [`Observed`]
//! through them. The in-memory [`World`] implements both; the AWS clients will too.

mod memory;

use crate::desired::Desired;
use crate::model::{
    AccountId, ExternalId, GROUP_PREFIX, GroupId, GroupIdentity, GroupName, PermissionSetArn,
    UserId, UserName,
};
use crate::observed::{Assignment, Observed, ObservedGroup};
use std::collections::{BTreeMap, BTreeSet};

pub use memory::World;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("group {0} does not exist")]
    NoSuchGroup(GroupId),
    #[error("user {0} does not exist")]
    NoSuchUser(UserId),
    #[error("a group named {name} or with external id {external_id} already exists")]
    Conflict {
        name: GroupName,
        external_id: ExternalId,
    },
    /// AWS answered with an error; `request_id` is what AWS support asks for.
    #[error("{operation}: HTTP {status}: {detail}{}", .request_id.as_ref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Aws {
        operation: String,
        status: u16,
        detail: String,
        request_id: Option<String>,
    },
    #[error("{operation}: {message}")]
    Transport { operation: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// A group as the directory lists it: without members (AWS never returns them with a group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: GroupId,
    pub name: GroupName,
    pub external_id: Option<ExternalId>,
}

#[allow(async_fn_in_trait)]
pub trait IdentityStore {
    async fn list_groups(&self) -> Result<Vec<GroupRecord>, DirectoryError>;
    async fn group_members(&self, group: &GroupId) -> Result<Vec<UserId>, DirectoryError>;
    async fn list_users(&self) -> Result<Vec<(UserId, UserName)>, DirectoryError>;
    async fn create_group(
        &self,
        name: &GroupName,
        external_id: &ExternalId,
        members: &[UserId],
    ) -> Result<GroupId, DirectoryError>;
    async fn rename_group(&self, group: &GroupId, name: &GroupName) -> Result<(), DirectoryError>;
    async fn add_members(&self, group: &GroupId, members: &[UserId]) -> Result<(), DirectoryError>;
    async fn remove_members(
        &self,
        group: &GroupId,
        members: &[UserId],
    ) -> Result<(), DirectoryError>;
    /// Deleting a group that is already gone succeeds.
    async fn delete_group(&self, group: &GroupId) -> Result<(), DirectoryError>;
}

#[allow(async_fn_in_trait)]
pub trait AccountAssignments {
    /// The (account, permission set) pairs assigned to a group.
    async fn assignments_of(
        &self,
        group: &GroupId,
    ) -> Result<Vec<(AccountId, PermissionSetArn)>, DirectoryError>;
    async fn create_assignment(&self, assignment: &Assignment) -> Result<(), DirectoryError>;
    /// Deleting an assignment that is already gone succeeds.
    async fn delete_assignment(&self, assignment: &Assignment) -> Result<(), DirectoryError>;
}

/// Reads what the directory holds that a plan for `desired` needs: every group (to tell ours
/// from others' and to see name clashes), the members and assignments of ours, and all users.
pub async fn observe(
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    desired: &Desired,
) -> Result<Observed, DirectoryError> {
    let mut observed = Observed::default();
    for record in identity.list_groups().await? {
        let ours = record.name.as_str().starts_with(GROUP_PREFIX)
            && record
                .external_id
                .as_ref()
                .and_then(|e| GroupIdentity::parse(&desired.platform, e.as_str()))
                .is_some();
        let mut members = BTreeSet::new();
        if ours {
            members.extend(identity.group_members(&record.id).await?);
            for (account, permission_set) in assignments.assignments_of(&record.id).await? {
                observed.assignments.insert(Assignment {
                    account,
                    permission_set,
                    group: record.id.clone(),
                });
            }
        }
        observed.groups.push(ObservedGroup {
            id: record.id,
            name: record.name,
            external_id: record.external_id,
            members,
        });
    }
    observed.users = identity
        .list_users()
        .await?
        .into_iter()
        .collect::<BTreeMap<_, _>>();
    Ok(observed)
}
