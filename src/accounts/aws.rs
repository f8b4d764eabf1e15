//! The two backends of account provisioning, as small traits, and their AWS implementations:
//! [`Organization`] (the management account's Organizations API) and [`Landing`] (what happens
//! in and for one member account: its alias and access stack through its access role, its
//! StackSet instances and the Lambda through the automation account).

use super::{CreateStatus, OrgAccount};
use crate::aws::{AssumedRole, AwsError};
use crate::config::{Config, StackSetTarget};
use crate::paging::{ORGANIZATIONS_MAX_PAGES, SMALL_MAX_PAGES};
use aws_sdk_sts::error::ProvideErrorMetadata;
use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{operation}: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
    /// Something the replicator will not do, with the reason and fix.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Setup(#[from] AwsError),
}

/// A failed AWS call as an [`AccountError`]: one sentence from [`crate::aws::what_failed`]
/// (AWS's code, status and request id, or the endpoint that could not be reached in `region`,
/// or the role whose credentials were refused), never the SDK's `Debug` form.
pub(crate) fn aws_error<E, R>(
    operation: &'static str,
    region: &str,
) -> impl FnOnce(aws_sdk_sts::error::SdkError<E, R>) -> AccountError + use<E, R>
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + StdError + 'static,
    R: crate::aws::Answered + std::fmt::Debug + 'static,
{
    let region = region.to_owned();
    move |e| {
        let service = match operation.split_once(':').map_or("", |(s, _)| s) {
            "organizations" => "ORGANIZATIONS",
            "iam" => "IAM",
            "cloudformation" => "CLOUDFORMATION",
            "lambda" => "LAMBDA",
            "sts" => "STS",
            _ => "",
        };
        AccountError::Aws {
            operation,
            message: crate::aws::what_failed(&crate::aws::endpoint_label(service, &region), &e),
        }
    }
}

impl From<crate::paging::PagingError> for AccountError {
    fn from(e: crate::paging::PagingError) -> Self {
        AccountError::Refused(e.to_string())
    }
}

/// An answer without the one thing the operation exists to return.
pub(crate) fn incomplete(operation: &'static str, message: impl Into<String>) -> AccountError {
    AccountError::Aws {
        operation,
        message: message.into(),
    }
}

/// The management account's view of the organization.
#[allow(async_fn_in_trait)]
pub trait Organization {
    async fn accounts(&self) -> Result<Vec<OrgAccount>, AccountError>;
    async fn parent(&self, account: &str) -> Result<String, AccountError>;
    async fn tags(&self, account: &str) -> Result<BTreeMap<String, String>, AccountError>;
    async fn tag(&self, account: &str, tags: &BTreeMap<String, String>)
    -> Result<(), AccountError>;
    /// Starts a creation; returns its request id.
    async fn create_account(
        &self,
        email: &str,
        name: &str,
        role: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AccountError>;
    async fn create_status(&self, request: &str) -> Result<CreateStatus, AccountError>;
    async fn root(&self) -> Result<String, AccountError>;
    /// The OUs directly below `parent`, as (id, name).
    async fn child_ous(&self, parent: &str) -> Result<Vec<(String, String)>, AccountError>;
    async fn create_ou(&self, parent: &str, name: &str) -> Result<String, AccountError>;
    async fn move_account(&self, account: &str, from: &str, to: &str) -> Result<(), AccountError>;
}

/// What happens in and for one member account.
#[allow(async_fn_in_trait)]
pub trait Landing {
    async fn alias(&self, account: &str) -> Result<Option<String>, AccountError>;
    async fn set_alias(&self, account: &str, alias: &str) -> Result<(), AccountError>;
    /// Creates or updates the stack and waits until it is complete.
    async fn deploy_stack(
        &self,
        account: &str,
        name: &str,
        template: &str,
    ) -> Result<(), AccountError>;
    /// Creates the set's missing instances for the account and waits for the operation.
    async fn stack_instances(
        &self,
        account: &str,
        set: &StackSetTarget,
    ) -> Result<(), AccountError>;
    /// Invokes the function with `{"AccountId": account}`; a function error is an error.
    async fn invoke(&self, function: &str, account: &str) -> Result<(), AccountError>;
}

/// How long the replicator waits for a stack or a StackSet operation in one run.
const STACK_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Polls `check` with capped exponential backoff until it returns `Some`, or `limit` passed.
pub(crate) async fn poll<T, F, Fut>(
    limit: Duration,
    mut check: F,
) -> Result<Option<T>, AccountError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, AccountError>>,
{
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        if let Some(done) = check().await? {
            return Ok(Some(done));
        }
        if start.elapsed() + delay > limit {
            return Ok(None);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}

pub struct AwsOrganization {
    client: aws_sdk_organizations::Client,
    region: String,
}

impl AwsOrganization {
    /// Organizations through `management` (the management-account role).
    pub fn new(management: AssumedRole) -> Result<Self, AccountError> {
        Ok(Self {
            region: management.region().to_owned(),
            client: crate::aws::organizations(management)?,
        })
    }
}

impl Organization for AwsOrganization {
    async fn accounts(&self) -> Result<Vec<OrgAccount>, AccountError> {
        const OPERATION: &str = "organizations:ListAccounts";
        crate::paging::all_pages(OPERATION, ORGANIZATIONS_MAX_PAGES, |token| async move {
            let page = self
                .client
                .list_accounts()
                .set_next_token(token)
                .send()
                .await
                .map_err(aws_error(OPERATION, &self.region))?;
            let accounts = page.accounts().iter().map(|a| {
                #[allow(deprecated)]
                let status = a
                    .state()
                    .map(|s| s.as_str().to_owned())
                    .or_else(|| a.status().map(|s| s.as_str().to_owned()))
                    .unwrap_or_default();
                OrgAccount {
                    id: a.id().unwrap_or_default().to_owned(),
                    email: a.email().unwrap_or_default().to_owned(),
                    name: a.name().unwrap_or_default().to_owned(),
                    status,
                }
            });
            Ok((accounts.collect(), page.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn parent(&self, account: &str) -> Result<String, AccountError> {
        let answer = self
            .client
            .list_parents()
            .child_id(account)
            .send()
            .await
            .map_err(aws_error("organizations:ListParents", &self.region))?;
        answer
            .parents()
            .first()
            .and_then(|p| p.id())
            .ok_or_else(|| {
                incomplete(
                    "organizations:ListParents",
                    format!("account {account} has no parent"),
                )
            })
            .map(str::to_owned)
    }

    async fn tags(&self, account: &str) -> Result<BTreeMap<String, String>, AccountError> {
        const OPERATION: &str = "organizations:ListTagsForResource";
        let tags =
            crate::paging::all_pages(OPERATION, ORGANIZATIONS_MAX_PAGES, |token| async move {
                let page = self
                    .client
                    .list_tags_for_resource()
                    .resource_id(account)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(aws_error(OPERATION, &self.region))?;
                let tags = page
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()));
                Ok::<_, AccountError>((tags.collect(), page.next_token().map(str::to_owned)))
            })
            .await?;
        Ok(tags.into_iter().collect())
    }

    async fn tag(
        &self,
        account: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), AccountError> {
        self.client
            .tag_resource()
            .resource_id(account)
            .set_tags(Some(org_tags(tags)?))
            .send()
            .await
            .map_err(aws_error("organizations:TagResource", &self.region))?;
        Ok(())
    }

    async fn create_account(
        &self,
        email: &str,
        name: &str,
        role: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AccountError> {
        let answer = self
            .client
            .create_account()
            .email(email)
            .account_name(name)
            .role_name(role)
            .set_tags(Some(org_tags(tags)?))
            .send()
            .await
            .map_err(aws_error("organizations:CreateAccount", &self.region))?;
        answer
            .create_account_status()
            .and_then(|s| s.id())
            .ok_or_else(|| incomplete("organizations:CreateAccount", "no request id in the answer"))
            .map(str::to_owned)
    }

    async fn create_status(&self, request: &str) -> Result<CreateStatus, AccountError> {
        use aws_sdk_organizations::types::CreateAccountState;
        let answer = self
            .client
            .describe_create_account_status()
            .create_account_request_id(request)
            .send()
            .await
            .map_err(aws_error(
                "organizations:DescribeCreateAccountStatus",
                &self.region,
            ))?;
        let status = answer.create_account_status();
        Ok(match status.and_then(|s| s.state()) {
            Some(CreateAccountState::Succeeded) => CreateStatus::Succeeded {
                account: status
                    .and_then(|s| s.account_id())
                    .unwrap_or_default()
                    .to_owned(),
            },
            Some(CreateAccountState::Failed) => CreateStatus::Failed {
                reason: status
                    .and_then(|s| s.failure_reason())
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_else(|| "UNKNOWN".into()),
            },
            _ => CreateStatus::InProgress,
        })
    }

    async fn root(&self) -> Result<String, AccountError> {
        let answer = self
            .client
            .list_roots()
            .send()
            .await
            .map_err(aws_error("organizations:ListRoots", &self.region))?;
        answer
            .roots()
            .first()
            .and_then(|r| r.id())
            .ok_or_else(|| incomplete("organizations:ListRoots", "the organization has no root"))
            .map(str::to_owned)
    }

    async fn child_ous(&self, parent: &str) -> Result<Vec<(String, String)>, AccountError> {
        const OPERATION: &str = "organizations:ListOrganizationalUnitsForParent";
        crate::paging::all_pages(OPERATION, ORGANIZATIONS_MAX_PAGES, |token| async move {
            let page = self
                .client
                .list_organizational_units_for_parent()
                .parent_id(parent)
                .set_next_token(token)
                .send()
                .await
                .map_err(aws_error(OPERATION, &self.region))?;
            let ous = page.organizational_units().iter().map(|ou| {
                (
                    ou.id().unwrap_or_default().to_owned(),
                    ou.name().unwrap_or_default().to_owned(),
                )
            });
            Ok((ous.collect(), page.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn create_ou(&self, parent: &str, name: &str) -> Result<String, AccountError> {
        let answer = self
            .client
            .create_organizational_unit()
            .parent_id(parent)
            .name(name)
            .send()
            .await
            .map_err(aws_error(
                "organizations:CreateOrganizationalUnit",
                &self.region,
            ))?;
        answer
            .organizational_unit()
            .and_then(|ou| ou.id())
            .ok_or_else(|| {
                incomplete(
                    "organizations:CreateOrganizationalUnit",
                    "no OU id in the answer",
                )
            })
            .map(str::to_owned)
    }

    async fn move_account(&self, account: &str, from: &str, to: &str) -> Result<(), AccountError> {
        self.client
            .move_account()
            .account_id(account)
            .source_parent_id(from)
            .destination_parent_id(to)
            .send()
            .await
            .map_err(aws_error("organizations:MoveAccount", &self.region))?;
        Ok(())
    }
}

fn org_tags(
    tags: &BTreeMap<String, String>,
) -> Result<Vec<aws_sdk_organizations::types::Tag>, AccountError> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_organizations::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| AccountError::Refused(format!("tag {k}: {e}")))
        })
        .collect()
}

/// Member accounts through their access role (assumed by the management role), and the
/// automation account's StackSets and Lambda.
pub struct AwsLanding {
    region: String,
    management: AssumedRole,
    access_role: String,
    external_id: Option<crate::secret::Secret>,
    automation_cfn: aws_sdk_cloudformation::Client,
    lambda: aws_sdk_lambda::Client,
    /// The member-account clients of this run, one credential cache per account.
    members: std::sync::Mutex<BTreeMap<String, Member>>,
    /// Every IAM call in every member account, at `rate-limits.iam` together.
    iam_pace: crate::paced::Paced,
}

#[derive(Clone)]
struct Member {
    iam: aws_sdk_iam::Client,
    cfn: aws_sdk_cloudformation::Client,
}

impl AwsLanding {
    /// Member accounts through `management`'s chain; the automation account's role from config.
    pub fn new(config: &Config, management: AssumedRole) -> Result<Self, AccountError> {
        let automation = AssumedRole::automation(config)?;
        Ok(Self {
            region: config.aws.region.clone(),
            management,
            access_role: config
                .aws
                .account_access_role
                .clone()
                .unwrap_or_else(|| super::DEFAULT_ACCESS_ROLE.to_owned()),
            external_id: config.aws.organization_root_account_external_id.clone(),
            automation_cfn: crate::aws::cloudformation(automation.clone())?,
            lambda: crate::aws::lambda(automation)?,
            members: Default::default(),
            iam_pace: crate::paced::Paced::new(
                crate::metrics::Service::Iam,
                config.replicator.rate_limits.iam,
                crate::retry::RetryPolicy::aws(),
                crate::paced::IAM_RETRYABLE,
            ),
        })
    }

    /// Reports every IAM request and retry to `observer` (the metrics).
    pub fn with_observer(
        mut self,
        observer: Option<std::sync::Arc<dyn crate::metrics::RequestObserver>>,
    ) -> Self {
        if let Some(o) = observer {
            self.iam_pace = self.iam_pace.with_observer(o);
        }
        self
    }

    /// An IAM call, paced and retried with every other (the IAM client's own retries are off).
    pub(crate) async fn paced<T, E, R, F, Fut>(
        &self,
        operation: &str,
        call: F,
    ) -> Result<T, aws_sdk_iam::error::SdkError<E, R>>
    where
        E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: crate::aws::Answered + std::fmt::Debug + 'static,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, aws_sdk_iam::error::SdkError<E, R>>>,
    {
        self.iam_pace.call(operation, call).await
    }

    /// An IAM write whose answer holds nothing the replicator needs.
    pub(crate) async fn write<T, E, R, F, Fut>(
        &self,
        operation: &'static str,
        call: F,
    ) -> Result<(), AccountError>
    where
        E: aws_sdk_iam::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: crate::aws::Answered + std::fmt::Debug + 'static,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, aws_sdk_iam::error::SdkError<E, R>>>,
    {
        self.paced(operation, call)
            .await
            .map(|_| ())
            .map_err(aws_error(operation, &self.region))
    }

    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    pub(crate) fn partition(&self) -> &'static str {
        crate::aws::partition(&self.region)
    }

    /// IAM in `account`, through its access role.
    pub(crate) fn iam(&self, account: &str) -> Result<aws_sdk_iam::Client, AccountError> {
        Ok(self.member(account)?.iam)
    }

    fn member(&self, account: &str) -> Result<Member, AccountError> {
        let mut members = self.members.lock().expect("member clients lock");
        if let Some(m) = members.get(account) {
            return Ok(m.clone());
        }
        let arn = crate::aws::role_arn(self.partition(), account, &self.access_role);
        let role = self.management.chain(
            &arn,
            self.external_id.as_ref(),
            "aws.organizationRootAccountExternalId",
        )?;
        let m = Member {
            iam: crate::aws::iam(role.clone())?,
            cfn: crate::aws::cloudformation(role)?,
        };
        members.insert(account.to_owned(), m.clone());
        Ok(m)
    }
}

impl Landing for AwsLanding {
    async fn alias(&self, account: &str) -> Result<Option<String>, AccountError> {
        let iam = self.member(account)?.iam;
        let answer = self
            .paced("iam:ListAccountAliases", || {
                iam.list_account_aliases().send()
            })
            .await
            .map_err(aws_error("iam:ListAccountAliases", &self.region))?;
        Ok(answer.account_aliases().first().cloned())
    }

    async fn set_alias(&self, account: &str, alias: &str) -> Result<(), AccountError> {
        let iam = self.member(account)?.iam;
        self.paced("iam:CreateAccountAlias", || {
            iam.create_account_alias().account_alias(alias).send()
        })
        .await
        .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_already_exists_exception())
                {
                    AccountError::Refused(format!(
                        "iam:CreateAccountAlias: the alias {alias:?} is taken by another AWS account; fix: change aws.accountAliasPattern (aliases are unique across all of AWS, so a company prefix helps)"
                    ))
                } else {
                    aws_error("iam:CreateAccountAlias", &self.region)(e)
                }
            })?;
        Ok(())
    }

    async fn deploy_stack(
        &self,
        account: &str,
        name: &str,
        template: &str,
    ) -> Result<(), AccountError> {
        use aws_sdk_cloudformation::types::Capability;
        let cfn = self.member(account)?.cfn;
        let existing = stack_status(&cfn, name, &self.region).await?;
        let capabilities = [Capability::CapabilityNamedIam, Capability::CapabilityIam];
        match existing.as_deref() {
            None => {
                cfn.create_stack()
                    .stack_name(name)
                    .template_body(template)
                    .set_capabilities(Some(capabilities.to_vec()))
                    .send()
                    .await
                    .map_err(aws_error("cloudformation:CreateStack", &self.region))?;
            }
            Some("ROLLBACK_COMPLETE") => {
                return Err(AccountError::Refused(format!(
                    "access stack {name} in account {account} is ROLLBACK_COMPLETE (its creation failed); fix: read its events, delete the stack, and run again"
                )));
            }
            Some(_) => {
                let updated = cfn
                    .update_stack()
                    .stack_name(name)
                    .template_body(template)
                    .set_capabilities(Some(capabilities.to_vec()))
                    .send()
                    .await;
                if let Err(e) = updated {
                    let message = e.as_service_error().and_then(|s| s.message());
                    if message.is_some_and(|m| m.contains("No updates are to be performed")) {
                        return Ok(());
                    }
                    return Err(aws_error("cloudformation:UpdateStack", &self.region)(e));
                }
            }
        }
        let done = poll(STACK_TIMEOUT, || {
            let cfn = cfn.clone();
            async move {
                Ok(
                    match stack_status(&cfn, name, &self.region).await?.as_deref() {
                        Some(s) if s.ends_with("_IN_PROGRESS") => None,
                        Some(s) => Some(s.to_owned()),
                        None => Some("DELETED".to_owned()),
                    },
                )
            }
        })
        .await?;
        match done.as_deref() {
            Some("CREATE_COMPLETE" | "UPDATE_COMPLETE") => Ok(()),
            Some(other) => Err(AccountError::Refused(format!(
                "access stack {name} in account {account} ended {other}; fix: read the stack's events in the account and correct the template"
            ))),
            None => Err(AccountError::Refused(format!(
                "access stack {name} in account {account} is still in progress after {} minutes; the next run checks again",
                STACK_TIMEOUT.as_secs() / 60
            ))),
        }
    }

    async fn stack_instances(
        &self,
        account: &str,
        set: &StackSetTarget,
    ) -> Result<(), AccountError> {
        use aws_sdk_cloudformation::types::StackSetOperationStatus as Op;
        let cfn = &self.automation_cfn;
        const LIST: &str = "cloudformation:ListStackInstances";
        let have: std::collections::BTreeSet<String> =
            crate::paging::all_pages(LIST, SMALL_MAX_PAGES, |token| async move {
                let page = cfn
                    .list_stack_instances()
                    .stack_set_name(&set.name)
                    .stack_instance_account(account)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(aws_error(LIST, &self.region))?;
                let regions = page
                    .summaries()
                    .iter()
                    .filter(|i| i.account() == Some(account))
                    .filter_map(|i| i.region().map(str::to_owned));
                Ok::<_, AccountError>((regions.collect(), page.next_token().map(str::to_owned)))
            })
            .await?
            .into_iter()
            .collect();
        let missing: Vec<String> = set
            .regions
            .iter()
            .filter(|r| !have.contains(*r))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let answer = cfn
            .create_stack_instances()
            .stack_set_name(&set.name)
            .accounts(account)
            .set_regions(Some(missing))
            .send()
            .await
            .map_err(aws_error(
                "cloudformation:CreateStackInstances",
                &self.region,
            ))?;
        let operation = answer.operation_id().unwrap_or_default().to_owned();
        let status = poll(STACK_TIMEOUT, || {
            let (cfn, operation) = (cfn.clone(), operation.clone());
            async move {
                let answer = cfn
                    .describe_stack_set_operation()
                    .stack_set_name(&set.name)
                    .operation_id(&operation)
                    .send()
                    .await
                    .map_err(aws_error(
                        "cloudformation:DescribeStackSetOperation",
                        &self.region,
                    ))?;
                Ok(
                    match answer.stack_set_operation().and_then(|o| o.status()) {
                        Some(Op::Running | Op::Queued | Op::Stopping) | None => None,
                        Some(done) => Some(done.clone()),
                    },
                )
            }
        })
        .await?;
        match status {
            Some(Op::Succeeded) => Ok(()),
            Some(other) => Err(AccountError::Refused(format!(
                "StackSet {} operation {operation} for account {account} ended {}; fix: read the operation's results in the automation account",
                set.name,
                other.as_str()
            ))),
            None => Err(AccountError::Refused(format!(
                "StackSet {} operation {operation} for account {account} still runs; the next run checks again",
                set.name
            ))),
        }
    }

    async fn invoke(&self, function: &str, account: &str) -> Result<(), AccountError> {
        let payload = serde_json::json!({ "AccountId": account }).to_string();
        let answer = self
            .lambda
            .invoke()
            .function_name(function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(aws_error("lambda:Invoke", &self.region))?;
        let body = answer
            .payload()
            .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
            .unwrap_or_default();
        lambda_result(answer.function_error(), &body).map_err(|problem| {
            AccountError::Refused(format!(
                "lambda:Invoke {function} for account {account}: {problem}"
            ))
        })
    }
}

/// What a Lambda's answer says: a function error, or a `statusCode` outside 2xx (the guide's
/// Lambda answers `{"statusCode": 200, …}`; one that says otherwise failed without raising).
pub(crate) fn lambda_result(function_error: Option<&str>, body: &str) -> Result<(), String> {
    let short = || body.chars().take(500).collect::<String>();
    if let Some(kind) = function_error {
        return Err(format!("the function failed ({kind}): {}", short()));
    }
    let status = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("statusCode").and_then(serde_json::Value::as_u64));
    match status {
        Some(code) if !(200..300).contains(&code) => Err(format!(
            "the function answered statusCode {code}: {}",
            short()
        )),
        _ => Ok(()),
    }
}

async fn stack_status(
    cfn: &aws_sdk_cloudformation::Client,
    name: &str,
    region: &str,
) -> Result<Option<String>, AccountError> {
    match cfn.describe_stacks().stack_name(name).send().await {
        Ok(answer) => Ok(answer
            .stacks()
            .first()
            .and_then(|s| s.stack_status())
            .map(|s| s.as_str().to_owned())),
        Err(e) => {
            let message = e.as_service_error().and_then(|s| s.message());
            if message.is_some_and(|m| m.contains("does not exist")) {
                Ok(None)
            } else {
                Err(aws_error("cloudformation:DescribeStacks", region)(e))
            }
        }
    }
}
