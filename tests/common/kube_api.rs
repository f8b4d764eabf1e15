//! A Kubernetes API peer for leader election, following the API reference for the calls the
//! replicator makes (no kube-apiserver can be installed here): Leases in
//! `coordination.k8s.io/v1` (GET, POST → 201 or 409 AlreadyExists, PUT guarded by
//! `metadata.resourceVersion` → 409 Conflict when stale, PATCH as a JSON merge patch) and a
//! JSON merge patch of a pod's labels. Every object write bumps one resourceVersion counter, as etcd's revision does.
//! Errors are `Status` objects. It records who held the lease when, and every label change.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub const TOKEN: &str = "kube-test-token";

#[derive(Default)]
pub struct World {
    revision: u64,
    leases: BTreeMap<(String, String), Value>,
    pub pods: BTreeMap<String, BTreeMap<String, String>>,
    /// (when, holder) each time a write changed the lease's holder.
    pub holders: Vec<(Instant, Option<String>)>,
    pub conflicts: usize,
}

pub struct KubeApi {
    pub url: String,
    pub world: Arc<Mutex<World>>,
}

impl KubeApi {
    pub async fn start() -> Self {
        let world = Arc::new(Mutex::new(World::default()));
        let app = Router::new()
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
                axum::routing::post(create),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}",
                get(read).put(replace).patch(patch_lease),
            )
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}",
                axum::routing::patch(patch_pod),
            )
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, world }
    }

    /// A kubeconfig that points at this peer, for `KUBECONFIG`.
    pub fn kubeconfig(&self, dir: &std::path::Path, namespace: &str) -> std::path::PathBuf {
        let path = dir.join("kubeconfig.yaml");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n\
             users:\n- name: test\n  user:\n    token: {TOKEN}\ncontexts:\n- name: test\n  context:\n\
             \x20   cluster: test\n    user: test\n    namespace: {namespace}\ncurrent-context: test\n",
            url = self.url
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Who holds `name` now.
    pub fn holder(&self, namespace: &str, name: &str) -> Option<String> {
        let world = self.world.lock().unwrap();
        let lease = world.leases.get(&(namespace.to_owned(), name.to_owned()))?;
        lease["spec"]["holderIdentity"]
            .as_str()
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
    }

    /// Writes `name` as a leader would that holds it and renews it now (a leader the test
    /// plays), with `annotations` merged in.
    pub fn hold(&self, namespace: &str, name: &str, holder: &str, annotations: Value) {
        let mut world = self.world.lock().unwrap();
        let key = (namespace.to_owned(), name.to_owned());
        let mut lease = world.leases.get(&key).cloned().unwrap_or_else(|| json!({}));
        let created = !world.leases.contains_key(&key);
        let now = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
            .to_string();
        merge(
            &mut lease,
            &json!({
                "metadata": { "annotations": annotations },
                "spec": { "holderIdentity": holder, "leaseDurationSeconds": 4,
                          "acquireTime": now, "renewTime": now, "leaseTransitions": 0 }
            }),
        );
        store(&mut world, key, lease, created);
    }

    /// When the lease last changed hands, and to whom.
    pub fn last_change_of_holder(&self) -> Option<(Instant, Option<String>)> {
        self.world.lock().unwrap().holders.last().cloned()
    }

    pub fn annotation(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let world = self.world.lock().unwrap();
        let lease = world.leases.get(&(namespace.to_owned(), name.to_owned()))?;
        lease["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_owned)
    }

    pub fn label(&self, pod: &str, key: &str) -> Option<String> {
        self.world.lock().unwrap().pods.get(pod)?.get(key).cloned()
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

fn unauthorized() -> Response {
    status(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized".into(),
    )
}

async fn read(
    State(world): State<Arc<Mutex<World>>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    match world.lock().unwrap().leases.get(&(ns, name.clone())) {
        Some(lease) => axum::Json(lease.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("leases.coordination.k8s.io \"{name}\" not found"),
        ),
    }
}

fn holder_of(lease: &Value) -> Option<String> {
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// Stores `lease` under a new revision and notes a change of holder.
fn store(world: &mut World, key: (String, String), mut lease: Value, created: bool) -> Value {
    world.revision += 1;
    let before = world.leases.get(&key).and_then(holder_of);
    lease["apiVersion"] = json!("coordination.k8s.io/v1");
    lease["kind"] = json!("Lease");
    lease["metadata"]["name"] = json!(key.1);
    lease["metadata"]["namespace"] = json!(key.0);
    lease["metadata"]["resourceVersion"] = json!(world.revision.to_string());
    if created {
        lease["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", world.revision));
        lease["metadata"]["creationTimestamp"] = json!("2026-12-02T00:00:00Z");
    }
    let after = holder_of(&lease);
    if created || before != after {
        world.holders.push((Instant::now(), after));
    }
    world.leases.insert(key, lease.clone());
    lease
}

async fn create(
    State(world): State<Arc<Mutex<World>>>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    axum::Json(lease): axum::Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let Some(name) = lease["metadata"]["name"].as_str().map(str::to_owned) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name: Required value".into(),
        );
    };
    let mut world = world.lock().unwrap();
    let key = (ns, name.clone());
    if world.leases.contains_key(&key) {
        world.conflicts += 1;
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("leases.coordination.k8s.io \"{name}\" already exists"),
        );
    }
    let stored = store(&mut world, key, lease, true);
    (StatusCode::CREATED, axum::Json(stored)).into_response()
}

/// The lease a write goes to: 404 when there is none, 409 when the write names a
/// `metadata.resourceVersion` that is not the lease's (optimistic concurrency).
fn current(
    world: &mut World,
    key: &(String, String),
    sent: &Value,
) -> Result<Value, Box<Response>> {
    let name = &key.1;
    let Some(current) = world.leases.get(key).cloned() else {
        return Err(Box::new(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("leases.coordination.k8s.io \"{name}\" not found"),
        )));
    };
    let version = sent["metadata"]["resourceVersion"].as_str();
    if version.is_some_and(|rv| Some(rv) != current["metadata"]["resourceVersion"].as_str()) {
        world.conflicts += 1;
        return Err(Box::new(status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the \
                 object has been modified; please apply your changes to the latest version and \
                 try again"
            ),
        )));
    }
    Ok(current)
}

async fn replace(
    State(world): State<Arc<Mutex<World>>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    axum::Json(lease): axum::Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let mut world = world.lock().unwrap();
    let key = (ns, name);
    let current = match current(&mut world, &key, &lease) {
        Ok(current) => current,
        Err(refused) => return *refused,
    };
    let mut lease = lease;
    lease["metadata"]["uid"] = current["metadata"]["uid"].clone();
    lease["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
    let stored = store(&mut world, key, lease, false);
    axum::Json(stored).into_response()
}

/// The body of a JSON merge patch, or the API's refusal of another media type or of a body
/// that is not JSON.
fn merge_patch(headers: &HeaderMap, body: &str) -> Result<Value, Box<Response>> {
    if !authorized(headers) {
        return Err(Box::new(unauthorized()));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/merge-patch+json") {
        return Err(Box::new(status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {content_type}"),
        )));
    }
    serde_json::from_str::<Value>(body).map_err(|_| {
        Box::new(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "not JSON".into(),
        ))
    })
}

/// RFC 7386: objects merge member by member, `null` removes a member, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Some(members) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().expect("an object");
    for (key, value) in members {
        if value.is_null() {
            object.remove(key);
        } else {
            merge(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// A JSON merge patch of a lease; a `metadata.resourceVersion` in it is a precondition.
async fn patch_lease(
    State(world): State<Arc<Mutex<World>>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: String,
) -> Response {
    let patch = match merge_patch(&headers, &body) {
        Ok(patch) => patch,
        Err(refused) => return *refused,
    };
    let mut world = world.lock().unwrap();
    let key = (ns, name);
    let mut lease = match current(&mut world, &key, &patch) {
        Ok(current) => current,
        Err(refused) => return *refused,
    };
    merge(&mut lease, &patch);
    let stored = store(&mut world, key, lease, false);
    axum::Json(stored).into_response()
}

/// A JSON merge patch (RFC 7386) of a pod's labels; `null` removes one.
async fn patch_pod(
    State(world): State<Arc<Mutex<World>>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: String,
) -> Response {
    let patch = match merge_patch(&headers, &body) {
        Ok(patch) => patch,
        Err(refused) => return *refused,
    };
    let mut world = world.lock().unwrap();
    world.revision += 1;
    let revision = world.revision;
    let labels = world.pods.entry(name.clone()).or_default();
    if let Some(changes) = patch["metadata"]["labels"].as_object() {
        for (k, v) in changes {
            match v.as_str() {
                Some(v) => {
                    labels.insert(k.clone(), v.to_owned());
                }
                None => {
                    labels.remove(k);
                }
            }
        }
    }
    axum::Json(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "resourceVersion": revision.to_string()}}))
    .into_response()
}
