//! Names of things, as newtypes where mixing two of them up would be a bug, and the ownership
//! marker that tells our groups from everybody else's.

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use std::fmt;

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub SmolStr);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.into())
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s.into())
            }
        }
    };
}

string_newtype!(
    /// A workspace (formerly customer) identifier: argument 1 of the name patterns.
    WorkspaceId
);
string_newtype!(
    /// A project identifier, unique only inside its workspace: argument 2.
    ProjectId
);
string_newtype!(
    /// A meshStack project role identifier (`admin`), the key of `role-mappings`.
    RoleId
);
string_newtype!(
    /// A meshStack username, what bindings name in `subject.name`.
    Username
);
/// A user's external id in meshStack; AWS IAM Identity Center's `userName` must equal it.
///
/// Shared (`Arc<str>`): one user is a member of many groups, and desired state for a large
/// estate holds hundreds of thousands of memberships.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Euid(pub std::sync::Arc<str>);

impl Euid {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for Euid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Euid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Euid({:?})", &*self.0)
    }
}
impl From<&str> for Euid {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}
string_newtype!(
    /// A `userName` as AWS IAM Identity Center holds it.
    UserName
);
string_newtype!(
    /// A user id in the identity store (SCIM `id`).
    UserId
);
string_newtype!(
    /// A group id in the identity store (SCIM `id`, sso-admin principal id).
    GroupId
);
string_newtype!(
    /// A group's `displayName`, `mst-` included.
    GroupName
);
string_newtype!(
    /// A group's SCIM `externalId`; ours carry [`GroupIdentity::external_id`].
    ExternalId
);
string_newtype!(
    /// A 12-digit AWS account id.
    AccountId
);
string_newtype!(
    /// `arn:aws:sso:::permissionSet/ssoins-…/ps-…`
    PermissionSetArn
);

/// The prefix every group we manage carries in its `displayName`.
pub const GROUP_PREFIX: &str = "mst-";

/// A project, named the way meshStack names it: `workspace.project`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProjectKey {
    pub workspace: WorkspaceId,
    pub project: ProjectId,
}

impl ProjectKey {
    pub fn new(workspace: impl Into<WorkspaceId>, project: impl Into<ProjectId>) -> Self {
        Self {
            workspace: workspace.into(),
            project: project.into(),
        }
    }
}

impl fmt::Display for ProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.workspace, self.project)
    }
}

impl fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProjectKey({self})")
    }
}

/// What a managed group stands for: one role on one project of one platform instance.
///
/// It is written into the group's `externalId`, so that a group keeps its identity (and its id,
/// and with it its account assignments) when the name pattern changes: a rename becomes a PATCH
/// of `displayName`, not a delete and a create.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupIdentity {
    pub project: ProjectKey,
    pub role: RoleId,
}

/// The ownership marker: `mst:v1:<platform>:` starts the `externalId` of every group a
/// replicator for `<platform>` created. Identifiers hold no `:`, so the split is unambiguous.
const MARKER_SCHEME: &str = "mst:v1:";

impl GroupIdentity {
    pub fn external_id(&self, platform: &str) -> ExternalId {
        // Built by hand: desired state makes one per group, and `format!` costs several times
        // as much.
        let parts = [
            platform,
            self.project.workspace.as_str(),
            self.project.project.as_str(),
            self.role.as_str(),
        ];
        let mut id = String::with_capacity(
            MARKER_SCHEME.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>(),
        );
        id.push_str(MARKER_SCHEME);
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                id.push(':');
            }
            id.push_str(part);
        }
        ExternalId::from(id.as_str())
    }

    /// The identity behind an `externalId`, if the group was made by a replicator for `platform`.
    pub fn parse(platform: &str, external_id: &str) -> Option<Self> {
        let rest = external_id
            .strip_prefix(MARKER_SCHEME)?
            .strip_prefix(platform)?
            .strip_prefix(':')?;
        let mut parts = rest.split(':');
        let (workspace, project, role) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || [workspace, project, role].iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(Self {
            project: ProjectKey::new(workspace, project),
            role: RoleId::from(role),
        })
    }

    /// Whether an `externalId` is well-formed and marks a group of `platform`, without
    /// allocating (the plan asks this for every group in the directory).
    pub fn is_ours(platform: &str, external_id: &str) -> bool {
        let Some(rest) = external_id
            .strip_prefix(MARKER_SCHEME)
            .and_then(|r| r.strip_prefix(platform))
            .and_then(|r| r.strip_prefix(':'))
        else {
            return false;
        };
        // Three non-empty parts: two colons, none first, last or next to another. A byte walk,
        // as a plan asks this of every group in the directory.
        let bytes = rest.as_bytes();
        let mut colons = 0;
        let mut previous = b':';
        for &b in bytes {
            if b == b':' {
                if previous == b':' {
                    return false;
                }
                colons += 1;
            }
            previous = b;
        }
        colons == 2 && previous != b':'
    }

    /// Whether an `externalId` carries any replicator's marker, ours or another platform's.
    pub fn is_marked(external_id: &str) -> bool {
        external_id.starts_with(MARKER_SCHEME)
    }

    /// The identity of a group we manage on `platform`: its displayName carries
    /// [`GROUP_PREFIX`] and its externalId our marker. `None` for any other group, which is
    /// never touched.
    pub fn of_ours(
        platform: &str,
        name: &GroupName,
        external_id: Option<&ExternalId>,
    ) -> Option<Self> {
        if !name.as_str().starts_with(GROUP_PREFIX) {
            return None;
        }
        Self::parse(platform, external_id?.as_str())
    }
}

impl AccountId {
    pub fn is_valid(s: &str) -> bool {
        s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ours needs both: the `mst-` name and our marker for this platform.
    #[test]
    fn a_group_is_ours_by_its_name_and_its_marker_together() {
        let identity = GroupIdentity {
            project: ProjectKey::new("ws", "app"),
            role: RoleId::from("admin"),
        };
        let marker = identity.external_id("p");
        let (ours, other) = (
            GroupName::from("mst-ws.app.admin"),
            GroupName::from("ws.app"),
        );
        assert_eq!(
            GroupIdentity::of_ours("p", &ours, Some(&marker)),
            Some(identity)
        );
        assert_eq!(GroupIdentity::of_ours("p", &other, Some(&marker)), None);
        assert_eq!(GroupIdentity::of_ours("p", &ours, None), None);
        assert_eq!(GroupIdentity::of_ours("q", &ours, Some(&marker)), None);
    }

    #[test]
    fn external_id_round_trips_and_names_its_platform() {
        let id = GroupIdentity {
            project: ProjectKey::new("acme", "web"),
            role: RoleId::from("admin"),
        };
        let ext = id.external_id("aws.aws-meshcloud");
        assert_eq!(ext.as_str(), "mst:v1:aws.aws-meshcloud:acme:web:admin");
        assert_eq!(
            GroupIdentity::parse("aws.aws-meshcloud", ext.as_str()),
            Some(id)
        );
        assert_eq!(GroupIdentity::parse("aws.other", ext.as_str()), None);
        assert_eq!(GroupIdentity::parse("aws.aws", ext.as_str()), None);
        assert!(GroupIdentity::is_ours("aws.aws-meshcloud", ext.as_str()));
        assert!(!GroupIdentity::is_ours("aws.aws", ext.as_str()));
        assert!(GroupIdentity::is_marked(ext.as_str()));
    }

    #[test]
    fn malformed_markers_are_not_ours() {
        for bad in [
            "",
            "mst:v1:p:a:b",
            "mst:v1:p:a:b:c:d",
            "mst:v1:p::b:c",
            "mst:v1:p:a::c",
            "mst:v1:p:a:b:",
            "mst:v1:p:",
            "mst:v2:p:a:b:c",
            "other",
        ] {
            assert_eq!(GroupIdentity::parse("p", bad), None, "{bad}");
            assert!(!GroupIdentity::is_ours("p", bad), "{bad}");
        }
    }

    proptest::proptest! {
        /// The quick check and the parse agree on every marker.
        #[test]
        fn is_ours_agrees_with_parse(rest in "[ab:]{0,8}") {
            let ext = format!("mst:v1:p:{rest}");
            proptest::prop_assert_eq!(
                GroupIdentity::is_ours("p", &ext),
                GroupIdentity::parse("p", &ext).is_some()
            );
        }
    }
}
