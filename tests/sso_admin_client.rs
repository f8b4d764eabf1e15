//! The sso-admin client against the emulator (asynchronous operations, FAILED with a reason,
//! conflicts and throttling retried) and against moto; and the whole sample synced end to end
//! through SCIM and sso-admin on the emulator's one store.

mod common;

use aws_replicator::apply::apply;
use aws_replicator::directory::{AccountAssignments, observe};
use aws_replicator::emulator::{Emulator, EmulatorConfig, Family, Fault, RunningEmulator};
use aws_replicator::model::{AccountId, GroupId, GroupName, PermissionSetArn};
use aws_replicator::observed::Assignment;
use aws_replicator::plan::plan;
use aws_replicator::retry::RetryPolicy;
use aws_replicator::secret::Secret;
use aws_replicator::sso::admin::{Polling, SsoAdmin};
use aws_replicator::sso::scim::ScimClient;
use aws_sdk_ssoadmin::config::{BehaviorVersion, Credentials, Region};
use std::time::Duration;

const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-123456789";

fn sdk(endpoint: &str) -> aws_sdk_ssoadmin::Client {
    let config = aws_sdk_ssoadmin::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(aws_sdk_ssoadmin::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ssoadmin::Client::from_conf(config)
}

fn fast() -> Polling {
    Polling {
        first: Duration::from_millis(20),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(10),
        max_retries: 20,
    }
}

async fn emulator() -> RunningEmulator {
    let config = EmulatorConfig {
        operation_delay: Duration::from_millis(40),
        rate_limit: None,
        ..EmulatorConfig::default()
    };
    Emulator::new(config).serve(0).await.unwrap()
}

fn assignment(account: &str, ps: &str, group: &str) -> Assignment {
    Assignment {
        account: AccountId::from(account),
        permission_set: PermissionSetArn::from(ps),
        group: GroupId::from(group),
    }
}

const PS: &str = "arn:aws:sso:::permissionSet/ssoins-123456789/ps-123456789";

#[tokio::test]
async fn creates_waits_for_success_and_deletes() {
    let running = emulator().await;
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let group = running.emulator.add_group("mst-a");
    let a = assignment("111111111111", PS, &group);
    admin.create_assignment(&a).await.unwrap();
    assert_eq!(
        running.emulator.dump().assignments.len(),
        1,
        "create returns once SUCCEEDED"
    );
    assert_eq!(
        admin.assignments_of(&a.group).await.unwrap(),
        [(a.account.clone(), a.permission_set.clone())]
    );
    assert_eq!(
        admin
            .principals_on(&a.account, &a.permission_set)
            .await
            .unwrap()
            .len(),
        1
    );
    admin.delete_assignment(&a).await.unwrap();
    assert!(running.emulator.dump().assignments.is_empty());
    admin.delete_assignment(&a).await.unwrap();
}

#[tokio::test]
async fn a_failed_assignment_is_an_error_with_aws_reason() {
    let running = emulator().await;
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let group = running.emulator.add_group("mst-a");
    running
        .emulator
        .fail_next_assignments(1, "The account has reached its quota of IAM roles.");
    let err = admin
        .create_assignment(&assignment("111111111111", PS, &group))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("FAILED: The account has reached its quota of IAM roles."),
        "{err}"
    );
    // The next run tries again and succeeds.
    admin
        .create_assignment(&assignment("111111111111", PS, &group))
        .await
        .unwrap();
}

#[tokio::test]
async fn conflicts_and_throttling_are_retried() {
    let running = emulator().await;
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let (g1, g2) = (
        running.emulator.add_group("mst-a"),
        running.emulator.add_group("mst-b"),
    );
    running.emulator.inject(Fault {
        family: Family::SsoAdmin,
        endpoint: "CreateAccountAssignment".into(),
        status: 429,
        retry_after: None,
        latency_ms: 0,
        drop_connection: false,
        times: 2,
    });
    let (a, b) = (
        assignment("111111111111", PS, &g1),
        assignment("111111111111", PS, &g2),
    );
    let (ra, rb) = tokio::join!(admin.create_assignment(&a), admin.create_assignment(&b));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(running.emulator.dump().assignments.len(), 2);
    let statuses: Vec<u16> = running
        .emulator
        .requests()
        .iter()
        .filter(|r| r.endpoint == "CreateAccountAssignment")
        .map(|r| r.status)
        .collect();
    assert!(
        statuses.iter().filter(|s| **s == 400).count() >= 2,
        "throttled and/or conflicting writes were retried: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn works_against_moto() {
    let moto = common::peers::moto();
    let client = sdk(&moto.endpoint);
    let instance = client.list_instances().send().await.unwrap().instances()[0]
        .instance_arn()
        .unwrap()
        .to_owned();
    let ps = format!(
        "arn:aws:sso:::permissionSet/{}/ps-0123456789abcdef",
        instance.rsplit('/').next().unwrap()
    );
    let admin = SsoAdmin::new(client, &instance, 1000.0, fast());
    let a = assignment(
        "111111111111",
        &ps,
        "9067d0a3c1-00000001-0000-4001-8000-000000000001",
    );
    admin.create_assignment(&a).await.unwrap();
    assert_eq!(admin.assignments_of(&a.group).await.unwrap().len(), 1);
    admin.delete_assignment(&a).await.unwrap();
    assert!(
        admin
            .principals_on(&a.account, &a.permission_set)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_sample_syncs_end_to_end_through_scim_and_sso_admin() {
    let running = emulator().await;
    common::sample::provision_users(&running.emulator);
    let endpoint = url::Url::parse(&running.scim_endpoint()).unwrap();
    let scim = ScimClient::new(
        &endpoint,
        Secret::new("emulator-token"),
        1000.0,
        RetryPolicy::aws(),
    );
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let d = common::sample::desired_state();

    let first = plan(&d, &observe(&scim, &admin, &d).await.unwrap());
    let report = apply(&first, &scim, &admin).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        running.emulator.dump().assignments.len(),
        first.summary.assignments_to_create
    );

    running.emulator.clear_requests();
    let second = plan(&d, &observe(&scim, &admin, &d).await.unwrap());
    assert!(second.ops.is_empty(), "{}", second.render_text());
    assert!(
        running
            .emulator
            .requests()
            .iter()
            .all(|r| r.method == "GET" || r.endpoint.starts_with("List")),
        "a second pass only reads"
    );
}

/// Reads of one full observation against the call-count model (aws-sso.md §D.1) for the
/// strategy `observe` uses today: groups listed 100 a page, members per managed group
/// (`groups.value`, one page per 100 members, at least one), users listed 100 a page, and one
/// ListAccountAssignmentsForPrincipal per managed group.
#[tokio::test]
async fn a_full_observation_costs_what_the_call_count_model_says() {
    let running = emulator().await;
    let users: Vec<String> = (0..230)
        .map(|i| {
            running
                .emulator
                .add_user(&format!("user{i:03}@example.com"))
        })
        .collect();
    let endpoint = url::Url::parse(&running.scim_endpoint()).unwrap();
    let scim = ScimClient::new(
        &endpoint,
        Secret::new("emulator-token"),
        1000.0,
        RetryPolicy::aws(),
    );
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let d = common::sample::desired_state();
    // 30 managed groups with 0 to 145 members, and 200 groups that are not ours.
    let mut member_counts = Vec::new();
    for (n, (ext, g)) in d.groups.iter().cycle().take(30).enumerate() {
        let name = GroupName::from(format!("{}-{n}", g.name).as_str());
        let ext = aws_replicator::model::ExternalId::from(format!("{ext}{n}").as_str());
        let m = (n * 5) % 146;
        let id = scim.create_group(&name, &ext, &[]).await.unwrap();
        for chunk in users[..m].chunks(100) {
            let ids: Vec<_> = chunk
                .iter()
                .map(|u| aws_replicator::model::UserId::from(u.as_str()))
                .collect();
            scim.add_members(&id, &ids).await.unwrap();
        }
        member_counts.push(m);
    }
    for n in 0..200 {
        running.emulator.add_group(&format!("team-{n}"));
    }
    // The marker check needs parseable identities: count only groups `observe` takes as ours.
    let ours: Vec<usize> = member_counts
        .iter()
        .zip(d.groups.keys().cycle())
        .enumerate()
        .filter(|(n, (_, ext))| {
            aws_replicator::model::GroupIdentity::is_ours(&d.platform, &format!("{ext}{n}"))
        })
        .map(|(_, (m, _))| *m)
        .collect();

    running.emulator.clear_requests();
    observe(&scim, &admin, &d).await.unwrap();
    let counts = running.emulator.counts();
    let groups = 230usize;
    let expected_scim = groups.div_ceil(100)
        + ours.iter().map(|m| m.div_ceil(100).max(1)).sum::<usize>()
        + 230usize.div_ceil(100);
    let expected_sso = ours.len();
    println!(
        "full observation: SCIM {} calls (model {expected_scim}), sso-admin {} calls (model {expected_sso})",
        counts["scim"],
        counts.get("sso-admin").copied().unwrap_or(0)
    );
    assert_eq!(counts["scim"], expected_scim);
    assert_eq!(counts.get("sso-admin").copied().unwrap_or(0), expected_sso);
}
