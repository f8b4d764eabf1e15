//! The webhook's request check: credentials and body from an untrusted caller.
#![no_main]

use aws_replicator::config::raw::Serve;
use aws_replicator::secret::Secret;
use aws_replicator::server::check_request;
use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (&str, &str, &[u8])| {
    let (authorization, signature, body) = data;
    let serve = Serve {
        listen: "127.0.0.1:8080".into(),
        webhook_token: Some(Secret::new("token-0123456789abcdef")),
        webhook_hmac_secret: Some(Secret::new("hmac-secret-0123456789")),
        max_body_bytes: 4096,
        run_deadline_seconds: 3600,
        ready_max_age_seconds: 7200,
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(authorization) {
        headers.insert("authorization", v);
    }
    if let Ok(v) = HeaderValue::from_str(signature) {
        headers.insert("x-signature-256", v);
    }
    let _ = check_request(&serve, &headers, body);
    let mut trusted = HeaderMap::new();
    trusted.insert(
        "authorization",
        HeaderValue::from_static("Bearer token-0123456789abcdef"),
    );
    let _ = check_request(&serve, &trusted, body);
});
