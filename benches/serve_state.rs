//! What `serve` holds between runs at the largest estate one identity store allows (issues
//! #17, #25): 33,000 projects × 3 roles × 10 members of 100,000 users. Steady state is
//! meshStack's snapshot, the engine (the desired state, the record of what AWS holds, the
//! queue) and the next read's desired state while it is compared. Goal: peak RSS ≤ 1 GB, and
//! the comparison (desired + digests + `Engine::read`) in a fraction of the run interval; the
//! saved record within 256 KiB.
//!
//! `cargo bench --bench serve_state` prints the figures; `AWS_REPLICATOR_SCALE_PROJECTS`
//! changes the estate. Run as a test (`cargo test --benches`) it uses 2,000 projects.

use aws_replicator::config::Config;
use aws_replicator::desired::{Scope, Settings, desired};
use aws_replicator::engine::Engine;
use aws_replicator::snapshot::{Binding, Project, Snapshot, Subject, Tenant, User};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

#[path = "common/rss.rs"]
mod rss;
use rss::peak_rss_kib;

const MEMBERS: usize = 10;
const ROLES: [&str; 3] = ["Project Admin", "Project User", "Project Reader"];
const PEAK_GOAL_BYTES: u64 = 1_000_000_000;

fn snapshot(projects: usize, users: usize) -> Snapshot {
    let mut snapshot = Snapshot {
        format_version: 1,
        platform: "aws.aws-meshcloud".into(),
        roles: Vec::new(),
        projects: Vec::with_capacity(projects),
        tenants: Vec::with_capacity(projects),
        users: (0..users)
            .map(|u| User {
                username: format!("user{u}").into(),
                euid: Some(format!("user{u}@example.com")),
            })
            .collect(),
        groups: Vec::new(),
        bindings: Vec::with_capacity(projects * 3 * MEMBERS),
    };
    for p in 0..projects {
        let (w, id) = (format!("ws{}", p / 10), format!("project-{p}"));
        snapshot.projects.push(Project {
            workspace: w.clone().into(),
            identifier: id.clone().into(),
            tags: BTreeMap::new(),
        });
        snapshot.tenants.push(Tenant {
            workspace: w.clone().into(),
            project: id.clone().into(),
            account_id: Some(format!("{:012}", 100_000_000_000u64 + p as u64)),
            landing_zone: None,
        });
        for (r, role) in ROLES.iter().enumerate() {
            for m in 0..MEMBERS {
                snapshot.bindings.push(Binding {
                    workspace: w.clone().into(),
                    project: id.clone().into(),
                    role: (*role).into(),
                    subject: Subject::User(
                        format!("user{}", (p * 7 + r * 13 + m * 101) % users).into(),
                    ),
                });
            }
        }
    }
    snapshot
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let projects = std::env::var("AWS_REPLICATOR_SCALE_PROJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 33_000 } else { 2_000 });
    let config = Config::load(Path::new("config/demo.dhall")).unwrap();
    let sso = config.sso.as_ref().unwrap();
    let settings = Settings::new(&config, sso);
    let users = (projects * 3).max(1000);

    let mut snap = snapshot(projects, users);
    let first = desired(&snap, &settings, &Scope::All);
    let groups = first.groups.len();
    let roles = sso.roles.keys().cloned().collect();
    let mut engine: Engine<std::time::Duration> = Engine::new(&config.platform, roles, None);
    // Everything reconciled once.
    engine.read(first, std::time::Duration::ZERO);
    loop {
        let batch = engine.batch(1000, std::time::Duration::ZERO);
        if batch.is_empty() {
            break;
        }
        for work in batch {
            engine.settle(
                &work.project,
                work.digest,
                Ok(()),
                std::time::Duration::ZERO,
            );
        }
    }
    let saved = serde_json::to_vec(&engine.save("bench", "now")).unwrap();
    assert!(
        saved.len() <= 256 * 1024,
        "the record is {} bytes",
        saved.len()
    );
    let held = peak_rss_kib();

    // The next run: meshStack read again with one binding more, compared with what is known.
    snap.bindings.push(Binding {
        workspace: "ws0".into(),
        project: "project-0".into(),
        role: ROLES[0].into(),
        subject: Subject::User("user999".into()),
    });
    let start = Instant::now();
    let next = desired(&snap, &settings, &Scope::All);
    let (changed, _) = engine.read(next, std::time::Duration::ZERO);
    let took = start.elapsed();
    let peak = peak_rss_kib();
    assert_eq!(changed.len(), 1);
    println!(
        "serve state at {projects} projects ({groups} groups): peak RSS {} MiB holding the snapshot and the engine, \
         {} MiB while the next read's desired state is compared; desired + digests + comparison {took:.2?}; \
         the saved record {} KiB",
        held / 1024,
        peak / 1024,
        saved.len() / 1024
    );
    assert!(
        peak * 1024 <= PEAK_GOAL_BYTES,
        "peak RSS {} MiB is above the goal of 1 GB",
        peak / 1024
    );
}
