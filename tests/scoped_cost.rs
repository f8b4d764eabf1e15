//! What a one-project sync costs in AWS calls, from the emulator's request log: a scoped run
//! looks its groups up by `externalId` (and a missing one by `displayName`) instead of listing
//! every group in the store, so its cost does not grow with the estate (issue #17's lower
//! bound: "a one-project change costs ≤ 10 AWS calls"). The limits are aws-sso.md §D.3's
//! "steady state: one project (3 groups) reconciled ≈ 10–15" read as literals.

mod common;

use aws_replicator::apply::Options;
use aws_replicator::audit::Audit;
use aws_replicator::desired::{Desired, DesiredGroup, Scope};
use aws_replicator::directory::AssignmentReads;
use aws_replicator::emulator::{Emulator, EmulatorConfig, Family, RunningEmulator};
use aws_replicator::model::{AccountId, Euid, GroupIdentity, GroupName, ProjectKey, RoleId};
use aws_replicator::retry::RetryPolicy;
use aws_replicator::sso::admin::SsoAdmin;
use aws_replicator::sso::scim::ScimClient;
use aws_replicator::sync::{Settings, SyncReport, sync};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `projects` projects × the sample's three roles, each group with 3 of 60 users.
fn estate(projects: usize) -> Desired {
    let mut d = common::sample::desired_state();
    let template = d.groups.values().next().unwrap().clone();
    d.groups.clear();
    d.held.clear();
    for p in 0..projects {
        for (r, role) in ["admin", "user", "reader"].into_iter().enumerate() {
            let identity = GroupIdentity {
                project: ProjectKey::new(format!("ws{p:04}").as_str(), "app"),
                role: RoleId::from(role),
            };
            let members: BTreeSet<Euid> = (0..3)
                .map(|i| {
                    Euid::from(format!("user{:02}@example.com", (p + r * 7 + i) % 60).as_str())
                })
                .collect();
            let group = DesiredGroup {
                name: GroupName::from(format!("mst-ws{p:04}.app.{role}").as_str()),
                account: AccountId::from(format!("{:012}", 100_000_000_000 + p).as_str()),
                members,
                identity: identity.clone(),
                ..template.clone()
            };
            d.groups.insert(identity.external_id(&d.platform), group);
        }
    }
    d
}

struct Rig {
    running: RunningEmulator,
    scim: ScimClient,
    admin: SsoAdmin,
}

async fn rig() -> Rig {
    let emulator = Emulator::new(EmulatorConfig {
        operation_delay: Duration::from_millis(5),
        rate_limit: None,
        ..EmulatorConfig::default()
    });
    for i in 0..60 {
        emulator.add_user(&format!("user{i:02}@example.com"));
    }
    let running = emulator.serve(0).await.unwrap();
    let retry = RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(1),
    };
    let (scim, admin) = common::aws::clients(&running, retry);
    Rig {
        running,
        scim,
        admin,
    }
}

impl Rig {
    async fn sync(&self, d: &Desired) -> SyncReport {
        let settings = Settings {
            reads: AssignmentReads::PerPair,
            options: Options::default(),
            guard: None,
            withhold_removals: false,
        };
        let report = sync(
            d,
            &self.scim,
            &self.admin,
            settings,
            &Audit::discard(),
            |_| {},
            &|_| {},
        )
        .await
        .unwrap();
        assert!(report.is_success(), "{:?}", report.report);
        report
    }

    /// Requests since the log was cleared: (SCIM, sso-admin, listings of every group).
    fn cost(&self) -> (usize, usize, usize) {
        let log = self.running.emulator.requests();
        let scim = log.iter().filter(|r| r.family == Family::Scim).count();
        let sso = log.iter().filter(|r| r.family == Family::SsoAdmin).count();
        let all_groups = log
            .iter()
            .filter(|r| r.endpoint == "GET /Groups" && !r.target.contains("filter="))
            .count();
        (scim, sso, all_groups)
    }
}

/// The desired state of one project, with `change` applied, as a scoped trigger sees it.
fn one_project(full: &Desired, p: usize, change: impl FnOnce(&mut Desired)) -> Desired {
    let key = ProjectKey::new(format!("ws{p:04}").as_str(), "app");
    let mut d = full.within(&[key].into());
    change(&mut d);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_membership_change_costs_the_same_few_calls_at_any_estate_size() {
    let mut costs = BTreeMap::new();
    for projects in [50, 400] {
        let rig = rig().await;
        let full = estate(projects);
        rig.sync(&full).await;

        // Nothing changed: reads only, and no listing of every group.
        rig.running.emulator.clear_requests();
        let unchanged = one_project(&full, 7, |_| {});
        let report = rig.sync(&unchanged).await;
        assert!(report.plan.ops.is_empty());
        let idle = rig.cost();

        // One member added to one group.
        rig.running.emulator.clear_requests();
        let changed = one_project(&full, 7, |d| {
            let group = d.groups.values_mut().next().unwrap();
            group.members.insert(Euid::from("user59@example.com"));
        });
        let report = rig.sync(&changed).await;
        assert_eq!(report.plan.ops.len(), 1, "{:?}", report.plan.ops);
        let changed = rig.cost();
        costs.insert(projects, (idle, changed));
    }
    let (idle, changed) = costs[&400];
    assert_eq!(
        costs[&50], costs[&400],
        "the cost does not grow with the estate"
    );
    assert_eq!(idle.2, 0, "no listing of every group");
    assert_eq!(changed.2, 0, "no listing of every group");
    // 3 externalId lookups + 3 member listings; 1 assignment listing (this estate's three
    // roles share one permission set, so the project has one (account, permission set) pair).
    assert_eq!((idle.0, idle.1), (6, 1), "{costs:?}");
    eprintln!("one-project costs (SCIM, sso-admin, full listings): {costs:?}");
    // The change: the reads above (7), one userName lookup, one PATCH (9 so far), then the
    // project read again to report what is left (7 more).
    assert_eq!((changed.0, changed.1), (14, 2), "{costs:?}");
}

/// A group that does not exist yet is looked up by name too (a foreign group may hold it),
/// and no assignment listing is spent on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_project_costs_no_assignment_listing_before_its_groups_exist() {
    let rig = rig().await;
    let full = estate(20);
    rig.sync(&full).await;
    let mut grown = estate(21);
    let key = ProjectKey::new("ws0020", "app");
    grown.scope = Scope::projects([key.clone()]);
    grown.groups.retain(|_, g| g.identity.project == key);
    rig.running.emulator.clear_requests();
    let report = rig.sync(&grown).await;
    let log = rig.running.emulator.requests();
    let before_first_write: Vec<_> = log
        .iter()
        .take_while(|r| r.endpoint != "POST /Groups")
        .collect();
    assert!(
        !before_first_write
            .iter()
            .any(|r| r.endpoint == "ListAccountAssignments"),
        "{before_first_write:#?}"
    );
    assert_eq!(report.plan.summary.groups_to_create, 3);
    let (_, _, all_groups) = rig.cost();
    assert_eq!(all_groups, 0);
}

/// The check after a first sync touches every project: it lists the store's groups again
/// rather than looking up each project's groups one by one (1,200 lookups here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_after_a_full_sync_lists_rather_than_looks_up_every_group() {
    let rig = rig().await;
    rig.running.emulator.clear_requests();
    rig.sync(&estate(400)).await;
    let log = rig.running.emulator.requests();
    let lookups = log
        .iter()
        .filter(|r| r.endpoint == "GET /Groups" && r.target.contains("filter=externalId"))
        .count();
    let listings = log
        .iter()
        .filter(|r| r.endpoint == "GET /Groups" && !r.target.contains("filter="))
        .count();
    assert_eq!(lookups, 0);
    // Before (empty store: one page) and after (1,200 groups: 12 pages).
    assert_eq!(listings, 1 + 12);
}

/// The estate size of [`runs_by_change_and_the_drift_scan_cost_what_the_model_says`]:
/// `AWS_REPLICATOR_SCALE_PROJECTS` (e.g. 10000 or 33000; the emulator then holds up to 99,000
/// groups), 1,000 by default.
fn scale() -> usize {
    std::env::var("AWS_REPLICATOR_SCALE_PROJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// Issues #17 and #25, from the emulator's request log: after a first sync, the engine
/// (`serve`'s reconciler) costs nothing when nothing changed and a few calls for one
/// membership; a drift-scan cycle costs exactly what `scan::cycle` estimates and finds every
/// group changed by hand (1 % of them), and the reconcile that follows repairs them. Each
/// figure is printed with its time at AWS's 20 requests per second per family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_and_the_drift_scan_cost_what_the_model_says() {
    use aws_replicator::engine::reconcile::reconcile;
    use aws_replicator::model::{GroupId, ProjectKey, UserId};
    use std::collections::BTreeSet;
    use std::time::Duration;
    type Engine = aws_replicator::engine::Engine<Duration>;

    let projects = scale();
    let rig = rig().await;
    let full = estate(projects);
    let at_20 = |(scim, sso, _): (usize, usize, usize)| scim.max(sso) as f64 / 20.0;
    let mut figures = Vec::new();

    rig.running.emulator.clear_requests();
    let first = rig.sync(&full).await;
    let cost = rig.cost();
    let estimate = &first.plan.estimate;
    let (scim, sso) = (
        estimate.scim_calls + estimate.scim_reads,
        estimate.sso_admin_calls + estimate.sso_admin_reads,
    );
    figures.push(format!(
        "first sync: {} SCIM + {} sso-admin requests ({:.0} s at 20/s); the plan estimated {scim} + {sso}",
        cost.0,
        cost.1,
        at_20(cost),
    ));
    // The plan's estimate, reads included, is within 10 % of what the sync sent.
    for (made, estimated) in [(cost.0, scim), (cost.1, sso)] {
        assert!(
            made.abs_diff(estimated) * 10 <= made,
            "estimated {estimated}, made {made}: {figures:?}"
        );
    }
    // What `serve` would have recorded after that sync: every project confirmed.
    let mut engine = Engine::new(&full.platform, full.roles.clone(), None);
    engine.read(full.clone(), Duration::ZERO);
    loop {
        let batch = engine.batch(100, Duration::ZERO);
        if batch.is_empty() {
            break;
        }
        for work in batch {
            engine.settle(&work.project, work.digest, Ok(()), Duration::ZERO);
        }
    }
    let settings = Settings {
        reads: AssignmentReads::PerPair,
        options: Options::default(),
        guard: Some(aws_replicator::plan::guard::Limits {
            max_share: 0.2,
            max_count: 50,
        }),
        withhold_removals: false,
    };
    // The reconciler: every batch the queue hands out.
    let drain = async |engine: &mut Engine, listed: Option<&aws_replicator::scan::Users>| {
        let (mut applied, mut planned) = (0, 0);
        loop {
            let batch = engine.batch(10, Duration::ZERO);
            if batch.is_empty() {
                return (applied, planned);
            }
            let projects: BTreeSet<ProjectKey> = batch.iter().map(|w| w.project.clone()).collect();
            let slice = engine.slice(&projects).unwrap();
            let report = reconcile(
                &slice,
                engine.managed(),
                listed,
                &rig.scim,
                &rig.admin,
                settings,
                &Audit::discard(),
                |_| {},
            )
            .await;
            for work in batch {
                let outcome = &report.projects[&work.project];
                assert!(outcome.error.is_none(), "{outcome:?}");
                applied += outcome.applied;
                engine.settle(&work.project, work.digest, Ok(()), Duration::ZERO);
            }
            planned += report.plans.iter().map(|(p, _)| p.ops.len()).sum::<usize>();
        }
    };

    // Nothing changed in meshStack: no AWS request.
    rig.running.emulator.clear_requests();
    let (queued, _) = engine.read(full.clone(), Duration::ZERO);
    assert!(queued.is_empty());
    drain(&mut engine, None).await;
    assert_eq!(rig.cost(), (0, 0, 0));
    figures.push("nothing changed: 0 requests".into());

    // One membership more.
    let mut changed = full.clone();
    changed
        .groups
        .values_mut()
        .nth(projects)
        .unwrap()
        .members
        .insert(Euid::from("user59@example.com"));
    rig.running.emulator.clear_requests();
    engine.read(changed.clone(), Duration::ZERO);
    let (applied, _) = drain(&mut engine, None).await;
    assert_eq!(applied, 1);
    let cost = rig.cost();
    // AWS held the project as the last read wanted it: only the changed group is read. Its
    // lookup, its members, its (account, permission set) pair, the new member's lookup and
    // the PATCH.
    assert_eq!((cost.0, cost.1), (4, 1), "{cost:?}");
    figures.push(format!("one membership: {} requests", cost.0 + cost.1));

    // Drift by hand: one member removed from 1 % of the groups.
    let state = rig.running.emulator.dump();
    let drifted: Vec<(GroupId, UserId)> = state
        .groups
        .iter()
        .step_by(100)
        .map(|g| {
            (
                GroupId::from(g.id.as_str()),
                UserId::from(g.members.iter().next().unwrap().as_str()),
            )
        })
        .collect();
    for (group, user) in &drifted {
        rig.scim
            .remove_members(group, std::slice::from_ref(user))
            .await
            .unwrap();
    }
    rig.running.emulator.clear_requests();
    let mut after = None;
    let mut found = std::collections::BTreeSet::new();
    // As `serve`'s scan: the groups and users listed once a cycle.
    let users = aws_replicator::scan::Users::new(rig.scim.list_users().await.unwrap());
    let listed =
        aws_replicator::scan::Groups::new(&full.platform, rig.scim.list_groups().await.unwrap());
    engine.listed(listed.projects().cloned(), listed.roles());
    loop {
        let slice = engine.scan_slice(after.as_ref(), 10);
        if slice.is_empty() {
            break;
        }
        let (narrowed, digests) = engine.scan_view(&slice).unwrap();
        let slice_found = aws_replicator::sync::scan_slice(
            &rig.scim,
            &rig.admin,
            narrowed,
            AssignmentReads::PerPair,
            &listed,
            &users,
        )
        .await
        .unwrap();
        let projects: BTreeSet<ProjectKey> = slice_found
            .drifted
            .iter()
            .filter_map(|e| aws_replicator::model::GroupIdentity::parse(&full.platform, e.as_str()))
            .map(|i| i.project)
            .collect();
        engine.scanned(
            &slice,
            &digests,
            &projects,
            &slice_found.seen,
            Duration::ZERO,
            Duration::ZERO,
        );
        found.extend(slice_found.drifted);
        after = slice.last().cloned();
    }
    let cost = rig.cost();
    let estimate = aws_replicator::scan::cycle(&changed, AssignmentReads::PerPair, 1.0);
    assert_eq!(found.len(), drifted.len());
    // The model, plus the users' listing (one page of 60 here) and at most one userName
    // lookup per group found short of a member (none when the user is a member of another
    // group in the same slice).
    let scim = cost.0 as u64 - 1;
    assert!(
        (estimate.scim_calls..=estimate.scim_calls + drifted.len() as u64).contains(&scim),
        "the scan's SCIM reads: {scim}, the model {}",
        estimate.scim_calls
    );
    assert_eq!(cost.1 as u64, estimate.sso_admin_calls);
    figures.push(format!(
        "drift-scan cycle: {} SCIM + {} sso-admin reads ({:.0} s at 20/s; {} at 25 % of {}/s), found {} drifted groups",
        cost.0,
        cost.1,
        at_20(cost),
        aws_replicator::scan::human(aws_replicator::scan::cycle(&changed, AssignmentReads::PerPair, 0.25).seconds),
        changed.policy.scim_rate,
        found.len()
    ));
    rig.running.emulator.clear_requests();
    let (applied, _) = drain(&mut engine, None).await;
    assert_eq!(applied, drifted.len());
    let cost = rig.cost();
    figures.push(format!(
        "the reconcile repairing their projects: {} requests",
        cost.0 + cost.1
    ));
    rig.running.emulator.clear_requests();
    engine.read(changed.clone(), Duration::ZERO);
    drain(&mut engine, None).await;
    assert_eq!(rig.cost(), (0, 0, 0));

    // A group that wants a user AWS lacks: with the scan's listing of the users, no new
    // listing of every user (aws-sso.md §F.6's fallback), only the lookups.
    let mut wants_ghost = changed.clone();
    wants_ghost
        .groups
        .values_mut()
        .nth(3)
        .unwrap()
        .members
        .insert(Euid::from("ghost@example.com"));
    rig.running.emulator.clear_requests();
    engine.read(wants_ghost, Duration::ZERO);
    let (_, planned) = drain(&mut engine, Some(&users)).await;
    assert_eq!(planned, 0);
    let log = rig.running.emulator.requests();
    assert!(
        !log.iter()
            .any(|r| r.endpoint == "GET /Users" && !r.target.contains("filter=")),
        "{log:#?}"
    );
    assert_eq!(
        rig.cost(),
        (3, 1, 0),
        "lookup, members, the user's lookup; the pair"
    );
    eprintln!("{projects} projects:\n  {}", figures.join("\n  "));
}
