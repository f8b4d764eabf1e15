//! `serve` against the emulator with about 10 % of all requests failing and drift made behind its
//! back again and again: every drift is repaired within four sync intervals, and the process's
//! memory stays flat.
//!
//! 20 seconds by default; `AWS_REPLICATOR_SOAK_SECONDS=600` for the long run.

mod common;

use aws_replicator::emulator::{Family, Fault};
use common::cli::setup;
use std::process::Stdio;
use std::time::{Duration, Instant};

const INTERVAL: u64 = 5;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn fault(family: Family, status: u16, every: usize) -> Fault {
    Fault {
        family,
        status,
        every,
        times: usize::MAX,
        ..Fault::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_repaired_under_faults_and_memory_stays_flat() {
    let seconds: u64 = std::env::var("AWS_REPLICATOR_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let s = setup().await;
    let config = s.config(
        "soak.dhall",
        "%s.%s.%4\\$s",
        &format!(
            "T.Replicator::{{ schedule = {{ interval-seconds = {INTERVAL}, jitter-seconds = 0 }}, \
             rate-limits = {{ scim = 20.0, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 }} }}"
        ),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = common::peers::Spawned(
        s.command()
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(["--snapshot", "config/sample-snapshot.json"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let emulator = &s.running.emulator;

    // Converged once, before the faults start.
    let converged = |state: &aws_replicator::emulator::store::State| {
        state
            .groups
            .iter()
            .filter(|g| g.display_name.starts_with("mst-acme.web."))
            .count()
            == 3
    };
    let started = Instant::now();
    while !converged(&emulator.dump()) {
        assert!(started.elapsed() < Duration::from_secs(30), "no first sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(INTERVAL)).await;
    let rss_start = rss_kib(pid);

    emulator.inject(Fault {
        retry_after: Some(1),
        ..fault(Family::Scim, 429, 100)
    });
    emulator.inject(fault(Family::Scim, 429, 30));
    emulator.inject(fault(Family::Scim, 500, 30));
    emulator.inject(Fault {
        drop_connection: true,
        processed: true,
        ..fault(Family::Scim, 200, 30)
    });
    emulator.inject(fault(Family::SsoAdmin, 400, 30));
    emulator.inject(fault(Family::SsoAdmin, 500, 30));
    emulator.inject(fault(Family::SsoAdmin, 409, 30));

    let stranger = emulator.add_user("mallory@other.example");
    let groups = [
        "mst-acme.web.meshstack-project-admin",
        "mst-acme.web.meshstack-project-developer",
        "mst-globex.shop.meshstack-project-admin",
    ];
    // The bound, run by run: the scheduler queues a run every interval whatever the last one
    // did, so a run starts at most one interval after the drift, or when the run going then
    // ends (that one may have read the group just before the drift). The repairing run is as
    // long as the faults make it: consecutive strikes on one request back off 0.5, 1, 2, 4 s,
    // each up to twice that with jitter. Measured on the loaded 2-core CI machine, five runs:
    // the slowest repair took two intervals (9.7 to 10.3 s), which left the old three-interval
    // bound 5 s for backoff, two strikes in a row. Four intervals leave 10 s, three strikes.
    // Each round's time is printed, so a repair drifting toward the bound shows before it fails.
    let deadline = Duration::from_secs(4 * INTERVAL);
    let mut worst = Duration::ZERO;
    let mut rounds = 0;
    let soak = Instant::now();
    while soak.elapsed() < Duration::from_secs(seconds) || rounds < 2 {
        // Drift behind its back: a stranger in one group, a member out of another.
        let mut state = emulator.dump();
        let target = groups[rounds % groups.len()];
        let group = state
            .groups
            .iter_mut()
            .find(|g| g.display_name == target)
            .unwrap();
        group.members.insert(stranger.clone());
        let removed = group.members.iter().find(|m| **m != stranger).cloned();
        if let Some(m) = &removed {
            group.members.remove(m);
        }
        emulator.load(state);
        let injected = Instant::now();
        loop {
            let state = emulator.dump();
            let group = state
                .groups
                .iter()
                .find(|g| g.display_name == target)
                .unwrap();
            let repaired = !group.members.contains(&stranger)
                && removed.as_ref().is_none_or(|m| group.members.contains(m));
            if repaired {
                break;
            }
            assert!(
                injected.elapsed() < deadline,
                "drift in {target} not repaired within {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        worst = worst.max(injected.elapsed());
        println!(
            "drift {rounds} in {target} repaired after {:.1?}",
            injected.elapsed()
        );
        rounds += 1;
    }
    let rss_end = rss_kib(pid);
    let failures = emulator
        .requests()
        .iter()
        .filter(|r| r.status >= 400)
        .count();
    println!(
        "soak {seconds} s: {rounds} drifts repaired, slowest after {worst:.1?}; {failures} failed requests; RSS {rss_start} → {rss_end} KiB"
    );
    assert!(rounds >= 2);
    assert!(failures > 0, "the faults struck");
    assert!(
        rss_end < rss_start + rss_start / 2 + 8 * 1024,
        "memory grew: {rss_start} → {rss_end} KiB"
    );
    drop(child);
}
