//! One sso-admin scenario (list, create, wait, list, delete, wait, list) against moto and
//! against the emulator, with the real `aws-sdk-ssoadmin` client; the results must agree where
//! moto is faithful. Where they differ (moto completes at once and stores duplicates), the
//! difference is asserted too, so that the README's statement about it stays true.

mod common;

use aws_replicator::emulator::{Emulator, EmulatorConfig};
use aws_sdk_ssoadmin::Client;
use aws_sdk_ssoadmin::config::retry::RetryConfig;
use aws_sdk_ssoadmin::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ssoadmin::types::{PrincipalType, StatusValues, TargetType};
use std::time::Duration;

const ACCOUNT: &str = "111111111111";

fn client(endpoint: &str) -> Client {
    let sdk = aws_sdk_ssoadmin::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(sdk)
}

#[derive(Debug, PartialEq)]
struct Observed {
    lists: Vec<Vec<String>>,
    statuses: Vec<StatusValues>,
    missing_delete_is_not_found: bool,
}

async fn list(c: &Client, instance: &str, ps: &str) -> Vec<String> {
    let out = c
        .list_account_assignments()
        .instance_arn(instance)
        .account_id(ACCOUNT)
        .permission_set_arn(ps)
        .send()
        .await
        .unwrap();
    out.account_assignments()
        .iter()
        .map(|a| a.principal_id().unwrap().to_owned())
        .collect()
}

async fn wait_created(c: &Client, instance: &str, id: &str) -> StatusValues {
    for _ in 0..50 {
        let s = c
            .describe_account_assignment_creation_status()
            .instance_arn(instance)
            .account_assignment_creation_request_id(id)
            .send()
            .await
            .unwrap();
        let status = s
            .account_assignment_creation_status()
            .unwrap()
            .status()
            .unwrap()
            .clone();
        if status != StatusValues::InProgress {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still in progress");
}

async fn wait_deleted(c: &Client, instance: &str, id: &str) -> StatusValues {
    for _ in 0..50 {
        let s = c
            .describe_account_assignment_deletion_status()
            .instance_arn(instance)
            .account_assignment_deletion_request_id(id)
            .send()
            .await
            .unwrap();
        let status = s
            .account_assignment_deletion_status()
            .unwrap()
            .status()
            .unwrap()
            .clone();
        if status != StatusValues::InProgress {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still in progress");
}

/// The scenario; returns what was seen and the status the create first answered.
async fn scenario(c: &Client, principal: &str) -> (Observed, StatusValues, usize) {
    let instance = c.list_instances().send().await.unwrap().instances()[0]
        .instance_arn()
        .unwrap()
        .to_owned();
    let ps = format!(
        "arn:aws:sso:::permissionSet/{}/ps-0123456789abcdef",
        instance.rsplit('/').next().unwrap()
    );
    let create = || {
        c.create_account_assignment()
            .instance_arn(&instance)
            .target_id(ACCOUNT)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(&ps)
            .principal_type(PrincipalType::Group)
            .principal_id(principal)
            .send()
    };
    let delete = || {
        c.delete_account_assignment()
            .instance_arn(&instance)
            .target_id(ACCOUNT)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(&ps)
            .principal_type(PrincipalType::Group)
            .principal_id(principal)
            .send()
    };
    let mut seen = Observed {
        lists: vec![list(c, &instance, &ps).await],
        statuses: Vec::new(),
        missing_delete_is_not_found: false,
    };
    let created = create()
        .await
        .unwrap()
        .account_assignment_creation_status
        .unwrap();
    let first = created.status().unwrap().clone();
    seen.statuses
        .push(wait_created(c, &instance, created.request_id().unwrap()).await);
    seen.lists.push(list(c, &instance, &ps).await);
    let deleted = delete()
        .await
        .unwrap()
        .account_assignment_deletion_status
        .unwrap();
    seen.statuses
        .push(wait_deleted(c, &instance, deleted.request_id().unwrap()).await);
    seen.lists.push(list(c, &instance, &ps).await);
    let err = delete().await.unwrap_err();
    seen.missing_delete_is_not_found = err
        .as_service_error()
        .is_some_and(|e| e.is_resource_not_found_exception());
    // The known difference: a duplicate create.
    for _ in 0..2 {
        let s = create()
            .await
            .unwrap()
            .account_assignment_creation_status
            .unwrap();
        wait_created(c, &instance, s.request_id().unwrap()).await;
    }
    let duplicates = list(c, &instance, &ps).await.len();
    (seen, first, duplicates)
}

#[tokio::test(flavor = "multi_thread")]
async fn sso_admin_scenario_agrees_with_moto() {
    let moto = common::peers::moto();
    let config = EmulatorConfig {
        operation_delay: Duration::from_millis(60),
        rate_limit: None,
        ..EmulatorConfig::default()
    };
    let running = Emulator::new(config).serve(0).await.unwrap();
    let group = running.emulator.add_group("mst-acme.web.admin");

    let (on_moto, moto_first, moto_duplicates) = scenario(&client(&moto.endpoint), &group).await;
    let (on_emulator, emulator_first, emulator_duplicates) =
        scenario(&client(&running.endpoint()), &group).await;

    assert_eq!(on_emulator, on_moto);
    assert_eq!(on_emulator.lists, vec![vec![], vec![group.clone()], vec![]]);
    assert_eq!(
        on_emulator.statuses,
        [StatusValues::Succeeded, StatusValues::Succeeded]
    );
    assert!(on_emulator.missing_delete_is_not_found);

    // Where moto is not AWS: it completes at once and stores a duplicate assignment twice.
    assert_eq!(
        (moto_first, emulator_first),
        (StatusValues::Succeeded, StatusValues::InProgress)
    );
    assert_eq!((moto_duplicates, emulator_duplicates), (2, 1));
}
