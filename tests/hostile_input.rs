//! Hostile input against every parser that reads what others send: the Dhall config loader, the
//! format-pattern engine, meshStack payloads, SCIM responses, snapshots and the webhook request
//! check. Random input, shaped and unshaped, must give an error or a value, never a panic; and
//! no request without valid credentials ever gets through the webhook check.

use aws_replicator::config::Config;
use aws_replicator::config::raw::Serve;
use aws_replicator::format::Pattern;
use aws_replicator::meshstack::{self, payload::Kind};
use aws_replicator::secret::Secret;
use aws_replicator::server::{Caller, Replays, WINDOW_SECONDS, canonical, check_request};
use aws_replicator::snapshot::Snapshot;
use aws_replicator::sso::scim;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use proptest::prelude::*;
use serde_json::Value;

/// JSON values of any shape, with the keys the parsers look for mixed into random ones.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("Resources".to_owned()),
        Just("nextCursor".to_owned()),
        Just("id".to_owned()),
        Just("displayName".to_owned()),
        Just("userName".to_owned()),
        Just("_embedded".to_owned()),
        Just("_links".to_owned()),
        Just("page".to_owned()),
        Just("metadata".to_owned()),
        Just("spec".to_owned()),
        "[a-zA-Z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn serve() -> Serve {
    Serve {
        listen: "127.0.0.1:8080".into(),
        metrics_listen: None,
        webhook_token: Some(Secret::new("token-0123456789abcdef")),
        webhook_hmac_secret: Some(Secret::new("hmac-secret-0123456789")),
        max_body_bytes: 4096,
        run_deadline_seconds: 3600,
        ready_max_age_seconds: None,
    }
}

/// The server's clock in these tests, in Unix seconds.
const NOW: u64 = 1_800_000_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn format_patterns(source in ".{0,24}|[%$0-9sdx.-]{0,16}", arity in 0usize..5) {
        if let Ok(pattern) = Pattern::compile(&source, arity) {
            let args: Vec<String> = (0..arity).map(|i| format!("a{i}")).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = pattern.render(&args);
        }
    }

    #[test]
    fn meshstack_pages(value in json(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let text = value.to_string();
        for kind in Kind::ALL {
            let _ = meshstack::parse_page(kind, text.as_bytes());
            let _ = meshstack::parse_page(kind, &bytes);
        }
    }

    #[test]
    fn scim_listings(value in json()) {
        if let Ok((resources, _)) = scim::parse_list("ListGroups", 200, value.clone()) {
            let _ = scim::records(&resources);
        }
        if let Value::Array(items) = &value {
            let _ = scim::records(items);
        }
    }

    #[test]
    fn snapshots(value in json(), text in ".{0,64}") {
        let _ = Snapshot::from_json(&value.to_string(), "hostile");
        let _ = Snapshot::from_json(&text, "hostile");
    }

    #[test]
    fn webhook_requests(
        authorization in prop::option::of(".{0,40}"),
        signature in prop::option::of("(sha256=)?[0-9a-fA-F]{0,70}"),
        timestamp in prop::option::of("[0-9]{0,12}|.{0,12}"),
        target in "/[a-z0-9/?=&%-]{0,30}",
        body in prop::collection::vec(any::<u8>(), 0..128),
        json_body in json(),
    ) {
        let uri: Uri = target.parse().unwrap_or_else(|_| Uri::from_static("/v1/sync"));
        for body in [body, json_body.to_string().into_bytes()] {
            let mut headers = HeaderMap::new();
            if let Some(v) = authorization.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert("authorization", v);
            }
            if let Some(v) = signature.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert("x-signature-256", v);
            }
            if let Some(v) = timestamp.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert("x-timestamp", v);
            }
            let caller = Caller { method: &Method::POST, uri: &uri, headers: &headers, body: &body };
            let mut replays = Replays::default();
            match check_request(&serve(), &caller, NOW, &mut replays) {
                // Random credentials are never right.
                Ok(scope) => prop_assert!(false, "accepted {scope:?}"),
                Err((status, _)) => prop_assert_eq!(status, StatusCode::UNAUTHORIZED),
            }
            prop_assert!(replays.is_empty(), "a refused request was remembered");
            // With the right token, the body alone decides: a scope or a 400, never a panic.
            let mut headers = HeaderMap::new();
            headers.insert(
                "authorization",
                HeaderValue::from_static("Bearer token-0123456789abcdef"),
            );
            let caller = Caller { headers: &headers, ..caller };
            if let Err((status, _)) = check_request(&serve(), &caller, NOW, &mut replays) {
                prop_assert_eq!(status, StatusCode::BAD_REQUEST);
            }
        }
    }

    /// A correctly signed request passes once within the window (then the body decides), is
    /// refused when sent again, and is refused at any clock more than five minutes away.
    #[test]
    fn signed_requests_pass_once_and_only_while_fresh(
        skew in -400i64..400,
        target in "/[a-z0-9/?=&%-]{0,30}",
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let uri: Uri = target.parse().unwrap_or_else(|_| Uri::from_static("/v1/sync"));
        let timestamp = NOW.to_string();
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"hmac-secret-0123456789").unwrap();
        hmac::Mac::update(&mut mac, &canonical(&timestamp, &Method::POST, &uri, &body));
        let hex: String = hmac::Mac::finalize(mac).into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let mut headers = HeaderMap::new();
        headers.insert("x-timestamp", HeaderValue::from_str(&timestamp).unwrap());
        headers.insert("x-signature-256", HeaderValue::from_str(&format!("sha256={hex}")).unwrap());
        let caller = Caller { method: &Method::POST, uri: &uri, headers: &headers, body: &body };
        let now = NOW.checked_add_signed(skew).unwrap();
        let mut replays = Replays::default();
        let first = check_request(&serve(), &caller, now, &mut replays);
        if skew.unsigned_abs() > WINDOW_SECONDS {
            let (status, message) = first.unwrap_err();
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
            prop_assert!(message.starts_with("stale"), "{}", message);
        } else {
            if let Err((status, message)) = &first {
                prop_assert_eq!(*status, StatusCode::BAD_REQUEST, "{}", message);
            }
            let (status, message) = check_request(&serve(), &caller, now, &mut replays).unwrap_err();
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
            prop_assert!(message.starts_with("replayed"), "{}", message);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The Dhall engine on random text and on mangled copies of the example config.
    #[test]
    fn dhall_configs(noise in ".{0,40}", cut in 0usize..4000, insert in ".{0,8}") {
        let dir = tempfile::tempdir().unwrap();
        let example = std::fs::read_to_string("config/demo.dhall").unwrap().replace(
            "./types/package.dhall",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/types/package.dhall"),
        );
        let at = example.floor_char_boundary(cut.min(example.len()));
        let mangled = format!("{}{insert}{}", &example[..at], &example[at..]);
        for (n, text) in [noise, mangled].into_iter().enumerate() {
            let path = dir.path().join(format!("{n}.dhall"));
            std::fs::write(&path, text).unwrap();
            let _ = Config::load(&path);
        }
    }
}
