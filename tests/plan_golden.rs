//! Golden plans for the shipped sample snapshot: against an empty directory, a partly synced
//! one, a fully synced one, and after a change of `group-name-pattern`. Update the expected
//! files with `UPDATE_EXPECT=1 cargo test --test plan_golden` and review the diff.

use aws_replicator::config::Config;
use aws_replicator::desired::Desired;
use aws_replicator::desired::{Scope, Settings, desired};
use aws_replicator::format::Pattern;
use aws_replicator::model::GroupId;
use aws_replicator::observed::{Assignment, Observed, ObservedGroup};
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

/// The desired state written into `base` by hand, group by group, without the planner's
/// simulator (`apply_in_memory`): so "synced plans nothing" is not only checked against the
/// planner's own idea of what its plan does.
fn by_hand(desired: &Desired, base: &Observed) -> Observed {
    let mut out = base.clone();
    for (i, (external_id, g)) in desired.groups.iter().enumerate() {
        let id = GroupId::from(format!("hand-made-{i}").as_str());
        let members = g
            .members
            .iter()
            .filter_map(|euid| {
                base.users
                    .iter()
                    .find(|(_, name)| name.as_str().eq_ignore_ascii_case(euid.as_str()))
                    .map(|(id, _)| id.clone())
            })
            .collect();
        out.groups.push(ObservedGroup {
            id: id.clone(),
            name: g.name.clone(),
            external_id: Some(external_id.clone()),
            members,
        });
        for ps in g.permission_sets.iter() {
            out.assignments.insert(Assignment {
                account: g.account.clone(),
                permission_set: ps.clone(),
                group: id.clone(),
            });
        }
    }
    out
}

/// What a directory holds, without ids: (name, externalId, member names) per group and
/// (account, permission set, group name) per assignment.
type Shape = (
    Vec<(String, String, Vec<String>)>,
    Vec<(String, String, String)>,
);

fn shape(o: &Observed) -> Shape {
    let name_of = |id: &GroupId| {
        o.groups
            .iter()
            .find(|g| &g.id == id)
            .map(|g| g.name.to_string())
            .unwrap_or_default()
    };
    let mut groups: Vec<_> = o
        .groups
        .iter()
        .map(|g| {
            let mut members: Vec<String> =
                g.members.iter().map(|m| o.users[m].to_string()).collect();
            members.sort();
            let ext = g
                .external_id
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_default();
            (g.name.to_string(), ext, members)
        })
        .collect();
    groups.sort();
    let mut assignments: Vec<_> = o
        .assignments
        .iter()
        .map(|a| {
            (
                a.account.to_string(),
                a.permission_set.to_string(),
                name_of(&a.group),
            )
        })
        .collect();
    assignments.sort();
    (groups, assignments)
}

#[test]
fn a_directory_synced_by_hand_plans_nothing_and_equals_the_simulated_one() {
    let config = config();
    let sso = config.sso.as_ref().unwrap();
    let desired = desired(&snapshot(), &Settings::new(&config, sso), &Scope::All);
    let hand = by_hand(&desired, &users_only());
    let again = plan(&desired, &hand);
    assert!(again.ops.is_empty(), "{}", again.render_text());
    // Six groups (acme.web and globex.shop, three roles each), six assignments.
    let (groups, assignments) = shape(&hand);
    assert_eq!((groups.len(), assignments.len()), (6, 6));
    let simulated = apply_in_memory(&plan(&desired, &users_only()), &users_only());
    assert_eq!(shape(&simulated), shape(&hand));
}

/// "No changes" says AWS matches meshStack only when nothing is blocked: with held projects, a
/// user AWS lacks or a group kept for its assignments it says what stands in the way (the cases
/// for which `sync` exits 3 among them); with only informational findings it says it matches.
#[test]
fn no_changes_claims_a_match_only_when_nothing_is_blocked() {
    let config = config();
    let synced = apply_in_memory(&plan_for(&config, &observed()), &observed());
    let mut second = plan_for(&config, &synced);
    let line = second.summary_line();
    assert!(!line.contains("matches meshStack"), "{line}");
    assert!(
        line.contains("2 project(s) held (acme.data, globex.legacy)"),
        "{line}"
    );
    assert!(line.contains("heidi@initech.example"), "{line}");
    second.findings.retain(|f| {
        matches!(
            f,
            aws_replicator::finding::Finding::ForeignGroupIgnored { .. }
                | aws_replicator::finding::Finding::UserWithoutEuid { .. }
        )
    });
    assert!(!second.findings.is_empty());
    assert!(second.blocked().is_empty());
    assert_eq!(
        second.summary_line(),
        format!(
            "No changes. AWS IAM Identity Center matches meshStack ({} finding(s)).",
            second.findings.len()
        )
    );
}
