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
