//! Issue #17: reconciling by change reaches the same AWS state as a full sync. Over random
//! sequences of meshStack changes and drift made by hand in AWS, one directory follows
//! `serve`'s path (a full run at start, then per step a run by change, a drift-scan cycle
//! and the runs it queues) and another a full `sync` per step; at the end both hold the same
//! groups, members and assignments, and no group twice.

use aws_replicator::apply::Options;
use aws_replicator::audit::Audit;
use aws_replicator::config::Config;
use aws_replicator::desired::{Desired, Scope, Settings, desired};
use aws_replicator::directory::{AccountAssignments, AssignmentReads, IdentityStore, World};
use aws_replicator::known::{Known, groups_of};
use aws_replicator::model::{GroupIdentity, ProjectKey, UserId, UserName};
use aws_replicator::observed::Observed;
use aws_replicator::scan::{Groups, Users};
use aws_replicator::snapshot::{Binding, Project, Snapshot, Subject, Tenant, User};
use aws_replicator::sync::{self, Settings as SyncSettings};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;

static CONFIG: LazyLock<Config> =
    LazyLock::new(|| Config::load(Path::new("config/demo.dhall")).unwrap());
const PLATFORM: &str = "aws.aws-meshcloud";
const ROLES: [&str; 3] = ["Project Admin", "Project User", "Project Reader"];
const PROJECTS: [(&str, &str); 4] = [("a", "p1"), ("a", "p2"), ("b", "p1"), ("b", "p3")];
/// Users 0–9 exist in AWS; 10 and 11 do not.
const USERS: usize = 12;
const IN_AWS: usize = 10;

/// What meshStack holds at one step: bindings (project, role, user) and the projects with a
/// tenant.
type MeshStack = (Vec<(usize, usize, usize)>, BTreeSet<usize>);

#[derive(Debug, Clone)]
enum Step {
    MeshStack(MeshStack),
    /// Drift by hand on the n-th group of ours: 0 adds a user, 1 empties it, 2 deletes it,
    /// 3 deletes its assignments.
    Drift(u8, usize, usize),
}

fn meshstack() -> impl Strategy<Value = MeshStack> {
    (
        proptest::collection::vec((0usize..4, 0usize..3, 0usize..USERS), 0..16),
        proptest::collection::btree_set(0usize..4, 0..=4),
    )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        meshstack().prop_map(Step::MeshStack),
        (0u8..4, 0usize..12, 0usize..USERS).prop_map(|(k, g, u)| Step::Drift(k, g, u)),
    ]
}

fn snapshot((bindings, tenants): &MeshStack) -> Snapshot {
    Snapshot {
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
        users: (0..USERS)
            .map(|i| User {
                username: format!("u{i}").into(),
                euid: Some(format!("user{i}@example.com")),
            })
            .collect(),
        groups: Vec::new(),
        bindings: bindings
            .iter()
            .map(|(p, r, u)| Binding {
                workspace: PROJECTS[*p].0.into(),
                project: PROJECTS[*p].1.into(),
                role: ROLES[*r].into(),
                subject: Subject::User(format!("u{u}").into()),
            })
            .collect(),
    }
}

fn desired_of(meshstack: &MeshStack) -> Desired {
    let sso = CONFIG.sso.as_ref().unwrap();
    desired(
        &snapshot(meshstack),
        &Settings::new(&CONFIG, sso),
        &Scope::All,
    )
}

fn world() -> World {
    World::new(Observed {
        users: (0..IN_AWS)
            .map(|i| {
                (
                    UserId::from(format!("uid-{i}")),
                    UserName::from(format!("user{i}@example.com")),
                )
            })
            .collect(),
        ..Observed::default()
    })
}

fn settings() -> SyncSettings {
    SyncSettings {
        reads: AssignmentReads::PerPair,
        options: Options::default(),
        guard: None,
    }
}

async fn full(world: &World, desired: &Desired) -> sync::SyncReport {
    let report = sync::sync(
        desired,
        world,
        world,
        settings(),
        &Audit::discard(),
        |_| {},
        &|_| {},
    )
    .await
    .unwrap();
    assert!(report.report.is_success(), "{:?}", report.report);
    report
}

/// A scheduled run in `serve`: the groups whose desired state changed, and the dirty ones.
async fn by_change(world: &World, known: &mut Known<u64>, current: &Desired) {
    let run = current.only(&known.to_reconcile(current));
    let report = sync::sync_changes(
        &run,
        known.managed(),
        None,
        world,
        world,
        settings(),
        &Audit::discard(),
        |_| {},
        &|_| {},
    )
    .await
    .unwrap();
    assert!(report.report.is_success(), "{:?}", report.report);
    known.record_changes(current, &run, &groups_of(&report.remaining), 0);
}

/// One drift-scan cycle, slice by slice, and the scoped runs it queues for what it found.
async fn scan_cycle(world: &World, known: &mut Known<u64>, current: &Desired) {
    let mut after: Option<ProjectKey> = None;
    let users = Users::new(world.list_users().await.unwrap());
    let groups = Groups::new(PLATFORM, world.list_groups().await.unwrap());
    known.listed(groups.projects(), 0);
    loop {
        let slice = known.scan_slice(after.as_ref(), 2);
        if slice.is_empty() {
            return;
        }
        let narrowed = known
            .desired()
            .within(&slice.iter().cloned().collect::<BTreeSet<_>>());
        let found = sync::scan_slice(
            world,
            world,
            narrowed,
            AssignmentReads::PerPair,
            &groups,
            &users,
        )
        .await
        .unwrap();
        known.scanned(&slice, &found.drifted, &found.seen, 0);
        let projects: BTreeSet<ProjectKey> = found
            .drifted
            .iter()
            .filter_map(|e| GroupIdentity::parse(PLATFORM, e.as_str()))
            .map(|i| i.project)
            .collect();
        if !projects.is_empty() {
            let scoped = current.within(&projects);
            let report = full(world, &scoped).await;
            known.record(&scoped, &groups_of(&report.remaining), &report.seen, 0);
        }
        after = slice.last().cloned();
    }
}

async fn drift(world: &World, kind: u8, n: usize, user: usize) {
    let ours: Vec<_> = world
        .dump()
        .groups
        .into_iter()
        .filter(|g| g.external_id.is_some())
        .collect();
    if ours.is_empty() {
        return;
    }
    let group = &ours[n % ours.len()];
    match kind {
        0 => {
            let user = UserId::from(format!("uid-{}", user % IN_AWS));
            if !group.members.contains(&user) {
                world.add_members(&group.id, &[user]).await.unwrap();
            }
        }
        1 => {
            let members: Vec<UserId> = group.members.iter().cloned().collect();
            if !members.is_empty() {
                world.remove_members(&group.id, &members).await.unwrap();
            }
        }
        2 => {
            world.delete_group(&group.id).await.unwrap();
        }
        _ => {
            let assignments: Vec<_> = world
                .dump()
                .assignments
                .into_iter()
                .filter(|a| a.group == group.id)
                .collect();
            for a in assignments {
                world.delete_assignment(&a).await.unwrap();
            }
        }
    }
}

/// Groups by external id: name, members by userName, assignments; ids differ between worlds.
type Shape = BTreeMap<String, (String, BTreeSet<String>, BTreeSet<(String, String)>)>;

fn shape(world: &World) -> Shape {
    let state = world.dump();
    let mut out = Shape::new();
    for g in &state.groups {
        let ext = g.external_id.as_ref().unwrap().to_string();
        let members = g
            .members
            .iter()
            .map(|m| state.users[m].to_string())
            .collect();
        let assignments = state
            .assignments
            .iter()
            .filter(|a| a.group == g.id)
            .map(|a| (a.account.to_string(), a.permission_set.to_string()))
            .collect();
        let before = out.insert(ext.clone(), (g.name.to_string(), members, assignments));
        assert!(before.is_none(), "group {ext} twice");
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn by_change_reaches_what_a_full_sync_reaches(
        start in meshstack(),
        steps in proptest::collection::vec(step(), 1..12),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let (incremental, whole) = (world(), world());
            let mut current = desired_of(&start);
            let report = full(&incremental, &current).await;
            let mut known =
                Known::new(current.clone(), &groups_of(&report.remaining), &report.seen, 0u64);
            full(&whole, &current).await;
            for step in &steps {
                match step {
                    Step::MeshStack(m) => current = desired_of(m),
                    Step::Drift(kind, n, user) => {
                        drift(&incremental, *kind, *n, *user).await;
                        drift(&whole, *kind, *n, *user).await;
                    }
                }
                by_change(&incremental, &mut known, &current).await;
                scan_cycle(&incremental, &mut known, &current).await;
                by_change(&incremental, &mut known, &current).await;
                full(&whole, &current).await;
                prop_assert_eq!(shape(&incremental), shape(&whole), "after {:?}", step);
            }
            Ok(())
        })?;
    }
}
