//! A sync against the emulator when AWS misbehaves: a share of all requests failing in every way
//! AWS fails, assignment operations that end FAILED, `Retry-After`, and the limits AWS puts on
//! assignment writes (15 in flight, one at a time per account). Also the write counts of
//! aws-sso.md §D.2.

mod common;

use aws_replicator::apply::{Options, Status};
use aws_replicator::audit::Audit;
use aws_replicator::desired::{Desired, DesiredGroup};
use aws_replicator::directory::AssignmentReads;
use aws_replicator::emulator::{Emulator, EmulatorConfig, Family, Fault, RunningEmulator};
use aws_replicator::model::{AccountId, Euid, GroupIdentity, GroupName, ProjectKey, RoleId};
use aws_replicator::retry::RetryPolicy;
use aws_replicator::secret::Secret;
use aws_replicator::sso::admin::{Polling, SsoAdmin};
use aws_replicator::sso::scim::ScimClient;
use aws_replicator::sync::{Settings, SyncReport, sync};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `projects` projects × 3 roles, on `accounts` accounts, each group with 12 of 40 users.
fn desired(projects: usize, accounts: usize) -> Desired {
    let mut d = common::sample::desired_state();
    let template = d.groups.values().next().unwrap().clone();
    d.groups.clear();
    for p in 0..projects {
        for (r, role) in ["admin", "user", "reader"].into_iter().enumerate() {
            let identity = GroupIdentity {
                project: ProjectKey::new(format!("ws{p:03}").as_str(), "app"),
                role: RoleId::from(role),
            };
            let members: BTreeSet<Euid> = (0..12)
                .map(|i| {
                    Euid::from(format!("user{:02}@example.com", (p * 7 + r * 5 + i) % 40).as_str())
                })
                .collect();
            let group = DesiredGroup {
                name: GroupName::from(format!("mst-ws{p:03}.app.{role}").as_str()),
                account: AccountId::from(
                    format!("{:012}", 100_000_000_000 + p % accounts).as_str(),
                ),
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

/// The emulator with 40 users, and clients that retry quickly (the test's clock is real).
async fn rig(operation_delay: Duration, batch_status: bool) -> Rig {
    let emulator = Emulator::new(EmulatorConfig {
        operation_delay,
        rate_limit: None,
        ..EmulatorConfig::default()
    });
    for i in 0..40 {
        emulator.add_user(&format!("user{i:02}@example.com"));
    }
    let running = emulator.serve(0).await.unwrap();
    let retry = RetryPolicy {
        max_retries: 10,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(2),
    };
    let scim = ScimClient::new(
        &url::Url::parse(&running.scim_endpoint()).unwrap(),
        Secret::new("emulator-token"),
        1000.0,
        retry,
    )
    .unwrap();
    let admin = SsoAdmin::new(
        common::aws::sdk(&running.endpoint()),
        common::aws::INSTANCE,
        1000.0,
        Polling {
            first: Duration::from_millis(10),
            max: Duration::from_millis(50),
            timeout: Duration::from_secs(30),
            max_retries: 10,
        },
    )
    .with_batch_status(batch_status);
    Rig {
        running,
        scim,
        admin,
    }
}

impl Rig {
    async fn sync(&self, d: &Desired, reads: AssignmentReads) -> SyncReport {
        let settings = Settings {
            reads,
            options: Options::default(),
            guard: None,
            withhold_removals: false,
        };
        sync(
            d,
            &self.scim,
            &self.admin,
            settings,
            &Audit::discard(),
            |_| {},
            &|_| {},
        )
        .await
        .unwrap()
    }

    /// Desired state and AWS agree: every group once, with exactly its members and assignments.
    fn assert_matches(&self, d: &Desired) {
        let state = self.running.emulator.dump();
        let users: BTreeMap<&str, &str> = state
            .users
            .iter()
            .map(|u| (u.id.as_str(), u.user_name.as_str()))
            .collect();
        for (ext, want) in &d.groups {
            let found: Vec<_> = state
                .groups
                .iter()
                .filter(|g| g.external_id.as_deref() == Some(ext.as_str()))
                .collect();
            assert_eq!(found.len(), 1, "{} exists exactly once", want.name);
            let group = found[0];
            assert_eq!(group.display_name, want.name.as_str());
            let members: BTreeSet<&str> = group.members.iter().map(|m| users[m.as_str()]).collect();
            let wanted: BTreeSet<&str> = want.members.iter().map(|e| e.as_str()).collect();
            assert_eq!(members, wanted, "members of {}", want.name);
            for ps in want.permission_sets.iter() {
                assert!(
                    state.assignments.iter().any(|a| a.principal_id == group.id
                        && a.account_id == want.account.as_str()
                        && a.permission_set_arn == ps.as_str()),
                    "{} is assigned",
                    want.name
                );
            }
        }
    }
}

fn fault(family: Family, endpoint: &str, status: u16, every: usize) -> Fault {
    Fault {
        family,
        endpoint: endpoint.into(),
        status,
        every,
        times: usize::MAX,
        ..Fault::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_converges_when_a_tenth_of_all_requests_fail() {
    let rig = rig(Duration::from_millis(30), false).await;
    let d = desired(20, 12);
    let emulator = &rig.running.emulator;
    // SCIM: 429 with and without Retry-After, 500, and connections dropped after the write
    // took effect: 1/100 + 3/30 ≈ 11 %.
    emulator.inject(Fault {
        retry_after: Some(1),
        every: 100,
        ..fault(Family::Scim, "", 429, 0)
    });
    emulator.inject(fault(Family::Scim, "", 429, 30));
    emulator.inject(fault(Family::Scim, "", 500, 30));
    emulator.inject(Fault {
        drop_connection: true,
        processed: true,
        ..fault(Family::Scim, "", 200, 30)
    });
    // sso-admin: ThrottlingException, InternalServerException, ConflictException: 3/30.
    emulator.inject(fault(Family::SsoAdmin, "", 400, 30));
    emulator.inject(fault(Family::SsoAdmin, "", 500, 30));
    emulator.inject(fault(Family::SsoAdmin, "", 409, 30));

    let report = rig.sync(&d, AssignmentReads::PerPair).await;
    let failed: Vec<String> = report.report.problems(&report.plan).collect();
    let faults = emulator
        .requests()
        .iter()
        .filter(|r| r.status >= 400)
        .count();
    println!(
        "{} operations, {} requests, {} answered with an error; failed: {failed:?}",
        report.plan.ops.len(),
        emulator.requests().len(),
        faults
    );
    assert!(faults > 20, "the faults struck ({faults})");
    assert!(report.is_success(), "{failed:?}");
    rig.assert_matches(&d);
    assert!(emulator.peak_in_flight() <= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_writes_stay_within_the_in_flight_cap_and_one_per_account() {
    // Each operation stays IN_PROGRESS for 500 ms: far longer than the executor takes to send
    // the next write (at 20 requests/s, 50 ms), so "side by side" does not hang on how fast a
    // loaded machine gets there.
    let rig = rig(Duration::from_millis(500), false).await;
    // 30 projects on 15 accounts: 90 assignments, 6 per account.
    let d = desired(30, 15);
    let report = rig.sync(&d, AssignmentReads::PerPair).await;
    assert!(report.is_success());
    rig.assert_matches(&d);
    let emulator = &rig.running.emulator;
    println!(
        "peak in flight {}, conflicts {}",
        emulator.peak_in_flight(),
        emulator.conflicts()
    );
    assert!(emulator.peak_in_flight() <= 10, "the default cap is 10");
    assert!(
        emulator.peak_in_flight() > 1,
        "assignments run side by side"
    );
    assert_eq!(emulator.conflicts(), 0, "one write at a time per account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_assignment_is_reported_with_its_reason_and_made_on_the_next_run() {
    let rig = rig(Duration::from_millis(20), false).await;
    let d = desired(2, 2);
    rig.running
        .emulator
        .fail_next_assignments(1, "Received a 404 status error: Not supported");
    let first = rig.sync(&d, AssignmentReads::PerPair).await;
    assert!(!first.is_success());
    let failed: Vec<_> = first
        .report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    let error = failed[0].error.as_deref().unwrap();
    assert!(
        error.contains("FAILED: Received a 404 status error"),
        "{error}"
    );
    assert!(failed[0].request_id.is_some(), "AWS's request id is kept");
    assert_eq!(
        first.remaining.ops.len(),
        1,
        "the failed assignment is still to do"
    );

    let second = rig.sync(&d, AssignmentReads::PerPair).await;
    assert!(second.is_success());
    assert_eq!(second.plan.ops.len(), 1);
    rig.assert_matches(&d);
}

/// aws-sso.md §D.2: one POST per new group (members inline), one PATCH per 100 member changes,
/// one CreateAccountAssignment per missing assignment; the status polls come on top.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_equal_the_lower_bound_of_the_call_count_model() {
    let rig = rig(Duration::from_millis(20), false).await;
    let mut d = desired(10, 10);
    // From an empty directory: one POST per group with its 12 members inline.
    let first = rig.sync(&d, AssignmentReads::PerPair).await;
    assert!(first.is_success());
    let creates = first.plan.summary.groups_to_create;
    let assigns = first.plan.summary.assignments_to_create;
    let emulator = &rig.running.emulator;
    let count = |family: Family, f: &dyn Fn(&str) -> bool| {
        emulator
            .requests()
            .iter()
            .filter(|r| r.family == family && f(&r.endpoint))
            .count()
    };
    let scim_writes = count(Family::Scim, &|e| !e.starts_with("GET"));
    let posts = count(Family::Scim, &|e| e == "POST /Groups");
    let sso_writes = count(Family::SsoAdmin, &|e| e == "CreateAccountAssignment");
    println!(
        "first sync, writes: SCIM {scim_writes} (model {creates}), sso-admin {sso_writes} (model {assigns}); status polls {}",
        count(Family::SsoAdmin, &|e| e.starts_with("Describe"))
    );
    assert_eq!((posts, scim_writes), (creates, creates));
    assert_eq!(sso_writes, assigns);

    // Membership changes on existing groups: Σ ⌈add/100⌉ + ⌈remove/100⌉ PATCHes.
    let mut model = 0;
    for (n, group) in d.groups.values_mut().enumerate().take(12) {
        let (add, remove) = (n % 3, n % 4);
        let have: Vec<Euid> = group.members.iter().cloned().collect();
        for e in &have[..remove] {
            group.members.remove(e);
        }
        let extra = (0..40)
            .map(|i| Euid::from(format!("user{i:02}@example.com").as_str()))
            .filter(|e| !have.contains(e))
            .take(add);
        group.members.extend(extra);
        model += add.div_ceil(100) + remove.div_ceil(100);
    }
    emulator.clear_requests();
    let second = rig.sync(&d, AssignmentReads::PerPair).await;
    assert!(second.is_success());
    let patches = count(Family::Scim, &|e| e == "PATCH /Groups/{id}");
    let scim_writes = count(Family::Scim, &|e| !e.starts_with("GET"));
    println!(
        "membership changes, writes: SCIM {scim_writes} (model {model}), sso-admin 0 (model 0)"
    );
    assert_eq!((patches, scim_writes), (model, model));
    assert_eq!(count(Family::SsoAdmin, &|e| !e.starts_with("List")), 0);
    rig.assert_matches(&d);
}

/// With the batch status listing, each operation costs one Describe (to confirm the outcome)
/// however long it stays IN_PROGRESS; the waiting is shared by one listing per interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_operations_are_polled_together() {
    let mut polls = Vec::new();
    for batch in [false, true] {
        let rig = rig(Duration::from_millis(300), batch).await;
        let d = desired(10, 10);
        let report = rig.sync(&d, AssignmentReads::PerPair).await;
        assert!(report.is_success());
        rig.assert_matches(&d);
        let requests = rig.running.emulator.requests();
        let count = |prefix: &str| {
            requests
                .iter()
                .filter(|r| r.family == Family::SsoAdmin && r.endpoint.starts_with(prefix))
                .count()
        };
        let (describes, lists) = (
            count("DescribeAccountAssignment"),
            count("ListAccountAssignmentCreationStatus"),
        );
        println!(
            "batch status {batch}: {} assignments, {describes} Describe, {lists} List…Status",
            report.plan.summary.assignments_to_create
        );
        if batch {
            assert_eq!(describes, report.plan.summary.assignments_to_create);
            assert!(lists >= 1);
        } else {
            assert_eq!(lists, 0);
        }
        polls.push(describes + lists);
    }
    assert!(polls[1] < polls[0], "batch polling saves calls: {polls:?}");
}

/// A write cut off mid-request (the process stopped, the run's deadline passed) is in the trail
/// as intended before AWS was asked: a write that may have landed is never unaudited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_off_mid_request_is_audited_as_intended() {
    let rig = rig(Duration::from_millis(10), false).await;
    let d = desired(1, 1);
    // The first group creation hangs far longer than the run is allowed to take.
    rig.running.emulator.inject(Fault {
        family: Family::Scim,
        endpoint: "POST /Groups".into(),
        status: 200,
        latency_ms: 60_000,
        times: 1,
        ..Fault::default()
    });
    let (audit, trail) = Audit::memory();
    let settings = Settings {
        reads: AssignmentReads::PerPair,
        options: Options {
            concurrency: 1,
            ..Options::default()
        },
        guard: None,
        withhold_removals: false,
    };
    let cut = tokio::time::timeout(
        Duration::from_secs(2),
        sync(&d, &rig.scim, &rig.admin, settings, &audit, |_| {}, &|_| {}),
    )
    .await;
    assert!(cut.is_err(), "the run was cut off mid-write");
    let lines: Vec<serde_json::Value> = trail
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let creates: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["operation"] == "create_group")
        .collect();
    assert_eq!(creates.len(), 1, "{lines:#?}");
    assert_eq!(creates[0]["phase"], "intent");
    assert!(creates[0].get("outcome").is_none());
}
