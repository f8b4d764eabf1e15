//! The write fence holds every AWS client the replicator builds, not only the ones whose calls
//! it paces: Organizations, IAM, CloudFormation (StackSets), Lambda and sso-admin, through the
//! SDK's interceptor. A replica that is not sure it still holds the lease sends no write of any
//! of them; reads go on. Against moto (STS assumes the roles for real); one test in its own
//! process, because the fence is process-wide.

mod common;

use aws_replicator::aws::{AssumedRole, cloudformation, iam, lambda, organizations, sso_admin};
use aws_sdk_ssoadmin::error::DisplayErrorContext;
use std::time::{Duration, Instant};

const FENCED: &str = "not sent: this replica is not sure it still holds the lease";

fn fenced<E: std::error::Error>(result: Result<impl std::fmt::Debug, E>) -> bool {
    match result {
        Ok(answer) => panic!("a write went out: {answer:?}"),
        Err(e) => DisplayErrorContext(&e).to_string().contains(FENCED),
    }
}

fn answered<E: std::error::Error>(result: Result<impl std::fmt::Debug, E>) -> bool {
    result
        .err()
        .is_none_or(|e| !DisplayErrorContext(&e).to_string().contains(FENCED))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_aws_client_holds_its_writes_to_the_write_fence() {
    let s = common::cli::setup().await;
    let path = s.config("fence.dhall", "%s.%s.%4\\$s", "T.Replicator::{=}");
    // SAFETY: the only test of this process; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &s.moto_endpoint);
        std::env::set_var("AWS_ENDPOINT_URL_SSO_ADMIN", s.running.endpoint());
    }
    let config = aws_replicator::config::Config::load(&path).unwrap();
    let role = AssumedRole::management(&config).unwrap();
    let org = organizations(role.clone()).unwrap();
    let iam = iam(role.clone()).unwrap();
    let cfn = cloudformation(role.clone()).unwrap();
    let lambda = lambda(role).unwrap();
    let admin = sso_admin(&config).unwrap();
    let instance = "arn:aws:sso:::instance/ssoins-1234567890abcdef";

    aws_replicator::fence::close();
    let before = s.running.emulator.requests().len();
    assert!(fenced(
        org.create_organizational_unit()
            .parent_id("r-1234")
            .name("meshstack")
            .send()
            .await
    ));
    assert!(fenced(
        iam.create_account_alias()
            .account_alias("acme-web")
            .send()
            .await
    ));
    assert!(fenced(
        cfn.create_stack_instances()
            .stack_set_name("meshstack-baseline")
            .accounts("111111111111")
            .regions("eu-central-1")
            .send()
            .await
    ));
    assert!(fenced(
        lambda
            .invoke()
            .function_name("PermissionDowngrade")
            .send()
            .await
    ));
    assert!(fenced(
        admin
            .create_account_assignment()
            .instance_arn(instance)
            .target_id("111111111111")
            .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
            .permission_set_arn(format!("{instance}/ps-1"))
            .principal_type(aws_sdk_ssoadmin::types::PrincipalType::Group)
            .principal_id("g-1")
            .send()
            .await
    ));
    assert_eq!(
        s.running.emulator.requests().len(),
        before,
        "a fenced write reached sso-admin"
    );
    // Reads are not writes: they reach AWS.
    assert!(answered(org.list_roots().send().await));
    assert!(answered(iam.list_account_aliases().send().await));
    assert!(answered(cfn.describe_stacks().send().await));

    // The lease confirmed: the same write goes out (moto answers it, whatever it says).
    aws_replicator::fence::open_until(Instant::now() + Duration::from_secs(60));
    assert!(answered(
        org.create_organizational_unit()
            .parent_id("r-1234")
            .name("meshstack")
            .send()
            .await
    ));
}
