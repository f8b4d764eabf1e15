//! `aws-replicator serve`: the sync as a long-running service.
//!
//! HTTP and wiring around the engine (`crate::engine`):
//! - a scheduler queues a read of everything at start-up and then every interval (plus
//!   jitter); `POST /v1/sync` queues one on demand, for everything or a scope, after checking
//!   the caller (`auth.rs`: bearer token, or an HMAC-SHA256 signature over timestamp, method,
//!   path and body that cannot be replayed);
//! - the reader (`worker.rs`) reads meshStack for each run within the run deadline and queues
//!   the projects whose desired state AWS is not confirmed to hold; the reconciler
//!   (`reconciler.rs`) works the queue a batch of projects at a time and finishes the runs;
//!   the drift scan (`scan.rs`) confirms projects or queues those that drifted; the record of
//!   what AWS holds is kept where the next writer finds it (`follow.rs`);
//! - `GET /v1/runs[/{id}]` (authenticated like the webhook), `/healthz`, `/readyz` (meshStack
//!   read once, and recently), `/metrics` (OpenMetrics);
//! - SIGTERM/Ctrl-C: no new runs; the running read and batch get a grace period, the record is
//!   saved, and unfinished runs are recorded as interrupted.

mod auth;
mod crawl;
mod follow;
mod leader;
mod listen;
mod reconciler;
mod runs;
mod scan;
mod worker;

use crate::audit::Audit;
use crate::config::Config;
use crate::desired::{Scope, Settings, desired};
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::model::ProjectKey;
use crate::snapshot::Snapshot;
use crate::sso::admin::SsoAdmin;
use crate::sso::scim::ScimClient;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use auth::{
    Caller, REPLAY_CAPACITY, Refusal, Replays, WINDOW_SECONDS, authenticate, canonical,
    check_request,
};
pub use runs::{Enqueued, Run, RunId, RunStatus, RunSummary, Runs, Trigger};
pub use worker::GRACE;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error("cannot open the audit log {path} (replicator.audit-log): {source}")]
    Audit {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {address} ({field}): {source}")]
    Listen {
        address: SocketAddr,
        field: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Election(#[from] leader::ElectionError),
    #[error("replicator.serve.metrics-listen: {0:?} is not an address with a port")]
    MetricsAddress(String),
    #[error(transparent)]
    MeshStack(#[from] crate::meshstack::MeshStackError),
}

pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Sync from this snapshot file (read again for every run) instead of the meshStack API.
    pub snapshot: Option<PathBuf>,
}

/// meshIdB: each user's `role ARN,provider ARN` pairs.
type SamlRoles = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

struct Service {
    /// `replicator.leader-election`: this replica writes only while it holds the lease.
    election: Option<leader::Election>,
    config: Config,
    snapshot: Option<PathBuf>,
    /// The SSO clients; `None` on the meshIdB path.
    sso: Option<(ScimClient, SsoAdmin)>,
    audit: Audit,
    /// meshIdB: the SAML role pairs per user as of the last run.
    saml_roles: std::sync::RwLock<Option<SamlRoles>>,
    runs: Runs,
    metrics: Arc<Metrics>,
    /// meshStack has been read in full once in this term (and the record taken against it),
    /// or, on the meshIdB path, the accounts were read.
    ready: AtomicBool,
    started: tokio::time::Instant,
    /// The signatures of signed requests seen within their window.
    replays: Mutex<Replays>,
    /// The engine (desired state, record of what AWS holds, work queue) while leading.
    engine: Mutex<Option<Engine<tokio::time::Instant>>>,
    /// Wakes the reconciler: projects were queued.
    wake: tokio::sync::Notify,
    /// Runs waiting for their projects.
    trackers: Mutex<Vec<reconciler::Tracker>>,
    /// Projects settled by the reconciler in this process, for the progress line.
    settled_count: std::sync::atomic::AtomicUsize,
    /// When this replica's current term as the writer began.
    term_started: Mutex<tokio::time::Instant>,
    /// When meshStack was last read in full without error (readiness).
    last_read: Mutex<Option<tokio::time::Instant>>,
    /// How long the meshStack crawl's cycle over the estate takes, once listed: readiness
    /// allows two of them when its maximum age is not configured.
    crawl_cycle: Mutex<Option<f64>>,
    /// While following: meshStack's desired state as last read, for the take-over.
    warm: Mutex<Option<crate::desired::Desired>>,
    /// A follower's first read of meshStack ended (it is ready to take over).
    follower_read: AtomicBool,
    /// When the shutdown signal came.
    stopping_since: std::sync::OnceLock<tokio::time::Instant>,
    /// The users as the drift scan last listed them (once a cycle).
    listed_users: Mutex<Option<Arc<crate::scan::Users>>>,
    /// Account ids the account phase found, for tenants meshStack has none for yet.
    account_ids: Mutex<std::collections::BTreeMap<ProjectKey, String>>,
    /// Projects whose account still has steps to take or failed one: tried again after their
    /// backoff (or a vending machine's wait) until done, held after repeated failures.
    accounts_pending: Mutex<crate::accounts::retry::Retries<tokio::time::Instant>>,
    /// The one meshStack client (one rate limit for the crawl, scoped reads and point reads);
    /// `None` with `--snapshot`.
    meshstack: Option<Arc<crate::meshstack::Client>>,
    /// meshStack as the crawl last read it ([`crawl`]).
    crawl: Mutex<crate::meshstack::crawl::Crawl<tokio::time::Instant>>,
}

/// Serves until `shutdown` resolves; returns once the running sync has finished or stopped.
pub async fn serve(
    config: Config,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let metrics = Arc::new(Metrics::new());
    let sso = match &config.sso {
        Some(sso) => Some(crate::sso::connect(&config, sso, Some(metrics.clone()))?),
        None if config.mesh_idb.is_some() => None,
        None => {
            config.require_sso()?;
            None
        }
    };
    let audit = match &config.replicator.audit_log {
        Some(path) => {
            Audit::file(std::path::Path::new(path)).map_err(|source| ServerError::Audit {
                path: path.clone(),
                source,
            })?
        }
        None => Audit::stdout(),
    };
    let bind = async |address: SocketAddr, field: &'static str| {
        tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::Listen {
                address,
                field,
                source,
            })
    };
    let listener = bind(options.listen, "replicator.serve.listen or --listen").await?;
    let metrics_listener = match &config.replicator.serve.metrics_listen {
        Some(address) => {
            let address: SocketAddr = address
                .parse()
                .map_err(|_| ServerError::MetricsAddress(address.clone()))?;
            Some(bind(address, "replicator.serve.metrics-listen").await?)
        }
        None => None,
    };
    let election = match &config.replicator.leader_election {
        Some(settings) => Some(leader::Election::connect(settings).await?),
        None => None,
    };
    let meshstack = match &options.snapshot {
        Some(_) => None,
        None => Some(Arc::new(
            crate::meshstack::Client::new(
                &config.meshstack,
                config.replicator.rate_limits.meshstack,
                crate::meshstack::RetryPolicy::meshstack(),
            )?
            .observed(metrics.clone()),
        )),
    };
    let service = Arc::new(Service {
        election,
        snapshot: options.snapshot,
        sso,
        audit,
        saml_roles: Default::default(),
        runs: Runs::default(),
        metrics,
        ready: AtomicBool::new(false),
        started: tokio::time::Instant::now(),
        replays: Mutex::default(),
        engine: Mutex::default(),
        wake: tokio::sync::Notify::new(),
        trackers: Mutex::default(),
        settled_count: Default::default(),
        term_started: Mutex::new(tokio::time::Instant::now()),
        last_read: Mutex::default(),
        crawl_cycle: Mutex::default(),
        warm: Mutex::default(),
        follower_read: AtomicBool::new(false),
        stopping_since: std::sync::OnceLock::new(),
        listed_users: Mutex::default(),
        account_ids: Mutex::default(),
        accounts_pending: Mutex::default(),
        meshstack,
        crawl: Mutex::default(),
        config,
    });
    match &metrics_listener {
        Some(metrics) => tracing::info!(
            address = %listener.local_addr().unwrap_or(options.listen),
            metrics = %metrics.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            "serving"
        ),
        None => tracing::info!(
            address = %listener.local_addr().unwrap_or(options.listen),
            "serving"
        ),
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signalled = {
        let service = service.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: no new syncs; the running one may finish");
            let _ = service.stopping_since.set(tokio::time::Instant::now());
            service.runs.close();
            let _ = stop_tx.send(true);
            service.wake.notify_waiters();
        }
    };
    let stopped = || {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
        }
    };
    let server = async {
        let metrics = async {
            if let Some(metrics) = metrics_listener {
                listen::serve(metrics, health_router(service.clone()), stopped(), GRACE).await;
            }
        };
        let main = router(
            service.clone(),
            service.config.replicator.serve.metrics_listen.is_none(),
        );
        tokio::join!(
            signalled,
            listen::serve(listener, main, stopped(), GRACE),
            metrics
        );
    };
    // The worker runs on this task rather than a spawned one: the sync's futures borrow in ways
    // the compiler cannot yet prove `Send` (rust-lang/rust#102211).
    let runner = worker::Worker {
        runs: &service.runs,
        metrics: &service.metrics,
        deadline: Duration::from_secs(service.config.replicator.serve.run_deadline_seconds),
    };
    // The scheduler, the reader, the reconciler and the drift scan: what the one writer does.
    // Without leader election that is this process, for as long as it serves.
    let lead = || {
        let (service, runner, stop_rx) = (&service, &runner, stop_rx.clone());
        async move {
            // Each term starts from the record the last writer kept, never from what an
            // earlier term of this replica remembers: another leader may have written since.
            service.trackers.lock().expect("trackers lock").clear();
            *service.term_started.lock().expect("term lock") = tokio::time::Instant::now();
            *service.last_read.lock().expect("last read lock") = None;
            let engine = follow::take_over(service).await;
            let warm = engine.desired().is_some();
            *service.engine() = Some(engine);
            if warm {
                service.ready.store(true, Ordering::Relaxed);
                service.wake.notify_one();
            }
            // From a snapshot file, a run reads it again every interval; from meshStack, the
            // crawl queues the runs, and this term's first once the estate is whole.
            let _scheduler = if service.snapshot.is_some() {
                Some(Aborting(tokio::spawn(schedule(service.clone()))))
            } else {
                if service.crawl().whole() {
                    service.crawled(Trigger::Startup);
                }
                None
            };
            let stopping = {
                let mut stop_rx = stop_rx.clone();
                async move {
                    let _ = stop_rx.wait_for(|stopped| *stopped).await;
                }
            };
            // Each read is boxed: a sync is a deep future, and nested in the server's it grew
            // too deep for the compiler to lay out.
            let reading = runner.work(stopping, |id, scope| async move {
                Box::pin(service.run(id, &scope)).await
            });
            // The batch in hand is finished after the shutdown signal, within the grace period.
            let reconciling = async {
                let mut stop_rx = stop_rx.clone();
                tokio::select! {
                    () = reconciler::work(service, stop_rx.clone()) => {}
                    () = async {
                        let _ = stop_rx.wait_for(|stopped| *stopped).await;
                        tokio::time::sleep(GRACE).await;
                    } => {
                        tracing::warn!(
                            "the batch in hand did not finish in the grace period; stopped \
                             (the record confirms none of its projects)"
                        );
                    }
                }
            };
            // On this task too (the same `Send` limit); it ends with the worker.
            let scan = async {
                if let Some((scim, admin)) = service.scan_clients() {
                    Box::pin(scan::scan(service.clone(), scim, admin)).await;
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                _ = async { tokio::join!(reading, reconciling) } => {}
                () = scan => {}
            }
            // Shutting down, still holding the lease: the record for the next writer.
            follow::save(service).await;
            tracing::info!("shutting down: the record kept for the next leader");
            service.runs.interrupt_running(
                "interrupted: shut down before its projects were reconciled; the next leader reconciles them",
            );
        }
    };
    let work = async {
        match &service.election {
            None => lead().await,
            Some(election) => {
                service.metrics.record_leader(false);
                let lost = || {
                    service.metrics.record_leader(false);
                    *service.engine() = None;
                    service.trackers.lock().expect("trackers lock").clear();
                    service.runs.interrupt_running(
                        "interrupted: this replica lost its lease; the leader completes it",
                    );
                };
                // Following never ends by itself; it stops with the election.
                tokio::select! {
                    () = election.run(lead, stop_rx.clone(), lost) => {}
                    () = follow::follow(service.clone()) => {}
                }
                service.metrics.record_leader(false);
            }
        }
    };
    let crawling = async {
        if let Some(client) = &service.meshstack {
            let mut stop_rx = stop_rx.clone();
            tokio::select! {
                () = crawl::crawl(service.clone(), client.clone()) => {}
                _ = stop_rx.wait_for(|stopped| *stopped) => {}
            }
        }
    };
    tokio::join!(server, work, crawling);
    Ok(())
}

/// Aborts its task when dropped: the scheduler stops with the leadership that runs it.
struct Aborting(tokio::task::JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Requests of `/v1/*` in flight at once: each may read a body and take the engine's lock.
const API_IN_FLIGHT: usize = 32;
/// Scrapes of `/metrics` in flight at once: each renders every family.
const METRICS_IN_FLIGHT: usize = 4;

/// The routes of `listen`: the webhook, run records and health, and `/metrics` unless it has a
/// listener of its own.
fn router(service: Arc<Service>, with_metrics: bool) -> Router {
    let api = Router::new()
        .route("/v1/sync", post(trigger))
        .route("/v1/removals", get(removals))
        .route("/v1/removals/allow", post(allow_removals))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/saml-roles", get(saml_roles));
    let api = listen::limited(api, API_IN_FLIGHT).with_state(service.clone());
    let health = if with_metrics {
        health_router(service)
    } else {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .with_state(service)
    };
    api.merge(health)
}

/// `/metrics` and health: what `replicator.serve.metrics-listen` serves, never `/v1/*`.
fn health_router(service: Arc<Service>) -> Router {
    let metrics = listen::limited(
        Router::new().route("/metrics", get(metrics)),
        METRICS_IN_FLIGHT,
    );
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(metrics)
        .with_state(service)
}

/// Queues a read of everything now, then one every interval plus up to the jitter. Until a
/// read of everything has succeeded in this term, a failed one is tried again after a backoff
/// (5 s doubling, at most the interval), not after a whole interval: nothing is reconciled
/// before meshStack was read once.
async fn schedule(service: Arc<Service>) {
    let schedule = &service.config.replicator.schedule;
    let interval = Duration::from_secs(schedule.interval_seconds);
    let mut trigger = Trigger::Startup;
    let mut failures = 0u32;
    loop {
        let Some(enqueued) = service.runs.enqueue(Scope::All, trigger) else {
            if service.runs.is_closed() {
                return;
            }
            // Every slot taken by waiting runs: this tick is skipped, not the schedule.
            tokio::time::sleep(interval).await;
            continue;
        };
        trigger = Trigger::Schedule;
        if service.last_read.lock().expect("last read lock").is_none() {
            // Wait for that read to end, however the run goes on after it.
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let read = service.last_read.lock().expect("last read lock").is_some();
                let over = service.runs.get(enqueued.run_id).is_none_or(|run| {
                    !matches!(run.status, RunStatus::Queued | RunStatus::Running)
                });
                if read || over {
                    break;
                }
            }
            if service.last_read.lock().expect("last read lock").is_none() {
                failures += 1;
                let wait = crate::engine::queue::backoff(failures).min(interval);
                tracing::warn!(
                    failures,
                    retry_in_seconds = wait.as_secs(),
                    "the first read of everything failed; trying again"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
        }
        let jitter = jitter(schedule.jitter_seconds);
        tokio::time::sleep(interval + Duration::from_secs(jitter)).await;
    }
}

/// 0 to `seconds`: spreads replicas apart; no need for a random number generator's quality.
fn jitter(seconds: u64) -> u64 {
    if seconds == 0 {
        return 0;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    u64::from(nanos) % (seconds + 1)
}

impl Service {
    /// What meshStack holds within `scope`: a scoped run reads only its projects and what they
    /// need; a project it names that meshStack does not have fails the run.
    async fn snapshot(&self, scope: &Scope) -> Result<Snapshot, String> {
        let snapshot = match &self.snapshot {
            Some(path) => {
                let snapshot = Snapshot::from_file(path).map_err(|e| e.to_string())?;
                if snapshot.platform != self.config.platform {
                    return Err(format!(
                        "snapshot {} is for platform {}, not {}",
                        path.display(),
                        snapshot.platform,
                        self.config.platform
                    ));
                }
                let missing = crate::meshstack::missing_projects(&snapshot, scope);
                if !missing.is_empty() {
                    let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
                    return Err(crate::meshstack::MeshStackError::UnknownProjects(
                        names.join(", "),
                    )
                    .to_string());
                }
                snapshot
            }
            // The estate as the crawl last read it: a run of everything costs no request.
            None if *scope == Scope::All => self.crawl().snapshot(&self.config.platform).ok_or(
                "meshStack has not been read in full yet (the crawl's first cycle is under way)",
            )?,
            // A project pending deletion is read (and its groups go); one meshStack does not
            // have at all fails the read.
            None => crate::meshstack::read_scoped(self.meshstack()?, &self.config, scope)
                .await
                .map_err(|e| e.to_string())?,
        };
        Ok(snapshot)
    }

    /// meshStack read in full now (an unscoped webhook), which the crawl takes as its cycle.
    async fn read_everything(&self, client: &crate::meshstack::Client) -> Result<Snapshot, String> {
        let since = tokio::time::Instant::now();
        let listings = crawl::listings(self, client)
            .await
            .map_err(|e| e.to_string())?;
        let expand = self.config.meshstack.expand_group_bindings;
        let bindings = crate::meshstack::read_bindings(client, listings.to_read().iter(), expand)
            .await
            .map_err(|e| e.to_string())?;
        let mut crawl = self.crawl();
        crawl.refresh(listings, bindings, since);
        crawl
            .snapshot(&self.config.platform)
            .ok_or_else(|| "meshStack's estate is not whole after a read of everything".to_owned())
    }

    fn meshstack(&self) -> Result<&crate::meshstack::Client, String> {
        self.meshstack
            .as_deref()
            .ok_or_else(|| "serve reads a snapshot file, not meshStack".to_owned())
    }

    fn crawl(
        &self,
    ) -> std::sync::MutexGuard<'_, crate::meshstack::crawl::Crawl<tokio::time::Instant>> {
        self.crawl.lock().expect("crawl lock")
    }

    fn set_crawl_cycle(&self, seconds: f64) {
        *self.crawl_cycle.lock().expect("crawl cycle lock") = Some(seconds);
    }

    /// The crawl has something to plan from: the leader queues a run of everything (a
    /// follower takes the estate on its own schedule).
    fn crawled(&self, trigger: Trigger) {
        if self.leading() && self.engine().is_some() {
            let _ = self.runs.enqueue(Scope::All, trigger);
        }
    }

    fn record_crawl_age(&self) {
        let oldest = self.crawl().oldest_read();
        self.metrics
            .record_crawl_oldest(oldest.map(|at| at.elapsed().as_secs_f64()));
    }

    /// One run: meshStack read for `scope`, the accounts of what it concerns, and its projects
    /// queued in the engine. `Ok(None)`: the reconciler finishes the run once they are done.
    async fn run(&self, id: RunId, scope: &Scope) -> Result<Option<RunSummary>, String> {
        let started = tokio::time::Instant::now();
        let asked = self
            .runs
            .get(id)
            .is_some_and(|run| run.trigger == Trigger::Webhook);
        let snapshot = match (scope, &self.meshstack) {
            // A person asked for everything: meshStack is read now, not as the crawl has it.
            (Scope::All, Some(client)) if asked => self.read_everything(client).await?,
            (Scope::Only { .. }, Some(_)) => {
                let snapshot = self.snapshot(scope).await?;
                // What the webhook read stays over what the crawl read before it.
                let projects = snapshot
                    .projects
                    .iter()
                    .map(|p| p.key())
                    .filter(|k| scope.contains(k))
                    .collect();
                self.crawl().merge(&snapshot, &projects, started);
                snapshot
            }
            _ => self.snapshot(scope).await?,
        };
        if *scope == Scope::All && self.snapshot.is_none() {
            self.confirm_absent(&snapshot).await?;
        }
        if self.sso.is_none() {
            return self.run_idb(scope, &snapshot).await.map(Some);
        }
        let sso = self.config.require_sso().map_err(|e| e.to_string())?;
        let settings = Settings::new(&self.config, sso);
        let mut snapshot = snapshot;
        {
            // Account ids found by earlier runs, for tenants meshStack has none for yet.
            let ids = self.account_ids.lock().expect("account ids lock");
            for tenant in &mut snapshot.tenants {
                if tenant.account_id.is_none()
                    && let Some(id) = ids.get(&tenant.key())
                {
                    tenant.account_id = Some(id.clone());
                }
            }
        }
        let (accounts, snapshot) = self.accounts_of(scope, snapshot, &settings).await?;
        let desired = desired(&snapshot, &settings, scope);
        let findings: Vec<String> = desired.findings.iter().map(ToString::to_string).collect();
        if *scope == Scope::All {
            self.metrics.record_findings(&desired.findings);
        }
        let held: Vec<String> = desired.held.iter().map(ToString::to_string).collect();
        let now = tokio::time::Instant::now();
        let queued = {
            let mut engine = self.engine();
            let engine = engine
                .as_mut()
                .ok_or("this replica stopped leading during the read")?;
            let was_paused = engine.removals_paused().is_some();
            let queued = match scope {
                Scope::All => {
                    // The drift scan's cycle, known from the read on, whether or not the scan
                    // has had a turn yet (its alert compares the oldest confirmation with it).
                    let share = self.config.replicator.drift_scan.share;
                    if share > 0.0 {
                        let reads = crate::sso::sync_settings(&self.config).reads;
                        let estimate = crate::scan::cycle(&desired, reads, share);
                        self.metrics.record_scan_estimate(estimate.seconds);
                    }
                    let (queued, unusable) = engine.read(desired, now);
                    if let Some(why) = unusable {
                        tracing::warn!(%why, "the saved record is unusable: every project is reconciled once");
                    }
                    queued
                }
                Scope::Only {
                    projects: named, ..
                } => {
                    // A project named that meshStack is deleting is read (its groups go).
                    let projects: BTreeSet<ProjectKey> = snapshot
                        .projects
                        .iter()
                        .map(|p| p.key())
                        .filter(|k| scope.contains(k))
                        .chain(named.iter().cloned())
                        .collect();
                    engine.scoped(&desired, &projects, now);
                    projects
                }
            };
            match (was_paused, engine.removals_paused()) {
                (false, Some(paused)) => {
                    self.metrics.record_guard(true);
                    tracing::error!(why = %paused.why, "removals paused: meshStack's answers take away more than replicator.deletion-guard allows within an interval; additions go on; POST /v1/removals/allow once what meshStack returned is checked");
                }
                (true, None) => tracing::warn!(
                    "removals resumed: meshStack's answer takes away little from what it wanted before the pause"
                ),
                _ => {}
            }
            queued
        };
        // A project backing off after failures is not waited for: the run names it now.
        let backing_off: Vec<(ProjectKey, u32, String)> = {
            let engine = self.engine();
            let Some(engine) = engine.as_ref() else {
                return Err("this replica stopped leading during the read".into());
            };
            let queue = engine.queue();
            queued
                .iter()
                .filter(|p| queue.ready_at(p).is_some_and(|at| at > now))
                .filter_map(|p| {
                    let failure = queue.failures().get(p)?;
                    Some((p.clone(), failure.count, failure.error.clone()))
                })
                .collect()
        };
        let mut queued = queued;
        for (project, _, _) in &backing_off {
            queued.remove(project);
        }
        if *scope == Scope::All {
            *self.last_read.lock().expect("last read lock") = Some(tokio::time::Instant::now());
            self.ready.store(true, Ordering::Relaxed);
        }
        self.record_engine_metrics();
        self.wake.notify_one();
        let account_problems = accounts.accounts.iter().filter_map(|o| {
            o.error
                .as_ref()
                .map(|e| format!("account of {}: {e}", o.project))
        });
        let still_failing = backing_off.iter().map(|(project, count, error)| {
            format!("project {project}: failed {count} times, retried with backoff: {error}")
        });
        // Accounts left alone by this run because they back off after failures: named now.
        let tried: BTreeSet<&ProjectKey> = accounts.accounts.iter().map(|o| &o.project).collect();
        let accounts_failing: Vec<String> = {
            let retries = self.accounts_pending.lock().expect("accounts lock");
            let now = tokio::time::Instant::now();
            retries
                .failing()
                .into_iter()
                .filter(|(p, ..)| {
                    !tried.contains(p) && scope.contains(p) && retries.backing_off(p, now)
                })
                .map(|(project, count, error)| {
                    format!(
                        "account of {project}: failed {count} times, retried with backoff: {error}"
                    )
                })
                .collect()
        };
        let summary = RunSummary {
            account_steps_done: accounts.accounts.iter().map(|o| o.done.len()).sum(),
            account_steps_left: accounts.pending_steps(),
            failed: accounts.failed() + backing_off.len() + accounts_failing.len(),
            problems: account_problems
                .chain(still_failing)
                .chain(accounts_failing)
                .collect(),
            findings,
            held,
            reconciled_projects: Some(0),
            ..RunSummary::default()
        };
        Ok(self.track(id, *scope != Scope::All, started, queued, summary))
    }

    /// A read of everything lacks projects the last one wanted: each is confirmed gone by a
    /// point read before anything of it is removed. One that meshStack still has means the
    /// listing shifted under its paging: the read is refused whole (nothing queued; the next
    /// read tries again).
    async fn confirm_absent(&self, snapshot: &Snapshot) -> Result<(), String> {
        let gone: Vec<ProjectKey> = {
            let engine = self.engine();
            let Some(last) = engine.as_ref().and_then(|e| e.desired()) else {
                return Ok(());
            };
            let now: BTreeSet<ProjectKey> = snapshot.projects.iter().map(|p| p.key()).collect();
            let wanted: BTreeSet<&ProjectKey> =
                last.groups.values().map(|g| &g.identity.project).collect();
            wanted
                .into_iter()
                .filter(|p| !now.contains(*p))
                .cloned()
                .collect()
        };
        if gone.is_empty() {
            return Ok(());
        }
        let live = crate::meshstack::still_there(self.meshstack()?, &gone)
            .await
            .map_err(|e| e.to_string())?;
        if live.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = live.iter().map(|p| p.key().to_string()).collect();
        Err(format!(
            "meshStack's listing lacks {}, which a point read finds; nothing is queued from this read (the next read tries again)",
            names.join(", ")
        ))
    }

    /// The account phase for a run: for a scoped one its projects; for a read of everything
    /// the projects whose desired state is not confirmed, those without an account yet, and
    /// those whose account has steps left (an AVM wait, a failed step), until done.
    async fn accounts_of(
        &self,
        scope: &Scope,
        snapshot: Snapshot,
        settings: &Settings<'_>,
    ) -> Result<(crate::accounts::run::Report, Snapshot), String> {
        if self.config.accounts.landing_zones.is_empty() {
            return Ok((crate::accounts::run::Report::default(), snapshot));
        }
        let scope = match scope {
            Scope::Only { .. } => scope.clone(),
            Scope::All => {
                let before = desired(&snapshot, settings, &Scope::All);
                let differing = self
                    .engine()
                    .as_ref()
                    .map(|e| e.differing(&before))
                    .unwrap_or_default();
                let waiting = snapshot
                    .tenants
                    .iter()
                    .filter(|t| t.account_id.is_none())
                    .map(|t| t.key());
                let now = tokio::time::Instant::now();
                let retries = self.accounts_pending.lock().expect("accounts lock");
                // An account backing off (or waiting for its vending machine) is left alone
                // until its time, however often runs of everything come.
                let projects: BTreeSet<ProjectKey> = differing
                    .into_iter()
                    .chain(waiting)
                    .filter(|p| !retries.backing_off(p, now))
                    .chain(retries.due(now))
                    .collect();
                drop(retries);
                if projects.is_empty() {
                    return Ok((crate::accounts::run::Report::default(), snapshot));
                }
                Scope::projects(projects)
            }
        };
        let (report, filled) = self.accounts(&scope, &snapshot).await?;
        let now = tokio::time::Instant::now();
        let interval = Duration::from_secs(self.config.replicator.schedule.interval_seconds);
        let mut retries = self.accounts_pending.lock().expect("accounts lock");
        for outcome in &report.accounts {
            let held = retries.settle(
                &outcome.project,
                !outcome.pending.is_empty(),
                outcome.error.as_deref(),
                now,
                interval,
            );
            if let (Some(failures), Some(error)) = (held, &outcome.error) {
                tracing::warn!(project = %outcome.project, failures, %error, "account steps held: they failed too often; retried hourly, or at once when a webhook names the project");
            }
        }
        Ok((report, filled))
    }

    /// the meshIdB path.
    fn scan_clients(&self) -> Option<(ScimClient, SsoAdmin)> {
        let share = self.config.replicator.drift_scan.share;
        let sso = self.config.sso.as_ref().filter(|_| share > 0.0)?;
        crate::sso::connect_at(&self.config, sso, Some(self.metrics.clone()), share)
            .inspect_err(
                |error| tracing::error!(%error, "drift scan: cannot reach AWS; not scanning"),
            )
            .ok()
    }

    /// Whether this replica writes: it holds the lease, or there is no election.
    fn leading(&self) -> bool {
        self.election
            .as_ref()
            .is_none_or(leader::Election::is_leading)
    }

    fn warm(&self) -> std::sync::MutexGuard<'_, Option<crate::desired::Desired>> {
        self.warm.lock().expect("warm lock")
    }

    /// The engine while leading (`None` while following).
    fn engine(&self) -> std::sync::MutexGuard<'_, Option<Engine<tokio::time::Instant>>> {
        self.engine.lock().expect("engine lock")
    }

    /// Who writes the record: this replica's name.
    fn identity(&self) -> String {
        ["POD_NAME", "HOSTNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
            .unwrap_or_else(|| "aws-replicator".to_owned())
    }
}

impl Service {
    /// The account phase of a run, in the metrics; the snapshot with the account ids it found.
    async fn accounts(
        &self,
        scope: &Scope,
        snapshot: &Snapshot,
    ) -> Result<(crate::accounts::run::Report, Snapshot), String> {
        let (accounts, snapshot) = crate::accounts::run::accounts_phase(
            &self.config,
            snapshot,
            scope,
            false,
            &self.audit,
            Some(self.metrics.clone()),
        )
        .await
        .map_err(|e| format!("accounts: {e}"))?;
        accounts.record(&self.metrics);
        self.account_ids
            .lock()
            .expect("account ids lock")
            .extend(accounts.account_ids());
        Ok((accounts, snapshot))
    }

    /// The meshIdB path: accounts, then each account's SAML provider and roles.
    async fn run_idb(&self, scope: &Scope, snapshot: &Snapshot) -> Result<RunSummary, String> {
        let (accounts, snapshot) = self.accounts(scope, snapshot).await?;
        let ids = accounts.account_ids();
        let iam = crate::idb::run::iam_phase(
            &self.config,
            &snapshot,
            &ids,
            false,
            &self.audit,
            Some(self.metrics.clone()),
        )
        .await
        .map_err(|e| format!("meshIdB: {e}"))?;
        iam.record(&self.metrics);
        self.ready.store(true, Ordering::Relaxed);
        let roles = crate::idb::saml_roles(&snapshot, &self.config, &ids);
        let mut served = self.saml_roles.write().expect("saml roles lock");
        *served = match (scope, served.take()) {
            (Scope::All, _) => Some(roles),
            // A scoped run replaces only its accounts' pairs; before the first full run there
            // is no whole answer to serve.
            (Scope::Only { .. }, before) => before.map(|before| {
                let accounts = crate::idb::accounts_of(&snapshot, &ids);
                crate::idb::merge_saml_roles(before, roles, &accounts)
            }),
        };
        drop(served);
        let errors = accounts
            .accounts
            .iter()
            .filter_map(|o| {
                o.error
                    .as_ref()
                    .map(|e| format!("account of {}: {e}", o.project))
            })
            .chain(iam.accounts.iter().filter_map(|a| {
                a.error
                    .as_ref()
                    .map(|e| format!("account {}: {e}", a.account))
            }));
        Ok(RunSummary {
            account_steps_done: accounts.accounts.iter().map(|o| o.done.len()).sum(),
            account_steps_left: accounts.pending_steps(),
            planned: iam.done() + iam.pending(),
            applied: iam.done(),
            failed: iam.failed() + accounts.failed(),
            skipped: 0,
            remaining: iam.pending(),
            problems: errors.collect(),
            findings: iam.findings().map(ToString::to_string).collect(),
            ..RunSummary::default()
        })
    }
}

/// `GET /v1/saml-roles[?user=U]` (meshIdB): each user's `role ARN,provider ARN` pairs as of the
/// last run, for meshIdB's assertions. Authenticated like the webhook.
async fn saml_roles(
    State(service): State<Arc<Service>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Err((status, message)) = service.authenticate(&method, &uri, &headers) {
        return error(status, &message);
    }
    if service.config.mesh_idb.is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "SAML roles exist only on the meshIdB path (iam-configuration.mesh-idb)",
        );
    }
    let Some(mut roles) = service.saml_roles.read().expect("saml roles lock").clone() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no run has finished yet");
    };
    if let Some(user) = query.get("user") {
        roles.retain(|u, _| u == user);
    }
    axum::Json(json!({ "platform": service.config.platform, "users": roles })).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn readyz(State(service): State<Arc<Service>>) -> Response {
    // A follower is ready to take over once its first read of meshStack ended (whatever its
    // outcome): a rolling update waits for that before it stops the leader.
    if !service.leading() {
        if follow::following(&service) && !service.follower_read.load(Ordering::Relaxed) {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: standby, reading meshStack for the first time",
            );
        }
        return if service.warm().is_some() {
            "ready (standby: not the leader; meshStack's desired state kept warm)"
        } else {
            "ready (standby: not the leader)"
        }
        .into_response();
    }
    let crawl_cycle = *service.crawl_cycle.lock().expect("crawl cycle lock");
    let replicator = &service.config.replicator;
    let max_age = replicator
        .serve
        .ready_max_age(&replicator.schedule, crawl_cycle);
    let since_read = if service.sso.is_some() {
        service
            .last_read
            .lock()
            .expect("last read lock")
            .map(|at| at.elapsed())
    } else {
        service.runs.succeeded_at().map(|at| at.elapsed())
    };
    match unready(
        service.ready.load(Ordering::Relaxed),
        since_read,
        service.started.elapsed(),
        max_age,
    ) {
        None => "ready".into_response(),
        Some(reason) if !service.ready.load(Ordering::Relaxed) => {
            let crawl = service.crawl();
            let (projects, left) = (crawl.projects(), crawl.left());
            drop(crawl);
            let progress = if service.meshstack.is_some() && projects > 0 {
                format!(
                    "; the meshStack crawl's first cycle has read {} of {projects} projects",
                    projects - left
                )
            } else {
                String::new()
            };
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{reason}{progress}"),
            )
        }
        Some(reason) => error(StatusCode::SERVICE_UNAVAILABLE, &reason),
    }
}

/// Why `/readyz` says no, if it does: meshStack not read yet (and the record not taken against
/// it), or no successful read of everything for longer than `max_age` (counted from start-up
/// until the first one). One project failing does not make the replicator unready: it is
/// named in the metrics and retried; a replicator that cannot read meshStack is not doing its
/// job, and an orchestrator or alert should see that.
fn unready(
    observed: bool,
    since_success: Option<Duration>,
    since_start: Duration,
    max_age: Duration,
) -> Option<String> {
    if !observed {
        return Some(
            "not ready: meshStack has not been read yet (the record of what AWS holds is taken against the first read)"
                .into(),
        );
    }
    let limit = max_age.as_secs();
    match since_success {
        Some(age) if age > max_age => Some(format!(
            "not ready: the last successful read of everything was {} s ago, more than \
             replicator.serve.ready-max-age-seconds ({limit} s)",
            age.as_secs()
        )),
        None if since_start > max_age => Some(format!(
            "not ready: no read of everything has succeeded in the {} s since start-up, more than \
             replicator.serve.ready-max-age-seconds ({limit} s)",
            since_start.as_secs()
        )),
        _ => None,
    }
}

/// OpenMetrics when the client asks for it (Prometheus does, first), else Prometheus's text
/// format 0.0.4 (`promtool check metrics`, `curl`).
async fn metrics(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            service.metrics.render(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            service.metrics.render_text(),
        )
            .into_response()
    }
}

async fn list_runs(
    State(service): State<Arc<Service>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err((status, message)) = service.authenticate(&method, &uri, &headers) {
        return error(status, &message);
    }
    axum::Json(json!({ "runs": service.runs.list() })).into_response()
}

async fn get_run(
    State(service): State<Arc<Service>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err((status, message)) = service.authenticate(&method, &uri, &headers) {
        return error(status, &message);
    }
    match id.parse::<RunId>().ok().and_then(|id| service.runs.get(id)) {
        Some(run) => axum::Json(run).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "no such run (runs are kept in memory, the last 100)",
        ),
    }
}

/// `POST /v1/sync` with an empty body (everything) or `{"workspace": …, "project": …}`.
async fn trigger(
    State(service): State<Arc<Service>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let serve = &service.config.replicator.serve;
    let body = match read_body(serve, body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let caller = Caller {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let checked = check_request(serve, &caller, unix_now(), &mut service.replays());
    let scope = match checked {
        Ok(scope) => scope,
        Err((status, message)) => return error(status, &message),
    };
    if let Some(elsewhere) = not_leading(&service).await {
        return elsewhere;
    }
    match service.runs.enqueue(scope, Trigger::Webhook) {
        Some(enqueued) => (StatusCode::ACCEPTED, axum::Json(enqueued)).into_response(),
        None if service.runs.is_closed() => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        None => error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "{} runs are waiting for their read of meshStack; try again later",
                runs::MAX_QUEUED
            ),
        ),
    }
}

/// A request's body, at most `max-body-bytes` of it (413 beyond).
async fn read_body(
    serve: &crate::config::raw::Serve,
    body: Body,
) -> Result<bytes::Bytes, Response> {
    let limit = serve.max_body_bytes as usize;
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {limit} bytes"),
        )
    })
}

/// Only the leader runs syncs and holds the engine: a follower reached directly (the shipped
/// Service selects the leader's pod) sends the caller on, so no request is lost.
async fn not_leading(service: &Service) -> Option<Response> {
    let election = service.election.as_ref().filter(|e| !e.is_leading())?;
    let leader = election.holder().await;
    let message = match &leader {
        Some(holder) => format!("this replica is not the leader; the leader is {holder}"),
        None => "this replica is not the leader, and no leader holds the lease yet".to_owned(),
    };
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "error": message, "leader": leader })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
    Some(response)
}

/// What a pause of removals is, for `GET /v1/removals` and the answer of its allow.
fn describe_pause(paused: &crate::engine::Paused) -> serde_json::Value {
    const NAMED: usize = 100;
    json!({
        "why": paused.why.to_string(),
        "what": paused.why.what,
        "deleted": paused.why.deleted,
        "managed": paused.why.managed,
        "waiting_projects": paused.parked.len(),
        "projects": paused.parked.iter().take(NAMED).map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// `GET /v1/removals`: whether the deletion guard paused removals, why, and which projects
/// wait for them (the first 100).
async fn removals(
    State(service): State<Arc<Service>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err((status, message)) = service.authenticate(&method, &uri, &headers) {
        return error(status, &message);
    }
    if let Some(elsewhere) = not_leading(&service).await {
        return elsewhere;
    }
    let engine = service.engine();
    let paused = engine.as_ref().and_then(|e| e.removals_paused());
    axum::Json(json!({
        "paused": paused.is_some(),
        "pause": paused.map(describe_pause),
    }))
    .into_response()
}

/// `POST /v1/removals/allow` (empty body): a person checked what meshStack returned and
/// allows the removals the deletion guard paused. The projects that waited are reconciled
/// again, with them; the guard measures the reads from here on afresh.
async fn allow_removals(
    State(service): State<Arc<Service>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let serve = &service.config.replicator.serve;
    let body = match read_body(serve, body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let caller = Caller {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    if let Err((status, message)) = authenticate(serve, &caller, unix_now(), &mut service.replays())
    {
        return error(status, &message);
    }
    if let Some(elsewhere) = not_leading(&service).await {
        return elsewhere;
    }
    let allowed = {
        let mut engine = service.engine();
        let Some(engine) = engine.as_mut() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "this replica is not leading yet; try again shortly",
            );
        };
        engine.allow_removals(tokio::time::Instant::now())
    };
    let Some(allowed) = allowed else {
        return axum::Json(json!({ "allowed": null, "paused": false })).into_response();
    };
    tracing::warn!(why = %allowed.why, projects = allowed.parked.len(), "removals allowed by a person: the waiting projects are reconciled with them");
    service.audit.write(&json!({
        "timestamp": crate::audit::now(),
        "platform": service.config.platform,
        "operation": "allow_removals",
        "deleted": allowed.why.deleted,
        "managed": allowed.why.managed,
        "what": allowed.why.what,
        "projects": allowed.parked.len(),
    }));
    service.record_engine_metrics();
    service.wake.notify_one();
    follow::save(&service).await;
    axum::Json(json!({ "allowed": describe_pause(&allowed), "paused": false })).into_response()
}

impl Service {
    /// The caller of a route without a body, checked against the clock now.
    fn authenticate(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let caller = Caller {
            method,
            uri,
            headers,
            body: b"",
        };
        let serve = &self.config.replicator.serve;
        authenticate(serve, &caller, unix_now(), &mut self.replays())
    }

    fn replays(&self) -> std::sync::MutexGuard<'_, Replays> {
        self.replays.lock().expect("replay cache lock")
    }
}

/// The clock signed requests are checked against, in Unix seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_a_first_read_and_then_a_recent_success() {
        let s = Duration::from_secs;
        let max = s(100);
        let not_read = unready(false, None, s(1), max).unwrap();
        assert!(not_read.contains("not been read"), "{not_read}");
        assert_eq!(unready(true, None, s(100), max), None);
        assert_eq!(unready(true, Some(s(100)), s(10_000), max), None);
        let old = unready(true, Some(s(101)), s(10_000), max).unwrap();
        assert!(
            old.contains("101 s ago")
                && old.contains("replicator.serve.ready-max-age-seconds (100 s)"),
            "{old}"
        );
        let never = unready(true, None, s(101), max).unwrap();
        assert!(
            never.contains("no read of everything has succeeded"),
            "{never}"
        );
    }

    /// Unset, the maximum age follows the schedule and the crawl: a daily schedule, or an
    /// estate whose crawl cycle outlasts two hours, keeps a healthy replicator ready.
    #[test]
    fn readiness_age_is_derived_from_the_schedule_and_the_crawl_unless_set() {
        use crate::config::raw::Schedule;
        let mut serve = crate::config::raw::Serve {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: None,
            webhook_token: None,
            webhook_hmac_secret: None,
            max_body_bytes: 4096,
            run_deadline_seconds: 3600,
            ready_max_age_seconds: None,
        };
        let every = |interval_seconds, jitter_seconds| Schedule {
            interval_seconds,
            jitter_seconds,
        };
        let s = Duration::from_secs;
        assert_eq!(serve.ready_max_age(&every(900, 60), None), s(7200));
        assert_eq!(serve.ready_max_age(&every(86_400, 0), None), s(259_200));
        assert_eq!(serve.ready_max_age(&every(900, 0), Some(9000.0)), s(18_000));
        assert_eq!(
            serve.ready_max_age(&every(900, 0), Some(f64::INFINITY)),
            s(7200)
        );
        serve.ready_max_age_seconds = Some(600);
        assert_eq!(serve.ready_max_age(&every(86_400, 0), Some(9000.0)), s(600));
    }
}
