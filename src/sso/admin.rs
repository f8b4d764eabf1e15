//! sso-admin: account assignments of our groups. Creates and deletes are asynchronous: each
//! write is followed by polling its status until SUCCEEDED or FAILED (AWS's reason reported).
//! Throttling, conflicts (another write to the account still propagating) and server errors
//! are retried with capped, jittered backoff; other errors are not.

use crate::aws::Answered;
use crate::directory::{AccountAssignments, DirectoryError, Receipt};
use crate::metrics::{RequestObserver, Service};
use crate::model::{AccountId, GroupId, PermissionSetArn};
use crate::observed::Assignment;
use crate::paced::{Paced, SSO_ADMIN_RETRYABLE};
use crate::paging::{SSO_ADMIN_MAX_PAGES, all_pages};
use aws_sdk_ssoadmin::Client;
use aws_sdk_ssoadmin::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssoadmin::types::{
    AccountAssignmentOperationStatus, PrincipalType, StatusValues, TargetType,
};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Polling {
    /// Wait before the first status check until operations have been timed, and between
    /// checks (doubling up to `max`). Once operations have settled, the first check comes a
    /// little before the time they have been taking (down to a tenth of `first`).
    pub first: Duration,
    pub max: Duration,
    /// Give up on an operation after this long (status checks that AWS answers "not found"
    /// right after the write count as waiting, within this budget).
    pub timeout: Duration,
    pub max_retries: usize,
}

impl Default for Polling {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
            timeout: Duration::from_secs(600),
            max_retries: 8,
        }
    }
}

pub struct SsoAdmin {
    client: Client,
    instance_arn: String,
    paced: Paced,
    polling: Polling,
    /// Whether in-flight operations are polled together with
    /// ListAccountAssignment{Creation,Deletion}Status (beyond the seed's policy).
    batch_status: bool,
    /// The operations last seen IN_PROGRESS: creations, deletions.
    boards: [tokio::sync::Mutex<Board>; 2],
    /// How long operations have been taking to settle (weighted to the recent ones).
    settling: std::sync::Mutex<Duration>,
    /// A call succeeded: the management role, its ExternalId and its policy work.
    proven: std::sync::atomic::AtomicBool,
}

/// One batch listing of the operations IN_PROGRESS, shared by everyone waiting.
#[derive(Default)]
struct Board {
    checked: Option<tokio::time::Instant>,
    in_progress: std::collections::HashSet<String>,
}

/// An sso-admin error: AWS's answer (code, message, HTTP status, request id) as
/// [`DirectoryError::Aws`], anything else (AWS unreachable, credentials refused) as one
/// sentence from [`crate::aws::explain`].
fn aws_error<E, R>(operation: &str, endpoint: &str, e: &SdkError<E, R>) -> DirectoryError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: Answered + std::fmt::Debug + 'static,
{
    match e {
        SdkError::ServiceError(s) => DirectoryError::Aws {
            operation: operation.to_owned(),
            status: e.raw_response().and_then(Answered::status).unwrap_or(400),
            detail: format!(
                "{}: {}",
                s.err().code().unwrap_or("error"),
                s.err().message().unwrap_or_default()
            ),
            request_id: crate::aws::request_id(e),
        },
        other => DirectoryError::Transport {
            operation: operation.to_owned(),
            message: crate::aws::what_failed(endpoint, other),
        },
    }
}

impl SsoAdmin {
    pub fn new(
        client: Client,
        instance_arn: &str,
        requests_per_second: f64,
        polling: Polling,
    ) -> Self {
        let retries = crate::retry::RetryPolicy {
            max_retries: polling.max_retries,
            min_delay: polling.first,
            max_delay: polling.max,
            max_retry_after: polling.max,
        };
        let region = client.config().region().map_or("us-east-1", |r| r.as_ref());
        let endpoint = crate::aws::endpoint_label("SSO_ADMIN", region);
        Self {
            instance_arn: instance_arn.to_owned(),
            paced: Paced::new(
                Service::SsoAdmin,
                requests_per_second,
                retries,
                SSO_ADMIN_RETRYABLE,
            )
            .with_endpoint(endpoint),
            client,
            settling: std::sync::Mutex::new(polling.first),
            proven: std::sync::atomic::AtomicBool::new(false),
            polling,
            batch_status: false,
            boards: Default::default(),
        }
    }

    /// Reports every request and retry to `observer` (the metrics).
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.paced = self.paced.with_observer(observer);
        self
    }

    /// Names `endpoint` in the errors of requests that could not reach it (by default the
    /// `AWS_ENDPOINT_URL_SSO_ADMIN` override or AWS's endpoint for the client's region, which
    /// is where a client from `crate::aws::sso_admin` sends them).
    pub fn with_endpoint(mut self, endpoint: String) -> Self {
        self.paced = self.paced.with_endpoint(endpoint);
        self
    }

    /// Polls in-flight operations with one status listing per interval for all of them (aws-sso.md
    /// §D.2) instead of one Describe each; each operation is still confirmed with one Describe
    /// once the listing no longer shows it. Needs `sso:ListAccountAssignmentCreationStatus` and
    /// `…DeletionStatus`.
    pub fn with_batch_status(mut self, on: bool) -> Self {
        self.batch_status = on;
        self
    }

    /// An operation whose first status check came after `waited` settled by then (`factor`
    /// below 1: the wait may shorten to `waited × factor`) or not (above 1: it lengthens to at
    /// least that). Taken from the operation's own wait, not the current one, so that
    /// operations checked together do not compound their changes.
    fn adjust_settling(&self, waited: Duration, factor: f64) {
        let proposed = waited
            .mul_f64(factor)
            .clamp(self.polling.first / 10, self.polling.max);
        let mut settling = self.settling.lock().expect("settling lock");
        *settling = if factor < 1.0 {
            (*settling).min(proposed)
        } else {
            (*settling).max(proposed)
        };
    }

    /// Whether the latest batch listing shows `id` IN_PROGRESS. The listing is shared while it
    /// is younger than one polling interval and younger than the operation (`since`).
    async fn listed_in_progress(
        &self,
        create: bool,
        id: &str,
        since: tokio::time::Instant,
    ) -> Result<bool, DirectoryError> {
        let mut board = self.boards[usize::from(!create)].lock().await;
        if board
            .checked
            .is_none_or(|t| t < since || t.elapsed() >= self.polling.first)
        {
            // Stamped with when the listing began: an operation that settles while it is in
            // flight may be missing from it, so it must not count as newer than that operation.
            let began = tokio::time::Instant::now();
            board.in_progress = self.list_in_progress(create).await?;
            board.checked = Some(began);
        }
        Ok(board.in_progress.contains(id))
    }

    async fn list_in_progress(
        &self,
        create: bool,
    ) -> Result<std::collections::HashSet<String>, DirectoryError> {
        let filter = aws_sdk_ssoadmin::types::OperationStatusFilter::builder()
            .status(StatusValues::InProgress)
            .build();
        let filter = &filter;
        let ids = if create {
            const LIST: &str = "ListAccountAssignmentCreationStatus";
            all_pages(LIST, SSO_ADMIN_MAX_PAGES, |token| async move {
                let page = self
                    .retried(LIST, || {
                        self.client
                            .list_account_assignment_creation_status()
                            .instance_arn(&self.instance_arn)
                            .filter(filter.clone())
                            .max_results(100)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                let ids = page
                    .account_assignments_creation_status()
                    .iter()
                    .filter_map(|s| s.request_id().map(str::to_owned));
                Ok::<(Vec<String>, _), DirectoryError>((
                    ids.collect(),
                    page.next_token().map(str::to_owned),
                ))
            })
            .await?
        } else {
            const LIST: &str = "ListAccountAssignmentDeletionStatus";
            all_pages(LIST, SSO_ADMIN_MAX_PAGES, |token| async move {
                let page = self
                    .retried(LIST, || {
                        self.client
                            .list_account_assignment_deletion_status()
                            .instance_arn(&self.instance_arn)
                            .filter(filter.clone())
                            .max_results(100)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await?;
                let ids = page
                    .account_assignments_deletion_status()
                    .iter()
                    .filter_map(|s| s.request_id().map(str::to_owned));
                Ok::<(Vec<String>, _), DirectoryError>((
                    ids.collect(),
                    page.next_token().map(str::to_owned),
                ))
            })
            .await?
        };
        Ok(ids.into_iter().collect())
    }

    /// Runs `call` under the rate limit, retrying what is retryable with backoff.
    async fn retried<T, E, R, F, Fut>(&self, operation: &str, call: F) -> Result<T, DirectoryError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: Answered + std::fmt::Debug + 'static,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    {
        let answer = self
            .paced
            .call(operation, call)
            .await
            .map_err(|e| aws_error(operation, self.paced.endpoint(), &e))?;
        self.proven
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(answer)
    }

    /// The principals assigned to `account` with `permission_set` (the seed policy's read).
    pub async fn principals_on(
        &self,
        account: &AccountId,
        permission_set: &PermissionSetArn,
    ) -> Result<Vec<(PrincipalType, String)>, DirectoryError> {
        const LIST: &str = "ListAccountAssignments";
        all_pages(LIST, SSO_ADMIN_MAX_PAGES, |token| async move {
            let page = self
                .retried(LIST, || {
                    self.client
                        .list_account_assignments()
                        .instance_arn(&self.instance_arn)
                        .account_id(account.as_str())
                        .permission_set_arn(permission_set.as_str())
                        .max_results(100)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            let principals = page.account_assignments().iter().filter_map(|a| {
                let (t, id) = (a.principal_type()?, a.principal_id()?);
                Some((t.clone(), id.to_owned()))
            });
            Ok((principals.collect(), page.next_token().map(str::to_owned)))
        })
        .await
    }

    /// Waits for an asynchronous operation to finish; FAILED becomes an error with AWS's reason.
    /// A status check that AWS answers with ResourceNotFoundException right after the write
    /// (eventual consistency: the request id is not known everywhere yet, aws-sso.md §C.1) counts
    /// as still IN_PROGRESS, within the same budget (`polling.timeout`).
    async fn settle(
        &self,
        operation: &str,
        mut status: AccountAssignmentOperationStatus,
        create: bool,
    ) -> Result<Receipt, DirectoryError> {
        // AWS does not document how long an operation takes (aws-sso.md §D.2). The first check
        // comes after the time operations have been taking: each that has settled by then
        // shortens it by 2 %, each that has not lengthens it by 25 %, so that most operations
        // need one check and the wait follows AWS down as well as up. One still IN_PROGRESS is
        // checked again after an eighth of that, then backs off doubling.
        let started = tokio::time::Instant::now();
        let settling = *self.settling.lock().expect("settling lock");
        let shortest = self.polling.first / 10;
        let first = settling.clamp(shortest, self.polling.max);
        let mut delay = first;
        let mut checks = 0;
        // The last status check that AWS answered with "not found", while it still does.
        let mut unknown: Option<DirectoryError> = None;
        loop {
            match status.status() {
                Some(StatusValues::Succeeded) => {
                    if checks == 1 {
                        self.adjust_settling(first, 0.98);
                    }
                    return Ok(Receipt {
                        request_id: status.request_id().map(str::to_owned),
                    });
                }
                Some(StatusValues::Failed) => {
                    return Err(DirectoryError::Aws {
                        operation: operation.to_owned(),
                        status: 200,
                        detail: format!(
                            "FAILED: {}",
                            status.failure_reason().unwrap_or("no reason given")
                        ),
                        request_id: status.request_id().map(str::to_owned),
                    });
                }
                _ => {}
            }
            let id = status.request_id().unwrap_or_default().to_owned();
            if started.elapsed() > self.polling.timeout {
                let timeout = self.polling.timeout;
                return Err(DirectoryError::Other(match unknown {
                    Some(e) => format!(
                        "{operation}: AWS still did not know request {id} after {timeout:?} of status checks ({e}); whether the change was made is unknown, the next run reads it again"
                    ),
                    None => format!("{operation}: still IN_PROGRESS after {timeout:?}"),
                }));
            }
            if checks == 1 {
                self.adjust_settling(first, 1.25);
            }
            tokio::time::sleep(delay).await;
            checks += 1;
            delay = if checks == 1 {
                (delay / 8).max(shortest)
            } else {
                (delay * 2).min(self.polling.max)
            };
            if self.batch_status && self.listed_in_progress(create, &id, started).await? {
                continue;
            }
            let described = if create {
                self.retried("DescribeAccountAssignmentCreationStatus", || {
                    self.client
                        .describe_account_assignment_creation_status()
                        .instance_arn(&self.instance_arn)
                        .account_assignment_creation_request_id(&id)
                        .send()
                })
                .await
                .map(|o| o.account_assignment_creation_status)
            } else {
                self.retried("DescribeAccountAssignmentDeletionStatus", || {
                    self.client
                        .describe_account_assignment_deletion_status()
                        .instance_arn(&self.instance_arn)
                        .account_assignment_deletion_request_id(&id)
                        .send()
                })
                .await
                .map(|o| o.account_assignment_deletion_status)
            };
            match described {
                Ok(Some(now)) => {
                    status = now;
                    unknown = None;
                }
                Ok(None) => {
                    return Err(DirectoryError::Other(format!(
                        "{operation}: the status answer is empty"
                    )));
                }
                Err(e) if is_not_found(&e) => {
                    tracing::debug!(operation, request = %id, "status not known yet; still waiting");
                    unknown = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// AWS answered ResourceNotFoundException.
fn is_not_found(e: &DirectoryError) -> bool {
    matches!(e, DirectoryError::Aws { detail, .. } if detail.starts_with("ResourceNotFoundException"))
}

impl AccountAssignments for SsoAdmin {
    fn calls_made(&self) -> u64 {
        self.paced.calls()
    }

    fn proven(&self) -> bool {
        self.proven.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// ListAccountAssignmentsForPrincipal: one call per group (needs
    /// `sso:ListAccountAssignmentsForPrincipal`, beyond the seed's policy).
    async fn assignments_of(
        &self,
        group: &GroupId,
    ) -> Result<Vec<(AccountId, PermissionSetArn)>, DirectoryError> {
        const LIST: &str = "ListAccountAssignmentsForPrincipal";
        all_pages(LIST, SSO_ADMIN_MAX_PAGES, |token| async move {
            let page = self
                .retried(LIST, || {
                    self.client
                        .list_account_assignments_for_principal()
                        .instance_arn(&self.instance_arn)
                        .principal_id(group.as_str())
                        .principal_type(PrincipalType::Group)
                        .max_results(100)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            let assignments = page.account_assignments().iter().filter_map(|a| {
                let (account, ps) = (a.account_id()?, a.permission_set_arn()?);
                Some((AccountId::from(account), PermissionSetArn::from(ps)))
            });
            Ok((assignments.collect(), page.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn groups_on(
        &self,
        account: &AccountId,
        permission_set: &PermissionSetArn,
    ) -> Result<Vec<GroupId>, DirectoryError> {
        Ok(self
            .principals_on(account, permission_set)
            .await?
            .into_iter()
            .filter(|(kind, _)| *kind == PrincipalType::Group)
            .map(|(_, id)| GroupId::from(id))
            .collect())
    }

    async fn create_assignment(&self, a: &Assignment) -> Result<Receipt, DirectoryError> {
        let status = self
            .retried("CreateAccountAssignment", || {
                self.client
                    .create_account_assignment()
                    .instance_arn(&self.instance_arn)
                    .target_id(a.account.as_str())
                    .target_type(TargetType::AwsAccount)
                    .permission_set_arn(a.permission_set.as_str())
                    .principal_type(PrincipalType::Group)
                    .principal_id(a.group.as_str())
                    .send()
            })
            .await?
            .account_assignment_creation_status
            .ok_or_else(|| {
                DirectoryError::Other("CreateAccountAssignment: the answer is empty".into())
            })?;
        self.settle("CreateAccountAssignment", status, true).await
    }

    /// A delete of an assignment that is already gone counts as done.
    async fn delete_assignment(&self, a: &Assignment) -> Result<Receipt, DirectoryError> {
        let answer = self
            .retried("DeleteAccountAssignment", || {
                self.client
                    .delete_account_assignment()
                    .instance_arn(&self.instance_arn)
                    .target_id(a.account.as_str())
                    .target_type(TargetType::AwsAccount)
                    .permission_set_arn(a.permission_set.as_str())
                    .principal_type(PrincipalType::Group)
                    .principal_id(a.group.as_str())
                    .send()
            })
            .await;
        let status = match answer {
            Ok(out) => out.account_assignment_deletion_status.ok_or_else(|| {
                DirectoryError::Other("DeleteAccountAssignment: the answer is empty".into())
            })?,
            Err(e) if is_not_found(&e) => return Ok(Receipt::default()),
            Err(e) => return Err(e),
        };
        self.settle("DeleteAccountAssignment", status, false).await
    }
}
