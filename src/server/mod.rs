//! `aws-replicator serve`: the sync as a long-running service.
//!
//! - A scheduler queues a full sync at start-up and then every interval (plus jitter).
//! - `POST /v1/sync` queues one on demand, for everything or one project, after checking the
//!   caller (`auth.rs`: bearer token, or an HMAC-SHA256 signature over timestamp, method, path
//!   and body that cannot be replayed).
//! - One worker runs the queued syncs one at a time, each within the run deadline
//!   (`worker.rs`; `runs.rs` coalesces the triggers).
//! - `GET /v1/runs[/{id}]` (authenticated like the webhook), `/healthz`, `/readyz` (after the
//!   first observation, and while the last successful sync is recent), `/metrics` (OpenMetrics).
//! - SIGTERM/Ctrl-C: no new runs; the running one gets a grace period to finish, then stops and
//!   is recorded as interrupted.

mod auth;
mod follow;
mod leader;
mod runs;
mod scan;
mod worker;

use crate::audit::Audit;
use crate::config::Config;
use crate::desired::{Scope, Settings, desired};
use crate::known::Known;
use crate::metrics::{Metrics, drift_by_project};
use crate::model::{GroupIdentity, ProjectKey};
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
use std::future::IntoFuture;
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
    #[error("cannot listen on {address} (replicator.serve.listen or --listen): {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Election(#[from] leader::ElectionError),
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
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
    /// AWS IAM Identity Center (or, on the meshIdB path, the accounts) has been read once.
    ready: AtomicBool,
    started: tokio::time::Instant,
    /// The signatures of signed requests seen within their window.
    replays: Mutex<Replays>,
    /// What the last runs reconciled, for runs by change and the drift scan.
    known: Mutex<Option<Known<std::time::Instant>>>,
    /// While following: meshStack's desired state as last read, for a take-over by change.
    warm: Mutex<Option<crate::known::Warm<std::time::SystemTime>>>,
    /// A follower is ready to take over from this moment (its first read of meshStack ended,
    /// and the clocks' allowed skew passed); `None` before.
    follower_ready_at: Mutex<Option<tokio::time::Instant>>,
    /// When the shutdown signal came.
    stopping_since: std::sync::OnceLock<tokio::time::Instant>,
    /// The users as the drift scan last listed them (once a cycle).
    listed_users: Mutex<Option<Arc<crate::scan::Users>>>,
    /// Account ids the account phase found, for tenants meshStack has none for yet.
    account_ids: Mutex<std::collections::BTreeMap<ProjectKey, String>>,
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
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServerError::Listen {
            address: options.listen,
            source,
        })?;
    let election = match &config.replicator.leader_election {
        Some(settings) => Some(leader::Election::connect(settings).await?),
        None => None,
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
        known: Mutex::default(),
        warm: Mutex::default(),
        follower_ready_at: Mutex::default(),
        stopping_since: std::sync::OnceLock::new(),
        listed_users: Mutex::default(),
        account_ids: Mutex::default(),
        config,
    });
    tracing::info!(address = %options.listen, "serving");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signalled = {
        let service = service.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: no new syncs; the running one may finish");
            let _ = service.stopping_since.set(tokio::time::Instant::now());
            service.runs.close();
            let _ = stop_tx.send(true);
        }
    };
    let server = axum::serve(listener, router(service.clone())).with_graceful_shutdown(signalled);
    // The worker runs on this task rather than a spawned one: the sync's futures borrow in ways
    // the compiler cannot yet prove `Send` (rust-lang/rust#102211).
    let runner = worker::Worker {
        runs: &service.runs,
        metrics: &service.metrics,
        deadline: Duration::from_secs(service.config.replicator.serve.run_deadline_seconds),
    };
    // The scheduler, the worker and the drift scan: what the one writer does. Without leader
    // election that is this process, for as long as it serves.
    let lead = || {
        let (service, runner, mut stop_rx) = (&service, &runner, stop_rx.clone());
        async move {
            // What an earlier term knew is stale: another leader may have written since. Each
            // term starts from what this replica read while following (its first run goes by
            // change, and the drift scan confirms AWS at the full rate), or with a full run.
            let warm = follow::take_over(service).await;
            let full_rate_scan = warm.is_some();
            *service.known() = warm;
            let _scheduler = Aborting(tokio::spawn(schedule(service.clone())));
            let stopping = async move {
                let _ = stop_rx.wait_for(|stopped| *stopped).await;
            };
            // Each run is boxed: a sync is a deep future, and nested in the server's it grew
            // too deep for the compiler to lay out.
            let work = runner.work(stopping, |scope| async move {
                Box::pin(service.run(&scope)).await
            });
            // On this task too (the same `Send` limit); it ends with the worker.
            let scan = async {
                if let Some((scim, admin)) = service.scan_clients() {
                    Box::pin(scan::scan(service.clone(), scim, admin, full_rate_scan)).await;
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                () = work => {}
                () = scan => {}
            }
            // The worker ended: shutting down, still holding the lease.
            follow::hand_over(service).await;
        }
    };
    let work = async {
        match &service.election {
            None => lead().await,
            Some(election) => {
                service.metrics.record_leader(false);
                let lost = || {
                    service.metrics.record_leader(false);
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
    let (served, ()) = tokio::join!(server.into_future(), work);
    served.map_err(ServerError::Serve)
}

/// Aborts its task when dropped: the scheduler stops with the leadership that runs it.
struct Aborting(tokio::task::JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/sync", post(trigger))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/saml-roles", get(saml_roles))
        .with_state(service)
}

/// Queues a full sync now, then one every interval plus up to the jitter.
async fn schedule(service: Arc<Service>) {
    let schedule = &service.config.replicator.schedule;
    let mut trigger = Trigger::Startup;
    loop {
        if service.runs.enqueue(Scope::All, trigger).is_none() {
            return;
        }
        trigger = Trigger::Schedule;
        let jitter = jitter(schedule.jitter_seconds);
        tokio::time::sleep(Duration::from_secs(schedule.interval_seconds + jitter)).await;
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
            // A project pending deletion is read (and its groups go); one meshStack does not
            // have at all fails the read.
            None => crate::meshstack::read_scope(&self.config, scope)
                .await
                .map_err(|e| e.to_string())?,
        };
        Ok(snapshot)
    }

    /// One sync of `scope`: the metrics follow the plan, then what is left after applying.
    /// Once a full run has reconciled the platform, a scheduled run goes by change.
    async fn run(&self, scope: &Scope) -> Result<RunSummary, String> {
        // What meshStack showed from here on is what a run of everything applies.
        let read_at = std::time::SystemTime::now();
        let snapshot = self.snapshot(scope).await?;
        let Some((scim, admin)) = &self.sso else {
            return self.run_idb(scope, &snapshot).await;
        };
        let sso = self.config.require_sso().map_err(|e| e.to_string())?;
        if *scope == Scope::All && self.known().is_some() {
            let summary = self.run_changes(snapshot, sso, scim, admin).await?;
            self.mark_synced(read_at).await;
            return Ok(summary);
        }
        // Accounts first: a new project's account must exist before its groups are assigned.
        let (accounts, snapshot) = self.accounts(scope, &snapshot).await?;
        let desired = desired(&snapshot, &Settings::new(&self.config, sso), scope);
        // Drift is reported for the projects the run looked at.
        let projects: Option<Vec<ProjectKey>> = match scope {
            Scope::All => None,
            Scope::Only { .. } => Some(
                snapshot
                    .projects
                    .iter()
                    .map(|p| p.key())
                    .filter(|k| scope.contains(k))
                    .collect(),
            ),
        };
        let result = self
            .sync(&desired, projects.as_deref(), None, scim, admin)
            .await?;
        let unfinished = crate::known::groups_of(&result.remaining);
        let now = std::time::Instant::now();
        {
            let mut known = self.known();
            match (scope, known.as_mut()) {
                (Scope::All, _) => {
                    *known = Some(Known::new(desired, &unfinished, &result.seen, now));
                }
                (Scope::Only { .. }, Some(known)) => {
                    known.record(&desired, &unfinished, &result.seen, now);
                }
                // Before the first full run there is nothing to go by change from.
                (Scope::Only { .. }, None) => {}
            }
        }
        if *scope == Scope::All {
            self.mark_synced(read_at).await;
        }
        Ok(summary(&accounts, &result, None))
    }

    /// A run of everything ended: when it left nothing undone, the lease says that what
    /// meshStack showed at `read_at` is applied, for the next leader (`follow`).
    async fn mark_synced(&self, read_at: std::time::SystemTime) {
        let done = self.known().as_ref().is_some_and(|k| k.dirty().is_empty());
        if let (true, Some(election)) = (done, &self.election) {
            election.mark_synced(read_at).await;
        }
    }

    /// A scheduled run by change: meshStack read in full, AWS read and written only for the
    /// projects whose desired state changed since the last run (or that the drift scan or an
    /// unfinished run left to do).
    async fn run_changes(
        &self,
        snapshot: Snapshot,
        sso: &crate::config::SsoConfig,
        scim: &ScimClient,
        admin: &SsoAdmin,
    ) -> Result<RunSummary, String> {
        let settings = Settings::new(&self.config, sso);
        // Account ids found by earlier runs, for tenants meshStack has none for yet.
        let mut snapshot = snapshot;
        {
            let ids = self.account_ids.lock().expect("account ids lock");
            for tenant in &mut snapshot.tenants {
                if tenant.account_id.is_none()
                    && let Some(id) = ids.get(&tenant.key())
                {
                    tenant.account_id = Some(id.clone());
                }
            }
        }
        let mut desired = desired(&snapshot, &settings, &Scope::All);
        let mut changed = self
            .known()
            .as_ref()
            .map(|k| k.to_reconcile(&desired))
            .unwrap_or_default();
        let mut accounts = crate::accounts::run::Report::default();
        if !self.config.accounts.landing_zones.is_empty() {
            // A tenant still without an account is worked on every run, as in a full one.
            let waiting = snapshot
                .tenants
                .iter()
                .filter(|t| t.account_id.is_none())
                .map(|t| t.key());
            let projects: BTreeSet<ProjectKey> = changed
                .iter()
                .filter_map(|e| GroupIdentity::parse(&desired.platform, e.as_str()))
                .map(|i| i.project)
                .chain(waiting)
                .collect();
            if !projects.is_empty() {
                let scope = Scope::projects(projects);
                let (report, filled) = self.accounts(&scope, &snapshot).await?;
                accounts = report;
                desired = crate::desired::desired(&filled, &settings, &Scope::All);
                changed = self
                    .known()
                    .as_ref()
                    .map(|k| k.to_reconcile(&desired))
                    .unwrap_or_default();
            }
        }
        let mut narrowed = desired.only(&changed);
        narrowed.findings = desired.findings.clone();
        let estate = self
            .known()
            .as_ref()
            .map(Known::managed)
            .unwrap_or_default();
        let projects: Vec<ProjectKey> = match &narrowed.scope {
            Scope::Only { projects, .. } => projects.iter().cloned().collect(),
            Scope::All => Vec::new(),
        };
        let result = self
            .sync(&narrowed, Some(&projects), Some(estate), scim, admin)
            .await?;
        let unfinished = crate::known::groups_of(&result.remaining);
        if let Some(known) = self.known().as_mut() {
            known.record_changes(&desired, &narrowed, &unfinished, std::time::Instant::now());
        }
        let reconciled = narrowed.only_groups.as_ref().map_or(0, BTreeSet::len);
        Ok(summary(&accounts, &result, Some(reconciled)))
    }

    /// Observe, plan, apply for `desired`, with the metrics: drift of `projects` (`None`: all)
    /// as planned and as left, operations, the guard. `estate`: a run by change, measured
    /// against what we manage across the platform.
    async fn sync(
        &self,
        desired: &crate::desired::Desired,
        projects: Option<&[ProjectKey]>,
        estate: Option<crate::plan::guard::Managed>,
        scim: &ScimClient,
        admin: &SsoAdmin,
    ) -> Result<crate::sync::SyncReport, String> {
        let planned = |plan: &crate::plan::Plan| {
            self.ready.store(true, Ordering::Relaxed);
            self.metrics.record_drift(plan, projects);
        };
        let settings = crate::sso::sync_settings(&self.config);
        let result = match estate {
            None => {
                crate::sync::sync(
                    desired,
                    scim,
                    admin,
                    settings,
                    &self.audit,
                    planned,
                    &|_| {},
                )
                .await
            }
            Some(estate) => {
                let listed = self.listed_users.lock().expect("listed users lock").clone();
                crate::sync::sync_changes(
                    desired,
                    estate,
                    listed.as_deref(),
                    scim,
                    admin,
                    settings,
                    &self.audit,
                    planned,
                    &|_| {},
                )
                .await
            }
        }
        .map_err(|e| e.to_string())?;
        self.metrics.record_guard(result.refused.is_some());
        if let Some(tripped) = &result.refused {
            return Err(format!("refused, nothing applied: {tripped}"));
        }
        let touched: Vec<ProjectKey> = drift_by_project(&result.plan).into_keys().collect();
        self.metrics.record_drift(&result.remaining, Some(&touched));
        self.metrics.record_report(&result.plan, &result.report);
        if let Some(known) = self.known().as_ref() {
            let oldest = known
                .oldest_confirmation()
                .map_or(0.0, |at| at.elapsed().as_secs_f64());
            self.metrics.record_scan(0, 0, oldest);
        }
        Ok(result)
    }

    /// The drift scan's own clients, at its share of the rates; `None` when it is off or on
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

    fn warm(&self) -> std::sync::MutexGuard<'_, Option<crate::known::Warm<std::time::SystemTime>>> {
        self.warm.lock().expect("warm lock")
    }

    /// What the service knows between runs (`None` until the first full run).
    fn known(&self) -> std::sync::MutexGuard<'_, Option<Known<std::time::Instant>>> {
        self.known.lock().expect("known lock")
    }
}

/// A run's summary: accounts, then the sync.
fn summary(
    accounts: &crate::accounts::run::Report,
    result: &crate::sync::SyncReport,
    reconciled_groups: Option<usize>,
) -> RunSummary {
    let report = &result.report;
    let account_problems = accounts.accounts.iter().filter_map(|o| {
        o.error
            .as_ref()
            .map(|e| format!("account of {}: {e}", o.project))
    });
    RunSummary {
        account_steps_done: accounts.accounts.iter().map(|o| o.done.len()).sum(),
        account_steps_left: accounts.pending_steps(),
        planned: result.plan.ops.len(),
        applied: report.applied,
        failed: report.failed + accounts.failed(),
        skipped: report.skipped,
        remaining: result.remaining.ops.len(),
        scim_calls: result.calls.scim,
        sso_admin_calls: result.calls.sso_admin,
        scim_reads: result.calls.scim_reads,
        sso_admin_reads: result.calls.sso_admin_reads,
        reconciled_groups,
        problems: account_problems
            .chain(report.problems(&result.plan))
            .collect(),
        findings: result
            .plan
            .findings
            .iter()
            .map(ToString::to_string)
            .collect(),
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
    // A follower is ready to take over; it reads no AWS until it leads. One that keeps the
    // desired state warm is ready once its first read of meshStack ended (whatever its outcome)
    // and the clocks' allowed skew passed: a rolling update waits that long before it stops
    // the leader, whose hand-over run then covers the new replica's reads.
    if !service.leading() {
        if follow::following(&service) {
            let ready_at = *service.follower_ready_at.lock().expect("ready lock");
            if ready_at.is_none_or(|at| tokio::time::Instant::now() < at) {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: standby, reading meshStack for the first time",
                );
            }
        }
        return if service.warm().is_some() {
            "ready (standby: not the leader; meshStack's desired state kept warm)"
        } else {
            "ready (standby: not the leader)"
        }
        .into_response();
    }
    let max_age = Duration::from_secs(service.config.replicator.serve.ready_max_age_seconds);
    match unready(
        service.ready.load(Ordering::Relaxed),
        service.runs.succeeded_at().map(|at| at.elapsed()),
        service.started.elapsed(),
        max_age,
    ) {
        None => "ready".into_response(),
        Some(reason) => error(StatusCode::SERVICE_UNAVAILABLE, &reason),
    }
}

/// Why `/readyz` says no, if it does: nothing read yet, or no successful sync for longer than
/// `max_age` (counted from start-up until the first one). A replicator whose syncs keep failing
/// is alive but not doing its job, and an orchestrator or alert should see that.
fn unready(
    observed: bool,
    since_success: Option<Duration>,
    since_start: Duration,
    max_age: Duration,
) -> Option<String> {
    if !observed {
        return Some("not ready: AWS IAM Identity Center has not been read yet".into());
    }
    let limit = max_age.as_secs();
    match since_success {
        Some(age) if age > max_age => Some(format!(
            "not ready: the last successful sync was {} s ago, more than \
             replicator.serve.ready-max-age-seconds ({limit} s)",
            age.as_secs()
        )),
        None if since_start > max_age => Some(format!(
            "not ready: no sync has succeeded in the {} s since start-up, more than \
             replicator.serve.ready-max-age-seconds ({limit} s)",
            since_start.as_secs()
        )),
        _ => None,
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        service.metrics.render(),
    )
        .into_response()
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
    let limit = serve.max_body_bytes as usize;
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {limit} bytes"),
            );
        }
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
    // Only the leader runs syncs: a follower reached directly (the shipped Service selects the
    // leader's pod) sends the caller on, so no trigger is lost.
    if let Some(election) = service.election.as_ref().filter(|e| !e.is_leading()) {
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
        return response;
    }
    match service.runs.enqueue(scope, Trigger::Webhook) {
        Some(enqueued) => (StatusCode::ACCEPTED, axum::Json(enqueued)).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
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
        assert!(never.contains("no sync has succeeded"), "{never}");
    }
}
