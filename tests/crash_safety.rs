//! A sync killed with SIGKILL at arbitrary points, 20 times, then run to completion: AWS ends up
//! exactly as desired, with no group twice, and stays so on every later look. Every write is
//! idempotent and every create adopts what an interrupted one left, so there is nothing to
//! recover from but the next run.

mod common;

use common::cli::setup;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

const PROJECTS: usize = 30;
const USERS: usize = 40;

/// 30 projects on 30 accounts, each role held by 4 of 40 users.
fn large_snapshot() -> Value {
    let mut s: Value =
        serde_json::from_str(&std::fs::read_to_string("config/sample-snapshot.json").unwrap())
            .unwrap();
    let (mut projects, mut tenants, mut bindings) = (vec![], vec![], vec![]);
    for p in 0..PROJECTS {
        let (ws, id) = (format!("ws{p:02}"), "app".to_owned());
        projects.push(json!({"workspace": ws, "identifier": id, "tags": {"meshProjectId": [format!("{}", 5000 + p)]}}));
        tenants.push(json!({"workspace": ws, "project": id, "account_id": format!("{:012}", 200_000_000_000u64 + p as u64), "landing_zone": "aws-default"}));
        for (r, role) in ["Project Admin", "Project User", "Project Reader"]
            .iter()
            .enumerate()
        {
            for i in 0..4 {
                let user = format!("u{:02}", (p * 3 + r * 7 + i * 11) % USERS);
                bindings.push(json!({"workspace": ws, "project": id, "role": role, "subject": {"user": user}}));
            }
        }
    }
    let users: Vec<Value> = (0..USERS)
        .map(|u| json!({"username": format!("u{u:02}"), "euid": format!("u{u:02}@example.com")}))
        .collect();
    s["projects"] = json!(projects);
    s["tenants"] = json!(tenants);
    s["bindings"] = json!(bindings);
    s["users"] = json!(users);
    s["groups"] = json!([]);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_twenty_times_still_converges_to_exactly_the_desired_state() {
    let s = setup().await;
    for u in 0..USERS {
        s.running.emulator.add_user(&format!("u{u:02}@example.com"));
    }
    let snapshot = s.dir.path().join("large.json");
    std::fs::write(&snapshot, large_snapshot().to_string()).unwrap();
    let config = s.config(
        "crash.dhall",
        "%s.%s.%4\\$s",
        "T.Replicator::{ rate-limits = { scim = 20.0, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 } }",
    );
    let args = [
        "sync",
        "--config",
        config.to_str().unwrap(),
        "--snapshot",
        snapshot.to_str().unwrap(),
    ];

    // How far AWS is from the desired state: groups, memberships and assignments missing.
    let missing = || {
        let state = s.running.emulator.dump();
        let ours: Vec<_> = state
            .groups
            .iter()
            .filter(|g| g.display_name.starts_with("mst-ws"))
            .collect();
        let members: usize = ours.iter().map(|g| g.members.len()).sum();
        let assignments = state
            .assignments
            .iter()
            .filter(|a| a.account_id.starts_with("2000"))
            .count();
        (PROJECTS * 3 - ours.len()) + (PROJECTS * 3 * 4 - members) + (PROJECTS * 3 - assignments)
    };

    // Each run is killed at a pseudo-random point after its first write (a run spends its
    // first seconds reading; a kill there would test nothing), so every kill cuts a run that
    // was writing. Counted: kills after which work was still left.
    let mut mid_work = 0;
    let mut seed: u64 = 0x5eed_cafe;
    for _ in 0..20 {
        let writes_before = s.writes();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let after = Duration::from_millis((seed >> 33) % 200);
        let mut child = s
            .command()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while s.writes() == writes_before
            && child.try_wait().unwrap().is_none()
            && started.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(after).await;
        let _ = child.kill(); // SIGKILL (unless it already finished)
        child.wait().unwrap();
        if s.writes() > writes_before && missing() > 0 {
            mid_work += 1;
        }
    }
    let left = missing();
    println!("{mid_work} of 20 kills landed mid-work; {left} change(s) left for the final run");
    assert!(
        mid_work >= 10,
        "only {mid_work} of 20 kills cut a run that was writing"
    );
    assert!(s.writes() > 0, "the killed runs wrote");
    assert!(
        left > 0,
        "the killed runs must leave work for the final one"
    );

    let (out, stdout, stderr) = s.sync(&config, snapshot.to_str().unwrap());
    assert!(out.status.success(), "{stdout}\n{stderr}");

    // Exactly the desired groups, each once, with their members and assignments, on every look.
    for look in 0..2 {
        let state = s.running.emulator.dump();
        let mut by_external_id: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
        for g in &state.groups {
            *by_external_id
                .entry(g.external_id.as_deref().unwrap_or(""))
                .or_default() += 1;
            *by_name.entry(g.display_name.to_lowercase()).or_default() += 1;
        }
        assert!(
            by_external_id.values().all(|n| *n == 1),
            "a group twice: {by_external_id:?}"
        );
        assert!(
            by_name.values().all(|n| *n == 1),
            "a name twice: {by_name:?}"
        );
        let managed = state
            .groups
            .iter()
            .filter(|g| g.display_name.starts_with("mst-ws"))
            .count();
        assert_eq!(managed, PROJECTS * 3, "look {look}");
        assert_eq!(
            state
                .assignments
                .iter()
                .filter(|a| a.account_id.starts_with("2000"))
                .count(),
            PROJECTS * 3,
            "look {look}"
        );
        let plan = s.run(&[
            "plan",
            "--detailed-exitcode",
            "--config",
            config.to_str().unwrap(),
            "--snapshot",
            snapshot.to_str().unwrap(),
        ]);
        assert_eq!(
            plan.status.code(),
            Some(0),
            "look {look}: {}",
            String::from_utf8_lossy(&plan.stdout)
        );
    }
}

/// Issue #25: `serve`, with its record in `replicator.state`, killed with SIGKILL at 20
/// pseudo-random points after a write (meshStack's data changing between starts, so that every
/// start has work in every project). After every kill the saved record, loaded as the next
/// start loads it, claims only projects AWS holds exactly as desired; the last start brings
/// AWS to exactly the desired state, with no group twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_twenty_times_keeps_a_record_that_claims_only_what_aws_holds() {
    use aws_replicator::desired::{Desired, Scope, Settings, desired};
    use aws_replicator::engine::{Record, digest::project_digests};
    let s = setup().await;
    for u in 0..USERS {
        s.running.emulator.add_user(&format!("u{u:02}@example.com"));
    }
    let state_file = s.dir.path().join("state.json");
    let snapshot = s.dir.path().join("large.json");
    let config = s.config(
        "crash-serve.dhall",
        "%s.%s.%4\\$s",
        &format!(
            "T.Replicator::{{ rate-limits = {{ scim = 20.0, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 }}, \
             drift-scan.share = 0.0, state = Some \"{}\" }}",
            state_file.display()
        ),
    );
    let loaded = aws_replicator::config::Config::load(&config).unwrap();
    let sso = loaded.sso.as_ref().unwrap();
    // Variant k: every project's readers get one more user, another per variant, so that each
    // variant changes every project (one membership out, one in: well below the deletion
    // guard, which a change of every member would trip).
    let variant = |k: usize| {
        let mut snap = large_snapshot();
        let bindings = snap["bindings"].as_array_mut().unwrap();
        for p in 0..PROJECTS {
            bindings.push(json!({
                "workspace": format!("ws{p:02}"), "project": "app", "role": "Project Reader",
                "subject": {"user": format!("u{:02}", (p + 13 * k + 1) % USERS)}
            }));
        }
        snap
    };
    let desired_of = |snap: &Value| -> Desired {
        let snap: aws_replicator::snapshot::Snapshot =
            serde_json::from_value(snap.clone()).unwrap();
        desired(&snap, &Settings::new(&loaded, sso), &Scope::All)
    };
    // Whether AWS holds `project`'s groups exactly as `desired` wants them.
    let holds = |desired: &Desired, project: &aws_replicator::model::ProjectKey| {
        let state = s.running.emulator.dump();
        let names: BTreeMap<&str, &str> = state
            .users
            .iter()
            .map(|u| (u.id.as_str(), u.user_name.as_str()))
            .collect();
        desired
            .groups
            .iter()
            .filter(|(_, g)| &g.identity.project == project)
            .all(|(id, g)| {
                let Some(found) = state
                    .groups
                    .iter()
                    .find(|x| x.external_id.as_deref() == Some(id.as_str()))
                else {
                    return false;
                };
                let members: std::collections::BTreeSet<&str> =
                    found.members.iter().map(|m| names[m.as_str()]).collect();
                let wanted: std::collections::BTreeSet<&str> =
                    g.members.iter().map(|m| m.as_str()).collect();
                found.display_name == g.name.as_str()
                    && members == wanted
                    && g.permission_sets.iter().all(|ps| {
                        state.assignments.iter().any(|a| {
                            a.principal_id == found.id
                                && a.account_id == g.account.as_str()
                                && a.permission_set_arn == ps.as_str()
                        })
                    })
            })
    };

    // `serve` on the snapshot file, its log to `log`.
    let start = |log: Stdio| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        s.command()
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(["--snapshot", snapshot.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut seed: u64 = 0x5eed_f00d;
    let mut claimed_total = 0;
    let mut after_a_write = 0;
    for k in 0..20 {
        let snap = variant(k % 3);
        std::fs::write(&snapshot, snap.to_string()).unwrap();
        let writes_before = s.writes();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // Anywhere in the first batches (a batch of ten projects takes seconds at 20/s).
        let after = Duration::from_millis((seed >> 33) % 5000);
        let mut child = start(Stdio::null());
        // A start may find AWS already as this variant wants it (a project forgotten by a
        // batch that was cut before writing): then it writes nothing, and is killed anyway.
        let started = std::time::Instant::now();
        while s.writes() == writes_before && started.elapsed() < Duration::from_secs(15) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if s.writes() > writes_before {
            after_a_write += 1;
        }
        tokio::time::sleep(after).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // The record as the next start loads it: what it claims, AWS holds.
        let Ok(text) = std::fs::read(&state_file) else {
            continue;
        };
        let saved = Record::<u64>::parse(&text).expect("the record file is whole");
        let desired = desired_of(&snap);
        let digests = project_digests(&desired);
        let record = Record::load(
            &saved,
            &loaded.platform,
            sso.roles.keys().cloned(),
            &digests,
            0u64,
        )
        .unwrap();
        for project in digests.keys() {
            if record.entry(project).is_some() {
                claimed_total += 1;
                assert!(
                    holds(&desired, project),
                    "after kill {k} the record claims {project}, which AWS does not hold as desired"
                );
            }
        }
    }
    println!(
        "{after_a_write} of 20 kills after a write; {claimed_total} claims checked against AWS"
    );
    assert!(
        after_a_write >= 15,
        "only {after_a_write} of 20 starts wrote before the kill"
    );
    assert!(
        claimed_total > 0,
        "no kill left a record that claimed anything"
    );

    // A last start finishes the work: exactly the desired state, each group once.
    let last_log = s.dir.path().join("last.log");
    let mut child = start(std::fs::File::create(&last_log).unwrap().into());
    let desired = desired_of(&serde_json::from_slice(&std::fs::read(&snapshot).unwrap()).unwrap());
    let started = std::time::Instant::now();
    while !project_digests(&desired).keys().all(|p| holds(&desired, p)) {
        if started.elapsed() > Duration::from_secs(60) {
            let short: Vec<String> = project_digests(&desired)
                .keys()
                .filter(|p| !holds(&desired, p))
                .map(ToString::to_string)
                .collect();
            let log = std::fs::read_to_string(&last_log).unwrap_or_default();
            panic!("the last start did not converge: {short:?}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let state = s.running.emulator.dump();
    let mut by_external_id: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &state.groups {
        *by_external_id
            .entry(g.external_id.as_deref().unwrap_or(""))
            .or_default() += 1;
    }
    assert!(
        by_external_id.values().all(|n| *n == 1),
        "a group twice: {by_external_id:?}"
    );
}
