//! The legacy meshIdB path (`iam-configuration.mesh-idb`): in every project account, the SAML
//! identity provider for meshIdB, and one IAM role per mapped project role that trusts it.
//! Managed roles get exactly the listed policies and our trust policy; external roles are only
//! checked. meshIdB itself needs, per user, the pairs `role ARN,provider ARN` to put into the
//! SAML assertion: [`saml_roles`] computes them.
//!
//! This module is pure: what each account should hold, and the operations and drift between
//! that and what it holds. `run.rs` reads and writes IAM.

pub mod run;

use crate::config::Config;
use crate::model::ProjectKey;
use crate::snapshot::{Snapshot, Subject};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// The version of the meshIdB path's plan document (`plan --json` with `"path": "mesh-idb"`),
/// raised on its own when that document changes.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// What one project account should hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredIam {
    pub project: ProjectKey,
    pub account: String,
    pub provider: String,
    pub managed: Vec<ManagedRole>,
    pub external: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManagedRole {
    pub name: String,
    pub trust: Value,
    pub policies: BTreeSet<String>,
}

/// The trust policy of a managed role: federated users of the account's meshIdB provider, for
/// the SAML audience only.
pub fn trust_policy(provider_arn: &str, audience: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": provider_arn },
            "Action": "sts:AssumeRoleWithSAML",
            "Condition": { "StringEquals": { "SAML:aud": audience } }
        }]
    })
}

/// The project accounts of this platform with a known account id (`ids` fills in those the
/// account phase found or made).
pub fn desired_iam(
    snapshot: &Snapshot,
    config: &Config,
    ids: &BTreeMap<ProjectKey, String>,
) -> Vec<DesiredIam> {
    let Some(idb) = &config.mesh_idb else {
        return Vec::new();
    };
    let settings = &config.replicator.mesh_idb;
    let part = crate::aws::partition(&config.aws.region);
    let mut out: Vec<DesiredIam> = project_accounts(snapshot, ids)
        .map(|(project, account)| {
            let provider = crate::aws::provider_arn(part, &account, &settings.saml_provider_name);
            let trust = trust_policy(&provider, &settings.saml_audience);
            DesiredIam {
                project,
                managed: idb
                    .role_mappings_managed
                    .iter()
                    .map(|m| ManagedRole {
                        name: m.value.aws_role_name.clone(),
                        trust: trust.clone(),
                        policies: m.value.policies.iter().cloned().collect(),
                    })
                    .collect(),
                external: idb
                    .role_mappings_external
                    .iter()
                    .map(|m| m.value.aws_role_name.clone())
                    .collect(),
                provider: settings.saml_provider_name.clone(),
                account,
            }
        })
        .collect();
    out.sort_by(|a, b| a.project.cmp(&b.project));
    out
}

/// Each tenant's project and its account id (from meshStack, else from `ids`), for tenants
/// with a well-formed one.
fn project_accounts<'a>(
    snapshot: &'a Snapshot,
    ids: &'a BTreeMap<ProjectKey, String>,
) -> impl Iterator<Item = (ProjectKey, String)> + 'a {
    snapshot.tenants.iter().filter_map(|t| {
        let account = t
            .account_id
            .clone()
            .or_else(|| ids.get(&t.key()).cloned())?;
        let valid = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        valid.then(|| (t.key(), account))
    })
}

/// What one account holds, as read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedIam {
    /// The provider's metadata document; `None` when there is no provider of that name.
    pub provider: Option<String>,
    /// Each role asked about; `None` when it does not exist.
    pub roles: BTreeMap<String, Option<ObservedRole>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRole {
    pub trust: Value,
    pub attached: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum IamOp {
    CreateSamlProvider,
    UpdateSamlProvider,
    CreateRole { role: String },
    UpdateTrust { role: String },
    AttachPolicy { role: String, policy: String },
    DetachPolicy { role: String, policy: String },
}

impl fmt::Display for IamOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IamOp::CreateSamlProvider => f.write_str("+ SAML provider"),
            IamOp::UpdateSamlProvider => f.write_str("~ SAML provider metadata"),
            IamOp::CreateRole { role } => write!(f, "+ role {role}"),
            IamOp::UpdateTrust { role } => write!(f, "~ role {role} trust policy restored"),
            IamOp::AttachPolicy { role, policy } => write!(f, "+ policy {policy} → {role}"),
            IamOp::DetachPolicy { role, policy } => write!(f, "- policy {policy} ✕ {role}"),
        }
    }
}

/// Drift that is reported, not changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IamFinding {
    /// A policy attached to a managed role beyond the configured list.
    ExtraPolicy {
        account: String,
        role: String,
        policy: String,
    },
    /// An external role mapping whose role the account does not have.
    ExternalRoleMissing { account: String, role: String },
}

impl fmt::Display for IamFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IamFinding::ExtraPolicy {
                account,
                role,
                policy,
            } => write!(
                f,
                "account {account}: role {role} has {policy} attached beyond the mapping; kept (replicator.mesh-idb.detach-extra-policies = True detaches it)"
            ),
            IamFinding::ExternalRoleMissing { account, role } => write!(
                f,
                "account {account}: external role {role} does not exist; create it (landing zone stack or Lambda)"
            ),
        }
    }
}

/// The operations that make `observed` what `desired` says, in order (provider before the roles
/// that trust it, a role before its policies), and the drift left alone.
pub fn plan_iam(
    desired: &DesiredIam,
    observed: &ObservedIam,
    metadata: &str,
    detach_extra: bool,
) -> (Vec<IamOp>, Vec<IamFinding>) {
    let mut ops = Vec::new();
    let mut findings = Vec::new();
    match &observed.provider {
        None => ops.push(IamOp::CreateSamlProvider),
        Some(have) if have.trim() != metadata.trim() => ops.push(IamOp::UpdateSamlProvider),
        Some(_) => {}
    }
    for role in &desired.managed {
        let attached = match observed.roles.get(&role.name).and_then(Option::as_ref) {
            None => {
                ops.push(IamOp::CreateRole {
                    role: role.name.clone(),
                });
                BTreeSet::new()
            }
            Some(have) => {
                if have.trust != role.trust {
                    ops.push(IamOp::UpdateTrust {
                        role: role.name.clone(),
                    });
                }
                have.attached.clone()
            }
        };
        for policy in role.policies.difference(&attached) {
            ops.push(IamOp::AttachPolicy {
                role: role.name.clone(),
                policy: policy.clone(),
            });
        }
        for policy in attached.difference(&role.policies) {
            if detach_extra {
                ops.push(IamOp::DetachPolicy {
                    role: role.name.clone(),
                    policy: policy.clone(),
                });
            } else {
                findings.push(IamFinding::ExtraPolicy {
                    account: desired.account.clone(),
                    role: role.name.clone(),
                    policy: policy.clone(),
                });
            }
        }
    }
    for role in &desired.external {
        if observed.roles.get(role).is_none_or(Option::is_none) {
            findings.push(IamFinding::ExternalRoleMissing {
                account: desired.account.clone(),
                role: role.clone(),
            });
        }
    }
    (ops, findings)
}

/// For each meshStack user, the `role ARN,provider ARN` pairs that meshIdB puts into the SAML
/// assertion: one per project role the user holds (directly or through a workspace group)
/// whose role is mapped, in each project account.
/// The SAML role pairs after a run of part of the estate: the pairs of `accounts` (the ones the
/// run read) replaced by what it found, every other account's pairs kept as they were. A scoped
/// run knows only its own projects, so its answer alone would drop everyone else's roles.
pub fn merge_saml_roles(
    mut before: BTreeMap<String, BTreeSet<String>>,
    now: BTreeMap<String, BTreeSet<String>>,
    accounts: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    // A pair is `arn:PARTITION:iam::ACCOUNT:role/NAME,arn:…:saml-provider/NAME`.
    let account_of = |pair: &str| pair.split(':').nth(4).map(str::to_owned);
    for pairs in before.values_mut() {
        pairs.retain(|p| account_of(p).is_none_or(|a| !accounts.contains(&a)));
    }
    for (user, pairs) in now {
        before.entry(user).or_default().extend(pairs);
    }
    before.retain(|_, pairs| !pairs.is_empty());
    before
}

/// The accounts of a snapshot's tenants (those with a valid id).
pub fn accounts_of(snapshot: &Snapshot, ids: &BTreeMap<ProjectKey, String>) -> BTreeSet<String> {
    project_accounts(snapshot, ids).map(|(_, a)| a).collect()
}

pub fn saml_roles(
    snapshot: &Snapshot,
    config: &Config,
    ids: &BTreeMap<ProjectKey, String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Some(idb) = &config.mesh_idb else {
        return out;
    };
    let part = crate::aws::partition(&config.aws.region);
    // Role display name → identifier → AWS role name.
    let role_ids = crate::desired::role_ids(snapshot, &config.meshstack.project_roles);
    let aws_roles: HashMap<&str, &str> = idb
        .role_mappings_managed
        .iter()
        .map(|m| (m.key.as_str(), m.value.aws_role_name.as_str()))
        .chain(
            idb.role_mappings_external
                .iter()
                .map(|m| (m.key.as_str(), m.value.aws_role_name.as_str())),
        )
        .collect();
    let accounts: HashMap<ProjectKey, String> = project_accounts(snapshot, ids).collect();
    let groups = crate::desired::user_groups(snapshot);
    let provider = &config.replicator.mesh_idb.saml_provider_name;
    for b in &snapshot.bindings {
        let key = ProjectKey {
            workspace: b.workspace.clone(),
            project: b.project.clone(),
        };
        let Some(account) = accounts.get(&key) else {
            continue;
        };
        let Some(aws_role) = role_ids
            .get(b.role.as_str())
            .and_then(|id| aws_roles.get(id))
        else {
            continue;
        };
        let pair = format!(
            "{},{}",
            crate::aws::role_arn(part, account, aws_role),
            crate::aws::provider_arn(part, account, provider)
        );
        let users: Vec<&str> = match &b.subject {
            Subject::User(u) => vec![u.as_str()],
            Subject::Group(g) if config.meshstack.expand_group_bindings => groups
                .get(&(b.workspace.as_str(), g.as_str()))
                .map(|m| m.iter().map(|u| u.as_str()).collect())
                .unwrap_or_default(),
            Subject::Group(_) => Vec::new(),
        };
        for user in users {
            out.entry(user.to_owned()).or_default().insert(pair.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
