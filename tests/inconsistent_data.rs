//! meshStack data that contradicts itself holds a project rather than revoking access: a binding
//! to a user the user listing does not hold, or to a user group the group listing does not
//! hold, is what a listing cut short looks like. The project's groups are then neither added
//! to nor emptied, and a finding says why.

mod common;

use aws_replicator::config::Config;
use aws_replicator::desired::{Scope, Settings, desired};
use aws_replicator::finding::Finding;
use aws_replicator::model::ProjectKey;
use aws_replicator::observed::Observed;
use aws_replicator::plan::{Op, Plan, plan};
use aws_replicator::snapshot::Snapshot;
use std::path::Path;

fn config() -> Config {
    Config::load(Path::new("config/demo.dhall")).unwrap()
}

fn snapshot() -> Snapshot {
    Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap()
}

fn plan_of(config: &Config, snapshot: &Snapshot, observed: &Observed) -> (Plan, Vec<Finding>) {
    let d = desired(
        snapshot,
        &Settings::new(config, config.sso.as_ref().unwrap()),
        &Scope::All,
    );
    let findings = d.findings.iter().cloned().collect();
    (plan(&d, observed), findings)
}

/// The sample, synced into a directory that holds its users.
fn synced(config: &Config) -> Observed {
    let users: Observed =
        serde_json::from_str(&std::fs::read_to_string("config/sample-observed.json").unwrap())
            .unwrap();
    let empty = Observed {
        users: users.users,
        ..Observed::default()
    };
    let (first, _) = plan_of(config, &snapshot(), &empty);
    let synced = common::applied(&first, &empty);
    assert!(plan_of(config, &snapshot(), &synced).0.ops.is_empty());
    synced
}

fn touches(plan: &Plan, project: &str) -> Vec<String> {
    plan.ops
        .iter()
        .filter(|op| op.group().name.as_str().contains(project))
        .map(|op| format!("{op:?}"))
        .collect()
}

#[test]
fn a_binding_to_a_user_the_listing_lacks_holds_the_project() {
    let config = config();
    let synced = synced(&config);
    let mut short = snapshot();
    // The user listing came back without bob; his bindings in acme.web are still there.
    short.users.retain(|u| u.username.as_str() != "bob");
    let (plan, findings) = plan_of(&config, &short, &synced);
    assert_eq!(touches(&plan, "acme.web"), Vec::<String>::new());
    assert!(
        !plan
            .ops
            .iter()
            .any(|op| matches!(op, Op::RemoveMembers { .. }))
    );
    let held = findings.iter().find(|f| {
        matches!(f, Finding::BindingToUnknownUser { project, username }
            if *project == ProjectKey::new("acme", "web") && username.as_str() == "bob")
    });
    let held = held.expect("a finding names bob and acme.web");
    assert!(held.to_string().contains("the project is held"), "{held}");
}

#[test]
fn a_binding_to_a_user_group_the_listing_lacks_holds_the_project() {
    let config = config();
    let synced = synced(&config);
    let mut short = snapshot();
    // The group listing came back without globex's devs; the group binding is still there.
    short.groups.retain(|g| g.identifier != "devs");
    let (plan, findings) = plan_of(&config, &short, &synced);
    assert_eq!(touches(&plan, "globex.shop"), Vec::<String>::new());
    assert!(findings.iter().any(|f| matches!(f,
        Finding::BindingToUnknownGroup { project, group }
            if *project == ProjectKey::new("globex", "shop") && group == "devs")));
}

#[test]
fn a_group_member_the_user_listing_lacks_holds_the_project() {
    let config = config();
    let synced = synced(&config);
    let mut short = snapshot();
    // frank is in devs, bound to globex.shop; the user listing lost him.
    short.users.retain(|u| u.username.as_str() != "frank");
    let (plan, _) = plan_of(&config, &short, &synced);
    assert_eq!(touches(&plan, "globex.shop"), Vec::<String>::new());
}
