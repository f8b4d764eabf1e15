//! The meshStack API client: authentication, versioned media types, HAL paging and retries
//! (meshstack-api.md §12). Reads only; one request at a time, as meshStack asks.

use super::payload::{Kind, Page, PageInfo};
use crate::config::{Auth, MeshStackConfig};
use crate::retry::{RetryPolicy, error_chain};
use crate::secret::Secret;
use governor::DefaultDirectRateLimiter;
use reqwest::{StatusCode, header};
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum MeshStackError {
    /// This host cannot make HTTPS requests (no CA certificates).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsSetupError),
    /// 401: the credentials are wrong or expired (with an API key, after one fresh login).
    #[error(
        "meshStack at {endpoint} rejected the credentials (HTTP 401) for {request}; fix: check meshstack.credentials ({mode}): {fix}"
    )]
    Unauthorized {
        endpoint: String,
        request: String,
        mode: &'static str,
        fix: &'static str,
    },
    /// 403: the credentials are valid but may not read this.
    #[error(
        "meshStack at {endpoint} refused {request} (HTTP 403): the credentials in meshstack.credentials are valid but lack permission {permission}; fix: grant it to the API key"
    )]
    Forbidden {
        endpoint: String,
        request: String,
        permission: &'static str,
    },
    #[error(
        "meshStack at {endpoint} does not serve {media_type} at {path} (HTTP {status}); it may be too old or too new for this replicator (set meshstack.tenant-api-version for tenants)"
    )]
    MediaType {
        endpoint: String,
        path: String,
        media_type: &'static str,
        status: u16,
    },
    /// A 2xx answer of another media type than requested: not meshStack's API answering (a
    /// proxy's or login page, the web UI), or another kind or version.
    #[error(
        "meshStack at {endpoint} answered GET {url} with HTTP {status} and {got}, but {wanted} was requested; fix: check that meshstack.base-url is meshStack's API address and that no proxy or login page answers in its place"
    )]
    WrongMediaType {
        endpoint: String,
        url: String,
        status: u16,
        /// `content type …`, or `no content type`.
        got: String,
        wanted: &'static str,
    },
    #[error("meshStack at {endpoint} answered {request} with HTTP {status}")]
    Status {
        endpoint: String,
        request: String,
        status: u16,
    },
    /// Nothing answered: refused, no route, the name does not resolve.
    #[error(
        "could not connect to meshStack at {endpoint} ({cause}), {attempts} attempts with backoff; nothing answered, so the credentials were not checked; fix: check meshstack.base-url, DNS, the network or proxy, and that meshStack is up"
    )]
    Unreachable {
        endpoint: String,
        cause: String,
        attempts: usize,
    },
    #[error(
        "meshStack at {endpoint} did not answer {request} within {timeout:?}, {attempts} attempts with backoff; no plan is made from a partial read; fix: check that meshStack is up and the network or proxy to meshstack.base-url"
    )]
    Timeout {
        endpoint: String,
        request: String,
        timeout: Duration,
        attempts: usize,
    },
    /// The connection broke after it was made (reset, closed before the whole answer).
    #[error(
        "the connection to meshStack at {endpoint} broke during {request} ({cause}), {attempts} attempts with backoff; no plan is made from a partial read; fix: check the network or proxy to meshstack.base-url and meshStack's health"
    )]
    Broken {
        endpoint: String,
        request: String,
        cause: String,
        attempts: usize,
    },
    /// The TLS handshake failed: not retried, another attempt meets the same certificate.
    #[error(
        "TLS with meshStack at {endpoint} failed ({cause}); fix: check that meshstack.base-url is meshStack's https address (a server that speaks plain http fails this way) and that this host trusts its certificate (the system's CA certificates, or SSL_CERT_FILE for a private CA)"
    )]
    TlsHandshake { endpoint: String, cause: String },
    /// 5xx on every attempt.
    #[error(
        "meshStack at {endpoint} answered {request} with HTTP {status} on all {attempts} attempts (retried with backoff); no plan is made from a partial read; fix: meshStack is failing or restarting (its gateway answers 503 for minutes after a restart): check its health; the next run reads again"
    )]
    ServerError {
        endpoint: String,
        request: String,
        status: u16,
        attempts: usize,
    },
    /// 429 on every attempt.
    #[error(
        "meshStack at {endpoint} throttled {request} (HTTP 429) on all {attempts} attempts (retried after its Retry-After); no plan is made from a partial read; fix: lower replicator.rate-limits.meshstack"
    )]
    Throttled {
        endpoint: String,
        request: String,
        attempts: usize,
    },
    #[error("meshStack returned a malformed {kind} page at {path}: {field}: {message}")]
    Payload {
        kind: &'static str,
        path: String,
        field: String,
        message: String,
    },
    /// The API key login answered, but not with a token (the credentials were accepted or not
    /// checked: a 401 or 403 is [`MeshStackError::Unauthorized`]).
    #[error(
        "the API key login at {endpoint} (POST /api/login) failed: {detail}; fix: check that meshstack.base-url is meshStack's API address"
    )]
    Login { endpoint: String, detail: String },
    #[error("meshStack pointed to {0}, outside {1}; refusing to send credentials there")]
    ForeignLink(String, String),
    /// A listing that cannot be shown to be whole: read as complete, it would revoke access.
    #[error(
        "meshStack's listing at {url} is not complete: {detail}; no plan is made from a partial read (the next run reads it again)"
    )]
    Incomplete { url: String, detail: String },
    #[error(
        "meshStack has no project {0} (or it is being deleted); check the workspace and project the sync was asked for"
    )]
    UnknownProjects(String),
    /// A single-object read answered with another object: taken as the one asked for, it would
    /// move one project's (or user's) access onto another.
    #[error(
        "meshStack answered the read of {kind} {asked} with {kind} {got}; nothing is planned from it (the next run reads it again)"
    )]
    WrongObject {
        kind: &'static str,
        asked: String,
        got: String,
    },
    /// A 2xx answer of the requested media type whose body is not a HAL page.
    #[error("meshStack answered GET {url} with {detail}; expected a {media_type} document")]
    NotAPage {
        url: String,
        media_type: &'static str,
        detail: String,
    },
}

struct Token {
    value: Secret,
    renew_at: Instant,
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    page_size: u32,
    retry: RetryPolicy,
    /// How long one request may take, answer included.
    timeout: Duration,
    limiter: DefaultDirectRateLimiter,
    token: Mutex<Option<Token>>,
    one_at_a_time: Mutex<()>,
    /// `serve`'s metrics: every request and retry, by kind of object and answer.
    observer: Option<std::sync::Arc<dyn crate::metrics::RequestObserver>>,
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Retry {
        failure: Transient,
        after: Option<Duration>,
    },
    Fatal(MeshStackError),
    Reauthenticate,
}

/// A failure that another attempt may not meet; after the last attempt, the error it names.
enum Transient {
    Unreachable { cause: String },
    Timeout { request: String },
    Broken { request: String, cause: String },
    Status { request: String, status: u16 },
}

impl Transient {
    fn gave_up(self, client: &Client, attempts: usize) -> MeshStackError {
        let endpoint = client.endpoint();
        match self {
            Transient::Unreachable { cause } => MeshStackError::Unreachable {
                endpoint,
                cause,
                attempts,
            },
            Transient::Timeout { request } => MeshStackError::Timeout {
                endpoint,
                request,
                timeout: client.timeout,
                attempts,
            },
            Transient::Broken { request, cause } => MeshStackError::Broken {
                endpoint,
                request,
                cause,
                attempts,
            },
            Transient::Status {
                request,
                status: 429,
            } => MeshStackError::Throttled {
                endpoint,
                request,
                attempts,
            },
            Transient::Status { request, status } => MeshStackError::ServerError {
                endpoint,
                request,
                status,
                attempts,
            },
        }
    }

    /// For the log line of a retry.
    fn why(&self) -> String {
        match self {
            Transient::Unreachable { cause } => format!("could not connect: {cause}"),
            Transient::Timeout { .. } => "timed out".to_owned(),
            Transient::Broken { cause, .. } => format!("connection broke: {cause}"),
            Transient::Status { status, .. } => format!("HTTP {status}"),
        }
    }
}

impl Client {
    /// Fails only when this host cannot make HTTPS requests (no CA certificates).
    pub fn new(
        config: &MeshStackConfig,
        requests_per_second: f64,
        retry: RetryPolicy,
    ) -> Result<Self, MeshStackError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("aws-replicator/", env!("CARGO_PKG_VERSION")));
        Ok(Self {
            http: crate::tls::build(http, "meshStack")?,
            base: config.base_url.clone(),
            auth: config.auth.clone(),
            page_size: config.page_size,
            retry,
            timeout: Duration::from_secs(60),
            limiter: crate::paced::limiter(requests_per_second),
            token: Mutex::new(None),
            one_at_a_time: Mutex::new(()),
            observer: None,
        })
    }

    /// Reports every request and retry to `observer` (`api_requests_total{service="meshstack"}`).
    pub fn observed(
        mut self,
        observer: std::sync::Arc<dyn crate::metrics::RequestObserver>,
    ) -> Self {
        self.observer = Some(observer);
        self
    }

    fn report(&self, operation: &str, status: &str) {
        if let Some(o) = &self.observer {
            o.request(crate::metrics::Service::MeshStack, operation, status);
        }
    }

    /// How long one request may take (60 s unless set here).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// meshstack.base-url as errors name it: without user info, which could be a secret.
    fn endpoint(&self) -> String {
        let mut url = self.base.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.as_str().trim_end_matches('/').to_owned()
    }

    /// Every item of `kind` matching `query`, following `_links.next` to the last page. The
    /// listing must show that it is whole (see [`Progress`]); anything else is an error.
    pub async fn list<T: DeserializeOwned>(
        &self,
        kind: Kind,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, MeshStackError> {
        let mut url = self.base.join(kind.path()).expect("static paths join");
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
            pairs.append_pair("page", "0");
            pairs.append_pair("size", &self.page_size.to_string());
        }
        let mut items = Vec::new();
        let mut seen_links = HashSet::new();
        let mut progress = Progress::default();
        loop {
            seen_links.insert(normalized(&url));
            let body = self.get(&url, kind).await?;
            let page: Page<T> = parse_page(&body, kind, &url)?;
            let mut embedded = page.embedded;
            let found = embedded.remove(kind.embedded_key()).unwrap_or_default();
            let next = page.links.and_then(|l| l.next);
            progress
                .page(page.page.as_ref(), found.len(), next.is_some())
                .map_err(|detail| incomplete(&url, detail))?;
            items.extend(found);
            let Some(next) = next else {
                return Ok(items);
            };
            let next = self.same_origin(&next.href)?;
            if seen_links.contains(&normalized(&next)) {
                return Err(incomplete(
                    &url,
                    format!("its next link {} was followed before", next.as_str()),
                ));
            }
            url = next;
        }
    }

    /// One object of `kind` by its identifier (`workspace.project` for projects), `None` when
    /// meshStack answers 404.
    pub async fn get_one<T: DeserializeOwned>(
        &self,
        kind: Kind,
        identifier: &str,
    ) -> Result<Option<T>, MeshStackError> {
        let mut url = self.base.join(kind.path()).expect("static paths join");
        url.path_segments_mut()
            .expect("an http URL has segments")
            .push(identifier);
        let body = match self.get(&url, kind).await {
            Ok(body) => body,
            Err(MeshStackError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut de = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut de)
            .map(Some)
            .map_err(|e| MeshStackError::Payload {
                kind: kind.embedded_key(),
                path: url.path().to_owned(),
                field: e.path().to_string(),
                message: e.into_inner().to_string(),
            })
    }

    fn same_origin(&self, href: &str) -> Result<Url, MeshStackError> {
        let url = self
            .base
            .join(href)
            .map_err(|_| MeshStackError::ForeignLink(href.to_owned(), self.base.to_string()))?;
        if url.origin() != self.base.origin() {
            return Err(MeshStackError::ForeignLink(
                url.to_string(),
                self.base.to_string(),
            ));
        }
        Ok(url)
    }

    /// One GET with authentication and retries; the body of a 2xx answer. Transport failures
    /// (but TLS), 429 and 5xx are retried with the policy's backoff; the error after the last
    /// attempt says what happened and how often it was tried.
    async fn get(&self, url: &Url, kind: Kind) -> Result<bytes::Bytes, MeshStackError> {
        let path = url.path().to_owned();
        let mut backoff = self.retry.backoff();
        let mut relogged = false;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = self.attempt(url, kind).await;
            let (failure, after) = match outcome {
                Ok(body) => return Ok(body),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Reauthenticate) if !relogged => {
                    relogged = true;
                    *self.token.lock().await = None;
                    continue;
                }
                Err(Attempt::Reauthenticate) => {
                    return Err(self.unauthorized(format!("GET {path}")));
                }
                Err(Attempt::Retry { failure, after }) => (failure, after),
            };
            let Some(delay) = backoff.next() else {
                return Err(failure.gave_up(self, attempts));
            };
            let delay = self.retry.delay(delay, after);
            if let Some(o) = &self.observer {
                o.retry(crate::metrics::Service::MeshStack, operation(kind));
            }
            tracing::info!(
                path,
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                why = failure.why(),
                "meshStack request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn unauthorized(&self, request: String) -> MeshStackError {
        let (mode, fix) = match self.auth {
            Auth::Basic { .. } => (
                "api-user",
                "the API user's username or password is wrong, or the user was removed",
            ),
            Auth::ApiKey { .. } => (
                "api-key",
                "the client id or secret is wrong, or the API key expired or was deleted",
            ),
        };
        MeshStackError::Unauthorized {
            endpoint: self.endpoint(),
            request,
            mode,
            fix,
        }
    }

    /// A request that got no (whole) answer: TLS failures are final, the rest retried.
    fn transport(&self, request: &str, e: &reqwest::Error) -> Attempt {
        let cause = transport_cause(e);
        if e.is_timeout() {
            return Attempt::Retry {
                failure: Transient::Timeout {
                    request: request.to_owned(),
                },
                after: None,
            };
        }
        if is_tls(e) {
            return Attempt::Fatal(MeshStackError::TlsHandshake {
                endpoint: self.endpoint(),
                cause,
            });
        }
        let failure = if e.is_connect() {
            Transient::Unreachable { cause }
        } else {
            Transient::Broken {
                request: request.to_owned(),
                cause,
            }
        };
        Attempt::Retry {
            failure,
            after: None,
        }
    }

    async fn attempt(&self, url: &Url, kind: Kind) -> Result<bytes::Bytes, Attempt> {
        let path = url.path().to_owned();
        let request_name = format!("GET {path}");
        // One request at a time across every task sharing this client (the crawl, webhooks'
        // reads, point reads), as meshStack asks of each API key.
        let _one = self.one_at_a_time.lock().await;
        self.limiter.until_ready().await;
        let request = self
            .http
            .get(url.clone())
            .timeout(self.timeout)
            .header(header::ACCEPT, kind.media_type());
        let request = match &self.auth {
            Auth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
            Auth::ApiKey { .. } => {
                let token = self.token().await?;
                request.bearer_auth(token.expose())
            }
        };
        let response = request.send().await.map_err(|e| {
            self.report(operation(kind), "transport");
            self.transport(&request_name, &e)
        })?;
        let status = response.status();
        self.report(operation(kind), status.as_str());
        match status {
            s if s.is_success() => {
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !same_media_type(content_type, kind.media_type()) {
                    return Err(Attempt::Fatal(MeshStackError::WrongMediaType {
                        endpoint: self.endpoint(),
                        url: url.to_string(),
                        status: s.as_u16(),
                        got: if content_type.is_empty() {
                            "no content type".to_owned()
                        } else {
                            format!("content type {content_type}")
                        },
                        wanted: kind.media_type(),
                    }));
                }
                response
                    .bytes()
                    .await
                    .map_err(|e| self.transport(&request_name, &e))
            }
            StatusCode::UNAUTHORIZED => match self.auth {
                Auth::ApiKey { .. } => Err(Attempt::Reauthenticate),
                Auth::Basic { .. } => Err(Attempt::Fatal(self.unauthorized(request_name))),
            },
            StatusCode::FORBIDDEN => Err(Attempt::Fatal(MeshStackError::Forbidden {
                endpoint: self.endpoint(),
                request: request_name,
                permission: permission(kind),
            })),
            StatusCode::NOT_ACCEPTABLE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Err(Attempt::Fatal(MeshStackError::MediaType {
                    endpoint: self.endpoint(),
                    path,
                    media_type: kind.media_type(),
                    status: status.as_u16(),
                }))
            }
            s => Err(self.status(request_name, s, response.headers())),
        }
    }

    /// A status that is neither success nor about credentials or media types: 429 and 5xx are
    /// retried (after `Retry-After` when sent), the rest are final.
    fn status(&self, request: String, status: StatusCode, headers: &header::HeaderMap) -> Attempt {
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let after = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            )
            .then(|| retry_after(headers))
            .flatten();
            return Attempt::Retry {
                failure: Transient::Status {
                    request,
                    status: status.as_u16(),
                },
                after,
            };
        }
        Attempt::Fatal(MeshStackError::Status {
            endpoint: self.endpoint(),
            request,
            status: status.as_u16(),
        })
    }

    /// A bearer token from `POST /api/login`, renewed 30 s before it expires. A login that
    /// gets no answer, 429 or 5xx is retried as the request it is for; 401 and 403 blame the
    /// credentials.
    async fn token(&self) -> Result<Secret, Attempt> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(t.value.clone());
        }
        let Auth::ApiKey {
            client_id,
            client_secret,
        } = &self.auth
        else {
            unreachable!("tokens are only used with API keys");
        };
        let login_failed = |detail: String| {
            Attempt::Fatal(MeshStackError::Login {
                endpoint: self.endpoint(),
                detail,
            })
        };
        let body =
            serde_json::json!({ "clientId": client_id, "clientSecret": client_secret.expose() });
        let mut url = self.base.join("/api/login").expect("static path joins");
        // The login may redirect (307) to meshStack's identity provider; follow it on the same
        // origin only, so the secret never leaves the configured host.
        for _ in 0..3 {
            let request_name = format!("POST {}", url.path());
            self.limiter.until_ready().await;
            let response = self
                .http
                .post(url.clone())
                .timeout(self.timeout)
                .json(&body)
                .send()
                .await
                .map_err(|e| {
                    self.report("login", "transport");
                    self.transport(&request_name, &e)
                })?;
            let status = response.status();
            self.report("login", status.as_str());
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| {
                        login_failed(format!("HTTP {} without Location", status.as_u16()))
                    })?;
                url = self.same_origin(location).map_err(Attempt::Fatal)?;
                continue;
            }
            match status {
                s if s.is_success() => {}
                StatusCode::UNAUTHORIZED => {
                    return Err(Attempt::Fatal(self.unauthorized(request_name)));
                }
                StatusCode::FORBIDDEN => {
                    return Err(Attempt::Fatal(MeshStackError::Forbidden {
                        endpoint: self.endpoint(),
                        request: request_name,
                        permission: "to log in (the API key may be disabled)",
                    }));
                }
                s => return Err(self.status(request_name, s, response.headers())),
            }
            #[derive(serde::Deserialize)]
            struct TokenResponse {
                access_token: String,
                expires_in: u64,
            }
            let parsed: TokenResponse = response
                .json()
                .await
                .map_err(|_| login_failed("the answer is not a token response".into()))?;
            let lifetime = Duration::from_secs(parsed.expires_in);
            let token = Token {
                value: Secret::new(parsed.access_token),
                renew_at: Instant::now() + lifetime.saturating_sub(Duration::from_secs(30)),
            };
            let value = token.value.clone();
            *slot = Some(token);
            return Ok(value);
        }
        Err(login_failed("too many redirects".into()))
    }
}

/// Whether a `Content-Type` names `wanted`, ignoring case and parameters such as `charset`.
fn same_media_type(content_type: &str, wanted: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(wanted))
}

fn incomplete(url: &Url, detail: String) -> MeshStackError {
    MeshStackError::Incomplete {
        url: url.to_string(),
        detail,
    }
}

/// How far a listing has come, page by page; it decides whether the listing is whole.
///
/// Spring's pages say where they stand (`page.number`, `totalElements`, `totalPages`): a
/// listing must end on its last page with every item it announced, count its pages up from 0
/// without repeating one, and announce the same totals on every page (offset paging over
/// changing data can skip or repeat items; the next run reads again). A page without a `page`
/// block is taken as meshStack's single page, which leaves it out.
#[derive(Debug, Default)]
pub(super) struct Progress {
    pages: u64,
    received: u64,
    total_elements: Option<u64>,
    total_pages: Option<u64>,
}

impl Progress {
    /// Takes one page: its `page` block, its number of items, and whether it links a next one.
    pub(super) fn page(
        &mut self,
        info: Option<&PageInfo>,
        items: usize,
        has_next: bool,
    ) -> Result<(), String> {
        let index = self.pages;
        self.pages += 1;
        self.received += items as u64;
        if let Some(info) = info {
            if let Some(number) = info.number
                && number != index
            {
                return Err(if number < index {
                    format!("page {number} was served again as page {index}")
                } else {
                    format!("page {index} was answered by page {number}")
                });
            }
            same_total(
                &mut self.total_elements,
                info.total_elements,
                "totalElements",
            )?;
            same_total(&mut self.total_pages, info.total_pages, "totalPages")?;
        } else if index > 0 {
            return Err(format!("page {index} has no page block"));
        }
        if let Some(total) = self.total_elements
            && self.received > total
        {
            return Err(format!(
                "{} items arrived, more than the {total} announced (totalElements)",
                self.received
            ));
        }
        let last = self.total_pages.map(|t| t.max(1) - 1);
        if has_next {
            if let Some(last) = last
                && index >= last
            {
                return Err(format!(
                    "page {index} links a next page, but totalPages says it is the last"
                ));
            }
            return Ok(());
        }
        if let Some(last) = last
            && index != last
        {
            return Err(format!(
                "it ended at page {index} without a next link, but totalPages says the last is page {last}"
            ));
        }
        if let Some(total) = self.total_elements
            && self.received != total
        {
            return Err(format!(
                "it ended with {} items, but totalElements says {total}",
                self.received
            ));
        }
        Ok(())
    }
}

fn same_total(seen: &mut Option<u64>, now: Option<u64>, name: &str) -> Result<(), String> {
    match (*seen, now) {
        (Some(before), Some(now)) if before != now => Err(format!(
            "{name} changed from {before} to {now} while it was read"
        )),
        (_, Some(now)) => {
            *seen = Some(now);
            Ok(())
        }
        (_, None) => Ok(()),
    }
}

/// A link with its query pairs sorted, so that the same page is recognized however the server
/// orders its parameters.
fn normalized(url: &Url) -> String {
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    pairs.sort();
    format!(
        "{}{}?{pairs:?}",
        url.origin().ascii_serialization(),
        url.path()
    )
}

pub(super) fn parse_page<T: DeserializeOwned>(
    body: &[u8],
    kind: Kind,
    url: &Url,
) -> Result<Page<T>, MeshStackError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let page: Page<T> =
        serde_path_to_error::deserialize(&mut de).map_err(|e| MeshStackError::Payload {
            kind: kind.embedded_key(),
            path: url.path().to_owned(),
            field: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
    // Items under another key mean another kind or version than asked for.
    if let Some(other) = page.embedded.keys().find(|k| *k != kind.embedded_key()) {
        return Err(MeshStackError::Payload {
            kind: kind.embedded_key(),
            path: url.path().to_owned(),
            field: format!("_embedded.{other}"),
            message: format!("expected _embedded.{}", kind.embedded_key()),
        });
    }
    if page.page.is_none() && page.links.is_none() {
        return Err(MeshStackError::NotAPage {
            url: url.to_string(),
            media_type: kind.media_type(),
            detail: "a body that is not a HAL page (no `page` and no `_links`)".to_owned(),
        });
    }
    Ok(page)
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The innermost cause of a transport failure ("Connection refused", "received corrupt
/// message", "operation timed out"), without reqwest's outer layers, which repeat the URL.
fn transport_cause(e: &reqwest::Error) -> String {
    let mut deepest = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        deepest = Some(s);
        source = s.source();
    }
    deepest.map_or_else(|| error_chain(e), ToString::to_string)
}

/// Whether the TLS handshake failed: tokio-rustls hands rustls's errors on as `InvalidData` I/O
/// errors (which reqwest wraps in another I/O error), and a plain TCP connection never raises
/// that kind.
fn is_tls(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        // An I/O error's `source` skips the error it wraps; `get_ref` reaches it.
        let mut io = s.downcast_ref::<std::io::Error>();
        while let Some(error) = io {
            if error.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
            io = error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<std::io::Error>());
        }
        source = s.source();
    }
    false
}

/// The API-key permission each read needs (meshstack-api.md §2).
fn permission(kind: Kind) -> &'static str {
    match kind {
        Kind::ProjectRoles => "(none: project roles are readable by every key)",
        Kind::Projects => "ADM_PROJECT_LIST",
        Kind::TenantsV3 | Kind::TenantsV4 => "ADM_TENANT_LIST",
        Kind::Users => "ADM_USER_LIST",
        Kind::WorkspaceUserGroups => "ADM_WORKSPACEUSERGROUP_LIST",
        Kind::UserBindings | Kind::GroupBindings => "ADM_PROJECTPRINCIPALROLE_LIST",
    }
}

/// The operation label of a request for `kind`: the collection's name (`meshprojects`,
/// `userbindings`), whether listed or read one by one.
fn operation(kind: Kind) -> &'static str {
    kind.path().rsplit('/').next().unwrap_or("meshobjects")
}

#[cfg(test)]
mod tests {
    use super::{PageInfo, Progress, same_media_type};

    fn info(number: u64, total_elements: u64, total_pages: u64) -> PageInfo {
        PageInfo {
            number: Some(number),
            total_elements: Some(total_elements),
            total_pages: Some(total_pages),
        }
    }

    /// Pages as (page block, items, has next); the listing's verdict.
    fn walk(pages: &[(Option<PageInfo>, usize, bool)]) -> Result<(), String> {
        let mut progress = Progress::default();
        pages
            .iter()
            .try_for_each(|(i, n, next)| progress.page(i.as_ref(), *n, *next))
    }

    #[test]
    fn a_whole_listing_passes() {
        assert_eq!(
            walk(&[
                (Some(info(0, 5, 3)), 2, true),
                (Some(info(1, 5, 3)), 2, true),
                (Some(info(2, 5, 3)), 1, false)
            ]),
            Ok(())
        );
    }

    #[test]
    fn an_empty_listing_is_one_that_says_so() {
        // Spring's empty page: totalElements 0, totalPages 0.
        assert_eq!(walk(&[(Some(info(0, 0, 0)), 0, false)]), Ok(()));
        assert_eq!(walk(&[(Some(info(0, 0, 1)), 0, false)]), Ok(()));
        // A single page without a page block (only `self`), as meshStack sends a short list.
        assert_eq!(walk(&[(None, 0, false)]), Ok(()));
    }

    #[test]
    fn a_short_last_page_is_an_error() {
        let err = walk(&[
            (Some(info(0, 6, 2)), 4, true),
            (Some(info(1, 6, 2)), 0, false),
        ])
        .unwrap_err();
        assert!(err.contains("4 items, but totalElements says 6"), "{err}");
    }

    #[test]
    fn ending_before_the_last_page_is_an_error() {
        let err = walk(&[(Some(info(0, 6, 3)), 2, false)]).unwrap_err();
        assert!(err.contains("the last is page 2"), "{err}");
    }

    #[test]
    fn a_repeated_or_skipped_page_is_an_error() {
        let err = walk(&[
            (Some(info(0, 4, 2)), 2, true),
            (Some(info(0, 4, 2)), 2, false),
        ])
        .unwrap_err();
        assert!(err.contains("page 0 was served again"), "{err}");
        let err = walk(&[
            (Some(info(0, 6, 3)), 2, true),
            (Some(info(2, 6, 3)), 2, false),
        ])
        .unwrap_err();
        assert!(err.contains("answered by page 2"), "{err}");
    }

    #[test]
    fn totals_that_change_while_read_are_an_error() {
        let err = walk(&[
            (Some(info(0, 4, 2)), 2, true),
            (Some(info(1, 5, 3)), 2, true),
        ])
        .unwrap_err();
        assert!(err.contains("totalElements changed from 4 to 5"), "{err}");
    }

    #[test]
    fn more_items_or_pages_than_announced_are_an_error() {
        let err = walk(&[(Some(info(0, 1, 1)), 2, false)]).unwrap_err();
        assert!(err.contains("more than the 1 announced"), "{err}");
        let err = walk(&[(Some(info(0, 2, 1)), 2, true)]).unwrap_err();
        assert!(err.contains("says it is the last"), "{err}");
        let err = walk(&[(Some(info(0, 2, 2)), 1, true), (None, 1, false)]).unwrap_err();
        assert!(err.contains("no page block"), "{err}");
    }

    #[test]
    fn media_types_compare_without_parameters_or_case() {
        let v2 = "application/vnd.meshcloud.api.meshproject.v2.hal+json";
        assert!(same_media_type(v2, v2));
        assert!(same_media_type(
            "Application/vnd.meshcloud.api.meshproject.v2.hal+json;charset=UTF-8",
            v2
        ));
        assert!(!same_media_type("application/hal+json", v2));
        assert!(!same_media_type("text/html", v2));
        assert!(!same_media_type("", v2));
    }
}
