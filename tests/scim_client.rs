//! The SCIM client against the emulator (AWS's subset): every operation, paging, adoption on
//! 409, retries, and a whole sync of the sample through it.

mod common;

use aws_replicator::apply::{Options, apply};
use aws_replicator::audit::Audit;
use aws_replicator::directory::{
    AccountAssignments, AssignmentReads, DirectoryError, Receipt, observe,
};
use aws_replicator::emulator::{Emulator, EmulatorConfig, Family, Fault, Quirks, RunningEmulator};
use aws_replicator::model::{AccountId, ExternalId, GroupId, GroupName, PermissionSetArn, UserId};
use aws_replicator::observed::Assignment;
use aws_replicator::plan::{Family as OpFamily, plan};
use aws_replicator::retry::RetryPolicy;
use aws_replicator::secret::Secret;
use aws_replicator::sso::scim::ScimClient;
use std::sync::Mutex;
use std::time::{Duration, Instant};

async fn start() -> (RunningEmulator, ScimClient) {
    start_with(Quirks::default()).await
}

/// AWS's undocumented choices the other way round from the emulator's default.
const STRICT: Quirks = Quirks {
    user_name_case_exact: true,
    display_name_case_exact: true,
    one_operation_per_patch: true,
};

async fn start_with(quirks: Quirks) -> (RunningEmulator, ScimClient) {
    let config = EmulatorConfig {
        rate_limit: None,
        quirks,
        ..EmulatorConfig::default()
    };
    let running = Emulator::new(config).serve(0).await.unwrap();
    let retry = RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    };
    let endpoint = url::Url::parse(&running.scim_endpoint()).unwrap();
    let client = ScimClient::new(&endpoint, Secret::new("emulator-token"), 1000.0, retry).unwrap();
    (running, client)
}

fn ids(e: &Emulator, n: usize) -> Vec<UserId> {
    (0..n)
        .map(|i| UserId::from(e.add_user(&format!("user{i:03}@example.com"))))
        .collect()
}

#[tokio::test]
async fn creates_reads_changes_and_deletes_groups() {
    let (running, client) = start().await;
    let users = ids(&running.emulator, 150);
    let ext = ExternalId::from("mst:v1:aws.x:acme:web:admin");
    let group = client
        .create_group(&GroupName::from("mst-acme.web.admin"), &ext, &users[..100])
        .await
        .unwrap()
        .0;
    client.add_members(&group, &users[100..]).await.unwrap();
    let members = client.group_members(&group).await.unwrap();
    assert_eq!(members.len(), 150, "two pages of members");
    client.remove_members(&group, &users[..10]).await.unwrap();
    assert_eq!(client.group_members(&group).await.unwrap().len(), 140);
    assert_eq!(
        client.groups_of_user(&users[20]).await.unwrap()[0].id,
        group
    );

    client
        .rename_group(&group, &GroupName::from("mst-web.acme.admin"))
        .await
        .unwrap();
    let groups = client.list_groups().await.unwrap();
    assert_eq!(
        (groups[0].name.as_str(), groups[0].external_id.as_ref()),
        ("mst-web.acme.admin", Some(&ext))
    );

    // A second create of the same group adopts it; a foreign group of that name is not adopted.
    let again = client
        .create_group(&GroupName::from("mst-web.acme.admin"), &ext, &[])
        .await
        .unwrap()
        .0;
    assert_eq!(again, group);
    running.emulator.add_group("mst-handmade");
    let err = client
        .create_group(
            &GroupName::from("mst-handmade"),
            &ExternalId::from("mst:v1:aws.x:a:b:c"),
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Conflict { .. }), "{err}");

    client.delete_group(&group).await.unwrap();
    client.delete_group(&group).await.unwrap();
    assert_eq!(client.list_groups().await.unwrap().len(), 1);
}

#[tokio::test]
async fn finds_users_by_user_name_exactly_or_ignoring_case() {
    let (running, client) = start().await;
    let id = running.emulator.add_user("Grace@Globex.example");
    assert_eq!(
        client
            .find_user("Grace@Globex.example")
            .await
            .unwrap()
            .unwrap()
            .0,
        UserId::from(id.clone())
    );
    assert_eq!(
        client
            .find_user("grace@globex.example")
            .await
            .unwrap()
            .unwrap()
            .0,
        UserId::from(id)
    );
    assert_eq!(client.find_user("nobody@example.com").await.unwrap(), None);
    assert_eq!(client.list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn pages_through_hundreds_of_groups_with_one_call_per_100() {
    let (running, client) = start().await;
    for i in 0..250 {
        running.emulator.add_group(&format!("g{i:03}"));
    }
    running.emulator.clear_requests();
    assert_eq!(client.list_groups().await.unwrap().len(), 250);
    assert_eq!(running.emulator.counts()["scim GET /Groups"], 3);
    assert!(
        running
            .emulator
            .requests()
            .iter()
            .all(|r| r.target.contains("count=100"))
    );
}

#[tokio::test]
async fn retries_throttling_server_errors_and_dropped_connections_but_not_other_4xx() {
    let (running, client) = start().await;
    let fault = |status, retry_after, drop_connection| Fault {
        family: Family::Scim,
        endpoint: "GET /Groups".into(),
        status,
        retry_after,
        latency_ms: 0,
        drop_connection,
        times: 1,
        ..Fault::default()
    };
    running.emulator.inject(fault(429, Some(1), false));
    running.emulator.inject(fault(503, None, false));
    running.emulator.inject(fault(200, None, true));
    let started = Instant::now();
    client.list_groups().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let statuses: Vec<u16> = running
        .emulator
        .requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 503, 200, 200]);

    running.emulator.clear_requests();
    let err = client
        .rename_group(&GroupId::from("9067d0a3c1-missing"), &GroupName::from("x"))
        .await
        .unwrap_err();
    match &err {
        DirectoryError::Aws {
            status: 404,
            request_id: Some(id),
            ..
        } => assert_eq!(id.len(), 36),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("request id"), "{err}");
    assert_eq!(running.emulator.requests().len(), 1, "a 404 is not retried");
}

/// Assignments are sso-admin's: recorded here so that the SCIM side of a sync can be run on its
/// own.
#[derive(Default)]
struct Recorded(Mutex<Vec<Assignment>>);

impl AccountAssignments for Recorded {
    async fn assignments_of(
        &self,
        group: &GroupId,
    ) -> Result<Vec<(AccountId, PermissionSetArn)>, DirectoryError> {
        let held = self.0.lock().unwrap();
        Ok(held
            .iter()
            .filter(|a| &a.group == group)
            .map(|a| (a.account.clone(), a.permission_set.clone()))
            .collect())
    }
    async fn groups_on(
        &self,
        account: &AccountId,
        permission_set: &PermissionSetArn,
    ) -> Result<Vec<GroupId>, DirectoryError> {
        let held = self.0.lock().unwrap();
        Ok(held
            .iter()
            .filter(|a| &a.account == account && &a.permission_set == permission_set)
            .map(|a| a.group.clone())
            .collect())
    }
    async fn create_assignment(&self, a: &Assignment) -> Result<Receipt, DirectoryError> {
        self.0.lock().unwrap().push(a.clone());
        Ok(Receipt::default())
    }
    async fn delete_assignment(&self, a: &Assignment) -> Result<Receipt, DirectoryError> {
        self.0.lock().unwrap().retain(|x| x != a);
        Ok(Receipt::default())
    }
}

#[tokio::test]
async fn the_sample_syncs_through_scim_and_a_second_plan_has_nothing_to_do() {
    let (running, client) = start().await;
    common::sample::provision_users(&running.emulator);
    let d = common::sample::desired_state();
    let assignments = Recorded::default();

    let first = plan(
        &d,
        &observe(&client, &assignments, &d, AssignmentReads::PerGroup)
            .await
            .unwrap(),
    );
    let report = apply(
        &first,
        &client,
        &assignments,
        Options::default(),
        &Audit::discard(),
        &|_| {},
    )
    .await;
    assert!(report.is_success(), "{report:?}");
    let scim_ops = first
        .ops
        .iter()
        .filter(|o| o.family() == OpFamily::Scim)
        .count();
    let writes = running
        .emulator
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    assert_eq!(writes, scim_ops, "one SCIM write per planned operation");

    running.emulator.clear_requests();
    let second = plan(
        &d,
        &observe(&client, &assignments, &d, AssignmentReads::PerGroup)
            .await
            .unwrap(),
    );
    assert!(second.ops.is_empty(), "{}", second.render_text());
    assert_eq!(
        running
            .emulator
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .count(),
        0
    );
    // Grace's euid differs from her AWS userName in case only: she was still added.
    assert!(
        first
            .render_text()
            .contains("+ member grace@globex.example")
    );
}

/// `Retry-After: 2` on a 429 makes the client wait at least 2 s before it tries again. On the
/// real clock: a paused one auto-advances whenever the runtime waits, loopback I/O included, so
/// under load it fired the client's timeouts while the emulator's answer was on its way.
#[tokio::test(flavor = "multi_thread")]
async fn retry_after_two_seconds_is_honoured() {
    let (running, client) = start().await;
    running.emulator.inject(Fault {
        family: Family::Scim,
        endpoint: "GET /Groups".into(),
        status: 429,
        retry_after: Some(2),
        times: 1,
        ..Fault::default()
    });
    let started = Instant::now();
    client.list_groups().await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "waited {waited:?}");
    // Far below the backoff's own cap (5 s) plus a retry would be: the header set the wait.
    assert!(waited < Duration::from_secs(4), "waited {waited:?}");
    let statuses: Vec<u16> = running
        .emulator
        .requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 200]);
}

/// A listing whose cursor comes back is not complete: the client says so instead of returning
/// the pages it read (or reading pages twice). 250 groups are three pages (cursors `c1_100`,
/// `c2_200`); the fault makes one page point back to `c1_100`.
#[tokio::test]
async fn a_listing_that_repeats_a_cursor_is_an_error_not_a_short_listing() {
    // The page that `c1_100` fetches names itself again (the same page at once), and the last
    // page names the first page's cursor (a cycle, which a check against the previous cursor
    // alone misses).
    for (every, label) in [
        (2, "page 2 points at itself"),
        (3, "page 3 points at page 2"),
    ] {
        let (running, client) = start().await;
        for i in 0..250 {
            running.emulator.add_group(&format!("mst-g{i:03}"));
        }
        running.emulator.inject(Fault {
            family: Family::Scim,
            endpoint: "GET /Groups".into(),
            next_cursor: Some("c1_100".into()),
            every,
            times: 1,
            ..Fault::default()
        });
        let err = client.list_groups().await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("ListGroups: AWS repeated a page cursor")
                && message.contains("the listing is not complete"),
            "{label}: {message}"
        );
        let gets = running
            .emulator
            .requests()
            .iter()
            .filter(|r| r.endpoint == "GET /Groups")
            .count();
        assert_eq!(gets, every, "{label}: no page is read again");
    }
}

/// An empty directory lists as empty (AWS's cursor-mode shape, `Resources: []`), and a page
/// that is not a listing stays an error.
#[tokio::test]
async fn an_empty_listing_is_empty_and_a_non_listing_is_an_error() {
    let (running, client) = start().await;
    assert!(client.list_groups().await.unwrap().is_empty());
    running.emulator.inject(Fault {
        family: Family::Scim,
        endpoint: "GET /Groups".into(),
        status: 404,
        times: 1,
        ..Fault::default()
    });
    let err = client.list_groups().await.unwrap_err().to_string();
    assert!(err.contains("ListGroups") && err.contains("404"), "{err}");
}

/// The sample synced, renamed and synced again, under each reading of what AWS leaves
/// undocumented (docs/aws-wire-reference.md §5.7.1): `userName eq` ignoring case or not,
/// displayName uniqueness ignoring case or not, several PATCH operations counted together or
/// refused. The client depends on none of them: the same writes, then nothing left to do.
#[tokio::test]
async fn the_sample_syncs_under_either_reading_of_the_undocumented_choices() {
    let mut writes_per_reading = Vec::new();
    for quirks in [Quirks::default(), STRICT] {
        let (running, client) = start_with(quirks).await;
        common::sample::provision_users(&running.emulator);
        let d = common::sample::desired_state();
        let assignments = Recorded::default();
        let observed = observe(&client, &assignments, &d, AssignmentReads::PerGroup)
            .await
            .unwrap();
        let first = plan(&d, &observed);
        let report = apply(
            &first,
            &client,
            &assignments,
            Options::default(),
            &Audit::discard(),
            &|_| {},
        )
        .await;
        assert!(report.is_success(), "{quirks:?}: {report:?}");
        let requests = running.emulator.requests();
        assert!(
            requests.iter().all(|r| r.status < 400),
            "{quirks:?}: {requests:?}"
        );
        writes_per_reading.push(requests.iter().filter(|r| r.method != "GET").count());
        let again = observe(&client, &assignments, &d, AssignmentReads::PerGroup)
            .await
            .unwrap();
        let second = plan(&d, &again);
        assert!(
            second.ops.is_empty(),
            "{quirks:?}: {}",
            second.render_text()
        );
        // Grace's euid differs from her AWS userName in case only: she was added either way.
        assert!(
            first
                .render_text()
                .contains("+ member grace@globex.example")
        );
    }
    assert_eq!(writes_per_reading[0], writes_per_reading[1]);
}

/// Under case-exact `userName eq`, a lookup of an euid that differs from the AWS userName in
/// case finds nobody; the client then compares the full listing ignoring case, so the user is
/// found either way and a scoped plan adds her.
#[tokio::test]
async fn a_scoped_observation_finds_users_under_either_user_name_case_rule() {
    for quirks in [Quirks::default(), STRICT] {
        let (running, client) = start_with(quirks).await;
        common::sample::provision_users(&running.emulator);
        let lookup = client.find_user("Grace@Globex.example").await.unwrap();
        assert_eq!(lookup.is_some(), !quirks.user_name_case_exact, "{quirks:?}");
        let d = common::sample::desired_state();
        let grace = d
            .groups
            .values()
            .find(|g| {
                g.members
                    .iter()
                    .any(|e| e.as_str() == "Grace@Globex.example")
            })
            .unwrap();
        let scoped = d.within(&[grace.identity.project.clone()].into_iter().collect());
        let assignments = Recorded::default();
        let observed = observe(&client, &assignments, &scoped, AssignmentReads::PerGroup)
            .await
            .unwrap();
        assert!(
            observed
                .users
                .values()
                .any(|n| n.as_str() == "grace@globex.example"),
            "{quirks:?}"
        );
        let text = plan(&scoped, &observed).render_text();
        assert!(
            text.contains("+ member grace@globex.example"),
            "{quirks:?}: {text}"
        );
        assert!(
            !text.contains("no AWS user with userName Grace"),
            "{quirks:?}: {text}"
        );
    }
}

/// The switches do what they say: a second operation in one PATCH, a display name that differs
/// only in case, and a userName lookup in another case, under each reading.
#[tokio::test]
async fn the_emulators_switches_answer_each_way() {
    for quirks in [Quirks::default(), STRICT] {
        let (running, _client) = start_with(quirks).await;
        let http = reqwest::Client::new();
        let base = running.scim_endpoint();
        let user = running.emulator.add_user("Alice@Acme.example");
        let created = http
            .post(format!("{base}Groups"))
            .bearer_auth("emulator-token")
            .json(&serde_json::json!({"displayName": "mst-a"}))
            .send()
            .await
            .unwrap();
        let group = created.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let twin = http
            .post(format!("{base}Groups"))
            .bearer_auth("emulator-token")
            .json(&serde_json::json!({"displayName": "MST-A"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            twin.as_u16(),
            if quirks.display_name_case_exact {
                201
            } else {
                409
            }
        );
        let two_ops = http
            .patch(format!("{base}Groups/{group}"))
            .bearer_auth("emulator-token")
            .json(&serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": user}]},
                    {"op": "remove", "path": "members", "value": [{"value": user}]}
                ]
            }))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            two_ops.as_u16(),
            if quirks.one_operation_per_patch {
                400
            } else {
                204
            }
        );
        let found = http
            .get(format!(
                "{base}Users?filter=userName%20eq%20%22alice%40acme.example%22"
            ))
            .bearer_auth("emulator-token")
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(
            found["totalResults"],
            if quirks.user_name_case_exact { 0 } else { 1 }
        );
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

/// A token AWS does not accept (expired, deleted, another instance's): the error names
/// `iam-configuration.aws-sso.sso-access-token`, that tokens expire after a year and where to
/// make a new one; it is not retried and does not show the token.
#[tokio::test]
async fn a_401_names_the_access_token_and_its_one_year_expiry() {
    let (running, _) = start().await;
    let endpoint = url::Url::parse(&running.scim_endpoint()).unwrap();
    let client = ScimClient::new(
        &endpoint,
        Secret::new("last-years-t0ken"),
        1000.0,
        fast_retries(),
    )
    .unwrap();
    let err = client.list_groups().await.unwrap_err();
    assert!(
        matches!(err, DirectoryError::Aws { status: 401, .. }),
        "{err}"
    );
    let text = err.to_string();
    for part in [
        "HTTP 401",
        "AWS did not accept the SCIM access token",
        "iam-configuration.aws-sso.sso-access-token",
        "expires one year after it was generated",
        "Access tokens",
    ] {
        assert!(text.contains(part), "{part:?} in: {text}");
    }
    assert!(
        !text.contains("last-years-t0ken"),
        "shows the token: {text}"
    );
    assert_eq!(running.emulator.requests().len(), 1, "a 401 is not retried");
}

/// A 403 with the token: the error says AWS denied it and names the token's setting and
/// automatic provisioning, and is not retried.
#[tokio::test]
async fn a_403_names_the_access_token_and_automatic_provisioning() {
    let (running, client) = start().await;
    running.emulator.inject(Fault {
        family: Family::Scim,
        endpoint: "GET /Groups".into(),
        status: 403,
        times: 10,
        ..Fault::default()
    });
    let err = client.list_groups().await.unwrap_err();
    assert!(
        matches!(err, DirectoryError::Aws { status: 403, .. }),
        "{err}"
    );
    let text = err.to_string();
    for part in [
        "HTTP 403",
        "AWS denied the request made with the SCIM access token",
        "iam-configuration.aws-sso.sso-access-token",
        "automatic provisioning",
    ] {
        assert!(text.contains(part), "{part:?} in: {text}");
    }
    assert!(!text.contains("emulator-token"), "shows the token: {text}");
    assert_eq!(running.emulator.requests().len(), 1, "a 403 is not retried");
}

/// Without CA certificates no HTTPS client can be built: each (SCIM, meshStack, the AWS SDKs
/// through their STS client, kube) is an error naming what is missing and the fix, not a panic
/// (`ScimClient::new` panicked with "No CA certificates were loaded from the system").
/// rustls-native-certs, which reqwest's verifier and the AWS SDK load the system's certificates
/// with, reads only `SSL_CERT_FILE` and `SSL_CERT_DIR` when they are set; pointed at an empty
/// file and folder, the host has none. The variables are process-wide, so the test runs itself
/// again in a child process with them set.
#[tokio::test]
async fn without_ca_certificates_every_https_client_is_an_error_not_a_panic() {
    const CHILD: &str = "AWS_REPLICATOR_TEST_NO_CA_CERTIFICATES";
    if std::env::var_os(CHILD).is_none() {
        let empty = tempfile::tempdir().unwrap();
        let file = empty.path().join("empty.pem");
        std::fs::write(&file, "").unwrap();
        let name = "without_ca_certificates_every_https_client_is_an_error_not_a_panic";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("SSL_CERT_FILE", &file)
            .env("SSL_CERT_DIR", empty.path())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the child run failed:\n{stdout}\n{stderr}"
        );
        return;
    }
    let fix = |text: &str| {
        for part in [
            "no CA certificates were found on this host",
            "ca-certificates",
            "SSL_CERT_FILE",
        ] {
            assert!(text.contains(part), "{part:?} in: {text}");
        }
    };
    let endpoint = url::Url::parse("https://127.0.0.1:9/tenant/scim/v2/").unwrap();
    let err = ScimClient::new(&endpoint, Secret::new("t0ken"), 1.0, RetryPolicy::aws())
        .err()
        .expect("no SCIM client without CA certificates");
    let text = err.to_string();
    fix(&text);
    assert!(text.contains("the SCIM endpoint"), "{text}");

    let config = aws_replicator::demo::config().unwrap();
    let err = aws_replicator::meshstack::Api::new(&config, RetryPolicy::meshstack())
        .err()
        .expect("no meshStack client without CA certificates");
    let text = err.to_string();
    fix(&text);
    assert!(text.contains("meshStack"), "{text}");

    let err = aws_replicator::aws::AssumedRole::management(&config)
        .expect_err("no AWS client without CA certificates");
    let text = err.to_string();
    fix(&text);
    assert!(text.contains("AWS"), "{text}");
    let sso = config.require_sso().unwrap();
    assert!(aws_replicator::sso::connect(&config, sso, None).is_err());

    // kube (leader election) returns its own error rather than panicking.
    let kube = kube::Config::new("https://127.0.0.1:9".parse().unwrap());
    assert!(kube::Client::try_from(kube).is_err());
}
