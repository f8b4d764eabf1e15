//! The sso-admin client against the emulator (asynchronous operations, FAILED with a reason,
//! conflicts and throttling retried) and against moto; and the whole sample synced end to end
//! through SCIM and sso-admin on the emulator's one store.

mod common;

use aws_replicator::apply::Options;
use aws_replicator::audit::Audit;
use aws_replicator::directory::{AccountAssignments, AssignmentReads, observe};
use aws_replicator::emulator::{Emulator, EmulatorConfig, Family, Fault, RunningEmulator};
use aws_replicator::model::{AccountId, GroupId, GroupName, PermissionSetArn};
use aws_replicator::observed::Assignment;
use aws_replicator::plan::plan;
use aws_replicator::retry::RetryPolicy;
use aws_replicator::sso::admin::SsoAdmin;
use aws_replicator::sync::{Settings as SyncSettings, sync};
use std::time::Duration;

use common::aws::{INSTANCE, fast_polling as fast, sdk};

async fn emulator() -> RunningEmulator {
    let config = EmulatorConfig {
        operation_delay: Duration::from_millis(40),
        rate_limit: None,
        ..EmulatorConfig::default()
    };
    Emulator::new(config).serve(0).await.unwrap()
}

fn assignment(account: &str, ps: &str, group: &str) -> Assignment {
    Assignment {
        account: AccountId::from(account),
        permission_set: PermissionSetArn::from(ps),
        group: GroupId::from(group),
    }
}

const PS: &str = "arn:aws:sso:::permissionSet/ssoins-123456789/ps-123456789";

#[tokio::test]
async fn creates_waits_for_success_and_deletes() {
    let running = emulator().await;
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let group = running.emulator.add_group("mst-a");
    let a = assignment("111111111111", PS, &group);
    admin.create_assignment(&a).await.unwrap();
    assert_eq!(
        running.emulator.dump().assignments.len(),
        1,
        "create returns once SUCCEEDED"
    );
    assert_eq!(
        admin.assignments_of(&a.group).await.unwrap(),
        [(a.account.clone(), a.permission_set.clone())]
    );
    assert_eq!(
        admin
            .principals_on(&a.account, &a.permission_set)
            .await
            .unwrap()
            .len(),
        1
    );
    admin.delete_assignment(&a).await.unwrap();
    assert!(running.emulator.dump().assignments.is_empty());
    admin.delete_assignment(&a).await.unwrap();
}

#[tokio::test]
async fn a_failed_assignment_is_an_error_with_aws_reason() {
    let running = emulator().await;
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let group = running.emulator.add_group("mst-a");
    running
        .emulator
        .fail_next_assignments(1, "The account has reached its quota of IAM roles.");
    let err = admin
        .create_assignment(&assignment("111111111111", PS, &group))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("FAILED: The account has reached its quota of IAM roles."),
        "{err}"
    );
    // The next run tries again and succeeds.
    admin
        .create_assignment(&assignment("111111111111", PS, &group))
        .await
        .unwrap();
}

/// Throttling answered twice, then the write goes through: exactly two ThrottlingException
/// answers (HTTP 400) and one success for one create.
#[tokio::test]
async fn throttling_is_retried() {
    let running = emulator().await;
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let g1 = running.emulator.add_group("mst-a");
    running.emulator.inject(Fault {
        family: Family::SsoAdmin,
        endpoint: "CreateAccountAssignment".into(),
        status: 429,
        times: 2,
        ..Fault::default()
    });
    admin
        .create_assignment(&assignment("111111111111", PS, &g1))
        .await
        .unwrap();
    assert_eq!(running.emulator.dump().assignments.len(), 1);
    assert_eq!(
        statuses(&running, "CreateAccountAssignment"),
        [400, 400, 200],
        "two throttled answers, then the retry that went through"
    );
}

/// A write to an account that has one in progress is answered ConflictException; the client
/// retries until the account is free and the write succeeds. The first write is made by hand
/// and stays IN_PROGRESS for 400 ms, so the client's first attempt meets it.
#[tokio::test]
async fn conflicts_are_answered_and_retried() {
    let running = Emulator::new(EmulatorConfig {
        operation_delay: Duration::from_millis(400),
        rate_limit: None,
        ..EmulatorConfig::default()
    })
    .serve(0)
    .await
    .unwrap();
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let (g1, g2) = (
        running.emulator.add_group("mst-a"),
        running.emulator.add_group("mst-b"),
    );
    sdk(&running.endpoint())
        .create_account_assignment()
        .instance_arn(INSTANCE)
        .target_id("111111111111")
        .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
        .permission_set_arn(PS)
        .principal_type(aws_sdk_ssoadmin::types::PrincipalType::Group)
        .principal_id(&g1)
        .send()
        .await
        .unwrap();
    admin
        .create_assignment(&assignment("111111111111", PS, &g2))
        .await
        .unwrap();
    assert!(
        running.emulator.conflicts() >= 1,
        "the busy account answered ConflictException"
    );
    let creates = statuses(&running, "CreateAccountAssignment");
    assert_eq!(
        creates.first(),
        Some(&200),
        "the write by hand: {creates:?}"
    );
    assert_eq!(
        creates.last(),
        Some(&200),
        "the retry went through: {creates:?}"
    );
    assert_eq!(
        creates.iter().filter(|s| **s == 400).count(),
        running.emulator.conflicts(),
        "every refusal was a conflict and each was retried: {creates:?}"
    );
    assert_eq!(creates.len(), running.emulator.conflicts() + 2);
    assert_eq!(running.emulator.dump().assignments.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn works_against_moto() {
    let moto = common::peers::moto();
    let client = sdk(&moto.endpoint);
    let instance = client.list_instances().send().await.unwrap().instances()[0]
        .instance_arn()
        .unwrap()
        .to_owned();
    let ps = format!(
        "arn:aws:sso:::permissionSet/{}/ps-0123456789abcdef",
        instance.rsplit('/').next().unwrap()
    );
    let admin = SsoAdmin::new(client, &instance, 1000.0, fast());
    let a = assignment(
        "111111111111",
        &ps,
        "9067d0a3c1-00000001-0000-4001-8000-000000000001",
    );
    admin.create_assignment(&a).await.unwrap();
    assert_eq!(admin.assignments_of(&a.group).await.unwrap().len(), 1);
    admin.delete_assignment(&a).await.unwrap();
    assert!(
        admin
            .principals_on(&a.account, &a.permission_set)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_sample_syncs_end_to_end_through_scim_and_sso_admin() {
    let running = emulator().await;
    common::sample::provision_users(&running.emulator);
    // The instance has the demo's permission sets, the organization the sample's accounts.
    common::sample::provision_organization(&running.emulator);
    let (scim, admin) = common::aws::clients(&running, RetryPolicy::aws());
    let d = common::sample::desired_state();

    let (audit, trail) = Audit::memory();
    let settings = SyncSettings {
        reads: AssignmentReads::PerPair,
        options: Options::default(),
        guard: None,
        withhold_removals: false,
    };
    let result = sync(&d, &scim, &admin, settings, &audit, |_| {}, &|_| {})
        .await
        .unwrap();
    let first = &result.plan;
    assert!(result.is_success(), "{:?}", result.report);
    assert_eq!(
        running.emulator.dump().assignments.len(),
        first.summary.assignments_to_create
    );
    // Per write an intent line before it and an outcome line after it; assignments carry AWS's
    // request id.
    let all: Vec<serde_json::Value> = trail
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (intents, lines): (Vec<_>, Vec<_>) = all.into_iter().partition(|l| l["phase"] == "intent");
    assert_eq!(intents.len(), first.ops.len());
    assert_eq!(lines.len(), first.ops.len());
    assert!(
        lines
            .iter()
            .all(|l| l["phase"] == "outcome" && l["outcome"] == "ok")
    );
    let assigned: Vec<_> = lines
        .iter()
        .filter(|l| l["operation"] == "create_assignment")
        .collect();
    assert_eq!(assigned.len(), first.summary.assignments_to_create);
    assert!(assigned.iter().all(
        |l| l["request_id"].as_str().is_some_and(|id| id.len() == 36) && l["account"].is_string()
    ));
    // Calls beside the estimate: SCIM writes are exact; sso-admin polls depend on timing.
    assert_eq!(result.calls.scim as usize, result.calls.scim_estimate);

    running.emulator.clear_requests();
    let second = plan(
        &d,
        &observe(&scim, &admin, &d, AssignmentReads::PerGroup)
            .await
            .unwrap(),
    );
    assert!(second.ops.is_empty(), "{}", second.render_text());
    assert!(
        running
            .emulator
            .requests()
            .iter()
            .all(|r| r.method == "GET" || r.endpoint.starts_with("List")),
        "a second pass only reads"
    );
}

/// Reads of one full observation against the call-count model (aws-sso.md §D.1):
/// `C_scim = ⌈G/100⌉ + ⌈U_all/100⌉ + min(Σ_g max(1,⌈m_g/100⌉), Σ_u max(1,⌈g_u/100⌉))` and
/// `C_sso` = one listing per group of ours (ForPrincipal) or per desired (account, permission
/// set) pair (the seed's policy). Run with more users than groups of ours (members are read per
/// group) and with fewer (per user); both must see the same memberships.
#[tokio::test]
async fn a_full_observation_costs_what_the_call_count_model_says() {
    for (users, reads) in [
        (230, AssignmentReads::PerGroup),
        (230, AssignmentReads::PerPair),
        (20, AssignmentReads::PerPair),
    ] {
        observation_cost(users, reads).await;
    }
}

async fn observation_cost(user_count: usize, reads: AssignmentReads) {
    let running = emulator().await;
    let users: Vec<String> = (0..user_count)
        .map(|i| {
            running
                .emulator
                .add_user(&format!("user{i:03}@example.com"))
        })
        .collect();
    let (scim, admin) = common::aws::clients(&running, RetryPolicy::aws());
    let d = common::sample::desired_state();
    // 30 managed groups with 0 to 145 members (as many as there are users), and 200 groups
    // that are not ours.
    let mut member_counts = Vec::new();
    for (n, (ext, g)) in d.groups.iter().cycle().take(30).enumerate() {
        let name = GroupName::from(format!("{}-{n}", g.name).as_str());
        let ext = aws_replicator::model::ExternalId::from(format!("{ext}{n}").as_str());
        let m = ((n * 5) % 146).min(user_count);
        let (id, _) = scim.create_group(&name, &ext, &[]).await.unwrap();
        for chunk in users[..m].chunks(100) {
            let ids: Vec<_> = chunk
                .iter()
                .map(|u| aws_replicator::model::UserId::from(u.as_str()))
                .collect();
            scim.add_members(&id, &ids).await.unwrap();
        }
        member_counts.push(m);
    }
    for n in 0..200 {
        running.emulator.add_group(&format!("team-{n}"));
    }
    // The marker check needs parseable identities: count only groups `observe` takes as ours.
    let ours: Vec<usize> = member_counts
        .iter()
        .zip(d.groups.keys().cycle())
        .enumerate()
        .filter(|(n, (_, ext))| {
            aws_replicator::model::GroupIdentity::is_ours(&d.platform, &format!("{ext}{n}"))
        })
        .map(|(_, (m, _))| *m)
        .collect();

    running.emulator.clear_requests();
    let observed = observe(&scim, &admin, &d, reads).await.unwrap();
    let counts = running.emulator.counts();
    let groups = 230usize;
    let per_group: usize = ours.iter().map(|m| m.div_ceil(100).max(1)).sum();
    // No user is in more than 100 groups here: one listing each.
    let per_user = user_count;
    let expected_scim = groups.div_ceil(100) + user_count.div_ceil(100) + per_group.min(per_user);
    // Pairs are read only for desired groups that exist: a group not made yet has no
    // assignment (here none exists, as the groups of ours carry other identities).
    let existing: std::collections::BTreeSet<String> = running
        .emulator
        .dump()
        .groups
        .iter()
        .filter_map(|g| g.external_id.clone())
        .collect();
    let pairs: std::collections::BTreeSet<_> = d
        .groups
        .iter()
        .filter(|(ext, _)| existing.contains(ext.as_str()))
        .flat_map(|(_, g)| g.permission_sets.iter().map(move |ps| (&g.account, ps)))
        .collect();
    let expected_sso = match reads {
        AssignmentReads::PerGroup => ours.len(),
        AssignmentReads::PerPair => pairs.len(),
    };
    println!(
        "full observation, {user_count} users, {} groups of ours, assignments {reads:?}: \
         SCIM {} calls (model {expected_scim}), sso-admin {} calls (model {expected_sso})",
        ours.len(),
        counts["scim"],
        counts.get("sso-admin").copied().unwrap_or(0)
    );
    assert_eq!(counts["scim"], expected_scim);
    assert_eq!(counts.get("sso-admin").copied().unwrap_or(0), expected_sso);

    let state = running.emulator.dump();
    for group in observed.groups.iter().filter(|g| {
        g.external_id
            .as_ref()
            .is_some_and(|e| aws_replicator::model::GroupIdentity::is_ours(&d.platform, e.as_str()))
    }) {
        let held = &state
            .groups
            .iter()
            .find(|g2| g2.id == group.id.as_str())
            .unwrap()
            .members;
        let seen: std::collections::BTreeSet<String> = group
            .members
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect();
        assert_eq!(&seen, held, "members of {} as observed", group.name);
    }
}

/// A scoped observation (one project, as a webhook sync will do) reads only that project: each
/// configured role's group by `externalId eq`, each wanted group not found by `displayName eq`
/// (a foreign group may hold the name), the members of its groups, its users by `userName eq`,
/// and the (account, permission set) pairs of its groups that exist. A user that no lookup
/// finds sends it to the full listing once, to compare ignoring case before the user is called
/// missing. No listing of every group.
#[tokio::test]
async fn a_scoped_observation_reads_only_its_project() {
    let running = emulator().await;
    common::sample::provision_users(&running.emulator);
    let (scim, admin) = common::aws::clients(&running, RetryPolicy::aws());
    let d = common::sample::desired_state();
    // heidi@initech.example is wanted but not provisioned in AWS.
    let heidi = |g: &&aws_replicator::desired::DesiredGroup| {
        g.members
            .iter()
            .any(|e| e.as_str() == "heidi@initech.example")
    };
    for missing_user in [false, true] {
        let key = d
            .groups
            .values()
            .find(|g| heidi(g) == missing_user)
            .map(|g| g.identity.project.clone())
            .unwrap();
        let project = key.to_string();
        let scoped = d.within(&[key].into_iter().collect());
        let euids: std::collections::BTreeSet<_> = scoped
            .groups
            .values()
            .flat_map(|g| g.members.iter())
            .collect();
        let pairs: std::collections::BTreeSet<_> = scoped
            .groups
            .values()
            .flat_map(|g| g.permission_sets.iter().map(move |ps| (&g.account, ps)))
            .collect();
        running.emulator.clear_requests();
        let observed = observe(&scim, &admin, &scoped, AssignmentReads::PerPair)
            .await
            .unwrap();
        let counts = running.emulator.counts();
        // No group exists yet: an externalId lookup per configured role and a displayName
        // lookup per wanted group, one lookup per euid, the user listing if one is missing; no
        // assignment listing, since none of its groups exists.
        let roles = scoped.roles.len();
        let model_scim = roles + scoped.groups.len() + euids.len() + usize::from(missing_user);
        println!(
            "scoped observation of {project}: SCIM {} calls (model {model_scim}), sso-admin {} (model {})",
            counts["scim"],
            counts.get("sso-admin").copied().unwrap_or(0),
            pairs.len()
        );
        assert_eq!(counts["scim"], model_scim);
        assert_eq!(
            counts.get("sso-admin").copied().unwrap_or(0),
            0,
            "{pairs:?}"
        );
        assert!(
            !running
                .emulator
                .requests()
                .iter()
                .any(|r| r.endpoint == "GET /Groups" && !r.target.contains("filter=")),
            "no listing of every group"
        );
        assert!(observed.users.len() >= euids.len() - usize::from(missing_user));
    }
}

/// `times` status checks of `endpoint` answered as AWS answers one it does not know yet:
/// HTTP 400 `{"__type":"ResourceNotFoundException",…}`.
fn not_found(endpoint: &str, times: usize) -> Fault {
    Fault {
        family: Family::SsoAdmin,
        endpoint: endpoint.into(),
        status: 400,
        error: Some("ResourceNotFoundException".into()),
        times,
        ..Fault::default()
    }
}

/// The statuses the emulator answered to `endpoint`, in order.
fn statuses(running: &RunningEmulator, endpoint: &str) -> Vec<u16> {
    running
        .emulator
        .requests()
        .iter()
        .filter(|r| r.endpoint == endpoint)
        .map(|r| r.status)
        .collect()
}

/// Right after a write AWS may not know its request id yet (eventual consistency): a status
/// check answered ResourceNotFoundException is a pending operation, polled again, not a failed
/// assignment.
#[tokio::test]
async fn a_status_check_that_does_not_know_the_request_yet_is_polled_again() {
    let running = emulator().await;
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let group = running.emulator.add_group("mst-a");
    running
        .emulator
        .inject(not_found("DescribeAccountAssignmentCreationStatus", 3));
    running
        .emulator
        .inject(not_found("DescribeAccountAssignmentDeletionStatus", 2));
    let a = assignment("111111111111", PS, &group);
    admin.create_assignment(&a).await.unwrap();
    assert_eq!(running.emulator.dump().assignments.len(), 1);
    admin.delete_assignment(&a).await.unwrap();
    assert!(running.emulator.dump().assignments.is_empty());
    for (endpoint, unknown) in [
        ("DescribeAccountAssignmentCreationStatus", 3),
        ("DescribeAccountAssignmentDeletionStatus", 2),
    ] {
        let answered = statuses(&running, endpoint);
        assert_eq!(
            answered[..unknown],
            vec![400; unknown][..],
            "{endpoint}: the not-found answers were given: {answered:?}"
        );
        assert_eq!(
            answered.last(),
            Some(&200),
            "{endpoint}: and polled past: {answered:?}"
        );
        assert!(
            answered[unknown..].iter().all(|s| *s == 200),
            "{answered:?}"
        );
    }
}

/// A request id that AWS never comes to know fails once the poll budget is spent, saying so.
#[tokio::test]
async fn a_status_check_that_never_knows_the_request_fails_after_the_poll_budget() {
    let running = emulator().await;
    let polling = aws_replicator::sso::admin::Polling {
        timeout: Duration::from_millis(300),
        ..fast()
    };
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, polling);
    let group = running.emulator.add_group("mst-a");
    running
        .emulator
        .inject(not_found("DescribeAccountAssignmentCreationStatus", 10_000));
    let started = std::time::Instant::now();
    let err = admin
        .create_assignment(&assignment("111111111111", PS, &group))
        .await
        .unwrap_err()
        .to_string();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    for part in [
        "CreateAccountAssignment: AWS still did not know request",
        "after 300ms",
        "DescribeAccountAssignmentCreationStatus",
        "ResourceNotFoundException",
        "request id",
        "the next run reads it again",
    ] {
        assert!(err.contains(part), "{part:?} missing in: {err}");
    }
    assert!(statuses(&running, "DescribeAccountAssignmentCreationStatus").len() >= 3);
}

/// An sso-admin listing whose NextToken comes back (here: the third page points at the second
/// page's token) is an error naming the operation, not the pages read so far.
#[tokio::test]
async fn an_assignment_listing_that_repeats_its_token_is_an_error() {
    let running = emulator().await;
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast());
    let mut state = running.emulator.dump();
    state.assignments = (0..250)
        .map(|i| aws_replicator::emulator::store::Assignment {
            account_id: "111111111111".into(),
            permission_set_arn: PS.into(),
            principal_type: "GROUP".into(),
            principal_id: format!("g{i:03}"),
        })
        .collect();
    running.emulator.load(state);
    let (account, ps) = (AccountId::from("111111111111"), PermissionSetArn::from(PS));
    assert_eq!(admin.principals_on(&account, &ps).await.unwrap().len(), 250);
    running.emulator.inject(Fault {
        family: Family::SsoAdmin,
        endpoint: "ListAccountAssignments".into(),
        next_cursor: Some("o100".into()),
        every: 3,
        times: 1,
        ..Fault::default()
    });
    running.emulator.clear_requests();
    let err = admin
        .principals_on(&account, &ps)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ListAccountAssignments: AWS repeated a page cursor")
            && err.contains("not complete"),
        "{err}"
    );
    assert_eq!(
        statuses(&running, "ListAccountAssignments"),
        [200, 200, 200]
    );
}

/// Nothing listening where sso-admin should be: the error names the endpoint, says the
/// credentials were not checked, and shows no SDK internals; the failure is retried.
#[tokio::test]
async fn an_endpoint_that_cannot_be_reached_is_named_and_the_credentials_are_not_blamed() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let polling = aws_replicator::sso::admin::Polling {
        max_retries: 2,
        ..fast()
    };
    let admin =
        SsoAdmin::new(sdk(&closed), INSTANCE, 1000.0, polling).with_endpoint(closed.clone());
    let err = admin
        .principals_on(
            &AccountId::from("111111111111"),
            &PermissionSetArn::from(PS),
        )
        .await
        .unwrap_err()
        .to_string();
    eprintln!("{err}");
    assert!(
        err.starts_with(&format!(
            "ListAccountAssignments: could not reach AWS at {closed} ("
        )) && err.contains("the credentials were not checked"),
        "{err}"
    );
    for word in [
        "denied",
        "ExternalId",
        "DispatchFailure",
        "ConnectorError",
        "Error {",
    ] {
        assert!(!err.contains(word), "{word:?} in {err}");
    }
    assert_eq!(admin.calls_made(), 3, "a connection failure is retried");
}
