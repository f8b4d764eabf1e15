//! A Kubernetes API peer for leader election, as strict as kube-apiserver for the calls the
//! replicator makes (no kube-apiserver can be installed here). What it follows, from the API
//! reference and the API server's registry code (`k8s.io/apiserver/.../registry/store.go`,
//! `pkg/registry/coordination/lease/strategy.go`):
//! - Leases in `coordination.k8s.io/v1`: GET; POST → 201, or 409 AlreadyExists; PUT guarded by
//!   `metadata.resourceVersion` (Leases allow no unconditional update: none → 422 Invalid
//!   "must be specified for an update", a stale one → 409 Conflict, another `uid` → 409; a PUT
//!   of a Lease that does not exist creates it, as Leases allow create on update); PATCH as a
//!   JSON merge patch, a `metadata.resourceVersion` in it a precondition. The name and
//!   namespace in a body must be those of the URL (400).
//! - Pods: a JSON merge patch of an existing pod's labels; a pod that does not exist is 404
//!   (a PATCH never creates one). Pods are made by the test ([`KubeApi::add_pod`]), as the
//!   kubelet's pods exist before their containers start.
//! - Namespaces are honoured: an object in another namespace is not found.
//! - Authentication by bearer token, one per client ([`KubeApi::kubeconfig`]); authorization
//!   by the rules of `deploy/kubernetes/role.yaml`, bound in the namespaces given: a request
//!   the Role does not allow (verb, API group, resource, resource name) answers 403 Forbidden
//!   and is noted ([`KubeApi::refused`]).
//! - Every error is a `Status` object, unknown paths and methods included.
//! - Faults a test switches on and off while replicas run ([`KubeApi::inject`]): a status
//!   (5xx, or 429 with `Retry-After`), latency, or a hang (the request is never answered), for
//!   every client or one, every request or one in `n`.
//! - Each client may have its own clock ([`KubeApi::skew`]): the times it stamps into a
//!   Lease (`renewTime`, `acquireTime`) are stored shifted by its offset, as the API server
//!   stores whatever a client with a wrong clock sends.
//!
//! Every object write bumps one resourceVersion counter, as etcd's revision does. The peer
//! records every request (client, method, path, status), who held the lease when, and every
//! label change.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bearer token of `client` in the kubeconfig [`KubeApi::kubeconfig`] writes.
pub fn token(client: &str) -> String {
    format!("kube-test-token-{client}")
}

/// What a fault does to a request it matches.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Answers this status with a `Status` body (e.g. 500, 503).
    Status(u16),
    /// 429 TooManyRequests with `Retry-After: seconds`, as API Priority and Fairness answers.
    TooManyRequests { retry_after_seconds: u64 },
    /// Answers normally, this much later.
    Latency(Duration),
    /// Never answers: the connection stays open and silent (a partition, a dead connection).
    Hang,
}

/// A fault switched on at runtime; it stays on until [`KubeApi::clear_faults`].
#[derive(Debug, Clone)]
pub struct Fault {
    /// Only this client's requests (by its token); `None`: everyone's.
    pub client: Option<String>,
    pub kind: FaultKind,
    /// One request in `every` (of the matching ones) is hit; 1: all of them.
    pub every: usize,
}

impl Fault {
    pub fn on(client: &str, kind: FaultKind) -> Self {
        Self {
            client: Some(client.to_owned()),
            kind,
            every: 1,
        }
    }

    pub fn everyone(kind: FaultKind, every: usize) -> Self {
        Self {
            client: None,
            kind,
            every: every.max(1),
        }
    }
}

/// One request as the peer saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub at: Instant,
    pub client: String,
    pub method: String,
    pub path: String,
    /// The status answered; 0 for a request hung by a fault (never answered).
    pub status: u16,
}

/// One write of a lease as stored.
#[derive(Debug, Clone)]
pub struct LeaseWrite {
    pub at: Instant,
    /// The peer's wall clock (to compare with the replicas' audit lines, on the same machine).
    pub wall: std::time::SystemTime,
    /// Who wrote it (`test` for [`KubeApi::hold`]).
    pub client: String,
    pub holder: Option<String>,
    /// Whether the spec differs from the one before (a renewal or a take-over; a write of an
    /// annotation alone leaves it).
    pub spec_changed: bool,
}

/// One rule of a Role (`rbac.authorization.k8s.io/v1`).
#[derive(Debug, Clone)]
struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    verbs: Vec<String>,
}

impl Rule {
    fn allows(&self, group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        any(&self.api_groups, group)
            && any(&self.resources, resource)
            && any(&self.verbs, verb)
            // resourceNames limit a rule to requests that name one of them (a create or a list
            // names none, so such a rule never allows them).
            && (self.resource_names.is_empty()
                || name.is_some_and(|n| self.resource_names.iter().any(|r| r == n)))
    }
}

#[derive(Default)]
pub struct World {
    revision: u64,
    leases: BTreeMap<(String, String), Value>,
    /// (namespace, pod) → labels.
    pods: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// (when, holder) each time a write changed the lease's holder.
    pub holders: Vec<(Instant, Option<String>)>,
    /// Every write of a lease, in order.
    pub lease_writes: Vec<LeaseWrite>,
    /// (when, pod, label key, value; `None` removed) for every label change.
    pub label_changes: Vec<(Instant, String, String, Option<String>)>,
    pub conflicts: usize,
    pub requests: Vec<Logged>,
    /// The requests refused 403 by the Role: "verb resource/name in namespace by client".
    pub refused: Vec<String>,
    faults: Vec<(Fault, usize)>,
    /// Each client's clock offset in seconds.
    skews: BTreeMap<String, i64>,
    /// `None`: every request allowed; else the Role's rules and where it is bound.
    rbac: Option<(Vec<Rule>, BTreeSet<String>)>,
}

#[derive(Clone)]
pub struct KubeApi {
    pub url: String,
    pub world: Arc<Mutex<World>>,
}

impl KubeApi {
    /// Starts the peer with the Role of `deploy/kubernetes/role.yaml` bound in `namespace` (as
    /// the kustomize base's RoleBinding binds it to the replicas' service account).
    pub async fn start(namespace: &str) -> Self {
        let world = World {
            rbac: Some((shipped_role(), BTreeSet::from([namespace.to_owned()]))),
            ..World::default()
        };
        let world = Arc::new(Mutex::new(world));
        let app = Router::new().fallback(handle).with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, world }
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    /// Binds the Role in `namespace` too.
    pub fn bind(&self, namespace: &str) {
        if let Some((_, namespaces)) = self.world().rbac.as_mut() {
            namespaces.insert(namespace.to_owned());
        }
    }

    /// A kubeconfig for `client` (its own token) that points at this peer, for `KUBECONFIG`.
    pub fn kubeconfig(
        &self,
        dir: &std::path::Path,
        namespace: &str,
        client: &str,
    ) -> std::path::PathBuf {
        let path = dir.join(format!("kubeconfig-{client}.yaml"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n\
             users:\n- name: test\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n\
             \x20   cluster: test\n    user: test\n    namespace: {namespace}\ncurrent-context: test\n",
            url = self.url,
            token = token(client),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A `kube::Client` for `client`, for tests that talk to the peer directly.
    pub async fn client(&self, namespace: &str, client: &str) -> kube::Client {
        let dir = tempfile::tempdir().unwrap();
        let path = self.kubeconfig(dir.path(), namespace, client);
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// Creates pod `name` in `namespace` (no labels), as the ReplicaSet would.
    pub fn add_pod(&self, namespace: &str, name: &str) {
        let mut world = self.world();
        world.revision += 1;
        world
            .pods
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
    }

    /// Sets a label on a pod as someone else would (e.g. left by an earlier container).
    pub fn set_label(&self, namespace: &str, pod: &str, key: &str, value: &str) {
        let mut world = self.world();
        world
            .pods
            .get_mut(&(namespace.to_owned(), pod.to_owned()))
            .expect("the pod exists")
            .insert(key.to_owned(), value.to_owned());
    }

    pub fn label(&self, namespace: &str, pod: &str, key: &str) -> Option<String> {
        self.world()
            .pods
            .get(&(namespace.to_owned(), pod.to_owned()))?
            .get(key)
            .cloned()
    }

    /// Switches `fault` on until [`Self::clear_faults`].
    pub fn inject(&self, fault: Fault) {
        self.world().faults.push((fault, 0));
    }

    /// Switches every fault off. Requests already hung stay unanswered.
    pub fn clear_faults(&self) {
        self.world().faults.clear();
    }

    /// `client`'s clock runs `seconds` ahead (negative: behind) of the peer's.
    pub fn skew(&self, client: &str, seconds: i64) {
        self.world().skews.insert(client.to_owned(), seconds);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.world().requests.clone()
    }

    /// Every lease write so far.
    pub fn lease_writes(&self) -> Vec<LeaseWrite> {
        self.world().lease_writes.clone()
    }

    /// The requests the Role refused (403).
    pub fn refused(&self) -> Vec<String> {
        self.world().refused.clone()
    }

    /// The lease as stored.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.world()
            .leases
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Who holds `name` now.
    pub fn holder(&self, namespace: &str, name: &str) -> Option<String> {
        holder_of(&self.lease(namespace, name)?)
    }

    /// Writes `name` as a leader would that holds it and renews it now (a leader the test
    /// plays), with `annotations` merged in.
    pub fn hold(&self, namespace: &str, name: &str, holder: &str, annotations: Value) {
        let mut world = self.world();
        let key = (namespace.to_owned(), name.to_owned());
        let mut lease = world.leases.get(&key).cloned().unwrap_or_else(|| json!({}));
        let created = !world.leases.contains_key(&key);
        let now = micro_time(0);
        merge(
            &mut lease,
            &json!({
                "metadata": { "annotations": annotations },
                "spec": { "holderIdentity": holder, "leaseDurationSeconds": 4,
                          "acquireTime": now, "renewTime": now, "leaseTransitions": 0 }
            }),
        );
        store(&mut world, key, lease, created, "test");
    }

    /// When the lease last changed hands, and to whom.
    pub fn last_change_of_holder(&self) -> Option<(Instant, Option<String>)> {
        self.world().holders.last().cloned()
    }

    pub fn annotation(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        self.lease(namespace, name)?["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_owned)
    }
}

/// The rules of the shipped Role, read with the test peers' Python (PyYAML).
fn shipped_role() -> Vec<Rule> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/role.yaml");
    let out = std::process::Command::new(super::peers::python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            path,
        ])
        .output()
        .expect("the test peers' Python (AWS_REPLICATOR_PYTHON)");
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let role: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(role["kind"], "Role", "{path}");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    role["rules"]
        .as_array()
        .expect("the Role has rules")
        .iter()
        .map(|r| Rule {
            api_groups: strings(&r["apiGroups"]),
            resources: strings(&r["resources"]),
            resource_names: strings(&r["resourceNames"]),
            verbs: strings(&r["verbs"]),
        })
        .collect()
}

/// Now on a clock `skew` seconds off, as a Lease's `MicroTime`.
fn micro_time(skew: i64) -> String {
    let now =
        k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(skew);
    now.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// A refusal, boxed (a `Response` is large).
type Refused = Box<Response>;

fn refused(code: StatusCode, reason: &str, message: String, details: Value) -> Refused {
    Box::new(status(code, reason, message, details))
}

fn status(code: StatusCode, reason: &str, message: String, details: Value) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "details": details,
                      "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

/// What a path names: the API group, the resource, the namespace and perhaps a name.
struct Target {
    group: &'static str,
    resource: &'static str,
    namespace: String,
    name: Option<String>,
}

impl Target {
    fn parse(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let (group, resource, rest) = match segments.as_slice() {
            [
                "",
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                rest @ ..,
            ] => ("coordination.k8s.io", "leases", rest),
            ["", "api", "v1", "namespaces", rest @ ..] => ("", "pods", rest),
            _ => return None,
        };
        match rest {
            [namespace, r] if *r == resource => Some(Self {
                group,
                resource,
                namespace: (*namespace).to_owned(),
                name: None,
            }),
            [namespace, r, name] if *r == resource && !name.is_empty() => Some(Self {
                group,
                resource,
                namespace: (*namespace).to_owned(),
                name: Some((*name).to_owned()),
            }),
            _ => None,
        }
    }

    /// `leases.coordination.k8s.io` or `pods`, as the API server names a resource in messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn kind(&self) -> &'static str {
        if self.resource == "leases" {
            "Lease"
        } else {
            "Pod"
        }
    }

    fn key(&self) -> (String, String) {
        (
            self.namespace.clone(),
            self.name.clone().expect("a named target"),
        )
    }

    fn details(&self) -> Value {
        json!({"name": self.name, "group": self.group, "kind": self.resource})
    }

    fn not_found(&self) -> Refused {
        refused(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "{} \"{}\" not found",
                self.qualified(),
                self.name.as_deref().unwrap_or("")
            ),
            self.details(),
        )
    }
}

/// The verb RBAC checks for a request, as the API server's request info names it.
fn verb(method: &Method, named: bool) -> Option<&'static str> {
    Some(match (method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}

async fn handle(
    State(world): State<Arc<Mutex<World>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let client = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer kube-test-token-"))
        .map(str::to_owned);
    let log = |status: u16| {
        world.lock().unwrap().requests.push(Logged {
            at: Instant::now(),
            client: client.clone().unwrap_or_default(),
            method: method.to_string(),
            path: path.clone(),
            status,
        });
    };
    let Some(client) = client.clone() else {
        log(401);
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
            json!({}),
        );
    };
    // Faults come first: they stand for the network and an overloaded API server.
    let fault = {
        let mut world = world.lock().unwrap();
        world
            .faults
            .iter_mut()
            .filter(|(f, _)| f.client.as_ref().is_none_or(|c| *c == client))
            .find_map(|(f, seen)| {
                *seen += 1;
                (*seen % f.every == 0).then(|| f.kind.clone())
            })
    };
    match fault {
        Some(FaultKind::Hang) => {
            log(0);
            return std::future::pending().await;
        }
        Some(FaultKind::Latency(latency)) => tokio::time::sleep(latency).await,
        Some(FaultKind::Status(code)) => {
            log(code);
            let code = StatusCode::from_u16(code).unwrap();
            let reason = match code.as_u16() {
                503 => "ServiceUnavailable",
                504 => "Timeout",
                _ => "InternalError",
            };
            return status(
                code,
                reason,
                format!("injected fault: {}", code.as_u16()),
                json!({"retryAfterSeconds": 1}),
            );
        }
        Some(FaultKind::TooManyRequests {
            retry_after_seconds,
        }) => {
            log(429);
            let mut response = status(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests, please try again later.".into(),
                json!({"retryAfterSeconds": retry_after_seconds}),
            );
            response
                .headers_mut()
                .insert("retry-after", retry_after_seconds.into());
            return response;
        }
        None => {}
    }
    let response = answer(&world, &client, &method, &path, &headers, &body);
    log(response.status().as_u16());
    response
}

/// The API server's answer to an authenticated request that no fault hit.
fn answer(
    world: &Mutex<World>,
    client: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(target) = Target::parse(path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
            json!({}),
        );
    };
    let Some(verb) = verb(method, target.name.is_some()) else {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource: {method}"),
            json!({}),
        );
    };
    let mut world = world.lock().unwrap();
    if let Some((rules, namespaces)) = &world.rbac {
        let allowed = namespaces.contains(&target.namespace)
            && rules
                .iter()
                .any(|r| r.allows(target.group, target.resource, verb, target.name.as_deref()));
        if !allowed {
            let named = target
                .name
                .as_ref()
                .map(|n| format!(" \"{n}\""))
                .unwrap_or_default();
            world.refused.push(format!(
                "{verb} {}{named} in {} by {client}",
                target.qualified(),
                target.namespace
            ));
            return status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "{}{named} is forbidden: User \"system:serviceaccount:{}:{client}\" cannot \
                     {verb} resource \"{}\" in API group \"{}\" in the namespace \"{}\"",
                    target.qualified(),
                    target.namespace,
                    target.resource,
                    target.group,
                    target.namespace
                ),
                target.details(),
            );
        }
    }
    let skew = world.skews.get(client).copied().unwrap_or(0);
    let parsed = || -> Result<Value, Refused> {
        serde_json::from_slice::<Value>(body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                refused(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the body of the request is not a JSON object".into(),
                    json!({}),
                )
            })
    };
    let result = match (target.resource, verb) {
        ("leases", "get") => match world.leases.get(&target.key()) {
            Some(lease) => Ok(axum::Json(lease.clone()).into_response()),
            None => Err(target.not_found()),
        },
        ("leases", "create") => parsed().and_then(|lease| {
            create_lease(&mut world, &target, lease, client, skew)
                .map(|stored| (StatusCode::CREATED, axum::Json(stored)).into_response())
        }),
        ("leases", "update") => parsed().and_then(|lease| {
            replace_lease(&mut world, &target, lease, client, skew).map(IntoResponse::into_response)
        }),
        ("leases", "patch") => merge_patch(headers, body).and_then(|patch| {
            patch_lease(&mut world, &target, &patch, client, skew).map(IntoResponse::into_response)
        }),
        ("pods", "patch") => merge_patch(headers, body).and_then(|patch| {
            patch_pod(&mut world, &target, &patch).map(IntoResponse::into_response)
        }),
        _ => Err(refused(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("this peer does not serve {verb} on {}", target.qualified()),
            json!({}),
        )),
    };
    result.unwrap_or_else(|refusal| *refusal)
}

fn holder_of(lease: &Value) -> Option<String> {
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// The name and namespace in a body must be the URL's (the API server answers 400).
fn same_object(target: &Target, name: &str, object: &Value) -> Result<(), Refused> {
    let bad = |message: String| {
        Err(refused(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            message,
            json!({}),
        ))
    };
    if let Some(sent) = object["metadata"]["namespace"].as_str()
        && sent != target.namespace
    {
        return bad(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        );
    }
    if object["metadata"]["name"].as_str() != Some(name) {
        return bad(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            object["metadata"]["name"].as_str().unwrap_or("")
        ));
    }
    for (field, want) in [("apiVersion", "coordination.k8s.io/v1"), ("kind", "Lease")] {
        if let Some(sent) = object[field].as_str()
            && sent != want
        {
            return bad(format!("{field} {sent} is not {want}"));
        }
    }
    Ok(())
}

/// The API server's validation of a Lease (`ValidateLeaseSpec`).
fn validate(target: &Target, name: &str, lease: &Value) -> Result<(), Refused> {
    let spec = &lease["spec"];
    let mut causes = Vec::new();
    if let Some(d) = spec.get("leaseDurationSeconds").filter(|v| !v.is_null())
        && d.as_i64().is_none_or(|d| d <= 0)
    {
        causes.push(format!(
            "spec.leaseDurationSeconds: Invalid value: {d}: must be greater than 0"
        ));
    }
    if let Some(t) = spec.get("leaseTransitions").filter(|v| !v.is_null())
        && t.as_i64().is_none_or(|t| t < 0)
    {
        causes.push(format!(
            "spec.leaseTransitions: Invalid value: {t}: must be greater than or equal to 0"
        ));
    }
    for field in ["acquireTime", "renewTime"] {
        if let Some(t) = spec.get(field).filter(|v| !v.is_null())
            && t.as_str()
                .is_none_or(|t| t.parse::<k8s_openapi::jiff::Timestamp>().is_err())
        {
            causes.push(format!("spec.{field}: Invalid value: {t}: not a MicroTime"));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(target, name, &causes.join(", ")))
    }
}

fn invalid(target: &Target, name: &str, what: &str) -> Refused {
    refused(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{} \"{name}\" is invalid: {what}", target.qualified()),
        json!({"name": name, "group": target.group, "kind": target.resource,
               "causes": [{"reason": "FieldValueInvalid", "message": what}]}),
    )
}

/// A client with a wrong clock stamps wrong times: the times in `lease` that it wrote now (not
/// those it copied from the stored lease) are shifted by its `skew`.
fn stamp(lease: &mut Value, before: Option<&Value>, skew: i64) {
    if skew == 0 {
        return;
    }
    for field in ["acquireTime", "renewTime"] {
        let sent = lease["spec"][field].as_str().map(str::to_owned);
        let kept = before.and_then(|b| b["spec"][field].as_str());
        if let Some(sent) = sent
            && Some(sent.as_str()) != kept
            && let Ok(time) = sent.parse::<k8s_openapi::jiff::Timestamp>()
        {
            let shifted = time + k8s_openapi::jiff::SignedDuration::from_secs(skew);
            lease["spec"][field] = json!(shifted.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string());
        }
    }
}

/// Stores `lease` under a new revision and notes a change of holder.
fn store(
    world: &mut World,
    key: (String, String),
    mut lease: Value,
    created: bool,
    client: &str,
) -> Value {
    world.revision += 1;
    let before = world.leases.get(&key).and_then(holder_of);
    lease["apiVersion"] = json!("coordination.k8s.io/v1");
    lease["kind"] = json!("Lease");
    lease["metadata"]["name"] = json!(key.1);
    lease["metadata"]["namespace"] = json!(key.0);
    lease["metadata"]["resourceVersion"] = json!(world.revision.to_string());
    if created {
        lease["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", world.revision));
        lease["metadata"]["creationTimestamp"] =
            json!(micro_time(0).split('.').next().unwrap().to_owned() + "Z");
    }
    let after = holder_of(&lease);
    let now = Instant::now();
    if created || before != after {
        world.holders.push((now, after.clone()));
    }
    let spec_changed = world
        .leases
        .get(&key)
        .is_none_or(|b| b["spec"] != lease["spec"]);
    world.lease_writes.push(LeaseWrite {
        at: now,
        wall: std::time::SystemTime::now(),
        client: client.to_owned(),
        holder: after,
        spec_changed,
    });
    world.leases.insert(key, lease.clone());
    lease
}

fn create_lease(
    world: &mut World,
    target: &Target,
    mut lease: Value,
    client: &str,
    skew: i64,
) -> Result<Value, Refused> {
    let Some(name) = lease["metadata"]["name"].as_str().map(str::to_owned) else {
        return Err(invalid(
            target,
            "",
            "metadata.name: Required value: name or generateName is required",
        ));
    };
    same_object(target, &name, &lease)?;
    validate(target, &name, &lease)?;
    let key = (target.namespace.clone(), name.clone());
    if world.leases.contains_key(&key) {
        world.conflicts += 1;
        return Err(refused(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", target.qualified()),
            json!({"name": name, "group": target.group, "kind": target.resource}),
        ));
    }
    stamp(&mut lease, None, skew);
    Ok(store(world, key, lease, true, client))
}

fn conflict(world: &mut World, target: &Target, why: &str) -> Refused {
    world.conflicts += 1;
    let name = target.name.as_deref().unwrap_or("");
    refused(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            target.qualified()
        ),
        target.details(),
    )
}

const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

fn replace_lease(
    world: &mut World,
    target: &Target,
    mut lease: Value,
    client: &str,
    skew: i64,
) -> Result<axum::Json<Value>, Refused> {
    let key = target.key();
    same_object(target, &key.1, &lease)?;
    validate(target, &key.1, &lease)?;
    let Some(current) = world.leases.get(&key).cloned() else {
        // Leases allow create on update; the resourceVersion sent is not checked then.
        stamp(&mut lease, None, skew);
        return Ok(axum::Json(store(world, key, lease, true, client)));
    };
    if let Some(uid) = lease["metadata"]["uid"].as_str()
        && Some(uid) != current["metadata"]["uid"].as_str()
    {
        return Err(conflict(
            world,
            target,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                current["metadata"]["uid"].as_str().unwrap_or("")
            ),
        ));
    }
    // Leases allow no unconditional update.
    match lease["metadata"]["resourceVersion"]
        .as_str()
        .filter(|v| !v.is_empty())
    {
        None => {
            return Err(invalid(
                target,
                &key.1,
                "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
            ));
        }
        Some(sent) if Some(sent) != current["metadata"]["resourceVersion"].as_str() => {
            return Err(conflict(world, target, MODIFIED));
        }
        Some(_) => {}
    }
    lease["metadata"]["uid"] = current["metadata"]["uid"].clone();
    lease["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
    stamp(&mut lease, Some(&current), skew);
    Ok(axum::Json(store(world, key, lease, false, client)))
}

/// The body of a JSON merge patch, or the API's refusal of another media type or of a body
/// that is not a JSON object.
fn merge_patch(headers: &HeaderMap, body: &[u8]) -> Result<Value, Refused> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/merge-patch+json") {
        return Err(refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {content_type}"),
            json!({}),
        ));
    }
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            refused(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "error decoding patch: not a JSON object".into(),
                json!({}),
            )
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
fn patch_lease(
    world: &mut World,
    target: &Target,
    patch: &Value,
    client: &str,
    skew: i64,
) -> Result<axum::Json<Value>, Refused> {
    let key = target.key();
    let Some(current) = world.leases.get(&key).cloned() else {
        return Err(target.not_found());
    };
    if let Some(sent) = patch["metadata"]["resourceVersion"].as_str()
        && Some(sent) != current["metadata"]["resourceVersion"].as_str()
    {
        return Err(conflict(world, target, MODIFIED));
    }
    let mut lease = current.clone();
    merge(&mut lease, patch);
    validate(target, &key.1, &lease)?;
    stamp(&mut lease, Some(&current), skew);
    Ok(axum::Json(store(world, key, lease, false, client)))
}

/// A JSON merge patch (RFC 7386) of an existing pod's labels; `null` removes one.
fn patch_pod(
    world: &mut World,
    target: &Target,
    patch: &Value,
) -> Result<axum::Json<Value>, Refused> {
    let key = target.key();
    if !world.pods.contains_key(&key) {
        return Err(target.not_found());
    }
    world.revision += 1;
    let revision = world.revision;
    let mut changes = Vec::new();
    let labels = world.pods.get_mut(&key).expect("checked");
    if let Some(patched) = patch["metadata"]["labels"].as_object() {
        for (k, v) in patched {
            let value = v.as_str().map(str::to_owned);
            let before = match &value {
                Some(v) => labels.insert(k.clone(), v.clone()),
                None => labels.remove(k),
            };
            if before != value {
                changes.push((Instant::now(), key.1.clone(), k.clone(), value));
            }
        }
    }
    let labels = labels.clone();
    world.label_changes.extend(changes);
    Ok(axum::Json(
        json!({"apiVersion": "v1", "kind": target.kind(),
        "metadata": {"name": key.1, "namespace": key.0, "labels": labels,
                     "resourceVersion": revision.to_string()}}),
    ))
}
