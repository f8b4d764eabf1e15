//! The seams to AWS IAM Identity Center: [`IdentityStore`] (users, groups, members; SCIM in
//! AWS) and [`AccountAssignments`] (sso-admin), and [`observe`], which reads an [`Observed`]
//! through them. The in-memory [`World`] implements both; the AWS clients will too.

mod memory;

use crate::desired::{Desired, Scope};
use crate::model::{
    AccountId, ExternalId, GroupId, GroupIdentity, GroupName, PermissionSetArn, UserId, UserName,
};
use crate::observed::{Assignment, AssignmentCoverage, Observed, ObservedGroup};
use futures_util::{StreamExt, TryStreamExt, stream};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub use crate::scan::Users;
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

/// What AWS said about a write it accepted: its request id, for the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub request_id: Option<String>,
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
    /// The groups whose `externalId` is `external_id` (SCIM: `GET /Groups?filter=externalId
    /// eq`): one request, where finding it in [`list_groups`](Self::list_groups) costs one per
    /// 100 groups in the store.
    async fn groups_with_external_id(
        &self,
        external_id: &ExternalId,
    ) -> Result<Vec<GroupRecord>, DirectoryError> {
        let all = self.list_groups().await?;
        Ok(all
            .into_iter()
            .filter(|g| g.external_id.as_ref() == Some(external_id))
            .collect())
    }
    /// The groups named `name` (SCIM: `GET /Groups?filter=displayName eq`).
    async fn groups_named(&self, name: &GroupName) -> Result<Vec<GroupRecord>, DirectoryError> {
        let all = self.list_groups().await?;
        Ok(all
            .into_iter()
            .filter(|g| g.name.as_str().eq_ignore_ascii_case(name.as_str()))
            .collect())
    }
    /// A group's members with their userNames (SCIM: `GET /Users?filter=groups.value eq`).
    async fn group_members(
        &self,
        group: &GroupId,
    ) -> Result<Vec<(UserId, UserName)>, DirectoryError>;
    /// The ids of a user's groups (SCIM: `GET /Groups?filter=members.value eq`).
    async fn groups_of_user(&self, user: &UserId) -> Result<Vec<GroupId>, DirectoryError>;
    async fn list_users(&self) -> Result<Vec<(UserId, UserName)>, DirectoryError>;
    /// The user named `name`: exactly, or else the one match ignoring case.
    async fn find_user(&self, name: &str) -> Result<Option<(UserId, UserName)>, DirectoryError>;
    async fn create_group(
        &self,
        name: &GroupName,
        external_id: &ExternalId,
        members: &[UserId],
    ) -> Result<(GroupId, Receipt), DirectoryError>;
    async fn rename_group(
        &self,
        group: &GroupId,
        name: &GroupName,
    ) -> Result<Receipt, DirectoryError>;
    async fn add_members(
        &self,
        group: &GroupId,
        members: &[UserId],
    ) -> Result<Receipt, DirectoryError>;
    async fn remove_members(
        &self,
        group: &GroupId,
        members: &[UserId],
    ) -> Result<Receipt, DirectoryError>;
    /// Deleting a group that is already gone succeeds.
    async fn delete_group(&self, group: &GroupId) -> Result<Receipt, DirectoryError>;
    /// Requests sent so far, retries included (for the report beside the plan's estimate).
    fn calls_made(&self) -> u64 {
        0
    }
}

#[allow(async_fn_in_trait)]
pub trait AccountAssignments {
    /// The (account, permission set) pairs assigned to a group
    /// (`sso:ListAccountAssignmentsForPrincipal`, beyond the seed's policy).
    async fn assignments_of(
        &self,
        group: &GroupId,
    ) -> Result<Vec<(AccountId, PermissionSetArn)>, DirectoryError>;
    /// The groups assigned to `account` with `permission_set` (`sso:ListAccountAssignments`,
    /// in the seed's policy).
    async fn groups_on(
        &self,
        account: &AccountId,
        permission_set: &PermissionSetArn,
    ) -> Result<Vec<GroupId>, DirectoryError>;
    /// Returns once AWS reports the assignment SUCCEEDED; FAILED is an error with AWS's reason.
    async fn create_assignment(&self, assignment: &Assignment) -> Result<Receipt, DirectoryError>;
    /// Deleting an assignment that is already gone succeeds.
    async fn delete_assignment(&self, assignment: &Assignment) -> Result<Receipt, DirectoryError>;
    /// Requests sent so far, retries and status polls included.
    fn calls_made(&self) -> u64 {
        0
    }
    /// Whether a call has succeeded, proving the credentials and the rights behind them.
    fn proven(&self) -> bool {
        true
    }
}

/// The user named `name` among `users`: the exact match, or else the only one that matches
/// ignoring case (whether AWS's `userName eq` ignores case is undocumented, aws-sso.md §F.6).
pub fn pick_user<'a>(
    users: impl IntoIterator<Item = (&'a UserId, &'a UserName)> + Clone,
    name: &str,
) -> Option<(UserId, UserName)> {
    let exact = users.clone().into_iter().find(|(_, n)| n.as_str() == name);
    let found = exact.or_else(|| {
        let mut folded = users
            .into_iter()
            .filter(|(_, n)| n.as_str().eq_ignore_ascii_case(name));
        match (folded.next(), folded.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    });
    found.map(|(id, n)| (id.clone(), n.clone()))
}

/// How assignments are read: per group, or per (account, permission set) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentReads {
    /// ListAccountAssignmentsForPrincipal, one listing per group of ours. Sees every
    /// assignment of every group of ours, also of groups no longer wanted.
    PerGroup,
    /// ListAccountAssignments, one listing per desired (account, permission set) pair: the
    /// seed's policy. Blind to the assignments of groups that are no longer wanted.
    PerPair,
}

/// How memberships are read (aws-sso.md §D.1): one listing per group of ours, or one per user
/// in the store. Both see every member; the cheaper one is the one with fewer listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberReads {
    PerGroup,
    PerUser,
}

impl MemberReads {
    /// Per user only when the store has fewer users than we have groups: each listing costs one
    /// call plus one per further 100 results, and the extra pages are the same total either
    /// way (every membership is read once), so the count of listings decides.
    pub fn cheaper(our_groups: usize, all_users: usize) -> Self {
        if all_users < our_groups {
            MemberReads::PerUser
        } else {
            MemberReads::PerGroup
        }
    }
}

/// How many reads of one family run at once. The rate limiter sets the pace; this only hides
/// the round-trip time.
const READ_CONCURRENCY: usize = 8;

/// Reads what the directory holds that a plan for `desired` needs: every group (to tell ours
/// from others' and to see name clashes), the members and assignments of ours in scope, and
/// the users: all of them for a full sync, the desired ones by name for a scoped one. SCIM and
/// sso-admin reads run side by side.
pub async fn observe(
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    desired: &Desired,
    assignment_reads: AssignmentReads,
) -> Result<Observed, DirectoryError> {
    observe_knowing(identity, assignments, desired, assignment_reads, None, None).await
}

/// [`observe`], knowing how many groups the store held when it was last listed: a scope of
/// many projects then lists the groups when that takes fewer requests than looking each up
/// (the check after a first sync touches every project).
pub async fn observe_knowing(
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    desired: &Desired,
    assignment_reads: AssignmentReads,
    store_groups: Option<usize>,
    listed_users: Option<&Users>,
) -> Result<Observed, DirectoryError> {
    let records = match &desired.scope {
        Scope::Only {
            workspaces,
            projects,
        } if workspaces.is_empty()
            && store_groups.is_none_or(|g| lookups(desired, projects) < g.div_ceil(100)) =>
        {
            find_groups(identity, desired, projects).await?
        }
        _ => identity.list_groups().await?,
    };
    observe_records(
        identity,
        assignments,
        desired,
        assignment_reads,
        records,
        listed_users,
    )
    .await
}

/// [`observe`] with the groups already known (`records`: every group the plan should see, as
/// a listing or lookups found them): their members, their assignments and the users. The
/// drift scan reads a slice of projects so, with the groups of a listing made once a cycle.
pub async fn observe_records(
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    desired: &Desired,
    assignment_reads: AssignmentReads,
    records: Vec<GroupRecord>,
    listed_users: Option<&Users>,
) -> Result<Observed, DirectoryError> {
    let ours: Vec<&GroupRecord> = records
        .iter()
        .filter(|r| desired.takes_in(&r.name, r.external_id.as_ref()))
        .collect();
    let (members, observed_assignments) = futures_util::try_join!(
        read_members(identity, desired, &ours, listed_users),
        read_assignments(assignments, desired, &ours, assignment_reads),
    )?;
    let (mut members, users) = members;
    let groups = records
        .into_iter()
        .map(|record| ObservedGroup {
            members: members.remove(&record.id).unwrap_or_default(),
            id: record.id,
            name: record.name,
            external_id: record.external_id,
        })
        .collect();
    Ok(Observed {
        groups,
        users,
        assignments: observed_assignments,
        assignment_coverage: match assignment_reads {
            AssignmentReads::PerGroup => AssignmentCoverage::OurGroups,
            AssignmentReads::PerPair => AssignmentCoverage::DesiredPairs,
        },
    })
}

/// The `externalId` lookups [`find_groups`] makes.
fn lookups(desired: &Desired, projects: &BTreeSet<crate::model::ProjectKey>) -> usize {
    match &desired.only_groups {
        Some(only) => only.len(),
        None => projects.len() * desired.roles.len(),
    }
}

/// The groups a scope of projects needs, looked up instead of listed: each configured role's
/// group of each project by its `externalId` (wanted or not, renamed or not), or for a run by
/// change only its groups, then, for each wanted group not found under its name, that name (a
/// foreign group may hold it). A held project is not looked at: nothing of it will change.
/// Costs one request per lookup, however many groups the store holds; a role no longer
/// configured is left to the full run.
async fn find_groups(
    identity: &impl IdentityStore,
    desired: &Desired,
    projects: &BTreeSet<crate::model::ProjectKey>,
) -> Result<Vec<GroupRecord>, DirectoryError> {
    let identities: Vec<ExternalId> = match &desired.only_groups {
        Some(only) => only.iter().cloned().collect(),
        None => projects
            .iter()
            .filter(|p| !desired.held.contains(*p))
            .flat_map(|project| {
                desired.roles.iter().map(|role| {
                    GroupIdentity {
                        project: project.clone(),
                        role: role.clone(),
                    }
                    .external_id(&desired.platform)
                })
            })
            .collect(),
    };
    let mut found: Vec<GroupRecord> = stream::iter(&identities)
        .map(|e| identity.groups_with_external_id(e))
        .buffer_unordered(READ_CONCURRENCY)
        .try_concat()
        .await?;
    let names: BTreeSet<&GroupName> = desired
        .groups
        .values()
        .filter(|g| projects.contains(&g.identity.project))
        .filter(|g| {
            !found
                .iter()
                .any(|r| r.name.as_str().eq_ignore_ascii_case(g.name.as_str()))
        })
        .map(|g| &g.name)
        .collect();
    let named: Vec<GroupRecord> = stream::iter(names)
        .map(|name| identity.groups_named(name))
        .buffer_unordered(READ_CONCURRENCY)
        .try_concat()
        .await?;
    for record in named {
        if !found.iter().any(|r| r.id == record.id) {
            found.push(record);
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

type Members = (
    HashMap<GroupId, BTreeSet<UserId>>,
    BTreeMap<UserId, UserName>,
);

async fn read_members(
    identity: &impl IdentityStore,
    desired: &Desired,
    ours: &[&GroupRecord],
    listed_users: Option<&Users>,
) -> Result<Members, DirectoryError> {
    let mut members: HashMap<GroupId, BTreeSet<UserId>> = HashMap::new();
    let mut users: BTreeMap<UserId, UserName> = BTreeMap::new();
    let full = desired.scope == Scope::All;
    if full {
        users.extend(identity.list_users().await?);
    }
    if full && MemberReads::cheaper(ours.len(), users.len()) == MemberReads::PerUser {
        let our_ids: HashSet<&GroupId> = ours.iter().map(|r| &r.id).collect();
        let mut reads = stream::iter(users.keys())
            .map(|user| async move {
                Ok::<_, DirectoryError>((user, identity.groups_of_user(user).await?))
            })
            .buffer_unordered(READ_CONCURRENCY);
        while let Some((user, groups)) = reads.try_next().await? {
            for group in groups.into_iter().filter(|g| our_ids.contains(g)) {
                members.entry(group).or_default().insert(user.clone());
            }
        }
    } else {
        let mut reads = stream::iter(ours)
            .map(|record| async move {
                Ok::<_, DirectoryError>((&record.id, identity.group_members(&record.id).await?))
            })
            .buffer_unordered(READ_CONCURRENCY);
        while let Some((group, found)) = reads.try_next().await? {
            let set = members.entry(group.clone()).or_default();
            for (id, name) in found {
                set.insert(id.clone());
                users.insert(id, name);
            }
        }
    }
    if !full {
        // A scoped sync looks up only the desired users it has not met as members yet.
        let known: HashSet<String> = users.values().map(|n| n.as_str().to_lowercase()).collect();
        let wanted: BTreeSet<&str> = desired
            .groups
            .values()
            .flat_map(|g| g.members.iter().map(|e| e.as_str()))
            .filter(|e| !known.contains(&e.to_lowercase()))
            .collect();
        let mut lookups = stream::iter(&wanted)
            .map(|euid| identity.find_user(euid))
            .buffer_unordered(READ_CONCURRENCY);
        let mut found = 0;
        while let Some(user) = lookups.try_next().await? {
            found += usize::from(user.is_some());
            users.extend(user);
        }
        // Whether `userName eq` ignores case is undocumented (aws-sso.md §F.6): before a user
        // is reported missing, the full listing is compared ignoring case; a listing made
        // earlier (`serve`'s drift scan lists the users once a cycle) stands in for it.
        if found < wanted.len() {
            match listed_users {
                Some(listed) => {
                    for euid in &wanted {
                        users.extend(listed.folded(euid).iter().cloned());
                    }
                }
                None => users.extend(identity.list_users().await?),
            }
        }
    }
    Ok((members, users))
}

async fn read_assignments(
    assignments: &impl AccountAssignments,
    desired: &Desired,
    ours: &[&GroupRecord],
    reads: AssignmentReads,
) -> Result<BTreeSet<Assignment>, DirectoryError> {
    let mut out = BTreeSet::new();
    match reads {
        AssignmentReads::PerGroup => {
            let mut reads = stream::iter(ours)
                .map(|record| async move {
                    Ok::<_, DirectoryError>((
                        &record.id,
                        assignments.assignments_of(&record.id).await?,
                    ))
                })
                .buffer_unordered(READ_CONCURRENCY);
            while let Some((group, pairs)) = reads.try_next().await? {
                out.extend(
                    pairs
                        .into_iter()
                        .map(|(account, permission_set)| Assignment {
                            account,
                            permission_set,
                            group: group.clone(),
                        }),
                );
            }
        }
        AssignmentReads::PerPair => {
            let our_ids: HashSet<&GroupId> = ours.iter().map(|r| &r.id).collect();
            // A group that does not exist yet has no assignment to read.
            let existing: HashSet<&str> = ours
                .iter()
                .filter_map(|r| r.external_id.as_ref().map(ExternalId::as_str))
                .collect();
            let pairs: BTreeSet<(&AccountId, &PermissionSetArn)> = desired
                .groups
                .iter()
                .filter(|(ext, _)| existing.contains(ext.as_str()))
                .flat_map(|(_, g)| g.permission_sets.iter().map(move |ps| (&g.account, ps)))
                .collect();
            let mut reads = stream::iter(pairs)
                .map(|(account, ps)| async move {
                    Ok::<_, DirectoryError>((
                        account,
                        ps,
                        assignments.groups_on(account, ps).await?,
                    ))
                })
                .buffer_unordered(READ_CONCURRENCY);
            while let Some((account, permission_set, groups)) = reads.try_next().await? {
                out.extend(
                    groups
                        .into_iter()
                        .filter(|g| our_ids.contains(g))
                        .map(|group| Assignment {
                            account: account.clone(),
                            permission_set: permission_set.clone(),
                            group,
                        }),
                );
            }
        }
    }
    Ok(out)
}
