//! Reading and writing each project account's IAM for the meshIdB path: the [`AccountIam`]
//! seam, its AWS implementation (through the member account's access role, as the account
//! bootstrap uses it), and the phase that `plan`, `sync` and `serve` run.

use super::{DesiredIam, IamFinding, IamOp, ObservedIam, ObservedRole, plan_iam};
use crate::accounts::aws::{AccountError, AwsLanding, aws_error};
use crate::audit::Audit;
use crate::config::Config;
use crate::model::ProjectKey;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// IAM of one member account.
#[allow(async_fn_in_trait)]
pub trait AccountIam {
    /// The metadata of the SAML provider `name`, if the account has it.
    async fn saml_provider(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<String>, AccountError>;
    async fn put_saml_provider(
        &self,
        account: &str,
        name: &str,
        metadata: &str,
        exists: bool,
    ) -> Result<(), AccountError>;
    async fn role(&self, account: &str, name: &str) -> Result<Option<ObservedRole>, AccountError>;
    async fn create_role(&self, account: &str, name: &str, trust: &str)
    -> Result<(), AccountError>;
    async fn update_trust(
        &self,
        account: &str,
        name: &str,
        trust: &str,
    ) -> Result<(), AccountError>;
    async fn attach(&self, account: &str, role: &str, policy: &str) -> Result<(), AccountError>;
    async fn detach(&self, account: &str, role: &str, policy: &str) -> Result<(), AccountError>;
}

/// What happened in one account.
#[derive(Debug, Clone, Serialize)]
pub struct AccountIamOutcome {
    pub project: ProjectKey,
    pub account: String,
    pub done: Vec<IamOp>,
    pub pending: Vec<IamOp>,
    pub findings: Vec<IamFinding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IamReport {
    pub accounts: Vec<AccountIamOutcome>,
}

impl IamReport {
    pub fn failed(&self) -> usize {
        self.accounts.iter().filter(|a| a.error.is_some()).count()
    }

    pub fn pending(&self) -> usize {
        self.accounts.iter().map(|a| a.pending.len()).sum()
    }

    pub fn done(&self) -> usize {
        self.accounts.iter().map(|a| a.done.len()).sum()
    }

    pub fn findings(&self) -> impl Iterator<Item = &IamFinding> {
        self.accounts.iter().flat_map(|a| &a.findings)
    }

    /// Hands the metrics this phase's numbers.
    pub fn record(&self, metrics: &crate::metrics::Metrics) {
        metrics.record_mesh_idb(self.pending(), self.findings().count());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for a in &self.accounts {
            let ops = if a.done.is_empty() {
                &a.pending
            } else {
                &a.done
            };
            for op in ops {
                out.push_str(&format!("{op} (account {} of {})\n", a.account, a.project));
            }
            if let Some(e) = &a.error {
                out.push_str(&format!("! account {} of {}: {e}\n", a.account, a.project));
            }
        }
        for f in self.findings() {
            out.push_str(&format!("! {f}\n"));
        }
        out
    }
}

#[derive(Serialize)]
struct AuditIam<'a> {
    timestamp: String,
    platform: &'a str,
    operation: &'static str,
    project: String,
    account: &'a str,
    op: &'a IamOp,
    #[serde(flatten)]
    progress: crate::audit::Progress,
}

/// Accounts worked on at once. Their IAM calls share one rate limit (`rate-limits.iam`), so
/// this only keeps a slow account from holding up the others.
const ACCOUNTS_IN_FLIGHT: usize = 4;

/// Reads each account, plans, and (unless `dry_run`) applies, a few accounts at once; the
/// report keeps the order of `desired`.
pub async fn reconcile(
    desired: &[DesiredIam],
    iam: &impl AccountIam,
    metadata: &str,
    detach_extra: bool,
    dry_run: bool,
    platform: &str,
    audit: &Audit,
) -> IamReport {
    use futures_util::StreamExt;
    let accounts = futures_util::stream::iter(desired)
        .map(|d| account(d, iam, metadata, detach_extra, dry_run, platform, audit))
        .buffered(ACCOUNTS_IN_FLIGHT)
        .collect()
        .await;
    IamReport { accounts }
}

/// One account: read, plan, and apply in dependency order; its first failure ends its run
/// (what depends on it stays pending), the other accounts go on.
async fn account(
    d: &DesiredIam,
    iam: &impl AccountIam,
    metadata: &str,
    detach_extra: bool,
    dry_run: bool,
    platform: &str,
    audit: &Audit,
) -> AccountIamOutcome {
    let mut outcome = AccountIamOutcome {
        project: d.project.clone(),
        account: d.account.clone(),
        done: Vec::new(),
        pending: Vec::new(),
        findings: Vec::new(),
        error: None,
    };
    let observed = match observe(d, iam).await {
        Ok(observed) => observed,
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let (ops, findings) = plan_iam(d, &observed, metadata, detach_extra);
    outcome.findings = findings;
    if dry_run {
        outcome.pending = ops;
        return outcome;
    }
    let exists = observed.provider.is_some();
    let mut ops = ops.into_iter();
    while let Some(op) = ops.next() {
        // The intent line before the write: a run cut off mid-request still shows it as tried.
        let line = |result: Option<&Result<(), AccountError>>| AuditIam {
            timestamp: crate::audit::now(),
            platform,
            operation: operation(&op),
            project: d.project.to_string(),
            account: &d.account,
            op: &op,
            progress: crate::audit::Progress::of(result),
        };
        audit.write(&line(None));
        let result = apply(d, iam, &op, metadata, exists).await;
        audit.write(&line(Some(&result)));
        match result {
            Ok(()) => outcome.done.push(op),
            Err(e) => {
                outcome.error = Some(e.to_string());
                outcome.pending.push(op);
                outcome.pending.extend(ops);
                break;
            }
        }
    }
    outcome
}

async fn observe(d: &DesiredIam, iam: &impl AccountIam) -> Result<ObservedIam, AccountError> {
    let mut observed = ObservedIam {
        provider: iam.saml_provider(&d.account, &d.provider).await?,
        roles: BTreeMap::new(),
    };
    for name in d.managed.iter().map(|r| &r.name).chain(&d.external) {
        let role = iam.role(&d.account, name).await?;
        observed.roles.insert(name.clone(), role);
    }
    Ok(observed)
}

async fn apply(
    d: &DesiredIam,
    iam: &impl AccountIam,
    op: &IamOp,
    metadata: &str,
    provider_exists: bool,
) -> Result<(), AccountError> {
    let trust_of = |role: &str| {
        d.managed
            .iter()
            .find(|r| r.name == role)
            .map(|r| r.trust.to_string())
            .expect("a role op names a managed role")
    };
    match op {
        IamOp::CreateSamlProvider | IamOp::UpdateSamlProvider => {
            iam.put_saml_provider(&d.account, &d.provider, metadata, provider_exists)
                .await
        }
        IamOp::CreateRole { role } => iam.create_role(&d.account, role, &trust_of(role)).await,
        IamOp::UpdateTrust { role } => iam.update_trust(&d.account, role, &trust_of(role)).await,
        IamOp::AttachPolicy { role, policy } => iam.attach(&d.account, role, policy).await,
        IamOp::DetachPolicy { role, policy } => iam.detach(&d.account, role, policy).await,
    }
}

fn operation(op: &IamOp) -> &'static str {
    match op {
        IamOp::CreateSamlProvider => "iam:CreateSAMLProvider",
        IamOp::UpdateSamlProvider => "iam:UpdateSAMLProvider",
        IamOp::CreateRole { .. } => "iam:CreateRole",
        IamOp::UpdateTrust { .. } => "iam:UpdateAssumeRolePolicy",
        IamOp::AttachPolicy { .. } => "iam:AttachRolePolicy",
        IamOp::DetachPolicy { .. } => "iam:DetachRolePolicy",
    }
}

/// The meshIdB phase of a run, from configuration. Does nothing without `mesh-idb`.
pub async fn iam_phase(
    config: &Config,
    snapshot: &crate::snapshot::Snapshot,
    ids: &BTreeMap<ProjectKey, String>,
    dry_run: bool,
    audit: &Audit,
    observer: Option<std::sync::Arc<dyn crate::metrics::RequestObserver>>,
) -> Result<IamReport, AccountError> {
    if config.mesh_idb.is_none() {
        return Ok(IamReport::default());
    }
    let settings = &config.replicator.mesh_idb;
    let metadata = settings
        .idp_metadata
        .as_deref()
        .expect("validation requires the metadata with mesh-idb");
    let desired = super::desired_iam(snapshot, config, ids);
    let iam = AwsLanding::new(config, crate::aws::AssumedRole::management(config)?)?
        .with_observer(observer);
    Ok(reconcile(
        &desired,
        &iam,
        metadata,
        settings.detach_extra_policies,
        dry_run,
        &config.platform,
        audit,
    )
    .await)
}

/// IAM returns policy documents URL-encoded (RFC 3986).
fn decode_policy(document: &str) -> serde_json::Value {
    let decoded = percent_encoding::percent_decode_str(document).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or(serde_json::Value::Null)
}

impl AccountIam for AwsLanding {
    async fn saml_provider(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<String>, AccountError> {
        let iam = self.iam(account)?;
        // Read by its ARN: ListSAMLProviders cannot be limited to a resource, and the
        // downgraded access role may only touch `saml-provider/*`.
        let arn = crate::aws::provider_arn(self.partition(), account, name);
        let answer = self
            .paced("iam:GetSAMLProvider", || {
                iam.get_saml_provider().saml_provider_arn(&arn).send()
            })
            .await;
        match answer {
            Ok(provider) => Ok(Some(
                provider
                    .saml_metadata_document()
                    .unwrap_or_default()
                    .to_owned(),
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_error("iam:GetSAMLProvider", self.region())(e)),
        }
    }

    async fn put_saml_provider(
        &self,
        account: &str,
        name: &str,
        metadata: &str,
        exists: bool,
    ) -> Result<(), AccountError> {
        let iam = self.iam(account)?;
        if exists {
            let arn = crate::aws::provider_arn(self.partition(), account, name);
            self.write("iam:UpdateSAMLProvider", || {
                iam.update_saml_provider()
                    .saml_provider_arn(&arn)
                    .saml_metadata_document(metadata)
                    .send()
            })
            .await
        } else {
            self.write("iam:CreateSAMLProvider", || {
                iam.create_saml_provider()
                    .name(name)
                    .saml_metadata_document(metadata)
                    .send()
            })
            .await
        }
    }

    async fn role(&self, account: &str, name: &str) -> Result<Option<ObservedRole>, AccountError> {
        let iam = self.iam(account)?;
        let answer = self
            .paced("iam:GetRole", || iam.get_role().role_name(name).send())
            .await;
        let role = match answer {
            Ok(answer) => answer.role,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(aws_error("iam:GetRole", self.region())(e)),
        };
        let trust = role
            .as_ref()
            .and_then(|r| r.assume_role_policy_document())
            .map(decode_policy)
            .unwrap_or(serde_json::Value::Null);
        const LIST: &str = "iam:ListAttachedRolePolicies";
        let attached: BTreeSet<String> =
            crate::paging::all_pages(LIST, crate::paging::SMALL_MAX_PAGES, |marker| {
                let iam = &iam;
                async move {
                    let page = self
                        .paced(LIST, || {
                            iam.list_attached_role_policies()
                                .role_name(name)
                                .set_marker(marker.clone())
                                .send()
                        })
                        .await
                        .map_err(aws_error(LIST, self.region()))?;
                    let arns = page
                        .attached_policies()
                        .iter()
                        .filter_map(|p| p.policy_arn().map(str::to_owned));
                    let next = page
                        .marker()
                        .filter(|_| page.is_truncated())
                        .map(str::to_owned);
                    Ok::<_, AccountError>((arns.collect(), next))
                }
            })
            .await?
            .into_iter()
            .collect();
        Ok(Some(ObservedRole { trust, attached }))
    }

    async fn create_role(
        &self,
        account: &str,
        name: &str,
        trust: &str,
    ) -> Result<(), AccountError> {
        let iam = self.iam(account)?;
        self.write("iam:CreateRole", || {
            iam.create_role()
                .role_name(name)
                .assume_role_policy_document(trust)
                .description("meshIdB role, managed by aws-replicator")
                .send()
        })
        .await
    }

    async fn update_trust(
        &self,
        account: &str,
        name: &str,
        trust: &str,
    ) -> Result<(), AccountError> {
        let iam = self.iam(account)?;
        self.write("iam:UpdateAssumeRolePolicy", || {
            iam.update_assume_role_policy()
                .role_name(name)
                .policy_document(trust)
                .send()
        })
        .await
    }

    async fn attach(&self, account: &str, role: &str, policy: &str) -> Result<(), AccountError> {
        let iam = self.iam(account)?;
        self.write("iam:AttachRolePolicy", || {
            iam.attach_role_policy()
                .role_name(role)
                .policy_arn(policy)
                .send()
        })
        .await
    }

    async fn detach(&self, account: &str, role: &str, policy: &str) -> Result<(), AccountError> {
        let iam = self.iam(account)?;
        self.write("iam:DetachRolePolicy", || {
            iam.detach_role_policy()
                .role_name(role)
                .policy_arn(policy)
                .send()
        })
        .await
    }
}
