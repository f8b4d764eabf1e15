//! A meshStack API fixture server: serves the documented payload shapes (meshstack-api.md §5)
//! built from a [`Snapshot`], with HAL paging, both authentication modes, media-type checks and
//! scripted faults. Started on a free loopback port for one test.

use aws_replicator::snapshot::{Snapshot, Subject};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum AuthMode {
    Basic {
        username: String,
        password: String,
    },
    ApiKey {
        client_id: String,
        client_secret: String,
    },
}

#[derive(Clone, Debug)]
pub struct Fault {
    /// Applies to requests whose path and query contain this text.
    pub matching: String,
    pub status: u16,
    pub retry_after: Option<String>,
    pub times: usize,
}

#[derive(Default)]
pub struct Script {
    pub faults: Vec<Fault>,
    /// Tokens stop working after this many authenticated requests (token expiry).
    pub token_uses: Option<usize>,
    /// The login answers 307 to a second login URL first.
    pub login_redirect: bool,
    /// Media types (by path) this "meshStack" does not serve: 406.
    pub unserved: Vec<(&'static str, &'static str)>,
    /// A `next` link pointing to another origin.
    pub foreign_next_link: bool,
    /// Every page links to itself as `next`.
    pub self_next_link: bool,
    /// Pages whose path and query contain one of these are answered well-formed but short: no
    /// items and no `next` link, while the `page` block still counts every item.
    pub short_pages: Vec<String>,
    /// Single-object reads of the first identifier are answered with the object of the
    /// second (a caching proxy keyed wrongly, a bug in meshStack).
    pub answer_instead: Vec<(String, String)>,
    /// Objects (`workspace.name`, or the name) left out of listings, which still count whole:
    /// what offset paging shows while meshStack deletes one object and creates another.
    pub hidden_from_listings: Vec<String>,
    /// Listings whose path and query contain one of these never answer (a hung backend).
    pub stalls: Vec<String>,
    /// Every listing answers after this long (meshStack's round trip).
    pub latency: Option<std::time::Duration>,
    /// Listings whose path and query contain the first text are answered 200 with the second as
    /// their content type (a proxy's page, a gateway's `application/json`).
    pub content_types: Vec<(String, String)>,
}

pub struct Fixture {
    pub base_url: String,
    pub state: Arc<Shared>,
}

pub struct Shared {
    auth: AuthMode,
    objects: Mutex<BTreeMap<&'static str, Vec<(Value, Filters)>>>,
    script: Mutex<Script>,
    tokens: Mutex<HashMap<String, usize>>,
    pub logins: Mutex<usize>,
    pub requests: Mutex<Vec<String>>,
    base: Mutex<String>,
    in_flight: std::sync::atomic::AtomicUsize,
    /// The most listings answered at once: meshStack asks for one at a time per API key.
    pub most_in_flight: std::sync::atomic::AtomicUsize,
}

/// A listing being answered, counted while it lasts.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn new(s: &'a Shared) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let now = s.in_flight.fetch_add(1, SeqCst) + 1;
        s.most_in_flight.fetch_max(now, SeqCst);
        InFlight(s)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The query parameters an object answers to.
#[derive(Clone, Debug, Default)]
struct Filters {
    workspace: Option<String>,
    project: Option<String>,
    platform: Option<String>,
}

const V3: &str = "application/vnd.meshcloud.api.meshtenant.v3.hal+json";
const V4: &str = "application/vnd.meshcloud.api.meshtenant.v4.hal+json";

fn media(kind: &str) -> &'static str {
    match kind {
        "meshprojectroles" => "application/vnd.meshcloud.api.meshprojectrole.v1.hal+json",
        "meshprojects" => "application/vnd.meshcloud.api.meshproject.v2.hal+json",
        "meshusers" => "application/vnd.meshcloud.api.meshuser.v2.hal+json",
        "meshworkspaceusergroups" => {
            "application/vnd.meshcloud.api.meshworkspaceusergroup.v1.hal+json"
        }
        "userbindings" => "application/vnd.meshcloud.api.meshprojectuserbinding.v3.hal+json",
        "groupbindings" => "application/vnd.meshcloud.api.meshprojectgroupbinding.v3.hal+json",
        _ => "",
    }
}

fn embedded(kind: &str) -> &'static str {
    match kind {
        "meshprojectroles" => "meshProjectRoles",
        "meshprojects" => "meshProjects",
        "meshtenants-v3" | "meshtenants-v4" => "meshTenants",
        "meshusers" => "meshUsers",
        "meshworkspaceusergroups" => "meshWorkspaceUserGroups",
        "userbindings" => "meshProjectUserBindings",
        "groupbindings" => "meshProjectGroupBindings",
        _ => "unknown",
    }
}

/// The API payloads for a snapshot, plus `extra_tenants` of other platforms.
fn objects(
    snapshot: &Snapshot,
    other_platform_tenants: &[(&str, &str, &str)],
) -> BTreeMap<&'static str, Vec<(Value, Filters)>> {
    let mut o: BTreeMap<&'static str, Vec<(Value, Filters)>> = BTreeMap::new();
    for r in &snapshot.roles {
        o.entry("meshprojectroles").or_default().push((
            json!({"kind": "meshProjectRole", "apiVersion": "v1",
                   "metadata": {"name": r.identifier, "tags": {}},
                   "spec": {"name": r.display_name, "description": "", "rank": 10}}),
            Filters::default(),
        ));
    }
    for p in &snapshot.projects {
        o.entry("meshprojects").or_default().push((
            json!({"kind": "meshProject", "apiVersion": "v2",
                   "metadata": {"name": p.identifier, "ownedByWorkspace": p.workspace, "createdOn": "2024-03-02T09:30:00Z"},
                   "spec": {"displayName": format!("Project {}", p.identifier), "tags": p.tags, "paymentMethodIdentifier": "pm"}}),
            Filters { workspace: Some(p.workspace.to_string()), ..Filters::default() },
        ));
    }
    let mut tenants: Vec<(String, String, String, Option<String>)> = snapshot
        .tenants
        .iter()
        .map(|t| {
            (
                snapshot.platform.clone(),
                t.workspace.to_string(),
                t.project.to_string(),
                t.account_id.clone(),
            )
        })
        .collect();
    for (platform, w, p) in other_platform_tenants {
        tenants.push((
            platform.to_string(),
            w.to_string(),
            p.to_string(),
            Some("999999999999".into()),
        ));
    }
    for (i, (platform, w, p, account)) in tenants.into_iter().enumerate() {
        let filters = Filters {
            workspace: Some(w.clone()),
            project: Some(p.clone()),
            platform: Some(platform.clone()),
        };
        let mut v3 = json!({"kind": "meshTenant", "apiVersion": "v3",
            "metadata": {"ownedByWorkspace": w, "ownedByProject": p, "platformIdentifier": platform,
                         "tenantIdentifier": format!("{w}.{p}.{platform}"), "assignedTags": {}},
            "spec": {"landingZoneIdentifier": "aws-default", "quotas": []}});
        let mut v4 = json!({"kind": "meshTenant", "apiVersion": "v4",
            "metadata": {"uuid": format!("0b9f3c1e-6d2a-4c55-9e1f-{i:012}"), "ownedByWorkspace": w, "ownedByProject": p},
            "spec": {"platformRef": {"uuid": format!("5d1e2f3a-0000-4abc-8def-{:012}", platform.len()), "kind": "meshPlatform"},
                     "landingZoneRef": {"name": "aws-default", "kind": "meshLandingZone"}},
            "status": {"tenantName": format!("{w}.{p}.{platform}"), "platformTypeIdentifier": "AWS", "tags": {},
                       "lifecycle": {"state": "ACTIVE"}}});
        if let Some(a) = account {
            v3["spec"]["localId"] = json!(a);
            v4["spec"]["platformTenantId"] = json!(a);
        }
        o.entry("meshtenants-v3")
            .or_default()
            .push((v3, filters.clone()));
        o.entry("meshtenants-v4").or_default().push((v4, filters));
    }
    for u in &snapshot.users {
        let mut spec = json!({"email": format!("{}@mail.example", u.username), "firstName": "F", "lastName": "L", "tags": {}});
        if let Some(e) = &u.euid {
            spec["euid"] = json!(e);
        }
        o.entry("meshusers").or_default().push((
            json!({"kind": "meshUser", "apiVersion": "v2",
                   "metadata": {"uuid": format!("uuid-{}", u.username), "name": u.username}, "spec": spec}),
            Filters::default(),
        ));
    }
    for g in &snapshot.groups {
        o.entry("meshworkspaceusergroups").or_default().push((
            json!({"kind": "meshWorkspaceUserGroup", "apiVersion": "v1",
                   "metadata": {"name": g.identifier, "ownedByWorkspace": g.workspace},
                   "spec": {"displayName": g.identifier, "egid": "egid", "members": g.members, "tags": {}}}),
            Filters { workspace: Some(g.workspace.to_string()), ..Filters::default() },
        ));
    }
    for (i, b) in snapshot.bindings.iter().enumerate() {
        let (kind, k, subject) = match &b.subject {
            Subject::User(u) => ("userbindings", "meshProjectUserBinding", u.to_string()),
            Subject::Group(g) => ("groupbindings", "meshProjectGroupBinding", g.clone()),
        };
        o.entry(kind).or_default().push((
            json!({"kind": k, "apiVersion": "v3",
                   "metadata": {"name": format!("f3a1c2d4-5e6f-4a7b-8c9d-{i:012}")},
                   "roleRef": {"name": b.role},
                   "targetRef": {"name": b.project, "displayName": "x", "ownedByWorkspace": b.workspace},
                   "subject": {"name": subject}}),
            Filters { workspace: Some(b.workspace.to_string()), project: Some(b.project.to_string()), ..Filters::default() },
        ));
    }
    o
}

impl Fixture {
    pub async fn start(
        snapshot: &Snapshot,
        other_platform_tenants: &[(&str, &str, &str)],
        auth: AuthMode,
        script: Script,
    ) -> Self {
        Self::start_with_objects(objects(snapshot, other_platform_tenants), auth, script).await
    }

    /// Replaces the objects of one kind with raw payloads (for malformed-payload tests).
    pub async fn start_raw(
        snapshot: &Snapshot,
        kind: &'static str,
        raw: Vec<Value>,
        auth: AuthMode,
    ) -> Self {
        let mut o = objects(snapshot, &[]);
        o.insert(
            kind,
            raw.into_iter().map(|v| (v, Filters::default())).collect(),
        );
        Self::start_with_objects(o, auth, Script::default()).await
    }

    async fn start_with_objects(
        objects: BTreeMap<&'static str, Vec<(Value, Filters)>>,
        auth: AuthMode,
        script: Script,
    ) -> Self {
        let state = Arc::new(Shared {
            auth,
            objects: Mutex::new(objects),
            script: Mutex::new(script),
            tokens: Mutex::new(HashMap::new()),
            logins: Mutex::new(0),
            requests: Mutex::new(Vec::new()),
            base: Mutex::new(String::new()),
            in_flight: Default::default(),
            most_in_flight: Default::default(),
        });
        let app = Router::new()
            .route("/api/login", post(login))
            .route("/api/login/redirected", post(login))
            .route("/api/meshobjects/{kind}", get(list))
            .route("/api/meshobjects/meshprojectbindings/{kind}", get(list))
            .route("/api/meshobjects/{kind}/{id}", get(one))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        *state.base.lock().unwrap() = base_url.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base_url, state }
    }

    /// meshStack holds `snapshot` from now on (what people changed in it meanwhile).
    pub fn replace(&self, snapshot: &Snapshot) {
        *self.state.objects.lock().unwrap() = objects(snapshot, &[]);
    }

    /// Changes the script of a running fixture.
    pub fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.state.script.lock().unwrap());
    }

    pub fn logins(&self) -> usize {
        *self.state.logins.lock().unwrap()
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }
}

fn error(status: StatusCode, path: &str) -> Response {
    let body = json!({"timestamp": "2026-11-25T10:00:00Z", "status": status.as_u16(),
                      "error": status.canonical_reason(), "message": "", "path": path});
    (status, axum::Json(body)).into_response()
}

async fn login(State(s): State<Arc<Shared>>, uri: Uri, body: axum::Json<Value>) -> Response {
    let AuthMode::ApiKey {
        client_id,
        client_secret,
    } = &s.auth
    else {
        return error(StatusCode::NOT_FOUND, uri.path());
    };
    if uri.path() == "/api/login" && s.script.lock().unwrap().login_redirect {
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, "/api/login/redirected")],
        )
            .into_response();
    }
    if body["clientId"] != json!(client_id) || body["clientSecret"] != json!(client_secret) {
        return error(StatusCode::UNAUTHORIZED, uri.path());
    }
    let mut logins = s.logins.lock().unwrap();
    *logins += 1;
    let token = format!("token-{}", *logins);
    s.tokens.lock().unwrap().insert(token.clone(), 0);
    axum::Json(
        json!({"access_token": token, "expires_in": 300, "refresh_expires_in": 0,
                      "token_type": "Bearer", "not-before-policy": 0, "scope": "profile email"}),
    )
    .into_response()
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match &s.auth {
        AuthMode::Basic { username, password } => {
            use base64_like::encode;
            value == format!("Basic {}", encode(&format!("{username}:{password}")))
        }
        AuthMode::ApiKey { .. } => {
            let Some(token) = value.strip_prefix("Bearer ") else {
                return false;
            };
            let limit = s.script.lock().unwrap().token_uses;
            let mut tokens = s.tokens.lock().unwrap();
            match tokens.get_mut(token) {
                Some(uses) if limit.is_none_or(|l| *uses < l) => {
                    *uses += 1;
                    true
                }
                _ => false,
            }
        }
    }
}

async fn list(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path().to_owned();
    let full = uri.to_string();
    s.requests.lock().unwrap().push(full.clone());
    let kind = path.rsplit('/').next().unwrap().to_owned();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key: &str = match kind.as_str() {
        "meshtenants" if accept == V3 => "meshtenants-v3",
        "meshtenants" if accept == V4 => "meshtenants-v4",
        "meshtenants" => return error(StatusCode::NOT_ACCEPTABLE, &path),
        k if media(k) == accept && !accept.is_empty() => media_key(k),
        _ => return error(StatusCode::NOT_ACCEPTABLE, &path),
    };
    if s.script
        .lock()
        .unwrap()
        .unserved
        .iter()
        .any(|(p, m)| path.ends_with(p) && *m == accept)
    {
        return error(StatusCode::NOT_ACCEPTABLE, &path);
    }
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, &path);
    }
    let stalls = s
        .script
        .lock()
        .unwrap()
        .stalls
        .iter()
        .any(|m| full.contains(m.as_str()));
    if stalls {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
    let _counted = InFlight::new(&s);
    let latency = s.script.lock().unwrap().latency;
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    {
        let mut script = s.script.lock().unwrap();
        if let Some(f) = script
            .faults
            .iter_mut()
            .find(|f| f.times > 0 && full.contains(&f.matching))
        {
            f.times -= 1;
            let status = StatusCode::from_u16(f.status).unwrap();
            let mut response = error(status, &path);
            if let Some(ra) = &f.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, ra.parse().unwrap());
            }
            return response;
        }
    }
    // Only what this page can hold is copied: a copy of every object per request made the
    // fixture, not the client, the bottleneck at 1,000 projects.
    let hidden = s.script.lock().unwrap().hidden_from_listings.clone();
    let objects = s.objects.lock().unwrap();
    let items: Vec<&Value> = objects
        .get(key)
        .into_iter()
        .flatten()
        .filter(|(_, f)| {
            let ok = |want: Option<&String>, have: &Option<String>| {
                want.is_none_or(|w| have.as_ref() == Some(w))
            };
            ok(q.get("workspaceIdentifier"), &f.workspace)
                && ok(q.get("projectIdentifier"), &f.project)
                && ok(q.get("platformIdentifier"), &f.platform)
        })
        .map(|(v, _)| v)
        .filter(|v| {
            let name = v["metadata"]["name"].as_str().unwrap_or_default();
            let id = match v["metadata"]["ownedByWorkspace"].as_str() {
                Some(w) => format!("{w}.{name}"),
                None => name.to_owned(),
            };
            !hidden.contains(&id)
        })
        .collect();
    let size: usize = q
        .get("size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(0);
    let total_pages = items.len().div_ceil(size).max(1);
    let short = s
        .script
        .lock()
        .unwrap()
        .short_pages
        .iter()
        .any(|m| full.contains(m.as_str()));
    let chunk: Vec<Value> = if short {
        Vec::new()
    } else {
        items
            .iter()
            .skip(page * size)
            .take(size)
            .map(|v| (*v).clone())
            .collect()
    };
    let total = items.len();
    drop(objects);
    let base = s.base.lock().unwrap().clone();
    let link = |n: usize| {
        let mut params: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| *k != "page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort();
        params.push(("page".into(), n.to_string()));
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "%20")))
            .collect();
        json!({"href": format!("{base}{path}?{}&sort=id,asc", query.join("&"))})
    };
    let mut links = serde_json::Map::new();
    links.insert("self".into(), link(page));
    let script = s.script.lock().unwrap();
    if script.self_next_link {
        links.insert("next".into(), link(page));
    } else if page + 1 < total_pages && !short {
        let next = if script.foreign_next_link {
            json!({"href": format!("http://127.0.0.2:1{path}?page={}", page + 1)})
        } else {
            link(page + 1)
        };
        links.insert("next".into(), next);
    }
    let mut body = json!({"_links": links, "page": {"size": size, "totalElements": total, "totalPages": total_pages, "number": page}});
    if !chunk.is_empty() {
        body["_embedded"] = json!({ embedded(key): chunk });
    }
    let content_type = script
        .content_types
        .iter()
        .find(|(m, _)| full.contains(m.as_str()))
        .map_or(accept, |(_, t)| t.as_str());
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
    response
}

/// `GET /api/meshobjects/{kind}/{identifier}`: one object (`workspace.name` for projects and
/// user groups, the name for users), or 404.
async fn one(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    axum::extract::Path((kind, id)): axum::extract::Path<(String, String)>,
) -> Response {
    let path = uri.path().to_owned();
    s.requests.lock().unwrap().push(uri.to_string());
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if media(&kind).is_empty() || media(&kind) != accept {
        return error(StatusCode::NOT_ACCEPTABLE, &path);
    }
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, &path);
    }
    let identifier = |v: &Value| -> String {
        let name = v["metadata"]["name"].as_str().unwrap_or_default();
        match v["metadata"]["ownedByWorkspace"].as_str() {
            Some(w) => format!("{w}.{name}"),
            None => name.to_owned(),
        }
    };
    let id = s
        .script
        .lock()
        .unwrap()
        .answer_instead
        .iter()
        .find(|(asked, _)| *asked == id)
        .map_or(id, |(_, instead)| instead.clone());
    let found = s
        .objects
        .lock()
        .unwrap()
        .get(media_key(&kind))
        .into_iter()
        .flatten()
        .map(|(v, _)| v)
        .find(|v| identifier(v) == id)
        .cloned();
    match found {
        Some(v) => {
            let mut response = axum::Json(v).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, accept.parse().unwrap());
            response
        }
        None => error(StatusCode::NOT_FOUND, &path),
    }
}

fn media_key(kind: &str) -> &'static str {
    match kind {
        "meshprojectroles" => "meshprojectroles",
        "meshprojects" => "meshprojects",
        "meshusers" => "meshusers",
        "meshworkspaceusergroups" => "meshworkspaceusergroups",
        "userbindings" => "userbindings",
        "groupbindings" => "groupbindings",
        _ => "unknown",
    }
}

/// Base64 for the Basic header, so the fixture checks the client's encoding independently.
mod base64_like {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pub fn encode(input: &str) -> String {
        let bytes = input.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
