//! sso-admin over the AWS JSON 1.1 protocol (`X-Amz-Target: SWBExternalService.<Op>`), for the
//! operations the replicator calls (docs/aws-wire-reference.md §1–3). Account assignment
//! writes are asynchronous: IN_PROGRESS for the configured time, then SUCCEEDED, or FAILED
//! when the principal is gone. At most 15 are in flight; a write to an account with one in
//! flight is a ConflictException.

use super::Shared;
use super::store::Assignment;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

/// AWS's limit on outstanding CreateAccountAssignment calls.
pub const MAX_IN_FLIGHT: usize = 15;
const JSON_11: &str = "application/x-amz-json-1.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Succeeded,
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub request_id: String,
    pub kind: Kind,
    pub assignment: Assignment,
    pub status: Status,
    /// Epoch seconds, as the wire carries it.
    pub created: f64,
    pub completes_at: Instant,
    /// A fault decided that this one fails, with this reason.
    pub fail_with: Option<String>,
}

/// Every assignment operation, as AWS keeps their statuses, with the ones still in progress
/// and the request ids indexed: a request costs what it touches, not every operation the
/// emulator has seen (about 100,000 in a first sync of the largest estate).
#[derive(Debug, Default)]
pub struct Operations {
    all: Vec<Operation>,
    by_request: HashMap<String, usize>,
    in_progress: BTreeSet<usize>,
}

impl Operations {
    pub fn push(&mut self, op: Operation) {
        let at = self.all.len();
        self.by_request.insert(op.request_id.clone(), at);
        if op.status == Status::InProgress {
            self.in_progress.insert(at);
        }
        self.all.push(op);
    }

    pub fn in_progress(&self) -> impl Iterator<Item = &Operation> {
        self.in_progress.iter().map(|at| &self.all[*at])
    }

    pub fn get(&self, request_id: &str) -> Option<&Operation> {
        self.by_request.get(request_id).map(|at| &self.all[*at])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Operation> {
        self.all.iter()
    }

    /// The operations in progress whose time has come at `now`, no longer counted in progress:
    /// the caller settles each.
    fn take_due(&mut self, now: Instant) -> Vec<usize> {
        let due: Vec<usize> = self
            .in_progress
            .iter()
            .copied()
            .filter(|at| self.all[*at].completes_at <= now)
            .collect();
        for at in &due {
            self.in_progress.remove(at);
        }
        due
    }
}

/// An sso-admin error: `__type` names it, as the SDK reads it.
pub fn error(kind: &str, message: &str) -> Response {
    let status = if kind == "InternalServerException" {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::BAD_REQUEST
    };
    let body = json!({"__type": kind, "Message": message});
    (
        status,
        [
            (header::CONTENT_TYPE, JSON_11.to_owned()),
            (
                header::HeaderName::from_static("x-amzn-requestid"),
                super::request_id(),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, JSON_11.to_owned()),
            (
                header::HeaderName::from_static("x-amzn-requestid"),
                super::request_id(),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

/// A refused request, answered with [`error`].
struct AwsError {
    kind: &'static str,
    message: String,
}

impl AwsError {
    fn new(kind: &'static str, message: &str) -> Self {
        Self {
            kind,
            message: message.to_owned(),
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        error(self.kind, &self.message)
    }
}

type Result<T> = std::result::Result<T, AwsError>;

fn validation(message: &str) -> AwsError {
    AwsError::new("ValidationException", message)
}

fn text<'a>(body: &'a Value, field: &str) -> Result<&'a str> {
    body[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| validation(&format!("1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must not be null")))
}

fn check_instance(shared: &Shared, body: &Value) -> Result<()> {
    let arn = text(body, "InstanceArn")?;
    if arn != shared.config.instance_arn {
        return Err(AwsError::new(
            "ResourceNotFoundException",
            &format!("Instance {arn} does not exist"),
        ));
    }
    Ok(())
}

fn instance_id(shared: &Shared) -> &str {
    shared
        .config
        .instance_arn
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

fn check_permission_set(shared: &Shared, arn: &str) -> Result<()> {
    let ok = arn
        .strip_prefix("arn:aws:sso:::permissionSet/")
        .and_then(|r| r.split_once('/'))
        .is_some_and(|(ins, ps)| ins == instance_id(shared) && ps.starts_with("ps-"));
    if ok {
        Ok(())
    } else {
        Err(validation(&format!(
            "PermissionSetArn {arn} is not valid for this instance"
        )))
    }
}

fn max_results(body: &Value) -> Result<usize> {
    match &body["MaxResults"] {
        Value::Null => Ok(100),
        v => v
            .as_u64()
            .filter(|n| (1..=100).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| validation("MaxResults must be between 1 and 100")),
    }
}

/// One page of `items`, with an opaque `NextToken` holding the offset.
fn paged(body: &Value, items: Vec<Value>, key: &str) -> Result<Response> {
    let size = max_results(body)?;
    let offset = match body["NextToken"].as_str() {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix("o")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| validation("The NextToken is not valid"))?,
    };
    let page: Vec<Value> = items.iter().skip(offset).take(size).cloned().collect();
    let mut out = json!({ key: page });
    if offset + size < items.len() {
        out["NextToken"] = json!(format!("o{}", offset + size));
    }
    Ok(ok(out))
}

fn assignment_json(a: &Assignment) -> Value {
    json!({"AccountId": a.account_id, "PermissionSetArn": a.permission_set_arn,
           "PrincipalType": a.principal_type, "PrincipalId": a.principal_id})
}

fn status_json(op: &Operation) -> Value {
    let (status, reason) = match &op.status {
        Status::InProgress => ("IN_PROGRESS", None),
        Status::Succeeded => ("SUCCEEDED", None),
        Status::Failed(r) => ("FAILED", Some(r.clone())),
    };
    let mut v = json!({"Status": status, "RequestId": op.request_id,
        "TargetId": op.assignment.account_id, "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": op.assignment.permission_set_arn,
        "PrincipalType": op.assignment.principal_type, "PrincipalId": op.assignment.principal_id,
        "CreatedDate": op.created});
    if let Some(r) = reason {
        v["FailureReason"] = json!(r);
    }
    v
}

/// Completes the operations whose time has come, applying them to the store.
pub fn settle(shared: &Shared) {
    let now = Instant::now();
    let mut ops = shared.operations.lock().expect("operations lock");
    let mut store = shared.store.lock().expect("store lock");
    for at in ops.take_due(now) {
        let op = &mut ops.all[at];
        let principal_exists = match op.assignment.principal_type.as_str() {
            "GROUP" => store.groups().contains_key(&op.assignment.principal_id),
            _ => store.users().contains_key(&op.assignment.principal_id),
        };
        op.status = if let Some(reason) = op.fail_with.take() {
            Status::Failed(reason)
        } else if op.kind == Kind::Create && !principal_exists {
            Status::Failed(format!(
                "Received a 404 status error: Principal {} does not exist.",
                op.assignment.principal_id
            ))
        } else {
            match op.kind {
                Kind::Create => store.assignments.insert(op.assignment.clone()),
                Kind::Delete => store.assignments.remove(&op.assignment),
            };
            Status::Succeeded
        };
    }
}

pub async fn handle(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(operation) = target.strip_prefix("SWBExternalService.") else {
        return error(
            "UnknownOperationException",
            &format!("unknown target {target:?}"),
        );
    };
    // IAM decides before the service reads the request.
    if let Some(allowed) = shared.policy.lock().expect("policy lock").as_ref()
        && !allowed.contains(operation)
    {
        return error("AccessDeniedException", &access_denied(&shared, operation));
    }
    let body: Value = match serde_json::from_slice(if body.is_empty() { b"{}" } else { &body }) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error("SerializationException", "the body is not a JSON object"),
    };
    settle(&shared);
    let result = match operation {
        "ListInstances" => list_instances(&shared, &body),
        "ListAccountAssignments" => list_assignments(&shared, &body),
        "ListAccountAssignmentsForPrincipal" => list_for_principal(&shared, &body),
        "CreateAccountAssignment" => write(&shared, &body, Kind::Create),
        "DeleteAccountAssignment" => write(&shared, &body, Kind::Delete),
        "DescribeAccountAssignmentCreationStatus" => describe(&shared, &body, Kind::Create),
        "DescribeAccountAssignmentDeletionStatus" => describe(&shared, &body, Kind::Delete),
        "ListAccountAssignmentCreationStatus" => list_statuses(&shared, &body, Kind::Create),
        "ListAccountAssignmentDeletionStatus" => list_statuses(&shared, &body, Kind::Delete),
        other => Err(AwsError::new(
            "UnknownOperationException",
            &format!("{other} is not emulated"),
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// IAM's sentence for an action no policy allows (the caller is the seed's management role).
fn access_denied(shared: &Shared, operation: &str) -> String {
    format!(
        "User: arn:aws:sts::123456789012:assumed-role/MeshfedServiceRole/aws-replicator is not \
         authorized to perform: sso:{operation} on resource: {} because no identity-based policy \
         allows the sso:{operation} action",
        shared.config.instance_arn
    )
}

/// An assignment's permission set and account must exist where the store says which do
/// (docs/aws-wire-reference.md §2, "What the emulator refuses").
fn check_exists(shared: &Shared, account: &str, ps: &str) -> Result<()> {
    let store = shared.store.lock().expect("store lock");
    if store
        .permission_sets
        .as_ref()
        .is_some_and(|p| !p.contains(ps))
    {
        return Err(AwsError::new(
            "ResourceNotFoundException",
            &format!("Could not find PermissionSet with PermissionSetArn {ps}."),
        ));
    }
    if store
        .accounts
        .as_ref()
        .is_some_and(|a| !a.contains(account))
    {
        return Err(validation(&format!(
            "The target account {account} is not a member of the organization."
        )));
    }
    Ok(())
}

fn list_instances(shared: &Shared, body: &Value) -> Result<Response> {
    let instance = json!({"InstanceArn": shared.config.instance_arn, "IdentityStoreId": shared.config.identity_store_id,
        "OwnerAccountId": "123456789012", "Name": "emulator", "Status": "ACTIVE", "CreatedDate": 1_767_225_600.0});
    paged(body, vec![instance], "Instances")
}

fn list_assignments(shared: &Shared, body: &Value) -> Result<Response> {
    check_instance(shared, body)?;
    let account = text(body, "AccountId")?;
    let ps = text(body, "PermissionSetArn")?;
    check_permission_set(shared, ps)?;
    check_exists(shared, account, ps)?;
    let store = shared.store.lock().expect("store lock");
    let items = store
        .assignments_of(account, ps)
        .map(assignment_json)
        .collect();
    paged(body, items, "AccountAssignments")
}

fn list_for_principal(shared: &Shared, body: &Value) -> Result<Response> {
    check_instance(shared, body)?;
    let principal = text(body, "PrincipalId")?;
    let kind = text(body, "PrincipalType")?;
    let account = body["Filter"]["AccountId"].as_str();
    let store = shared.store.lock().expect("store lock");
    let items = store
        .assignments
        .iter()
        .filter(|a| a.principal_id == principal && a.principal_type == kind)
        .filter(|a| account.is_none_or(|acc| a.account_id == acc))
        .map(assignment_json)
        .collect();
    paged(body, items, "AccountAssignments")
}

fn write(shared: &Shared, body: &Value, kind: Kind) -> Result<Response> {
    check_instance(shared, body)?;
    let account = text(body, "TargetId")?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(validation("TargetId must be a 12-digit account id"));
    }
    if text(body, "TargetType")? != "AWS_ACCOUNT" {
        return Err(validation("TargetType must be AWS_ACCOUNT"));
    }
    let ps = text(body, "PermissionSetArn")?;
    check_permission_set(shared, ps)?;
    let principal_type = text(body, "PrincipalType")?;
    if !matches!(principal_type, "GROUP" | "USER") {
        return Err(validation("PrincipalType must be GROUP or USER"));
    }
    check_exists(shared, account, ps)?;
    let assignment = Assignment {
        account_id: account.to_owned(),
        permission_set_arn: ps.to_owned(),
        principal_type: principal_type.to_owned(),
        principal_id: text(body, "PrincipalId")?.to_owned(),
    };
    let mut ops = shared.operations.lock().expect("operations lock");
    let in_flight: Vec<&Operation> = ops.in_progress().collect();
    if in_flight.len() >= MAX_IN_FLIGHT {
        return Err(AwsError::new(
            "ThrottlingException",
            "There are too many requests processing. Please try again later.",
        ));
    }
    if in_flight
        .iter()
        .any(|o| o.assignment.account_id == assignment.account_id)
    {
        shared.conflicts.fetch_add(1, Ordering::Relaxed);
        return Err(AwsError::new(
            "ConflictException",
            "Operation failed because another operation is in progress on the same account. Retry later.",
        ));
    }
    if kind == Kind::Delete
        && !shared
            .store
            .lock()
            .expect("store lock")
            .assignments
            .contains(&assignment)
    {
        return Err(AwsError::new(
            "ResourceNotFoundException",
            "The assignment does not exist",
        ));
    }
    let fail_with = shared.take_assignment_failure();
    let op = Operation {
        request_id: super::request_id(),
        kind,
        assignment,
        status: Status::InProgress,
        created: super::epoch_seconds(),
        completes_at: Instant::now() + shared.operation_delay,
        fail_with,
    };
    let key = match kind {
        Kind::Create => "AccountAssignmentCreationStatus",
        Kind::Delete => "AccountAssignmentDeletionStatus",
    };
    let response = ok(json!({ key: status_json(&op) }));
    shared
        .peak_in_flight
        .fetch_max(in_flight.len() + 1, Ordering::Relaxed);
    ops.push(op);
    Ok(response)
}

fn describe(shared: &Shared, body: &Value, kind: Kind) -> Result<Response> {
    check_instance(shared, body)?;
    let (field, key) = match kind {
        Kind::Create => (
            "AccountAssignmentCreationRequestId",
            "AccountAssignmentCreationStatus",
        ),
        Kind::Delete => (
            "AccountAssignmentDeletionRequestId",
            "AccountAssignmentDeletionStatus",
        ),
    };
    let id = text(body, field)?;
    let ops = shared.operations.lock().expect("operations lock");
    let op = ops.get(id).filter(|o| o.kind == kind).ok_or_else(|| {
        AwsError::new(
            "ResourceNotFoundException",
            &format!("Request {id} does not exist"),
        )
    })?;
    Ok(ok(json!({ key: status_json(op) })))
}

fn list_statuses(shared: &Shared, body: &Value, kind: Kind) -> Result<Response> {
    check_instance(shared, body)?;
    let wanted = body["Filter"]["Status"].as_str();
    let ops = shared.operations.lock().expect("operations lock");
    let items = ops
        .iter()
        .filter(|o| o.kind == kind)
        .map(status_json)
        .filter(|s| wanted.is_none_or(|w| s["Status"] == w))
        .map(|s| json!({"Status": s["Status"], "RequestId": s["RequestId"], "CreatedDate": s["CreatedDate"]}))
        .collect();
    let key = match kind {
        Kind::Create => "AccountAssignmentsCreationStatus",
        Kind::Delete => "AccountAssignmentsDeletionStatus",
    };
    paged(body, items, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: &str, account: &str, completes_at: Instant) -> Operation {
        Operation {
            request_id: id.into(),
            kind: Kind::Create,
            assignment: Assignment {
                account_id: account.into(),
                permission_set_arn: "ps".into(),
                principal_type: "GROUP".into(),
                principal_id: "g".into(),
            },
            status: Status::InProgress,
            created: 0.0,
            completes_at,
            fail_with: None,
        }
    }

    /// Only the operations in progress are looked at, each found by its request id, and one
    /// leaves the in-progress set exactly when its time comes.
    #[test]
    fn operations_in_progress_and_by_id_follow_what_settles() {
        let now = Instant::now();
        let mut ops = Operations::default();
        ops.push(op("r1", "111111111111", now));
        ops.push(op(
            "r2",
            "222222222222",
            now + std::time::Duration::from_secs(60),
        ));
        assert_eq!(ops.in_progress().count(), 2);
        assert_eq!(ops.take_due(now), [0]);
        ops.all[0].status = Status::Succeeded;
        let left: Vec<&str> = ops.in_progress().map(|o| o.request_id.as_str()).collect();
        assert_eq!(left, ["r2"]);
        assert!(ops.take_due(now).is_empty());
        assert_eq!(ops.get("r1").map(|o| &o.status), Some(&Status::Succeeded));
        assert_eq!(
            ops.get("r2").map(|o| o.assignment.account_id.as_str()),
            Some("222222222222")
        );
        assert!(ops.get("r3").is_none());
        assert_eq!(ops.iter().count(), 2);
    }
}
