//! The runs people see (`GET /v1/runs`): each is a read of meshStack (everything, or a webhook's
//! scope) and the reconcile of the projects it queued in the engine. Reads go one at a time,
//! scoped ones first; a run stays `running` until each of its projects was reconciled once.
//! A trigger joins a queued run only of the same scope, so that one caller's bad scope (a
//! project meshStack lacks) fails that caller's run alone, and a burst of one webhook costs
//! one read.

use crate::desired::Scope;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

pub type RunId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    /// Everything was applied and nothing is left.
    Succeeded,
    /// Something could not be read or applied; `error` and `problems` say what.
    Failed,
    /// Queued when shutdown came, never started.
    Cancelled,
    /// Running when shutdown came, and stopped at the end of the grace period; the next run
    /// completes what it left (every change is idempotent).
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Startup,
    Schedule,
    /// The meshStack crawl found a change mid-cycle.
    Crawl,
    Webhook,
    /// The drift scan found these projects differing from their desired state.
    DriftScan,
}

/// What a finished run did, for `GET /v1/runs/{id}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// Account provisioning and bootstrap steps taken, and left (`replicator.accounts`).
    pub account_steps_done: usize,
    pub account_steps_left: usize,
    pub planned: usize,
    pub applied: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Changes left undone in the projects the run reconciled.
    pub remaining: usize,
    /// Removals left out of the run's projects because the deletion guard paused them.
    #[serde(skip_serializing_if = "is_zero")]
    pub withheld: usize,
    pub scim_calls: u64,
    pub sso_admin_calls: u64,
    /// Reads of AWS by the batches that reconciled this run's projects.
    pub scim_reads: u64,
    pub sso_admin_reads: u64,
    /// The projects this run queued and that were reconciled: those whose desired state AWS
    /// was not confirmed to hold (a read of everything), or those named (a webhook). Absent on
    /// the meshIdB path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciled_projects: Option<usize>,
    /// The failed and skipped changes, for people.
    pub problems: Vec<String>,
    /// The projects of the run's scope held by their meshStack data: nothing of theirs is
    /// changed (the findings say why).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    pub findings: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: RunId,
    pub trigger: Trigger,
    /// `null` for everything, else the projects (`workspace.project`) and workspaces
    /// (`workspace.*`).
    pub projects: Option<BTreeSet<String>>,
    pub status: RunStatus,
    pub queued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<RunSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub scope: Scope,
}

/// Finished runs kept for `GET /v1/runs/{id}`.
const KEPT: usize = 100;

/// Runs waiting for their read; a trigger beyond them is refused (503), as a flood would
/// otherwise grow the queue without bound.
pub const MAX_QUEUED: usize = 64;

#[derive(Default)]
struct State {
    next: RunId,
    runs: BTreeMap<RunId, Run>,
    /// Waiting for their read, oldest first.
    queued: std::collections::VecDeque<RunId>,
    /// Reading meshStack.
    running: Option<RunId>,
    closed: bool,
    /// When the last run that succeeded finished, for `/readyz`.
    succeeded_at: Option<Instant>,
}

#[derive(Default)]
pub struct Runs {
    state: Mutex<State>,
    wake: Notify,
}

/// The answer to a trigger: the run that will cover it, and whether it joined a queued one.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Enqueued {
    pub run_id: RunId,
    pub coalesced: bool,
}

impl Runs {
    /// Queues a sync of `scope`, or joins the queued one of the same scope. `None` once shut
    /// down, or when [`MAX_QUEUED`] runs are waiting.
    pub fn enqueue(&self, scope: Scope, trigger: Trigger) -> Option<Enqueued> {
        let mut state = self.state.lock().expect("runs lock");
        if state.closed || state.queued.len() >= MAX_QUEUED {
            return None;
        }
        // An unscoped webhook reads meshStack now; the crawl's runs plan from what it read:
        // one joins the other only if that is what it asked for.
        let fresh = |t: Trigger| scope == Scope::All && t == Trigger::Webhook;
        let same = state.queued.iter().copied().find(|id| {
            state
                .runs
                .get(id)
                .is_some_and(|run| run.scope == scope && fresh(run.trigger) == fresh(trigger))
        });
        if let Some(id) = same {
            return Some(Enqueued {
                run_id: id,
                coalesced: true,
            });
        }
        state.next += 1;
        let id = state.next;
        state.runs.insert(
            id,
            Run {
                id,
                trigger,
                projects: scope.names(),
                status: RunStatus::Queued,
                queued_at: crate::audit::now(),
                started_at: None,
                finished_at: None,
                summary: None,
                error: None,
                scope,
            },
        );
        state.queued.push_back(id);
        while state.runs.len() > KEPT {
            let oldest = *state.runs.keys().next().expect("not empty");
            let status = state.runs[&oldest].status;
            if matches!(status, RunStatus::Queued | RunStatus::Running) {
                break;
            }
            state.runs.remove(&oldest);
        }
        drop(state);
        self.wake.notify_one();
        Some(Enqueued {
            run_id: id,
            coalesced: false,
        })
    }

    /// A run that needs no read of meshStack (the drift scan's: its projects are queued
    /// already), running from now. `None` once shut down.
    pub fn begin(&self, scope: Scope, trigger: Trigger) -> Option<RunId> {
        let mut state = self.state.lock().expect("runs lock");
        if state.closed {
            return None;
        }
        state.next += 1;
        let id = state.next;
        let now = crate::audit::now();
        state.runs.insert(
            id,
            Run {
                id,
                trigger,
                projects: scope.names(),
                status: RunStatus::Running,
                queued_at: now.clone(),
                started_at: Some(now),
                finished_at: None,
                summary: None,
                error: None,
                scope,
            },
        );
        Some(id)
    }

    /// Waits for the queued run and marks it running. `None` once shut down.
    pub async fn next(&self) -> Option<(RunId, Scope)> {
        self.next_then(|| {}).await
    }

    /// [`Runs::next`], with `between` called after the state was read and before the wait:
    /// where a `close()` used to be lost, so that a test can put one there.
    async fn next_then(&self, between: impl Fn()) -> Option<(RunId, Scope)> {
        loop {
            // Registered before the state is read: `notify_waiters` in `close()` wakes only
            // registered waiters, and an idle worker would otherwise sleep through shutdown.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let mut state = self.state.lock().expect("runs lock");
                if state.closed {
                    return None;
                }
                // Scoped runs first: a webhook does not wait for a read of everything.
                let scoped = state.queued.iter().position(|id| {
                    state
                        .runs
                        .get(id)
                        .is_some_and(|run| run.scope != Scope::All)
                });
                if let Some(id) = scoped
                    .or((!state.queued.is_empty()).then_some(0))
                    .and_then(|at| state.queued.remove(at))
                {
                    state.running = Some(id);
                    let run = state.runs.get_mut(&id).expect("queued run exists");
                    run.status = RunStatus::Running;
                    run.started_at = Some(crate::audit::now());
                    return Some((id, run.scope.clone()));
                }
            }
            between();
            woken.await;
        }
    }

    pub fn finish(
        &self,
        id: RunId,
        status: RunStatus,
        summary: Option<RunSummary>,
        error: Option<String>,
    ) {
        let mut state = self.state.lock().expect("runs lock");
        if state.running == Some(id) {
            state.running = None;
        }
        if status == RunStatus::Succeeded {
            state.succeeded_at = Some(Instant::now());
        }
        if let Some(run) = state.runs.get_mut(&id) {
            run.status = status;
            run.finished_at = Some(crate::audit::now());
            run.summary = summary;
            run.error = error;
        }
    }

    /// The run's read is done; it goes on until its projects are reconciled, and the next
    /// run may read.
    pub fn read_done(&self, id: RunId) {
        let mut state = self.state.lock().expect("runs lock");
        if state.running == Some(id) {
            state.running = None;
        }
    }

    /// Records every running run as interrupted with `why` (this replica lost its lease, or
    /// shut down before their projects were reconciled).
    pub fn interrupt_running(&self, why: &str) {
        let running: Vec<RunId> = {
            let state = self.state.lock().expect("runs lock");
            state
                .runs
                .values()
                .filter(|run| run.status == RunStatus::Running)
                .map(|run| run.id)
                .collect()
        };
        for id in running {
            self.finish(id, RunStatus::Interrupted, None, Some(why.to_owned()));
        }
    }

    pub fn get(&self, id: RunId) -> Option<Run> {
        self.state.lock().expect("runs lock").runs.get(&id).cloned()
    }

    /// When the last successful run finished.
    pub fn succeeded_at(&self) -> Option<Instant> {
        self.state.lock().expect("runs lock").succeeded_at
    }

    /// The kept runs, newest first.
    pub fn list(&self) -> Vec<Run> {
        let state = self.state.lock().expect("runs lock");
        state.runs.values().rev().cloned().collect()
    }

    /// Whether shutdown closed the queue.
    pub fn is_closed(&self) -> bool {
        self.state.lock().expect("runs lock").closed
    }

    /// Takes no more triggers; the queued run, if any, is cancelled.
    pub fn close(&self) {
        let mut state = self.state.lock().expect("runs lock");
        state.closed = true;
        while let Some(id) = state.queued.pop_front() {
            if let Some(run) = state.runs.get_mut(&id) {
                run.status = RunStatus::Cancelled;
                run.finished_at = Some(crate::audit::now());
            }
        }
        drop(state);
        self.wake.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProjectKey;

    fn project(name: &str) -> Scope {
        Scope::projects([ProjectKey::new("ws", name)])
    }

    #[tokio::test]
    async fn a_trigger_joins_only_a_queued_run_of_its_scope_and_scoped_runs_read_first() {
        let runs = Runs::default();
        let all = runs.enqueue(Scope::All, Trigger::Startup).unwrap();
        let first = runs.enqueue(project("a"), Trigger::Webhook).unwrap();
        let again = runs.enqueue(project("a"), Trigger::Webhook).unwrap();
        assert_eq!((again.run_id, again.coalesced), (first.run_id, true));
        // Another caller's scope is its own run: its outcome is its own.
        let other = runs.enqueue(project("b"), Trigger::Webhook).unwrap();
        assert_ne!(other.run_id, first.run_id);
        assert!(!other.coalesced);
        let schedule = runs.enqueue(Scope::All, Trigger::Schedule).unwrap();
        assert_eq!(schedule.run_id, all.run_id);

        // The scoped runs read before the queued run of everything.
        let (id, scope) = runs.next().await.unwrap();
        assert_eq!((id, scope), (first.run_id, project("a")));
        runs.read_done(id);
        let (id, _) = runs.next().await.unwrap();
        assert_eq!(id, other.run_id);
        runs.read_done(id);
        let (id, scope) = runs.next().await.unwrap();
        assert_eq!((id, scope), (all.run_id, Scope::All));

        runs.finish(id, RunStatus::Succeeded, None, None);
        let later = runs.enqueue(project("c"), Trigger::Webhook).unwrap();
        // Runs still waiting for their projects are interrupted by a lost lease.
        runs.interrupt_running("lost");
        assert_eq!(
            runs.get(first.run_id).unwrap().status,
            RunStatus::Interrupted
        );
        runs.close();
        assert_eq!(runs.get(later.run_id).unwrap().status, RunStatus::Cancelled);
        assert!(runs.enqueue(Scope::All, Trigger::Schedule).is_none());
        assert!(runs.next().await.is_none());
    }

    /// An idle worker has read the state (nothing queued, not closed) and is about to wait when
    /// shutdown closes the queue: it must still wake, or shutdown waits out the grace period.
    #[tokio::test(start_paused = true)]
    async fn a_close_between_reading_the_state_and_waiting_still_wakes_the_worker() {
        let runs = Runs::default();
        let next = runs.next_then(|| runs.close());
        let woke = tokio::time::timeout(std::time::Duration::from_secs(1), next).await;
        assert!(matches!(woke, Ok(None)), "slept through close(): {woke:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_success_is_when_a_run_last_succeeded() {
        let runs = Runs::default();
        assert!(runs.succeeded_at().is_none());
        runs.enqueue(Scope::All, Trigger::Startup).unwrap();
        let (id, _) = runs.next().await.unwrap();
        runs.finish(id, RunStatus::Succeeded, None, None);
        let at = runs.succeeded_at().unwrap();
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        runs.enqueue(Scope::All, Trigger::Schedule).unwrap();
        let (id, _) = runs.next().await.unwrap();
        runs.finish(id, RunStatus::Failed, None, Some("no".into()));
        assert_eq!(runs.succeeded_at(), Some(at), "a failure does not count");
    }
}
