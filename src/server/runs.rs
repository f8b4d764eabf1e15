//! The run queue: at most one sync running and one queued. A trigger that arrives while a run
//! is queued joins it (its scope grows to cover both), so a burst of webhooks costs one sync.

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
    /// Changes still to do in the projects the run touched, checked after applying.
    pub remaining: usize,
    pub scim_calls: u64,
    pub sso_admin_calls: u64,
    /// Reads, before applying and (for a full or scoped run) after it.
    pub scim_reads: u64,
    pub sso_admin_reads: u64,
    /// A scheduled run by change: the groups it reconciled (their desired state changed, or
    /// the drift scan or an earlier run left them to do). Absent for a run that observed its
    /// whole scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciled_groups: Option<usize>,
    /// The failed and skipped changes, for people.
    pub problems: Vec<String>,
    pub findings: Vec<String>,
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

#[derive(Default)]
struct State {
    next: RunId,
    runs: BTreeMap<RunId, Run>,
    queued: Option<RunId>,
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
    /// Queues a sync of `scope`, or widens the queued one. `None` once shut down.
    pub fn enqueue(&self, scope: Scope, trigger: Trigger) -> Option<Enqueued> {
        let mut state = self.state.lock().expect("runs lock");
        if state.closed {
            return None;
        }
        if let Some(id) = state.queued {
            let run = state.runs.get_mut(&id).expect("queued run exists");
            run.scope = run.scope.union(&scope);
            run.projects = run.scope.names();
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
        state.queued = Some(id);
        while state.runs.len() > KEPT {
            let oldest = *state.runs.keys().next().expect("not empty");
            if Some(oldest) == state.queued || Some(oldest) == state.running {
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
                if let Some(id) = state.queued.take() {
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

    /// Records the running run, if any, as interrupted with `why` (the worker that ran it was
    /// dropped: this replica lost its lease).
    pub fn interrupt_running(&self, why: &str) {
        let running = self.state.lock().expect("runs lock").running;
        if let Some(id) = running {
            self.finish(id, RunStatus::Interrupted, None, Some(why.to_owned()));
        }
    }

    pub fn get(&self, id: RunId) -> Option<Run> {
        self.state.lock().expect("runs lock").runs.get(&id).cloned()
    }

    /// A run is running or queued.
    pub fn busy(&self) -> bool {
        let state = self.state.lock().expect("runs lock");
        state.running.is_some() || state.queued.is_some()
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

    /// Takes no more triggers; the queued run, if any, is cancelled.
    pub fn close(&self) {
        let mut state = self.state.lock().expect("runs lock");
        state.closed = true;
        if let Some(id) = state.queued.take()
            && let Some(run) = state.runs.get_mut(&id)
        {
            run.status = RunStatus::Cancelled;
            run.finished_at = Some(crate::audit::now());
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
    async fn triggers_join_the_queued_run_and_widen_its_scope() {
        let runs = Runs::default();
        let first = runs.enqueue(project("a"), Trigger::Webhook).unwrap();
        let second = runs.enqueue(project("b"), Trigger::Webhook).unwrap();
        assert_eq!(second.run_id, first.run_id);
        assert!(second.coalesced);
        let (id, scope) = runs.next().await.unwrap();
        assert_eq!(id, first.run_id);
        assert_eq!(scope, project("a").union(&project("b")));

        // While it runs, one more run queues, and everything after joins that one.
        let third = runs.enqueue(project("c"), Trigger::Webhook).unwrap();
        assert_ne!(third.run_id, id);
        let fourth = runs.enqueue(Scope::All, Trigger::Schedule).unwrap();
        assert_eq!(fourth.run_id, third.run_id);
        assert_eq!(runs.get(third.run_id).unwrap().scope, Scope::All);

        runs.finish(id, RunStatus::Succeeded, None, None);
        runs.close();
        assert_eq!(runs.get(third.run_id).unwrap().status, RunStatus::Cancelled);
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
