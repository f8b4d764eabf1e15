//! The engine's worker in `serve`: takes a batch of projects from the queue, forgets what the
//! record claims of them (and saves that, so that a kill mid-write never leaves a claim AWS does
//! not hold), reconciles them (`engine::reconcile`), settles each project on its own outcome,
//! saves the record, and finishes the runs whose projects are all done. One project's failure
//! is that project's: it is retried with backoff and held after a few, and the others go on.

use super::Service;
use super::runs::{RunId, RunSummary};
use crate::engine::Work;
use crate::model::ProjectKey;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Projects reconciled together: their reads run side by side; a batch that fails is
/// retried project by project.
const BATCH: usize = 10;

/// A progress line is logged each time this many more projects were reconciled.
const PROGRESS_EVERY: usize = 1000;

/// A run waiting for its projects.
pub struct Tracker {
    pub run: RunId,
    pub scoped: bool,
    pub started: Instant,
    /// Each project with the digest of the desired state the run read: a reconcile to an
    /// older one (meshStack changed while it ran) does not end the wait.
    pub waiting: BTreeMap<ProjectKey, Option<crate::engine::Digest>>,
    pub summary: RunSummary,
}

impl Service {
    /// Finishes `run` once each of `projects` is reconciled; at once when there are none.
    /// Returns whether the run is over.
    pub(super) fn track(
        &self,
        run: RunId,
        scoped: bool,
        started: Instant,
        projects: BTreeSet<ProjectKey>,
        summary: RunSummary,
    ) -> Option<RunSummary> {
        if projects.is_empty() {
            return Some(summary);
        }
        let waiting = {
            let engine = self.engine();
            projects
                .into_iter()
                .map(|p| {
                    let digest = engine.as_ref().and_then(|e| e.digest_of(&p));
                    (p, digest)
                })
                .collect()
        };
        self.trackers.lock().expect("trackers lock").push(Tracker {
            run,
            scoped,
            started,
            waiting,
            summary,
        });
        self.wake.notify_one();
        None
    }

    /// The metrics of the engine's state.
    pub(super) fn record_engine_metrics(&self) {
        let engine = self.engine();
        let Some(engine) = engine.as_ref() else {
            return;
        };
        let counts = engine.counts();
        let queued: Vec<(&'static str, usize)> = engine
            .queue()
            .pending()
            .into_iter()
            .map(|(p, n)| (p.label(), n))
            .collect();
        self.metrics.record_projects(
            [
                counts.confirmed,
                counts.pending,
                counts.failed,
                counts.held,
                counts.paused,
            ],
            &queued,
        );
        self.metrics
            .record_removals_paused(engine.removals_paused().is_some());
        // The project confirmed longest ago; one waiting for its first confirmation (queued,
        // failing, its removals paused) counts from the start of the term, so that a scan that
        // never gets to run shows as behind rather than as 0. Held projects are a person's.
        if engine.desired().is_some() {
            let now = Instant::now();
            let confirmed = engine
                .record()
                .oldest_confirmation()
                .map(|at| now.saturating_duration_since(at));
            let waiting = (counts.pending + counts.failed + counts.paused > 0).then(|| {
                now.saturating_duration_since(*self.term_started.lock().expect("term lock"))
            });
            let oldest = confirmed.max(waiting).unwrap_or_default();
            self.metrics.record_oldest_unconfirmed(oldest.as_secs_f64());
        }
    }
}

/// Reconciles what the queue hands out until `stopping` (the batch in hand is finished).
pub async fn work(service: &Service, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let Some((scim, admin)) = &service.sso else {
        return std::future::pending().await;
    };
    loop {
        if *stopping.borrow() {
            return;
        }
        let taken = service.engine().as_mut().map(|engine| {
            let batch = engine.batch(BATCH, Instant::now());
            (batch, engine.queue().next_ready())
        });
        let Some((batch, next)) = taken else {
            // Not leading yet, or no longer.
            tokio::select! {
                () = service.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stopping.changed() => {}
            }
            continue;
        };
        service.record_engine_metrics();
        if batch.is_empty() {
            // Projects settled without work (confirmed by the scan, or held) finish runs too.
            service.settled(&[]);
            let wait = next.map_or(Duration::from_secs(1), |at| {
                at.saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(1))
            });
            tokio::select! {
                () = service.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = stopping.changed() => {}
            }
            continue;
        }
        reconcile(service, scim, admin, batch).await;
    }
}

async fn reconcile(
    service: &Service,
    scim: &crate::sso::scim::ScimClient,
    admin: &crate::sso::admin::SsoAdmin,
    batch: Vec<Work>,
) {
    let projects: BTreeSet<ProjectKey> = batch.iter().map(|w| w.project.clone()).collect();
    let (slice, estate, claimed, paused) = {
        let mut engine = service.engine();
        let Some(engine) = engine.as_mut() else {
            return;
        };
        let claimed = engine.forget_all(&projects);
        let paused = engine.removals_paused().is_some();
        (engine.slice(&projects), engine.managed(), claimed, paused)
    };
    tracing::debug!(?estate, projects = projects.len(), "reconciling a batch");
    if claimed {
        super::follow::save(service).await;
    }
    let Some(slice) = slice else {
        return;
    };
    let listed = service
        .listed_users
        .lock()
        .expect("listed users lock")
        .clone();
    let settings = crate::sync::Settings {
        withhold_removals: paused,
        ..crate::sso::sync_settings(&service.config)
    };
    let report = crate::engine::reconcile::reconcile(
        &slice,
        estate,
        listed.as_deref(),
        scim,
        admin,
        settings,
        &service.audit,
        |plan| {
            service
                .metrics
                .record_drift(plan, Some(&projects.iter().cloned().collect::<Vec<_>>()))
        },
    )
    .await;
    for (plan, applied) in &report.plans {
        service.metrics.record_report(plan, applied);
    }
    for (projects, left) in &report.remaining {
        service.metrics.record_drift(left, Some(projects));
    }
    service.metrics.record_guard(report.refused.is_some());
    let now = Instant::now();
    let mut settled = Vec::new();
    {
        let mut engine = service.engine();
        let Some(engine) = engine.as_mut() else {
            return;
        };
        for work in &batch {
            let outcome = report
                .projects
                .get(&work.project)
                .cloned()
                .unwrap_or_default();
            let result = match &outcome.error {
                None => Ok(()),
                Some(error) => Err(error.clone()),
            };
            if let Err(error) = &result {
                service.metrics.record_project_failure();
                tracing::warn!(project = %work.project, %error, "project not reconciled; retried with backoff");
            }
            if result.is_ok() && outcome.withheld > 0 {
                engine.park(&work.project, work.digest, now);
            } else {
                engine.settle(&work.project, work.digest, result, now);
            }
            settled.push((work.project.clone(), work.digest, outcome));
        }
        for (project, failure) in engine.queue().held() {
            if failure.count == crate::engine::queue::HOLD_AFTER {
                tracing::warn!(project = %project, error = %failure.error, failures = failure.count, "project held: it failed too often; retried at most hourly, or at once when meshStack changes it or a webhook names it");
            }
        }
    }
    // The batch's requests count toward each run that waited for one of its projects.
    {
        let mut trackers = service.trackers.lock().expect("trackers lock");
        for tracker in trackers.iter_mut() {
            if projects.iter().any(|p| tracker.waiting.contains_key(p)) {
                let s = &mut tracker.summary;
                s.scim_calls += report.scim_calls;
                s.sso_admin_calls += report.sso_admin_calls;
                s.scim_reads += report.scim_reads;
                s.sso_admin_reads += report.sso_admin_reads;
                s.planned += report.plans.iter().map(|(p, _)| p.ops.len()).sum::<usize>();
                s.reconciled_projects = Some(s.reconciled_projects.unwrap_or(0));
            }
        }
    }
    // The metrics first: a run that finishes now is seen with them.
    service.record_engine_metrics();
    progress(service, batch.len());
    service.settled(&settled);
    super::follow::save(service).await;
}

impl Service {
    /// `settled` projects were reconciled (or failed): the runs waiting for them take their
    /// outcome, and those with nothing left to wait for finish. A project settled by the
    /// engine without work (confirmed already, or held) counts as done for the runs.
    pub(super) fn settled(
        &self,
        settled: &[(
            ProjectKey,
            crate::engine::Digest,
            crate::engine::reconcile::ProjectOutcome,
        )],
    ) {
        let done: Vec<Tracker> = {
            let engine = self.engine();
            let mut trackers = self.trackers.lock().expect("trackers lock");
            for tracker in trackers.iter_mut() {
                for (project, digest, outcome) in settled {
                    // Reconciled to an older desired state than the run read: still waiting
                    // (the project is queued again with the newer one). A failure ends it.
                    let ends = tracker.waiting.get(project).is_some_and(|wanted| {
                        outcome.error.is_some() || wanted.is_none_or(|w| w == *digest)
                    });
                    if ends {
                        tracker.waiting.remove(project);
                        let s = &mut tracker.summary;
                        s.applied += outcome.applied;
                        s.failed += outcome.failed;
                        s.skipped += outcome.skipped;
                        s.reconciled_projects = Some(s.reconciled_projects.unwrap_or(0) + 1);
                        if outcome.withheld > 0 && outcome.error.is_none() {
                            s.withheld += outcome.withheld;
                            s.problems.push(format!(
                                "project {project}: {} removals withheld: removals are paused (POST /v1/removals/allow)",
                                outcome.withheld
                            ));
                        }
                        if let Some(error) = &outcome.error {
                            if outcome.failed == 0 {
                                s.failed += 1;
                            }
                            s.problems.push(format!("project {project}: {error}"));
                        }
                    }
                }
                // Settled without work: no longer queued or worked on.
                if let Some(engine) = engine.as_ref() {
                    tracker.waiting.retain(|p, _| engine.queue().contains(p));
                }
            }
            let (done, waiting): (Vec<Tracker>, Vec<Tracker>) =
                trackers.drain(..).partition(|t| t.waiting.is_empty());
            *trackers = waiting;
            done
        };
        for tracker in done {
            super::worker::finish(
                &self.runs,
                &self.metrics,
                tracker.run,
                tracker.scoped,
                tracker.started,
                Ok(tracker.summary),
            );
        }
    }
}

/// Every [`PROGRESS_EVERY`] projects: where the estate stands, and how long what is queued
/// takes at the pace so far.
fn progress(service: &Service, settled: usize) {
    let total = service.settled_count.fetch_add(settled, Ordering::Relaxed) + settled;
    if total / PROGRESS_EVERY == (total - settled) / PROGRESS_EVERY {
        return;
    }
    let Some(counts) = service.engine().as_ref().map(crate::engine::Engine::counts) else {
        return;
    };
    let per_second = total as f64 / service.started.elapsed().as_secs_f64().max(1.0);
    let left = (counts.pending + counts.failed) as f64 / per_second.max(f64::MIN_POSITIVE);
    tracing::info!(
        reconciled = total,
        confirmed = counts.confirmed,
        pending = counts.pending,
        failed = counts.failed,
        held = counts.held,
        seconds_left = left.round(),
        "reconciling: progress"
    );
}
