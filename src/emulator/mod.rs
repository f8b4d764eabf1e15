//! An emulator of AWS IAM Identity Center for tests and the demo: one store served as AWS's
//! SCIM subset (sso-admin and identitystore follow), with a request log, counters and
//! injectable faults.
//!
//! AWS serves SCIM, identitystore and sso-admin from one store with the same ids; no public
//! emulator does, so end-to-end tests that write a group over SCIM and assign it over
//! sso-admin run against this one. It listens on loopback only.

mod scim;
pub mod store;

use crate::secret::Secret;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{State as StoreState, Store};

pub use scim::MAX_MEMBER_CHANGES;

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The tenant id in the SCIM path: `/{tenant}/scim/v2`.
    pub tenant: String,
    pub token: Secret,
    pub instance_arn: String,
    pub identity_store_id: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            tenant: "emulator-tenant".into(),
            token: Secret::new("emulator-token"),
            instance_arn: "arn:aws:sso:::instance/ssoins-123456789".into(),
            identity_store_id: "d-9067d0a3c1".into(),
        }
    }
}

/// An API family, as AWS counts throttling quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
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
}

/// A fault to answer instead of the real response, `times` times, to requests of `family`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub times: usize,
}

pub struct Shared {
    pub config: EmulatorConfig,
    pub store: Mutex<Store>,
    log: Mutex<Vec<LoggedRequest>>,
    faults: Mutex<Vec<Fault>>,
    /// SCIM cursor → (resource kind, filter, offset).
    cursors: Mutex<HashMap<String, (String, String, usize)>>,
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
                config,
                store: Mutex::new(Store::new(&suffix)),
                log: Mutex::new(Vec::new()),
                faults: Mutex::new(Vec::new()),
                cursors: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    pub fn router(&self) -> Router {
        let control = Router::new()
            .route("/_emulator/state", get(get_state).put(put_state))
            .route(
                "/_emulator/requests",
                get(get_requests).delete(delete_requests),
            )
            .route(
                "/_emulator/faults",
                axum::routing::post(post_fault).delete(delete_faults),
            )
            .with_state(self.shared.clone());
        scim::router(self.shared.clone())
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

    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().expect("fault lock").push(fault);
    }

    /// Adds a user, as the customer's IdP would provision it; returns its id.
    pub fn add_user(&self, user_name: &str) -> String {
        let mut store = self.shared.store.lock().expect("store lock");
        let id = store.new_id();
        let (given, family) = user_name.split_once('@').unwrap_or((user_name, "User"));
        store.users.insert(
            id.clone(),
            store::User {
                id: id.clone(),
                user_name: user_name.to_owned(),
                external_id: None,
                display_name: user_name.to_owned(),
                given_name: given.to_owned(),
                family_name: family.to_owned(),
                email: Some(user_name.to_owned()).filter(|n| n.contains('@')),
            },
        );
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

/// Logs every request, and answers a matching fault instead of the handler.
async fn observe(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let family = Family::Scim;
    let endpoint = format!(
        "{method} {}",
        route.strip_prefix("/{tenant}/scim/v2").unwrap_or(&route)
    );
    let fault = {
        let mut faults = shared.faults.lock().expect("fault lock");
        let found = faults
            .iter_mut()
            .find(|f| f.times > 0 && f.family == family && endpoint.contains(&f.endpoint));
        found.map(|f| {
            f.times -= 1;
            f.clone()
        })
    };
    let response = match fault {
        Some(f) => {
            if f.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
            }
            if f.status == 200 {
                next.run(request).await
            } else {
                let status =
                    StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut response = scim::error(status, "Too many requests exceeded the limits.");
                if let Some(secs) = f.retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", secs.to_string().parse().expect("digits"));
                }
                response
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
    });
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

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC, as AWS's SCIM errors carry it.
pub(crate) fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Compares secrets without leaking where they differ through timing.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
