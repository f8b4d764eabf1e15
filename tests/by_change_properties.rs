//! Issues #17 and #25: `serve`'s engine reaches the same AWS state as a full sync. Over random
//! sequences of meshStack changes, drift made by hand in AWS and restarts (with the record,
//! and with the reader role's mapping removed or restored), one directory follows `serve`'s
//! path (the engine's read, its queue worked batch by batch, a drift-scan cycle after drift)
//! and another a full `sync` per step; after every step both hold the same groups, members
//! and assignments, and no group twice.

mod common;

use aws_replicator::apply::Options;
use aws_replicator::audit::Audit;
use aws_replicator::config::Config;
use aws_replicator::desired::{Desired, Scope, Settings, desired};
use aws_replicator::directory::{AccountAssignments, AssignmentReads, IdentityStore, World};
use aws_replicator::engine::reconcile::reconcile;
use aws_replicator::model::{GroupIdentity, ProjectKey, UserId, UserName};
use aws_replicator::observed::Observed;
use aws_replicator::scan::{Groups, Users};
use aws_replicator::snapshot::{Binding, Project, Snapshot, Subject, Tenant, User};
use aws_replicator::sync::{self, Settings as SyncSettings};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

static CONFIG: LazyLock<Config> =
    LazyLock::new(|| Config::load(Path::new("config/demo.dhall")).unwrap());
/// The same configuration without the reader role's mapping: a config change in a rolling
/// update.
static WITHOUT_READER: LazyLock<Config> = LazyLock::new(|| {
    let types = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/types/package.dhall");
    let text = std::fs::read_to_string("config/demo.dhall")
        .unwrap()
        .replace("./types/package.dhall", types.to_str().unwrap());
    let without = text.replace(common::sample::READER_MAPPING, "");
    assert_ne!(text, without, "config/demo.dhall maps the reader role");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("without-reader.dhall");
    std::fs::write(&path, without).unwrap();
    Config::load(&path).unwrap()
});
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
    /// `serve` restarts with its record, with the reader role mapped (true) or not.
    Restart(bool),
}

fn meshstack() -> impl Strategy<Value = MeshStack> {
    (
        proptest::collection::vec((0usize..4, 0usize..3, 0usize..USERS), 0..16),
        proptest::collection::btree_set(0usize..4, 0..=4),
    )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => meshstack().prop_map(Step::MeshStack),
        3 => (0u8..4, 0usize..12, 0usize..USERS).prop_map(|(k, g, u)| Step::Drift(k, g, u)),
        1 => any::<bool>().prop_map(Step::Restart),
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

fn desired_of(meshstack: &MeshStack, reader: bool) -> Desired {
    let config: &Config = if reader { &CONFIG } else { &WITHOUT_READER };
    let sso = config.sso.as_ref().unwrap();
    desired(
        &snapshot(meshstack),
        &Settings::new(config, sso),
        &Scope::All,
    )
}

/// A new engine, as a `serve` process starts, with the record an earlier one saved.
fn engine(reader: bool, saved: Option<aws_replicator::engine::Saved>) -> Engine {
    let config: &Config = if reader { &CONFIG } else { &WITHOUT_READER };
    let roles = config.sso.as_ref().unwrap().roles.keys().cloned().collect();
    Engine::new(PLATFORM, roles, saved)
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
        withhold_removals: false,
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

/// `serve`'s engine over `world`: its record and queue, and the configuration's roles.
type Engine = aws_replicator::engine::Engine<Duration>;

/// The reconciler in `serve`: every batch the queue hands out, reconciled and settled.
async fn drain(world: &World, engine: &mut Engine) {
    loop {
        let batch = engine.batch(3, Duration::ZERO);
        if batch.is_empty() {
            return;
        }
        let projects: BTreeSet<ProjectKey> = batch.iter().map(|w| w.project.clone()).collect();
        let slice = engine.slice(&projects).unwrap();
        let report = reconcile(
            &slice,
            engine.managed(),
            None,
            world,
            world,
            settings(),
            &Audit::discard(),
            |_| {},
        )
        .await;
        for work in batch {
            let outcome = &report.projects[&work.project];
            assert!(outcome.error.is_none(), "{outcome:?}");
            engine.settle(&work.project, work.digest, Ok(()), Duration::ZERO);
        }
    }
}

/// One drift-scan cycle, slice by slice: what it finds differing is queued in the engine.
async fn scan_cycle(world: &World, engine: &mut Engine) {
    let mut after: Option<ProjectKey> = None;
    let users = Users::new(world.list_users().await.unwrap());
    let groups = Groups::new(PLATFORM, world.list_groups().await.unwrap());
    engine.listed(groups.projects().cloned(), groups.roles());
    loop {
        let slice = engine.scan_slice(after.as_ref(), 2);
        if slice.is_empty() {
            return;
        }
        let (narrowed, digests) = engine.scan_view(&slice).unwrap();
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
        let drifted: BTreeSet<ProjectKey> = found
            .drifted
            .iter()
            .filter_map(|e| GroupIdentity::parse(PLATFORM, e.as_str()))
            .map(|i| i.project)
            .collect();
        engine.scanned(
            &slice,
            &digests,
            &drifted,
            &found.seen,
            Duration::ZERO,
            Duration::ZERO,
        );
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

    /// After every event (a meshStack change; drift by hand and one scan cycle; a restart,
    /// with or without a config change), `serve`'s engine has brought AWS to exactly what a
    /// full sync of the same desired state brings it to: no extra cycle, no second chance.
    #[test]
    fn the_engine_reaches_what_a_full_sync_reaches_after_every_event(
        start in meshstack(),
        steps in proptest::collection::vec(step(), 1..12),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let (incremental, whole) = (world(), world());
            let mut meshstack = start.clone();
            let mut reader = true;
            let mut current = desired_of(&meshstack, reader);
            let mut served = engine(reader, None);
            served.read(current.clone(), Duration::ZERO);
            drain(&incremental, &mut served).await;
            full(&whole, &current).await;
            prop_assert_eq!(shape(&incremental), shape(&whole), "at start");
            for step in &steps {
                match step {
                    Step::MeshStack(m) => {
                        meshstack = m.clone();
                        current = desired_of(&meshstack, reader);
                        served.read(current.clone(), Duration::ZERO);
                    }
                    Step::Drift(kind, n, user) => {
                        drift(&incremental, *kind, *n, *user).await;
                        drift(&whole, *kind, *n, *user).await;
                        scan_cycle(&incremental, &mut served).await;
                    }
                    Step::Restart(with_reader) => {
                        let saved = served.record().save("before", "then");
                        reader = *with_reader;
                        current = desired_of(&meshstack, reader);
                        served = engine(reader, Some(saved));
                        served.read(current.clone(), Duration::ZERO);
                    }
                }
                drain(&incremental, &mut served).await;
                full(&whole, &current).await;
                prop_assert_eq!(shape(&incremental), shape(&whole), "after {:?}", step);
            }
            Ok(())
        })?;
    }
}
