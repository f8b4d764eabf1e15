//! The webhook's request check: credentials and body from an untrusted caller, against a fixed
//! clock and a replay cache that lives across inputs (as the server's does).
#![no_main]

use aws_replicator::config::raw::Serve;
use aws_replicator::secret::Secret;
use aws_replicator::server::{Caller, Replays, check_request};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use std::sync::{LazyLock, Mutex};

const NOW: u64 = 1_800_000_000;

static REPLAYS: LazyLock<Mutex<Replays>> = LazyLock::new(|| Mutex::new(Replays::with_capacity(64)));

fuzz_target!(|data: (&str, &str, &str, &str, &[u8])| {
    let (authorization, signature, timestamp, target, body) = data;
    let serve = Serve {
        listen: "127.0.0.1:8080".into(),
        webhook_token: Some(Secret::new("token-0123456789abcdef")),
        webhook_hmac_secret: Some(Secret::new("hmac-secret-0123456789")),
        max_body_bytes: 4096,
        run_deadline_seconds: 3600,
        ready_max_age_seconds: 7200,
    };
    let uri: Uri = target.parse().unwrap_or_else(|_| Uri::from_static("/v1/sync"));
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("authorization", authorization),
        ("x-signature-256", signature),
        ("x-timestamp", timestamp),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    let mut replays = REPLAYS.lock().unwrap();
    let caller = Caller {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
        body,
    };
    let _ = check_request(&serve, &caller, NOW, &mut replays);
    let mut trusted = HeaderMap::new();
    trusted.insert(
        "authorization",
        HeaderValue::from_static("Bearer token-0123456789abcdef"),
    );
    let caller = Caller {
        headers: &trusted,
        ..caller
    };
    let _ = check_request(&serve, &caller, NOW, &mut replays);
});
