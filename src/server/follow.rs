//! A follower keeps the desired state warm. With leader election on, a replica that does not
//! lead reads meshStack on the leader's schedule (never AWS). The leader marks on the lease
//! what it has applied (`leader::SYNCED_ANNOTATION`, after each run that left nothing undone).
//! A follower that was reading by then takes over by change ([`Warm::lead`]): its first run
//! reconciles what changed since the mark instead of reading the whole estate from AWS first,
//! and the drift scan's first cycle, at the full rate, rebuilds what it knows of AWS. Otherwise
//! (no mark, a mark older than its reads) the new leader starts with a full run.

use super::Service;
use crate::desired::{Desired, Scope, Settings, desired};
use crate::known::{Known, Warm};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How far the replicas' clocks may differ: a follower's reads and the leader's mark are
/// compared by wall clock. NTP keeps a cluster's nodes within milliseconds.
const SKEW: Duration = Duration::from_secs(2);

/// How often a follower looks whether it leads: a replica that lost the lease starts reading
/// again within this.
const TICK: Duration = Duration::from_secs(1);

/// Reads meshStack every interval (plus jitter) while this replica follows, until dropped.
pub async fn follow(service: Arc<Service>) {
    if !following(&service) {
        return std::future::pending().await;
    }
    let schedule = &service.config.replicator.schedule;
    let mut next = Instant::now();
    loop {
        if service.leading() {
            // The leader's own knowledge counts; a replica that loses the lease reads afresh.
            *service.warm() = None;
            next = Instant::now();
        } else if Instant::now() >= next {
            // Stamped when the read ends: a change it saw is no younger than that, and a first
            // read that ended by the leader's mark saw nothing after it.
            match read(&service).await {
                // Leadership may have begun during the read: the leader started without it.
                Ok(_) if service.leading() => {}
                Ok(desired) => {
                    let now = SystemTime::now();
                    let forget_before = now.checked_sub(window(&service)).unwrap_or(now);
                    let mut warm = service.warm();
                    match warm.as_mut() {
                        Some(warm) => warm.read(desired, now, forget_before),
                        None => *warm = Some(Warm::new(desired, now)),
                    }
                    tracing::debug!("following: read meshStack");
                }
                Err(error) => {
                    tracing::warn!(%error, "following: reading meshStack failed; keeping the last read")
                }
            }
            service
                .follower_ready_at
                .lock()
                .expect("ready lock")
                .get_or_insert_with(|| tokio::time::Instant::now() + SKEW);
            next = Instant::now()
                + Duration::from_secs(
                    schedule.interval_seconds + super::jitter(schedule.jitter_seconds),
                );
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Whether a follower keeps the desired state warm: with leader election, the SSO path and
/// the drift scan on (which confirms AWS after a take-over by change). Otherwise a new leader
/// starts with a full run.
pub fn following(service: &Service) -> bool {
    service.election.is_some()
        && service.sso.is_some()
        && service.config.replicator.drift_scan.share > 0.0
}

/// A leader shutting down gives the next one a fresh mark: one last run by change (meshStack
/// read, what changed applied), then the lease says what is applied. A follower that has been
/// reading since before it (the readiness of a new replica in a rolling update waits for
/// that) then takes over by change. Within what is left of the grace period; cut, it marks
/// nothing and the next leader starts with a full run.
pub async fn hand_over(service: &Service) {
    let since = service.stopping_since.get().copied();
    let budget = since.map_or(Duration::ZERO, |at| {
        super::GRACE.saturating_sub(at.elapsed())
    });
    if !following(service) || !service.leading() {
        return;
    }
    if service.known().is_none() {
        tracing::info!(
            "shutting down: no run has reconciled everything in this term, so no hand-over run; \
             the next leader starts with a full run"
        );
        return;
    }
    if budget < Duration::from_secs(2) {
        tracing::info!(
            "shutting down: no time left for a hand-over run; the next leader starts with a full run"
        );
        return;
    }
    // A run of everything with the known state goes by change and marks the lease.
    let handed = tokio::time::timeout(budget, Box::pin(service.run(&Scope::All))).await;
    match handed {
        Ok(Ok(summary)) => tracing::info!(
            applied = summary.applied,
            reconciled_groups = summary.reconciled_groups.unwrap_or(0),
            "shutting down: hand-over run done; the lease marks what is applied"
        ),
        Ok(Err(error)) => tracing::warn!(%error, "shutting down: the hand-over run failed"),
        Err(_) => {
            tracing::warn!("shutting down: the hand-over run did not finish in the grace period")
        }
    }
}

/// The platform's desired state, as a full run computes it before its account phase.
async fn read(service: &Service) -> Result<Desired, String> {
    let sso = service.config.require_sso().map_err(|e| e.to_string())?;
    let snapshot = service.snapshot(&Scope::All).await?;
    Ok(desired(
        &snapshot,
        &Settings::new(&service.config, sso),
        &Scope::All,
    ))
}

/// How long a follower keeps its stamps: one interval with its jitter until the leader's
/// next run, the run's deadline, and the lease it may hold after it stopped. A leader that has
/// not marked a run within this is not followed by change.
fn window(service: &Service) -> Duration {
    let r = &service.config.replicator;
    let lease = r
        .leader_election
        .as_ref()
        .map_or(0, |l| l.lease_duration_seconds);
    Duration::from_secs(
        r.schedule.interval_seconds
            + r.schedule.jitter_seconds
            + r.serve.run_deadline_seconds
            + lease,
    )
}

/// What a new leader knows: a follower's warm state, when the last leader's mark lets it go
/// by change, or nothing (its first run is full).
pub async fn take_over(service: &Service) -> Option<Known<Instant>> {
    // A warm state exists only while following, with the drift scan on.
    let warm = service.warm().take()?;
    let synced = service.election.as_ref()?.synced_through().await;
    let Some(known) = synced
        .and_then(|at| at.checked_sub(SKEW))
        .and_then(|at| warm.lead(at, Instant::now()))
    else {
        tracing::info!(
            synced = ?synced,
            "leading: no mark of the last leader's work that this replica's reads cover; \
             the first run is full"
        );
        return None;
    };
    tracing::info!(
        groups = known.dirty().len(),
        "leading from the desired state read while following: the first run goes by change; \
         the drift scan's first cycle, at the full rate, confirms AWS"
    );
    Some(known)
}
