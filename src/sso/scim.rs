//! The SCIM client: AWS's documented subset only (aws-sso.md §A, §F), so that what works
//! against the emulator works against AWS. Cursor paging with `count=100` to the last page;
//! member changes as `add`/`remove` on `path: members`, at most 100, one operation per request;
//! a 409 on create adopts the existing group; a DELETE of a missing group counts as done.
//! Retries 429 (honouring `Retry-After`), 5xx and connection errors, never other 4xx.

use crate::directory::{DirectoryError, GroupRecord, Receipt};
use crate::metrics::{RequestObserver, Service};
use crate::model::{ExternalId, GroupId, GroupName, UserId, UserName};
use crate::retry::{RetryPolicy, error_chain};
use crate::secret::Secret;
use crate::tls::TlsSetupError;
use governor::DefaultDirectRateLimiter;
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use url::Url;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const PAGE: usize = 100;
/// AWS's limit on member changes per PATCH and members inline in a create.
pub const MAX_MEMBERS: usize = 100;

pub struct ScimClient {
    http: reqwest::Client,
    base: Url,
    token: Secret,
    limiter: DefaultDirectRateLimiter,
    retry: RetryPolicy,
    calls: AtomicU64,
    observer: Option<Arc<dyn RequestObserver>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse {
    #[serde(rename = "Resources")]
    resources: Option<Vec<Value>>,
    total_results: Option<u64>,
    next_cursor: Option<String>,
}

/// AWS's error body: `status` is a string, `exceptionRequestId` names the request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    detail: Option<String>,
    exception_request_id: Option<String>,
}

struct Answer {
    status: StatusCode,
    body: Value,
    request_id: Option<String>,
}

impl Answer {
    fn receipt(&self) -> Receipt {
        Receipt {
            request_id: self.request_id.clone(),
        }
    }
}

/// One request that did not succeed: whether trying again may help, and when.
struct Failure {
    error: DirectoryError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl ScimClient {
    /// `endpoint` as the AWS console shows it, with or without a trailing slash. Fails only
    /// when this host cannot make HTTPS requests (no CA certificates).
    pub fn new(
        endpoint: &Url,
        token: Secret,
        requests_per_second: f64,
        retry: RetryPolicy,
    ) -> Result<Self, TlsSetupError> {
        let mut base = endpoint.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(match crate::aws::replica() {
                Some(replica) => format!(
                    "aws-replicator/{} replica/{replica}",
                    env!("CARGO_PKG_VERSION")
                ),
                None => concat!("aws-replicator/", env!("CARGO_PKG_VERSION")).to_owned(),
            });
        Ok(Self {
            http: crate::tls::build(http, "the SCIM endpoint")?,
            base,
            token,
            limiter: crate::paced::limiter(requests_per_second),
            retry,
            calls: AtomicU64::new(0),
            observer: None,
        })
    }

    /// Reports every request and retry to `observer` (the metrics).
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observed(&self, operation: &str, status: &str) {
        if let Some(o) = &self.observer {
            o.request(Service::Scim, operation, status);
        }
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.join(path).expect("relative SCIM paths join");
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// One request with retries; the status and JSON body of the final answer, or an error for
    /// anything but 2xx and the statuses the caller accepts.
    async fn call(
        &self,
        operation: &str,
        method: Method,
        url: Url,
        body: Option<&Value>,
        accept: &[StatusCode],
    ) -> Result<Answer, DirectoryError> {
        let mut backoff = self.retry.backoff();
        loop {
            let failure = match self.attempt(operation, &method, &url, body, accept).await {
                Ok(answer) => return Ok(answer),
                Err(f) if f.retryable => f,
                Err(f) => return Err(f.error),
            };
            let Some(delay) = backoff.next() else {
                return Err(failure.error);
            };
            self.pause(operation, delay, &failure).await;
        }
    }

    async fn pause(&self, operation: &str, delay: Duration, failure: &Failure) {
        if let Some(o) = &self.observer {
            o.retry(Service::Scim, operation);
        }
        let delay = self.retry.delay(delay, failure.retry_after);
        tracing::info!(operation, delay_ms = delay.as_millis() as u64, error = %failure.error, "SCIM request failed; retrying");
        tokio::time::sleep(delay).await;
    }

    /// One request under the rate limit, no retry. 429, 5xx and connection failures are
    /// retryable; other statuses are final.
    async fn attempt(
        &self,
        operation: &str,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        accept: &[StatusCode],
    ) -> Result<Answer, Failure> {
        self.limiter.until_ready().await;
        if *method != Method::GET
            && let Err(closed) = crate::fence::check(operation)
        {
            return Err(Failure {
                error: DirectoryError::Other(closed.to_string()),
                retryable: false,
                retry_after: None,
            });
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(self.token.expose())
            .header(header::ACCEPT, "application/scim+json, application/json");
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/scim+json")
                .body(body.to_string());
        }
        let transport_failure = |e: &reqwest::Error| {
            self.observed(operation, "transport");
            Failure {
                error: transport(operation, e),
                retryable: true,
                retry_after: None,
            }
        };
        let response = request.send().await.map_err(|e| transport_failure(&e))?;
        let status = response.status();
        let headers = response.headers();
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let request_id = headers
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.map_err(|e| transport_failure(&e))?;
        self.observed(operation, status.as_str());
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() || accept.contains(&status) {
            return Ok(Answer {
                status,
                body,
                request_id,
            });
        }
        let error: ErrorBody = serde_json::from_value(body).unwrap_or_default();
        let detail = error.detail.unwrap_or_default();
        Err(Failure {
            error: DirectoryError::Aws {
                operation: operation.to_owned(),
                status: status.as_u16(),
                detail: refused_token(status, &detail).unwrap_or(detail),
                request_id: error.exception_request_id.or(request_id),
            },
            retryable: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
            retry_after,
        })
    }

    /// Every resource of a listing, following `nextCursor` to the last page; a cursor that
    /// comes back, or a listing longer than AWS's limits allow, is an error (`crate::paging`).
    async fn list_all(
        &self,
        operation: &'static str,
        path: &str,
        filter: Option<&str>,
    ) -> Result<Vec<Value>, DirectoryError> {
        let count = PAGE.to_string();
        crate::paging::all_pages(operation, crate::paging::SCIM_MAX_PAGES, |cursor| {
            let cursor = cursor.unwrap_or_default();
            let mut query = vec![("cursor", cursor.as_str()), ("count", count.as_str())];
            if let Some(f) = filter {
                query.push(("filter", f));
            }
            let url = self.url(path, &query);
            async move {
                let answer = self.call(operation, Method::GET, url, None, &[]).await?;
                parse_list(operation, answer.status.as_u16(), answer.body)
            }
        })
        .await
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupRecord>, DirectoryError> {
        let resources = self.list_all("ListGroups", "Groups", None).await?;
        Ok(resources.iter().filter_map(group_record).collect())
    }

    pub async fn list_users(&self) -> Result<Vec<(UserId, UserName)>, DirectoryError> {
        let resources = self.list_all("ListUsers", "Users", None).await?;
        Ok(resources.iter().filter_map(user_record).collect())
    }

    /// A group's members (`GET /Users?filter=groups.value eq`), one page per 100 members.
    pub async fn group_members(
        &self,
        group: &GroupId,
    ) -> Result<Vec<(UserId, UserName)>, DirectoryError> {
        let filter = format!("groups.value eq {}", quoted(group.as_str()));
        let resources = self
            .list_all("ListUsers(groups.value)", "Users", Some(&filter))
            .await?;
        Ok(resources.iter().filter_map(user_record).collect())
    }

    /// A user's groups (`GET /Groups?filter=members.value eq`).
    pub async fn groups_of_user(&self, user: &UserId) -> Result<Vec<GroupRecord>, DirectoryError> {
        let filter = format!("members.value eq {}", quoted(user.as_str()));
        let resources = self
            .list_all("ListGroups(members.value)", "Groups", Some(&filter))
            .await?;
        Ok(resources.iter().filter_map(group_record).collect())
    }

    /// The user whose userName is `name`: exactly, or else the one match ignoring case.
    pub async fn find_user(
        &self,
        name: &str,
    ) -> Result<Option<(UserId, UserName)>, DirectoryError> {
        let filter = format!("userName eq {}", quoted(name));
        let resources = self
            .list_all("ListUsers(userName)", "Users", Some(&filter))
            .await?;
        let users: Vec<(UserId, UserName)> = resources.iter().filter_map(user_record).collect();
        Ok(crate::directory::pick_user(
            users.iter().map(|(id, n)| (id, n)),
            name,
        ))
    }

    /// The groups whose `attribute` equals `value` (a filtered listing).
    async fn groups_where(
        &self,
        operation: &'static str,
        attribute: &str,
        value: &str,
    ) -> Result<Vec<GroupRecord>, DirectoryError> {
        let filter = format!("{attribute} eq {}", quoted(value));
        let resources = self.list_all(operation, "Groups", Some(&filter)).await?;
        Ok(resources.iter().filter_map(group_record).collect())
    }

    async fn find_group(
        &self,
        attribute: &str,
        value: &str,
    ) -> Result<Option<GroupRecord>, DirectoryError> {
        let found = self
            .groups_where("ListGroups(adopt)", attribute, value)
            .await?;
        Ok(found.into_iter().next())
    }

    /// POST /Groups with up to 100 members inline. When a POST fails in a way that may have
    /// created the group anyway (throttled, 5xx, connection lost), the group is looked up by
    /// its external id before the next try (aws-sso.md §F.5). A 409 means it exists already: the
    /// group with our external id is adopted, never one that is not ours.
    pub async fn create_group(
        &self,
        name: &GroupName,
        external_id: &ExternalId,
        members: &[UserId],
    ) -> Result<(GroupId, Receipt), DirectoryError> {
        if members.len() > MAX_MEMBERS {
            return Err(DirectoryError::Other(format!(
                "{} members inline; AWS allows {MAX_MEMBERS}",
                members.len()
            )));
        }
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name.as_str(),
            "externalId": external_id.as_str(),
            "members": members.iter().map(|m| json!({"value": m.as_str()})).collect::<Vec<_>>(),
        });
        let url = self.url("Groups", &[]);
        let mut backoff = self.retry.backoff();
        let answer = loop {
            let failure = match self
                .attempt(
                    "CreateGroup",
                    &Method::POST,
                    &url,
                    Some(&body),
                    &[StatusCode::CONFLICT],
                )
                .await
            {
                Ok(answer) => break answer,
                Err(f) if f.retryable => f,
                Err(f) => return Err(f.error),
            };
            let Some(delay) = backoff.next() else {
                return Err(failure.error);
            };
            self.pause("CreateGroup", delay, &failure).await;
            if let Some(g) = self.find_group("externalId", external_id.as_str()).await? {
                return Ok((g.id, Receipt::default()));
            }
        };
        if answer.status != StatusCode::CONFLICT {
            let id = group_record(&answer.body)
                .map(|g| g.id)
                .ok_or_else(|| DirectoryError::Other("CreateGroup: the answer has no id".into()))?;
            return Ok((id, answer.receipt()));
        }
        if let Some(g) = self.find_group("externalId", external_id.as_str()).await? {
            return Ok((g.id, answer.receipt()));
        }
        // The name is taken by a group that is not ours: never adopt it.
        Err(DirectoryError::Conflict {
            name: name.clone(),
            external_id: external_id.clone(),
        })
    }

    pub async fn rename_group(
        &self,
        group: &GroupId,
        name: &GroupName,
    ) -> Result<Receipt, DirectoryError> {
        let body = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "value": {"id": group.as_str(), "displayName": name.as_str()}}]});
        let url = self.url(&format!("Groups/{}", group.as_str()), &[]);
        self.call(
            "PatchGroup(displayName)",
            Method::PATCH,
            url,
            Some(&body),
            &[],
        )
        .await
        .map(|a| a.receipt())
    }

    async fn change_members(
        &self,
        op: &str,
        group: &GroupId,
        members: &[UserId],
    ) -> Result<Receipt, DirectoryError> {
        if members.is_empty() {
            return Ok(Receipt::default());
        }
        if members.len() > MAX_MEMBERS {
            return Err(DirectoryError::Other(format!(
                "{} member changes; AWS allows {MAX_MEMBERS} per request",
                members.len()
            )));
        }
        let body = json!({"schemas": [PATCH_OP], "Operations": [{
            "op": op, "path": "members",
            "value": members.iter().map(|m| json!({"value": m.as_str()})).collect::<Vec<_>>()}]});
        let url = self.url(&format!("Groups/{}", group.as_str()), &[]);
        self.call(
            &format!("PatchGroup({op} members)"),
            Method::PATCH,
            url,
            Some(&body),
            &[],
        )
        .await
        .map(|a| a.receipt())
    }

    pub async fn add_members(
        &self,
        group: &GroupId,
        members: &[UserId],
    ) -> Result<Receipt, DirectoryError> {
        self.change_members("add", group, members).await
    }

    pub async fn remove_members(
        &self,
        group: &GroupId,
        members: &[UserId],
    ) -> Result<Receipt, DirectoryError> {
        self.change_members("remove", group, members).await
    }

    /// DELETE /Groups/{id}; a group that is already gone counts as deleted.
    pub async fn delete_group(&self, group: &GroupId) -> Result<Receipt, DirectoryError> {
        let url = self.url(&format!("Groups/{}", group.as_str()), &[]);
        self.call(
            "DeleteGroup",
            Method::DELETE,
            url,
            None,
            &[StatusCode::NOT_FOUND],
        )
        .await
        .map(|a| a.receipt())
    }
}

/// One page of a SCIM listing: its resources and the cursor of the next page, if any. Anything
/// else (not JSON, not a ListResponse) is an error naming the operation.
pub fn parse_list(
    operation: &str,
    status: u16,
    body: Value,
) -> Result<(Vec<Value>, Option<String>), DirectoryError> {
    let page: ListResponse = serde_json::from_value(body).map_err(|e| DirectoryError::Aws {
        operation: operation.to_owned(),
        status,
        detail: format!("not a SCIM ListResponse: {e}"),
        request_id: None,
    })?;
    let next = page.next_cursor.filter(|c| !c.is_empty());
    // An empty listing is accepted in the shapes docs/aws-wire-reference.md §5.5 documents:
    // `Resources: []` (cursor mode has no `totalResults`; with it, it must be 0), or no
    // `Resources` with `totalResults: 0` (RFC 7644 lets an empty result leave them out).
    // Anything else is not a listing, and reading it as "nothing there" would be a partial
    // read taken for the truth.
    let refused = |detail: String| DirectoryError::Aws {
        operation: operation.to_owned(),
        status,
        detail: format!("not a SCIM ListResponse: {detail}"),
        request_id: None,
    };
    match (page.resources, page.total_results) {
        (Some(resources), Some(total)) if resources.is_empty() && total > 0 && next.is_none() => {
            Err(refused(format!(
                "totalResults is {total} but the last page holds no Resources"
            )))
        }
        (Some(resources), _) => Ok((resources, next)),
        (None, Some(0)) => Ok((Vec::new(), next)),
        (None, _) => Err(refused("no Resources and no totalResults of 0".into())),
    }
}

/// The groups and users of a page; entries without an id or a name are skipped.
pub fn records(resources: &[Value]) -> (Vec<GroupRecord>, Vec<(UserId, UserName)>) {
    (
        resources.iter().filter_map(group_record).collect(),
        resources.iter().filter_map(user_record).collect(),
    )
}

/// A SCIM filter value: quoted, with `"` and `\` escaped.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn group_record(v: &Value) -> Option<GroupRecord> {
    Some(GroupRecord {
        id: GroupId::from(v["id"].as_str()?),
        name: GroupName::from(v["displayName"].as_str()?),
        external_id: v["externalId"].as_str().map(ExternalId::from),
    })
}

fn user_record(v: &Value) -> Option<(UserId, UserName)> {
    Some((
        UserId::from(v["id"].as_str()?),
        UserName::from(v["userName"].as_str()?),
    ))
}

/// What a 401 or 403 means for the token, and the fix; `None` for other statuses. AWS answers
/// 401 for a wrong, deleted or expired token (and a wrong tenant id in the endpoint), and a token
/// expires one year after it was generated (aws-sso.md §A).
fn refused_token(status: StatusCode, detail: &str) -> Option<String> {
    let aws = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    match status {
        StatusCode::UNAUTHORIZED => Some(format!(
            "AWS did not accept the SCIM access token{aws}; it is wrong, was deleted, or expired: a token expires one year after it was generated; fix: generate a new one (IAM Identity Center console, Settings, Identity source, Manage provisioning, Access tokens) and set iam-configuration.aws-sso.sso-access-token to it, and check that iam-configuration.aws-sso.scim-endpoint is this instance's"
        )),
        StatusCode::FORBIDDEN => Some(format!(
            "AWS denied the request made with the SCIM access token{aws}; fix: check that automatic provisioning is still enabled on the identity source (IAM Identity Center console, Settings, Identity source) and that iam-configuration.aws-sso.sso-access-token is an access token of this instance's automatic provisioning, and that no proxy between refused it"
        )),
        _ => None,
    }
}

/// A request that got no answer, in one sentence: the endpoint, the innermost cause, the fix.
/// Nothing answered, so the token was not checked: the message does not blame it.
fn transport(operation: &str, e: &reqwest::Error) -> DirectoryError {
    let endpoint = e
        .url()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|| "the SCIM endpoint".into());
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let message = if e.is_connect() {
        format!(
            "could not reach the SCIM endpoint at {endpoint} ({cause}); fix: check iam-configuration.aws-sso.scim-endpoint, DNS, the network or proxy (nothing answered, so the token was not checked)"
        )
    } else if e.is_timeout() {
        format!(
            "no answer from the SCIM endpoint at {endpoint} in time ({cause}); the network or AWS is slow"
        )
    } else {
        error_chain(e)
    };
    DirectoryError::Transport {
        operation: operation.to_owned(),
        message,
    }
}

impl crate::directory::IdentityStore for ScimClient {
    async fn list_groups(&self) -> Result<Vec<GroupRecord>, DirectoryError> {
        ScimClient::list_groups(self).await
    }

    async fn groups_with_external_id(
        &self,
        external_id: &ExternalId,
    ) -> Result<Vec<GroupRecord>, DirectoryError> {
        self.groups_where("ListGroups(externalId)", "externalId", external_id.as_str())
            .await
    }

    async fn groups_named(&self, name: &GroupName) -> Result<Vec<GroupRecord>, DirectoryError> {
        self.groups_where("ListGroups(displayName)", "displayName", name.as_str())
            .await
    }

    async fn group_members(
        &self,
        group: &GroupId,
    ) -> Result<Vec<(UserId, UserName)>, DirectoryError> {
        ScimClient::group_members(self, group).await
    }

    async fn groups_of_user(&self, user: &UserId) -> Result<Vec<GroupId>, DirectoryError> {
        Ok(ScimClient::groups_of_user(self, user)
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect())
    }

    async fn find_user(&self, name: &str) -> Result<Option<(UserId, UserName)>, DirectoryError> {
        ScimClient::find_user(self, name).await
    }

    async fn list_users(&self) -> Result<Vec<(UserId, UserName)>, DirectoryError> {
        ScimClient::list_users(self).await
    }

    async fn create_group(
        &self,
        name: &GroupName,
        external_id: &ExternalId,
        members: &[UserId],
    ) -> Result<(GroupId, Receipt), DirectoryError> {
        ScimClient::create_group(self, name, external_id, members).await
    }

    async fn rename_group(
        &self,
        group: &GroupId,
        name: &GroupName,
    ) -> Result<Receipt, DirectoryError> {
        ScimClient::rename_group(self, group, name).await
    }

    async fn add_members(
        &self,
        group: &GroupId,
        members: &[UserId],
    ) -> Result<Receipt, DirectoryError> {
        ScimClient::add_members(self, group, members).await
    }

    async fn remove_members(
        &self,
        group: &GroupId,
        members: &[UserId],
    ) -> Result<Receipt, DirectoryError> {
        ScimClient::remove_members(self, group, members).await
    }

    async fn delete_group(&self, group: &GroupId) -> Result<Receipt, DirectoryError> {
        ScimClient::delete_group(self, group).await
    }

    fn calls_made(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

    #[test]
    fn the_endpoint_joins_with_or_without_a_trailing_slash() {
        for endpoint in [
            "https://scim.eu-central-1.amazonaws.com/abc-123/scim/v2",
            "https://scim.eu-central-1.amazonaws.com/abc-123/scim/v2/",
        ] {
            let client = ScimClient::new(
                &Url::parse(endpoint).unwrap(),
                Secret::new("t"),
                1.0,
                RetryPolicy::aws(),
            )
            .unwrap();
            assert_eq!(
                client.url("Groups/g1", &[]).as_str(),
                "https://scim.eu-central-1.amazonaws.com/abc-123/scim/v2/Groups/g1"
            );
        }
    }

    /// Bodies a listing must refuse rather than read as "nothing there".
    #[test]
    fn a_listing_is_a_listing_or_an_error() {
        let refused = [
            json!(null),
            json!("Resources"),
            json!([]),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400"}),
            json!({"totalResults": 3}),
            json!({"Resources": {"id": "g1"}}),
            json!({"Resources": [], "nextCursor": 7}),
        ];
        for body in refused {
            let err = parse_list("ListGroups", 200, body.clone()).unwrap_err();
            assert!(err.to_string().contains("ListGroups"), "{body}: {err}");
        }
        // The empty shapes AWS's documentation shows (cursor mode, index mode, RFC 7644's).
        for body in [
            json!({"schemas": [LIST], "itemsPerPage": 0, "Resources": []}),
            json!({"schemas": [LIST], "totalResults": 0, "itemsPerPage": 0, "startIndex": 1, "Resources": []}),
            json!({"schemas": [LIST], "totalResults": 0}),
        ] {
            let (empty, next) = parse_list("ListGroups", 200, body.clone()).unwrap();
            assert!(empty.is_empty() && next.is_none(), "{body}");
        }
        // An empty last page that claims results is a listing cut short.
        let err = parse_list(
            "ListGroups",
            200,
            json!({"schemas": [LIST], "totalResults": 3, "Resources": []}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("totalResults is 3"), "{err}");
        let (one, next) = parse_list(
            "ListGroups",
            200,
            json!({"Resources": [{"id": "g1", "displayName": "mst-a"}, {"id": 5}], "nextCursor": ""}),
        )
        .unwrap();
        assert_eq!((records(&one).0.len(), next), (1, None));
    }

    #[test]
    fn filter_values_are_quoted_and_escaped() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
