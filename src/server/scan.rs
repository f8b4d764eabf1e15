//! The rolling drift scan: runs by change write only where meshStack's data changed, so drift
//! made by hand in AWS is found here. The scan reads the projects of ours again a slice at a
//! time, in key order, through clients of its own that allow themselves
//! `replicator.drift-scan.share` of each family's rate; it pauses while a run is queued or
//! running. It writes nothing: a project that differs from its desired state is marked and a
//! run for it is queued, which repairs it as any other run does. One pass over every project
//! is a cycle; its length is `aws_replicator_drift_scan_cycle_seconds`.

use super::Service;
use super::runs::Trigger;
use crate::desired::Scope;
use crate::model::ProjectKey;
use crate::sso::admin::SsoAdmin;
use crate::sso::scim::ScimClient;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Projects read per slice: small enough that a run waits at most a few seconds for a slice
/// to end, large enough that the reads of a slice run side by side.
const SLICE: usize = 10;

/// How long the scan waits before it looks again when there is nothing it may do.
const IDLE: Duration = Duration::from_millis(500);

/// Scans until dropped (the scheduler's leadership ends). With `full_rate_first` (a leader
/// that took over from a follower's warm state and knows nothing of AWS yet), the first cycle
/// reads through the runs' clients, at the full rate: runs and the scan take turns anyway.
pub async fn scan(
    service: Arc<Service>,
    own_scim: ScimClient,
    own_admin: SsoAdmin,
    full_rate_first: bool,
) {
    let mut full_rate = full_rate_first;
    // The term's first run is queued by the scheduler, beside this; the scan waits its turn
    // behind it rather than holding it up with the cycle's listing.
    tokio::time::sleep(IDLE).await;
    let reads = crate::sso::sync_settings(&service.config).reads;
    let share = service.config.replicator.drift_scan.share;
    let mut after: Option<ProjectKey> = None;
    let mut cycle_started = Instant::now();
    // The store's groups and users, listed once a cycle.
    let mut listing: Option<(crate::scan::Groups, Arc<crate::scan::Users>)> = None;
    loop {
        let (scim, admin) = match (&service.sso, full_rate) {
            (Some((scim, admin)), true) => (scim, admin),
            _ => (&own_scim, &own_admin),
        };
        if service.runs.busy() || service.known().is_none() {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        if listing.is_none() {
            match futures_util::try_join!(scim.list_groups(), scim.list_users()) {
                Ok((groups, users)) => {
                    let groups = crate::scan::Groups::new(&service.config.platform, groups);
                    if let Some(known) = service.known().as_mut() {
                        known.listed(groups.projects(), Instant::now());
                    }
                    let users = Arc::new(crate::scan::Users::new(users));
                    // Runs by change use it too, in place of listing every user again.
                    *service.listed_users.lock().expect("listed users lock") = Some(users.clone());
                    listing = Some((groups, users));
                }
                Err(error) => {
                    tracing::warn!(%error, "drift scan: listing the groups and users failed; trying again");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            }
        }
        let next = service.known().as_ref().map(|known| {
            let slice = known.scan_slice(after.as_ref(), SLICE);
            let estimate = crate::scan::cycle(known.desired(), reads, share);
            let narrowed = known
                .desired()
                .within(&slice.iter().cloned().collect::<BTreeSet<_>>());
            (slice, narrowed, estimate)
        });
        let (Some((slice, narrowed, estimate)), Some((groups, users))) = (next, &listing) else {
            continue;
        };
        service.metrics.record_scan_estimate(estimate.seconds);
        if slice.is_empty() {
            if after.take().is_some() {
                let seconds = cycle_started.elapsed().as_secs_f64();
                tracing::info!(
                    seconds,
                    projects = estimate.projects,
                    "drift scan: cycle complete"
                );
                service.metrics.record_scan_cycle(seconds);
                full_rate = false;
            } else {
                // No project to scan yet.
                tokio::time::sleep(IDLE).await;
            }
            cycle_started = Instant::now();
            listing = None;
            continue;
        }
        let found = match crate::sync::scan_slice(scim, admin, narrowed, reads, groups, users).await
        {
            Ok(found) => found,
            Err(error) => {
                // The slice is read again once AWS answers; nothing is concluded from a
                // failed read.
                tracing::warn!(%error, "drift scan: reading AWS failed; trying the slice again");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let now = Instant::now();
        let oldest = {
            let mut known = service.known();
            let Some(known) = known.as_mut() else {
                continue;
            };
            known.scanned(&slice, &found.drifted, &found.seen, now);
            known
                .oldest_confirmation()
                .map_or(0.0, |at| now.duration_since(at).as_secs_f64())
        };
        let projects: BTreeSet<ProjectKey> = crate::metrics::drift_by_project(&found.plan)
            .into_keys()
            .collect();
        service
            .metrics
            .record_scan(slice.len() as u64, projects.len() as u64, oldest);
        if !found.drifted.is_empty() {
            service.metrics.record_drift(&found.plan, Some(&slice));
            let names: Vec<String> = projects.iter().map(ToString::to_string).collect();
            tracing::info!(projects = %names.join(", "), "drift scan: AWS differs; queueing a sync");
            if service
                .runs
                .enqueue(Scope::projects(projects), Trigger::DriftScan)
                .is_none()
            {
                return;
            }
        }
        after = slice.last().cloned();
    }
}
