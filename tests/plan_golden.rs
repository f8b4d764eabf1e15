//! Golden plans for the shipped sample snapshot: against an empty directory, a partly synced
//! one, a fully synced one, and after a change of `group-name-pattern`. Update the expected
//! files with `UPDATE_EXPECT=1 cargo test --test plan_golden` and review the diff.

use aws_replicator::config::Config;
use aws_replicator::desired::{Scope, Settings, desired};
use aws_replicator::format::Pattern;
use aws_replicator::observed::Observed;
use aws_replicator::plan::{apply_in_memory, plan};
use aws_replicator::snapshot::Snapshot;
use expect_test::expect_file;
use std::path::Path;

fn config() -> Config {
    Config::load(Path::new("config/demo.dhall")).expect("the demo config is valid")
}

fn snapshot() -> Snapshot {
    Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap()
}

fn observed() -> Observed {
    serde_json::from_str(&std::fs::read_to_string("config/sample-observed.json").unwrap()).unwrap()
}

fn users_only() -> Observed {
    Observed {
        users: observed().users,
        ..Observed::default()
    }
}

fn plan_for(config: &Config, observed: &Observed) -> aws_replicator::plan::Plan {
    let sso = config.sso.as_ref().unwrap();
    let desired = desired(&snapshot(), &Settings::new(config, sso), &Scope::All);
    plan(&desired, observed)
}

#[test]
fn against_an_empty_directory() {
    let plan = plan_for(&config(), &users_only());
    expect_file!["golden/plan_empty.txt"].assert_eq(&plan.render_text());
}

#[test]
fn against_a_partly_synced_directory() {
    let plan = plan_for(&config(), &observed());
    expect_file!["golden/plan_partly_synced.txt"].assert_eq(&plan.render_text());
    expect_file!["golden/plan_partly_synced.json"]
        .assert_eq(&(serde_json::to_string_pretty(&plan).unwrap() + "\n"));
}

#[test]
fn against_a_fully_synced_directory_is_empty() {
    let config = config();
    let first = plan_for(&config, &observed());
    let synced = apply_in_memory(&first, &observed());
    let second = plan_for(&config, &synced);
    assert!(second.ops.is_empty(), "{}", second.render_text());
    expect_file!["golden/plan_synced.txt"].assert_eq(&second.render_text());
}

#[test]
fn a_new_name_pattern_renames_and_changes_nothing_else() {
    let mut config = config();
    let synced = apply_in_memory(&plan_for(&config, &users_only()), &users_only());
    let before = synced.assignments.clone();
    config.sso.as_mut().unwrap().group_pattern = Pattern::compile("%2$s.%1$s.%4$s", 4).unwrap();
    let renamed = plan_for(&config, &synced);
    assert!(
        renamed
            .ops
            .iter()
            .all(|op| matches!(op, aws_replicator::plan::Op::RenameGroup { .. })),
        "{}",
        renamed.render_text()
    );
    expect_file!["golden/plan_renamed.txt"].assert_eq(&renamed.render_text());
    let after = apply_in_memory(&renamed, &synced);
    assert_eq!(after.assignments, before, "renames keep every assignment");
    assert!(plan_for(&config, &after).ops.is_empty());
}
