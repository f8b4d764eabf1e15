//! An emulator of AWS IAM Identity Center for tests and the demo: one store served as AWS's
//! SCIM subset and as sso-admin (AWS JSON 1.1), with a request log, counters, a token bucket
//! per API family and injectable faults.
//!
//! AWS serves SCIM, identitystore and sso-admin from one store with the same ids; no public
//! emulator does, so end-to-end tests that write a group over SCIM and assign it over
//! sso-admin run against this one. It listens on loopback only.

mod scim;
mod sso_admin;
pub mod store;

use crate::secret::Secret;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{State as StoreState, Store};

pub use scim::MAX_MEMBER_CHANGES;
pub use sso_admin::MAX_IN_FLIGHT;

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The tenant id in the SCIM path: `/{tenant}/scim/v2`.
    pub tenant: String,
    pub token: Secret,
    pub instance_arn: String,
    pub identity_store_id: String,
    /// How long an account assignment operation stays IN_PROGRESS.
    pub operation_delay: Duration,
    /// Requests per second per API family before throttling (AWS: 20); `None` never throttles.
    pub rate_limit: Option<f64>,
    /// The sso-admin operations the caller's IAM policy allows (`None`: every one); any other
    /// is answered `AccessDeniedException`, as AWS answers a call its policy does not allow.
    /// [`SEED_POLICY`] is the seed's management role.
    pub sso_admin_policy: Option<BTreeSet<String>>,
    /// AWS's choices that its documentation leaves open, each switchable.
    pub quirks: Quirks,
    /// Groups an identity store may hold (AWS: 100,000, not raisable); a create beyond is
    /// refused.
    pub max_groups: usize,
}

/// AWS's quota of groups per identity store (aws-sso.md §A.11, the limits page).
pub const AWS_MAX_GROUPS: usize = 100_000;

/// The sso-admin actions the seed's IAM policy gives the management role
/// (`OrgManagementAccessSSO`), and nothing else.
pub const SEED_POLICY: [&str; 3] = [
    "ListAccountAssignments",
    "CreateAccountAssignment",
    "DescribeAccountAssignmentCreationStatus",
];

/// What AWS does where its documentation is silent (aws-sso.md §F.6, docs/aws-wire-reference.md
/// §5.10). The defaults are the lenient reading; a client must pass under both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// `userName eq "…"` matches only the exact case (default: ignoring case, as the schema's
    /// `caseExact: false` suggests).
    pub user_name_case_exact: bool,
    /// Two groups may have display names that differ only in case (default: a 409).
    pub display_name_case_exact: bool,
    /// A PATCH with more than one operation is refused with 400 (default: its operations are
    /// applied and their member changes counted together against the 100).
    pub one_operation_per_patch: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            tenant: "emulator-tenant".into(),
            token: Secret::new("emulator-token"),
            instance_arn: "arn:aws:sso:::instance/ssoins-123456789".into(),
            identity_store_id: "d-9067d0a3c1".into(),
            operation_delay: Duration::from_millis(200),
            rate_limit: Some(20.0),
            sso_admin_policy: None,
            quirks: Quirks::default(),
            max_groups: AWS_MAX_GROUPS,
        }
    }
}

/// An API family, as AWS counts throttling quotas.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    #[default]
    Scim,
    SsoAdmin,
    Identitystore,
}

/// One request as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub family: Family,
    pub method: String,
    /// The route or operation, e.g. `PATCH /Groups/{id}`.
    pub endpoint: String,
    /// Path and query as sent.
    pub target: String,
    pub status: u16,
    /// `User-Agent` (and the SDK's `x-amz-user-agent`): which client, and which replica, sent it.
    #[serde(default)]
    pub user_agent: String,
}

/// A fault to answer instead of the real response, `times` times, to requests of `family`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fault {
    pub family: Family,
    /// Only requests whose endpoint contains this text (all if empty).
    #[serde(default)]
    pub endpoint: String,
    pub status: u16,
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default)]
    pub latency_ms: u64,
    /// Send the status line, then break the connection instead of sending a body.
    #[serde(default)]
    pub drop_connection: bool,
    /// With `drop_connection`: the request takes effect first, so the client never learns
    /// that it did (the case that makes a retried create meet its own group).
    #[serde(default)]
    pub processed: bool,
    /// Strike only every `every`-th matching request (0 or 1: each one), so that a share of
    /// the traffic fails: five faults with `every = 50` fail 10 % of it.
    #[serde(default)]
    pub every: usize,
    /// sso-admin and identitystore: answer with this AWS error code (JSON 1.1
    /// `{"__type": code, "Message": …}`, HTTP `status`, 400 when that is 0 or 200), e.g.
    /// `ResourceNotFoundException` for a status check right after a write.
    #[serde(default)]
    pub error: Option<String>,
    /// Answer as usual, but with this cursor for the next page (SCIM `nextCursor`, sso-admin
    /// and identitystore `NextToken`): a listing that repeats a cursor.
    #[serde(default)]
    pub next_cursor: Option<String>,
    pub times: usize,
    /// Matching requests seen so far, for `every`.
    #[serde(skip)]
    pub seen: usize,
}

/// A response body that fails at once: the client sees the connection break mid-response.
struct BrokenBody;

impl http_body::Body for BrokenBody {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection dropped by an injected fault",
        ))))
    }
}

pub struct Shared {
    pub config: EmulatorConfig,
    /// The sso-admin operations allowed (`None`: all); starts as the config's.
    policy: Mutex<Option<BTreeSet<String>>>,
    pub store: Mutex<Store>,
    log: Mutex<Vec<LoggedRequest>>,
    faults: Mutex<Vec<Fault>>,
    /// SCIM cursor → where its listing stands.
    cursors: Mutex<HashMap<String, Cursor>>,
    operations: Mutex<sso_admin::Operations>,
    operation_delay: Duration,
    /// Reasons with which the next account assignment operations will fail.
    assignment_failures: Mutex<Vec<String>>,
    buckets: Mutex<HashMap<Family, Bucket>>,
    /// The most account assignment operations ever IN_PROGRESS at once.
    peak_in_flight: std::sync::atomic::AtomicUsize,
    /// Writes refused with ConflictException because the account was busy.
    conflicts: std::sync::atomic::AtomicUsize,
    /// Resources rendered into SCIM listing pages: what a page costs.
    rendered: std::sync::atomic::AtomicUsize,
}

/// Where a SCIM listing stands: (resource kind, filter, the last id shown, items shown so far).
type Cursor = (String, String, String, usize);

/// A token bucket: `rate` tokens a second, at most one second's worth saved up.
struct Bucket {
    tokens: f64,
    last: tokio::time::Instant,
}

impl Shared {
    fn take_assignment_failure(&self) -> Option<String> {
        let mut failures = self.assignment_failures.lock().expect("failure lock");
        (!failures.is_empty()).then(|| failures.remove(0))
    }

    /// Whether a request of `family` is within the rate; spends a token if so.
    fn admit(&self, family: Family) -> bool {
        let Some(rate) = self.config.rate_limit else {
            return true;
        };
        let now = tokio::time::Instant::now();
        let mut buckets = self.buckets.lock().expect("bucket lock");
        let bucket = buckets.entry(family).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A handle on an emulator: its store, its log and its faults, in process.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl Emulator {
    pub fn new(config: EmulatorConfig) -> Self {
        let suffix = config
            .identity_store_id
            .trim_start_matches("d-")
            .chars()
            .chain(std::iter::repeat('0'))
            .take(10)
            .collect::<String>();
        Self {
            shared: Arc::new(Shared {
                operation_delay: config.operation_delay,
                policy: Mutex::new(config.sso_admin_policy.clone()),
                config,
                operations: Mutex::default(),
                assignment_failures: Mutex::new(Vec::new()),
                buckets: Mutex::new(HashMap::new()),
                store: Mutex::new(Store::new(&suffix)),
                log: Mutex::new(Vec::new()),
                faults: Mutex::new(Vec::new()),
                peak_in_flight: Default::default(),
                conflicts: Default::default(),
                rendered: Default::default(),
                cursors: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    pub fn router(&self) -> Router {
        // A state of 33,000 projects (99,000 groups with their members) is tens of megabytes;
        // axum's default limit of 2 MB would refuse it.
        let control = Router::new()
            .route(
                "/_emulator/state",
                get(get_state)
                    .put(put_state)
                    .layer(axum::extract::DefaultBodyLimit::max(1 << 30)),
            )
            .route(
                "/_emulator/requests",
                get(get_requests).delete(delete_requests),
            )
            .route(
                "/_emulator/faults",
                axum::routing::post(post_fault).delete(delete_faults),
            )
            .with_state(self.shared.clone());
        let sso_admin = Router::new()
            .route("/", axum::routing::post(sso_admin::handle))
            .with_state(self.shared.clone());
        scim::router(self.shared.clone())
            .merge(sso_admin)
            .layer(axum::middleware::from_fn_with_state(
                self.shared.clone(),
                observe,
            ))
            .merge(control)
    }

    /// Serves on `127.0.0.1:port` (0 for a free port) until the task is dropped.
    pub async fn serve(&self, port: u16) -> std::io::Result<RunningEmulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = self.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RunningEmulator {
            addr,
            task,
            emulator: self.clone(),
        })
    }

    pub fn load(&self, state: StoreState) {
        self.shared.store.lock().expect("store lock").load(state);
    }

    pub fn dump(&self) -> StoreState {
        self.shared.store.lock().expect("store lock").dump()
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log.lock().expect("log lock").clone()
    }

    pub fn clear_requests(&self) {
        self.shared.log.lock().expect("log lock").clear();
    }

    /// Requests per `family method endpoint`, and per family.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        counts(&self.requests())
    }

    /// The next `n` account assignment operations end FAILED with `reason`.
    pub fn fail_next_assignments(&self, n: usize, reason: &str) {
        let mut failures = self
            .shared
            .assignment_failures
            .lock()
            .expect("failure lock");
        failures.extend(std::iter::repeat_n(reason.to_owned(), n));
    }

    /// Account assignment operations still IN_PROGRESS.
    pub fn in_flight(&self) -> usize {
        sso_admin::settle(&self.shared);
        let ops = self.shared.operations.lock().expect("operations lock");
        ops.in_progress().count()
    }

    /// The most account assignment operations that were ever IN_PROGRESS at once.
    pub fn peak_in_flight(&self) -> usize {
        self.shared
            .peak_in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Assignment writes refused because another one was in progress on the same account.
    pub fn conflicts(&self) -> usize {
        self.shared
            .conflicts
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Allows only these sso-admin operations from now on (`None`: all), as an IAM policy
    /// that names `sso:<operation>` for each would.
    pub fn set_sso_admin_policy<S: Into<String>>(
        &self,
        allowed: Option<impl IntoIterator<Item = S>>,
    ) {
        *self.shared.policy.lock().expect("policy lock") =
            allowed.map(|a| a.into_iter().map(Into::into).collect());
    }

    /// Makes `arn` one of the instance's permission sets. From the first one on, an assignment
    /// to a permission set the instance does not have is refused, as AWS refuses it.
    pub fn add_permission_set(&self, arn: &str) {
        let mut store = self.shared.store.lock().expect("store lock");
        store
            .permission_sets
            .get_or_insert_with(Default::default)
            .insert(arn.to_owned());
    }

    /// Makes `account` a member of the organization. From the first one on, an assignment to
    /// an account outside the organization is refused, as AWS refuses it.
    pub fn add_account(&self, account: &str) {
        let mut store = self.shared.store.lock().expect("store lock");
        store
            .accounts
            .get_or_insert_with(Default::default)
            .insert(account.to_owned());
    }

    /// Users and groups rendered into SCIM listing pages so far: a page renders its own
    /// resources only, whatever the store holds.
    pub fn rendered(&self) -> usize {
        self.shared
            .rendered
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().expect("fault lock").push(fault);
    }

    /// Adds a group directly (for test set-up); returns its id.
    pub fn add_group(&self, display_name: &str) -> String {
        let mut store = self.shared.store.lock().expect("store lock");
        let id = store.new_id();
        store.insert_group(store::Group {
            id: id.clone(),
            display_name: display_name.to_owned(),
            external_id: None,
            members: Default::default(),
        });
        id
    }

    /// Adds a user, as the customer's IdP would provision it; returns its id.
    pub fn add_user(&self, user_name: &str) -> String {
        let mut store = self.shared.store.lock().expect("store lock");
        let id = store.new_id();
        let (given, family) = user_name.split_once('@').unwrap_or((user_name, "User"));
        store.insert_user(store::User {
            id: id.clone(),
            user_name: user_name.to_owned(),
            external_id: None,
            display_name: user_name.to_owned(),
            given_name: given.to_owned(),
            family_name: family.to_owned(),
            email: Some(user_name.to_owned()).filter(|n| n.contains('@')),
        });
        id
    }
}

pub struct RunningEmulator {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    pub emulator: Emulator,
}

impl RunningEmulator {
    /// The SCIM endpoint, as the AWS console shows it (with a trailing slash).
    pub fn scim_endpoint(&self) -> String {
        format!(
            "http://{}/{}/scim/v2/",
            self.addr,
            self.emulator.config().tenant
        )
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn counts(log: &[LoggedRequest]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in log {
        let family = serde_json::to_value(r.family).expect("enum serializes");
        let family = family.as_str().unwrap_or_default().to_owned();
        *out.entry(format!("{family} {}", r.endpoint)).or_default() += 1;
        *out.entry(family).or_default() += 1;
    }
    out
}

/// Logs every request, throttles beyond the family's rate, and answers a matching fault
/// instead of the handler.
async fn observe(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let user_agent = ["user-agent", "x-amz-user-agent"]
        .iter()
        .filter_map(|h| request.headers().get(*h)?.to_str().ok())
        .collect::<Vec<_>>()
        .join(" ");
    let amz_target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (family, endpoint) = if let Some(op) = amz_target.strip_prefix("SWBExternalService.") {
        (Family::SsoAdmin, op.to_owned())
    } else if let Some(op) = amz_target.strip_prefix("AWSIdentityStore.") {
        (Family::Identitystore, op.to_owned())
    } else {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| request.uri().path().to_owned());
        let route = route
            .strip_prefix("/{tenant}/scim/v2")
            .unwrap_or(&route)
            .to_owned();
        (Family::Scim, format!("{method} {route}"))
    };
    let fault = {
        let mut faults = shared.faults.lock().expect("fault lock");
        faults
            .iter_mut()
            .filter(|f| f.times > 0 && f.family == family && endpoint.contains(&f.endpoint))
            .find_map(|f| {
                f.seen += 1;
                (f.every <= 1 || f.seen % f.every == 0).then(|| {
                    f.times -= 1;
                    f.clone()
                })
            })
    };
    let response = match fault {
        _ if !shared.admit(family) => fault_response(family, 429, None),
        Some(f) => {
            if f.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
            }
            if f.drop_connection {
                if f.processed {
                    drop(next.run(request).await);
                }
                Response::new(axum::body::Body::new(BrokenBody))
            } else if let Some(cursor) = &f.next_cursor {
                let key = match family {
                    Family::Scim => "nextCursor",
                    _ => "NextToken",
                };
                with_next_cursor(next.run(request).await, key, cursor).await
            } else if let (Some(code), Family::SsoAdmin | Family::Identitystore) =
                (&f.error, family)
            {
                let mut response = sso_admin::error(code, &error_message(code));
                if let Ok(status) = StatusCode::from_u16(f.status)
                    && !status.is_success()
                {
                    *response.status_mut() = status;
                }
                response
            } else if f.status == 200 {
                next.run(request).await
            } else {
                fault_response(family, f.status, f.retry_after)
            }
        }
        None => next.run(request).await,
    };
    shared.log.lock().expect("log lock").push(LoggedRequest {
        family,
        method,
        endpoint,
        target,
        status: response.status().as_u16(),
        user_agent,
    });
    response
}

/// The message of an injected JSON 1.1 error: AWS's wording where it is known.
fn error_message(code: &str) -> String {
    match code {
        "ResourceNotFoundException" => "The specified resource does not exist.".into(),
        "AccessDeniedException" => {
            "User is not authorized to perform this action with the given credentials.".into()
        }
        other => format!("{other} (injected fault)"),
    }
}

/// `response` with its JSON body's next-page cursor (`key`) set to `cursor`.
async fn with_next_cursor(response: Response, key: &str, cursor: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    value[key] = serde_json::Value::String(cursor.to_owned());
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(value.to_string()))
}

/// A fault as each family shows it: SCIM answers with the status and AWS's SCIM error body;
/// sso-admin and identitystore throttle with HTTP 400 `ThrottlingException` and fail with
/// `InternalServerException`.
fn fault_response(family: Family, status: u16, retry_after: Option<u64>) -> Response {
    let mut response = match family {
        Family::Scim => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let detail = if status == StatusCode::TOO_MANY_REQUESTS {
                "Too many requests exceeded the limits."
            } else {
                "The request processing has failed because of an unknown error."
            };
            scim::error(status, detail)
        }
        _ => match status {
            400 | 429 => sso_admin::error("ThrottlingException", "Rate exceeded"),
            409 => sso_admin::error(
                "ConflictException",
                "Operation failed because another operation is in progress. Retry later.",
            ),
            _ => sso_admin::error(
                "InternalServerException",
                "The request processing has failed.",
            ),
        },
    };
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", secs.to_string().parse().expect("digits"));
    }
    response
}

async fn get_state(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.store.lock().expect("store lock").dump()).into_response()
}

async fn put_state(State(shared): State<Arc<Shared>>, body: axum::Json<StoreState>) -> Response {
    shared.store.lock().expect("store lock").load(body.0);
    StatusCode::NO_CONTENT.into_response()
}

async fn get_requests(State(shared): State<Arc<Shared>>) -> Response {
    let log = shared.log.lock().expect("log lock").clone();
    axum::Json(serde_json::json!({ "counts": counts(&log), "requests": log })).into_response()
}

async fn delete_requests(State(shared): State<Arc<Shared>>) -> Response {
    shared.log.lock().expect("log lock").clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn post_fault(State(shared): State<Arc<Shared>>, body: axum::Json<Fault>) -> Response {
    shared.faults.lock().expect("fault lock").push(body.0);
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_faults(State(shared): State<Arc<Shared>>) -> Response {
    shared.faults.lock().expect("fault lock").clear();
    StatusCode::NO_CONTENT.into_response()
}

/// A request id in AWS's format (a UUID), unique within the process.
pub(crate) fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// Now as epoch seconds, the JSON 1.1 wire format of timestamps.
pub(crate) fn epoch_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC, as AWS's SCIM errors carry it.
pub(crate) fn timestamp() -> String {
    let now = std::time::SystemTime::now();
    let millis = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_millis();
    let seconds = aws_sdk_ssoadmin::primitives::DateTime::from_secs(
        aws_sdk_ssoadmin::primitives::DateTime::from(now).secs(),
    )
    .fmt(aws_sdk_ssoadmin::primitives::DateTimeFormat::DateTime)
    .expect("the clock is within RFC 3339's range");
    // `2026-11-25T12:00:00Z` → `2026-11-25 12:00:00.123`
    format!(
        "{}.{millis:03}",
        seconds.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

/// Compares secrets without leaking where they differ through timing.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token bucket on paused time: a second's worth at once, then one token per
    /// 1/rate seconds, never more than a second's worth saved up.
    #[tokio::test(start_paused = true)]
    async fn the_bucket_admits_a_seconds_worth_then_the_rate() {
        let emulator = Emulator::new(EmulatorConfig {
            rate_limit: Some(20.0),
            ..EmulatorConfig::default()
        });
        let shared = &emulator.shared;
        let burst = (0..100).filter(|_| shared.admit(Family::Scim)).count();
        assert_eq!(burst, 20);
        assert!(
            shared.admit(Family::SsoAdmin),
            "each family has its own bucket"
        );
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!((0..100).filter(|_| shared.admit(Family::Scim)).count(), 10);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!((0..100).filter(|_| shared.admit(Family::Scim)).count(), 20);
    }
}
