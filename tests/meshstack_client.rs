//! The meshStack client against the fixture server: paging, both auth modes, token expiry,
//! media types, retries, and reads that must fail rather than yield a partial snapshot.

mod common;

use aws_replicator::config::Config;
use aws_replicator::meshstack::{Api, MeshStackError, RetryPolicy, Source};
use aws_replicator::snapshot::{Snapshot, Subject};
use common::meshstack_fixture::{AuthMode, Fault, Fixture, Script};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn sample() -> Snapshot {
    Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap()
}

fn basic() -> AuthMode {
    AuthMode::Basic {
        username: "replicator".into(),
        password: "pa55:word".into(),
    }
}

fn api_key() -> AuthMode {
    AuthMode::ApiKey {
        client_id: "replicator".into(),
        client_secret: "s3cret".into(),
    }
}

/// The demo config pointed at the fixture, with the given auth, tenant version and page size.
fn config(base_url: &str, auth: &AuthMode, tenants: &str, page_size: u32, expand: bool) -> Config {
    let root = env!("CARGO_MANIFEST_DIR");
    let credentials = match auth {
        AuthMode::Basic { username, password } => {
            format!(
                "MS.Credentials.api-user {{ username = \"{username}\", password = \"{password}\" }}"
            )
        }
        AuthMode::ApiKey {
            client_id,
            client_secret,
        } => {
            format!(
                "MS.Credentials.api-key {{ client-id = \"{client_id}\", client-secret = \"{client_secret}\" }}"
            )
        }
    };
    let text = format!(
        "let base = {root}/config/demo.dhall\n\
         let MS = {root}/config/types/MeshStack.dhall Text\n\
         in base // {{ meshstack = base.meshstack // {{ base-url = \"{base_url}\", page-size = {page_size}, \
         credentials = {credentials}, tenant-api-version = MS.TenantApiVersion.{tenants}, \
         expand-group-bindings = {expand} }} }}\n",
        expand = if expand { "True" } else { "False" }
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.dhall");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

async fn read(config: &Config) -> Result<Snapshot, MeshStackError> {
    Api::new(config, fast_retries())?.snapshot().await
}

/// The sample snapshot as the client must return it: sorted as the client sorts.
fn expected() -> Snapshot {
    let mut s = sample();
    s.roles.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    s.projects.sort_by_key(|a| a.key());
    s.tenants.sort_by_key(|a| a.key());
    s.users.sort_by(|a, b| a.username.cmp(&b.username));
    s.bindings.sort_by(|a, b| {
        (&a.workspace, &a.project, &a.role, &a.subject).cmp(&(
            &b.workspace,
            &b.project,
            &b.role,
            &b.subject,
        ))
    });
    // Bindings are read only for projects with a tenant on this platform.
    s.bindings.retain(|b| {
        s.tenants
            .iter()
            .any(|t| t.workspace == b.workspace && t.project == b.project)
    });
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_every_kind_across_pages_with_basic_auth() {
    let other = [
        ("aws.other-location", "acme", "web"),
        ("azure.west", "initech", "ml"),
    ];
    let fx = Fixture::start(&sample(), &other, basic(), Script::default()).await;
    let snapshot = read(&config(&fx.base_url, &basic(), "v3", 2, true))
        .await
        .unwrap();
    assert_eq!(snapshot, expected());
    let requests = fx.requests();
    // Several pages of every kind were read (page size 2).
    for kind in [
        "meshprojects",
        "meshusers",
        "meshprojectroles",
        "meshtenants",
        "userbindings",
    ] {
        assert!(
            requests.iter().filter(|r| r.contains(kind)).count() >= 2,
            "{kind}: {requests:?}"
        );
    }
    assert!(
        requests
            .iter()
            .all(|r| !r.contains("meshtenants")
                || r.contains("platformIdentifier=aws.aws-meshcloud"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_v3_and_v4_give_the_same_snapshot() {
    let other = [("aws.other-location", "acme", "web")];
    let fx = Fixture::start(&sample(), &other, basic(), Script::default()).await;
    let v3 = read(&config(&fx.base_url, &basic(), "v3", 3, true))
        .await
        .unwrap();
    let v4 = read(&config(&fx.base_url, &basic(), "v4", 3, true))
        .await
        .unwrap();
    assert_eq!(v3, v4);
    assert_eq!(v3, expected());
}

#[tokio::test(flavor = "multi_thread")]
async fn group_bindings_are_read_and_can_be_switched_off() {
    let fx = Fixture::start(&sample(), &[], basic(), Script::default()).await;
    let with = read(&config(&fx.base_url, &basic(), "v3", 1000, true))
        .await
        .unwrap();
    assert!(
        with.bindings
            .iter()
            .any(|b| b.subject == Subject::Group("devs".into()))
    );
    assert_eq!(with.groups.len(), 1);
    let without = read(&config(&fx.base_url, &basic(), "v3", 1000, false))
        .await
        .unwrap();
    assert!(
        without
            .bindings
            .iter()
            .all(|b| matches!(b.subject, Subject::User(_)))
    );
    assert!(without.groups.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_logs_in_and_logs_in_again_once_when_the_token_expires() {
    let script = Script {
        token_uses: Some(5),
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], api_key(), script).await;
    let snapshot = read(&config(&fx.base_url, &api_key(), "v3", 2, true))
        .await
        .unwrap();
    assert_eq!(snapshot, expected());
    assert!(
        fx.logins() >= 2,
        "expired tokens were renewed: {} logins",
        fx.logins()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_login_follows_a_redirect_on_the_same_origin() {
    let script = Script {
        login_redirect: true,
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], api_key(), script).await;
    let snapshot = read(&config(&fx.base_url, &api_key(), "v3", 1000, true))
        .await
        .unwrap();
    assert_eq!(snapshot, expected());
    assert_eq!(fx.logins(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_fail_without_retrying() {
    let fx = Fixture::start(&sample(), &[], basic(), Script::default()).await;
    let wrong = AuthMode::Basic {
        username: "replicator".into(),
        password: "nope".into(),
    };
    let err = read(&config(&fx.base_url, &wrong, "v3", 1000, true))
        .await
        .unwrap_err();
    assert!(matches!(err, MeshStackError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("meshstack.credentials"));
    assert!(
        !err.to_string().contains("nope"),
        "the password must not appear: {err}"
    );
    assert_eq!(fx.requests().len(), 1);

    let fx = Fixture::start(&sample(), &[], api_key(), Script::default()).await;
    let wrong = AuthMode::ApiKey {
        client_id: "replicator".into(),
        client_secret: "wr0ng-s3cret".into(),
    };
    let err = read(&config(&fx.base_url, &wrong, "v3", 1000, true))
        .await
        .unwrap_err();
    assert!(matches!(err, MeshStackError::Unauthorized { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("POST /api/login"), "{text}");
    assert!(text.contains("meshstack.credentials (api-key)"), "{text}");
    assert!(text.contains(&fx.base_url), "names the endpoint: {text}");
    assert!(!text.contains("wr0ng-s3cret"), "{err}");
    assert_eq!(fx.logins(), 0);
}

/// A token that meshStack stops accepting is renewed once; a 401 to the fresh one blames the
/// credentials (a key that lost its access while logged in).
#[tokio::test(flavor = "multi_thread")]
async fn a_401_to_a_fresh_token_names_the_credentials() {
    let script = Script {
        token_uses: Some(0),
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], api_key(), script).await;
    let err = read(&config(&fx.base_url, &api_key(), "v3", 1000, true))
        .await
        .unwrap_err();
    assert!(matches!(err, MeshStackError::Unauthorized { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("(HTTP 401) for GET /api/meshobjects/"),
        "{text}"
    );
    assert!(text.contains("meshstack.credentials (api-key)"), "{text}");
    assert!(text.contains(&fx.base_url), "{text}");
    assert!(
        !text.contains("s3cret") && !text.contains("token-"),
        "{text}"
    );
    assert_eq!(fx.logins(), 2, "logged in once more, then gave up");
}

/// 403: the credentials work but may not read users; the error names the permission and
/// `meshstack.credentials`, and is not retried.
#[tokio::test(flavor = "multi_thread")]
async fn a_403_names_the_permission_and_the_credentials() {
    let script = Script {
        faults: vec![Fault {
            matching: "meshusers".into(),
            status: 403,
            retry_after: None,
            times: 100,
        }],
        ..Script::default()
    };
    for auth in [basic(), api_key()] {
        let script = Script {
            faults: script.faults.clone(),
            ..Script::default()
        };
        let fx = Fixture::start(&sample(), &[], auth.clone(), script).await;
        let err = read(&config(&fx.base_url, &auth, "v3", 1000, true))
            .await
            .unwrap_err();
        assert!(matches!(err, MeshStackError::Forbidden { .. }), "{err}");
        let text = err.to_string();
        for part in [
            "(HTTP 403)",
            "GET /api/meshobjects/meshusers",
            "meshstack.credentials",
            "ADM_USER_LIST",
            fx.base_url.as_str(),
        ] {
            assert!(text.contains(part), "{part:?} in: {text}");
        }
        let users = fx
            .requests()
            .iter()
            .filter(|r| r.contains("meshusers"))
            .count();
        assert_eq!(users, 1, "a 403 is not retried");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unserved_media_type_names_it() {
    let script = Script {
        unserved: vec![(
            "meshtenants",
            "application/vnd.meshcloud.api.meshtenant.v4.hal+json",
        )],
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], basic(), script).await;
    let err = read(&config(&fx.base_url, &basic(), "v4", 1000, true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MeshStackError::MediaType { status: 406, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("application/vnd.meshcloud.api.meshtenant.v4.hal+json")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_project_roles_fall_back_to_the_config() {
    let script = Script {
        unserved: vec![(
            "meshprojectroles",
            "application/vnd.meshcloud.api.meshprojectrole.v1.hal+json",
        )],
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], basic(), script).await;
    let snapshot = read(&config(&fx.base_url, &basic(), "v3", 1000, true))
        .await
        .unwrap();
    assert!(snapshot.roles.is_empty());
    assert_eq!(snapshot.projects, expected().projects);
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_for_retry_after_on_429() {
    let script = Script {
        faults: vec![Fault {
            matching: "meshusers".into(),
            status: 429,
            retry_after: Some("1".into()),
            times: 1,
        }],
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], basic(), script).await;
    let config = config(&fx.base_url, &basic(), "v3", 1000, true);
    let started = Instant::now();
    let snapshot = read(&config).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(snapshot, expected());
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_server_errors_then_succeeds() {
    let script = Script {
        faults: vec![
            Fault {
                matching: "meshprojects".into(),
                status: 502,
                retry_after: None,
                times: 2,
            },
            Fault {
                matching: "userbindings".into(),
                status: 500,
                retry_after: None,
                times: 1,
            },
            Fault {
                matching: "meshtenants".into(),
                status: 503,
                retry_after: None,
                times: 1,
            },
        ],
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], basic(), script).await;
    let snapshot = read(&config(&fx.base_url, &basic(), "v3", 1000, true))
        .await
        .unwrap();
    assert_eq!(snapshot, expected());
    let projects = fx
        .requests()
        .iter()
        .filter(|r| r.contains("/meshprojects?"))
        .count();
    assert_eq!(projects, 3, "two 502s, then the answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_that_keeps_failing_is_an_error_not_an_empty_snapshot() {
    let script = Script {
        faults: vec![Fault {
            matching: "page=1".into(),
            status: 503,
            retry_after: None,
            times: 100,
        }],
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], basic(), script).await;
    let err = read(&config(&fx.base_url, &basic(), "v3", 2, true))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MeshStackError::ServerError {
                attempts: 4,
                status: 503,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    for part in [
        "no plan",
        "HTTP 503 on all 4 attempts (retried with backoff)",
        "GET /api/meshobjects/meshprojectroles",
        fx.base_url.as_str(),
    ] {
        assert!(text.contains(part), "{part:?} in: {text}");
    }
    blames_no_credentials(&text);
    let failing = fx
        .requests()
        .iter()
        .filter(|r| r.contains("page=1"))
        .count();
    assert_eq!(failing, 4, "one attempt and three retries");
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_to_follow_a_link_to_another_origin() {
    let script = Script {
        foreign_next_link: true,
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], basic(), script).await;
    let err = read(&config(&fx.base_url, &basic(), "v3", 2, true))
        .await
        .unwrap_err();
    assert!(matches!(err, MeshStackError::ForeignLink(..)), "{err}");
    assert!(fx.requests().iter().all(|r| !r.contains("127.0.0.2")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_link_is_an_error_not_the_end() {
    let script = Script {
        self_next_link: true,
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], basic(), script).await;
    let err = read(&config(&fx.base_url, &basic(), "v3", 1000, true))
        .await
        .unwrap_err();
    assert!(matches!(err, MeshStackError::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains("is not complete"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_page_is_an_error_not_fewer_users() {
    let fx = Fixture::start(&sample(), &[], basic(), Script::default()).await;
    fx.script(|s| s.short_pages = vec!["meshusers?size=2&page=1".into()]);
    let err = read(&config(&fx.base_url, &basic(), "v3", 2, true))
        .await
        .unwrap_err();
    assert!(matches!(err, MeshStackError::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains("is not complete"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_payload_names_the_field() {
    let bad =
        vec![serde_json::json!({"kind": "meshProject", "metadata": {"name": "web"}, "spec": {}})];
    let fx = Fixture::start_raw(&sample(), "meshprojects", bad, basic()).await;
    let err = read(&config(&fx.base_url, &basic(), "v3", 1000, true))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("_embedded.meshProjects[0].metadata"),
        "{text}"
    );
    assert!(text.contains("ownedByWorkspace"), "{text}");
}

/// Serves a corpus case's pages in the order they are asked for, whatever the URL.
async fn serve_pages(
    case: &serde_json::Value,
    media_type: &'static str,
) -> (String, Arc<AtomicUsize>) {
    let pages: Vec<serde_json::Value> = case["pages"].as_array().unwrap().clone();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let app = axum::Router::new().fallback(move || {
        let pages = pages.clone();
        let counter = counter.clone();
        async move {
            use axum::response::IntoResponse;
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let Some(page) = pages.get(n) else {
                return (
                    axum::http::StatusCode::IM_A_TEAPOT,
                    "no such page in the case",
                )
                    .into_response();
            };
            let content_type = page["content_type"]
                .as_str()
                .unwrap_or(media_type)
                .to_owned();
            let body = match page["raw"].as_str() {
                Some(raw) => raw.to_owned(),
                None => page["body"].to_string(),
            };
            ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, served)
}

/// The listing corpus (`tests/corpus/meshstack-listings`): page sequences that must never read
/// as a whole listing (a short last page, `{}`, a repeated page or link, the wrong media type, a
/// page of another kind, totals that change), each an error naming what is wrong. A failed
/// read stops the run before AWS is read or written (`tests/sync_cli.rs` shows that end to
/// end). Cases named `ok-…` are whole listings, so the harness is seen to accept one.
#[tokio::test(flavor = "multi_thread")]
async fn listings_that_are_not_whole_are_errors() {
    use aws_replicator::meshstack::payload::Kind;
    let mut failures = Vec::new();
    let mut dir: Vec<_> = std::fs::read_dir("tests/corpus/meshstack-listings")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    dir.sort();
    assert!(dir.len() >= 10, "the corpus is there");
    for path in dir {
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let expect = std::fs::read_to_string(path.with_extension("expect")).unwrap();
        let kind = match case["kind"].as_str().unwrap() {
            "users" => Kind::Users,
            "projects" => Kind::Projects,
            other => panic!("{}: unknown kind {other}", path.display()),
        };
        let (base, served) = serve_pages(&case, kind.media_type()).await;
        let config = config(&base, &basic(), "v3", 1000, true);
        let client =
            aws_replicator::meshstack::Client::new(&config.meshstack, 1000.0, fast_retries())
                .unwrap();
        let result = client.list::<serde_json::Value>(kind, &[]).await;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let pages = case["pages"].as_array().unwrap().len();
        if served.load(Ordering::SeqCst) > pages {
            failures.push(format!("{name}: asked for more pages than the case has"));
        }
        match (name.starts_with("ok-"), result) {
            (true, Ok(items)) => {
                if items.len().to_string() != expect.trim() {
                    failures.push(format!("{name}: {} items, expected {expect}", items.len()));
                }
            }
            (true, Err(e)) => failures.push(format!("{name}: refused a whole listing: {e}")),
            (false, Ok(items)) => {
                failures.push(format!("{name}: read as whole ({} items)", items.len()))
            }
            (false, Err(e)) => {
                let text = e.to_string();
                for line in expect.lines().filter(|l| !l.is_empty()) {
                    if !text.contains(line) {
                        failures.push(format!("{name}: expected {line:?} in: {text}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An estate of `n` projects in one workspace, each with a tenant and two bound users.
fn estate(n: usize) -> Snapshot {
    use aws_replicator::snapshot::{Binding, Project, Tenant, User};
    let mut s = sample();
    s.projects.clear();
    s.tenants.clear();
    s.bindings.clear();
    s.users.clear();
    s.groups.clear();
    for i in 0..n {
        let (ws, p) = ("big", format!("p{i:05}"));
        s.projects.push(Project {
            workspace: ws.into(),
            identifier: p.as_str().into(),
            tags: Default::default(),
        });
        s.tenants.push(Tenant {
            workspace: ws.into(),
            project: p.as_str().into(),
            account_id: Some(format!("{:012}", 100_000_000_000u64 + i as u64)),
            landing_zone: None,
        });
        for (role, user) in [("Project Admin", 2 * i), ("Project Reader", 2 * i + 1)] {
            let name = format!("user{user:05}");
            s.users.push(User {
                username: name.as_str().into(),
                euid: Some(format!("{name}@big.example")),
            });
            s.bindings.push(Binding {
                workspace: ws.into(),
                project: p.as_str().into(),
                role: role.into(),
                subject: Subject::User(name.as_str().into()),
            });
        }
    }
    s
}

/// A scoped read costs the same few requests however large the estate: the project, its
/// tenant, its bindings, and the users they name, never a listing of every project or user.
#[tokio::test(flavor = "multi_thread")]
async fn a_scoped_read_costs_the_same_at_any_estate_size() {
    use aws_replicator::desired::Scope;
    use aws_replicator::model::ProjectKey;
    let mut costs = Vec::new();
    for n in [10, 1000] {
        let fx = Fixture::start(&estate(n), &[], basic(), Script::default()).await;
        let config = config(&fx.base_url, &basic(), "v3", 1000, true);
        let api = Api::new(&config, fast_retries()).unwrap();
        let scope = Scope::projects([ProjectKey::new("big", "p00007")]);
        let snapshot = aws_replicator::meshstack::read_scoped(&api.client, &config, &scope)
            .await
            .unwrap();
        assert_eq!(snapshot.projects.len(), 1);
        assert_eq!(snapshot.tenants.len(), 1);
        assert_eq!(snapshot.bindings.len(), 2);
        let users: Vec<&str> = snapshot.users.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(users, ["user00014", "user00015"]);
        let requests = fx.requests();
        assert!(
            !requests
                .iter()
                .any(|r| r.contains("/meshusers?") || r.ends_with("/meshusers")),
            "no listing of all users: {requests:#?}"
        );
        costs.push(requests.len());
    }
    // roles, the project, its tenants, user and group bindings, two users.
    assert_eq!(costs, [7, 7]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scoped_read_of_a_project_meshstack_lacks_fails() {
    use aws_replicator::desired::Scope;
    use aws_replicator::model::ProjectKey;
    let fx = Fixture::start(&sample(), &[], basic(), Script::default()).await;
    let config = config(&fx.base_url, &basic(), "v3", 1000, true);
    let api = Api::new(&config, fast_retries()).unwrap();
    let scope = Scope::projects([ProjectKey::new("acme", "nope")]);
    let err = aws_replicator::meshstack::read_scoped(&api.client, &config, &scope)
        .await
        .unwrap_err();
    assert!(matches!(err, MeshStackError::UnknownProjects(..)), "{err}");
    assert!(err.to_string().contains("no project acme.nope"), "{err}");
}

/// Issue #25: a single-object read answered with another object (the project, a user, a user
/// group) is an error naming both, never taken as the one asked for.
#[tokio::test(flavor = "multi_thread")]
async fn a_point_read_answered_with_another_object_fails() {
    use aws_replicator::desired::Scope;
    use aws_replicator::model::ProjectKey;
    for (asked, instead, scope) in [
        (
            "acme.web",
            "globex.shop",
            Scope::projects([ProjectKey::new("acme", "web")]),
        ),
        (
            "alice",
            "bob",
            Scope::projects([ProjectKey::new("acme", "web")]),
        ),
    ] {
        let script = Script {
            answer_instead: vec![(asked.to_owned(), instead.to_owned())],
            ..Script::default()
        };
        let fx = Fixture::start(&sample(), &[], basic(), script).await;
        let config = config(&fx.base_url, &basic(), "v3", 1000, true);
        let api = Api::new(&config, fast_retries()).unwrap();
        let err = aws_replicator::meshstack::read_scoped(&api.client, &config, &scope)
            .await
            .unwrap_err();
        assert!(matches!(err, MeshStackError::WrongObject { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(asked) && text.contains(instead), "{text}");
    }
}

/// A workspace scope reads that workspace's projects and nothing of the others; a scoped read
/// of the sample gives the sample's part for those projects.
#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_scope_reads_that_workspace() {
    use aws_replicator::desired::Scope;
    let fx = Fixture::start(&sample(), &[], basic(), Script::default()).await;
    let config = config(&fx.base_url, &basic(), "v3", 1000, true);
    let api = Api::new(&config, fast_retries()).unwrap();
    let scope = Scope::workspaces(["globex".into()]);
    let snapshot = aws_replicator::meshstack::read_scoped(&api.client, &config, &scope)
        .await
        .unwrap();
    let full = expected();
    let keys: Vec<String> = snapshot
        .projects
        .iter()
        .map(|p| p.key().to_string())
        .collect();
    assert_eq!(keys, ["globex.legacy", "globex.shop"]);
    let want: Vec<_> = full
        .bindings
        .iter()
        .filter(|b| b.workspace.as_str() == "globex")
        .cloned()
        .collect();
    assert_eq!(snapshot.bindings, want);
    assert_eq!(
        snapshot
            .groups
            .iter()
            .map(|g| g.identifier.as_str())
            .collect::<Vec<_>>(),
        ["devs"]
    );
    // Every user the bindings and the group name, and no other.
    let names: Vec<&str> = snapshot.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["carol", "erin", "frank", "grace", "heidi"]);
}

/// Only a 401 or 403 blames `meshstack.credentials`.
fn blames_no_credentials(text: &str) {
    assert!(
        !text.contains("meshstack.credentials"),
        "blames the credentials: {text}"
    );
    for secret in ["s3cret", "pa55:word"] {
        assert!(!text.contains(secret), "shows a secret: {text}");
    }
}

/// Nothing listens on a closed loopback port: "could not connect", the endpoint and the fix,
/// after the retries, and not the credentials (with an API key, the login is what fails).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_says_so_and_blames_no_credentials() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base_url = format!("http://127.0.0.1:{closed}");
    for auth in [api_key(), basic()] {
        let err = read(&config(&base_url, &auth, "v3", 1000, true))
            .await
            .unwrap_err();
        assert!(
            matches!(err, MeshStackError::Unreachable { attempts: 4, .. }),
            "{err}"
        );
        let text = err.to_string();
        for part in [
            format!("could not connect to meshStack at {base_url}"),
            "Connection refused".to_owned(),
            "4 attempts with backoff".to_owned(),
            "meshstack.base-url".to_owned(),
        ] {
            assert!(text.contains(&part), "{part:?} in: {text}");
        }
        blames_no_credentials(&text);
    }
}

/// A meshStack that accepts the connection and never answers: a timeout per attempt, retried,
/// then an error naming the request and the timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_meshstack_is_a_timeout() {
    let script = Script {
        stalls: vec!["meshprojectroles".into()],
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], api_key(), script).await;
    let config = config(&fx.base_url, &api_key(), "v3", 1000, true);
    let api = Api {
        client: aws_replicator::meshstack::Client::new(&config.meshstack, 1000.0, fast_retries())
            .unwrap()
            .with_timeout(Duration::from_millis(300)),
        config: &config,
    };
    let started = Instant::now();
    let err = api.snapshot().await.unwrap_err();
    assert!(
        matches!(err, MeshStackError::Timeout { attempts: 4, .. }),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1200));
    let text = err.to_string();
    for part in [
        format!("meshStack at {} did not answer", fx.base_url),
        "GET /api/meshobjects/meshprojectroles within 300ms".to_owned(),
        "4 attempts with backoff".to_owned(),
        "meshstack.base-url".to_owned(),
    ] {
        assert!(text.contains(&part), "{part:?} in: {text}");
    }
    blames_no_credentials(&text);
    let stalled = fx
        .requests()
        .iter()
        .filter(|r| r.contains("meshprojectroles"))
        .count();
    assert_eq!(stalled, 4);
}

/// An https:// base URL against a server that speaks plain http: a TLS error naming the
/// endpoint and `meshstack.base-url`, not retried (the next attempt meets the same server).
#[tokio::test(flavor = "multi_thread")]
async fn https_to_a_plain_http_server_is_a_tls_error() {
    let fx = Fixture::start(&sample(), &[], api_key(), Script::default()).await;
    let https = fx.base_url.replacen("http://", "https://", 1);
    let config = config(&https, &api_key(), "v3", 1000, true);
    // A retry would wait at least 2 s.
    let slow_retries = RetryPolicy {
        min_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(2),
        ..fast_retries()
    };
    let started = Instant::now();
    let err = Api::new(&config, slow_retries)
        .unwrap()
        .snapshot()
        .await
        .unwrap_err();
    assert!(matches!(err, MeshStackError::TlsHandshake { .. }), "{err}");
    let text = err.to_string();
    for part in [
        format!("TLS with meshStack at {https} failed"),
        "meshstack.base-url".to_owned(),
        "plain http".to_owned(),
    ] {
        assert!(text.contains(&part), "{part:?} in: {text}");
    }
    blames_no_credentials(&text);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not retried: {:?}",
        started.elapsed()
    );
}

/// A 2xx whose content type is not the requested media type (a gateway's `application/json`,
/// a proxy's HTML) names both types and `meshstack.base-url`.
#[tokio::test(flavor = "multi_thread")]
async fn a_2xx_of_another_media_type_names_both() {
    for got in ["application/json", "text/html; charset=utf-8"] {
        let script = Script {
            content_types: vec![("meshprojects".into(), got.into())],
            ..Script::default()
        };
        let fx = Fixture::start(&sample(), &[], basic(), script).await;
        let err = read(&config(&fx.base_url, &basic(), "v3", 1000, true))
            .await
            .unwrap_err();
        assert!(
            matches!(err, MeshStackError::WrongMediaType { .. }),
            "{err}"
        );
        let text = err.to_string();
        for part in [
            format!("meshStack at {} answered GET", fx.base_url),
            format!("HTTP 200 and content type {got}"),
            "application/vnd.meshcloud.api.meshproject.v2.hal+json was requested".to_owned(),
            "meshstack.base-url".to_owned(),
        ] {
            assert!(text.contains(&part), "{part:?} in: {text}");
        }
        blames_no_credentials(&text);
    }
}

/// meshStack asks for one request at a time per API key: reads that share a client (the
/// crawl, a webhook's scoped read, a point read, each its own task in `serve`) wait for each
/// other, never overlap, and all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_sharing_a_client_go_one_request_at_a_time() {
    let script = Script {
        latency: Some(Duration::from_millis(30)),
        ..Script::default()
    };
    let fx = Fixture::start(&sample(), &[], api_key(), script).await;
    let config = config(&fx.base_url, &api_key(), "v3", 1000, true);
    let client = Arc::new(
        aws_replicator::meshstack::Client::new(&config.meshstack, 1000.0, fast_retries()).unwrap(),
    );
    let projects: Vec<aws_replicator::model::ProjectKey> =
        sample().projects.iter().map(|p| p.key()).collect();
    let reads = (0..4).map(|_| {
        let (client, projects) = (client.clone(), projects.clone());
        tokio::spawn(async move {
            aws_replicator::meshstack::read_bindings(&client, projects.iter(), true).await
        })
    });
    for read in futures_util::future::join_all(reads).await {
        assert!(!read.unwrap().unwrap().is_empty());
    }
    assert!(fx.requests().len() >= 4 * 2 * projects.len());
    assert_eq!(fx.state.most_in_flight.load(Ordering::SeqCst), 1);
}
