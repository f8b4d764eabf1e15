//! The emulator's sso-admin, driven by the real `aws-sdk-ssoadmin` client through its endpoint
//! override: asynchronous assignment operations, the in-flight cap, conflicts, duplicates,
//! failures, faults and the token bucket. Groups are written over SCIM and assigned over
//! sso-admin: one store.

use aws_replicator::emulator::{
    Emulator, EmulatorConfig, Family, Fault, RunningEmulator, SEED_POLICY,
};
use aws_sdk_ssoadmin::Client;
use aws_sdk_ssoadmin::config::retry::RetryConfig;
use aws_sdk_ssoadmin::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ssoadmin::types::{PrincipalType, StatusValues, TargetType};
use serde_json::json;
use std::time::Duration;

const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-123456789";
const PS: &str = "arn:aws:sso:::permissionSet/ssoins-123456789/ps-0123456789abcdef";

async fn start(delay_ms: u64, rate_limit: Option<f64>) -> (RunningEmulator, Client) {
    start_with(EmulatorConfig {
        operation_delay: Duration::from_millis(delay_ms),
        rate_limit,
        ..EmulatorConfig::default()
    })
    .await
}

async fn start_with(config: EmulatorConfig) -> (RunningEmulator, Client) {
    let running = Emulator::new(config).serve(0).await.unwrap();
    let sdk = aws_sdk_ssoadmin::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .endpoint_url(running.endpoint())
        .credentials_provider(Credentials::new(
            "AKIDEMULATOR",
            "emulator-secret",
            None,
            None,
            "test",
        ))
        .retry_config(RetryConfig::disabled())
        .build();
    (running, Client::from_conf(sdk))
}

/// A group created over SCIM, as the replicator does it.
async fn scim_group(running: &RunningEmulator, name: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}Groups", running.scim_endpoint()))
        .bearer_auth("emulator-token")
        .json(&json!({"displayName": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn account(n: usize) -> String {
    format!("{:012}", 111_111_111_111 + n)
}

async fn create(
    client: &Client,
    account: &str,
    group: &str,
) -> Result<
    aws_sdk_ssoadmin::types::AccountAssignmentOperationStatus,
    aws_sdk_ssoadmin::error::SdkError<
        aws_sdk_ssoadmin::operation::create_account_assignment::CreateAccountAssignmentError,
    >,
> {
    client
        .create_account_assignment()
        .instance_arn(INSTANCE)
        .target_id(account)
        .target_type(TargetType::AwsAccount)
        .permission_set_arn(PS)
        .principal_type(PrincipalType::Group)
        .principal_id(group)
        .send()
        .await
        .map(|out| out.account_assignment_creation_status.unwrap())
}

async fn creation_status(
    client: &Client,
    request_id: &str,
) -> aws_sdk_ssoadmin::types::AccountAssignmentOperationStatus {
    client
        .describe_account_assignment_creation_status()
        .instance_arn(INSTANCE)
        .account_assignment_creation_request_id(request_id)
        .send()
        .await
        .unwrap()
        .account_assignment_creation_status
        .unwrap()
}

async fn assigned(client: &Client, account: &str) -> Vec<String> {
    client
        .list_account_assignments()
        .instance_arn(INSTANCE)
        .account_id(account)
        .permission_set_arn(PS)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.principal_id.unwrap())
        .collect()
}

#[tokio::test]
async fn list_instances_names_the_instance_and_its_identity_store() {
    let (_running, client) = start(50, None).await;
    let out = client.list_instances().send().await.unwrap();
    let instance = &out.instances()[0];
    assert_eq!(instance.instance_arn(), Some(INSTANCE));
    assert_eq!(instance.identity_store_id(), Some("d-9067d0a3c1"));
}

#[tokio::test]
async fn an_assignment_of_a_scim_group_is_in_progress_then_succeeds_once() {
    let (running, client) = start(150, None).await;
    let group = scim_group(&running, "mst-acme.web.admin").await;
    let status = create(&client, &account(0), &group).await.unwrap();
    assert_eq!(status.status(), Some(&StatusValues::InProgress));
    assert!(status.created_date().is_some());
    let id = status.request_id().unwrap().to_owned();
    assert_eq!(
        creation_status(&client, &id).await.status(),
        Some(&StatusValues::InProgress)
    );
    assert!(
        assigned(&client, &account(0)).await.is_empty(),
        "not there before it succeeded"
    );
    let in_progress = client
        .list_account_assignment_creation_status()
        .instance_arn(INSTANCE)
        .filter(
            aws_sdk_ssoadmin::types::OperationStatusFilter::builder()
                .status(StatusValues::InProgress)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(in_progress.account_assignments_creation_status().len(), 1);

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        creation_status(&client, &id).await.status(),
        Some(&StatusValues::Succeeded)
    );
    assert_eq!(assigned(&client, &account(0)).await, vec![group.clone()]);
    let for_principal = client
        .list_account_assignments_for_principal()
        .instance_arn(INSTANCE)
        .principal_id(&group)
        .principal_type(PrincipalType::Group)
        .send()
        .await
        .unwrap();
    assert_eq!(
        for_principal.account_assignments()[0].account_id(),
        Some(account(0).as_str())
    );

    // A duplicate create succeeds and adds no second entry.
    let again = create(&client, &account(0), &group).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        creation_status(&client, again.request_id().unwrap())
            .await
            .status(),
        Some(&StatusValues::Succeeded)
    );
    assert_eq!(assigned(&client, &account(0)).await.len(), 1);
    assert_eq!(running.emulator.dump().assignments.len(), 1);
}

#[tokio::test]
async fn an_unknown_principal_or_an_injected_failure_ends_failed_with_a_reason() {
    let (running, client) = start(20, None).await;
    let unknown = create(
        &client,
        &account(0),
        "9067d0a3c1-00000000-0000-4000-8000-00000000dead",
    )
    .await
    .unwrap();
    let group = scim_group(&running, "mst-x").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = creation_status(&client, unknown.request_id().unwrap()).await;
    assert_eq!(status.status(), Some(&StatusValues::Failed));
    assert!(status.failure_reason().unwrap().contains("does not exist"));

    running
        .emulator
        .fail_next_assignments(1, "The account has reached its quota of IAM roles.");
    let failed = create(&client, &account(1), &group).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = creation_status(&client, failed.request_id().unwrap()).await;
    assert_eq!(status.status(), Some(&StatusValues::Failed));
    assert_eq!(
        status.failure_reason(),
        Some("The account has reached its quota of IAM roles.")
    );
    assert!(assigned(&client, &account(1)).await.is_empty());
}

#[tokio::test]
async fn at_most_15_operations_are_in_flight_and_one_account_takes_one_at_a_time() {
    let (running, client) = start(5_000, None).await;
    let group = scim_group(&running, "mst-x").await;
    // AWS's quota: 15 outstanding CreateAccountAssignment calls (aws-sso.md §C, the limits page).
    for n in 0..15 {
        create(&client, &account(n), &group).await.unwrap();
    }
    assert_eq!(running.emulator.in_flight(), 15);
    let err = create(&client, &account(99), &group).await.unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_throttling_exception(),
        "{err:?}"
    );
    assert_eq!(
        err.raw_response().unwrap().status().as_u16(),
        400,
        "throttling is HTTP 400 on sso-admin"
    );

    let (running, client) = start(5_000, None).await;
    let group = scim_group(&running, "mst-y").await;
    create(&client, &account(0), &group).await.unwrap();
    let err = create(&client, &account(0), &group).await.unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_conflict_exception(),
        "{err:?}"
    );
}

#[tokio::test]
async fn delete_succeeds_later_and_a_missing_assignment_is_not_found() {
    let (running, client) = start(20, None).await;
    let group = scim_group(&running, "mst-x").await;
    create(&client, &account(0), &group).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let delete = || {
        client
            .delete_account_assignment()
            .instance_arn(INSTANCE)
            .target_id(account(0))
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(PS)
            .principal_type(PrincipalType::Group)
            .principal_id(&group)
            .send()
    };
    let status = delete()
        .await
        .unwrap()
        .account_assignment_deletion_status
        .unwrap();
    assert_eq!(status.status(), Some(&StatusValues::InProgress));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let described = client
        .describe_account_assignment_deletion_status()
        .instance_arn(INSTANCE)
        .account_assignment_deletion_request_id(status.request_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        described
            .account_assignment_deletion_status()
            .unwrap()
            .status(),
        Some(&StatusValues::Succeeded)
    );
    assert!(assigned(&client, &account(0)).await.is_empty());
    let err = delete().await.unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception(),
        "{err:?}"
    );
}

#[tokio::test]
async fn listing_pages_with_next_token_and_refuses_another_instance() {
    let (running, client) = start(1, None).await;
    for n in 0..5 {
        let group = scim_group(&running, &format!("mst-{n}")).await;
        create(&client, &account(0), &group).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pages = client
        .list_account_assignments()
        .instance_arn(INSTANCE)
        .account_id(account(0))
        .permission_set_arn(PS)
        .max_results(2)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages
            .iter()
            .map(|p| p.account_assignments().len())
            .sum::<usize>(),
        5
    );
    let err = client
        .list_account_assignments()
        .instance_arn("arn:aws:sso:::instance/ssoins-0000000000000000")
        .account_id(account(0))
        .permission_set_arn(PS)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
}

#[tokio::test]
async fn faults_throttle_as_http_400_and_fail_as_500() {
    let (running, client) = start(1, None).await;
    running.emulator.inject(Fault {
        family: Family::SsoAdmin,
        endpoint: "ListInstances".into(),
        status: 429,
        retry_after: None,
        latency_ms: 0,
        drop_connection: false,
        times: 1,
        ..Fault::default()
    });
    running.emulator.inject(Fault {
        family: Family::SsoAdmin,
        endpoint: "ListInstances".into(),
        status: 500,
        retry_after: None,
        latency_ms: 0,
        drop_connection: false,
        times: 1,
        ..Fault::default()
    });
    let err = client.list_instances().send().await.unwrap_err();
    assert!(err.as_service_error().unwrap().is_throttling_exception());
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    let err = client.list_instances().send().await.unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_internal_server_exception()
    );
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 500);
    running.emulator.inject(Fault {
        family: Family::SsoAdmin,
        endpoint: "ListInstances".into(),
        status: 200,
        retry_after: None,
        latency_ms: 0,
        drop_connection: true,
        times: 1,
        ..Fault::default()
    });
    let err = client.list_instances().send().await.unwrap_err();
    assert!(
        err.as_service_error().is_none(),
        "a dropped connection is no service error: {err:?}"
    );
    client.list_instances().send().await.unwrap();
    let counts = running.emulator.counts();
    assert_eq!(counts["sso-admin ListInstances"], 4);
}

/// The bucket holds one second's worth: at 1 request/s, eight requests sent at once meet at most
/// one token plus what the seconds they take refill, so most are throttled even on a slow
/// machine. The bucket's arithmetic itself is checked on paused time in `src/emulator/mod.rs`.
#[tokio::test]
async fn the_token_bucket_throttles_beyond_the_rate() {
    let (running, client) = start(1, Some(1.0)).await;
    let started = std::time::Instant::now();
    let results =
        futures_util::future::join_all((0..8).map(|_| client.list_instances().send())).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut throttled = 0;
    for result in results {
        if let Err(e) = result {
            assert!(e.as_service_error().unwrap().is_throttling_exception());
            throttled += 1;
        }
    }
    let admitted_at_most = 1 + elapsed.floor() as usize;
    assert!(
        8 - throttled <= admitted_at_most,
        "1 per second with a burst of 1: {throttled} of 8 throttled in {elapsed:.2} s"
    );
    assert!(
        throttled >= 1,
        "{throttled} of 8 throttled in {elapsed:.2} s"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.list_instances().send().await.unwrap();
    assert_eq!(running.emulator.counts()["sso-admin"], 9);
}

fn seed_policy_emulator() -> EmulatorConfig {
    EmulatorConfig {
        operation_delay: Duration::from_millis(1),
        rate_limit: None,
        sso_admin_policy: Some(SEED_POLICY.iter().map(|s| s.to_string()).collect()),
        ..EmulatorConfig::default()
    }
}

/// With the seed's policy the management role may list, create and check a creation; anything
/// else is AccessDeniedException (HTTP 400, JSON 1.1, IAM's sentence naming the action) before
/// the request is even read, and the `replicator.sso-admin` switches' actions widen it.
#[tokio::test]
async fn the_seed_policy_allows_three_operations_and_denies_the_rest() {
    let (running, client) = start_with(seed_policy_emulator()).await;
    let group = scim_group(&running, "mst-acme.web.admin").await;
    let status = create(&client, &account(0), &group).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let id = status.request_id().unwrap();
    assert_eq!(
        creation_status(&client, id).await.status(),
        Some(&StatusValues::Succeeded)
    );
    assert_eq!(assigned(&client, &account(0)).await, vec![group.clone()]);

    let denied = client
        .delete_account_assignment()
        .instance_arn(INSTANCE)
        .target_id(account(0))
        .target_type(TargetType::AwsAccount)
        .permission_set_arn(PS)
        .principal_type(PrincipalType::Group)
        .principal_id(&group)
        .send()
        .await
        .unwrap_err();
    assert_eq!(denied.raw_response().unwrap().status().as_u16(), 400);
    let service = denied.as_service_error().unwrap();
    assert!(service.is_access_denied_exception(), "{service:?}");
    let message = aws_sdk_ssoadmin::error::ProvideErrorMetadata::message(service).unwrap();
    assert!(
        message.contains("is not authorized to perform: sso:DeleteAccountAssignment"),
        "{message}"
    );
    let denied = client
        .list_account_assignments_for_principal()
        .instance_arn(INSTANCE)
        .principal_id(&group)
        .principal_type(PrincipalType::Group)
        .send()
        .await
        .unwrap_err();
    assert!(
        denied
            .as_service_error()
            .unwrap()
            .is_access_denied_exception()
    );
    let denied = client
        .list_account_assignment_creation_status()
        .instance_arn(INSTANCE)
        .send()
        .await
        .unwrap_err();
    assert!(
        denied
            .as_service_error()
            .unwrap()
            .is_access_denied_exception()
    );
    let denied = client.list_instances().send().await.unwrap_err();
    assert!(
        denied
            .as_service_error()
            .unwrap()
            .is_access_denied_exception()
    );
    assert_eq!(
        assigned(&client, &account(0)).await,
        vec![group.clone()],
        "nothing was deleted"
    );

    // `delete-assignments = True` adds the delete and its status check.
    let mut widened: Vec<&str> = SEED_POLICY.to_vec();
    widened.extend([
        "DeleteAccountAssignment",
        "DescribeAccountAssignmentDeletionStatus",
    ]);
    running.emulator.set_sso_admin_policy(Some(widened));
    client
        .delete_account_assignment()
        .instance_arn(INSTANCE)
        .target_id(account(0))
        .target_type(TargetType::AwsAccount)
        .permission_set_arn(PS)
        .principal_type(PrincipalType::Group)
        .principal_id(&group)
        .send()
        .await
        .unwrap();
}

/// With the organization's accounts and the instance's permission sets in its state, the
/// emulator refuses an assignment to a permission set the instance lacks
/// (ResourceNotFoundException) or to an account outside the organization
/// (ValidationException), for writes and listings alike; real ones pass.
#[tokio::test]
async fn assignments_outside_the_instance_or_the_organization_are_refused() {
    let (running, client) = start(1, None).await;
    let ps = "arn:aws:sso:::permissionSet/ssoins-123456789/ps-4f2d1c0b9a8e7d6c";
    running.emulator.add_permission_set(ps);
    running.emulator.add_permission_set(PS);
    running.emulator.add_account("210987654321");
    running.emulator.add_account(&account(0));
    let group = scim_group(&running, "mst-acme.web.admin").await;

    create(&client, "210987654321", &group).await.unwrap();
    let err = create(&client, "999988887777", &group).await.unwrap_err();
    let service = err.as_service_error().unwrap();
    assert!(service.is_validation_exception(), "{service:?}");
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    let gone = "arn:aws:sso:::permissionSet/ssoins-123456789/ps-0000000000000000";
    let err = client
        .create_account_assignment()
        .instance_arn(INSTANCE)
        .target_id(account(0))
        .target_type(TargetType::AwsAccount)
        .permission_set_arn(gone)
        .principal_type(PrincipalType::Group)
        .principal_id(&group)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    let err = client
        .list_account_assignments()
        .instance_arn(INSTANCE)
        .account_id(account(0))
        .permission_set_arn(gone)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(assigned(&client, "210987654321").await, [group]);
    assert_eq!(
        running.emulator.dump().assignments.len(),
        1,
        "only the real one"
    );
}
