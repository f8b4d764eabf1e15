//! Desired state: from a meshStack [`Snapshot`] and the [`Config`], the `mst-` groups, their
//! members and their account assignments that AWS IAM Identity Center must hold.
//!
//! Pure and deterministic: no I/O, no clock. What cannot be computed becomes a [`Finding`], and
//! the project it concerns is *held*: its existing groups are neither changed nor deleted on
//! the strength of missing data.

use crate::config::{Config, SsoConfig};
use crate::finding::Finding;
use crate::model::{
    AccountId, Euid, ExternalId, GROUP_PREFIX, GroupIdentity, GroupName, PermissionSetArn,
    ProjectKey, RoleId, WorkspaceId,
};
use crate::snapshot::{Binding, Snapshot, Subject};
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// AWS evaluates at most this many groups per user for permissions.
pub const MAX_GROUPS_PER_USER: usize = 1000;
const GROUP_NAME_MAX: usize = 1024;

/// Which projects a sync looks at. Groups of projects outside the scope are never touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    #[default]
    All,
    /// Every project of `workspaces`, and `projects`.
    Only {
        #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
        workspaces: BTreeSet<WorkspaceId>,
        #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
        projects: BTreeSet<ProjectKey>,
    },
}

impl Scope {
    pub fn projects(projects: impl IntoIterator<Item = ProjectKey>) -> Self {
        Scope::Only {
            workspaces: BTreeSet::new(),
            projects: projects.into_iter().collect(),
        }
    }

    pub fn workspaces(workspaces: impl IntoIterator<Item = WorkspaceId>) -> Self {
        Scope::Only {
            workspaces: workspaces.into_iter().collect(),
            projects: BTreeSet::new(),
        }
    }

    pub fn contains(&self, project: &ProjectKey) -> bool {
        match self {
            Scope::All => true,
            Scope::Only {
                workspaces,
                projects,
            } => workspaces.contains(&project.workspace) || projects.contains(project),
        }
    }

    /// The smallest scope that covers both.
    pub fn union(&self, other: &Scope) -> Scope {
        match (self, other) {
            (
                Scope::Only {
                    workspaces: w1,
                    projects: p1,
                },
                Scope::Only {
                    workspaces: w2,
                    projects: p2,
                },
            ) => {
                let workspaces: BTreeSet<WorkspaceId> = w1.union(w2).cloned().collect();
                let projects = p1
                    .union(p2)
                    .filter(|p| !workspaces.contains(&p.workspace))
                    .cloned()
                    .collect();
                Scope::Only {
                    workspaces,
                    projects,
                }
            }
            _ => Scope::All,
        }
    }

    /// For people: `null` for everything, else `workspace.project` and `workspace.*` entries.
    pub fn names(&self) -> Option<BTreeSet<String>> {
        match self {
            Scope::All => None,
            Scope::Only {
                workspaces,
                projects,
            } => Some(
                workspaces
                    .iter()
                    .map(|w| format!("{w}.*"))
                    .chain(projects.iter().map(ToString::to_string))
                    .collect(),
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// The platform instance whose marker our groups carry.
    pub platform: String,
    pub scope: Scope,
    /// Keyed by the identity marker, which stays when the name changes.
    pub groups: BTreeMap<ExternalId, DesiredGroup>,
    /// Projects whose state could not be computed: their groups are left as they are.
    pub held: BTreeSet<ProjectKey>,
    pub findings: BTreeSet<Finding>,
    pub policy: ApplyPolicy,
    /// The configured roles: with the scope's projects they name every group of ours a scoped
    /// observation must look up, wanted or not.
    #[serde(default)]
    pub roles: Vec<RoleId>,
    /// A run by change: only these groups are looked up and reconciled (their projects are
    /// the scope); the rest of each project is left as it is. `None`: every group of the
    /// scope's projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_groups: Option<BTreeSet<ExternalId>>,
}

impl Desired {
    /// The same desired state, narrowed to `projects` (those of `scope` among them): what a
    /// check of just those projects plans against.
    pub fn within(&self, projects: &BTreeSet<ProjectKey>) -> Desired {
        let projects: BTreeSet<ProjectKey> = projects
            .iter()
            .filter(|p| self.scope.contains(p))
            .cloned()
            .collect();
        Desired {
            platform: self.platform.clone(),
            groups: self
                .groups
                .iter()
                .filter(|(_, g)| projects.contains(&g.identity.project))
                .map(|(k, g)| (k.clone(), g.clone()))
                .collect(),
            held: self.held.intersection(&projects).cloned().collect(),
            findings: BTreeSet::new(),
            policy: self.policy,
            roles: self.roles.clone(),
            scope: Scope::projects(projects),
            only_groups: None,
        }
    }

    /// Whether a group in AWS is one this desired state reconciles: ours
    /// ([`GroupIdentity::of_ours`]), of a project in scope, and among `only_groups` if set.
    pub fn takes_in(&self, name: &GroupName, external_id: Option<&ExternalId>) -> bool {
        GroupIdentity::of_ours(&self.platform, name, external_id).is_some_and(|identity| {
            self.scope.contains(&identity.project)
                && self
                    .only_groups
                    .as_ref()
                    .is_none_or(|only| external_id.is_some_and(|e| only.contains(e)))
        })
    }

    /// The same desired state, narrowed to the groups `groups` (external ids, wanted or not:
    /// a group no longer wanted is looked up to be retired): what a run by change reconciles.
    /// Groups of held projects are left out.
    pub fn only(&self, groups: &BTreeSet<ExternalId>) -> Desired {
        let groups: BTreeSet<ExternalId> = groups
            .iter()
            .filter(|e| {
                GroupIdentity::parse(&self.platform, e.as_str()).is_some_and(|i| {
                    self.scope.contains(&i.project) && !self.held.contains(&i.project)
                })
            })
            .cloned()
            .collect();
        let projects = groups
            .iter()
            .filter_map(|e| GroupIdentity::parse(&self.platform, e.as_str()))
            .map(|i| i.project);
        Desired {
            platform: self.platform.clone(),
            groups: groups
                .iter()
                .filter_map(|e| Some((e.clone(), self.groups.get(e)?.clone())))
                .collect(),
            held: BTreeSet::new(),
            findings: BTreeSet::new(),
            policy: self.policy,
            roles: self.roles.clone(),
            scope: Scope::projects(projects),
            only_groups: Some(groups),
        }
    }
}

/// What the plan must know about how it will be applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ApplyPolicy {
    /// Whether assignments may be deleted (the seed's policy does not allow it).
    pub may_delete_assignments: bool,
    /// Requests per second the executor allows itself, per API family.
    pub scim_rate: f64,
    pub sso_admin_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredGroup {
    pub identity: GroupIdentity,
    pub name: GroupName,
    pub account: AccountId,
    pub members: BTreeSet<Euid>,
    /// One set per role, shared by every project's group of that role.
    pub permission_sets: std::sync::Arc<BTreeSet<PermissionSetArn>>,
}

/// The parts of the configuration that shape desired state.
pub struct Settings<'a> {
    pub platform: &'a str,
    pub sso: &'a SsoConfig,
    pub project_roles: &'a BTreeMap<RoleId, String>,
    pub project_id: &'a crate::config::ProjectIdConfig,
    pub expand_group_bindings: bool,
    pub identifiers: crate::config::IdentifierLimits,
    pub policy: ApplyPolicy,
}

impl<'a> Settings<'a> {
    pub fn new(config: &'a Config, sso: &'a SsoConfig) -> Self {
        Self {
            platform: &config.platform,
            sso,
            project_roles: &config.meshstack.project_roles,
            project_id: &config.meshstack.project_id,
            expand_group_bindings: config.meshstack.expand_group_bindings,
            identifiers: config.identifiers,
            policy: ApplyPolicy {
                may_delete_assignments: config.replicator.sso_admin.delete_assignments,
                scim_rate: config.replicator.rate_limits.scim,
                sso_admin_rate: config.replicator.rate_limits.sso_admin,
            },
        }
    }
}

pub fn desired(snapshot: &Snapshot, settings: &Settings, scope: &Scope) -> Desired {
    let mut findings = BTreeSet::new();
    let mut held = BTreeSet::new();

    let role_ids = role_ids(snapshot, settings.project_roles);

    // Username → euid (None: the user has none), one shared string per euid however many
    // groups hold it. Keyed by a copy of each name (inline when short), so that a lookup
    // compares within the table instead of reaching into the snapshot.
    let users: HashMap<smol_str::SmolStr, Option<Euid>> = snapshot
        .users
        .iter()
        .map(|u| {
            let euid = u.euid.as_deref().filter(|e| !e.is_empty()).map(Euid::from);
            (u.username.0.clone(), euid)
        })
        .collect();
    let user_groups = user_groups(snapshot);

    // Tenants of this platform, one per project.
    let mut tenants: HashMap<(&str, &str), Option<&str>> =
        HashMap::with_capacity(snapshot.tenants.len());
    let mut duplicate_tenants = BTreeSet::new();
    for t in &snapshot.tenants {
        let at = (t.workspace.as_str(), t.project.as_str());
        if tenants.insert(at, t.account_id.as_deref()).is_some() {
            duplicate_tenants.insert(t.key());
        }
    }

    // meshStack's bindings are read project by project, so a run of one project's bindings
    // is gathered under one lookup.
    let mut bindings: HashMap<(&str, &str), Vec<&Binding>> =
        HashMap::with_capacity(snapshot.projects.len());
    for run in snapshot
        .bindings
        .chunk_by(|a, b| a.workspace == b.workspace && a.project == b.project)
    {
        let key = (run[0].workspace.as_str(), run[0].project.as_str());
        bindings.entry(key).or_default().extend(run);
    }

    let numeric_ids = numeric_ids(snapshot, settings, scope, &mut findings, &mut held);

    let pattern = &settings.sso.group_pattern;
    let role_sets: Vec<std::sync::Arc<BTreeSet<PermissionSetArn>>> = settings
        .sso
        .roles
        .values()
        .map(|m| std::sync::Arc::new(m.permission_sets.iter().cloned().collect()))
        .collect();
    // Collected, then sorted once: inserting into a map keyed by these long ids cost more
    // than all the rest of desired state.
    let mut groups: Vec<(ExternalId, DesiredGroup)> =
        Vec::with_capacity(snapshot.projects.len() * settings.sso.roles.len());
    let mut name = String::new();
    // In the order of their external ids (`…:<workspace>:<project>:<role>`), so that the groups
    // come out sorted and the map below is built without a sort.
    let mut projects: Vec<_> = snapshot.projects.iter().collect();
    projects.sort_by(|a, b| {
        colon_terminated(a.workspace.as_str(), b.workspace.as_str())
            .then_with(|| colon_terminated(a.identifier.as_str(), b.identifier.as_str()))
    });
    for project in projects {
        let key = project.key();
        if !scope.contains(&key) || held.contains(&key) {
            continue;
        }
        let Some(account) = tenants.get(&(key.workspace.as_str(), key.project.as_str())) else {
            continue; // no tenant on this platform: nothing wanted, its groups go
        };
        if duplicate_tenants.contains(&key) {
            findings.insert(Finding::DuplicateTenant {
                project: key.clone(),
            });
            held.insert(key);
            continue;
        }
        let account = match account {
            None => {
                findings.insert(Finding::TenantWithoutAccount {
                    project: key.clone(),
                });
                held.insert(key);
                continue;
            }
            Some(a) if !AccountId::is_valid(a) => {
                findings.insert(Finding::InvalidAccountId {
                    project: key.clone(),
                    account_id: a.to_string(),
                });
                held.insert(key);
                continue;
            }
            Some(a) => AccountId::from(*a),
        };
        if let Some(detail) = too_long(&key, settings.identifiers) {
            findings.insert(Finding::IdentifierTooLong {
                project: key.clone(),
                detail,
            });
            held.insert(key);
            continue;
        }

        let Some(mut members) = members_by_role(
            &key,
            bindings.get(&(key.workspace.as_str(), key.project.as_str())),
            &role_ids,
            &users,
            &user_groups,
            settings.expand_group_bindings,
            &mut findings,
        ) else {
            held.insert(key);
            continue;
        };
        let numeric = numeric_ids
            .get(&key)
            .map(u64::to_string)
            .unwrap_or_default();
        for ((role, mapping), sets) in settings.sso.roles.iter().zip(&role_sets) {
            let identity = GroupIdentity {
                project: key.clone(),
                role: role.clone(),
            };
            name.clear();
            name.push_str(GROUP_PREFIX);
            pattern.render_into(
                &[
                    key.workspace.as_str(),
                    key.project.as_str(),
                    &numeric,
                    &mapping.aws_role_name,
                ],
                &mut name,
            );
            groups.push((
                identity.external_id(settings.platform),
                DesiredGroup {
                    identity,
                    name: GroupName::from(name.as_str()),
                    account: account.clone(),
                    members: members
                        .iter_mut()
                        .find(|(r, _)| *r == role.as_str())
                        .map(|(_, m)| std::mem::take(m).into_iter().collect())
                        .unwrap_or_default(),
                    permission_sets: sets.clone(),
                },
            ));
        }
    }
    // Later entries win, as they did when each was inserted in turn.
    let mut groups: BTreeMap<ExternalId, DesiredGroup> = groups.into_iter().collect();

    drop_name_conflicts(&mut groups, &mut findings, &mut held);
    count_groups_per_user(&groups, &mut findings);

    Desired {
        platform: settings.platform.to_owned(),
        scope: scope.clone(),
        groups,
        held,
        findings,
        policy: settings.policy,
        roles: settings.sso.roles.keys().cloned().collect(),
        only_groups: None,
    }
}

/// Compares `a + ":"` with `b + ":"`, as they stand inside an external id.
fn colon_terminated(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len().min(b.len());
    a[..n]
        .cmp(&b[..n])
        .then_with(|| match (a.get(n), b.get(n)) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(c)) => b':'.cmp(c),
            (Some(c), _) => c.cmp(&b':'),
        })
}

fn too_long(key: &ProjectKey, limits: crate::config::IdentifierLimits) -> Option<String> {
    if key.workspace.as_str().chars().count() > limits.customer {
        return Some(format!(
            "workspace identifier is longer than {} characters",
            limits.customer
        ));
    }
    if key.project.as_str().chars().count() > limits.project {
        return Some(format!(
            "project identifier is longer than {} characters",
            limits.project
        ));
    }
    None
}

/// Argument 3 of the name pattern, for each project that needs one.
fn numeric_ids(
    snapshot: &Snapshot,
    settings: &Settings,
    scope: &Scope,
    findings: &mut BTreeSet<Finding>,
    held: &mut BTreeSet<ProjectKey>,
) -> HashMap<ProjectKey, u64> {
    let mut ids = HashMap::new();
    if !settings.sso.group_pattern.uses(3) {
        return ids;
    }
    let source = settings.project_id;
    let mut owners: BTreeMap<u64, Vec<ProjectKey>> = BTreeMap::new();
    for project in &snapshot.projects {
        let key = project.key();
        // Every project takes part in the uniqueness check, in scope or not.
        match numeric_id(project, source) {
            Ok(id) => {
                owners.entry(id).or_default().push(key.clone());
                ids.insert(key, id);
            }
            Err(detail) => {
                if scope.contains(&key) {
                    findings.insert(Finding::ProjectWithoutNumericId {
                        project: key.clone(),
                        detail,
                    });
                    held.insert(key);
                }
            }
        }
    }
    for (id, keys) in owners.into_iter().filter(|(_, k)| k.len() > 1) {
        for key in keys {
            ids.remove(&key);
            if scope.contains(&key) {
                findings.insert(Finding::ProjectWithoutNumericId {
                    project: key.clone(),
                    detail: format!("id {id} is used by more than one project"),
                });
                held.insert(key);
            }
        }
    }
    ids
}

/// Role display name → identifier, as bindings name roles: meshStack's own list first, the
/// config's `project-roles` for the rest.
pub(crate) fn role_ids<'s>(
    snapshot: &'s Snapshot,
    project_roles: &'s BTreeMap<RoleId, String>,
) -> HashMap<&'s str, &'s str> {
    let mut ids: HashMap<&str, &str> = HashMap::new();
    for role in &snapshot.roles {
        ids.insert(role.display_name.as_str(), role.identifier.as_str());
    }
    for (id, display) in project_roles {
        ids.entry(display.as_str()).or_insert(id.as_str());
    }
    ids
}

/// Workspace user groups by (workspace, identifier), for expanding group bindings.
pub(crate) fn user_groups(snapshot: &Snapshot) -> HashMap<(&str, &str), &[crate::model::Username]> {
    snapshot
        .groups
        .iter()
        .map(|g| {
            (
                (g.workspace.as_str(), g.identifier.as_str()),
                g.members.as_slice(),
            )
        })
        .collect()
}

/// A project's numeric id: the override for it, else the configured tag's first value.
pub(crate) fn numeric_id(
    project: &crate::snapshot::Project,
    source: &crate::config::ProjectIdConfig,
) -> Result<u64, String> {
    match source.overrides.get(&project.key()) {
        Some(id) => Ok(*id),
        None => match &source.tag {
            None => Err("no override for it and no tag configured".to_owned()),
            Some(tag) => match project.tags.get(tag).and_then(|v| v.first()) {
                None => Err(format!("tag {tag} is missing")),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("tag {tag} is {v:?}, not a number")),
            },
        },
    }
}

/// Each role's members, or `None` when a binding names a user or user group that meshStack's
/// listings do not hold: such data is inconsistent (a listing cut short, or a change between
/// two reads), and the project is held rather than read as if the binding were gone.
fn members_by_role<'s>(
    project: &ProjectKey,
    bindings: Option<&Vec<&'s Binding>>,
    role_ids: &HashMap<&str, &'s str>,
    users: &HashMap<smol_str::SmolStr, Option<Euid>>,
    user_groups: &HashMap<(&str, &str), &'s [crate::model::Username]>,
    expand_groups: bool,
    findings: &mut BTreeSet<Finding>,
) -> Option<Vec<(&'s str, Vec<Euid>)>> {
    // A project has a handful of roles: a list beats a map. Each role's list is sized for all
    // of the project's bindings once, instead of growing step by step.
    let mut out: Vec<(&'s str, Vec<Euid>)> = Vec::new();
    let room = bindings.map_or(0, |b| b.len());
    let mut consistent = true;
    let mut add = |role: &'s str, username: &str, findings: &mut BTreeSet<Finding>| match users
        .get(username)
    {
        None => {
            findings.insert(Finding::BindingToUnknownUser {
                project: project.clone(),
                username: username.into(),
            });
            false
        }
        Some(None) => {
            findings.insert(Finding::UserWithoutEuid {
                username: username.into(),
            });
            true
        }
        // Role ids come from one table, so the same role is mostly the same string.
        Some(Some(euid)) => {
            match out
                .iter_mut()
                .find(|(r, _)| std::ptr::eq(*r, role) || *r == role)
            {
                Some((_, members)) => members.push(euid.clone()),
                None => {
                    let mut members = Vec::with_capacity(room);
                    members.push(euid.clone());
                    out.push((role, members));
                }
            }
            true
        }
    };
    for binding in bindings.into_iter().flatten() {
        let Some(&role) = role_ids.get(binding.role.as_str()) else {
            findings.insert(Finding::BindingToUnknownRole {
                project: project.clone(),
                role: binding.role.clone(),
            });
            continue;
        };
        match &binding.subject {
            Subject::User(username) => consistent &= add(role, username.as_str(), findings),
            Subject::Group(_) if !expand_groups => {}
            Subject::Group(group) => {
                match user_groups.get(&(binding.workspace.as_str(), group.as_str())) {
                    None => {
                        findings.insert(Finding::BindingToUnknownGroup {
                            project: project.clone(),
                            group: group.clone(),
                        });
                        consistent = false;
                    }
                    Some(members) => {
                        for m in *members {
                            consistent &= add(role, m.as_str(), findings);
                        }
                    }
                }
            }
        }
    }
    consistent.then_some(out)
}

/// Two identities rendering to one name (ignoring case, as AWS may) cannot both exist; neither
/// is changed, and their projects are held so that nothing is deleted because of it.
fn drop_name_conflicts(
    groups: &mut BTreeMap<ExternalId, DesiredGroup>,
    findings: &mut BTreeSet<Finding>,
    held: &mut BTreeSet<ProjectKey>,
) {
    let mut by_name: HashMap<std::borrow::Cow<str>, &ExternalId> =
        HashMap::with_capacity(groups.len());
    let mut clashes: BTreeMap<String, BTreeSet<&ExternalId>> = BTreeMap::new();
    for (ext, g) in groups.iter() {
        let name = g.name.as_str();
        let folded = if name.bytes().any(|b| b.is_ascii_uppercase()) || !name.is_ascii() {
            std::borrow::Cow::Owned(name.to_lowercase())
        } else {
            std::borrow::Cow::Borrowed(name)
        };
        if let Some(first) = by_name.get(&folded) {
            let entry = clashes.entry(folded.clone().into_owned()).or_default();
            entry.insert(first);
            entry.insert(ext);
        } else {
            by_name.insert(folded, ext);
        }
        // No name has more characters than bytes: most are never counted.
        let detail = if name.len() > GROUP_NAME_MAX && name.chars().count() > GROUP_NAME_MAX {
            Some(format!("longer than {GROUP_NAME_MAX} characters"))
        } else if name
            .bytes()
            .any(|b| matches!(b, b'<' | b'>' | b';' | b':' | b'%' | b'\t' | b'\n' | b'\r'))
        {
            Some("holds one of < > ; : % or a control character".to_owned())
        } else {
            None
        };
        if let Some(detail) = detail {
            findings.insert(Finding::InvalidGroupName {
                name: g.name.clone(),
                detail,
            });
            held.insert(g.identity.project.clone());
        }
    }
    for exts in clashes.into_values() {
        let first = exts.first().expect("a clash has two members");
        let name = groups[*first].name.clone();
        let mut projects: Vec<ProjectKey> = exts
            .iter()
            .map(|e| groups[*e].identity.project.clone())
            .collect();
        projects.sort();
        projects.dedup();
        held.extend(projects.iter().cloned());
        findings.insert(Finding::DuplicateGroupName { name, projects });
    }
    if !held.is_empty() {
        groups.retain(|_, g| !held.contains(&g.identity.project));
    }
}

fn count_groups_per_user(
    groups: &BTreeMap<ExternalId, DesiredGroup>,
    findings: &mut BTreeSet<Finding>,
) {
    // Counted by allocation first (desired state shares one per user, so that is cheap to
    // hash), then merged by value, as two users may still share an euid.
    let mut by_allocation: HashMap<*const u8, (&Euid, usize)> = HashMap::new();
    for g in groups.values() {
        for m in &g.members {
            by_allocation.entry(m.as_str().as_ptr()).or_insert((m, 0)).1 += 1;
        }
    }
    let mut counts: HashMap<&Euid, usize> = HashMap::with_capacity(by_allocation.len());
    for (euid, n) in by_allocation.into_values() {
        *counts.entry(euid).or_default() += n;
    }
    for (euid, n) in counts {
        if n > MAX_GROUPS_PER_USER {
            findings.insert(Finding::UserInTooManyGroups {
                euid: euid.clone(),
                groups: n,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::colon_terminated;

    #[test]
    fn projects_sort_as_their_external_ids_do() {
        let mut names = [
            "ws1", "ws10", "ws1-a", "ws1_a", "a", "ab", "a-b", "a:b", "ws", "", "ws9",
        ];
        names.sort_by(|a, b| colon_terminated(a, b));
        let mut expected = names;
        expected.sort_by_key(|n| format!("{n}:"));
        assert_eq!(names, expected);
    }
}
