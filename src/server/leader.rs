//! Leader election (`replicator.leader-election`): several replicas, one writer.
//!
//! The election itself is `k8s_controller::LeaderElection` (client-go's protocol on a
//! `coordination.k8s.io/v1` Lease, every write guarded by `resourceVersion`, expiry measured on
//! the candidate's own clock). Around it:
//! - the leader runs the scheduler and the worker ([`Election::run`]'s `lead`); losing the
//!   lease drops them where they stand, as a killed process would stop (every write is
//!   idempotent, so the next leader completes the work);
//! - the write fence ([`crate::fence`]) opens only until this replica's last confirmation of
//!   the lease plus the renew deadline, so a leader that was paused past its lease sends no
//!   write before its renewal loop has even run;
//! - the leader labels its own pod `aws-replicator/leader=true` (the shipped Service selects
//!   it, so webhooks reach the leader) and removes the label when it stops leading; a replica
//!   first clears the label at start, before it campaigns (a container restarted in place
//!   finds its pod as the last one left it), and a label change that failed is tried again
//!   every retry period;
//! - every request to the API server ends within the renew deadline and is not retried by
//!   the client (the election retries every retry period): a hung connection or a `Retry-After`
//!   could otherwise hold a replica out of the election, or its label wrong, for minutes;
//! - the leader keeps its record of what AWS holds on the lease ([`RECORD_ANNOTATION`]);
//! - on shutdown the lease is released, so another replica takes over at once.

use crate::config::raw;
use k8s_controller::LeaderElection;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The label the leader puts on its own pod; the webhook Service selects it.
pub const LEADER_LABEL: &str = "aws-replicator/leader";

/// The lease's annotation where the leader keeps its record of what AWS was confirmed to hold
/// (`engine::Saved`, JSON, at most about 29 KiB): the next leader reconciles only the projects whose
/// desired state it does not match. Written with the `resourceVersion` of a read that showed
/// this replica as the holder, so a deposed leader's write is refused.
pub const RECORD_ANNOTATION: &str = "aws-replicator/record";

#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error(
        "replicator.leader-election is set, but neither POD_NAME nor HOSTNAME names this replica; set POD_NAME from the downward API (metadata.name)"
    )]
    NoIdentity,
    #[error(
        "replicator.leader-election: cannot reach the Kubernetes API ({0}); run in a pod with a service account, or point KUBECONFIG at a cluster"
    )]
    Client(String),
}

pub struct Election {
    election: LeaderElection,
    leases: Api<Lease>,
    pods: Api<Pod>,
    lease_name: String,
    identity: String,
    renew_deadline: Duration,
    retry_period: Duration,
    leading: Arc<AtomicBool>,
    /// Whether this pod carries [`LEADER_LABEL`], as far as the last label change that
    /// succeeded says; `None` when unknown (at start, or after a change failed).
    labelled: Mutex<Option<bool>>,
    /// Wakes the labeller when leadership begins or ends.
    relabel: tokio::sync::Notify,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("lease", &self.lease_name)
            .field("identity", &self.identity)
            .finish()
    }
}

impl Election {
    /// Connects to the Kubernetes API as the pod's service account (or `KUBECONFIG`). The
    /// write fence is closed from here on until the lease is confirmed.
    pub async fn connect(settings: &raw::LeaderElection) -> Result<Self, ElectionError> {
        let identity = ["POD_NAME", "HOSTNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
            .ok_or(ElectionError::NoIdentity)?;
        let renew_deadline = Duration::from_secs(settings.renew_deadline_seconds);
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| ElectionError::Client(e.to_string()))?;
        // kube's defaults are no read timeout and up to 15 retries of a 429, 503 or 504 with
        // backoff to minutes (and any `Retry-After`): a request on a dead connection would never
        // end, and one retried would outlast the lease. A renewal is bounded by the renew
        // deadline in `k8s_controller`, but taking the lease, reading it, and the label are not.
        config.read_timeout = Some(renew_deadline);
        config.reset_reader_on_write = true;
        config.default_retry = false;
        let client =
            kube::Client::try_from(config).map_err(|e| ElectionError::Client(e.to_string()))?;
        let retry_period = Duration::from_secs(settings.retry_period_seconds);
        let election = LeaderElection::new(
            client.clone(),
            &settings.namespace,
            &settings.lease_name,
            &identity,
        )
        .with_lease_duration(Duration::from_secs(settings.lease_duration_seconds))
        .with_renew_deadline(renew_deadline)
        .with_retry_period(retry_period);
        crate::fence::close();
        Ok(Self {
            election,
            leases: Api::namespaced(client.clone(), &settings.namespace),
            pods: Api::namespaced(client, &settings.namespace),
            lease_name: settings.lease_name.clone(),
            identity,
            renew_deadline,
            retry_period,
            leading: Arc::new(AtomicBool::new(false)),
            labelled: Mutex::new(None),
            relabel: tokio::sync::Notify::new(),
        })
    }

    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    /// Who holds the lease now, as the Kubernetes API says (for a follower's 503).
    pub async fn holder(&self) -> Option<String> {
        self.read_holder().await.ok().flatten()
    }

    async fn read_holder(&self) -> Result<Option<String>, kube::Error> {
        let lease = self.leases.get_opt(&self.lease_name).await?;
        Ok(lease
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|h| !h.is_empty()))
    }

    /// Runs `lead` each time this replica holds the lease, until `stopping` turns true: then a
    /// follower returns at once, and a leader's `lead` is expected to wind down by itself, after
    /// which the lease is released. `lost` is called each time leadership is lost while `lead`
    /// was running.
    pub async fn run<L, Fut>(
        &self,
        lead: L,
        stopping: tokio::sync::watch::Receiver<bool>,
        lost: impl Fn(),
    ) where
        L: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        // Before campaigning: a container restarted in place finds its pod as the last one left
        // it, and a label saying it leads would send the webhooks to a follower.
        let cleared = self.label(false).await;
        self.set_labelled(cleared.then_some(false));
        let campaign = self.campaign(lead, stopping, lost);
        tokio::select! {
            () = campaign => {}
            () = self.keep_label() => {}
        }
        // Stopped: the label goes (once; the next start clears it in any case).
        if self.labelled() != Some(false) && self.label(false).await {
            self.set_labelled(Some(false));
        }
    }

    async fn campaign<L, Fut>(
        &self,
        lead: L,
        mut stopping: tokio::sync::watch::Receiver<bool>,
        lost: impl Fn(),
    ) where
        L: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            if *stopping.borrow() {
                return;
            }
            let leading = async {
                // Confirmed before the first write, then again every retry period beside it.
                self.confirm().await;
                self.became_leader();
                tokio::select! {
                    () = lead() => {}
                    () = self.keep_confirming() => {}
                }
            };
            // A follower stops when asked; a leader's own `lead` winds down instead.
            let follower_stops = async {
                let _ = stopping.wait_for(|stop| *stop).await;
                if self.is_leading() {
                    std::future::pending::<()>().await;
                }
            };
            let outcome = tokio::select! {
                outcome = self.election.with_lease(leading) => Some(outcome),
                () = follower_stops => None,
            };
            crate::fence::close();
            if self.leading.swap(false, Ordering::Relaxed) {
                self.relabel.notify_one();
            }
            match outcome {
                // `lead` ended (shutdown; with_lease has released the lease), or a follower
                // was stopped.
                Some(Some(())) | None => return,
                Some(None) => {
                    tracing::warn!(
                        identity = %self.identity,
                        "lost the lease: stopped writing; trying to take it again"
                    );
                    lost();
                }
            }
        }
    }

    fn became_leader(&self) {
        self.leading.store(true, Ordering::Relaxed);
        tracing::info!(identity = %self.identity, lease = %self.lease_name, "leading");
        self.relabel.notify_one();
    }

    fn labelled(&self) -> Option<bool> {
        *self.labelled.lock().expect("label state lock")
    }

    fn set_labelled(&self, labelled: Option<bool>) {
        *self.labelled.lock().expect("label state lock") = labelled;
    }

    /// Keeps this pod's label in step with leadership: one change at a time (so that a late
    /// removal never overtakes a newer addition), woken when leadership begins or ends, and a
    /// failed change tried again every retry period.
    async fn keep_label(&self) {
        loop {
            let wanted = self.is_leading();
            if self.labelled() != Some(wanted) {
                let done = self.label(wanted).await;
                self.set_labelled(done.then_some(wanted));
            }
            tokio::select! {
                () = self.relabel.notified() => {}
                () = tokio::time::sleep(self.retry_period) => {}
            }
        }
    }

    /// Reads the lease: while it names this replica, writes may go on until the renew
    /// deadline counted from before the read; otherwise the fence closes.
    async fn confirm(&self) {
        let asked = Instant::now();
        match self.read_holder().await {
            Ok(Some(holder)) if holder == self.identity => {
                crate::fence::open_until(asked + self.renew_deadline);
            }
            Ok(_) => crate::fence::close(),
            // The fence closes by itself at the deadline.
            Err(e) => tracing::warn!(error = %e, "could not read the lease to confirm it"),
        }
    }

    async fn keep_confirming(&self) {
        loop {
            tokio::time::sleep(self.retry_period).await;
            self.confirm().await;
        }
    }

    /// The record the last leader kept on the lease ([`RECORD_ANNOTATION`]); `None` when
    /// there is none or the lease cannot be read (then nothing counts as confirmed).
    pub async fn load_record(&self) -> Option<String> {
        match self.leases.get_opt(&self.lease_name).await {
            Ok(lease) => lease?.metadata.annotations?.remove(RECORD_ANNOTATION),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the record on the lease; nothing counts as confirmed");
                None
            }
        }
    }

    /// Keeps `record` on the lease, only while this replica holds it: read, check the holder,
    /// replace with the `resourceVersion` read (a renewal in between makes it read again).
    pub async fn save_record(&self, record: &str) -> Result<(), String> {
        for _ in 0..3 {
            if !self.is_leading() || !crate::fence::is_open() {
                return Err(
                    "not writing the record: this replica is not the confirmed leader".into(),
                );
            }
            let mut lease = self
                .leases
                .get(&self.lease_name)
                .await
                .map_err(|e| format!("reading the lease: {e}"))?;
            let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
            if holder.as_deref() != Some(self.identity.as_str()) {
                return Err(format!(
                    "not writing the record: the lease is held by {}",
                    holder.as_deref().unwrap_or("nobody")
                ));
            }
            lease
                .metadata
                .annotations
                .get_or_insert_default()
                .insert(RECORD_ANNOTATION.to_owned(), record.to_owned());
            match self
                .leases
                .replace(&self.lease_name, &kube::api::PostParams::default(), &lease)
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(format!("writing the record on the lease: {e}")),
            }
        }
        Err("writing the record on the lease: it changed three times while writing".into())
    }

    /// Puts or removes the leader label on this replica's pod; whether it was done. Without it
    /// the webhook may reach a follower, which answers 503 naming the leader.
    async fn label(&self, leading: bool) -> bool {
        let value = if leading {
            serde_json::json!("true")
        } else {
            serde_json::Value::Null
        };
        let patch = serde_json::json!({ "metadata": { "labels": { LEADER_LABEL: value } } });
        if let Err(e) = self
            .pods
            .patch(
                &self.identity,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(error = %e, pod = %self.identity, leading, "could not label this pod; trying again");
            return false;
        }
        true
    }
}
