//! Reaching AWS as the seed describes: the `meshfedServiceUser` keys, from which the replicator
//! assumes the management-account role (`organizationRootAccountRole`, with its ExternalId) for
//! sso-admin and Organizations, the automation-account role (`automationAccountRole`, with its
//! ExternalId) for StackSets and the Lambda, and, through the management role, each member
//! account's access role. Endpoints come from AWS's own environment variables (`AWS_ENDPOINT_URL_<SERVICE>`,
//! then `AWS_ENDPOINT_URL`), for VPC endpoints, the emulator and test peers; plain http only
//! to loopback.

use crate::config::Config;
use crate::secret::Secret;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};
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
    let mut builder = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
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
    cached: std::sync::Arc<tokio::sync::Mutex<Option<Credentials>>>,
}

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
    /// The service user's keys assume `role_arn`.
    pub fn from_service_user(
        config: &Config,
        role_arn: &str,
        external_id: Option<&Secret>,
    ) -> Result<Self, AwsError> {
        Ok(Self {
            region: config.aws.region.clone(),
            sts: sts(&config.aws.region, service_user(config))?,
            role_arn: role_arn.to_owned(),
            external_id: external_id.cloned(),
            cached: Default::default(),
        })
    }

    /// The management-account role (`organizationRootAccountRole`).
    pub fn management(config: &Config) -> Result<Self, AwsError> {
        Self::from_service_user(
            config,
            &config.aws.organization_root_account_role,
            config.aws.organization_root_account_external_id.as_ref(),
        )
    }

    /// The automation-account role (`automationAccountRole`).
    pub fn automation(config: &Config) -> Result<Self, AwsError> {
        Self::from_service_user(
            config,
            &config.aws.automation_account_role,
            config.aws.automation_account_external_id.as_ref(),
        )
    }

    /// This role's credentials assume `role_arn` in turn: management account → member account.
    pub fn chain(&self, role_arn: &str, external_id: Option<&Secret>) -> Result<Self, AwsError> {
        Ok(Self {
            region: self.region.clone(),
            sts: sts(&self.region, self.clone())?,
            role_arn: role_arn.to_owned(),
            external_id: external_id.cloned(),
            cached: Default::default(),
        })
    }

    async fn assume(&self) -> provider::Result {
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_some_and(|expiry| expiry > std::time::SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        };
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let credentials = self.assume_now().await?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    async fn assume_now(&self) -> provider::Result {
        let answer = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name("aws-replicator")
            .set_external_id(self.external_id.as_ref().map(|s| s.expose().to_owned()))
            .duration_seconds(3600)
            .send()
            .await
            .map_err(|e| {
                CredentialsError::provider_error(format!(
                    "sts:AssumeRole into {}: {}",
                    self.role_arn,
                    aws_sdk_sts::error::DisplayErrorContext(e)
                ))
            })?;
        let c = answer.credentials().ok_or_else(|| {
            CredentialsError::provider_error(format!(
                "sts:AssumeRole into {} returned no credentials",
                self.role_arn
            ))
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

/// A client of one AWS service, signed by `role`, with the endpoint override of
/// `AWS_ENDPOINT_URL_<env>` (or `AWS_ENDPOINT_URL`).
macro_rules! client {
    ($sdk:ident, $role:expr, $env:literal) => {{
        let role: AssumedRole = $role;
        let mut builder = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new(role.region.clone()))
            .credentials_provider(role);
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
            )
            .unwrap();
        for shown in [format!("{role:?}"), format!("{member:#?}")] {
            assert!(shown.contains("role/"), "{shown}");
            for secret in ["demo-access-key", "demo-secret-key", "demo-external-id"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
    }
}
