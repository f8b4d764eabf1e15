//! AWS refusing the replicator, as a user meets it: an AssumeRole that STS denies (wrong
//! ExternalId, a trust policy that does not name the caller) fails at once, in one sentence that
//! names the role, the config field of its ExternalId, AWS's code and request id, and the fix.
//! moto's STS does not check trust policies or ExternalIds, so STS here is a loopback stub that
//! answers as STS documents its errors (query protocol, HTTP 403, `<ErrorResponse>`).

mod common;

use axum::http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const REQUEST_ID: &str = "c6104cbe-af31-11e0-8154-cbc7ccf896c7";
const MANAGEMENT_ROLE: &str = "arn:aws:iam::123456789012:role/MeshfedServiceRole";

/// STS that denies every AssumeRole, as STS answers it (HTTP 403, the query protocol's
/// `<ErrorResponse>` with `<RequestId>`); counts the requests.
struct DenyingSts {
    endpoint: String,
    requests: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for DenyingSts {
    fn drop(&mut self) {
        self._task.abort();
    }
}

async fn denying_sts() -> DenyingSts {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n    <Message>User: arn:aws:iam::111122223333:user/meshfed-service-user is not authorized to perform: sts:AssumeRole on resource: {MANAGEMENT_ROLE}</Message>\n  </Error>\n  <RequestId>{REQUEST_ID}</RequestId>\n</ErrorResponse>\n"
            );
            // Real STS also sends the request id as `x-amzn-RequestId`; without it here, the
            // id must come from the body, where the query protocol puts it.
            (StatusCode::FORBIDDEN, [("content-type", "text/xml")], body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    DenyingSts {
        endpoint,
        requests,
        _task: task,
    }
}

/// What a denied AssumeRole must say, and what it must not.
fn check_denial(message: &str, external_id_field: &str) {
    for part in [
        MANAGEMENT_ROLE,
        external_id_field,
        "AccessDenied",
        REQUEST_ID,
        "trust policy",
        "ExternalId",
    ] {
        assert!(message.contains(part), "{part:?} missing in: {message}");
    }
    for internal in [
        "Error {",
        "ErrorMetadata",
        "DispatchFailure",
        "dispatch failure",
        "ProviderError",
        "Some(",
        "could not reach",
    ] {
        assert!(!message.contains(internal), "{internal:?} in: {message}");
    }
}

/// `sync` with an STS that denies the management role: exit 1 within seconds (it took 73 s of
/// retries before), with one line that says what to fix and no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_assume_role_fails_fast_and_says_what_to_fix() {
    let s = common::cli::setup().await;
    let sts = denying_sts().await;
    let config = s.config("denied.dhall", "%s.%s.%4\\$s", "T.Replicator::{=}");
    let started = Instant::now();
    let out = s
        .command()
        .env("AWS_ENDPOINT_URL_STS", &sts.endpoint)
        .args(["sync", "--config", config.to_str().unwrap()])
        .args(["--snapshot", "config/sample-snapshot.json"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(15), "took {took:?}\n{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    eprintln!("{error}");
    check_denial(error, "aws.organizationRootAccountExternalId");
    assert!(
        sts.requests.load(Ordering::SeqCst) <= 4,
        "a refusal is not retried: {} AssumeRole calls",
        sts.requests.load(Ordering::SeqCst)
    );
    for secret in common::cli::SECRETS {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret}"
        );
    }
}

/// The same through the library, for the clients with the SDK's own retries (Organizations)
/// and the automation role, whose ExternalId has its own field.
#[tokio::test]
async fn every_client_reports_a_denied_assume_role_at_once() {
    use aws_replicator::accounts::aws::{AwsOrganization, Organization};
    let sts = denying_sts().await;
    // The only test in this binary that touches the environment.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL_STS", &sts.endpoint);
        std::env::set_var("AWS_ENDPOINT_URL_ORGANIZATIONS", &sts.endpoint);
        std::env::set_var("AWS_ENDPOINT_URL_SSO_ADMIN", &sts.endpoint);
    }
    let path = std::path::Path::new("config/demo.dhall");
    let config = aws_replicator::config::Config::load(path).unwrap();

    let started = Instant::now();
    let management = aws_replicator::aws::AssumedRole::management(&config).unwrap();
    let org = AwsOrganization::new(management).unwrap();
    let err = org.accounts().await.unwrap_err().to_string();
    assert!(
        err.starts_with("organizations:ListAccounts: AWS denied sts:AssumeRole"),
        "{err}"
    );
    eprintln!("{err}");
    check_denial(&err, "aws.organizationRootAccountExternalId");

    let (_, admin) = aws_replicator::sso::connect(
        &config,
        config.sso.as_ref().expect("the demo configures aws-sso"),
        None,
    )
    .unwrap();
    use aws_replicator::directory::AccountAssignments;
    let err = admin
        .groups_on(
            &aws_replicator::model::AccountId::from("111111111111"),
            &aws_replicator::model::PermissionSetArn::from(
                "arn:aws:sso:::permissionSet/ssoins-1/ps-1",
            ),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("ListAccountAssignments: AWS denied"),
        "{err}"
    );
    eprintln!("{err}");
    check_denial(&err, "aws.organizationRootAccountExternalId");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    unsafe {
        std::env::remove_var("AWS_ENDPOINT_URL_STS");
        std::env::remove_var("AWS_ENDPOINT_URL_ORGANIZATIONS");
        std::env::remove_var("AWS_ENDPOINT_URL_SSO_ADMIN");
    }
}
