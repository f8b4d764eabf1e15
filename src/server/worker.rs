//! The reader: takes the queued runs one at a time and reads meshStack for each within the run
//! deadline, which queues its projects in the engine; the run then goes on until they are
//! reconciled (`server/reconciler.rs` finishes it). At shutdown the running read gets a grace
//! period; one still running after it is stopped and recorded as interrupted. Each run's start
//! and end are logged at `info`, which `serve`'s default filter shows.

use super::runs::{RunId, RunStatus, RunSummary, Runs};
use crate::desired::Scope;
use crate::metrics::{Metrics, SyncOutcome};
use std::cell::Cell;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How long a running sync may go on after a shutdown signal before it is stopped.
pub const GRACE: Duration = Duration::from_secs(20);

pub struct Worker<'a> {
    pub runs: &'a Runs,
    pub metrics: &'a Metrics,
    /// `replicator.serve.run-deadline-seconds`.
    pub deadline: Duration,
}

impl Worker<'_> {
    /// Runs each queued run's read with `run` until the queue closes: `Ok(Some)` when the run
    /// is over with its read (nothing to reconcile, or the meshIdB path), `Ok(None)` when its
    /// projects are queued and it is finished once they are reconciled. Once `stopping`
    /// resolves, the running read has [`GRACE`] left.
    ///
    /// A read stopped by the deadline or the grace period is dropped where it stands, as a
    /// killed process would be: every step is idempotent or recorded in AWS, so the next run
    /// completes it.
    pub async fn work<F, R>(&self, stopping: impl Future<Output = ()>, run: F)
    where
        F: Fn(RunId, Scope) -> R,
        R: Future<Output = Result<Option<RunSummary>, String>>,
    {
        let running: Cell<Option<(RunId, bool, Instant)>> = Cell::new(None);
        let work = async {
            while let Some((id, scope)) = self.runs.next().await {
                let scoped = scope != Scope::All;
                tracing::info!(run = id, scope = %describe(&scope), "sync started");
                let started = Instant::now();
                running.set(Some((id, scoped, started)));
                let outcome = tokio::time::timeout(self.deadline, run(id, scope))
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "run exceeded its deadline of {} s (replicator.serve.run-deadline-seconds)",
                            self.deadline.as_secs()
                        ))
                    });
                running.set(None);
                self.runs.read_done(id);
                match outcome {
                    Ok(None) => {}
                    Ok(Some(summary)) => self.finish(id, scoped, started, Ok(summary)),
                    Err(error) => self.finish(id, scoped, started, Err(error)),
                }
            }
        };
        tokio::select! {
            () = work => {}
            () = async {
                stopping.await;
                tokio::time::sleep(GRACE).await;
            } => {
                if let Some((id, scoped, started)) = running.get() {
                    tracing::warn!(
                        run = id,
                        "the running sync did not finish in {GRACE:?}; stopped, recorded as interrupted"
                    );
                    self.metrics.record_sync(
                        scoped,
                        SyncOutcome::Interrupted,
                        started.elapsed().as_secs_f64(),
                    );
                    self.runs.finish(
                        id,
                        RunStatus::Interrupted,
                        None,
                        Some(format!(
                            "interrupted: still running {} s after the shutdown signal; the next run completes it",
                            GRACE.as_secs()
                        )),
                    );
                }
            }
        }
    }

    pub fn finish(
        &self,
        id: RunId,
        scoped: bool,
        started: Instant,
        outcome: Result<RunSummary, String>,
    ) {
        finish(self.runs, self.metrics, id, scoped, started, outcome);
    }
}

/// Records a finished run: its status, the metrics and the log line.
pub fn finish(
    runs: &Runs,
    metrics: &Metrics,
    id: RunId,
    scoped: bool,
    started: Instant,
    outcome: Result<RunSummary, String>,
) {
    // Rounded for people: a log line or run record needs no nanoseconds.
    let seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    match outcome {
        Ok(summary) => {
            let ok = summary.failed == 0
                && summary.skipped == 0
                && summary.remaining == 0
                && summary.withheld == 0;
            let (status, outcome) = if ok {
                (RunStatus::Succeeded, SyncOutcome::Ok)
            } else {
                (RunStatus::Failed, SyncOutcome::Failed)
            };
            metrics.record_sync(scoped, outcome, seconds);
            tracing::info!(
                run = id,
                succeeded = ok,
                seconds,
                applied = summary.applied,
                failed = summary.failed,
                skipped = summary.skipped,
                remaining = summary.remaining,
                withheld = summary.withheld,
                "sync finished"
            );
            // What a person must look at, named: a run can succeed and still leave projects
            // as they are.
            if !summary.held.is_empty() {
                tracing::warn!(
                    run = id,
                    projects = %summary.held.join(", "),
                    "projects held: nothing of theirs is changed until what the findings name is fixed"
                );
            }
            if !summary.problems.is_empty() {
                tracing::warn!(
                    run = id,
                    problems = %summary.problems.join("; "),
                    "sync finished with problems"
                );
            }
            runs.finish(id, status, Some(summary), None);
        }
        Err(error) => {
            metrics.record_sync(scoped, SyncOutcome::Failed, seconds);
            tracing::error!(run = id, seconds, %error, "sync failed");
            runs.finish(id, RunStatus::Failed, None, Some(error));
        }
    }
}

/// A run's scope for the log: `all`, or the workspaces and projects it names.
fn describe(scope: &Scope) -> String {
    match scope {
        Scope::All => "all".into(),
        Scope::Only {
            workspaces,
            projects,
        } => workspaces
            .iter()
            .map(|w| format!("workspace {w}"))
            .chain(projects.iter().map(|p| format!("project {p}")))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::super::runs::Trigger;
    use super::*;

    fn syncs(metrics: &Metrics, outcome: &str) -> String {
        let text = metrics.render();
        text.lines()
            .find(|l| {
                l.starts_with("aws_replicator_syncs_total{")
                    && l.contains("scope=\"all\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .unwrap_or_else(|| panic!("no {outcome} series:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_past_its_deadline_fails_and_the_next_one_starts() {
        let runs = Runs::default();
        let metrics = Metrics::new();
        let worker = Worker {
            runs: &runs,
            metrics: &metrics,
            deadline: Duration::from_secs(5),
        };
        let hung = runs.enqueue(Scope::All, Trigger::Startup).unwrap().run_id;
        let check = async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            let run = runs.get(hung).unwrap();
            assert_eq!(run.status, RunStatus::Failed);
            assert_eq!(
                run.error.as_deref(),
                Some("run exceeded its deadline of 5 s (replicator.serve.run-deadline-seconds)")
            );
            assert_eq!(syncs(&metrics, "failed"), "1");
            let next = runs.enqueue(Scope::All, Trigger::Schedule).unwrap().run_id;
            tokio::time::sleep(Duration::from_secs(6)).await;
            assert_eq!(runs.get(next).unwrap().status, RunStatus::Failed);
            runs.close();
        };
        let run = |_, _| std::future::pending::<Result<Option<RunSummary>, String>>();
        tokio::join!(worker.work(std::future::pending(), run), check);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_cut_off_by_the_grace_period_is_recorded_as_interrupted() {
        let runs = Runs::default();
        let metrics = Metrics::new();
        let worker = Worker {
            runs: &runs,
            metrics: &metrics,
            deadline: Duration::from_secs(3600),
        };
        let id = runs.enqueue(Scope::All, Trigger::Startup).unwrap().run_id;
        let started = Instant::now();
        let stopping = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            runs.close();
        };
        let run = |_, _| std::future::pending::<Result<Option<RunSummary>, String>>();
        worker.work(stopping, run).await;
        assert_eq!(started.elapsed(), Duration::from_secs(1) + GRACE);
        let run = runs.get(id).unwrap();
        assert_eq!(run.status, RunStatus::Interrupted);
        // As `GET /v1/runs/{id}` shows it.
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["status"], "interrupted", "{json}");
        assert!(json["finished_at"].is_string(), "{json}");
        assert!(
            json["error"].as_str().unwrap().starts_with("interrupted"),
            "{json}"
        );
        assert_eq!(syncs(&metrics, "interrupted"), "1");
        assert_eq!(syncs(&metrics, "failed"), "0");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_a_run_that_finishes_within_the_grace_period_and_not_when_idle() {
        let runs = Runs::default();
        let metrics = Metrics::new();
        let worker = Worker {
            runs: &runs,
            metrics: &metrics,
            deadline: Duration::from_secs(3600),
        };
        let id = runs.enqueue(Scope::All, Trigger::Startup).unwrap().run_id;
        let started = Instant::now();
        let stopping = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            runs.close();
        };
        let run = |_, _| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(Some(RunSummary::default()))
        };
        worker.work(stopping, run).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(runs.get(id).unwrap().status, RunStatus::Succeeded);
        assert_eq!(syncs(&metrics, "ok"), "1");

        // Idle: shutdown is immediate.
        let runs = Runs::default();
        let worker = Worker {
            runs: &runs,
            ..worker
        };
        let started = Instant::now();
        let stopping = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            runs.close();
        };
        worker
            .work(stopping, |_, _| async { Ok(Some(RunSummary::default())) })
            .await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
