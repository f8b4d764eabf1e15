//! Errors an operator meets when AWS cannot be reached, through the binary: one line that names
//! the endpoint and says the credentials were not checked, never an SDK dump. Endpoints are
//! closed loopback ports (connection refused); no name is resolved, so no DNS query leaves the
//! machine (the DNS wording is checked in `aws.rs`'s unit tests on a resolver error).

mod common;

use common::cli::setup;

const FAST: &str = "T.Replicator::{ rate-limits = { scim = 20.0, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 } }";

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn one_error_line(stderr: &str) -> String {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for internal in [
        "DispatchFailure",
        "dispatch failure",
        "ConnectorError",
        "Error {",
        "Some(",
        "hyper",
    ] {
        assert!(!stderr.contains(internal), "{internal:?} in: {stderr}");
    }
    errors[0].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_sts_is_named_and_the_credentials_are_not_blamed() {
    let s = setup().await;
    let config = s.config("sts.dhall", "%s.%s.%4\\$s", FAST);
    let port = closed_port();
    let out = s
        .command()
        .env("AWS_ENDPOINT_URL_STS", format!("http://127.0.0.1:{port}"))
        .args(["sync", "--config", config.to_str().unwrap()])
        .args(["--snapshot", "config/sample-snapshot.json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = one_error_line(&stderr);
    eprintln!("{line}");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.contains("credentials were not checked"), "{line}");
    assert!(
        !line.contains("AccessDenied") && !line.contains("ExternalId"),
        "{line}"
    );
    // AWS held no group of ours: the role is tried before any SCIM write, so no group is
    // left behind without its assignments.
    assert_eq!(s.writes(), 0, "{:#?}", s.running.emulator.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_scim_endpoint_is_named() {
    let s = setup().await;
    let config = s.config("scim.dhall", "%s.%s.%4\\$s", FAST);
    let port = closed_port();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &s.running.scim_endpoint(),
        &format!("http://127.0.0.1:{port}/scim/v2/"),
    );
    std::fs::write(&config, text).unwrap();
    let out = s
        .command()
        .args(["sync", "--config", config.to_str().unwrap()])
        .args(["--snapshot", "config/sample-snapshot.json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = one_error_line(&stderr);
    eprintln!("{line}");
    assert!(
        line.contains(&format!(
            "could not reach the SCIM endpoint at http://127.0.0.1:{port}"
        )),
        "{line}"
    );
    assert!(line.contains("the token was not checked"), "{line}");
    assert!(!line.contains("os error 111): "), "said once: {line}");
}
