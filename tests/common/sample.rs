//! The shipped sample, as the sync tests use it: desired state from `config/demo.dhall` and
//! `config/sample-snapshot.json`, and the AWS users the customer's IdP would have provisioned.

use aws_replicator::config::Config;
use aws_replicator::desired::{Desired, Scope, Settings, desired};
use aws_replicator::emulator::Emulator;
use aws_replicator::snapshot::Snapshot;
use std::path::Path;

/// The sample's euids that exist in AWS (dave has no euid, heidi is not provisioned).
pub const AWS_USERS: [&str; 6] = [
    "alice@acme.example",
    "bob@acme.example",
    "carol@globex.example",
    "erin@globex.example",
    "frank@globex.example",
    "grace@globex.example",
];

pub fn desired_state() -> Desired {
    let config = Config::load(Path::new("config/demo.dhall")).unwrap();
    let snapshot = Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap();
    desired(
        &snapshot,
        &Settings::new(&config, config.sso.as_ref().unwrap()),
        &Scope::All,
    )
}

pub fn provision_users(emulator: &Emulator) {
    for user in AWS_USERS {
        emulator.add_user(user);
    }
}

/// The organization and instance the sample lives in: the demo config's three permission sets
/// and the sample's accounts (with the management and automation accounts), so that the
/// emulator refuses an assignment anywhere else, as AWS would.
pub fn provision_organization(emulator: &Emulator) {
    for ps in ["ps-123456789", "ps-456789123", "ps-789123456"] {
        emulator.add_permission_set(&format!(
            "arn:aws:sso:::permissionSet/ssoins-123456789/{ps}"
        ));
    }
    for account in [
        "111111111111",
        "222222222222",
        "333333333333",
        "123456789012",
        "210987654321",
    ] {
        emulator.add_account(account);
    }
}

/// A meshStack change to a copy of the sample snapshot at `path`: alice becomes a reader of
/// globex.shop (one membership more in one group).
pub fn alice_reads_shop(path: &Path) {
    let mut snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    snapshot["bindings"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "workspace": "globex", "project": "shop", "role": "Project Reader",
            "subject": {"user": "alice"}
        }));
    std::fs::write(path, serde_json::to_vec_pretty(&snapshot).unwrap()).unwrap();
}

/// The reader role's mapping, as `config/demo.dhall` writes it: a test removes it to change
/// the configuration.
pub const READER_MAPPING: &str = r#"              , { mapKey = "reader"
                , mapValue =
                  { aws-role-name = "meshstack-project-reader"
                  , permission-set-arns = [ permissionSet "ps-789123456" ]
                  }
                }
"#;

/// `projects` projects of three roles, each group with 3 of 1,000 users (issue #17's shape).
pub fn estate(projects: usize) -> aws_replicator::snapshot::Snapshot {
    use aws_replicator::snapshot::{Binding, Project, Snapshot, Subject, Tenant, User};
    let mut snapshot = Snapshot {
        format_version: 1,
        platform: "aws.aws-meshcloud".into(),
        roles: Vec::new(),
        projects: Vec::new(),
        tenants: Vec::new(),
        users: (0..1000)
            .map(|u| User {
                username: format!("user{u}").into(),
                euid: Some(format!("user{u}@example.com")),
            })
            .collect(),
        groups: Vec::new(),
        bindings: Vec::new(),
    };
    for p in 0..projects {
        let (w, id) = (format!("ws{}", p / 10), format!("project-{p}"));
        snapshot.projects.push(Project {
            workspace: w.clone().into(),
            identifier: id.clone().into(),
            tags: Default::default(),
        });
        snapshot.tenants.push(Tenant {
            workspace: w.clone().into(),
            project: id.clone().into(),
            account_id: Some(format!("{:012}", 100_000_000_000u64 + p as u64)),
            landing_zone: None,
        });
        for (r, role) in ["Project Admin", "Project User", "Project Reader"]
            .into_iter()
            .enumerate()
        {
            for m in 0..3 {
                snapshot.bindings.push(Binding {
                    workspace: w.clone().into(),
                    project: id.clone().into(),
                    role: role.into(),
                    subject: Subject::User(
                        format!("user{}", (p * 7 + r * 13 + m * 101) % 1000).into(),
                    ),
                });
            }
        }
    }
    snapshot
}

/// AWS holding `desired` exactly, as a replicator that had synced it would have left it (the
/// users must exist in the emulator).
pub fn synced(emulator: &Emulator, desired: &Desired) {
    use aws_replicator::emulator::store::{Assignment, Group};
    let mut state = emulator.dump();
    let ids: std::collections::BTreeMap<String, String> = state
        .users
        .iter()
        .map(|u| (u.user_name.clone(), u.id.clone()))
        .collect();
    for (n, (external_id, group)) in desired.groups.iter().enumerate() {
        let id = format!("9067d0a3c1-{:08x}-0000-4000-8000-{:012x}", n + 1, n + 1);
        state.groups.push(Group {
            id: id.clone(),
            display_name: group.name.to_string(),
            external_id: Some(external_id.to_string()),
            members: group
                .members
                .iter()
                .map(|m| ids[m.as_str()].clone())
                .collect(),
        });
        for ps in group.permission_sets.iter() {
            state.assignments.push(Assignment {
                account_id: group.account.to_string(),
                permission_set_arn: ps.to_string(),
                principal_type: "GROUP".into(),
                principal_id: id.clone(),
            });
        }
    }
    emulator.load(state);
}

/// The record a replicator that had synced `desired` would have saved (the text of
/// `replicator.state` or of the Lease annotation), confirming the projects `confirmed` accepts.
pub fn record(
    desired: &Desired,
    confirmed: impl Fn(&aws_replicator::model::ProjectKey) -> bool,
    written_by: &str,
) -> String {
    use aws_replicator::engine::{Record, digest};
    let mut record = Record::new(&desired.platform, desired.roles.iter().cloned());
    let absent = digest::absent(desired);
    for (project, digest) in digest::project_digests(desired) {
        if confirmed(&project) {
            record.confirm(&project, digest, absent, 0u64);
        }
    }
    serde_json::to_string(&record.save(written_by, "then")).unwrap()
}

/// The desired groups outside `skip`'s projects that AWS does not hold exactly: their name,
/// members and assignments, each group once.
pub fn out_of_sync(
    emulator: &Emulator,
    desired: &Desired,
    skip: impl Fn(&aws_replicator::model::ProjectKey) -> bool,
) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let state = emulator.dump();
    let names: BTreeMap<&str, &str> = state
        .users
        .iter()
        .map(|u| (u.id.as_str(), u.user_name.as_str()))
        .collect();
    let mut wrong = Vec::new();
    for group in desired.groups.values() {
        if skip(&group.identity.project) {
            continue;
        }
        let held: Vec<_> = state
            .groups
            .iter()
            .filter(|g| g.display_name == group.name.as_str())
            .collect();
        let [held] = held[..] else {
            wrong.push(format!("{}: held {} times", group.name, held.len()));
            continue;
        };
        let members: BTreeSet<&str> = held.members.iter().map(|m| names[m.as_str()]).collect();
        let wanted: BTreeSet<&str> = group.members.iter().map(|m| m.as_str()).collect();
        if members != wanted {
            wrong.push(format!(
                "{}: members {members:?}, wanted {wanted:?}",
                group.name
            ));
        }
        let pairs: BTreeSet<&str> = state
            .assignments
            .iter()
            .filter(|a| a.principal_id == held.id && a.account_id == group.account.as_str())
            .map(|a| a.permission_set_arn.as_str())
            .collect();
        let wanted: BTreeSet<&str> = group.permission_sets.iter().map(|p| p.as_str()).collect();
        if pairs != wanted {
            wrong.push(format!(
                "{}: assignments {pairs:?}, wanted {wanted:?}",
                group.name
            ));
        }
    }
    wrong
}
