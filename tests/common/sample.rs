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
