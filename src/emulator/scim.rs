//! AWS IAM Identity Center's SCIM endpoint, exactly its subset (aws-sso.md §A,
//! docs/aws-wire-reference.md §5): what AWS refuses is refused here, so that a client that
//! passes against the emulator stays inside AWS's subset.

use super::store::{Group, Store, User};
use super::{Quirks, Shared};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// AWS's text for a malformed or unsupported request (seen in real responses).
const UNPARSABLE: &str = "Request is unparsable, syntactically incorrect, or violates schema.";
/// AWS's limit on members inline in a create, and on member changes in one PATCH.
pub const MAX_MEMBER_CHANGES: usize = 100;
const MAX_PAGE: usize = 100;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/scim/v2/Users", get(list_users).post(create_user))
        .route("/{tenant}/scim/v2/Users/{id}", get(get_user))
        .route(
            "/{tenant}/scim/v2/Groups",
            get(list_groups).post(create_group).put(unsupported),
        )
        .route(
            "/{tenant}/scim/v2/Groups/{id}",
            get(get_group)
                .patch(patch_group)
                .delete(delete_group)
                .put(unsupported),
        )
        .layer(axum::middleware::map_response(with_request_id))
        .with_state(shared)
}

/// Every answer names its request, as AWS's do; an error repeats its `exceptionRequestId`.
async fn with_request_id(mut response: Response) -> Response {
    let name = header::HeaderName::from_static("x-amzn-requestid");
    if !response.headers().contains_key(&name) {
        let id = header::HeaderValue::from_str(&super::request_id()).expect("a UUID is a header");
        response.headers_mut().insert(name, id);
    }
    response
}

/// An error in AWS's shape: `status` is a string, `schema` and `schemas` both appear, there is
/// no `scimType`, and `exceptionRequestId` is what AWS support asks for.
pub fn error(status: StatusCode, detail: &str) -> Response {
    let id = super::request_id();
    let body = json!({
        "schema": [ERROR],
        "schemas": [ERROR],
        "detail": detail,
        "status": status.as_u16().to_string(),
        "exceptionRequestId": id,
        "timeStamp": super::timestamp(),
    });
    (status, [("x-amzn-requestid", id)], Json(body)).into_response()
}

/// A refused request, answered with [`error`].
struct ScimError {
    status: StatusCode,
    detail: String,
}

impl ScimError {
    fn new(status: StatusCode, detail: &str) -> Self {
        Self {
            status,
            detail: detail.to_owned(),
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        error(self.status, &self.detail)
    }
}

fn bad_request() -> ScimError {
    ScimError::new(StatusCode::BAD_REQUEST, UNPARSABLE)
}

fn not_found(what: &str) -> ScimError {
    ScimError::new(StatusCode::NOT_FOUND, &format!("{what} does not exist."))
}

type Result<T> = std::result::Result<T, ScimError>;

fn authorize(shared: &Shared, tenant: &str, headers: &HeaderMap) -> Result<()> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token_ok = token.is_some_and(|t| super::constant_time_eq(t, shared.config.token.expose()));
    if tenant != shared.config.tenant || !token_ok {
        return Err(ScimError::new(
            StatusCode::UNAUTHORIZED,
            "Authorization header is invalid or missing, or the tenant does not exist.",
        ));
    }
    Ok(())
}

fn user_json(u: &User) -> Value {
    let mut v = json!({
        "id": u.id,
        "meta": {"resourceType": "User", "created": "2026-01-01T00:00:00Z", "lastModified": "2026-01-01T00:00:00Z"},
        "schemas": [USER],
        "userName": u.user_name,
        "name": {"familyName": u.family_name, "givenName": u.given_name},
        "displayName": u.display_name,
        "active": true,
    });
    if let Some(e) = &u.external_id {
        v["externalId"] = json!(e);
    }
    if let Some(e) = &u.email {
        v["emails"] = json!([{"value": e, "type": "work", "primary": true}]);
    }
    v
}

/// AWS never returns members with a group.
fn group_json(g: &Group, with_empty_members: bool) -> Value {
    let mut v = json!({
        "id": g.id,
        "meta": {"resourceType": "Group", "created": "2026-01-01T00:00:00Z", "lastModified": "2026-01-01T00:00:00Z"},
        "schemas": [GROUP],
        "displayName": g.display_name,
    });
    if let Some(e) = &g.external_id {
        v["externalId"] = json!(e);
    }
    if with_empty_members {
        v["members"] = json!([]);
    }
    v
}

/// A filter of AWS's subset: `attr eq "value"`, or two such terms joined with `and`.
/// Attribute names are compared case-insensitively, as SCIM specifies.
fn parse_filter(text: &str) -> Option<Vec<(String, String)>> {
    let mut terms = Vec::new();
    let mut rest = text.trim();
    loop {
        let (attr, after) = rest.split_once(char::is_whitespace)?;
        let after = after.trim_start();
        let (op, after) = after.split_once(char::is_whitespace)?;
        if !op.eq_ignore_ascii_case("eq") {
            return None;
        }
        let after = after.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => value.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        terms.push((attr.to_ascii_lowercase(), value));
        rest = after[end + 1..].trim_start();
        if rest.is_empty() {
            break;
        }
        let (and, after) = rest.split_once(char::is_whitespace)?;
        if !and.eq_ignore_ascii_case("and") || terms.len() == 2 {
            return None;
        }
        rest = after.trim_start();
    }
    (terms.len() <= 2).then_some(terms)
}

/// Two names compared as the emulator's quirks say: exactly, or ignoring (ASCII) case.
fn one<'a>(terms: &'a [(String, String)], attrs: &[&str]) -> Option<Vec<&'a str>> {
    if terms.len() != attrs.len() {
        return None;
    }
    attrs
        .iter()
        .map(|a| terms.iter().find(|(k, _)| k == a).map(|(_, v)| v.as_str()))
        .collect()
}

/// A resource as listings show it.
trait Resource {
    fn id(&self) -> &str;
    fn json(&self) -> Value;
}

impl Resource for User {
    fn id(&self) -> &str {
        &self.id
    }
    fn json(&self) -> Value {
        user_json(self)
    }
}

impl Resource for Group {
    fn id(&self) -> &str {
        &self.id
    }
    fn json(&self) -> Value {
        group_json(self, true)
    }
}

/// What a listing selected, in id order: every resource of the store (paged through its map,
/// so a page costs its own size, not the store's), or the few a filter found.
enum Selection<'s, T> {
    All(&'s BTreeMap<String, T>),
    These(Vec<&'s T>),
}

impl<'s, T: Resource> Selection<'s, T> {
    fn len(&self) -> usize {
        match self {
            Selection::All(map) => map.len(),
            Selection::These(v) => v.len(),
        }
    }

    /// Up to `count` resources after the id `after` (from the start when `None`), and whether
    /// more follow.
    fn page(&self, after: Option<&str>, count: usize) -> (Vec<&'s T>, bool) {
        match self {
            Selection::All(map) => {
                let mut rest = match after {
                    None => map.range::<str, _>(..),
                    Some(a) => map.range::<str, _>((Bound::Excluded(a), Bound::Unbounded)),
                }
                .map(|(_, v)| v);
                let shown: Vec<&'s T> = rest.by_ref().take(count).collect();
                let more = rest.next().is_some();
                (shown, more)
            }
            Selection::These(v) => {
                let start = after.map_or(0, |a| v.partition_point(|t| t.id() <= a));
                let shown: Vec<&'s T> = v[start..].iter().take(count).copied().collect();
                (shown, start + count < v.len())
            }
        }
    }
}

/// One page: cursor mode when `cursor` is present (even empty), otherwise one capped page. A
/// cursor remembers the last id it showed; only the page is rendered.
fn page<T: Resource>(
    shared: &Shared,
    kind: &str,
    query: &HashMap<String, String>,
    items: Selection<'_, T>,
) -> Result<Response> {
    let count = match query.get("count") {
        None => MAX_PAGE,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(bad_request()),
        },
    };
    let filter = query.get("filter").cloned().unwrap_or_default();
    let rendered = |n: usize| {
        shared
            .rendered
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed)
    };
    let Some(cursor) = query.get("cursor") else {
        let (shown, _) = items.page(None, count);
        rendered(shown.len());
        return Ok(Json(json!({
            "totalResults": items.len(),
            "itemsPerPage": shown.len(),
            "startIndex": 1,
            "schemas": [LIST],
            "Resources": shown.iter().map(|r| r.json()).collect::<Vec<_>>(),
        }))
        .into_response());
    };
    let (after, offset) = if cursor.is_empty() {
        (None, 0)
    } else {
        let cursors = shared.cursors.lock().expect("cursor lock");
        match cursors.get(cursor) {
            // The same filter must come with every page of a listing.
            Some((k, f, after, offset)) if k == kind && *f == filter => {
                (Some(after.clone()), *offset)
            }
            _ => return Err(bad_request()),
        }
    };
    let (shown, more) = items.page(after.as_deref(), count);
    rendered(shown.len());
    let resources: Vec<Value> = shown.iter().map(|r| r.json()).collect();
    let mut body =
        json!({"itemsPerPage": resources.len(), "schemas": [LIST], "Resources": resources});
    if let (true, Some(last)) = (more, shown.last()) {
        let mut cursors = shared.cursors.lock().expect("cursor lock");
        let offset = offset + shown.len();
        let next = format!("c{}_{offset}", cursors.len() + 1);
        cursors.insert(
            next.clone(),
            (kind.to_owned(), filter, last.id().to_owned(), offset),
        );
        body["nextCursor"] = json!(next);
    }
    Ok(Json(body).into_response())
}

fn respond(result: Result<Response>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Picks a listing's resources from the store: all of them, or what the filter's terms find.
type Select<T> =
    for<'s> fn(&'s Store, Option<&[(String, String)]>, Quirks) -> Result<Selection<'s, T>>;

/// A listing: authorization, AWS's refusal of `startIndex`, the parsed filter (if any) handed
/// to `select`, and paging of what it returns.
fn listing<T: Resource>(
    shared: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    kind: &str,
    select: Select<T>,
) -> Response {
    respond((|| {
        authorize(shared, tenant, headers)?;
        if query.contains_key("startIndex") {
            return Err(bad_request());
        }
        let terms = query
            .get("filter")
            .map(|f| parse_filter(f).ok_or_else(bad_request))
            .transpose()?;
        let store = shared.store.lock().expect("store lock");
        let items = select(&store, terms.as_deref(), shared.config.quirks)?;
        page(shared, kind, query, items)
    })())
}

async fn list_users(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    listing(&shared, &tenant, &headers, &query, "Users", select_users)
}

fn select_users<'s>(
    store: &'s Store,
    terms: Option<&[(String, String)]>,
    quirks: Quirks,
) -> Result<Selection<'s, User>> {
    let Some(terms) = terms else {
        return Ok(Selection::All(store.users()));
    };
    let users: Vec<&User> = if let Some([name]) = one(terms, &["username"]).as_deref() {
        store.users_named(name, quirks.user_name_case_exact)
    } else if let Some([ext]) = one(terms, &["externalid"]).as_deref() {
        // Users carry an externalId only when created with one (tests); no index needed.
        store
            .users()
            .values()
            .filter(|u| u.external_id.as_deref() == Some(*ext))
            .collect()
    } else if let Some([group]) = one(terms, &["groups.value"]).as_deref() {
        match store.groups().get(*group) {
            None => Vec::new(),
            Some(g) => g
                .members
                .iter()
                .filter_map(|m| store.users().get(m))
                .collect(),
        }
    } else if one(terms, &["id", "manager"]).is_some() {
        // Managers are not stored: no user has one.
        Vec::new()
    } else {
        return Err(bad_request());
    };
    Ok(Selection::These(users))
}

async fn get_user(
    State(shared): State<Arc<Shared>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        authorize(&shared, &tenant, &headers)?;
        let store = shared.store.lock().expect("store lock");
        let user = store.users().get(&id).ok_or_else(|| not_found("User"))?;
        Ok(Json(user_json(user)).into_response())
    })())
}

/// For test set-up: AWS requires userName, name.givenName, name.familyName and displayName,
/// and at most one email.
async fn create_user(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    respond((|| {
        authorize(&shared, &tenant, &headers)?;
        let Json(body) = body.ok_or_else(bad_request)?;
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let user_name = text(&body["userName"]).ok_or_else(bad_request)?;
        let given = text(&body["name"]["givenName"]).ok_or_else(bad_request)?;
        let family = text(&body["name"]["familyName"]).ok_or_else(bad_request)?;
        let display = text(&body["displayName"]).ok_or_else(bad_request)?;
        let emails = body["emails"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if emails.len() > 1 {
            return Err(bad_request());
        }
        let mut store = shared.store.lock().expect("store lock");
        if store.user_by_name(&user_name).is_some() {
            return Err(ScimError::new(
                StatusCode::CONFLICT,
                "Refused to create a new, duplicate resource.",
            ));
        }
        let user = User {
            id: store.new_id(),
            user_name,
            external_id: text(&body["externalId"]),
            display_name: display,
            given_name: given,
            family_name: family,
            email: emails.first().and_then(|e| text(&e["value"])),
        };
        store.insert_user(user.clone());
        Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
    })())
}

async fn list_groups(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    listing(&shared, &tenant, &headers, &query, "Groups", select_groups)
}

fn select_groups<'s>(
    store: &'s Store,
    terms: Option<&[(String, String)]>,
    quirks: Quirks,
) -> Result<Selection<'s, Group>> {
    let user_exists = |id: &str| {
        if store.users().contains_key(id) {
            Ok(())
        } else {
            Err(not_found("User"))
        }
    };
    let Some(terms) = terms else {
        return Ok(Selection::All(store.groups()));
    };
    let groups: Vec<&Group> = if let Some([name]) = one(terms, &["displayname"]).as_deref() {
        store.groups_named(name, quirks.display_name_case_exact)
    } else if let Some([ext]) = one(terms, &["externalid"]).as_deref() {
        store.groups_with_external_id(ext)
    } else if let Some([user]) = one(terms, &["members.value"]).as_deref() {
        user_exists(user)?;
        store.groups_of(user).collect()
    } else if let Some([id]) = one(terms, &["id"]).as_deref() {
        store.groups().get(*id).into_iter().collect()
    } else if let Some([id, user]) = one(terms, &["id", "members"]).as_deref() {
        // 200 with no result for a non-member, 404 for an unknown user.
        user_exists(user)?;
        store
            .groups()
            .get(*id)
            .filter(|g| g.members.contains(*user))
            .into_iter()
            .collect()
    } else {
        return Err(bad_request());
    };
    Ok(Selection::These(groups))
}

async fn get_group(
    State(shared): State<Arc<Shared>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        authorize(&shared, &tenant, &headers)?;
        let store = shared.store.lock().expect("store lock");
        let group = store.groups().get(&id).ok_or_else(|| not_found("Group"))?;
        Ok(Json(group_json(group, true)).into_response())
    })())
}

fn member_ids(value: &Value) -> Result<Vec<String>> {
    let items = value
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(bad_request)?;
    items
        .iter()
        .map(|m| {
            m["value"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad_request)
}

async fn create_group(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    respond((|| {
        authorize(&shared, &tenant, &headers)?;
        let Json(body) = body.ok_or_else(bad_request)?;
        let name = body["displayName"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(bad_request)?
            .to_owned();
        let external_id = body["externalId"].as_str().map(str::to_owned);
        let members = match &body["members"] {
            Value::Null => Vec::new(),
            Value::Array(a) if a.is_empty() => Vec::new(),
            v => member_ids(v)?,
        };
        if members.len() > MAX_MEMBER_CHANGES {
            return Err(bad_request());
        }
        let mut store = shared.store.lock().expect("store lock");
        if let Some(m) = members.iter().find(|m| !store.users().contains_key(*m)) {
            return Err(not_found(&format!("User {m}")));
        }
        let exact = shared.config.quirks.display_name_case_exact;
        let clash = !store.groups_named(&name, exact).is_empty()
            || external_id
                .as_deref()
                .is_some_and(|e| !store.groups_with_external_id(e).is_empty());
        if clash {
            return Err(ScimError::new(
                StatusCode::CONFLICT,
                "Refused to create a new, duplicate resource.",
            ));
        }
        // AWS's quota (100,000 groups per identity store, not raisable). The SCIM guide lists
        // no error for it; identitystore answers ServiceQuotaExceededException with this text;
        // SCIM's documented refusal of a request it will not take is 400 ValidationException.
        if store.groups().len() >= shared.config.max_groups {
            return Err(ScimError::new(
                StatusCode::BAD_REQUEST,
                "The request would cause the number of users or groups in the identity store to exceed the maximum allowed.",
            ));
        }
        let group = Group {
            id: store.new_id(),
            display_name: name,
            external_id,
            members: members.into_iter().collect(),
        };
        store.insert_group(group.clone());
        Ok((StatusCode::CREATED, Json(group_json(&group, false))).into_response())
    })())
}

/// PATCH as AWS documents it: `add`/`remove` on `path: members` with a value list, `replace`
/// of displayName (or externalId), at most 100 member changes. `replace` on members, a remove
/// without a value (remove all) and the filter-path remove are refused.
async fn patch_group(
    State(shared): State<Arc<Shared>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    respond((|| {
        authorize(&shared, &tenant, &headers)?;
        let Json(body) = body.ok_or_else(bad_request)?;
        let schemas_ok = body["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v == PATCH));
        let ops = body["Operations"].as_array().filter(|o| !o.is_empty());
        let (true, Some(ops)) = (schemas_ok, ops) else {
            return Err(bad_request());
        };
        if shared.config.quirks.one_operation_per_patch && ops.len() > 1 {
            return Err(bad_request());
        }
        enum Change {
            Add(Vec<String>),
            Remove(Vec<String>),
            Rename(String),
            ExternalId(String),
        }
        let mut changes = Vec::new();
        let mut member_changes = 0;
        for op in ops {
            let kind = op["op"].as_str().unwrap_or_default().to_ascii_lowercase();
            let path = op["path"].as_str();
            match (kind.as_str(), path) {
                ("add" | "remove", Some(p)) if p.eq_ignore_ascii_case("members") => {
                    let ids = member_ids(&op["value"])?;
                    member_changes += ids.len();
                    changes.push(if kind == "add" {
                        Change::Add(ids)
                    } else {
                        Change::Remove(ids)
                    });
                }
                ("replace", None) => {
                    let value = op["value"].as_object().ok_or_else(bad_request)?;
                    for (k, v) in value {
                        match (k.as_str(), v.as_str()) {
                            ("id", Some(v)) if v == id => {}
                            ("displayName", Some(v)) if !v.is_empty() => {
                                changes.push(Change::Rename(v.to_owned()))
                            }
                            ("externalId", Some(v)) => {
                                changes.push(Change::ExternalId(v.to_owned()))
                            }
                            _ => return Err(bad_request()),
                        }
                    }
                }
                ("replace", Some(p)) if p.eq_ignore_ascii_case("displayName") => {
                    let v = op["value"]
                        .as_str()
                        .filter(|v| !v.is_empty())
                        .ok_or_else(bad_request)?;
                    changes.push(Change::Rename(v.to_owned()));
                }
                ("replace", Some(p)) if p.eq_ignore_ascii_case("externalId") => {
                    let v = op["value"].as_str().ok_or_else(bad_request)?;
                    changes.push(Change::ExternalId(v.to_owned()));
                }
                _ => return Err(bad_request()),
            }
        }
        if member_changes > MAX_MEMBER_CHANGES {
            return Err(bad_request());
        }
        let mut store = shared.store.lock().expect("store lock");
        if !store.groups().contains_key(&id) {
            return Err(not_found("Group"));
        }
        for change in &changes {
            match change {
                Change::Add(ids) | Change::Remove(ids) => {
                    if let Some(m) = ids.iter().find(|m| !store.users().contains_key(*m)) {
                        return Err(not_found(&format!("User {m}")));
                    }
                }
                Change::Rename(name) => {
                    let exact = shared.config.quirks.display_name_case_exact;
                    let taken = store.groups_named(name, exact).iter().any(|g| g.id != id);
                    if taken {
                        return Err(ScimError::new(
                            StatusCode::CONFLICT,
                            "Refused to create a new, duplicate resource.",
                        ));
                    }
                }
                Change::ExternalId(ext) => {
                    let taken = store
                        .groups_with_external_id(ext)
                        .iter()
                        .any(|g| g.id != id);
                    if taken {
                        return Err(ScimError::new(
                            StatusCode::CONFLICT,
                            "Refused to create a new, duplicate resource.",
                        ));
                    }
                }
            }
        }
        for change in changes {
            match change {
                Change::Add(ids) => store.add_members(&id, ids),
                Change::Remove(ids) => store.remove_members(&id, &ids),
                Change::Rename(name) => store.rename_group(&id, name),
                Change::ExternalId(ext) => store.set_group_external_id(&id, ext),
            }
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

async fn delete_group(
    State(shared): State<Arc<Shared>>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        authorize(&shared, &tenant, &headers)?;
        let mut store = shared.store.lock().expect("store lock");
        store.remove_group(&id).ok_or_else(|| not_found("Group"))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

/// PUT on groups and anything else AWS does not support: its generic 400.
async fn unsupported(
    State(shared): State<Arc<Shared>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let tenant = params.get("tenant").cloned().unwrap_or_default();
    respond(authorize(&shared, &tenant, &headers).and(Err(bad_request())))
}

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn filters_of_the_subset_parse_and_others_do_not() {
        assert_eq!(
            parse_filter(r#"userName eq "a@b.c""#).unwrap(),
            [("username".to_owned(), "a@b.c".to_owned())]
        );
        assert_eq!(
            parse_filter(r#"id eq "g1" and members eq "u\"1""#).unwrap(),
            [
                ("id".to_owned(), "g1".to_owned()),
                ("members".to_owned(), "u\"1".to_owned())
            ]
        );
        for bad in [
            r#"userName co "a""#,
            r#"userName eq "a" or id eq "b""#,
            r#"a eq "1" and b eq "2" and c eq "3""#,
            r#"userName eq a"#,
            r#"userName eq "unterminated"#,
            "userName pr",
            "",
        ] {
            assert_eq!(parse_filter(bad), None, "{bad}");
        }
    }
}
