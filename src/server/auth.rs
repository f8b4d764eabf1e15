//! Who may call the authenticated routes (`POST /v1/sync`, `GET /v1/runs[/{id}]`,
//! `GET /v1/saml-roles`), and what a sync request asks for.
//!
//! Two schemes, either one enough:
//! - `Authorization: Bearer <replicator.serve.webhook-token>`.
//! - `X-Timestamp: <Unix seconds>` and `X-Signature-256: sha256=<hex>`, the HMAC-SHA256 with
//!   `webhook-hmac-secret` of [`canonical`]: timestamp, method, path with query, body. A
//!   timestamp more than [`WINDOW_SECONDS`] from the server's clock is refused, and so is a
//!   signature already seen within that window ([`Replays`]), so a captured request cannot be
//!   sent again, nor its signature moved to another route.
//!
//! The checks are pure: the clock and the replay cache come in as arguments, so tests and the
//! fuzz target drive them directly.

use crate::config::raw::Serve;
use crate::desired::Scope;
use crate::model::ProjectKey;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use std::collections::HashMap;

/// How far a signed request's `X-Timestamp` may be from the server's clock, either way.
pub const WINDOW_SECONDS: u64 = 300;

/// Signatures remembered at most; past it, signed requests are refused until some expire.
/// Only correctly signed requests are remembered, so only a holder of the secret can fill it.
pub const REPLAY_CAPACITY: usize = 10_000;

/// What the checks read of a request.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// A refusal: the status and a message for the caller.
pub type Refusal = (StatusCode, String);

/// The signatures accepted within the last [`WINDOW_SECONDS`], each until its timestamp leaves
/// the window (after that the timestamp check refuses it anyway).
#[derive(Debug)]
pub struct Replays {
    seen: HashMap<[u8; 32], u64>,
    capacity: usize,
}

impl Default for Replays {
    fn default() -> Self {
        Self::with_capacity(REPLAY_CAPACITY)
    }
}

impl Replays {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Remembers `signature` until `expires` (Unix seconds); `Err` if it was seen already or
    /// the cache is full of signatures still in their window.
    fn insert(&mut self, signature: [u8; 32], expires: u64, now: u64) -> Result<(), Refusal> {
        if self.seen.contains_key(&signature) {
            return Err((
                StatusCode::UNAUTHORIZED,
                "replayed: this signature was already used; sign each request with a fresh X-Timestamp".into(),
            ));
        }
        if self.seen.len() >= self.capacity {
            self.seen.retain(|_, expires| *expires >= now);
        }
        if self.seen.len() >= self.capacity {
            // Forgetting a signature early would let it be replayed: refuse instead.
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "more than {} signed requests in the last {WINDOW_SECONDS} s; retry later",
                    self.capacity
                ),
            ));
        }
        self.seen.insert(signature, expires);
        Ok(())
    }
}

/// The signed text: `"{timestamp}\n{METHOD}\n{path?query}\n"` followed by the raw body bytes.
/// The timestamp is the `X-Timestamp` header as sent; the path is the request target as the
/// server receives it (`/v1/runs?limit=1`), without scheme or host.
pub fn canonical(timestamp: &str, method: &Method, uri: &Uri, body: &[u8]) -> Vec<u8> {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut text = format!("{timestamp}\n{}\n{target}\n", method.as_str()).into_bytes();
    text.extend_from_slice(body);
    text
}

/// Checks the caller's credentials: a matching bearer token, or a fresh, unseen, valid HMAC
/// signature (remembered in `replays`). `now` is in Unix seconds.
pub fn authenticate(
    serve: &Serve,
    caller: &Caller<'_>,
    now: u64,
    replays: &mut Replays,
) -> Result<(), Refusal> {
    if serve.webhook_token.is_none() && serve.webhook_hmac_secret.is_none() {
        return Err((
            StatusCode::FORBIDDEN,
            "authenticated routes are off: set replicator.serve.webhook-token or webhook-hmac-secret".into(),
        ));
    }
    let header = |name: &str| caller.headers.get(name).and_then(|v| v.to_str().ok());
    if let (Some(token), Some(sent)) = (
        &serve.webhook_token,
        header(header::AUTHORIZATION.as_str()).and_then(|v| v.strip_prefix("Bearer ")),
    ) && same_token(token.expose(), sent)
    {
        return Ok(());
    }
    match (&serve.webhook_hmac_secret, header("x-signature-256")) {
        (Some(secret), Some(signature)) => {
            let timestamp = header("x-timestamp").unwrap_or_default();
            signed(secret.expose(), caller, timestamp, signature, now, replays)
        }
        _ => Err((
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer <token>`, or `X-Timestamp: <Unix seconds>` with \
             `X-Signature-256: sha256=<hex HMAC-SHA256 of \"{timestamp}\\n{METHOD}\\n{path?query}\\n\" + body>`"
                .into(),
        )),
    }
}

fn signed(
    secret: &str,
    caller: &Caller<'_>,
    timestamp: &str,
    signature: &str,
    now: u64,
    replays: &mut Replays,
) -> Result<(), Refusal> {
    let refuse = |message: String| Err((StatusCode::UNAUTHORIZED, message));
    let Some(sent) = timestamp
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| timestamp.parse::<u64>().ok())
        .flatten()
    else {
        return refuse(
            "bad timestamp: X-Timestamp must be the Unix time in seconds (`date +%s`)".into(),
        );
    };
    let Some(signature) = signature
        .strip_prefix("sha256=")
        .and_then(hex)
        .and_then(|s| <[u8; 32]>::try_from(s).ok())
    else {
        return refuse("bad signature: X-Signature-256 must be sha256=<64 hex digits>".into());
    };
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length works");
    mac.update(&canonical(
        timestamp,
        caller.method,
        caller.uri,
        caller.body,
    ));
    if mac.verify_slice(&signature).is_err() {
        return refuse(
            "bad signature: expected the HMAC-SHA256 of \"{timestamp}\\n{METHOD}\\n{path?query}\\n\" followed by the body"
                .into(),
        );
    }
    if sent.abs_diff(now) > WINDOW_SECONDS {
        return refuse(format!(
            "stale: X-Timestamp {sent} is more than {WINDOW_SECONDS} s from the server's clock ({now}); sign with the current time"
        ));
    }
    replays.insert(signature, sent.saturating_add(WINDOW_SECONDS), now)
}

/// Equal tokens, compared in constant time: an HMAC of each side hides where they differ,
/// whatever the lengths.
fn same_token(expected: &str, sent: &str) -> bool {
    let digest = |v: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"aws-replicator token check")
            .expect("any key length works");
        mac.update(v.as_bytes());
        mac
    };
    let expected = digest(expected).finalize().into_bytes();
    digest(sent).verify_slice(&expected).is_ok()
}

/// `POST /v1/sync` with an empty body (everything), `{"workspace": …}` (that workspace's
/// projects) or `{"workspace": …, "project": …}` (one project).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncRequest {
    workspace: String,
    project: Option<String>,
}

/// Who may call and what they ask for: the caller's credentials ([`authenticate`]), then the
/// body (empty for everything, or one project).
pub fn check_request(
    serve: &Serve,
    caller: &Caller<'_>,
    now: u64,
    replays: &mut Replays,
) -> Result<Scope, Refusal> {
    authenticate(serve, caller, now, replays)?;
    let body = caller.body;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Scope::All);
    }
    match serde_json::from_slice::<SyncRequest>(body) {
        Ok(r)
            if valid_identifier(&r.workspace)
                && r.project.as_deref().is_none_or(valid_identifier) =>
        {
            let workspace = r.workspace.as_str();
            Ok(match r.project {
                Some(project) => Scope::projects([ProjectKey::new(workspace, project.as_str())]),
                None => Scope::workspaces([workspace.into()]),
            })
        }
        Ok(_) => Err((
            StatusCode::BAD_REQUEST,
            "workspace and project are meshStack identifiers: lowercase letters, digits and -"
                .into(),
        )),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            format!(
                "expected an empty body, {{\"workspace\": \"…\"}} or {{\"workspace\": \"…\", \"project\": \"…\"}}: {e}"
            ),
        )),
    }
}

fn valid_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use axum::http::HeaderValue;

    const SECRET: &str = "hmac-secret-0123456789";
    const NOW: u64 = 1_800_000_000;

    fn serve() -> Serve {
        Serve {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: None,
            webhook_token: Some(Secret::new("token-0123456789abcdef")),
            webhook_hmac_secret: Some(Secret::new(SECRET)),
            max_body_bytes: 4096,
            run_deadline_seconds: 3600,
            ready_max_age_seconds: None,
        }
    }

    fn sign(timestamp: &str, method: &Method, uri: &Uri, body: &[u8]) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&canonical(timestamp, method, uri, body));
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256={hex}")
    }

    fn headers(timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-timestamp", HeaderValue::from_str(timestamp).unwrap());
        headers.insert("x-signature-256", HeaderValue::from_str(signature).unwrap());
        headers
    }

    /// The check of a request signed at `signed_at` for `(method, uri, body)`, sent as
    /// `(method, sent_uri, body)` and checked at `now`.
    fn check(
        signed_at: u64,
        method: &Method,
        uri: &str,
        sent_uri: &str,
        body: &[u8],
        now: u64,
        replays: &mut Replays,
    ) -> Result<Scope, Refusal> {
        let ts = signed_at.to_string();
        let signature = sign(&ts, method, &uri.parse().unwrap(), body);
        let headers = headers(&ts, &signature);
        let uri: Uri = sent_uri.parse().unwrap();
        let caller = Caller {
            method,
            uri: &uri,
            headers: &headers,
            body,
        };
        check_request(&serve(), &caller, now, replays)
    }

    fn refusal(result: Result<Scope, Refusal>) -> (StatusCode, String) {
        result.expect_err("refused")
    }

    #[test]
    fn a_fresh_signature_passes_once_and_its_replay_is_refused() {
        let mut replays = Replays::default();
        let body = br#"{"workspace": "acme", "project": "web"}"#;
        let post = Method::POST;
        let first = check(NOW, &post, "/v1/sync", "/v1/sync", body, NOW, &mut replays);
        assert!(matches!(first, Ok(Scope::Only { .. })), "{first:?}");
        let (status, message) = refusal(check(
            NOW,
            &post,
            "/v1/sync",
            "/v1/sync",
            body,
            NOW + 10,
            &mut replays,
        ));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(message.starts_with("replayed"), "{message}");
        // A new timestamp makes a new signature.
        let again = check(
            NOW + 1,
            &post,
            "/v1/sync",
            "/v1/sync",
            body,
            NOW + 10,
            &mut replays,
        );
        assert!(again.is_ok(), "{again:?}");
    }

    #[test]
    fn a_timestamp_more_than_five_minutes_off_either_way_is_stale() {
        for signed_at in [NOW - WINDOW_SECONDS - 1, NOW + WINDOW_SECONDS + 1] {
            let (status, message) = refusal(check(
                signed_at,
                &Method::POST,
                "/v1/sync",
                "/v1/sync",
                b"",
                NOW,
                &mut Replays::default(),
            ));
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(message.starts_with("stale"), "{message}");
        }
        for signed_at in [NOW - WINDOW_SECONDS, NOW + WINDOW_SECONDS] {
            let edge = check(
                signed_at,
                &Method::POST,
                "/v1/sync",
                "/v1/sync",
                b"",
                NOW,
                &mut Replays::default(),
            );
            assert!(edge.is_ok(), "{signed_at}: {edge:?}");
        }
    }

    #[test]
    fn the_signature_covers_method_path_query_and_body() {
        let get = Method::GET;
        let ok = check(
            NOW,
            &get,
            "/v1/runs?x=1",
            "/v1/runs?x=1",
            b"",
            NOW,
            &mut Replays::default(),
        );
        assert!(ok.is_ok(), "{ok:?}");
        for (method, sent) in [
            (&Method::POST, "/v1/runs?x=1"),
            (&get, "/v1/runs?x=2"),
            (&get, "/v1/runs"),
            (&get, "/v1/runs/1?x=1"),
        ] {
            let ts = NOW.to_string();
            let signature = sign(&ts, &get, &"/v1/runs?x=1".parse().unwrap(), b"");
            let headers = headers(&ts, &signature);
            let uri: Uri = sent.parse().unwrap();
            let caller = Caller {
                method,
                uri: &uri,
                headers: &headers,
                body: b"",
            };
            let (status, message) =
                authenticate(&serve(), &caller, NOW, &mut Replays::default()).unwrap_err();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {sent}");
            assert!(message.starts_with("bad signature"), "{message}");
        }
        // The body: signed empty, sent with a scope.
        let ts = NOW.to_string();
        let signature = sign(&ts, &Method::POST, &"/v1/sync".parse().unwrap(), b"");
        let headers = headers(&ts, &signature);
        let uri: Uri = "/v1/sync".parse().unwrap();
        let caller = Caller {
            method: &Method::POST,
            uri: &uri,
            headers: &headers,
            body: br#"{"workspace": "acme", "project": "web"}"#,
        };
        let (_, message) =
            check_request(&serve(), &caller, NOW, &mut Replays::default()).unwrap_err();
        assert!(message.starts_with("bad signature"), "{message}");
    }

    #[test]
    fn the_old_body_only_signature_and_bad_timestamps_are_refused() {
        let body = b"";
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        let old: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let uri: Uri = "/v1/sync".parse().unwrap();
        for (timestamp, message) in [
            (None, "bad timestamp"),
            (Some("soon"), "bad timestamp"),
            (Some("-1"), "bad timestamp"),
            (Some("99999999999999999999999"), "bad timestamp"),
            (Some("1800000000"), "bad signature"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-signature-256",
                HeaderValue::from_str(&format!("sha256={old}")).unwrap(),
            );
            if let Some(t) = timestamp {
                headers.insert("x-timestamp", HeaderValue::from_str(t).unwrap());
            }
            let caller = Caller {
                method: &Method::POST,
                uri: &uri,
                headers: &headers,
                body,
            };
            let (status, got) =
                check_request(&serve(), &caller, NOW, &mut Replays::default()).unwrap_err();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(got.starts_with(message), "{timestamp:?}: {got}");
        }
    }

    #[test]
    fn the_replay_cache_forgets_expired_signatures_and_refuses_when_full_of_live_ones() {
        let mut replays = Replays::with_capacity(3);
        let post = Method::POST;
        for i in 0..3 {
            let ok = check(
                NOW + i,
                &post,
                "/v1/sync",
                "/v1/sync",
                b"",
                NOW,
                &mut replays,
            );
            assert!(ok.is_ok(), "{ok:?}");
        }
        let (status, message) = refusal(check(
            NOW + 3,
            &post,
            "/v1/sync",
            "/v1/sync",
            b"",
            NOW,
            &mut replays,
        ));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{message}");
        assert_eq!(replays.len(), 3);
        // Once the first ones' window has passed, they make room; the cache never grows.
        let later = NOW + WINDOW_SECONDS + 2;
        let ok = check(
            later,
            &post,
            "/v1/sync",
            "/v1/sync",
            b"",
            later,
            &mut replays,
        );
        assert!(ok.is_ok(), "{ok:?}");
        assert!(replays.len() <= 3);
    }

    #[test]
    fn the_bearer_token_still_works_and_nothing_is_open_without_a_secret() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer token-0123456789abcdef"),
        );
        let uri: Uri = "/v1/runs".parse().unwrap();
        let caller = Caller {
            method: &Method::GET,
            uri: &uri,
            headers: &headers,
            body: b"",
        };
        let mut replays = Replays::default();
        assert!(authenticate(&serve(), &caller, NOW, &mut replays).is_ok());
        assert!(replays.is_empty());
        let off = Serve {
            webhook_token: None,
            webhook_hmac_secret: None,
            ..serve()
        };
        let (status, _) = authenticate(&off, &caller, NOW, &mut replays).unwrap_err();
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
