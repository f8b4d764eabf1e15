//! meshStack's payloads, as far as the replicator reads them (meshstack-api.md §5). Unknown
//! fields are ignored (meshStack adds fields); missing required ones are errors.

use serde::Deserialize;
use std::collections::BTreeMap;

pub type Tags = BTreeMap<String, Vec<String>>;

/// The kinds the replicator reads: path, media type and the `_embedded` key of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ProjectRoles,
    Projects,
    TenantsV3,
    TenantsV4,
    Users,
    WorkspaceUserGroups,
    UserBindings,
    GroupBindings,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::ProjectRoles,
        Kind::Projects,
        Kind::TenantsV3,
        Kind::TenantsV4,
        Kind::Users,
        Kind::WorkspaceUserGroups,
        Kind::UserBindings,
        Kind::GroupBindings,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Kind::ProjectRoles => "/api/meshobjects/meshprojectroles",
            Kind::Projects => "/api/meshobjects/meshprojects",
            Kind::TenantsV3 | Kind::TenantsV4 => "/api/meshobjects/meshtenants",
            Kind::Users => "/api/meshobjects/meshusers",
            Kind::WorkspaceUserGroups => "/api/meshobjects/meshworkspaceusergroups",
            Kind::UserBindings => "/api/meshobjects/meshprojectbindings/userbindings",
            Kind::GroupBindings => "/api/meshobjects/meshprojectbindings/groupbindings",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Kind::ProjectRoles => "application/vnd.meshcloud.api.meshprojectrole.v1.hal+json",
            Kind::Projects => "application/vnd.meshcloud.api.meshproject.v2.hal+json",
            Kind::TenantsV3 => "application/vnd.meshcloud.api.meshtenant.v3.hal+json",
            Kind::TenantsV4 => "application/vnd.meshcloud.api.meshtenant.v4.hal+json",
            Kind::Users => "application/vnd.meshcloud.api.meshuser.v2.hal+json",
            Kind::WorkspaceUserGroups => {
                "application/vnd.meshcloud.api.meshworkspaceusergroup.v1.hal+json"
            }
            Kind::UserBindings => {
                "application/vnd.meshcloud.api.meshprojectuserbinding.v3.hal+json"
            }
            Kind::GroupBindings => {
                "application/vnd.meshcloud.api.meshprojectgroupbinding.v3.hal+json"
            }
        }
    }

    pub fn embedded_key(self) -> &'static str {
        match self {
            Kind::ProjectRoles => "meshProjectRoles",
            Kind::Projects => "meshProjects",
            Kind::TenantsV3 | Kind::TenantsV4 => "meshTenants",
            Kind::Users => "meshUsers",
            Kind::WorkspaceUserGroups => "meshWorkspaceUserGroups",
            Kind::UserBindings => "meshProjectUserBindings",
            Kind::GroupBindings => "meshProjectGroupBindings",
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Link {
    pub href: String,
}

#[derive(Debug, Deserialize)]
pub struct Links {
    pub next: Option<Link>,
}

/// A HAL page: `_embedded.<kind>` holds the items; an empty page may leave `_embedded` out.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    #[serde(rename = "_embedded", default = "BTreeMap::new")]
    pub embedded: BTreeMap<String, Vec<T>>,
    #[serde(rename = "_links")]
    pub links: Option<Links>,
    pub page: Option<PageInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    pub number: Option<u64>,
    pub total_elements: Option<u64>,
    pub total_pages: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Named {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct ProjectRole {
    pub metadata: Named,
    pub spec: Named,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub metadata: ProjectMetadata,
    #[serde(default)]
    pub spec: ProjectSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectMetadata {
    pub name: String,
    pub owned_by_workspace: String,
    pub deleted_on: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProjectSpec {
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantV3 {
    pub metadata: TenantV3Metadata,
    #[serde(default)]
    pub spec: TenantV3Spec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantV3Metadata {
    pub owned_by_workspace: String,
    pub owned_by_project: String,
    pub platform_identifier: String,
    pub deleted_on: Option<String>,
    pub marked_for_deletion_on: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantV3Spec {
    pub local_id: Option<String>,
    pub landing_zone_identifier: Option<String>,
}

/// meshtenant.v4 (GA) and v4-preview, which differ in how they name platform and landing zone.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantV4 {
    pub metadata: TenantV4Metadata,
    #[serde(default)]
    pub spec: TenantV4Spec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantV4Metadata {
    pub owned_by_workspace: String,
    pub owned_by_project: String,
    pub deleted_on: Option<String>,
    pub marked_for_deletion_on: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantV4Spec {
    pub platform_tenant_id: Option<String>,
    /// v4-preview only; v4 GA names the platform by `platformRef.uuid`.
    pub platform_identifier: Option<String>,
    pub landing_zone_identifier: Option<String>,
    pub landing_zone_ref: Option<Named>,
}

#[derive(Debug, Deserialize)]
pub struct User {
    pub metadata: Named,
    #[serde(default)]
    pub spec: UserSpec,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserSpec {
    pub euid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WorkspaceUserGroup {
    pub metadata: GroupMetadata,
    #[serde(default)]
    pub spec: GroupSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMetadata {
    pub name: String,
    pub owned_by_workspace: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct GroupSpec {
    #[serde(default)]
    pub members: Vec<String>,
}

/// A project user or group binding (v3): `roleRef`, `targetRef` and `subject` at top level.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectBinding {
    pub role_ref: Named,
    pub target_ref: TargetRef,
    pub subject: Named,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    pub name: String,
    pub owned_by_workspace: String,
}
