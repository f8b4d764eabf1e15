//! One pace for the AWS SDK calls of an API family: a rate limit that every caller of the
//! family shares, retries with the replicator's backoff (the SDK's own retries are off for these
//! clients, so that this policy governs and every request is counted), and each request and
//! retry reported to the metrics. sso-admin and IAM (meshIdB, account aliases) go through it;
//! every client's rate limiter is made by `limiter`.

use crate::metrics::{RequestObserver, Service};
use crate::retry::RetryPolicy;
use aws_sdk_ssoadmin::error::{ProvideErrorMetadata, SdkError};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct Paced {
    service: Service,
    limiter: DefaultDirectRateLimiter,
    policy: RetryPolicy,
    /// AWS error codes worth another try; timeouts and connection failures always are.
    retryable: &'static [&'static str],
    calls: AtomicU64,
    observer: Option<Arc<dyn RequestObserver>>,
    /// Where the family's requests go, for the message when AWS cannot be reached.
    endpoint: String,
}

/// sso-admin: throttling, a write conflicting with one in flight on the account, a server error.
pub const SSO_ADMIN_RETRYABLE: &[&str] = &[
    "ThrottlingException",
    "ConflictException",
    "InternalServerException",
];

/// IAM: throttling, a concurrent change to the same entity, a server error.
pub const IAM_RETRYABLE: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ConcurrentModification",
    "ServiceFailure",
    "InternalFailure",
];

/// A limiter that lets `requests_per_second` requests through, evenly spaced: the pace of every
/// client of an API family (SCIM, meshStack and the SDK clients here).
pub fn limiter(requests_per_second: f64) -> DefaultDirectRateLimiter {
    let period = Duration::from_secs_f64(1.0 / requests_per_second.max(0.001));
    RateLimiter::direct(Quota::with_period(period).expect("period is positive"))
}

impl Paced {
    pub fn new(
        service: Service,
        requests_per_second: f64,
        policy: RetryPolicy,
        retryable: &'static [&'static str],
    ) -> Self {
        Self {
            service,
            limiter: limiter(requests_per_second),
            policy,
            retryable,
            calls: AtomicU64::new(0),
            observer: None,
            endpoint: service.label().to_owned(),
        }
    }

    /// Names `endpoint` (see [`crate::aws::endpoint_label`]) in the errors of calls that
    /// could not reach it.
    pub fn with_endpoint(mut self, endpoint: String) -> Self {
        self.endpoint = endpoint;
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Requests sent so far, retries included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// AWS's retryable codes, timeouts, unreachable endpoints and unreadable answers are worth
    /// another try; a refusal is not, nor credentials that could not be had for a reason
    /// trying again does not change (AssumeRole denied: the role's trust policy or ExternalId).
    fn is_retryable<E, R>(&self, e: &SdkError<E, R>) -> bool
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        if let Some(failed) = crate::aws::assume_role_failure(e) {
            return failed.retryable;
        }
        match e {
            SdkError::ServiceError(s) => {
                s.err().code().is_some_and(|c| self.retryable.contains(&c))
            }
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            _ => false,
        }
    }

    /// Runs `call` under the rate limit, retrying what is retryable with backoff. The last
    /// error is returned as the SDK gave it, for the caller to read (not found, conflict, …).
    pub async fn call<T, E, R, F, Fut>(
        &self,
        operation: &str,
        mut call: F,
    ) -> Result<T, SdkError<E, R>>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: crate::aws::Answered + std::fmt::Debug + 'static,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    {
        let mut backoff = self.policy.backoff();
        loop {
            self.limiter.until_ready().await;
            // Right before sending: the rate-limit wait may have outlived this replica's lease.
            crate::fence::check(operation).map_err(SdkError::construction_failure)?;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let answer = call().await;
            if let Some(o) = &self.observer {
                let status = match &answer {
                    Ok(_) => "ok",
                    Err(SdkError::ServiceError(s)) => s.err().code().unwrap_or("error"),
                    Err(_) => "transport",
                };
                o.request(self.service, operation, status);
            }
            let e = match answer {
                Ok(v) => return Ok(v),
                Err(e) if self.is_retryable(&e) => e,
                Err(e) => return Err(e),
            };
            let Some(delay) = backoff.next() else {
                return Err(e);
            };
            if let Some(o) = &self.observer {
                o.retry(self.service, operation);
            }
            tracing::info!(
                service = self.service.label(),
                operation,
                delay_ms = delay.as_millis() as u64,
                error = %crate::aws::explain(operation, &self.endpoint, &e),
                "request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::error::ErrorMetadata;
    use aws_sdk_iam::operation::get_role::GetRoleError;

    fn failure(code: &str) -> SdkError<GetRoleError, ()> {
        SdkError::service_error(
            GetRoleError::generic(ErrorMetadata::builder().code(code).build()),
            (),
        )
    }

    fn paced(max_retries: usize) -> Paced {
        let policy = RetryPolicy {
            max_retries,
            ..RetryPolicy::aws()
        };
        Paced::new(Service::Iam, 1000.0, policy, IAM_RETRYABLE)
    }

    /// Answers with `codes` in turn, then succeeds.
    async fn run(paced: &Paced, codes: &[&str]) -> Result<u32, SdkError<GetRoleError, ()>> {
        let answers =
            std::sync::Mutex::new(codes.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        paced
            .call("iam:GetRole", || {
                let next = {
                    let mut left = answers.lock().unwrap();
                    (!left.is_empty()).then(|| left.remove(0))
                };
                async move {
                    match next {
                        Some(code) => Err(failure(&code)),
                        None => Ok(7),
                    }
                }
            })
            .await
    }

    /// Credentials that could not be had: a refused AssumeRole (trust policy, ExternalId) is
    /// not retried, STS throttled or unreachable is.
    #[tokio::test(start_paused = true)]
    async fn a_refused_assume_role_is_not_retried() {
        for (retryable, calls) in [(false, 1), (true, 3)] {
            let p = paced(2);
            let result: Result<(), _> = p
                .call("iam:GetRole", || async move {
                    let failed = crate::aws::AssumeRoleFailed {
                        message: "AWS denied sts:AssumeRole".into(),
                        retryable,
                    };
                    let credentials =
                        aws_credential_types::provider::error::CredentialsError::provider_error(
                            failed,
                        );
                    Err::<(), SdkError<GetRoleError, ()>>(SdkError::dispatch_failure(
                        aws_sdk_iam::error::ConnectorError::other(Box::new(credentials), None),
                    ))
                })
                .await;
            assert!(result.is_err());
            assert_eq!(p.calls(), calls, "retryable: {retryable}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_and_counted_and_a_refusal_is_not() {
        let p = paced(8);
        assert_eq!(run(&p, &["Throttling", "ServiceFailure"]).await.unwrap(), 7);
        assert_eq!(p.calls(), 3);

        let p = paced(8);
        let e = run(&p, &["NoSuchEntity"]).await.unwrap_err();
        assert_eq!(
            e.as_service_error().and_then(|e| e.code()),
            Some("NoSuchEntity")
        );
        assert_eq!(
            p.calls(),
            1,
            "not found is an answer, not a failure to retry"
        );

        let p = paced(2);
        let e = run(&p, &["Throttling"; 5]).await.unwrap_err();
        assert_eq!(
            e.as_service_error().and_then(|e| e.code()),
            Some("Throttling")
        );
        assert_eq!(p.calls(), 3, "two retries, then the error as AWS gave it");
    }
}
