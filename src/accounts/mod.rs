//! Account provisioning and the landing-zone bootstrap: one AWS account per project tenant of a
//! configured landing zone, taken step by step through
//! created → placed → tagged → (external AVM done) → aliased → access stack → StackSet
//! instances → downgraded.
//!
//! AWS itself is the state of this machine. Every step is read back from the account before it
//! is taken (its email in ListAccounts, its parent, its tags, its alias) or, for the bootstrap
//! steps, from the tag the replicator writes on the account when that step succeeded. So a run
//! killed at any point resumes at the step it stopped at, and an account is found again by its
//! email instead of being created twice. This module is the pure part: what each project's
//! account should be, and which steps an account as read still needs. `run.rs` takes them;
//! `aws.rs` talks to AWS.

pub mod aws;
pub mod retry;
pub mod run;

use crate::config::{Config, LandingZone};
use crate::desired::Scope;
use crate::model::ProjectKey;
use crate::snapshot::Snapshot;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Tags the replicator owns on an account. Landing zones may not set keys with this prefix.
pub const TAG_PLATFORM: &str = "aws-replicator:platform";
pub const TAG_PROJECT: &str = "aws-replicator:project";
/// Per bootstrap step, the digest of what it last deployed in full on this account: a step is
/// taken again only when the landing zone's content for it changed.
pub const TAG_ACCESS_STACK: &str = "aws-replicator:access-stack";
pub const TAG_STACK_SETS: &str = "aws-replicator:stack-sets";
/// Once set, the access role has been downgraded: it may only read stacks from then on.
pub const TAG_DOWNGRADED: &str = "aws-replicator:downgraded";

/// The role that CreateAccount makes in a new account, and that the replicator assumes there.
pub const DEFAULT_ACCESS_ROLE: &str = "MeshstackAccountAccessRole";

/// What one project's account should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredAccount {
    pub project: ProjectKey,
    pub landing_zone: String,
    /// The id meshStack knows for the tenant; `None` until the account exists.
    pub known_id: Option<String>,
    pub name: String,
    pub email: String,
    pub alias: String,
    /// meshStack's project tags, the landing zone's, and our ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// Why a project gets no account work this run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Held {
    pub project: ProjectKey,
    pub reason: String,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; its account is left as it is",
            self.project, self.reason
        )
    }
}

/// The accounts that the tenants in `scope` need, for tenants of configured landing zones.
pub fn desired_accounts(
    snapshot: &Snapshot,
    config: &Config,
    scope: &Scope,
) -> (Vec<DesiredAccount>, Vec<Held>) {
    let zones = &config.accounts.landing_zones;
    let projects: HashMap<ProjectKey, &crate::snapshot::Project> =
        snapshot.projects.iter().map(|p| (p.key(), p)).collect();
    let mut wanted = Vec::new();
    let mut held = Vec::new();
    let mut tenants: Vec<_> = snapshot.tenants.iter().collect();
    tenants.sort_by_key(|t| t.key());
    for tenant in tenants {
        let key = tenant.key();
        if !scope.contains(&key) {
            continue;
        }
        let Some(zone_id) = tenant.landing_zone.as_deref() else {
            continue;
        };
        let Some(zone) = zones.get(zone_id) else {
            continue;
        };
        let hold = |reason: String| Held {
            project: key.clone(),
            reason,
        };
        let Some(project) = projects.get(&key) else {
            held.push(hold(
                "meshStack listed its tenant but not the project".into(),
            ));
            continue;
        };
        let numeric = if config.alias_pattern.uses(3) {
            match crate::desired::numeric_id(project, &config.meshstack.project_id) {
                Ok(id) => id.to_string(),
                Err(detail) => {
                    held.push(hold(format!(
                        "the alias pattern needs the numeric id: {detail}"
                    )));
                    continue;
                }
            }
        } else {
            String::new()
        };
        let (w, p) = (key.workspace.as_str(), key.project.as_str());
        let alias = config.alias_pattern.render(&[w, p, &numeric]);
        if let Err(problem) = check_alias(&alias) {
            held.push(hold(format!("alias {alias:?} {problem}")));
            continue;
        }
        let joined = format!("{w}.{p}");
        let mut tags: BTreeMap<String, String> = project
            .tags
            .iter()
            .filter(|(k, _)| !k.starts_with("aws-replicator:") && !k.starts_with("aws:"))
            .map(|(k, v)| (k.clone(), v.join(",")))
            .collect();
        tags.extend(zone.tags.clone());
        tags.insert(TAG_PLATFORM.into(), config.platform.clone());
        tags.insert(TAG_PROJECT.into(), joined.clone());
        wanted.push(DesiredAccount {
            known_id: tenant.account_id.clone(),
            landing_zone: zone_id.to_owned(),
            name: joined.clone(),
            email: config.email_pattern.render(&[&joined]),
            alias,
            tags,
            project: key,
        });
    }
    (wanted, held)
}

/// IAM's rule for an account alias: 3–63 lowercase letters, digits and single hyphens, not
/// starting or ending with a hyphen.
pub fn check_alias(alias: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&alias.len()) {
        return Err("is not 3–63 characters long");
    }
    if !alias
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("has characters other than lowercase letters, digits and hyphens");
    }
    if alias.starts_with('-') || alias.ends_with('-') || alias.contains("--") {
        return Err("starts or ends with a hyphen, or has two in a row");
    }
    Ok(())
}

/// An account of the organization, as ListAccounts shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgAccount {
    pub id: String,
    pub email: String,
    pub name: String,
    pub status: String,
}

/// One account as a run read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountView {
    pub id: String,
    /// The id of its parent: an OU or the root.
    pub parent: String,
    pub tags: BTreeMap<String, String>,
    /// `None` when not read (the account is not ready for it yet).
    pub alias: Option<Option<String>>,
}

/// Finds the project's account: the one meshStack names, else the one with the email the
/// pattern gives (an account created by a run that did not live to record it). `Ok(None)`:
/// there is none yet.
pub fn locate<'a>(
    desired: &DesiredAccount,
    accounts: &'a [OrgAccount],
) -> Result<Option<&'a OrgAccount>, String> {
    let account = match &desired.known_id {
        Some(id) => match accounts.iter().find(|a| &a.id == id) {
            Some(a) => a,
            None => {
                return Err(format!(
                    "meshStack names account {id}, which is not in this organization"
                ));
            }
        },
        None => match accounts
            .iter()
            .find(|a| a.email.eq_ignore_ascii_case(&desired.email))
        {
            Some(a) => a,
            None => return Ok(None),
        },
    };
    if account.status != "ACTIVE" {
        return Err(format!("account {} is {}", account.id, account.status));
    }
    Ok(Some(account))
}

/// Whether an account's tags say it is this project's account of this platform instance: how
/// an account is found again after the email pattern changed.
pub fn tagged_as(desired: &DesiredAccount, tags: &BTreeMap<String, String>) -> bool {
    [TAG_PLATFORM, TAG_PROJECT]
        .iter()
        .all(|key| tags.get(*key).is_some() && tags.get(*key) == desired.tags.get(*key))
}

/// An account whose ownership tags name another project or platform instance is never
/// adopted, whatever its email.
pub fn check_owner(
    desired: &DesiredAccount,
    account: &OrgAccount,
    tags: &BTreeMap<String, String>,
) -> Result<(), String> {
    for key in [TAG_PLATFORM, TAG_PROJECT] {
        if let (Some(have), Some(want)) = (tags.get(key), desired.tags.get(key))
            && have != want
        {
            return Err(format!(
                "account {} ({}) is tagged {key}={have}, not {want}: it belongs to someone else; fix: correct aws.accountEmailPattern or the tenant's account id",
                account.id, account.email
            ));
        }
    }
    Ok(())
}

/// One step an account still needs, in the order they are taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    Create {
        email: String,
        name: String,
    },
    Place {
        from: String,
        to: String,
    },
    Tag {
        set: BTreeMap<String, String>,
    },
    /// Nothing to do but wait: the external vending machine has not tagged the account done.
    AwaitAvm {
        tag: String,
    },
    Alias {
        from: Option<String>,
        to: String,
    },
    /// Each bootstrap step ends by tagging the account with its `digest`.
    AccessStack {
        stack: String,
        digest: String,
    },
    StackSets {
        names: Vec<String>,
        digest: String,
    },
    Downgrade {
        lambda: String,
        digest: String,
    },
}

impl Step {
    /// The tag that records a bootstrap step as done, and its value.
    pub fn done_tag(&self) -> Option<(&'static str, &str)> {
        match self {
            Step::AccessStack { digest, .. } => Some((TAG_ACCESS_STACK, digest)),
            Step::StackSets { digest, .. } => Some((TAG_STACK_SETS, digest)),
            Step::Downgrade { digest, .. } => Some((TAG_DOWNGRADED, digest)),
            _ => None,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Create { email, name } => write!(f, "create account {name} <{email}>"),
            Step::Place { from, to } => write!(f, "move from {from} to {to}"),
            Step::Tag { set } => {
                let keys: Vec<&str> = set.keys().map(String::as_str).collect();
                write!(f, "tag {}", keys.join(", "))
            }
            Step::AwaitAvm { tag } => write!(f, "wait for the external vending machine ({tag})"),
            Step::Alias { from: None, to } => write!(f, "alias {to}"),
            Step::Alias {
                from: Some(from),
                to,
            } => write!(f, "alias {from} → {to}"),
            Step::AccessStack { stack, .. } => write!(f, "deploy access stack {stack}"),
            Step::StackSets { names, .. } => {
                write!(f, "StackSet instances of {}", names.join(", "))
            }
            Step::Downgrade { lambda, .. } => write!(f, "invoke {lambda}"),
        }
    }
}

/// What the steps depend on beyond the account itself.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub enforce_alias: bool,
    /// `Some` with `aws.waitForExternalAvm`: the tag that says the vending machine is done.
    pub avm_done_tag: Option<(&'a str, &'a str)>,
}

/// The steps an account still needs. `view` is `None` for an account that does not exist yet;
/// `target_ou` is the id the landing zone's OU resolved to (`None`: not resolved yet, so the
/// placement is pending). Steps after a wait for the AVM are not listed until it is done.
pub fn pending(
    desired: &DesiredAccount,
    zone: &LandingZone,
    view: Option<&AccountView>,
    target_ou: Option<&str>,
    policy: Policy,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let empty = AccountView::default();
    let view = match view {
        Some(view) => view,
        None => {
            steps.push(Step::Create {
                email: desired.email.clone(),
                name: desired.name.clone(),
            });
            &empty
        }
    };
    if target_ou != Some(view.parent.as_str()) {
        steps.push(Step::Place {
            from: if view.parent.is_empty() {
                "root".into()
            } else {
                view.parent.clone()
            },
            to: target_ou
                .map(str::to_owned)
                .unwrap_or_else(|| zone.organizational_unit.to_string()),
        });
    }
    let set: BTreeMap<String, String> = desired
        .tags
        .iter()
        .filter(|(k, v)| view.tags.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !set.is_empty() {
        steps.push(Step::Tag { set });
    }
    if let Some((key, value)) = policy.avm_done_tag
        && view.tags.get(key).map(String::as_str) != Some(value)
    {
        steps.push(Step::AwaitAvm {
            tag: format!("{key}={value}"),
        });
        return steps;
    }
    match &view.alias {
        // Not read yet: the alias is decided once the account can be entered.
        None => steps.push(Step::Alias {
            from: None,
            to: desired.alias.clone(),
        }),
        Some(None) => steps.push(Step::Alias {
            from: None,
            to: desired.alias.clone(),
        }),
        Some(Some(have)) if have != &desired.alias && policy.enforce_alias => {
            steps.push(Step::Alias {
                from: Some(have.clone()),
                to: desired.alias.clone(),
            })
        }
        Some(Some(_)) => {}
    }
    let done = |tag: &str, digest: &str| view.tags.get(tag).map(String::as_str) == Some(digest);
    if let Some(stack) = &zone.access_stack {
        let digest = access_stack_digest(stack);
        // After the downgrade the access role may only read stacks: a changed template can no
        // longer be deployed through it (see `notes`).
        if !done(TAG_ACCESS_STACK, &digest) && !view.tags.contains_key(TAG_DOWNGRADED) {
            steps.push(Step::AccessStack {
                stack: stack.stack_name.clone(),
                digest,
            });
        }
    }
    if !zone.stack_sets.is_empty() {
        let parts: Vec<String> = zone
            .stack_sets
            .iter()
            .map(|s| format!("{}\0{}", s.name, s.regions.join("\0")))
            .collect();
        let digest = digest(&parts.iter().map(String::as_bytes).collect::<Vec<_>>());
        if !done(TAG_STACK_SETS, &digest) {
            steps.push(Step::StackSets {
                names: zone.stack_sets.iter().map(|s| s.name.clone()).collect(),
                digest,
            });
        }
    }
    if let Some(lambda) = &zone.lambda {
        let digest = digest(&[lambda.as_bytes()]);
        if !done(TAG_DOWNGRADED, &digest) {
            steps.push(Step::Downgrade {
                lambda: lambda.clone(),
                digest,
            });
        }
    }
    steps
}

/// What an account needs that the replicator cannot do, for people: an access stack whose
/// template changed after the account's access role was downgraded.
pub fn notes(zone: &LandingZone, view: &AccountView) -> Vec<String> {
    let Some(stack) = &zone.access_stack else {
        return Vec::new();
    };
    let digest = access_stack_digest(stack);
    let deployed = view.tags.get(TAG_ACCESS_STACK);
    if view.tags.contains_key(TAG_DOWNGRADED) && deployed != Some(&digest) {
        let what = if deployed.is_some() {
            "was deployed from another template"
        } else {
            "was never deployed by the replicator"
        };
        vec![format!(
            "access stack {} {what}, and the account's access role is downgraded (it may only \
             read stacks); roll the change out through a StackSet, or update the stack in the \
             account and tag it {TAG_ACCESS_STACK}={digest}",
            stack.stack_name
        )]
    } else {
        Vec::new()
    }
}

fn access_stack_digest(stack: &crate::config::AccessStack) -> String {
    digest(&[stack.stack_name.as_bytes(), stack.template.as_bytes()])
}

/// A short digest of what a bootstrap step deploys: when it changes, the step runs again.
fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What DescribeCreateAccountStatus says of a creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateStatus {
    InProgress,
    Succeeded { account: String },
    Failed { reason: String },
}

/// A clear sentence and fix for each FailureReason AWS documents for CreateAccount.
pub fn explain_create_failure(reason: &str, email: &str) -> String {
    let (what, fix) = match reason {
        "EMAIL_ALREADY_EXISTS" => (
            format!(
                "the email {email} already belongs to an AWS account outside this organization"
            ),
            "change aws.accountEmailPattern, or invite that account into the organization",
        ),
        "ACCOUNT_LIMIT_EXCEEDED" => (
            "the organization has as many accounts as its quota allows".into(),
            "ask AWS Support to raise the Organizations account quota",
        ),
        "CONCURRENT_ACCOUNT_MODIFICATION" => (
            "another change to the organization ran at the same time".into(),
            "nothing: the next run tries again",
        ),
        "INVALID_EMAIL" => (
            format!("AWS refuses the email {email}"),
            "correct aws.accountEmailPattern",
        ),
        "INVALID_ADDRESS"
        | "INVALID_IDENTITY_FOR_BUSINESS_VALIDATION"
        | "MISSING_BUSINESS_VALIDATION"
        | "MISSING_PAYMENT_INSTRUMENT"
        | "PENDING_BUSINESS_VALIDATION"
        | "INVALID_PAYMENT_INSTRUMENT" => (
            format!("the management account is not ready to create accounts ({reason})"),
            "complete the management account's contact, payment or business validation in the AWS console",
        ),
        "UNKNOWN_BUSINESS_VALIDATION" | "INTERNAL_FAILURE" => (
            format!("AWS failed to create the account ({reason})"),
            "nothing: the next run tries again; contact AWS Support if it persists",
        ),
        "FAILED_BUSINESS_VALIDATION"
        | "GOVCLOUD_ACCOUNT_ALREADY_EXISTS"
        | "UPDATE_EXISTING_RESOURCE_POLICY_WITH_TAGS_NOT_SUPPORTED" => (
            format!("AWS refused to create the account ({reason})"),
            "contact AWS Support",
        ),
        other => (
            format!("AWS failed to create the account ({other})"),
            "see the AWS Organizations CreateAccountStatus documentation",
        ),
    };
    format!("CreateAccount failed: {what}; fix: {fix}")
}

#[cfg(test)]
mod tests;
