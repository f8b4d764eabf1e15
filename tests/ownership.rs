//! Two replicators for two platform instances against one AWS IAM Identity Center: each owns only
//! the groups carrying its own marker, so neither undoes the other's work, also when both want a
//! group of the same name.

mod common;

use aws_replicator::apply::Options;
use aws_replicator::audit::Audit;
use aws_replicator::config::Config;
use aws_replicator::desired::{Desired, Scope, Settings, desired};
use aws_replicator::directory::AssignmentReads;
use aws_replicator::emulator::{Emulator, EmulatorConfig};
use aws_replicator::model::GroupName;
use aws_replicator::retry::RetryPolicy;
use aws_replicator::snapshot::Snapshot;
use aws_replicator::sync::{Settings as SyncSettings, SyncReport, sync};
use std::path::Path;
use std::time::Duration;

fn desired_for(platform: &str, rename: impl Fn(&str) -> String) -> Desired {
    let config = Config::load(Path::new("config/demo.dhall")).unwrap();
    let mut snapshot = Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap();
    snapshot.platform = platform.to_owned();
    let mut settings = Settings::new(&config, config.sso.as_ref().unwrap());
    settings.platform = platform;
    let mut d = desired(&snapshot, &settings, &Scope::All);
    for g in d.groups.values_mut() {
        g.name = GroupName::from(rename(g.name.as_str()).as_str());
    }
    d
}

#[tokio::test]
async fn two_platform_instances_share_one_directory_without_a_fight() {
    let emulator = Emulator::new(EmulatorConfig {
        operation_delay: Duration::from_millis(20),
        rate_limit: None,
        ..EmulatorConfig::default()
    });
    common::sample::provision_users(&emulator);
    let running = emulator.serve(0).await.unwrap();
    let (scim, admin) = common::aws::clients(&running, RetryPolicy::aws());
    // Both with the extended policy: each may delete, and reads assignments per group.
    let settings = SyncSettings {
        reads: AssignmentReads::PerGroup,
        options: Options::default(),
        guard: None,
        withhold_removals: false,
    };
    let run = |d: Desired| {
        let (scim, admin) = (&scim, &admin);
        async move {
            let mut d = d;
            d.policy.may_delete_assignments = true;
            sync(
                &d,
                scim,
                admin,
                settings,
                &Audit::discard(),
                |_| {},
                &|_| {},
            )
            .await
            .unwrap()
        }
    };
    let writes = || {
        running
            .emulator
            .requests()
            .iter()
            .filter(|r| r.method != "GET" && !r.endpoint.starts_with("List"))
            .filter(|r| !r.endpoint.starts_with("Describe"))
            .count()
    };

    // A: the sample; B: another platform instance whose groups are named apart ...
    let a = || desired_for("aws.aws-meshcloud", str::to_owned);
    let b = || desired_for("aws.other", |n| n.replacen("mst-", "mst-other.", 1));
    let first: SyncReport = run(a()).await;
    assert!(first.is_success());
    let a_state = running.emulator.dump();
    assert!(run(b()).await.is_success());

    // ... neither sees anything to do after the other ran, and A's groups are as A left them.
    running.emulator.clear_requests();
    let again_a = run(a()).await;
    let again_b = run(b()).await;
    assert!(
        again_a.plan.ops.is_empty(),
        "{}",
        again_a.plan.render_text()
    );
    assert!(
        again_b.plan.ops.is_empty(),
        "{}",
        again_b.plan.render_text()
    );
    assert_eq!(writes(), 0);
    let state = running.emulator.dump();
    for g in &a_state.groups {
        assert!(state.groups.contains(g), "{} unchanged", g.display_name);
    }

    // C: a third instance that wants A's very names. It reports the clash and touches nothing.
    let c = run(desired_for("aws.third", str::to_owned)).await;
    assert!(c.plan.ops.is_empty(), "{}", c.plan.render_text());
    assert!(
        c.plan
            .findings
            .iter()
            .any(|f| f.to_string().contains("is not ours; not created")),
        "{:?}",
        c.plan.findings
    );
    assert_eq!(writes(), 0);
    assert!(run(a()).await.plan.ops.is_empty());
}
