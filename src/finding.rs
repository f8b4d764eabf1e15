//! Findings: what people should know about, apart from the operations of a plan. A finding
//! never changes AWS; it explains why something was not done or looks wrong.

use crate::model::{AccountId, Euid, GroupId, GroupName, ProjectKey, Username};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A bound user has no euid, so there is no AWS user to put into the group.
    UserWithoutEuid { username: Username },
    /// A binding names a user meshStack did not list (deleted, or not readable).
    BindingToUnknownUser {
        project: ProjectKey,
        username: Username,
    },
    /// A binding names a role display name that no known project role has.
    BindingToUnknownRole { project: ProjectKey, role: String },
    /// A group binding names a workspace user group meshStack did not list.
    BindingToUnknownGroup { project: ProjectKey, group: String },
    /// The project's tenant has no AWS account id yet; its groups are left as they are.
    TenantWithoutAccount { project: ProjectKey },
    /// The tenant's account id is not 12 digits; its groups are left as they are.
    InvalidAccountId {
        project: ProjectKey,
        account_id: String,
    },
    /// The project appears with more than one tenant on this platform.
    DuplicateTenant { project: ProjectKey },
    /// The group name pattern needs argument 3 and the project has no usable numeric id.
    ProjectWithoutNumericId { project: ProjectKey, detail: String },
    /// An identifier is longer than the configured identifier length allows.
    IdentifierTooLong { project: ProjectKey, detail: String },
    /// Two desired groups render to the same name (compared case-insensitively).
    DuplicateGroupName {
        name: GroupName,
        projects: Vec<ProjectKey>,
    },
    /// A rendered group name breaks AWS's rules.
    InvalidGroupName { name: GroupName, detail: String },
    /// No user in AWS IAM Identity Center has this euid as userName.
    UnresolvedEuid { euid: Euid, groups: usize },
    /// More than one AWS user matches this euid when case is ignored, and none exactly.
    AmbiguousEuid { euid: Euid, candidates: Vec<String> },
    /// A user would be in more groups than AWS evaluates for permissions (1,000).
    UserInTooManyGroups { euid: Euid, groups: usize },
    /// The plan would leave more groups in the identity store than AWS's quota allows
    /// (`in_store` is known only when the whole store was read).
    StoreGroupQuota {
        wanted: usize,
        in_store: Option<usize>,
        limit: usize,
    },
    /// An `mst-` group without our marker: not ours, left alone.
    ForeignGroupIgnored { name: GroupName, id: GroupId },
    /// A group that is not ours already has the name a desired group needs.
    NameTakenByForeignGroup { name: GroupName, id: GroupId },
    /// Two groups carry the same identity marker; the second is left alone.
    DuplicateManagedGroup {
        name: GroupName,
        id: GroupId,
        kept: GroupId,
    },
    /// Our group should go, but it still has assignments the role may not delete, or may have
    /// some nobody could see (`None`: read per pair): it is emptied instead.
    GroupKeptForAssignments {
        name: GroupName,
        assignments: Option<usize>,
    },
    /// An assignment of ours should go, but the role may not delete assignments.
    AssignmentKept {
        name: GroupName,
        account: AccountId,
        permission_set: String,
    },
}

impl Finding {
    /// The kind as `plan --json` names it (`binding_to_unknown_user`): a metric's label.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::UserWithoutEuid { .. } => "user_without_euid",
            Finding::BindingToUnknownUser { .. } => "binding_to_unknown_user",
            Finding::BindingToUnknownRole { .. } => "binding_to_unknown_role",
            Finding::BindingToUnknownGroup { .. } => "binding_to_unknown_group",
            Finding::TenantWithoutAccount { .. } => "tenant_without_account",
            Finding::InvalidAccountId { .. } => "invalid_account_id",
            Finding::DuplicateTenant { .. } => "duplicate_tenant",
            Finding::ProjectWithoutNumericId { .. } => "project_without_numeric_id",
            Finding::IdentifierTooLong { .. } => "identifier_too_long",
            Finding::DuplicateGroupName { .. } => "duplicate_group_name",
            Finding::InvalidGroupName { .. } => "invalid_group_name",
            Finding::UnresolvedEuid { .. } => "unresolved_euid",
            Finding::AmbiguousEuid { .. } => "ambiguous_euid",
            Finding::UserInTooManyGroups { .. } => "user_in_too_many_groups",
            Finding::StoreGroupQuota { .. } => "store_group_quota",
            Finding::ForeignGroupIgnored { .. } => "foreign_group_ignored",
            Finding::NameTakenByForeignGroup { .. } => "name_taken_by_foreign_group",
            Finding::DuplicateManagedGroup { .. } => "duplicate_managed_group",
            Finding::GroupKeptForAssignments { .. } => "group_kept_for_assignments",
            Finding::AssignmentKept { .. } => "assignment_kept",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Finding::*;
        match self {
            UserWithoutEuid { username } => write!(f, "user {username} has no euid; skipped"),
            BindingToUnknownUser { project, username } => {
                write!(
                    f,
                    "{project}: binding to user {username}, whom meshStack's user listing does not hold; the project is held (its groups are left as they are) until meshStack is consistent"
                )
            }
            BindingToUnknownRole { project, role } => {
                write!(f, "{project}: binding with unknown role {role:?}; skipped")
            }
            BindingToUnknownGroup { project, group } => {
                write!(
                    f,
                    "{project}: binding to user group {group}, which meshStack's group listing does not hold; the project is held (its groups are left as they are) until meshStack is consistent"
                )
            }
            TenantWithoutAccount { project } => {
                write!(
                    f,
                    "{project}: tenant has no AWS account id yet; its groups are left as they are"
                )
            }
            InvalidAccountId {
                project,
                account_id,
            } => write!(
                f,
                "{project}: account id {account_id:?} is not 12 digits; its groups are left as they are"
            ),
            DuplicateTenant { project } => write!(
                f,
                "{project}: more than one tenant on this platform; its groups are left as they are"
            ),
            ProjectWithoutNumericId { project, detail } => write!(
                f,
                "{project}: no numeric project id ({detail}); its groups are left as they are"
            ),
            IdentifierTooLong { project, detail } => {
                write!(f, "{project}: {detail}; its groups are left as they are")
            }
            DuplicateGroupName { name, projects } => {
                let list: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
                write!(
                    f,
                    "group name {name} is produced by {}; none of them is changed",
                    list.join(", ")
                )
            }
            InvalidGroupName { name, detail } => write!(f, "group name {name:?}: {detail}"),
            UnresolvedEuid { euid, groups } => write!(
                f,
                "no AWS user with userName {euid} (wanted in {groups} group(s)); provision it from the IdP"
            ),
            AmbiguousEuid { euid, candidates } => write!(
                f,
                "euid {euid} matches {} AWS users when case is ignored ({}); none is added",
                candidates.len(),
                candidates.join(", ")
            ),
            StoreGroupQuota {
                wanted,
                in_store,
                limit,
            } => {
                write!(f, "{wanted} groups are wanted")?;
                if let Some(n) = in_store {
                    write!(f, " and the identity store would hold {n} groups")?;
                }
                write!(
                    f,
                    "; an identity store holds at most {limit} (AWS's quota), so the creations past it will fail: replicate fewer roles or projects on this instance"
                )
            }
            UserInTooManyGroups { euid, groups } => write!(
                f,
                "{euid} would be in {groups} groups; AWS evaluates at most 1,000 per user"
            ),
            ForeignGroupIgnored { name, id } => {
                write!(
                    f,
                    "{name} ({id}) starts with mst- but is not marked as ours; left alone"
                )
            }
            NameTakenByForeignGroup { name, id } => write!(
                f,
                "{name} is needed, but group {id} of that name is not ours; not created"
            ),
            DuplicateManagedGroup { name, id, kept } => {
                write!(f, "{name} ({id}) duplicates our group {kept}; left alone")
            }
            GroupKeptForAssignments {
                name,
                assignments: Some(n),
            } => write!(
                f,
                "{name} is no longer wanted but has {n} assignment(s) this role may not delete; emptied instead of deleted"
            ),
            GroupKeptForAssignments {
                name,
                assignments: None,
            } => write!(
                f,
                "{name} is no longer wanted; its assignments cannot be read without sso:ListAccountAssignmentsForPrincipal, so it is emptied instead of deleted"
            ),
            AssignmentKept {
                name,
                account,
                permission_set,
            } => write!(
                f,
                "{name} → {account} {permission_set} is no longer wanted, but this role may not delete assignments"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metric's label is the kind `plan --json` writes.
    #[test]
    fn the_kind_is_the_json_kind() {
        let project = ProjectKey::new("acme", "web");
        for finding in [
            Finding::UserWithoutEuid {
                username: "ann".into(),
            },
            Finding::TenantWithoutAccount {
                project: project.clone(),
            },
            Finding::IdentifierTooLong {
                project,
                detail: "x".into(),
            },
        ] {
            let json = serde_json::to_value(&finding).unwrap();
            assert_eq!(json["kind"], finding.kind());
        }
    }
}
