//! Executor throughput against the emulator: 2,000 member adds over 200 existing groups (one
//! PATCH each) through the SCIM client at rate R. Goal (issue "Apply"): wall time ≤ 1.1 × calls / R,
//! that is, the executor keeps the rate limiter busy and adds next to nothing of its own.
//!
//! `cargo bench --bench apply` prints criterion's figures and the ratio for every sample, and
//! fails when the median ratio is above the goal of 1.1, so a regression shows without reading
//! numbers. Run as a test (`cargo test --benches`, one unoptimised pass) it checks a loose 2.0.

use aws_replicator::apply::{Options, apply};
use aws_replicator::audit::Audit;
use aws_replicator::config::Config;
use aws_replicator::desired::{DesiredGroup, Scope, Settings, desired};
use aws_replicator::directory::World;
use aws_replicator::emulator::store::State;
use aws_replicator::emulator::{Emulator, EmulatorConfig};
use aws_replicator::model::{
    AccountId, Euid, GroupId, GroupIdentity, GroupName, ProjectKey, RoleId, UserId, UserName,
};
use aws_replicator::observed::{Observed, ObservedGroup};
use aws_replicator::plan::{Plan, plan};
use aws_replicator::retry::RetryPolicy;
use aws_replicator::secret::Secret;
use aws_replicator::snapshot::Snapshot;
use aws_replicator::sso::scim::ScimClient;
use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::time::{Duration, Instant};

const GROUPS: usize = 200;
const ADDS_PER_GROUP: usize = 10;
/// Requests per second the client allows itself (AWS's ceiling is 20; 100 keeps the bench short).
const RATE: f64 = 100.0;
/// The goal: wall time at most this many times calls / R.
const GOAL: f64 = 1.1;
/// What one unoptimised pass in test mode must stay within.
const TEST_MODE_BOUND: f64 = 2.0;

/// The plan (200 AddMembers of 10 users each) and the directory it starts from.
fn fixture() -> (Plan, Observed) {
    let config = Config::load(Path::new("config/demo.dhall")).unwrap();
    let sso = config.sso.as_ref().unwrap();
    let snapshot = Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap();
    let mut d = desired(&snapshot, &Settings::new(&config, sso), &Scope::All);
    d.groups.clear();
    let mut observed = Observed::default();
    for u in 0..GROUPS * ADDS_PER_GROUP {
        observed.users.insert(
            UserId::from(format!("90670000-{u:04}")),
            UserName::from(format!("user{u:04}@example.com").as_str()),
        );
    }
    for g in 0..GROUPS {
        let identity = GroupIdentity {
            project: ProjectKey::new(format!("ws{g:03}").as_str(), "app"),
            role: RoleId::from("admin"),
        };
        let name = GroupName::from(format!("mst-ws{g:03}.app.admin").as_str());
        let external_id = identity.external_id(&d.platform);
        observed.groups.push(ObservedGroup {
            id: GroupId::from(format!("90671111-{g:04}")),
            name: name.clone(),
            external_id: Some(external_id.clone()),
            members: Default::default(),
        });
        d.groups.insert(
            external_id,
            DesiredGroup {
                identity,
                name,
                account: AccountId::from("111111111111"),
                members: (0..ADDS_PER_GROUP)
                    .map(|i| {
                        let u = g * ADDS_PER_GROUP + i;
                        Euid::from(format!("user{u:04}@example.com").as_str())
                    })
                    .collect(),
                permission_sets: Default::default(),
            },
        );
    }
    let plan = plan(&d, &observed);
    assert_eq!(plan.ops.len(), GROUPS);
    (plan, observed)
}

fn bench(c: &mut Criterion) {
    let (plan, observed) = fixture();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emulator = Emulator::new(EmulatorConfig {
        rate_limit: None,
        ..EmulatorConfig::default()
    });
    let running = runtime.block_on(emulator.serve(0)).unwrap();
    let state = State::from_observed(&observed);
    let ideal = Duration::from_secs_f64(plan.ops.len() as f64 / RATE);
    let ratios = std::sync::Mutex::new(Vec::new());
    let mut group = c.benchmark_group("apply");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(21));
    group.bench_function("2000 member adds over 200 groups at 100/s", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                emulator.load(state.clone());
                // A fresh client per run: the limiter starts with no backlog and no credit.
                let client = ScimClient::new(
                    &url::Url::parse(&running.scim_endpoint()).unwrap(),
                    Secret::new("emulator-token"),
                    RATE,
                    RetryPolicy::aws(),
                )
                .unwrap();
                let start = Instant::now();
                let report = runtime.block_on(apply(
                    &plan,
                    &client,
                    &World::default(),
                    Options::default(),
                    &Audit::discard(),
                    &|_| {},
                ));
                let took = start.elapsed();
                assert!(report.is_success());
                let ratio = took.as_secs_f64() / ideal.as_secs_f64();
                println!(
                    "  {} calls in {took:.2?}: {ratio:.3} × calls / R",
                    plan.ops.len()
                );
                ratios.lock().unwrap().push(ratio);
                total += took;
            }
            total
        })
    });
    group.finish();
    let mut ratios = ratios.into_inner().unwrap();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    // `cargo bench` passes `--bench`; without it criterion runs each benchmark once, as a test.
    let measuring = std::env::args().any(|a| a == "--bench");
    let bound = if measuring { GOAL } else { TEST_MODE_BOUND };
    println!(
        "apply: median {median:.3} × calls / R over {} run(s); goal ≤ {bound}",
        ratios.len()
    );
    assert!(
        median <= bound,
        "the executor is slower than its goal: median {median:.3} × calls / R > {bound} ({ratios:?})"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
