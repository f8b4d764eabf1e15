//! AWS's hard limits said as findings before any write: an identity store holds at most
//! 100,000 groups (AWS's quota, written here as the literal), so a plan that would pass it says
//! so with the numbers.

use aws_replicator::config::Config;
use aws_replicator::desired::{Scope, Settings, desired};
use aws_replicator::finding::Finding;
use aws_replicator::model::{GroupId, GroupName, ProjectKey};
use aws_replicator::observed::{Observed, ObservedGroup};
use aws_replicator::plan::plan;
use aws_replicator::snapshot::Snapshot;
use std::path::Path;

fn sample(scope: &Scope) -> aws_replicator::desired::Desired {
    let config = Config::load(Path::new("config/demo.dhall")).unwrap();
    let snapshot = Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap();
    desired(
        &snapshot,
        &Settings::new(&config, config.sso.as_ref().unwrap()),
        scope,
    )
}

/// A store already holding `n` groups of the customer's IdP.
fn store_with(n: usize) -> Observed {
    let users: Observed =
        serde_json::from_str(&std::fs::read_to_string("config/sample-observed.json").unwrap())
            .unwrap();
    Observed {
        users: users.users,
        groups: (0..n)
            .map(|i| ObservedGroup {
                id: GroupId::from(format!("idp-{i:06}").as_str()),
                name: GroupName::from(format!("team-{i:06}").as_str()),
                external_id: None,
                members: Default::default(),
            })
            .collect(),
        ..Observed::default()
    }
}

fn quota(findings: &[Finding]) -> Option<&Finding> {
    findings
        .iter()
        .find(|f| matches!(f, Finding::StoreGroupQuota { .. }))
}

#[test]
fn a_plan_past_the_store_group_quota_says_so_with_the_numbers() {
    let d = sample(&Scope::All);
    let creates = plan(&d, &store_with(0)).summary.groups_to_create;
    assert!(creates > 0);

    // Room for all of them: no finding.
    let fits = plan(&d, &store_with(100_000 - creates));
    assert_eq!(quota(&fits.findings), None);

    // One group too many.
    let over = plan(&d, &store_with(100_000 - creates + 1));
    let finding = quota(&over.findings).expect("the quota is named");
    assert_eq!(
        finding,
        &Finding::StoreGroupQuota {
            wanted: d.groups.len(),
            in_store: Some(100_001),
            limit: 100_000,
        }
    );
    let text = finding.to_string();
    assert!(text.contains("100001") && text.contains("100000"), "{text}");
}

#[test]
fn a_scoped_plan_does_not_guess_the_store_size() {
    let d = sample(&Scope::projects([ProjectKey::new("acme", "web")]));
    let scoped = plan(&d, &store_with(100_000));
    assert_eq!(quota(&scoped.findings), None);
}
