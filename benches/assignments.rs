//! Assignment throughput against the emulator (issue #17): 200 CreateAccountAssignment over 40
//! accounts through the sso-admin client at AWS's 20 requests per second, with the default
//! polling and 10 changes in flight, for operations that take L to settle. AWS's bound is
//! min(R / 2, in-flight / L) assignments per second (aws-sso.md §D.2: a write and at least
//! one status check each, at most in-flight of them at once); the goal is at least 0.8 of it.
//!
//! `cargo bench --bench assignments` measures and fails below the goal; run as a test (`cargo
//! test --benches`, unoptimised) it checks a loose half of the bound.

use aws_replicator::apply::{Options, apply};
use aws_replicator::audit::Audit;
use aws_replicator::desired::{Desired, DesiredGroup, Scope};
use aws_replicator::directory::World;
use aws_replicator::emulator::store::State;
use aws_replicator::emulator::{Emulator, EmulatorConfig};
use aws_replicator::model::{
    AccountId, GroupId, GroupIdentity, GroupName, PermissionSetArn, ProjectKey, RoleId,
};
use aws_replicator::observed::{Observed, ObservedGroup};
use aws_replicator::plan::{Plan, plan};
use aws_replicator::sso::admin::{Polling, SsoAdmin};

/// The tests' SDK client against the emulator (retries off: ours count).
#[path = "../tests/common/aws.rs"]
#[allow(dead_code)]
mod aws;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ASSIGNMENTS: usize = 200;
const ACCOUNTS: usize = 40;
const RATE: f64 = 20.0;
const IN_FLIGHT: usize = 10;
const PERMISSION_SET: &str = "arn:aws:sso:::permissionSet/ssoins-123456789/ps-123456789";

/// 200 groups that exist, each wanting one assignment.
fn fixture() -> (Plan, Observed) {
    let mut observed = Observed::default();
    let mut desired = Desired {
        platform: "aws.bench".into(),
        scope: Scope::All,
        groups: Default::default(),
        held: BTreeSet::new(),
        findings: BTreeSet::new(),
        policy: aws_replicator::desired::ApplyPolicy {
            may_delete_assignments: false,
            scim_rate: RATE,
            sso_admin_rate: RATE,
        },
        roles: vec![RoleId::from("admin")],
        only_groups: None,
    };
    let sets: Arc<BTreeSet<PermissionSetArn>> =
        Arc::new([PermissionSetArn::from(PERMISSION_SET)].into());
    for g in 0..ASSIGNMENTS {
        let identity = GroupIdentity {
            project: ProjectKey::new(format!("ws{g:03}").as_str(), "app"),
            role: RoleId::from("admin"),
        };
        let name = GroupName::from(format!("mst-ws{g:03}.app.admin").as_str());
        let external_id = identity.external_id(&desired.platform);
        observed.groups.push(ObservedGroup {
            id: GroupId::from(format!("90671111-{g:04}")),
            name: name.clone(),
            external_id: Some(external_id.clone()),
            members: Default::default(),
        });
        desired.groups.insert(
            external_id,
            DesiredGroup {
                identity,
                name,
                account: AccountId::from(
                    format!("{:012}", 100_000_000_000 + g % ACCOUNTS).as_str(),
                ),
                members: Default::default(),
                permission_sets: sets.clone(),
            },
        );
    }
    let plan = plan(&desired, &observed);
    assert_eq!(plan.ops.len(), ASSIGNMENTS);
    (plan, observed)
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let goal = if measuring { 0.8 } else { 0.5 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (plan, observed) = fixture();
    let mut short = Vec::new();
    for settle in [Duration::from_millis(300), Duration::from_millis(1500)] {
        let emulator = Emulator::new(EmulatorConfig {
            operation_delay: settle,
            rate_limit: Some(RATE),
            ..EmulatorConfig::default()
        });
        let running = runtime.block_on(emulator.serve(0)).unwrap();
        emulator.load(State::from_observed(&observed));
        let admin = SsoAdmin::new(
            aws::sdk(&running.endpoint()),
            aws::INSTANCE,
            RATE,
            Polling::default(),
        );
        let start = Instant::now();
        let report = runtime.block_on(apply(
            &plan,
            &World::default(),
            &admin,
            Options {
                max_in_flight: IN_FLIGHT,
                ..Options::default()
            },
            &Audit::discard(),
            &|_| {},
        ));
        let took = start.elapsed().as_secs_f64();
        assert!(
            report.is_success(),
            "{:?}",
            report.problems(&plan).collect::<Vec<_>>()
        );
        let calls = aws_replicator::directory::AccountAssignments::calls_made(&admin) as f64;
        let per_assignment = calls / ASSIGNMENTS as f64;
        let achieved = ASSIGNMENTS as f64 / took;
        // At best one status check per assignment: two requests each.
        let bound = (RATE / 2.0).min(IN_FLIGHT as f64 / settle.as_secs_f64());
        println!(
            "assignments: L = {settle:?}: {ASSIGNMENTS} in {took:.1} s = {achieved:.2}/s, \
             {per_assignment:.2} requests each; bound min({RATE}/2, {IN_FLIGHT}/L) = {bound:.2}/s; \
             {:.2} of it",
            achieved / bound
        );
        if achieved < goal * bound {
            short.push(format!(
                "L = {settle:?}: {achieved:.2}/s < {goal} × {bound:.2}/s"
            ));
        }
    }
    assert!(short.is_empty(), "below the goal: {short:?}");
}
