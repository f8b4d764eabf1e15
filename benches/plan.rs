//! desired + plan for 10,000 projects × 3 roles × 10 members against a directory with 10 %
//! drift. Goal (issue "Authorization-sync spine"): median < 0.15 s, peak memory < 150 MB.
//!
//! `cargo bench --bench plan` prints criterion's figures and then the process's peak RSS.

use aws_replicator::config::Config;
use aws_replicator::desired::{Scope, Settings, desired};
use aws_replicator::model::{GroupName, UserId, UserName};
use aws_replicator::observed::Observed;
use aws_replicator::plan::{apply_in_memory, plan};
use aws_replicator::snapshot::{Binding, Project, Snapshot, Subject, Tenant, User};
use criterion::{Criterion, criterion_group};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

const PROJECTS: usize = 10_000;
const MEMBERS: usize = 10;
const USERS: usize = 20_000;
const ROLES: [&str; 3] = ["Project Admin", "Project User", "Project Reader"];

fn snapshot() -> Snapshot {
    let mut bindings = Vec::with_capacity(PROJECTS * 3 * MEMBERS);
    let mut projects = Vec::with_capacity(PROJECTS);
    let mut tenants = Vec::with_capacity(PROJECTS);
    for p in 0..PROJECTS {
        let (w, id) = (format!("ws{}", p / 10), format!("project-{p}"));
        projects.push(Project {
            workspace: w.clone().into(),
            identifier: id.clone().into(),
            tags: BTreeMap::new(),
        });
        tenants.push(Tenant {
            workspace: w.clone().into(),
            project: id.clone().into(),
            account_id: Some(format!("{:012}", 100_000_000_000u64 + p as u64)),
            landing_zone: None,
        });
        for (r, role) in ROLES.iter().enumerate() {
            for m in 0..MEMBERS {
                let user = (p * 7 + r * 13 + m * 101) % USERS;
                bindings.push(Binding {
                    workspace: w.clone().into(),
                    project: id.clone().into(),
                    role: (*role).into(),
                    subject: Subject::User(format!("user{user}").into()),
                });
            }
        }
    }
    Snapshot {
        format_version: 1,
        platform: "aws.aws-meshcloud".into(),
        roles: Vec::new(),
        projects,
        tenants,
        users: (0..USERS)
            .map(|u| User {
                username: format!("user{u}").into(),
                euid: Some(format!("user{u}@example.com")),
            })
            .collect(),
        groups: Vec::new(),
        bindings,
    }
}

/// A directory that holds the desired state, then drifted: every tenth group lost a member and
/// gained a stray one, every hundredth was renamed by hand.
fn drifted(config: &Config, snapshot: &Snapshot) -> Observed {
    let users: BTreeMap<UserId, UserName> = (0..USERS)
        .map(|u| {
            (
                UserId(format!("uid-{u:08}")),
                UserName(format!("user{u}@example.com")),
            )
        })
        .collect();
    let empty = Observed {
        users,
        ..Observed::default()
    };
    let sso = config.sso.as_ref().unwrap();
    let d = desired(snapshot, &Settings::new(config, sso), &Scope::All);
    let mut observed = apply_in_memory(&plan(&d, &empty), &empty);
    for (i, g) in observed.groups.iter_mut().enumerate() {
        if i % 10 == 0 {
            let first = g.members.iter().next().cloned();
            if let Some(m) = first {
                g.members.remove(&m);
            }
            g.members
                .insert(UserId(format!("uid-{:08}", (i * 31) % USERS)));
        }
        if i % 100 == 0 {
            g.name = GroupName(format!("mst-renamed-by-hand-{i}"));
        }
    }
    observed
}

fn bench(c: &mut Criterion) {
    let config = Config::load(Path::new("config/demo.dhall")).unwrap();
    let snapshot = snapshot();
    let observed = drifted(&config, &snapshot);
    let sso = config.sso.as_ref().unwrap();
    let settings = Settings::new(&config, sso);
    let check = plan(&desired(&snapshot, &settings, &Scope::All), &observed);
    eprintln!(
        "fixture: {} groups, {} memberships; plan: {} ops ({:?})",
        observed.groups.len(),
        observed
            .groups
            .iter()
            .map(|g| g.members.len())
            .sum::<usize>(),
        check.ops.len(),
        check.summary
    );
    let mut group = c.benchmark_group("plan");
    group.sample_size(20);
    group.bench_function(
        "desired+plan 10k projects x 3 roles x 10 members, 10% drift",
        |b| {
            b.iter(|| {
                let d = desired(black_box(&snapshot), &settings, &Scope::All);
                black_box(plan(&d, black_box(&observed)))
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status
            .lines()
            .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        {
            eprintln!("{line}");
        }
    }
}
