//! The rolling drift scan: reconciles write only where meshStack's data changed, so drift made
//! by hand in AWS is found here. The scan reads the projects of ours again a slice at a time,
//! in key order, through clients of its own that allow themselves `replicator.drift-scan.share`
//! of each family's rate, beside the reconciler. It writes nothing: a project that reads as its
//! desired state is confirmed in the record (a project never reconciled in this term needs no
//! reconcile then), one that differs is forgotten by the record and queued. One pass over every
//! project is a cycle; its length is `aws_replicator_drift_scan_cycle_seconds`. The first cycle
//! of a term reads through the reconciler's clients, at the full rate, whenever the queue has
//! no work ready: the record a term starts from says what was applied, not what was changed by
//! hand since.

use super::Service;
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

/// Scans until dropped (the leadership ends).
pub async fn scan(service: Arc<Service>, own_scim: ScimClient, own_admin: SsoAdmin) {
    let mut full_rate = true;
    let reads = crate::sso::sync_settings(&service.config).reads;
    let share = service.config.replicator.drift_scan.share;
    let mut after: Option<ProjectKey> = None;
    let mut cycle_started = Instant::now();
    // The store's groups and users, listed once a cycle.
    let mut listing: Option<(crate::scan::Groups, Arc<crate::scan::Users>)> = None;
    let mut listed_at = tokio::time::Instant::now();
    loop {
        let (scim, admin) = match (&service.sso, full_rate) {
            (Some((scim, admin)), true) => (scim, admin),
            _ => (&own_scim, &own_admin),
        };
        // At the full rate the scan shares the reconciler's clients: it waits while work is
        // ready in the queue (the start-up backlog, a webhook), so that it never slows it.
        let wait = service.engine().as_ref().is_none_or(|e| {
            e.desired().is_none()
                || (full_rate
                    && e.queue()
                        .next_ready()
                        .is_some_and(|at| at <= tokio::time::Instant::now()))
        });
        if wait {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        if listing.is_none() {
            listed_at = tokio::time::Instant::now();
            match futures_util::try_join!(scim.list_groups(), scim.list_users()) {
                Ok((groups, users)) => {
                    let groups = crate::scan::Groups::new(&service.config.platform, groups);
                    if let Some(engine) = service.engine().as_mut() {
                        engine.listed(groups.projects().cloned(), groups.roles());
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
        let next = service.engine().as_ref().and_then(|engine| {
            let slice = engine.scan_slice(after.as_ref(), SLICE);
            let estimate = crate::scan::cycle(engine.desired()?, reads, share);
            let (narrowed, digests) = engine.scan_view(&slice)?;
            Some((slice, narrowed, digests, estimate))
        });
        let (Some((slice, narrowed, digests, estimate)), Some((groups, users))) = (next, &listing)
        else {
            tokio::time::sleep(IDLE).await;
            continue;
        };
        service.metrics.record_scan_estimate(estimate.seconds);
        if slice.is_empty() {
            if after.take().is_some() {
                let seconds = cycle_started.elapsed().as_secs_f64();
                // Every cycle, all day: debug. Its length is a metric.
                tracing::debug!(
                    seconds = (seconds * 100.0).round() / 100.0,
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
        let drifted: BTreeSet<ProjectKey> = crate::metrics::drift_by_project(&found.plan)
            .into_keys()
            .collect();
        let last = slice.last().cloned();
        let live = match service.live_unwanted(&drifted).await {
            Ok(live) => live,
            Err(error) => {
                tracing::warn!(%error, "drift scan: meshStack's point reads failed; trying the slice again");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let (slice, drifted) = if live.is_empty() {
            (slice, drifted)
        } else {
            let names: Vec<String> = live.iter().map(ToString::to_string).collect();
            tracing::warn!(projects = %names.join(", "), "drift scan: groups of projects that the last read of meshStack lacks and a point read finds; not retired, read again");
            service.runs.enqueue(
                crate::desired::Scope::projects(live.iter().cloned()),
                super::runs::Trigger::DriftScan,
            );
            (
                slice.into_iter().filter(|p| !live.contains(p)).collect(),
                drifted.difference(&live).cloned().collect(),
            )
        };
        let now = tokio::time::Instant::now();
        let drifted = {
            let mut engine = service.engine();
            let Some(engine) = engine.as_mut() else {
                continue;
            };
            engine.scanned(&slice, &digests, &drifted, &found.seen, listed_at, now)
        };
        service
            .metrics
            .record_scan(slice.len() as u64, drifted.len() as u64);
        if !drifted.is_empty() {
            service.metrics.record_drift(&found.plan, Some(&slice));
            let names: Vec<String> = drifted.iter().map(ToString::to_string).collect();
            tracing::info!(projects = %names.join(", "), "drift scan: AWS differs; queued");
            // A run of its own shows the repair (`GET /v1/runs`), apart from any caller's.
            let scope = crate::desired::Scope::projects(drifted.iter().cloned());
            if let Some(id) = service.runs.begin(scope, super::runs::Trigger::DriftScan) {
                let summary = super::runs::RunSummary {
                    reconciled_projects: Some(0),
                    ..Default::default()
                };
                if let Some(summary) = service.track(id, true, now, drifted.clone(), summary) {
                    super::worker::finish(
                        &service.runs,
                        &service.metrics,
                        id,
                        true,
                        now,
                        Ok(summary),
                    );
                }
            }
            service.wake.notify_one();
        }
        service.record_engine_metrics();
        after = last;
    }
}

impl Service {
    /// Of the `drifted` projects, those the last read of meshStack does not want and that
    /// meshStack still has, by a point read each: a listing can skip a live project (offset
    /// paging while projects come and go), and after a restart no earlier read says it was
    /// there. Their groups are not retired. None with a snapshot file: it is the whole truth.
    async fn live_unwanted(
        &self,
        drifted: &BTreeSet<ProjectKey>,
    ) -> Result<BTreeSet<ProjectKey>, String> {
        if self.snapshot.is_some() {
            return Ok(BTreeSet::new());
        }
        let unwanted: Vec<ProjectKey> = {
            let engine = self.engine();
            let Some(engine) = engine.as_ref() else {
                return Ok(BTreeSet::new());
            };
            drifted
                .iter()
                .filter(|p| !engine.wants(p))
                .cloned()
                .collect()
        };
        if unwanted.is_empty() {
            return Ok(BTreeSet::new());
        }
        crate::meshstack::still_there(self.meshstack()?, &unwanted)
            .await
            .map(|live| live.into_iter().map(|p| p.key()).collect())
            .map_err(|e| e.to_string())
    }
}
