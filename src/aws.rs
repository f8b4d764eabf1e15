//! Reaching AWS as the seed describes: the `meshfedServiceUser` keys, from which the replicator
//! assumes the management-account role (`organizationRootAccountRole`, with its ExternalId) for
//! sso-admin and Organizations, the automation-account role (`automationAccountRole`, with its
//! ExternalId) for StackSets and the Lambda, and, through the management role, each member
//! account's access role. Endpoints come from AWS's own environment variables (`AWS_ENDPOINT_URL_<SERVICE>`,
//! then `AWS_ENDPOINT_URL`), for VPC endpoints, the emulator and test peers; plain http only
//! to loopback.

use crate::config::Config;
use crate::retry::error_chain;
use crate::secret::Secret;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{variable}={value:?}: {problem}; {fix}")]
    Endpoint {
        variable: String,
        value: String,
        problem: String,
        fix: &'static str,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsSetupError),
}

/// The endpoint override for one service, as the AWS SDKs read it from the environment.
pub fn endpoint(service_env: &str) -> Result<Option<String>, AwsError> {
    for variable in [
        format!("AWS_ENDPOINT_URL_{service_env}"),
        "AWS_ENDPOINT_URL".into(),
    ] {
        let Ok(value) = std::env::var(&variable) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let bad = |problem: &str| AwsError::Endpoint {
            variable: variable.clone(),
            value: value.clone(),
            problem: problem.to_owned(),
            fix: "use an https URL, or plain http to 127.0.0.1 / ::1 / localhost for test peers",
        };
        let url = url::Url::parse(&value).map_err(|e| bad(&e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if crate::config::is_loopback(&url) => {}
            "http" => return Err(bad("plain http to a remote host")),
            other => return Err(bad(&format!("scheme {other} is not http(s)"))),
        }
        return Ok(Some(value));
    }
    Ok(None)
}

/// The service user's long-lived keys.
fn service_user(config: &Config) -> Credentials {
    let user = &config.aws.meshfed_service_user;
    Credentials::new(
        user.access_key.expose(),
        user.secret_key.expose(),
        None,
        None,
        "meshfedServiceUser",
    )
}

/// An STS client that signs with `credentials`.
fn sts(
    region: &str,
    credentials: impl ProvideCredentials + 'static,
) -> Result<aws_sdk_sts::Client, AwsError> {
    // Every AWS client signs with an assumed role, so every one is built after this check.
    crate::tls::check("AWS")?;
    let mut builder = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .app_name(app_name())
        .region(aws_sdk_sts::config::Region::new(region.to_owned()))
        .credentials_provider(credentials);
    if let Some(url) = endpoint("STS")? {
        builder = builder.endpoint_url(url);
    }
    Ok(aws_sdk_sts::Client::from_conf(builder.build()))
}

/// Credentials of an assumed role, kept until five minutes before they expire and shared by
/// every clone: the clients of one role (Organizations and the member-account chain, or
/// CloudFormation and Lambda in the automation account) make one AssumeRole between them.
#[derive(Clone)]
pub struct AssumedRole {
    region: String,
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: Option<Secret>,
    /// The config field that holds `external_id`, for the error that names it.
    external_id_field: &'static str,
    /// Whose credentials sign the AssumeRole, for the error that blames them.
    signer: String,
    cached: std::sync::Arc<tokio::sync::Mutex<Cached>>,
}

/// The role's credentials while fresh, and a refusal for a short while: the requests that
/// waited for the same AssumeRole get its answer instead of each asking STS again.
#[derive(Default)]
struct Cached {
    credentials: Option<Credentials>,
    /// The last failure, when it happened, and when the failures began.
    refused: Option<Refused>,
}

struct Refused {
    at: std::time::Instant,
    since: std::time::Instant,
    failure: AssumeRoleFailed,
}

impl Refused {
    /// The failure as its waiters get it: once STS has failed for longer than
    /// [`FAILING_GIVE_UP`], no longer retryable, so that every request of the run gives up at
    /// once instead of each running out its own backoff.
    fn answer(&self) -> AssumeRoleFailed {
        let mut failure = self.failure.clone();
        if self.since.elapsed() >= FAILING_GIVE_UP {
            failure.retryable = false;
        }
        failure
    }
}

/// After this long of failing AssumeRole calls, the callers stop retrying.
const FAILING_GIVE_UP: Duration = Duration::from_secs(20);

/// How long a failed AssumeRole answers for itself: every request of a run waits on the same
/// credentials, and each asking STS again (or waiting out STS's own retries again) turned one
/// unreachable endpoint into minutes.
const REFUSAL_REMEMBERED: Duration = Duration::from_secs(10);

/// Names the role only: the STS client and the cached credentials hold keys.
impl std::fmt::Debug for AssumedRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumedRole")
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

/// Credentials this close to their expiry are asked for again.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

impl AssumedRole {
    /// The service user's keys assume `role_arn` with the ExternalId of `external_id_field`.
    fn from_service_user(
        config: &Config,
        role_arn: &str,
        external_id: Option<&Secret>,
        external_id_field: &'static str,
    ) -> Result<Self, AwsError> {
        Ok(Self {
            region: config.aws.region.clone(),
            sts: sts(&config.aws.region, service_user(config))?,
            role_arn: role_arn.to_owned(),
            external_id: external_id.cloned(),
            external_id_field,
            signer: "the service user's keys (aws.meshfedServiceUser)".into(),
            cached: Default::default(),
        })
    }

    /// The management-account role (`organizationRootAccountRole`).
    pub fn management(config: &Config) -> Result<Self, AwsError> {
        Self::from_service_user(
            config,
            &config.aws.organization_root_account_role,
            config.aws.organization_root_account_external_id.as_ref(),
            "aws.organizationRootAccountExternalId",
        )
    }

    /// The automation-account role (`automationAccountRole`).
    pub fn automation(config: &Config) -> Result<Self, AwsError> {
        Self::from_service_user(
            config,
            &config.aws.automation_account_role,
            config.aws.automation_account_external_id.as_ref(),
            "aws.automationAccountExternalId",
        )
    }

    /// This role's credentials assume `role_arn` in turn (management account → member
    /// account), with the ExternalId of `external_id_field`.
    pub fn chain(
        &self,
        role_arn: &str,
        external_id: Option<&Secret>,
        external_id_field: &'static str,
    ) -> Result<Self, AwsError> {
        Ok(Self {
            region: self.region.clone(),
            sts: sts(&self.region, self.clone())?,
            role_arn: role_arn.to_owned(),
            external_id: external_id.cloned(),
            external_id_field,
            signer: format!("the credentials of {}", self.role_arn),
            cached: Default::default(),
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    async fn assume(&self) -> provider::Result {
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_some_and(|expiry| expiry > std::time::SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        };
        if let Some(c) = cached.credentials.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        if let Some(refused) = cached
            .refused
            .as_ref()
            .filter(|r| r.at.elapsed() < REFUSAL_REMEMBERED)
        {
            return Err(CredentialsError::provider_error(refused.answer()));
        }
        match self.assume_now().await {
            Ok(credentials) => {
                cached.credentials = Some(credentials.clone());
                cached.refused = None;
                Ok(credentials)
            }
            Err(failure) => {
                // Unreachable or refused alike: the requests queued behind this one take its
                // answer (a retryable one is still retried by each caller, after its backoff).
                let now = std::time::Instant::now();
                let since = cached.refused.as_ref().map_or(now, |r| r.since);
                let refused = Refused {
                    at: now,
                    since,
                    failure,
                };
                let answer = refused.answer();
                cached.refused = Some(refused);
                Err(CredentialsError::provider_error(answer))
            }
        }
    }

    async fn assume_now(&self) -> Result<Credentials, AssumeRoleFailed> {
        let answer = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name("aws-replicator")
            .set_external_id(self.external_id.as_ref().map(|s| s.expose().to_owned()))
            .duration_seconds(3600)
            .send()
            .await
            .map_err(|e| self.refusal(&e))?;
        let c = answer.credentials().ok_or_else(|| AssumeRoleFailed {
            message: format!(
                "sts:AssumeRole into {} returned no credentials",
                self.role_arn
            ),
            retryable: false,
        })?;
        let expires = std::time::SystemTime::try_from(*c.expiration())
            .unwrap_or_else(|_| std::time::SystemTime::now() + Duration::from_secs(900));
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(expires),
            "aws-replicator:AssumeRole",
        ))
    }
}

impl AssumedRole {
    /// A failed AssumeRole as one sentence: what AWS said, and what to fix, by the kind of
    /// refusal. Throttling, server errors and unreachable STS may pass; a refusal does not, so
    /// it is never retried.
    fn refusal(
        &self,
        e: &SdkError<
            aws_sdk_sts::operation::assume_role::AssumeRoleError,
            aws_sdk_sts::config::http::HttpResponse,
        >,
    ) -> AssumeRoleFailed {
        let role = &self.role_arn;
        let Some(code) = e.as_service_error().and_then(|s| s.code()) else {
            let retryable = match e {
                SdkError::ConstructionFailure(_) => false,
                SdkError::ServiceError(_) => answered_status(e).is_some_and(|s| s >= 500),
                _ => true,
            };
            let operation = format!("sts:AssumeRole into {role}");
            return AssumeRoleFailed {
                message: explain(&operation, &endpoint_label("STS", &self.region), e),
                retryable,
            };
        };
        let said = answer(e);
        let external_id = match &self.external_id {
            Some(_) => format!(
                "requires the ExternalId that {} holds",
                self.external_id_field
            ),
            None => format!(
                "requires no ExternalId ({} is not set)",
                self.external_id_field
            ),
        };
        let (message, retryable) = match code {
            "AccessDenied" | "AccessDeniedException" => (
                format!(
                    "AWS denied sts:AssumeRole into {role} ({said}); fix: check that the role's trust policy lets {} assume it and {external_id}",
                    self.signer
                ),
                false,
            ),
            "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "InvalidAccessKeyId"
            | "MissingAuthenticationToken" => (
                format!(
                    "AWS refused the keys that sign sts:AssumeRole into {role} ({said}); fix: check {}",
                    self.signer
                ),
                false,
            ),
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => (
                format!(
                    "AWS refused sts:AssumeRole into {role} because its signing credentials or signature expired ({said}); fix: check the system clock and {}",
                    self.signer
                ),
                false,
            ),
            "RegionDisabledException" => (
                format!(
                    "AWS refused sts:AssumeRole into {role} in {} ({said}); fix: activate STS in this region (IAM account settings) or change aws.region",
                    self.region
                ),
                false,
            ),
            c if STS_RETRYABLE.contains(&c) || answered_status(e).is_some_and(|s| s >= 500) => {
                (format!("sts:AssumeRole into {role} failed ({said})"), true)
            }
            _ => (
                format!(
                    "AWS refused sts:AssumeRole into {role} ({said}); fix: check the role ARN and its trust policy"
                ),
                false,
            ),
        };
        AssumeRoleFailed { message, retryable }
    }
}

/// STS errors worth another try.
const STS_RETRYABLE: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "IDPCommunicationError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Why a role's credentials could not be had: one sentence for a person (the role, AWS's code
/// and request id, the config field to fix), and whether trying again may help. It travels
/// inside the SDK's error as the credentials provider's source, where [`explain`] and
/// [`assume_role_failure`] find it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AssumeRoleFailed {
    pub message: String,
    pub retryable: bool,
}

/// The [`AssumeRoleFailed`] behind a failed call, if its credentials were the problem.
pub fn assume_role_failure<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a AssumeRoleFailed> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<AssumeRoleFailed>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// What an SDK error's raw answer shows beyond AWS's code: the HTTP status, the request id
/// and the body (the query protocols, STS among them, put the request id there too).
pub trait Answered {
    fn status(&self) -> Option<u16>;
    fn request_id(&self) -> Option<&str>;
    fn body(&self) -> Option<&[u8]>;
}

impl Answered for aws_sdk_sts::config::http::HttpResponse {
    fn status(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }

    fn request_id(&self) -> Option<&str> {
        let headers = self.headers();
        headers
            .get("x-amzn-requestid")
            .or_else(|| headers.get("x-amz-request-id"))
    }

    fn body(&self) -> Option<&[u8]> {
        self.body().bytes()
    }
}

/// No raw answer (unit tests build errors without one).
impl Answered for () {
    fn status(&self) -> Option<u16> {
        None
    }

    fn request_id(&self) -> Option<&str> {
        None
    }

    fn body(&self) -> Option<&[u8]> {
        None
    }
}

fn answered_status<E, R: Answered>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().and_then(Answered::status)
}

/// AWS's request id for an error answer: from the error's metadata, the response headers, or
/// a query-protocol body's `<RequestId>`.
pub fn request_id<E: ProvideErrorMetadata, R: Answered>(e: &SdkError<E, R>) -> Option<String> {
    use aws_sdk_sts::operation::RequestId;
    let meta = e.as_service_error().and_then(|s| s.meta().request_id());
    let raw = e.raw_response();
    meta.or_else(|| raw.and_then(Answered::request_id))
        .map(str::to_owned)
        .or_else(|| {
            let body = std::str::from_utf8(raw?.body()?).ok()?;
            let (_, rest) = body.split_once("<RequestId>")?;
            let (id, _) = rest.split_once("</RequestId>")?;
            Some(id.trim().to_owned()).filter(|id| !id.is_empty() && id.len() <= 128)
        })
}

/// AWS's code, HTTP status and request id of an error answer, e.g. `AccessDenied, HTTP 403,
/// request id 4b1d…: User … is not authorized`.
fn answer<E: ProvideErrorMetadata, R: Answered>(e: &SdkError<E, R>) -> String {
    let mut out = e
        .as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("no error code")
        .to_owned();
    if let Some(status) = answered_status(e) {
        out.push_str(&format!(", HTTP {status}"));
    }
    out.push_str(&match request_id(e) {
        Some(id) => format!(", request id {id}"),
        None => ", no request id".into(),
    });
    if let Some(message) = e
        .as_service_error()
        .and_then(|s| s.message())
        .filter(|m| !m.is_empty())
    {
        out.push_str(": ");
        out.push_str(&one_line(message));
    }
    out
}

/// At most 300 characters on one line, so that an answer cannot flood a log.
fn one_line(text: &str) -> String {
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// A failed AWS call as one sentence for a person: the operation, then AWS's code, HTTP status,
/// request id and message when AWS answered; the role and what to fix when its credentials
/// could not be had; the endpoint when AWS could not be reached (which says nothing about the
/// credentials, never tried). Never the SDK's `Debug` form.
pub fn explain<E, R>(operation: &str, endpoint: &str, e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: Answered + std::fmt::Debug + 'static,
{
    format!("{operation}: {}", what_failed(endpoint, e))
}

/// [`explain`] without the operation in front.
pub fn what_failed<E, R>(endpoint: &str, e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: Answered + std::fmt::Debug + 'static,
{
    if let Some(failed) = assume_role_failure(e) {
        return failed.to_string();
    }
    let cause = || {
        std::error::Error::source(e)
            .map(|s| one_line(&error_chain(s)))
            .unwrap_or_default()
    };
    match e {
        SdkError::ServiceError(_) => format!("AWS answered {}", answer(e)),
        SdkError::DispatchFailure(d)
            if d.as_connector_error()
                .is_some_and(|c| c.is_io() || c.is_timeout()) =>
        {
            format!(
                "could not reach AWS at {endpoint} ({}); fix: check DNS, the network or proxy, and any AWS_ENDPOINT_URL_* setting (nothing answered, so the credentials were not checked)",
                cause()
            )
        }
        SdkError::DispatchFailure(_) => {
            format!("the request to {endpoint} was not sent ({})", cause())
        }
        SdkError::TimeoutError(_) => format!(
            "no answer from {endpoint} in time ({}); the network or AWS is slow",
            cause()
        ),
        SdkError::ResponseError(_) => format!(
            "the answer from {endpoint} could not be read ({}; {})",
            answer(e),
            cause()
        ),
        SdkError::ConstructionFailure(_) => {
            format!("the request could not be built ({})", cause())
        }
        _ => cause(),
    }
}

/// Where one service's requests go: the endpoint override if set, else AWS's endpoint for
/// `region` from the SDK's own rules.
pub fn endpoint_label(service_env: &str, region: &str) -> String {
    use futures_util::FutureExt;
    if let Ok(Some(url)) = endpoint(service_env) {
        return url;
    }
    macro_rules! resolved {
        ($sdk:ident) => {{
            use $sdk::config::endpoint::ResolveEndpoint;
            $sdk::config::endpoint::Params::builder()
                .region(region.to_owned())
                .build()
                .ok()
                .and_then(|params| {
                    $sdk::config::endpoint::DefaultResolver::new()
                        .resolve_endpoint(&params)
                        .now_or_never()
                        .and_then(Result::ok)
                        .map(|e| e.url().to_owned())
                })
        }};
    }
    let url = match service_env {
        "STS" => resolved!(aws_sdk_sts),
        "SSO_ADMIN" => resolved!(aws_sdk_ssoadmin),
        "ORGANIZATIONS" => resolved!(aws_sdk_organizations),
        "IAM" => resolved!(aws_sdk_iam),
        "CLOUDFORMATION" => resolved!(aws_sdk_cloudformation),
        "LAMBDA" => resolved!(aws_sdk_lambda),
        _ => None,
    };
    url.unwrap_or_else(|| format!("AWS's {service_env} endpoint in {region}"))
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.assume())
    }
}

/// The partition of ARNs in `region`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

pub fn role_arn(partition: &str, account: &str, role: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{role}")
}

pub fn provider_arn(partition: &str, account: &str, provider: &str) -> String {
    format!("arn:{partition}:iam::{account}:saml-provider/{provider}")
}

/// This replica's name (`POD_NAME`, from the downward API), for the User-Agent of every
/// request: AWS's CloudTrail, and our tests, can tell the replicas' requests apart. Only the
/// characters of a Kubernetes name are kept.
pub fn replica() -> Option<&'static str> {
    static REPLICA: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    REPLICA
        .get_or_init(|| {
            std::env::var("POD_NAME")
                .ok()
                .map(|n| {
                    n.chars()
                        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
                        .collect::<String>()
                })
                .filter(|n| !n.is_empty())
        })
        .as_deref()
}

/// The SDK's `app/` User-Agent part: `aws-replicator`, with the replica's name when known.
fn app_name() -> aws_sdk_ssoadmin::config::AppName {
    let name = match replica() {
        Some(replica) => format!("aws-replicator.{replica}"),
        None => "aws-replicator".to_owned(),
    };
    aws_sdk_ssoadmin::config::AppName::new(name).unwrap_or_else(|_| {
        aws_sdk_ssoadmin::config::AppName::new("aws-replicator").expect("valid")
    })
}

/// A client of one AWS service, signed by `role`, with the endpoint override of
/// `AWS_ENDPOINT_URL_<env>` (or `AWS_ENDPOINT_URL`), its writes behind the write fence.
macro_rules! client {
    ($sdk:ident, $role:expr, $env:literal) => {{
        let role: AssumedRole = $role;
        let mut builder = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .app_name(app_name())
            .region($sdk::config::Region::new(role.region.clone()))
            .credentials_provider(role)
            .interceptor(crate::fence::Interceptor);
        if let Some(url) = endpoint($env)? {
            builder = builder.endpoint_url(url);
        }
        builder
    }};
}

/// sso-admin in the management account, through the seed's role and ExternalId.
pub fn sso_admin(config: &Config) -> Result<aws_sdk_ssoadmin::Client, AwsError> {
    let builder = client!(
        aws_sdk_ssoadmin,
        AssumedRole::management(config)?,
        "SSO_ADMIN"
    )
    // SsoAdmin retries with its own policy (Conflict, Retry-After, counted calls); the
    // SDK's retries on top would multiply the attempts and hide them from the count.
    .retry_config(aws_sdk_ssoadmin::config::retry::RetryConfig::disabled());
    Ok(aws_sdk_ssoadmin::Client::from_conf(builder.build()))
}

/// Organizations in the management account.
pub fn organizations(role: AssumedRole) -> Result<aws_sdk_organizations::Client, AwsError> {
    let builder = client!(aws_sdk_organizations, role, "ORGANIZATIONS");
    Ok(aws_sdk_organizations::Client::from_conf(builder.build()))
}

/// IAM as `role` (a member account's access role).
pub fn iam(role: AssumedRole) -> Result<aws_sdk_iam::Client, AwsError> {
    // Paced (crate::paced) retries IAM calls, counted and under the shared rate limit.
    let builder = client!(aws_sdk_iam, role, "IAM")
        .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled());
    Ok(aws_sdk_iam::Client::from_conf(builder.build()))
}

/// CloudFormation as `role`: a member account's access stack, or the automation account's
/// StackSets.
pub fn cloudformation(role: AssumedRole) -> Result<aws_sdk_cloudformation::Client, AwsError> {
    let builder = client!(aws_sdk_cloudformation, role, "CLOUDFORMATION");
    Ok(aws_sdk_cloudformation::Client::from_conf(builder.build()))
}

/// Lambda in the automation account.
pub fn lambda(role: AssumedRole) -> Result<aws_sdk_lambda::Client, AwsError> {
    let builder = client!(aws_sdk_lambda, role, "LAMBDA");
    Ok(aws_sdk_lambda::Client::from_conf(builder.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variables are process-wide, so one test walks through all cases in order.
    #[test]
    fn endpoint_overrides_are_https_or_loopback() {
        let set = |v: &str| unsafe { std::env::set_var("AWS_ENDPOINT_URL_TESTSVC", v) };
        set("https://sso.example.com");
        assert_eq!(
            endpoint("TESTSVC").unwrap().as_deref(),
            Some("https://sso.example.com")
        );
        set("http://127.0.0.1:4566");
        assert!(endpoint("TESTSVC").unwrap().is_some());
        set("http://sso.example.com");
        let err = endpoint("TESTSVC").unwrap_err().to_string();
        assert!(
            err.contains("AWS_ENDPOINT_URL_TESTSVC") && err.contains("plain http"),
            "{err}"
        );
        set("ftp://127.0.0.1");
        assert!(endpoint("TESTSVC").is_err());
        unsafe { std::env::remove_var("AWS_ENDPOINT_URL_TESTSVC") };
    }

    #[test]
    fn an_assumed_role_debugs_without_its_keys() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.dhall");
        let config = Config::load(std::path::Path::new(path)).unwrap();
        let role = AssumedRole::management(&config).unwrap();
        let member = role
            .chain(
                "arn:aws:iam::111111111111:role/MeshstackAccountAccessRole",
                None,
                "aws.organizationRootAccountExternalId",
            )
            .unwrap();
        for shown in [format!("{role:?}"), format!("{member:#?}")] {
            assert!(shown.contains("role/"), "{shown}");
            for secret in ["demo-access-key", "demo-secret-key", "demo-external-id"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
    }

    mod errors {
        use super::super::*;
        use aws_sdk_iam::error::{ConnectorError, ErrorMetadata};
        use aws_sdk_iam::operation::get_role::GetRoleError;

        type Failure = SdkError<GetRoleError, ()>;

        fn refused(code: &str, message: &str) -> Failure {
            let meta = ErrorMetadata::builder()
                .code(code)
                .message(message)
                .custom("aws_request_id", "4b1d0b0e-0000-4000-8000-000000000001")
                .build();
            SdkError::service_error(GetRoleError::generic(meta), ())
        }

        fn assume_role_failed(retryable: bool) -> Failure {
            let failed = AssumeRoleFailed {
                message: "AWS denied sts:AssumeRole into arn:aws:iam::123456789012:role/r (AccessDenied, HTTP 403, request id r-1); fix: check the role's trust policy".into(),
                retryable,
            };
            let credentials = CredentialsError::provider_error(failed);
            SdkError::dispatch_failure(ConnectorError::other(Box::new(credentials), None))
        }

        const ENDPOINT: &str = "https://iam.amazonaws.com";

        /// Nothing of the SDK's internals (its `Debug` forms, its variant names) in a message.
        fn plain(message: &str) {
            for internal in [
                "Error {",
                "ErrorMetadata",
                "SdkError",
                "DispatchFailure",
                "ConnectorError",
                "Some(",
                "source:",
                "\n",
            ] {
                assert!(!message.contains(internal), "{internal:?} in {message}");
            }
        }

        #[test]
        fn an_aws_answer_names_the_operation_code_and_request_id() {
            let message = explain(
                "iam:GetRole",
                ENDPOINT,
                &refused(
                    "AccessDenied",
                    "User: arn:aws:sts::1:assumed-role/x is not authorized\nto perform: iam:GetRole",
                ),
            );
            assert_eq!(
                message,
                "iam:GetRole: AWS answered AccessDenied, request id 4b1d0b0e-0000-4000-8000-000000000001: User: arn:aws:sts::1:assumed-role/x is not authorized to perform: iam:GetRole"
            );
            plain(&message);
            let long = explain(
                "iam:GetRole",
                ENDPOINT,
                &refused("Throttling", &"x".repeat(5000)),
            );
            assert!(long.len() < 500, "an answer cannot flood the log");
        }

        #[test]
        fn an_unreachable_endpoint_is_named_and_the_credentials_are_not_blamed() {
            let dns = SdkError::<GetRoleError, ()>::dispatch_failure(ConnectorError::io(
                "dns error: failed to lookup address information: Name or service not known".into(),
            ));
            let message = explain("iam:GetRole", ENDPOINT, &dns);
            assert!(
                message
                    .starts_with("iam:GetRole: could not reach AWS at https://iam.amazonaws.com (")
                    && message.contains("failed to lookup address information")
                    && message.contains("the credentials were not checked"),
                "{message}"
            );
            for blame in ["denied", "ExternalId", "trust policy", "AccessDenied"] {
                assert!(!message.contains(blame), "{blame} in {message}");
            }
            plain(&message);
            let timeout = SdkError::<GetRoleError, ()>::timeout_error(
                "operation timeout (all attempts including retries) occurred after 30s",
            );
            let message = explain("iam:GetRole", ENDPOINT, &timeout);
            assert!(
                message.contains("no answer from https://iam.amazonaws.com in time"),
                "{message}"
            );
            plain(&message);
        }

        #[test]
        fn a_refused_assume_role_is_its_own_sentence_and_says_if_a_retry_helps() {
            for retryable in [false, true] {
                let e = assume_role_failed(retryable);
                assert_eq!(
                    assume_role_failure(&e).map(|f| f.retryable),
                    Some(retryable)
                );
                let message = explain("ListAccountAssignments", ENDPOINT, &e);
                assert!(
                    message.starts_with("ListAccountAssignments: AWS denied sts:AssumeRole into arn:aws:iam::123456789012:role/r (AccessDenied, HTTP 403, request id r-1); fix:"),
                    "{message}"
                );
                assert!(!message.contains("could not reach"), "{message}");
                plain(&message);
            }
            assert!(assume_role_failure(&refused("AccessDenied", "no")).is_none());
        }

        #[test]
        fn requests_that_could_not_be_built_or_read_say_so() {
            let built = SdkError::<GetRoleError, ()>::construction_failure(
                "role_name was not specified but it is required",
            );
            let message = explain("iam:GetRole", ENDPOINT, &built);
            assert_eq!(
                message,
                "iam:GetRole: the request could not be built (role_name was not specified but it is required)"
            );
            let read = SdkError::<GetRoleError, ()>::response_error("unexpected end of XML", ());
            let message = explain("iam:GetRole", ENDPOINT, &read);
            assert!(
                message.contains("the answer from https://iam.amazonaws.com could not be read"),
                "{message}"
            );
            plain(&message);
        }

        #[test]
        fn the_default_endpoints_come_from_the_sdk_rules() {
            assert_eq!(
                endpoint_label("SSO_ADMIN", "eu-central-1"),
                "https://sso.eu-central-1.amazonaws.com"
            );
            assert_eq!(
                endpoint_label("STS", "eu-central-1"),
                "https://sts.eu-central-1.amazonaws.com"
            );
            assert_eq!(
                endpoint_label("IAM", "eu-central-1"),
                "https://iam.amazonaws.com"
            );
            assert_eq!(
                endpoint_label("LAMBDA", "eu-central-1"),
                "https://lambda.eu-central-1.amazonaws.com"
            );
        }
    }
}
