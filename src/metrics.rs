//! Prometheus metrics (`GET /metrics`, OpenMetrics text): drift by kind, operations by kind and
//! outcome, API requests by service, operation and status, retries and throttles, sync
//! duration, the last successful sync, leadership, build info.
//!
//! The metrics sit below the domains: a domain hands them plain numbers
//! (`record_accounts(pending_steps, failures)`), so this module imports no domain module that
//! imports it back (`tests/tidy.rs` checks).
//!
//! Labels hold only bounded, non-identifying values: operation names, status codes, kinds. No
//! user, group, account or secret ever becomes a label.

use crate::apply::{Report, Status, op_name};
use crate::model::{GroupIdentity, ProjectKey};
use crate::plan::{Op, Plan};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// `projects{state}`, in the order `record_projects` takes them.
const PROJECT_STATES: [&str; 5] = ["confirmed", "pending", "failed", "held", "paused"];
/// `queue_projects{priority}`: the engine's priorities, most urgent first.
const QUEUE_PRIORITIES: [&str; 5] = ["webhook", "change", "retry", "drift", "backlog"];

/// The API families the replicator calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Scim,
    SsoAdmin,
    Iam,
    MeshStack,
}

impl Service {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Service::Scim => "scim",
            Service::SsoAdmin => "sso-admin",
            Service::Iam => "iam",
            Service::MeshStack => "meshstack",
        }
    }
}

/// The process as Linux's `/proc/self` shows it at each scrape: resident and virtual memory,
/// CPU time, threads, open and allowed file descriptors, and when it started. Elsewhere (no
/// `/proc`) it shows nothing.
#[derive(Debug)]
struct Process {
    started: f64,
}

impl Default for Process {
    fn default() -> Self {
        Process {
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

/// `/proc/self/stat`'s clock ticks: USER_HZ, 100 on every Linux architecture.
const TICKS_PER_SECOND: f64 = 100.0;

impl prometheus_client::collector::Collector for Process {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
            return Ok(());
        };
        let field = |name: &str| -> Option<f64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line[name.len()..].split_whitespace().next()?.parse().ok()
        };
        let mut gauge = |name: &str, help: &str, value: f64| {
            let metric = ConstGauge::new(value);
            let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
            metric.encode(m)
        };
        if let Some(kib) = field("VmRSS:") {
            gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                kib * 1024.0,
            )?;
        }
        if let Some(kib) = field("VmSize:") {
            gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                kib * 1024.0,
            )?;
        }
        if let Some(threads) = field("Threads:") {
            gauge("process_threads", "Number of OS threads", threads)?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                "process_open_fds",
                "Number of open file descriptors",
                fds.count() as f64,
            )?;
        }
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| {
                let line = l.lines().find(|l| l.starts_with("Max open files"))?;
                line["Max open files".len()..]
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            });
        if let Some(max) = max_fds {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors",
                max,
            )?;
        }
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            self.started,
        )?;
        // Fields 14 and 15 (utime, stime) count from the end of the command name, which may
        // itself hold spaces and parentheses.
        let cpu = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 1..];
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let ticks =
                    fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
                Some(ticks / TICKS_PER_SECOND)
            });
        if let Some(seconds) = cpu {
            let metric = ConstCounter::new(seconds);
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                metric.metric_type(),
            )?;
            metric.encode(m)?;
        }
        Ok(())
    }
}

/// How a sync ended, as `syncs_total{outcome}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    Ok,
    Failed,
    /// Stopped by shutdown at the end of the grace period.
    Interrupted,
}

impl SyncOutcome {
    const ALL: [SyncOutcome; 3] = [Self::Ok, Self::Failed, Self::Interrupted];

    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// Told about every request a client sends. The clients know nothing of Prometheus.
pub trait RequestObserver: Send + Sync {
    /// `status`: the HTTP status, AWS's error code, or `transport` when no answer came.
    fn request(&self, service: Service, operation: &str, status: &str);
    fn retry(&self, service: Service, operation: &str);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityLabels {
    priority: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: &'static str,
    operation: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    scope: &'static str,
    outcome: &'static str,
}

/// Changes a sync would make, one count per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drift {
    pub groups_missing: u64,
    pub groups_renamed: u64,
    pub groups_extra: u64,
    pub members_missing: u64,
    pub members_extra: u64,
    pub assignments_missing: u64,
    pub assignments_extra: u64,
}

impl Drift {
    fn add(&mut self, other: &Drift) {
        self.groups_missing += other.groups_missing;
        self.groups_renamed += other.groups_renamed;
        self.groups_extra += other.groups_extra;
        self.members_missing += other.members_missing;
        self.members_extra += other.members_extra;
        self.assignments_missing += other.assignments_missing;
        self.assignments_extra += other.assignments_extra;
    }

    fn kinds(&self) -> [(&'static str, u64); 7] {
        [
            ("group_missing", self.groups_missing),
            ("group_renamed", self.groups_renamed),
            ("group_extra", self.groups_extra),
            ("member_missing", self.members_missing),
            ("member_extra", self.members_extra),
            ("assignment_missing", self.assignments_missing),
            ("assignment_extra", self.assignments_extra),
        ]
    }
}

/// The drift a plan shows, per project.
pub fn drift_by_project(plan: &Plan) -> BTreeMap<ProjectKey, Drift> {
    let mut out: BTreeMap<ProjectKey, Drift> = BTreeMap::new();
    for op in &plan.ops {
        let Some(identity) = GroupIdentity::parse(&plan.platform, op.group().external_id.as_str())
        else {
            continue;
        };
        let d = out.entry(identity.project).or_default();
        match op {
            Op::CreateGroup { members, .. } => {
                d.groups_missing += 1;
                d.members_missing += members.len() as u64;
            }
            Op::RenameGroup { .. } => d.groups_renamed += 1,
            Op::AddMembers { members, .. } => d.members_missing += members.len() as u64,
            Op::RemoveMembers { members, .. } => d.members_extra += members.len() as u64,
            Op::CreateAssignment { .. } => d.assignments_missing += 1,
            Op::DeleteAssignment { .. } => d.assignments_extra += 1,
            Op::DeleteGroup { .. } => d.groups_extra += 1,
        }
    }
    out
}

pub struct Metrics {
    registry: Registry,
    drift: Family<KindLabels, Gauge>,
    unresolved: Gauge,
    operations: Family<OperationLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    retries: Family<ServiceLabels, Counter>,
    throttles: Family<ServiceLabels, Counter>,
    syncs: Family<SyncLabels, Counter>,
    duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    guard: Gauge,
    removals_paused: Gauge,
    account_steps: Gauge,
    account_failures: Gauge,
    idb_pending: Gauge,
    idb_findings: Gauge,
    findings: Family<FindingLabels, Gauge>,
    /// The finding kinds shown so far: set to 0 when a later read has none of them.
    finding_kinds: Mutex<std::collections::BTreeSet<String>>,
    leader: Gauge,
    scan_cycle: Gauge<f64, AtomicU64>,
    scan_estimate: Gauge<f64, AtomicU64>,
    scan_oldest: Gauge<f64, AtomicU64>,
    scan_projects: Counter,
    scan_drifted: Counter,
    crawl_cycle: Gauge<f64, AtomicU64>,
    crawl_estimate: Gauge<f64, AtomicU64>,
    crawl_oldest: Gauge<f64, AtomicU64>,
    /// The drift last seen, per project: a full sync replaces it, a scoped one its projects.
    by_project: Mutex<BTreeMap<ProjectKey, Drift>>,
    projects: Family<StateLabels, Gauge>,
    queued: Family<PriorityLabels, Gauge>,
    project_failures: Counter,
}

fn nan() -> Gauge<f64, AtomicU64> {
    let g = Gauge::default();
    g.set(f64::NAN);
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // The process's own metrics keep their usual unprefixed names (`process_*`), as every
        // dashboard for them expects; ours are under `aws_replicator_`.
        let mut root = Registry::default();
        root.register_collector(Box::new(Process::default()));
        let registry = root.sub_registry_with_prefix("aws_replicator");
        let m = Self {
            drift: Family::default(),
            unresolved: Gauge::default(),
            operations: Family::default(),
            requests: Family::default(),
            retries: Family::default(),
            throttles: Family::default(),
            syncs: Family::default(),
            // A quarter of a second to four and a half hours: a first sync of a large estate
            // takes hours.
            duration: Histogram::new(exponential_buckets(0.25, 2.0, 17)),
            last_success: Gauge::default(),
            guard: Gauge::default(),
            removals_paused: Gauge::default(),
            account_steps: Gauge::default(),
            account_failures: Gauge::default(),
            idb_pending: Gauge::default(),
            idb_findings: Gauge::default(),
            findings: Family::default(),
            finding_kinds: Mutex::default(),
            leader: Gauge::default(),
            scan_cycle: Gauge::default(),
            scan_estimate: Gauge::default(),
            // Unknown until a read of meshStack: never a 0 that reads as "all confirmed now".
            scan_oldest: {
                let g = Gauge::default();
                g.set(f64::NAN);
                g
            },
            scan_projects: Counter::default(),
            scan_drifted: Counter::default(),
            // Unknown until measured: a 0 would read as "crawled just now".
            crawl_cycle: nan(),
            crawl_estimate: nan(),
            crawl_oldest: nan(),
            by_project: Mutex::new(BTreeMap::new()),
            projects: Family::default(),
            queued: Family::default(),
            project_failures: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "drift",
            "Changes the last sync found still to do in AWS IAM Identity Center, by kind",
            m.drift.clone(),
        );
        registry.register(
            "unresolved_euids",
            "Desired members with no AWS user of that userName, at the last full sync",
            m.unresolved.clone(),
        );
        registry.register(
            "operations",
            "Changes applied, by kind and outcome",
            m.operations.clone(),
        );
        registry.register(
            "api_requests",
            "Requests sent, by service, operation and status",
            m.requests.clone(),
        );
        registry.register(
            "api_retries",
            "Requests sent again after a retryable failure, by service",
            m.retries.clone(),
        );
        registry.register(
            "api_throttles",
            "Requests refused for the rate (HTTP 429 or ThrottlingException), by service",
            m.throttles.clone(),
        );
        registry.register("syncs", "Syncs run, by scope and outcome", m.syncs.clone());
        registry.register(
            "sync_duration_seconds",
            "How long a sync took, observe to re-check",
            m.duration.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the last sync of everything that applied everything finished (Unix time); scoped runs do not count",
            m.last_success.clone(),
        );
        registry.register(
            "deletion_guard_tripped",
            "1 when the deletion guard refused the last sync's plan (nothing was applied)",
            m.guard.clone(),
        );
        registry.register(
            "removals_paused",
            "1 while removals are paused: meshStack's answers took away more than replicator.deletion-guard allows within an interval (additions go on; POST /v1/removals/allow resumes them)",
            m.removals_paused.clone(),
        );
        registry.register(
            "account_steps_pending",
            "Account provisioning and bootstrap steps left after the last run (waits for an external vending machine included)",
            m.account_steps.clone(),
        );
        registry.register(
            "account_failures",
            "Accounts whose provisioning or bootstrap failed in the last run",
            m.account_failures.clone(),
        );
        registry.register(
            "mesh_idb_changes_pending",
            "meshIdB: SAML provider and role changes left after the last run",
            m.idb_pending.clone(),
        );
        registry.register(
            "findings",
            "Findings of the last read of everything, by kind (as plan --json names them): what meshStack's data holds that keeps a project held or a member out",
            m.findings.clone(),
        );
        registry.register(
            "mesh_idb_findings",
            "meshIdB: drift reported, not changed, in the last run (extra policies, missing external roles)",
            m.idb_findings.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica may sync (it holds the lease; always 1 without leader election), 0 while it stands by",
            m.leader.clone(),
        );
        registry.register(
            "drift_scan_cycle_seconds",
            "How long the drift scan's last complete cycle over every project took (0 before the first)",
            m.scan_cycle.clone(),
        );
        registry.register(
            "drift_scan_cycle_estimate_seconds",
            "How long one drift-scan cycle over the current estate takes at replicator.drift-scan's share of the rates",
            m.scan_estimate.clone(),
        );
        registry.register(
            "drift_scan_oldest_unconfirmed_seconds",
            "How long ago the project seen longest ago was last read or written and found as it should be; a project not confirmed yet counts from the start of the leader's term; NaN before the first read",
            m.scan_oldest.clone(),
        );
        registry.register(
            "meshstack_crawl_cycle_seconds",
            "How long the meshStack crawl's last complete cycle (listings, then every project's bindings) took; NaN before the first",
            m.crawl_cycle.clone(),
        );
        registry.register(
            "meshstack_crawl_cycle_estimate_seconds",
            "How long one crawl cycle over the estate takes: schedule.interval-seconds, or longer when 75 % of rate-limits.meshstack cannot read every project's bindings within it; NaN before the first listing",
            m.crawl_estimate.clone(),
        );
        registry.register(
            "meshstack_crawl_oldest_read_seconds",
            "How long ago the project read longest ago had its bindings read: a change made in meshStack without a webhook reaches AWS within this; NaN until every project was read once",
            m.crawl_oldest.clone(),
        );
        registry.register(
            "drift_scan_projects",
            "Projects the drift scan read",
            m.scan_projects.clone(),
        );
        registry.register(
            "drift_scan_drifted",
            "Projects the drift scan found differing from their desired state (each then synced)",
            m.scan_drifted.clone(),
        );
        registry.register(
            "projects",
            "Projects by state: confirmed (AWS holds their desired state), pending (queued, never failed), failed (retried with backoff), held (failed too often, or their desired state cannot be computed)",
            m.projects.clone(),
        );
        registry.register(
            "queue_projects",
            "Projects waiting in the work queue, by why they are queued",
            m.queued.clone(),
        );
        registry.register(
            "project_failures",
            "Reconciles of a project that failed (each is retried with backoff)",
            m.project_failures.clone(),
        );
        registry.register(
            "build",
            "The running version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        // Every series that can exist is there from the start, at 0: a dashboard's rate() and
        // an alert's absent() then see a value before the first event.
        for kind in Drift::default().kinds().map(|(kind, _)| kind) {
            let _ = m.drift.get_or_create(&KindLabels { kind });
        }
        for service in [
            Service::Scim,
            Service::SsoAdmin,
            Service::Iam,
            Service::MeshStack,
        ] {
            let labels = ServiceLabels {
                service: service.label(),
            };
            let _ = m.retries.get_or_create(&labels);
            let _ = m.throttles.get_or_create(&labels);
        }
        for scope in ["all", "projects"] {
            for outcome in SyncOutcome::ALL {
                let _ = m.syncs.get_or_create(&SyncLabels {
                    scope,
                    outcome: outcome.label(),
                });
            }
        }
        for state in PROJECT_STATES {
            let _ = m.projects.get_or_create(&StateLabels { state });
        }
        for priority in QUEUE_PRIORITIES {
            let _ = m.queued.get_or_create(&PriorityLabels { priority });
        }
        // No leader election yet: every replica syncs, so each is its own leader.
        m.leader.set(1);
        Self {
            registry: root,
            ..m
        }
    }

    /// The OpenMetrics text `/metrics` serves.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// The same in Prometheus's text format 0.0.4, for a client that did not ask for
    /// OpenMetrics (`promtool check metrics`, `curl`): see [`text_004`].
    pub fn render_text(&self) -> String {
        text_004(&self.render())
    }

    /// Records what a plan found, before it is applied: `projects` is the sync's scope (`None`:
    /// everything), whose previous drift the plan replaces.
    pub fn record_drift(&self, plan: &Plan, projects: Option<&[ProjectKey]>) {
        let fresh = drift_by_project(plan);
        let mut by_project = self.by_project.lock().expect("metrics lock");
        match projects {
            None => {
                *by_project = fresh;
                let unresolved = plan
                    .findings
                    .iter()
                    .filter(|f| matches!(f, crate::finding::Finding::UnresolvedEuid { .. }))
                    .count();
                self.unresolved.set(unresolved as i64);
            }
            Some(projects) => {
                for p in projects {
                    by_project.remove(p);
                }
                by_project.extend(fresh);
            }
        }
        let mut total = Drift::default();
        for d in by_project.values() {
            total.add(d);
        }
        for (kind, value) in total.kinds() {
            self.drift
                .get_or_create(&KindLabels { kind })
                .set(value as i64);
        }
    }

    pub fn record_report(&self, plan: &Plan, report: &Report) {
        for outcome in &report.outcomes {
            let outcome_label = match outcome.status {
                Status::Ok => "ok",
                Status::Failed => "failed",
                Status::Skipped => "skipped",
            };
            self.operations
                .get_or_create(&OperationLabels {
                    kind: op_name(&plan.ops[outcome.op]),
                    outcome: outcome_label,
                })
                .inc();
        }
    }

    /// The account phase's outcome: steps still pending, accounts that failed.
    pub fn record_accounts(&self, pending_steps: usize, failures: usize) {
        self.account_steps.set(pending_steps as i64);
        self.account_failures.set(failures as i64);
    }

    /// The meshIdB phase's outcome: changes still pending, drift reported.
    pub fn record_mesh_idb(&self, pending: usize, findings: usize) {
        self.idb_pending.set(pending as i64);
        self.idb_findings.set(findings as i64);
    }

    /// Whether this replica may sync (leader election: it holds the lease).
    pub fn record_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The drift scan read `projects`, of which `drifted` differed; `oldest`: seconds since
    /// the oldest confirmation.
    pub fn record_scan(&self, projects: u64, drifted: u64) {
        self.scan_projects.inc_by(projects);
        self.scan_drifted.inc_by(drifted);
    }

    /// The age of the oldest confirmation (see `drift_scan_oldest_unconfirmed_seconds`).
    pub fn record_oldest_unconfirmed(&self, seconds: f64) {
        self.scan_oldest.set(seconds);
    }

    /// The findings of a read of everything, counted by kind; kinds seen before and absent
    /// now go to 0.
    pub fn record_findings(&self, findings: &std::collections::BTreeSet<crate::finding::Finding>) {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for finding in findings {
            *counts.entry(finding.kind().to_owned()).or_default() += 1;
        }
        let mut kinds = self.finding_kinds.lock().expect("metrics lock");
        kinds.extend(counts.keys().cloned());
        for kind in kinds.iter() {
            self.findings
                .get_or_create(&FindingLabels { kind: kind.clone() })
                .set(counts.get(kind).copied().unwrap_or(0));
        }
    }

    /// The crawl's last complete cycle (see `meshstack_crawl_cycle_seconds`).
    pub fn record_crawl_cycle(&self, seconds: f64) {
        self.crawl_cycle.set(seconds);
    }

    pub fn record_crawl_estimate(&self, seconds: f64) {
        self.crawl_estimate.set(seconds);
    }

    /// `None`: not every project was read yet.
    pub fn record_crawl_oldest(&self, seconds: Option<f64>) {
        self.crawl_oldest.set(seconds.unwrap_or(f64::NAN));
    }

    pub fn record_scan_cycle(&self, seconds: f64) {
        self.scan_cycle.set(seconds);
    }

    pub fn record_scan_estimate(&self, seconds: f64) {
        self.scan_estimate.set(seconds);
    }

    /// Projects per state (`confirmed`, `pending`, `failed`, `held`) and queued per priority.
    pub fn record_projects(&self, states: [usize; 5], queued: &[(&'static str, usize)]) {
        for (state, n) in PROJECT_STATES.into_iter().zip(states) {
            self.projects
                .get_or_create(&StateLabels { state })
                .set(n as i64);
        }
        for priority in QUEUE_PRIORITIES {
            let n = queued
                .iter()
                .find(|(p, _)| *p == priority)
                .map_or(0, |(_, n)| *n);
            self.queued
                .get_or_create(&PriorityLabels { priority })
                .set(n as i64);
        }
    }

    /// A project's reconcile failed.
    pub fn record_project_failure(&self) {
        self.project_failures.inc();
    }

    pub fn record_guard(&self, tripped: bool) {
        self.guard.set(i64::from(tripped));
    }

    pub fn record_removals_paused(&self, paused: bool) {
        self.removals_paused.set(i64::from(paused));
    }

    pub fn record_sync(&self, scoped: bool, outcome: SyncOutcome, seconds: f64) {
        self.syncs
            .get_or_create(&SyncLabels {
                scope: if scoped { "projects" } else { "all" },
                outcome: outcome.label(),
            })
            .inc();
        self.duration.observe(seconds);
        // Only a run of everything: scoped runs succeeding must not hide runs of everything that
        // keep failing (`AwsReplicatorNoRecentSuccess` watches this).
        if outcome == SyncOutcome::Ok && !scoped {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }
}

/// One `status` vocabulary for every service: `ok` for an answer that is a success (SCIM's 2xx,
/// an SDK call's result), `throttled` for AWS's throttling (429 or its error codes),
/// `transport` when no answer came, else what AWS answered: the HTTP status for SCIM, the
/// error code for the SDK services.
fn status_label(status: &str, throttled: bool) -> &str {
    if throttled {
        "throttled"
    } else if status.len() == 3
        && status.starts_with('2')
        && status.bytes().all(|b| b.is_ascii_digit())
    {
        "ok"
    } else {
        status
    }
}

/// `GetRole`, not `iam:GetRole`: the `service` label says which API it is.
fn plain_operation(operation: &str) -> &str {
    operation.rsplit(':').next().unwrap_or(operation)
}

impl RequestObserver for Metrics {
    fn request(&self, service: Service, operation: &str, status: &str) {
        let throttled = matches!(
            status,
            "429" | "ThrottlingException" | "Throttling" | "RequestLimitExceeded"
        );
        self.requests
            .get_or_create(&RequestLabels {
                service: service.label(),
                operation: plain_operation(operation).to_owned(),
                status: status_label(status, throttled).to_owned(),
            })
            .inc();
        if throttled {
            self.throttles
                .get_or_create(&ServiceLabels {
                    service: service.label(),
                })
                .inc();
        }
    }

    fn retry(&self, service: Service, _operation: &str) {
        self.retries
            .get_or_create(&ServiceLabels {
                service: service.label(),
            })
            .inc();
    }
}

/// OpenMetrics text as Prometheus's text format 0.0.4 says it: a counter's and an info's
/// `# HELP`/`# TYPE` name their samples (`x_total`, `x_info`; an info is a gauge there), and
/// there is no `# UNIT`, no `_created` sample and no `# EOF`. prometheus-client writes only
/// OpenMetrics, and every family here is a counter, gauge, info or histogram.
pub fn text_004(openmetrics: &str) -> String {
    let mut kinds: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            kinds.insert(name, kind);
        }
    }
    let renamed = |name: &str| match kinds.get(name) {
        Some(&"counter") => format!("{name}_total"),
        Some(&"info") => format!("{name}_info"),
        _ => name.to_owned(),
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", renamed(name)));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = if kind == "info" { "gauge" } else { kind };
            out.push_str(&format!("# TYPE {} {kind}\n", renamed(name)));
            continue;
        }
        let sample = line.split(['{', ' ']).next().unwrap_or("");
        if let Some(family) = sample.strip_suffix("_created")
            && matches!(kinds.get(family), Some(&"counter" | &"histogram"))
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_shows_before_the_first_event() {
        let text = Metrics::new().render();
        for family in [
            "aws_replicator_drift",
            "aws_replicator_api_retries",
            "aws_replicator_api_throttles",
            "aws_replicator_syncs",
            "aws_replicator_sync_duration_seconds",
            "aws_replicator_last_success_timestamp_seconds",
            "aws_replicator_build",
            "aws_replicator_deletion_guard_tripped",
            "aws_replicator_removals_paused",
            "aws_replicator_account_steps_pending",
            "aws_replicator_account_failures",
            "aws_replicator_mesh_idb_changes_pending",
            "aws_replicator_mesh_idb_findings",
            "aws_replicator_leader",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}:\n{text}"
            );
        }
        assert!(text.contains("aws_replicator_drift{kind=\"member_extra\"} 0"));
        assert!(text.contains("\naws_replicator_leader 1\n"), "{text}");
    }

    /// The process's own metrics, read from `/proc/self` at each scrape, under their usual
    /// names; promtool checks the whole scrape in `tests/deploy.rs`.
    #[test]
    fn the_process_shows_its_memory_cpu_and_file_descriptors() {
        let text = Metrics::new().render();
        let value = |name: &str| -> f64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name}:\n{text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1024.0 * 1024.0);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_threads") >= 1.0);
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_start_time_seconds") > 1.7e9);
        assert!(
            text.contains("# TYPE process_cpu_seconds counter"),
            "{text}"
        );
    }

    #[test]
    fn the_text_format_names_counters_and_infos_by_their_samples() {
        let text = text_004(
            "# HELP a_syncs Syncs.\n# TYPE a_syncs counter\na_syncs_total{x=\"1\"} 2\na_syncs_created 1.5e9\n\
             # HELP a_build Build.\n# TYPE a_build info\na_build_info{version=\"0.1.0\"} 1\n\
             # HELP a_seconds Age.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\na_seconds 3.5\n# EOF\n",
        );
        assert_eq!(
            text,
            "# HELP a_syncs_total Syncs.\n# TYPE a_syncs_total counter\na_syncs_total{x=\"1\"} 2\n\
             # HELP a_build_info Build.\n# TYPE a_build_info gauge\na_build_info{version=\"0.1.0\"} 1\n\
             # HELP a_seconds Age.\n# TYPE a_seconds gauge\na_seconds 3.5\n"
        );
    }

    #[test]
    fn only_a_run_of_everything_counts_as_the_last_success() {
        let metrics = Metrics::new();
        let last = |m: &Metrics| {
            let text = m.render();
            let line = text
                .lines()
                .find(|l| l.starts_with("aws_replicator_last_success_timestamp_seconds "))
                .unwrap()
                .to_owned();
            line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
        };
        metrics.record_sync(true, SyncOutcome::Ok, 1.0);
        assert_eq!(
            last(&metrics),
            0.0,
            "a scoped run hid failing runs of everything"
        );
        metrics.record_sync(false, SyncOutcome::Failed, 1.0);
        assert_eq!(last(&metrics), 0.0);
        metrics.record_sync(false, SyncOutcome::Ok, 1.0);
        assert!(last(&metrics) > 1.7e9);
    }

    fn gauge(metrics: &Metrics, kind: &str) -> i64 {
        let line = format!("aws_replicator_drift{{kind=\"{kind}\"}} ");
        let text = metrics.render();
        let at = text.find(&line).expect("the gauge exists") + line.len();
        text[at..].lines().next().unwrap().parse().unwrap()
    }

    /// A full sync replaces the drift; a scoped one replaces only its projects' share.
    #[test]
    fn drift_follows_full_and_scoped_plans() {
        use crate::desired::{Scope, Settings, desired};
        let config =
            crate::config::Config::load(std::path::Path::new("config/demo.dhall")).unwrap();
        let snapshot = crate::snapshot::Snapshot::from_file(std::path::Path::new(
            "config/sample-snapshot.json",
        ))
        .unwrap();
        let settings = Settings::new(&config, config.sso.as_ref().unwrap());
        let d = desired(&snapshot, &settings, &Scope::All);
        let full = crate::plan::plan(&d, &crate::observed::Observed::default());
        let metrics = Metrics::new();
        metrics.record_drift(&full, None);
        let groups = d.groups.len() as i64;
        assert_eq!(gauge(&metrics, "group_missing"), groups);

        // One project synced on its own: only its groups leave the gauge.
        let project = d.groups.values().next().unwrap().identity.project.clone();
        let in_project = d
            .groups
            .values()
            .filter(|g| g.identity.project == project)
            .count() as i64;
        let scoped = d.within(&[project.clone()].into());
        let synced = crate::plan::plan(
            &scoped,
            &crate::plan::apply_in_memory(
                &crate::plan::plan(&scoped, &Default::default()),
                &Default::default(),
            ),
        );
        assert!(synced.ops.is_empty());
        metrics.record_drift(&synced, Some(&[project]));
        assert_eq!(gauge(&metrics, "group_missing"), groups - in_project);

        let all_synced = crate::plan::plan(
            &d,
            &crate::plan::apply_in_memory(&full, &Default::default()),
        );
        metrics.record_drift(&all_synced, None);
        assert_eq!(gauge(&metrics, "group_missing"), 0);
        assert_eq!(gauge(&metrics, "member_missing"), 0);
    }
}
