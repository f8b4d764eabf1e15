//! Properties of `plan` over random meshStack snapshots and random directories:
//! applying a plan and planning again gives nothing to do; no operation names a group that is
//! not ours; every operation is within AWS's limits.

use aws_replicator::config::Config;
use aws_replicator::desired::{Scope, Settings, desired};
use aws_replicator::model::{
    ExternalId, GroupId, GroupIdentity, GroupName, ProjectKey, RoleId, UserId, UserName,
};
use aws_replicator::observed::{Assignment, AssignmentCoverage, Observed, ObservedGroup};
use aws_replicator::plan::{Op, apply_in_memory, plan};

/// AWS's limit on members inline in a create and member changes in one PATCH (the SCIM guide's
/// PatchGroup and CreateGroup pages), as a literal: not the constant of the code under test.
const AWS_MAX_MEMBERS: usize = 100;
use aws_replicator::snapshot::{Binding, Project, Snapshot, Subject, Tenant, User, UserGroup};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;

static CONFIG: LazyLock<Config> =
    LazyLock::new(|| Config::load(Path::new("config/demo.dhall")).unwrap());
const PLATFORM: &str = "aws.aws-meshcloud";
const ROLES: [(&str, &str); 3] = [
    ("admin", "Project Admin"),
    ("user", "Project User"),
    ("reader", "Project Reader"),
];
const PROJECTS: [(&str, &str); 4] = [("a", "p1"), ("a", "p2"), ("b", "p1"), ("b", "p3")];

#[derive(Debug, Clone)]
struct World {
    snapshot: Snapshot,
    observed: Observed,
}

fn euid(i: usize) -> String {
    format!("user{i}@example.com")
}

fn world() -> impl Strategy<Value = World> {
    (
        proptest::collection::vec((0usize..4, 0usize..3, 0usize..160), 0..60), // bindings
        proptest::collection::btree_set(0usize..4, 0..=4), // projects with tenant
        proptest::collection::btree_set(0usize..160, 0..20), // users missing in AWS
        proptest::collection::vec(
            (
                0usize..4,
                0usize..3,
                any::<bool>(),
                proptest::collection::btree_set(0usize..160, 0..120),
                any::<bool>(),
            ),
            0..10,
        ), // observed groups
        proptest::collection::vec(0u8..6, 3),              // foreign groups kinds
        any::<bool>(),                                     // a big group binding
        0usize..160,                                       // a user without euid
    )
        .prop_map(
            |(bindings, tenants, aws_users, groups, foreign, big, no_euid)| {
                let mut snapshot = Snapshot {
                    format_version: 1,
                    platform: PLATFORM.into(),
                    roles: Vec::new(),
                    projects: PROJECTS
                        .iter()
                        .map(|(w, p)| Project {
                            workspace: (*w).into(),
                            identifier: (*p).into(),
                            tags: BTreeMap::new(),
                        })
                        .collect(),
                    tenants: tenants
                        .iter()
                        .map(|i| Tenant {
                            workspace: PROJECTS[*i].0.into(),
                            project: PROJECTS[*i].1.into(),
                            account_id: Some(format!("{:012}", 100 + i)),
                            landing_zone: None,
                        })
                        .collect(),
                    users: (0..160)
                        .map(|i| User {
                            username: format!("u{i}").into(),
                            euid: (i != no_euid).then(|| euid(i)),
                        })
                        .collect(),
                    groups: vec![UserGroup {
                        workspace: "a".into(),
                        identifier: "everyone".into(),
                        members: (0..150).map(|i| format!("u{i}").into()).collect(),
                    }],
                    bindings: bindings
                        .iter()
                        .map(|(p, r, u)| Binding {
                            workspace: PROJECTS[*p].0.into(),
                            project: PROJECTS[*p].1.into(),
                            role: ROLES[*r].1.into(),
                            subject: Subject::User(format!("u{u}").into()),
                        })
                        .collect(),
                };
                if big {
                    snapshot.bindings.push(Binding {
                        workspace: "a".into(),
                        project: "p1".into(),
                        role: "Project User".into(),
                        subject: Subject::Group("everyone".into()),
                    });
                }
                // Some AWS users differ from the euid in case only.
                let users: BTreeMap<UserId, UserName> = (0..160)
                    .filter(|i| !aws_users.contains(i))
                    .map(|i| {
                        let name = if i % 7 == 0 {
                            euid(i).to_uppercase()
                        } else {
                            euid(i)
                        };
                        (UserId::from(format!("uid-{i}")), UserName::from(name))
                    })
                    .collect();
                let mut observed = Observed {
                    users,
                    ..Observed::default()
                };
                for (n, (p, r, old_name, members, assigned)) in groups.into_iter().enumerate() {
                    let identity = GroupIdentity {
                        project: ProjectKey::new(PROJECTS[p].0, PROJECTS[p].1),
                        role: RoleId::from(ROLES[r].0),
                    };
                    let ext = identity.external_id(PLATFORM);
                    if observed
                        .groups
                        .iter()
                        .any(|g| g.external_id.as_ref() == Some(&ext))
                    {
                        continue;
                    }
                    let id = GroupId::from(format!("gid-{n}"));
                    let name = if old_name {
                        format!("mst-old-{n}")
                    } else {
                        format!("mst-{}.{}.x{}", PROJECTS[p].0, PROJECTS[p].1, r)
                    };
                    observed.groups.push(ObservedGroup {
                        id: id.clone(),
                        name: GroupName::from(name),
                        external_id: Some(ext),
                        members: members
                            .iter()
                            .filter(|i| {
                                observed
                                    .users
                                    .contains_key(&UserId::from(format!("uid-{i}")))
                            })
                            .map(|i| UserId::from(format!("uid-{i}")))
                            .collect(),
                    });
                    if assigned {
                        observed.assignments.insert(Assignment {
                            account: format!("{:012}", 100 + p).into(),
                            permission_set: "arn:aws:sso:::permissionSet/ssoins-123456789/ps-stale"
                                .into(),
                            group: id,
                        });
                    }
                }
                for (n, kind) in foreign.into_iter().enumerate() {
                    let (name, external_id) = match kind {
                        0 => (format!("mst-foreign-{n}"), None),
                        1 => ("mst-a.p1.meshstack-project-admin".to_owned(), None),
                        2 => (
                            format!("mst-other-{n}"),
                            Some(format!("mst:v1:aws.elsewhere:a:p1:admin{n}")),
                        ),
                        3 => (format!("team-{n}"), Some("okta-1".to_owned())),
                        _ => (
                            format!("no-prefix-{n}"),
                            Some(
                                GroupIdentity {
                                    project: ProjectKey::new("b", "p3"),
                                    role: RoleId::from("reader"),
                                }
                                .external_id(PLATFORM)
                                .to_string(),
                            ),
                        ),
                    };
                    observed.groups.push(ObservedGroup {
                        id: GroupId::from(format!("foreign-{n}")),
                        name: GroupName::from(name),
                        external_id: external_id.map(ExternalId::from),
                        members: BTreeSet::new(),
                    });
                }
                World { snapshot, observed }
            },
        )
}

fn is_ours(observed: &Observed, op: &Op) -> bool {
    let g = op.group();
    let marked = GroupIdentity::parse(PLATFORM, g.external_id.as_str()).is_some();
    let observed_ok = match &g.id {
        None => true,
        Some(id) => observed.groups.iter().any(|o| {
            &o.id == id
                && o.name.as_str().starts_with("mst-")
                && o.external_id.as_ref() == Some(&g.external_id)
        }),
    };
    marked && g.name.as_str().starts_with("mst-") && observed_ok
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn planning_after_applying_finds_nothing_to_do(w in world()) {
        for may_delete in [false, true] {
            for coverage in [AssignmentCoverage::OurGroups, AssignmentCoverage::DesiredPairs] {
                let sso = CONFIG.sso.as_ref().unwrap();
                let mut settings = Settings::new(&CONFIG, sso);
                settings.policy.may_delete_assignments = may_delete;
                let desired = desired(&w.snapshot, &settings, &Scope::All);
                let observed = Observed { assignment_coverage: coverage, ..w.observed.clone() };
                let first = plan(&desired, &observed);
                let after = apply_in_memory(&first, &observed);
                let second = plan(&desired, &after);
                prop_assert!(second.ops.is_empty(), "second plan:\n{}", second.render_text());
            }
        }
    }

    /// Deleting a group leaves its assignments behind (aws-sso.md §F.10): when they were not
    /// all read (per pair, the seed's policy), no group is deleted, whatever the role may do.
    #[test]
    fn a_group_whose_assignments_were_not_all_read_is_never_deleted(w in world()) {
        for may_delete in [false, true] {
            let sso = CONFIG.sso.as_ref().unwrap();
            let mut settings = Settings::new(&CONFIG, sso);
            settings.policy.may_delete_assignments = may_delete;
            let desired = desired(&w.snapshot, &settings, &Scope::All);
            let observed = Observed {
                assignment_coverage: AssignmentCoverage::DesiredPairs,
                ..w.observed.clone()
            };
            let p = plan(&desired, &observed);
            let deletes = p.ops.iter().any(|op| matches!(op, Op::DeleteGroup { .. }));
            prop_assert!(!deletes, "{}", p.render_text());
        }
    }

    #[test]
    fn only_our_groups_are_touched_and_limits_hold(w in world()) {
        let sso = CONFIG.sso.as_ref().unwrap();
        let desired = desired(&w.snapshot, &Settings::new(&CONFIG, sso), &Scope::All);
        let p = plan(&desired, &w.observed);
        for op in &p.ops {
            prop_assert!(is_ours(&w.observed, op), "not ours: {op:?}");
            match op {
                Op::CreateGroup { members, .. } => prop_assert!(members.len() <= AWS_MAX_MEMBERS),
                Op::AddMembers { members, .. } | Op::RemoveMembers { members, .. } => {
                    prop_assert!(!members.is_empty() && members.len() <= AWS_MAX_MEMBERS)
                }
                _ => {}
            }
        }
    }

    #[test]
    fn a_scoped_plan_touches_only_its_project(w in world(), pick in 0usize..4) {
        let sso = CONFIG.sso.as_ref().unwrap();
        let key = ProjectKey::new(PROJECTS[pick].0, PROJECTS[pick].1);
        let scope = Scope::projects([key.clone()]);
        let desired = desired(&w.snapshot, &Settings::new(&CONFIG, sso), &scope);
        let p = plan(&desired, &w.observed);
        for op in &p.ops {
            let identity = GroupIdentity::parse(PLATFORM, op.group().external_id.as_str()).unwrap();
            prop_assert_eq!(&identity.project, &key);
        }
    }
}

/// The same through the directory seams: apply the plan to a `World` with the sequential
/// executor, observe it again, and the next plan is empty.
#[test]
fn applying_through_the_world_converges() {
    use aws_replicator::apply::{Options, apply};
    use aws_replicator::audit::Audit;
    use aws_replicator::directory::{AssignmentReads, World as Directory, observe};
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runner
        .run(&world(), |w| {
            let sso = CONFIG.sso.as_ref().unwrap();
            let desired = desired(&w.snapshot, &Settings::new(&CONFIG, sso), &Scope::All);
            let directory = Directory::new(w.observed.clone());
            runtime.block_on(async {
                let first = plan(
                    &desired,
                    &observe(&directory, &directory, &desired, AssignmentReads::PerGroup)
                        .await
                        .unwrap(),
                );
                let report = apply(
                    &first,
                    &directory,
                    &directory,
                    Options::default(),
                    &Audit::discard(),
                    &|_| {},
                )
                .await;
                prop_assert!(report.is_success(), "{report:?}");
                let second = plan(
                    &desired,
                    &observe(&directory, &directory, &desired, AssignmentReads::PerGroup)
                        .await
                        .unwrap(),
                );
                prop_assert!(second.ops.is_empty(), "{}", second.render_text());
                Ok(())
            })
        })
        .unwrap();
}
