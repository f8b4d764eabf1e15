//! The meshStack source: reads projects, this platform's tenants, users, user groups, project
//! roles and bindings through the meshStack API into a [`Snapshot`].
//!
//! A failed or partial read is an error, never an empty snapshot: an empty desired state would
//! delete every managed group.

mod client;
pub mod crawl;
pub mod payload;

use crate::config::{Config, TenantApiVersion};
use crate::desired::Scope;
use crate::model::{ProjectKey, Username};
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
    /// Fails only when this host cannot make HTTPS requests (no CA certificates).
    pub fn new(config: &'a Config, retry: RetryPolicy) -> Result<Self, MeshStackError> {
        let client = Client::new(
            &config.meshstack,
            config.replicator.rate_limits.meshstack,
            retry,
        )?;
        Ok(Self { client, config })
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
    Api::new(config, RetryPolicy::meshstack())?.snapshot().await
}

/// What meshStack holds within `scope`, with production retry settings: the whole estate for
/// [`Scope::All`], else only the scope's projects and what they need (see [`read_scoped`]).
pub async fn read_scope(config: &Config, scope: &Scope) -> Result<Snapshot, MeshStackError> {
    let api = Api::new(config, RetryPolicy::meshstack())?;
    read_scoped(&api.client, config, scope).await
}

/// Of `projects`, those meshStack still has (a point read each: not 404 and not being
/// deleted). A listing is read page by page while meshStack changes; a project that moved
/// between pages is absent from a listing that still counts whole, and only a point read tells
/// that apart from a deleted one.
pub async fn still_there(
    client: &Client,
    projects: &[ProjectKey],
) -> Result<Vec<Project>, MeshStackError> {
    let mut live = Vec::new();
    for key in projects {
        let Some(p) = client
            .get_one::<payload::Project>(Kind::Projects, &key.to_string())
            .await?
        else {
            continue;
        };
        same_project(&p, key)?;
        live.extend(project_of(p));
    }
    Ok(live)
}

/// The projects a scope names one by one that `snapshot` does not hold: a scoped run for a
/// project meshStack does not have fails instead of succeeding at nothing.
pub fn missing_projects(snapshot: &Snapshot, scope: &Scope) -> Vec<ProjectKey> {
    let Scope::Only { projects, .. } = scope else {
        return Vec::new();
    };
    projects
        .iter()
        .filter(|k| !snapshot.projects.iter().any(|p| p.key() == **k))
        .cloned()
        .collect()
}

async fn read(client: &Client, config: &Config) -> Result<Snapshot, MeshStackError> {
    let listings = read_listings(client, config).await?;
    let expand = config.meshstack.expand_group_bindings;
    let bindings = read_bindings(client, listings.to_read().iter(), expand).await?;
    Ok(listings.snapshot(&config.platform, bindings))
}

/// Everything of a read of the whole estate but the bindings: a handful of pages each, where
/// the bindings cost a request (two with group bindings) per project.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listings {
    pub roles: Vec<ProjectRole>,
    pub projects: BTreeMap<ProjectKey, Project>,
    /// This platform's live tenants, by project.
    pub tenants: BTreeMap<ProjectKey, Tenant>,
    pub users: BTreeMap<String, User>,
    /// Read only with `meshstack.expand-group-bindings`.
    pub groups: BTreeMap<(crate::model::WorkspaceId, String), UserGroup>,
}

impl Listings {
    /// The projects whose bindings a read of everything takes: listed, with a tenant here.
    pub fn to_read(&self) -> Vec<ProjectKey> {
        self.tenants
            .keys()
            .filter(|k| self.projects.contains_key(*k))
            .cloned()
            .collect()
    }

    /// The listings `snapshot` holds, as a crawl would have read them.
    pub fn of(snapshot: &Snapshot) -> Self {
        Listings {
            roles: snapshot.roles.clone(),
            projects: snapshot
                .projects
                .iter()
                .map(|p| (p.key(), p.clone()))
                .collect(),
            tenants: snapshot
                .tenants
                .iter()
                .map(|t| (t.key(), t.clone()))
                .collect(),
            users: snapshot
                .users
                .iter()
                .map(|u| (u.username.to_string(), u.clone()))
                .collect(),
            groups: snapshot
                .groups
                .iter()
                .map(|g| ((g.workspace.clone(), g.identifier.clone()), g.clone()))
                .collect(),
        }
    }

    /// The snapshot of these listings and `bindings` (of [`Listings::to_read`], sorted).
    pub fn snapshot(&self, platform: &str, bindings: Vec<Binding>) -> Snapshot {
        Snapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            platform: platform.to_owned(),
            roles: self.roles.clone(),
            projects: self.projects.values().cloned().collect(),
            tenants: self.tenants.values().cloned().collect(),
            users: self.users.values().cloned().collect(),
            groups: self.groups.values().cloned().collect(),
            bindings,
        }
    }
}

/// The listings of the whole estate (see [`Listings`]).
pub async fn read_listings(client: &Client, config: &Config) -> Result<Listings, MeshStackError> {
    let roles = read_roles(client).await?;

    let mut projects = BTreeMap::new();
    for p in client.list::<payload::Project>(Kind::Projects, &[]).await? {
        if let Some(project) = project_of(p) {
            projects.insert(project.key(), project);
        }
    }

    let tenants = read_tenants(client, config, &[]).await?;

    let mut users = BTreeMap::new();
    for u in client.list::<payload::User>(Kind::Users, &[]).await? {
        users.insert(u.metadata.name.clone(), user_of(u));
    }

    let mut groups = BTreeMap::new();
    if config.meshstack.expand_group_bindings {
        for g in client
            .list::<payload::WorkspaceUserGroup>(Kind::WorkspaceUserGroups, &[])
            .await?
        {
            let group = user_group_of(g);
            groups.insert((group.workspace.clone(), group.identifier.clone()), group);
        }
    }
    Ok(Listings {
        roles,
        projects,
        tenants,
        users,
        groups,
    })
}

/// The tenant of `project` on this platform, read by a filtered listing of its own: the
/// point read that tells a tenant a shifted listing skipped from one that is gone.
pub async fn read_tenant(
    client: &Client,
    config: &Config,
    project: &ProjectKey,
) -> Result<Option<Tenant>, MeshStackError> {
    let query = [
        ("workspaceIdentifier", project.workspace.as_str()),
        ("projectIdentifier", project.project.as_str()),
    ];
    Ok(read_tenants(client, config, &query).await?.remove(project))
}

/// meshStack's project roles, one per identifier; none when this meshStack does not serve them.
async fn read_roles(client: &Client) -> Result<Vec<ProjectRole>, MeshStackError> {
    match client
        .list::<payload::ProjectRole>(Kind::ProjectRoles, &[])
        .await
    {
        // Offset paging can repeat an item while data changes: one entry per identifier.
        Ok(roles) => Ok(roles
            .into_iter()
            .map(|r| (r.metadata.name, r.spec.name))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .map(|(identifier, display_name)| ProjectRole {
                identifier,
                display_name,
            })
            .collect()),
        // Older meshStacks do not serve project roles; the config's project-roles apply then.
        Err(MeshStackError::Status { status: 404, .. } | MeshStackError::MediaType { .. }) => {
            tracing::warn!(
                "meshStack does not serve meshprojectroles; using meshstack.project-roles"
            );
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// This platform's live tenants matching `filter` (besides the platform), one per project.
async fn read_tenants(
    client: &Client,
    config: &Config,
    filter: &[(&str, &str)],
) -> Result<BTreeMap<ProjectKey, Tenant>, MeshStackError> {
    let platform = config.platform.as_str();
    let mut query = vec![("platformIdentifier", platform)];
    query.extend_from_slice(filter);
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
    Ok(tenants)
}

/// The user (and, with `expand`, group) bindings of each of `projects`, sorted and distinct.
/// One request at a time, as meshStack asks of each API key (meshstack-api.md §10): the round
/// trip, not only the rate limit, bounds how fast a crawl reads.
pub async fn read_bindings<'k>(
    client: &Client,
    projects: impl Iterator<Item = &'k ProjectKey>,
    expand: bool,
) -> Result<Vec<Binding>, MeshStackError> {
    let mut bindings = BTreeSet::new();
    for key in projects {
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
    Ok(bindings
        .into_iter()
        .map(|(workspace, project, role, subject)| Binding {
            workspace: workspace.into(),
            project: project.into(),
            role,
            subject,
        })
        .collect())
}

fn user_of(u: payload::User) -> User {
    User {
        username: Username::from(u.metadata.name),
        euid: u.spec.euid,
    }
}

fn user_group_of(g: payload::WorkspaceUserGroup) -> UserGroup {
    UserGroup {
        workspace: g.metadata.owned_by_workspace.into(),
        identifier: g.metadata.name,
        members: g.spec.members.into_iter().map(Username::from).collect(),
    }
}

/// A point read of `key` must answer that project: taken as it, another would move one
/// project's access onto another.
fn same_project(p: &payload::Project, key: &ProjectKey) -> Result<(), MeshStackError> {
    let got = format!("{}.{}", p.metadata.owned_by_workspace, p.metadata.name);
    if got == key.to_string() {
        return Ok(());
    }
    Err(MeshStackError::WrongObject {
        kind: "project",
        asked: key.to_string(),
        got,
    })
}

fn project_of(p: payload::Project) -> Option<Project> {
    p.metadata.deleted_on.is_none().then(|| Project {
        workspace: p.metadata.owned_by_workspace.into(),
        identifier: p.metadata.name.into(),
        tags: p.spec.tags,
    })
}

/// A scoped read: the scope's projects (listed per workspace, or read one by one), their
/// tenants on this platform, their bindings, and only the users and user groups those bindings
/// name, each read by its identifier. Its cost follows the scope, not the estate: about
/// 5 requests per project plus one per bound user or group. A user or group that meshStack
/// answers 404 for is left out, which holds the project (see `desired`), as in a full read.
/// A project the scope names that meshStack does not have is an error.
pub async fn read_scoped(
    client: &Client,
    config: &Config,
    scope: &Scope,
) -> Result<Snapshot, MeshStackError> {
    let Scope::Only {
        workspaces,
        projects: named,
    } = scope
    else {
        return read(client, config).await;
    };
    let roles = read_roles(client).await?;
    let mut projects = BTreeMap::new();
    let mut tenants = BTreeMap::new();
    for workspace in workspaces {
        let query = [("workspaceIdentifier", workspace.as_str())];
        for p in client
            .list::<payload::Project>(Kind::Projects, &query)
            .await?
        {
            if let Some(p) = project_of(p).filter(|p| &p.workspace == workspace) {
                projects.insert(p.key(), p);
            }
        }
        tenants.extend(read_tenants(client, config, &query).await?);
    }
    let mut missing = Vec::new();
    for key in named.iter().filter(|k| !workspaces.contains(&k.workspace)) {
        match client
            .get_one::<payload::Project>(Kind::Projects, &key.to_string())
            .await?
        {
            Some(p) => {
                same_project(&p, key)?;
                // Pending deletion: not wanted, as in a full read.
                if let Some(p) = project_of(p) {
                    projects.insert(p.key(), p);
                }
            }
            None => missing.push(key.to_string()),
        }
        let query = [
            ("workspaceIdentifier", key.workspace.as_str()),
            ("projectIdentifier", key.project.as_str()),
        ];
        tenants.extend(read_tenants(client, config, &query).await?);
    }
    if !missing.is_empty() {
        return Err(MeshStackError::UnknownProjects(missing.join(", ")));
    }
    tenants.retain(|k, _| scope.contains(k));

    let expand = config.meshstack.expand_group_bindings;
    let with_tenant = tenants.keys().filter(|k| projects.contains_key(*k));
    let bindings = read_bindings(client, with_tenant, expand).await?;

    let mut groups = BTreeMap::new();
    let mut usernames = BTreeSet::new();
    for b in &bindings {
        match &b.subject {
            Subject::User(u) => {
                usernames.insert(u.clone());
            }
            Subject::Group(g) if expand => {
                let at = (b.workspace.clone(), g.clone());
                if groups.contains_key(&at) {
                    continue;
                }
                let id = format!("{}.{g}", b.workspace);
                if let Some(found) = client
                    .get_one::<payload::WorkspaceUserGroup>(Kind::WorkspaceUserGroups, &id)
                    .await?
                {
                    let got = format!(
                        "{}.{}",
                        found.metadata.owned_by_workspace, found.metadata.name
                    );
                    if got != id {
                        return Err(MeshStackError::WrongObject {
                            kind: "workspace user group",
                            asked: id,
                            got,
                        });
                    }
                    let group = user_group_of(found);
                    usernames.extend(group.members.iter().cloned());
                    groups.insert(at, group);
                }
            }
            Subject::Group(_) => {}
        }
    }
    let mut users = Vec::with_capacity(usernames.len());
    for name in usernames {
        if let Some(u) = client
            .get_one::<payload::User>(Kind::Users, name.as_str())
            .await?
        {
            if u.metadata.name != name.as_str() {
                return Err(MeshStackError::WrongObject {
                    kind: "user",
                    asked: name.to_string(),
                    got: u.metadata.name,
                });
            }
            users.push(user_of(u));
        }
    }
    users.sort_by(|a, b| a.username.cmp(&b.username));
    users.dedup_by(|a, b| a.username == b.username);

    Ok(Snapshot {
        format_version: SNAPSHOT_FORMAT_VERSION,
        platform: config.platform.clone(),
        roles,
        projects: projects.into_values().collect(),
        tenants: tenants.into_values().collect(),
        users,
        groups: groups.into_values().collect(),
        bindings,
    })
}
