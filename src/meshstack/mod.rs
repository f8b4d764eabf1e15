//! The meshStack source: reads projects, this platform's tenants, users, user groups, project
//! roles and bindings through the meshStack API into a [`Snapshot`].
//!
//! A failed or partial read is an error, never an empty snapshot: an empty desired state would
//! delete every managed group.

mod client;
pub mod payload;

use crate::config::{Config, TenantApiVersion};
use crate::model::Username;
use crate::snapshot::{
    Binding, Project, ProjectRole, SNAPSHOT_FORMAT_VERSION, Snapshot, Subject, Tenant, User,
    UserGroup,
};
use payload::Kind;
use std::collections::{BTreeMap, BTreeSet};

pub use crate::retry::RetryPolicy;
pub use client::{Client, MeshStackError};

/// Where a snapshot comes from: the meshStack API, or a file.
#[allow(async_fn_in_trait)]
pub trait Source {
    async fn snapshot(&self) -> Result<Snapshot, MeshStackError>;
}

/// The meshStack API, read as configured.
pub struct Api<'a> {
    pub client: Client,
    pub config: &'a Config,
}

impl<'a> Api<'a> {
    pub fn new(config: &'a Config, retry: RetryPolicy) -> Self {
        let client = Client::new(
            &config.meshstack,
            config.replicator.rate_limits.meshstack,
            retry,
        );
        Self { client, config }
    }
}

impl Source for Api<'_> {
    async fn snapshot(&self) -> Result<Snapshot, MeshStackError> {
        read(&self.client, self.config).await
    }
}

/// Parses one page of `kind` as the client would, returning the number of items: for tests
/// and fuzzing of the payload parser without a server.
pub fn parse_page(kind: Kind, body: &[u8]) -> Result<usize, MeshStackError> {
    let url = url::Url::parse("https://meshstack.invalid").expect("static URL parses");
    let url = url.join(kind.path()).expect("static path joins");
    fn count<T: serde::de::DeserializeOwned>(
        body: &[u8],
        kind: Kind,
        url: &url::Url,
    ) -> Result<usize, MeshStackError> {
        let page = client::parse_page::<T>(body, kind, url)?;
        Ok(page.embedded.values().map(Vec::len).sum())
    }
    match kind {
        Kind::ProjectRoles => count::<payload::ProjectRole>(body, kind, &url),
        Kind::Projects => count::<payload::Project>(body, kind, &url),
        Kind::TenantsV3 => count::<payload::TenantV3>(body, kind, &url),
        Kind::TenantsV4 => count::<payload::TenantV4>(body, kind, &url),
        Kind::Users => count::<payload::User>(body, kind, &url),
        Kind::WorkspaceUserGroups => count::<payload::WorkspaceUserGroup>(body, kind, &url),
        Kind::UserBindings | Kind::GroupBindings => {
            count::<payload::ProjectBinding>(body, kind, &url)
        }
    }
}

/// Reads a snapshot from the configured meshStack with production retry settings.
pub async fn read_snapshot(config: &Config) -> Result<Snapshot, MeshStackError> {
    Api::new(config, RetryPolicy::meshstack()).snapshot().await
}

async fn read(client: &Client, config: &Config) -> Result<Snapshot, MeshStackError> {
    let platform = config.platform.as_str();
    let roles = match client
        .list::<payload::ProjectRole>(Kind::ProjectRoles, &[])
        .await
    {
        // Offset paging can repeat an item while data changes: one entry per identifier.
        Ok(roles) => roles
            .into_iter()
            .map(|r| (r.metadata.name, r.spec.name))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .map(|(identifier, display_name)| ProjectRole {
                identifier,
                display_name,
            })
            .collect(),
        // Older meshStacks do not serve project roles; the config's project-roles apply then.
        Err(MeshStackError::Status { status: 404, .. } | MeshStackError::MediaType { .. }) => {
            tracing::warn!(
                "meshStack does not serve meshprojectroles; using meshstack.project-roles"
            );
            Vec::new()
        }
        Err(e) => return Err(e),
    };

    let mut projects = BTreeMap::new();
    for p in client.list::<payload::Project>(Kind::Projects, &[]).await? {
        if p.metadata.deleted_on.is_some() {
            continue;
        }
        let project = Project {
            workspace: p.metadata.owned_by_workspace.into(),
            identifier: p.metadata.name.into(),
            tags: p.spec.tags,
        };
        projects.insert(project.key(), project);
    }

    let query = [("platformIdentifier", platform)];
    let mut tenants = BTreeMap::new();
    match config.meshstack.tenant_api_version {
        TenantApiVersion::V3 => {
            for t in client
                .list::<payload::TenantV3>(Kind::TenantsV3, &query)
                .await?
            {
                let m = t.metadata;
                if m.platform_identifier != platform
                    || m.deleted_on.is_some()
                    || m.marked_for_deletion_on.is_some()
                {
                    continue;
                }
                let tenant = Tenant {
                    workspace: m.owned_by_workspace.into(),
                    project: m.owned_by_project.into(),
                    account_id: t.spec.local_id,
                    landing_zone: t.spec.landing_zone_identifier,
                };
                tenants.insert(tenant.key(), tenant);
            }
        }
        TenantApiVersion::V4 => {
            for t in client
                .list::<payload::TenantV4>(Kind::TenantsV4, &query)
                .await?
            {
                let (m, s) = (t.metadata, t.spec);
                // v4 GA names the platform only by uuid: the server-side filter decides; the
                // preview's flat identifier is checked when present.
                let other_platform = s
                    .platform_identifier
                    .as_deref()
                    .is_some_and(|p| p != platform);
                if other_platform || m.deleted_on.is_some() || m.marked_for_deletion_on.is_some() {
                    continue;
                }
                let tenant = Tenant {
                    workspace: m.owned_by_workspace.into(),
                    project: m.owned_by_project.into(),
                    account_id: s.platform_tenant_id,
                    landing_zone: s
                        .landing_zone_ref
                        .map(|r| r.name)
                        .or(s.landing_zone_identifier),
                };
                tenants.insert(tenant.key(), tenant);
            }
        }
    }

    let mut users = BTreeMap::new();
    for u in client.list::<payload::User>(Kind::Users, &[]).await? {
        users.insert(
            u.metadata.name.clone(),
            User {
                username: Username::from(u.metadata.name),
                euid: u.spec.euid,
            },
        );
    }

    let expand = config.meshstack.expand_group_bindings;
    let mut groups = BTreeMap::new();
    if expand {
        for g in client
            .list::<payload::WorkspaceUserGroup>(Kind::WorkspaceUserGroups, &[])
            .await?
        {
            let group = UserGroup {
                workspace: g.metadata.owned_by_workspace.into(),
                identifier: g.metadata.name,
                members: g.spec.members.into_iter().map(Username::from).collect(),
            };
            groups.insert((group.workspace.clone(), group.identifier.clone()), group);
        }
    }

    // Bindings can only be listed per project; read them for projects with a tenant here.
    let mut bindings = BTreeSet::new();
    for key in tenants.keys().filter(|k| projects.contains_key(*k)) {
        let query = [
            ("workspaceIdentifier", key.workspace.as_str()),
            ("projectIdentifier", key.project.as_str()),
        ];
        let mut kinds = vec![Kind::UserBindings];
        if expand {
            kinds.push(Kind::GroupBindings);
        }
        for kind in kinds {
            for b in client.list::<payload::ProjectBinding>(kind, &query).await? {
                let subject = match kind {
                    Kind::UserBindings => Subject::User(Username::from(b.subject.name)),
                    _ => Subject::Group(b.subject.name),
                };
                bindings.insert((
                    b.target_ref.owned_by_workspace,
                    b.target_ref.name,
                    b.role_ref.name,
                    subject,
                ));
            }
        }
    }

    Ok(Snapshot {
        format_version: SNAPSHOT_FORMAT_VERSION,
        platform: platform.to_owned(),
        roles,
        projects: projects.into_values().collect(),
        tenants: tenants.into_values().collect(),
        users: users.into_values().collect(),
        groups: groups.into_values().collect(),
        bindings: bindings
            .into_iter()
            .map(|(workspace, project, role, subject)| Binding {
                workspace: workspace.into(),
                project: project.into(),
                role,
                subject,
            })
            .collect(),
    })
}
