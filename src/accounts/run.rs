//! Taking the steps: reads each project's account, asks [`super::pending`] what it still
//! needs, and takes those steps in order, a few accounts at once. An account's first failing
//! step ends its run; the others go on. With `dry_run` nothing is written and the pending
//! steps are the plan.

use super::aws::{AccountError, Landing, Organization, incomplete, poll};
use super::{
    AccountView, CreateStatus, DesiredAccount, Held, Policy, Step, check_owner,
    explain_create_failure, locate, notes, pending, tagged_as,
};
use crate::audit::Audit;
use crate::config::{LandingZone, OuTarget};
use crate::model::ProjectKey;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Options {
    pub dry_run: bool,
    pub enforce_alias: bool,
    /// With `aws.waitForExternalAvm`: the tag that marks the vending machine done.
    pub avm_done_tag: Option<(String, String)>,
    pub create_timeout: Duration,
    /// The role CreateAccount makes in a new account.
    pub access_role: String,
    pub platform: String,
}

impl Options {
    pub fn from_config(config: &crate::config::Config, dry_run: bool) -> Self {
        let tag = &config.accounts.avm_done_tag;
        Self {
            dry_run,
            enforce_alias: config.aws.enforce_account_alias,
            avm_done_tag: config
                .aws
                .wait_for_external_avm
                .then(|| (tag.key.clone(), tag.value.clone())),
            create_timeout: config.accounts.create_timeout,
            access_role: config
                .aws
                .account_access_role
                .clone()
                .unwrap_or_else(|| super::DEFAULT_ACCESS_ROLE.to_owned()),
            platform: config.platform.clone(),
        }
    }
}

/// What happened to one project's account.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub project: ProjectKey,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub done: Vec<Step>,
    /// Steps not taken: all of them in a dry run, else those after a failure or a wait.
    pub pending: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the account needs that the replicator may not do; for people.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub accounts: Vec<Outcome>,
    pub held: Vec<Held>,
}

impl Report {
    /// The account of each project whose account exists, for the SSO sync of the same run.
    pub fn account_ids(&self) -> BTreeMap<ProjectKey, String> {
        self.accounts
            .iter()
            .filter_map(|o| Some((o.project.clone(), o.account.clone()?)))
            .collect()
    }

    pub fn failed(&self) -> usize {
        self.accounts.iter().filter(|o| o.error.is_some()).count()
    }

    pub fn pending_steps(&self) -> usize {
        self.accounts.iter().map(|o| o.pending.len()).sum()
    }

    /// Hands the metrics this phase's numbers.
    pub fn record(&self, metrics: &crate::metrics::Metrics) {
        metrics.record_accounts(self.pending_steps(), self.failed());
    }

    /// One line per account with work, for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for o in &self.accounts {
            let steps = if o.done.is_empty() {
                &o.pending
            } else {
                &o.done
            };
            let account = o.account.as_deref().unwrap_or("(new)");
            if !steps.is_empty() || o.error.is_some() {
                let list: Vec<String> = steps.iter().map(ToString::to_string).collect();
                out.push_str(&format!(
                    "~ account {} {account}: {}\n",
                    o.project,
                    list.join("; ")
                ));
            }
            if let Some(e) = &o.error {
                out.push_str(&format!("  ! {e}\n"));
            }
            for note in &o.notes {
                out.push_str(&format!("# account {} {account}: {note}\n", o.project));
            }
        }
        for h in &self.held {
            out.push_str(&format!("# {h}\n"));
        }
        out
    }
}

#[derive(Serialize)]
struct AuditStep<'a> {
    timestamp: String,
    platform: &'a str,
    operation: &'static str,
    project: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    step: &'a Step,
    #[serde(flatten)]
    progress: crate::audit::Progress,
}

/// OU ids by path, resolved once per run.
struct Ous {
    root: Option<String>,
    by_path: HashMap<Vec<String>, Option<String>>,
}

impl Ous {
    /// The id of `target`; `None` when the path does not exist and may not be created.
    async fn resolve(
        &mut self,
        org: &impl Organization,
        target: &OuTarget,
        create: bool,
    ) -> Result<Option<String>, AccountError> {
        let path = match target {
            OuTarget::Id(id) => return Ok(Some(id.clone())),
            OuTarget::Path(path) => path,
        };
        if let Some(Some(id)) = self.by_path.get(path) {
            return Ok(Some(id.clone()));
        }
        let root = match &self.root {
            Some(root) => root.clone(),
            None => {
                let root = org.root().await?;
                self.root = Some(root.clone());
                root
            }
        };
        let mut parent = root;
        for name in path {
            let children = org.child_ous(&parent).await?;
            parent = match children.into_iter().find(|(_, n)| n == name) {
                Some((id, _)) => id,
                None if create => org.create_ou(&parent, name).await?,
                None => {
                    self.by_path.insert(path.clone(), None);
                    return Ok(None);
                }
            };
        }
        self.by_path.insert(path.clone(), Some(parent.clone()));
        Ok(Some(parent))
    }
}

/// Accounts worked on at once. AWS allows five CreateAccount requests in progress; most of an
/// account's time is spent waiting for its stack and StackSet operation.
const ACCOUNTS_IN_FLIGHT: usize = 4;

/// Provisions and bootstraps `desired`, a few accounts at once. Fails as a whole only when the
/// organization cannot be read; each account's own failure is in its [`Outcome`], in the
/// order of `desired`.
pub async fn provision(
    desired: &[DesiredAccount],
    held: Vec<Held>,
    zones: &BTreeMap<String, LandingZone>,
    org: &impl Organization,
    landing: &impl Landing,
    options: &Options,
    audit: &Audit,
) -> Result<Report, AccountError> {
    use futures_util::StreamExt;
    let run = Run {
        org,
        landing,
        options,
        audit,
        accounts: std::sync::Mutex::new(org.accounts().await?),
        ous: tokio::sync::Mutex::new(Ous {
            root: None,
            by_path: HashMap::new(),
        }),
        tag_index: tokio::sync::Mutex::new(None),
    };
    let accounts = futures_util::stream::iter(desired)
        .map(|d| run.account(d, &zones[&d.landing_zone]))
        .buffered(ACCOUNTS_IN_FLIGHT)
        .collect()
        .await;
    Ok(Report { accounts, held })
}

/// One provisioning run: the backends, and what the accounts share (the organization's
/// accounts, resolved OUs, the tag index).
struct Run<'a, O, L> {
    org: &'a O,
    landing: &'a L,
    options: &'a Options,
    audit: &'a Audit,
    accounts: std::sync::Mutex<Vec<super::OrgAccount>>,
    /// Held across the OU lookups and creations, so that two accounts never create one OU twice.
    ous: tokio::sync::Mutex<Ous>,
    tag_index: tokio::sync::Mutex<Option<TagIndex>>,
}

impl<O: Organization, L: Landing> Run<'_, O, L> {
    async fn account(&self, d: &DesiredAccount, zone: &LandingZone) -> Outcome {
        let mut outcome = Outcome {
            project: d.project.clone(),
            account: None,
            done: Vec::new(),
            pending: Vec::new(),
            error: None,
            notes: Vec::new(),
        };
        if let Err(e) = self.steps(d, zone, &mut outcome).await {
            tracing::warn!(project = %d.project, error = %e, "account step failed");
            outcome.error = Some(e.to_string());
        }
        outcome
    }

    fn locate(&self, d: &DesiredAccount) -> Result<Option<super::OrgAccount>, AccountError> {
        let accounts = self.accounts.lock().expect("accounts lock");
        Ok(locate(d, &accounts)
            .map_err(AccountError::Refused)?
            .cloned())
    }

    async fn target(
        &self,
        zone: &LandingZone,
        create: bool,
    ) -> Result<Option<String>, AccountError> {
        self.ous
            .lock()
            .await
            .resolve(self.org, &zone.organizational_unit, create)
            .await
    }

    async fn steps(
        &self,
        d: &DesiredAccount,
        zone: &LandingZone,
        outcome: &mut Outcome,
    ) -> Result<(), AccountError> {
        let (org, options) = (self.org, self.options);
        let policy = Policy {
            enforce_alias: options.enforce_alias,
            avm_done_tag: options
                .avm_done_tag
                .as_ref()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        };
        let found = match self.locate(d)? {
            Some(a) => Some(a),
            None => self.tagged(d).await?,
        };
        let target = self.target(zone, !options.dry_run).await?;
        let account = match found {
            Some(a) => a,
            None if options.dry_run => {
                outcome.pending = pending(d, zone, None, target.as_deref(), policy);
                return Ok(());
            }
            None => {
                let step = Step::Create {
                    email: d.email.clone(),
                    name: d.name.clone(),
                };
                self.intend(d, None, &step);
                let created = self.create(d).await;
                self.record(
                    d,
                    created.as_ref().ok().map(|a| a.id.as_str()),
                    &step,
                    &created,
                );
                let a = created?;
                outcome.done.push(step);
                a
            }
        };
        outcome.account = Some(account.id.clone());
        let tags = org.tags(&account.id).await?;
        check_owner(d, &account, &tags).map_err(AccountError::Refused)?;
        let mut view = AccountView {
            id: account.id.clone(),
            parent: org.parent(&account.id).await?,
            tags,
            alias: None,
        };
        let avm_done = policy
            .avm_done_tag
            .is_none_or(|(k, v)| view.tags.get(k).map(String::as_str) == Some(v));
        if avm_done {
            view.alias = Some(self.landing.alias(&account.id).await?);
        }
        let steps = pending(d, zone, Some(&view), target.as_deref(), policy);
        outcome.notes = notes(zone, &view);
        if options.dry_run {
            outcome.pending = steps;
            return Ok(());
        }
        let mut steps = steps.into_iter();
        while let Some(step) = steps.next() {
            if let Step::AwaitAvm { .. } = step {
                outcome.pending.push(step);
                break;
            }
            self.intend(d, Some(&account.id), &step);
            let result = self.take(&step, zone, &view).await;
            self.record(d, Some(&account.id), &step, &result);
            if let Err(e) = result {
                outcome.pending.push(step);
                outcome.pending.extend(steps);
                return Err(e);
            }
            outcome.done.push(step);
        }
        Ok(())
    }

    async fn take(
        &self,
        step: &Step,
        zone: &LandingZone,
        view: &AccountView,
    ) -> Result<(), AccountError> {
        let org = self.org;
        let id = view.id.as_str();
        self.act(step, zone, view).await?;
        // Recorded step by step: a run that dies after the downgrade must not deploy the access
        // stack again, as the downgraded role may no longer do that.
        match step.done_tag() {
            Some((key, value)) => {
                org.tag(id, &BTreeMap::from([(key.to_owned(), value.to_owned())]))
                    .await
            }
            None => Ok(()),
        }
    }

    async fn act(
        &self,
        step: &Step,
        zone: &LandingZone,
        view: &AccountView,
    ) -> Result<(), AccountError> {
        let (org, landing) = (self.org, self.landing);
        let id = view.id.as_str();
        match step {
            Step::Create { .. } | Step::AwaitAvm { .. } => Ok(()),
            Step::Place { .. } => {
                let to = self.target(zone, true).await?.ok_or_else(|| {
                    AccountError::Refused("the landing zone's OU is missing".into())
                })?;
                org.move_account(id, &view.parent, &to).await
            }
            Step::Tag { set } => org.tag(id, set).await,
            Step::Alias { to, .. } => landing.set_alias(id, to).await,
            Step::AccessStack { .. } => {
                let stack = zone
                    .access_stack
                    .as_ref()
                    .expect("a stack step has a stack");
                landing
                    .deploy_stack(id, &stack.stack_name, &stack.template)
                    .await
            }
            Step::StackSets { .. } => {
                for set in &zone.stack_sets {
                    landing.stack_instances(id, set).await?;
                }
                Ok(())
            }
            Step::Downgrade { lambda, .. } => landing.invoke(lambda, id).await,
        }
    }

    /// The account tagged as this project's, if any: found again after the email pattern
    /// changed, instead of being created a second time.
    async fn tagged(&self, d: &DesiredAccount) -> Result<Option<super::OrgAccount>, AccountError> {
        let mut index = self.tag_index.lock().await;
        if index.is_none() {
            let accounts = self.accounts.lock().expect("accounts lock").clone();
            let mut all = Vec::with_capacity(accounts.len());
            for a in accounts {
                let tags = self.org.tags(&a.id).await?;
                all.push((a, tags));
            }
            *index = Some(all);
        }
        let index = index.as_ref().expect("just filled");
        Ok(index
            .iter()
            .find(|(a, tags)| a.status == "ACTIVE" && tagged_as(d, tags))
            .map(|(a, _)| a.clone()))
    }

    /// CreateAccount, then DescribeCreateAccountStatus with backoff until it is done. An email
    /// that AWS says exists is looked up again: a run that died after CreateAccount left it.
    async fn create(&self, d: &DesiredAccount) -> Result<super::OrgAccount, AccountError> {
        let (org, options) = (self.org, self.options);
        let request = org
            .create_account(&d.email, &d.name, &options.access_role, &d.tags)
            .await?;
        let status = poll(options.create_timeout, || {
            let request = request.as_str();
            async move {
                Ok(match org.create_status(request).await? {
                    CreateStatus::InProgress => None,
                    done => Some(done),
                })
            }
        })
        .await?;
        let refresh = || async {
            let fresh = org.accounts().await?;
            *self.accounts.lock().expect("accounts lock") = fresh.clone();
            Ok::<_, AccountError>(fresh)
        };
        match status {
            Some(CreateStatus::Succeeded { account }) => refresh()
                .await?
                .into_iter()
                .find(|a| a.id == account)
                .ok_or_else(|| {
                    incomplete(
                        "organizations:ListAccounts",
                        format!(
                            "the new account {account} is not listed yet; the next run picks it up"
                        ),
                    )
                }),
            Some(CreateStatus::Failed { reason }) if reason == "EMAIL_ALREADY_EXISTS" => {
                match locate(d, &refresh().await?) {
                    Ok(Some(a)) => Ok(a.clone()),
                    _ => Err(AccountError::Refused(explain_create_failure(
                        &reason, &d.email,
                    ))),
                }
            }
            Some(CreateStatus::Failed { reason }) => Err(AccountError::Refused(
                explain_create_failure(&reason, &d.email),
            )),
            Some(CreateStatus::InProgress) | None => Err(AccountError::Refused(format!(
                "CreateAccount for {} is still in progress after {} s; the next run finds the account by its email",
                d.email,
                options.create_timeout.as_secs()
            ))),
        }
    }

    /// The intent line before a step's writes: a run cut off mid-step still shows it as tried.
    fn intend(&self, d: &DesiredAccount, account: Option<&str>, step: &Step) {
        record(
            self.audit,
            self.options,
            d,
            account,
            step,
            None::<&Result<(), AccountError>>,
        );
    }

    fn record<T>(
        &self,
        d: &DesiredAccount,
        account: Option<&str>,
        step: &Step,
        result: &Result<T, AccountError>,
    ) {
        record(self.audit, self.options, d, account, step, Some(result));
    }
}

/// Every account's tags, read once per run and only when some account would be created.
type TagIndex = Vec<(super::OrgAccount, BTreeMap<String, String>)>;

fn record<T>(
    audit: &Audit,
    options: &Options,
    d: &DesiredAccount,
    account: Option<&str>,
    step: &Step,
    result: Option<&Result<T, AccountError>>,
) {
    let operation = match step {
        Step::Create { .. } => "organizations:CreateAccount",
        Step::Place { .. } => "organizations:MoveAccount",
        Step::Tag { .. } => "organizations:TagResource",
        Step::AwaitAvm { .. } => "await-avm",
        Step::Alias { .. } => "iam:CreateAccountAlias",
        Step::AccessStack { .. } => "cloudformation:CreateStack|UpdateStack",
        Step::StackSets { .. } => "cloudformation:CreateStackInstances",
        Step::Downgrade { .. } => "lambda:Invoke",
    };
    audit.write(&AuditStep {
        timestamp: crate::audit::now(),
        platform: &options.platform,
        operation,
        project: d.project.to_string(),
        account,
        step,
        progress: crate::audit::Progress::of(result),
    });
}

/// The account phase of a run, from configuration: provisions (with `dry_run`, plans) the
/// accounts of the snapshot's tenants in configured landing zones, and returns the snapshot
/// with the account ids it found or made filled in, for the SSO sync of the same run. With no
/// landing zone configured it reads nothing.
pub async fn accounts_phase(
    config: &crate::config::Config,
    snapshot: &crate::snapshot::Snapshot,
    scope: &crate::desired::Scope,
    dry_run: bool,
    audit: &Audit,
    observer: Option<std::sync::Arc<dyn crate::metrics::RequestObserver>>,
) -> Result<(Report, crate::snapshot::Snapshot), AccountError> {
    if config.accounts.landing_zones.is_empty() {
        return Ok((Report::default(), snapshot.clone()));
    }
    let (desired, held) = super::desired_accounts(snapshot, config, scope);
    let management = crate::aws::AssumedRole::management(config)?;
    let org = super::aws::AwsOrganization::new(management.clone())?;
    let landing = super::aws::AwsLanding::new(config, management)?.with_observer(observer);
    let options = Options::from_config(config, dry_run);
    let report = provision(
        &desired,
        held,
        &config.accounts.landing_zones,
        &org,
        &landing,
        &options,
        audit,
    )
    .await?;
    let ids = report.account_ids();
    let mut filled = snapshot.clone();
    for tenant in &mut filled.tenants {
        if tenant.account_id.is_none()
            && let Some(id) = ids.get(&tenant.key())
        {
            tenant.account_id = Some(id.clone());
        }
    }
    Ok((report, filled))
}
