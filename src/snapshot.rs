//! What meshStack holds, as plain data: the input of [`crate::desired::desired`].
//!
//! A snapshot is what the meshStack client returns, and it is also a file format
//! (`--snapshot FILE`, `aws-replicator snapshot`) for offline plans, golden tests and the demo.
//! It keeps meshStack's own vocabulary (role display names on bindings, raw tags) so that
//! every interpretation happens in `desired`, where it is tested.

use crate::model::{ProjectId, ProjectKey, Username, WorkspaceId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub format_version: u32,
    /// The platform instance whose tenants were read.
    pub platform: String,
    /// Project roles as meshStack serves them; empty when it does not serve
    /// `meshprojectroles` (then the config's `project-roles` apply).
    #[serde(default)]
    pub roles: Vec<ProjectRole>,
    pub projects: Vec<Project>,
    /// Tenants of `platform` only.
    pub tenants: Vec<Tenant>,
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<UserGroup>,
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectRole {
    /// `metadata.name`, e.g. `admin`.
    pub identifier: String,
    /// `spec.name`, e.g. `Project Admin`: what bindings name.
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub workspace: WorkspaceId,
    pub identifier: ProjectId,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Vec<String>>,
}

impl Project {
    pub fn key(&self) -> ProjectKey {
        ProjectKey {
            workspace: self.workspace.clone(),
            project: self.identifier.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub workspace: WorkspaceId,
    pub project: ProjectId,
    /// The AWS account id (`localId` in v3, `platformTenantId` in v4); absent until meshStack
    /// or this replicator created the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing_zone: Option<String>,
}

impl Tenant {
    pub fn key(&self) -> ProjectKey {
        ProjectKey {
            workspace: self.workspace.clone(),
            project: self.project.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: Username,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub euid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserGroup {
    pub workspace: WorkspaceId,
    pub identifier: String,
    pub members: Vec<Username>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub workspace: WorkspaceId,
    pub project: ProjectId,
    /// The role's display name, as bindings carry it (`roleRef.name`).
    pub role: String,
    pub subject: Subject,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// A user, by username.
    User(Username),
    /// A workspace user group of the binding's workspace, by identifier.
    Group(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// `error` is not a `source`: the message carries it, and a chain must not say it twice.
    #[error("cannot read snapshot {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("snapshot {path}: {field}: {message}")]
    Parse {
        path: String,
        field: String,
        message: String,
    },
    #[error(
        "snapshot {path}: format_version {found} is not supported (expected {SNAPSHOT_FORMAT_VERSION}); write it again with `aws-replicator snapshot`"
    )]
    Version { path: String, found: u32 },
}

impl Snapshot {
    pub fn from_file(path: &std::path::Path) -> Result<Self, SnapshotError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| SnapshotError::Read {
            path: shown.clone(),
            error,
        })?;
        Self::from_json(&text, &shown)
    }

    pub fn from_json(text: &str, shown: &str) -> Result<Self, SnapshotError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let snapshot: Snapshot =
            serde_path_to_error::deserialize(&mut de).map_err(|e| SnapshotError::Parse {
                path: shown.to_owned(),
                field: e.path().to_string(),
                message: e.into_inner().to_string(),
            })?;
        if snapshot.format_version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::Version {
                path: shown.to_owned(),
                found: snapshot.format_version,
            });
        }
        Ok(snapshot)
    }
}
