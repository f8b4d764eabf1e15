//! `aws-replicator serve` as a process on a free loopback port, against the emulator (SCIM and
//! sso-admin) with moto's STS: the schedule, the webhook and its refusals (signatures that are
//! stale, replayed or for another request), coalescing, scoped runs, run records only with
//! credentials, `/metrics` read by the Prometheus project's own OpenMetrics parser, readiness
//! that ages, the run deadline against a meshStack that never answers, and SIGTERM.

mod common;

use common::cli::{Setup, setup};
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "webhook-token-0123456789abcdef";
const HMAC_SECRET: &str = "webhook-hmac-secret-0123456789";
const SNAPSHOT: &str = "config/sample-snapshot.json";

struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test settings, the drift scan off (runs by change then never read AWS unasked).
fn replicator(interval: u64) -> String {
    replicator_scanning(interval, 0.0)
}

/// The test settings, with `serve` fields added (`, run-deadline-seconds = 2`).
fn replicator_with(interval: u64, serve: &str) -> String {
    format!(
        "T.Replicator::{{ schedule = {{ interval-seconds = {interval}, jitter-seconds = 0 }}, \
         rate-limits = {{ scim = 20.0, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 }}, \
         serve = T.Replicator.default.serve // {{ webhook-token = Some \"{TOKEN}\", \
         webhook-hmac-secret = Some \"{HMAC_SECRET}\", max-body-bytes = 256{serve} }} }}"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(s: &Setup, interval: u64) -> Server {
    let name = format!("serve-{interval}");
    let config = s.config(
        &format!("{name}.dhall"),
        "%s.%s.%4\\$s",
        &replicator(interval),
    );
    std::fs::copy(SNAPSHOT, s.dir.path().join("snapshot.json")).unwrap();
    let snapshot = s.dir.path().join("snapshot.json");
    spawn(
        s,
        &name,
        &config,
        &[OsStr::new("--snapshot"), snapshot.as_os_str()],
    )
    .await
}

/// `serve --config CONFIG ARGS…` on a free port, logging at debug level to `NAME.log`; returns
/// once it answers.
async fn spawn(s: &Setup, name: &str, config: &Path, args: &[&OsStr]) -> Server {
    let port = free_port();
    let child = s
        .command()
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("AWS_REPLICATOR_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(s.dir.path().join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    let started = Instant::now();
    while server.get("/healthz").await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

impl Server {
    async fn get(&self, path: &str) -> Option<reqwest::Response> {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .ok()
    }

    /// An authenticated GET (the bearer token), as JSON.
    async fn json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A GET with these headers: status and JSON body (`null` when not JSON).
    async fn get_with(&self, path: &str, headers: &[(&str, String)]) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends SIGTERM and waits for a clean exit; returns how long it took.
    async fn terminate(&mut self, limit: Duration) -> Duration {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                return started.elapsed();
            }
            assert!(started.elapsed() < limit, "still running after {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn runs(&self) -> Vec<Value> {
        self.json("/v1/runs").await["runs"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn post(&self, body: &str, headers: &[(&str, String)]) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/v1/sync", self.base))
            .body(body.to_owned());
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A webhook (bearer token) for one project, its run once finished, and how long from
    /// the request to the run's end.
    async fn announce(&self, workspace: &str, project: &str) -> (Value, Duration) {
        let asked = Instant::now();
        let scope = serde_json::json!({ "workspace": workspace, "project": project });
        let (status, body) = self.post(&scope.to_string(), &[bearer()]).await;
        assert_eq!(status, 202, "{body}");
        let run = self.finished(body["run_id"].as_u64().unwrap()).await;
        (run, asked.elapsed())
    }

    /// Waits until run `id` has finished and returns it.
    async fn finished(&self, id: u64) -> Value {
        let started = Instant::now();
        loop {
            let run = self.json(&format!("/v1/runs/{id}")).await;
            if !matches!(run["status"].as_str(), Some("queued" | "running")) {
                return run;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "run {id} did not finish"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until a run of `trigger` has finished and returns it.
    async fn finished_by(&self, trigger: &str) -> Value {
        let started = Instant::now();
        loop {
            if let Some(run) = self
                .runs()
                .await
                .into_iter()
                .find(|r| r["trigger"] == trigger)
            {
                return self.finished(run["id"].as_u64().unwrap()).await;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no {trigger} run"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .header("Accept", "application/openmetrics-text; version=1.0.0")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Drift behind the replicator's back: a stranger in acme.web's and globex.shop's admin groups.
fn stranger_in_both_admin_groups(s: &Setup) -> String {
    let stranger = s.running.emulator.add_user("mallory@other.example");
    let mut state = s.running.emulator.dump();
    for name in [
        "mst-acme.web.meshstack-project-admin",
        "mst-globex.shop.meshstack-project-admin",
    ] {
        state
            .groups
            .iter_mut()
            .find(|g| g.display_name == name)
            .unwrap()
            .members
            .insert(stranger.clone());
    }
    s.running.emulator.load(state);
    stranger
}

/// Whether the group named `name` holds `user`.
fn holds(s: &Setup, name: &str, user: &str) -> bool {
    s.running
        .emulator
        .dump()
        .groups
        .iter()
        .any(|g| g.display_name == name && g.members.contains(user))
}

fn bearer() -> (&'static str, String) {
    ("authorization", format!("Bearer {TOKEN}"))
}

fn hmac_hex(text: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
    mac.update(text);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The headers of the README's scheme, written out here rather than taken from the crate:
/// HMAC-SHA256 of `"{timestamp}\n{METHOD}\n{path?query}\n"` + body, signed at `at`.
fn signed_at(at: u64, method: &str, target: &str, body: &str) -> Vec<(&'static str, String)> {
    let text = format!("{at}\n{method}\n{target}\n{body}");
    vec![
        ("x-timestamp", at.to_string()),
        (
            "x-signature-256",
            format!("sha256={}", hmac_hex(text.as_bytes())),
        ),
    ]
}

fn signed(method: &str, target: &str, body: &str) -> Vec<(&'static str, String)> {
    signed_at(unix_now(), method, target, body)
}

/// The scheme before #16: the HMAC of the body alone, now refused.
fn body_only_signature(body: &str) -> (&'static str, String) {
    (
        "x-signature-256",
        format!("sha256={}", hmac_hex(body.as_bytes())),
    )
}

/// Parses OpenMetrics text with the Prometheus project's Python client (installed by
/// scripts/test) and returns each sample as `name{labels} value`.
fn parse_openmetrics(text: &str) -> Vec<String> {
    let python = std::env::var("AWS_REPLICATOR_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
        for family in parse(sys.stdin.read()):\n\
        \x20   for s in family.samples:\n\
        \x20       labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n\
        \x20       print(f'{s.name}{{{labels}}} {s.value}')\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python with prometheus_client: run the tests with ./scripts/test");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not valid OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn sample(samples: &[String], prefix: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.starts_with(prefix))
        .map(|s| s.rsplit(' ').next().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_at_start_up_and_on_schedule_and_exposes_drift_as_metrics() {
    let s = setup().await;
    let (server, _) = start_scanning(&s, "serve-2", 2, 0.5).await;
    let first = server.finished_by("startup").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert!(first["summary"]["applied"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(server.get("/readyz").await.unwrap().status(), 200);

    // Drift made by hand is found by the drift scan and repaired by the run it queues.
    let mallory = s.running.emulator.add_user("mallory@other.example");
    let mut state = s.running.emulator.dump();
    let admin = state
        .groups
        .iter_mut()
        .find(|g| g.display_name == "mst-acme.web.meshstack-project-admin")
        .unwrap();
    admin.members.insert(mallory.clone());
    s.running.emulator.load(state);
    let repair = server.finished_by("drift_scan").await;
    assert_eq!(repair["status"], "succeeded", "{repair}");
    assert_eq!(
        repair["projects"],
        serde_json::json!(["acme.web"]),
        "{repair}"
    );
    let scheduled = server.finished_by("schedule").await;
    assert_eq!(scheduled["status"], "succeeded", "{scheduled}");
    // The drift gauges go back to 0 once the run that repaired it has re-checked.
    let kinds = [
        "group_missing",
        "group_extra",
        "member_missing",
        "member_extra",
        "assignment_missing",
        "assignment_extra",
    ];
    let started = Instant::now();
    let samples = loop {
        let samples = parse_openmetrics(&server.metrics().await);
        let repaired = !s
            .running
            .emulator
            .dump()
            .groups
            .iter()
            .any(|g| g.members.contains(&mallory));
        let zero = kinds.iter().all(|kind| {
            sample(&samples, &format!("aws_replicator_drift{{kind={kind}}}")) == Some(0.0)
        });
        if repaired && zero {
            break samples;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "drift never went back to 0: {samples:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        sample(
            &samples,
            "aws_replicator_operations_total{kind=create_group,outcome=ok}"
        )
        .unwrap()
            > 0.0
    );
    assert!(
        sample(
            &samples,
            "aws_replicator_api_requests_total{operation=CreateGroup,service=scim,status=ok}"
        )
        .unwrap()
            > 0.0
    );
    assert!(sample(&samples, "aws_replicator_last_success_timestamp_seconds").unwrap() > 1.7e9);
    assert!(sample(&samples, "aws_replicator_sync_duration_seconds_count").unwrap() >= 2.0);
    assert!(sample(&samples, "aws_replicator_build_info{version=").is_some());
    // What meshStack's data holds that keeps projects held or members out, by kind.
    for kind in [
        "user_without_euid",
        "binding_to_unknown_user",
        "binding_to_unknown_role",
        "tenant_without_account",
    ] {
        assert_eq!(
            sample(&samples, &format!("aws_replicator_findings{{kind={kind}}}")),
            Some(1.0),
            "{kind}"
        );
    }
    let text = server.metrics().await;
    for secret in [TOKEN, HMAC_SECRET, "emulator-token", "alice@acme.example"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    // Every series the shipped Grafana dashboard queries exists.
    let dashboard = std::fs::read_to_string("deploy/grafana-dashboard.json").unwrap();
    let names: BTreeSet<&str> = dashboard
        .match_indices("aws_replicator_")
        .map(|(i, _)| {
            let rest = &dashboard[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let family = ["_total", "_bucket", "_count", "_sum", "_info"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "the dashboard queries {name}, which /metrics does not have"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_checks_callers_coalesces_and_syncs_one_project() {
    let s = setup().await;
    let server = start(&s, 3600).await;
    server.finished_by("startup").await;
    let runs_before = server.runs().await.len();

    // Refused, and nothing starts.
    let scoped = r#"{"workspace": "acme", "project": "web"}"#;
    let refusals = [
        (server.post(scoped, &[]).await.0, 401),
        (
            server
                .post(scoped, &[("authorization", "Bearer wrong".into())])
                .await
                .0,
            401,
        ),
        (
            server
                .post(scoped, &[("x-signature-256", "sha256=00ff".into())])
                .await
                .0,
            401,
        ),
        (
            server.post(scoped, &[body_only_signature(scoped)]).await.0,
            401,
        ),
        (
            server
                .post(
                    scoped,
                    &[
                        body_only_signature(scoped),
                        ("x-timestamp", unix_now().to_string()),
                    ],
                )
                .await
                .0,
            401,
        ),
        (
            server
                .post(scoped, &signed("POST", "/v1/sync", "{}"))
                .await
                .0,
            401,
        ),
        (
            server
                .post(scoped, &signed("POST", "/v1/runs", scoped))
                .await
                .0,
            401,
        ),
        (server.post(&"x".repeat(300), &[bearer()]).await.0, 413),
        (server.post("{\"workspace\": 1}", &[bearer()]).await.0, 400),
        (
            server
                .post(r#"{"workspace": "ACME!", "project": "web"}"#, &[bearer()])
                .await
                .0,
            400,
        ),
    ];
    for (got, want) in refusals {
        assert_eq!(got, want);
    }
    let (status, body) = server.post(scoped, &[]).await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    for (skew, label) in [(-301, "stale"), (301, "stale")] {
        let at = unix_now().checked_add_signed(skew).unwrap();
        let (status, body) = server
            .post(scoped, &signed_at(at, "POST", "/v1/sync", scoped))
            .await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"].as_str().unwrap().starts_with(label), "{body}");
    }
    let (status, body) = server.post(scoped, &signed("POST", "/v1/sync", "{}")).await;
    assert_eq!(status, 401);
    assert!(
        body["error"].as_str().unwrap().starts_with("bad signature"),
        "{body}"
    );
    assert_eq!(
        server.runs().await.len(),
        runs_before,
        "no refused call started a run"
    );

    // A scoped run repairs its project and leaves the other projects' drift alone.
    let stranger = stranger_in_both_admin_groups(&s);
    let signature = signed("POST", "/v1/sync", scoped);
    let (status, body) = server.post(scoped, &signature).await;
    assert_eq!(status, 202, "{body}");
    // The same request again, within the window: a replay.
    let (status, replayed) = server.post(scoped, &signature).await;
    assert_eq!(status, 401, "{replayed}");
    assert!(
        replayed["error"].as_str().unwrap().starts_with("replayed"),
        "{replayed}"
    );
    let run = server.finished(body["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["projects"], serde_json::json!(["acme.web"]));
    let holds = |name: &str| holds(&s, name, &stranger);
    assert!(!holds("mst-acme.web.meshstack-project-admin"), "repaired");
    assert!(
        holds("mst-globex.shop.meshstack-project-admin"),
        "left alone"
    );

    // 100 calls at once for one project: the reconcile the first call queues is held in its
    // first SCIM read for 8 s, so the other calls all arrive while it is in progress, however
    // slow the machine; the engine keeps the project queued once (`engine::queue`'s tests).
    let before = server.runs().await.len();
    s.running.emulator.clear_requests();
    s.running.emulator.inject(aws_replicator::emulator::Fault {
        family: aws_replicator::emulator::Family::Scim,
        endpoint: "GET /".into(),
        status: 200,
        latency_ms: 8_000,
        times: 1,
        ..Default::default()
    });
    let auth = [bearer()];
    let calls_started = Instant::now();
    let shop = r#"{"workspace": "globex", "project": "shop"}"#;
    let calls = (0..100).map(|_| server.post(shop, &auth));
    let answers = futures_util::future::join_all(calls).await;
    assert!(
        calls_started.elapsed() < Duration::from_secs(8),
        "the 100 calls took {:?}, longer than the run was held",
        calls_started.elapsed()
    );
    let ids: BTreeSet<u64> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 202, "{body}");
            body["run_id"].as_u64().unwrap()
        })
        .collect();
    for id in &ids {
        assert_eq!(server.finished(*id).await["status"], "succeeded");
    }
    assert!(server.runs().await.len() - before <= 100);
    // However many runs the calls made, the project is in the engine's queue once: the
    // reconcile in progress, and one more for the calls that came during it.
    let lookups = s
        .running
        .emulator
        .requests()
        .iter()
        .filter(|r| {
            let t = r.target.to_lowercase();
            t.contains("externalid") && t.contains("shop") && t.contains("project-admin")
        })
        .count();
    assert!(lookups <= 2, "globex.shop was reconciled {lookups} times");
    assert!(
        !holds("mst-globex.shop.meshstack-project-admin"),
        "the run repaired it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_it_cleanly() {
    let s = setup().await;
    let mut server = start(&s, 3600).await;
    server.finished_by("startup").await;
    assert_eq!(server.post("", &[bearer()]).await.0, 202);
    server.terminate(Duration::from_secs(25)).await;

    // Debug logs of a whole life (start-up sync through STS, SCIM and sso-admin, a webhook
    // call, shutdown) name no secret.
    let log = std::fs::read_to_string(s.dir.path().join("serve-3600.log")).unwrap();
    assert!(log.contains("DEBUG"), "debug logs were on");
    for secret in common::cli::SECRETS.iter().chain(&[TOKEN, HMAC_SECRET]) {
        let leak = log.lines().find(|l| l.contains(secret));
        assert!(leak.is_none(), "{secret} in the log: {leak:?}");
    }
}

/// An idle server (its start-up sync done, nothing queued) exits at once on SIGTERM, rather than
/// waiting out the 20 s grace period for a worker that missed the wake-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_exits_within_two_seconds_of_sigterm() {
    let s = setup().await;
    let mut server = start(&s, 3600).await;
    server.finished_by("startup").await;
    let took = server.terminate(Duration::from_secs(25)).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// `GET /v1/runs[/{id}]` need the webhook's credentials (the run records name projects and
/// problems); `/healthz`, `/readyz` and `/metrics` stay open and name nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_records_need_credentials_and_the_open_routes_carry_no_identity() {
    let s = setup().await;
    let server = start(&s, 3600).await;
    let run = server.finished_by("startup").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = run["id"].as_u64().unwrap();
    let one = format!("/v1/runs/{id}");
    for path in ["/v1/runs", one.as_str()] {
        for headers in [
            vec![],
            vec![("authorization", "Bearer wrong".to_owned())],
            signed("GET", "/v1/runs/999", ""),
            signed("POST", path, ""),
            signed_at(unix_now() - 400, "GET", path, ""),
        ] {
            let (status, body) = server.get_with(path, &headers).await;
            assert_eq!(status, 401, "{path} {headers:?}: {body}");
            assert!(body.get("runs").is_none() && body.get("id").is_none());
        }
        let (status, body) = server.get_with(path, &[bearer()]).await;
        assert_eq!(status, 200, "{path}: {body}");
        let signature = signed("GET", path, "");
        let (status, body) = server.get_with(path, &signature).await;
        assert_eq!(status, 200, "{path}: {body}");
        let (status, body) = server.get_with(path, &signature).await;
        assert_eq!(status, 401, "{path} replayed: {body}");
    }
    // The query is signed too.
    let signature = signed("GET", "/v1/runs?limit=1", "");
    assert_eq!(server.get_with("/v1/runs?limit=1", &signature).await.0, 200);

    let identities = [
        "alice@acme.example",
        "bob@acme.example",
        "carol@globex.example",
        "111111111111",
        "222222222222",
        "333333333333",
        "acme",
        "globex",
        TOKEN,
        HMAC_SECRET,
    ];
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = server.get(path).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.unwrap();
        for identity in identities {
            assert!(!text.contains(identity), "{identity} in {path}");
        }
    }
}

/// A run has `run-deadline-seconds`: with a meshStack that accepts connections and never
/// answers, a webhook's run fails at the deadline instead of hanging, the server stays up, and
/// it is not ready (the crawl has not read meshStack) with nothing claimed as measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_a_meshstack_that_never_answers_fails_at_its_deadline() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let meshstack = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let s = setup().await;
    let config = s.config(
        "deadline.dhall",
        "%s.%s.%4\\$s",
        &replicator_with(3600, ", run-deadline-seconds = 2"),
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("https://meshstack.example.com", &meshstack);
    std::fs::write(&config, text).unwrap();
    let started = Instant::now();
    let server = spawn(&s, "deadline", &config, &[]).await;
    let (status, body) = server
        .post(r#"{"workspace": "acme", "project": "web"}"#, &[bearer()])
        .await;
    assert_eq!(status, 202, "{body}");
    let run = server.finished(body["run_id"].as_u64().unwrap()).await;
    assert!(started.elapsed() < Duration::from_secs(20), "{run}");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(
        run["error"], "run exceeded its deadline of 2 s (replicator.serve.run-deadline-seconds)",
        "{run}"
    );
    let ready = server.get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 503);
    let reason = ready.text().await.unwrap();
    assert!(
        reason.contains("meshStack has not been read yet"),
        "{reason}"
    );
    let samples = parse_openmetrics(&server.metrics().await);
    assert_eq!(
        sample(
            &samples,
            "aws_replicator_syncs_total{outcome=failed,scope=projects}"
        ),
        Some(1.0)
    );
    let crawled = sample(
        &samples,
        "aws_replicator_meshstack_crawl_oldest_read_seconds",
    )
    .unwrap();
    assert!(crawled.is_nan(), "{crawled}");
    // Nothing was read, so nothing is known to be confirmed: not 0.
    let oldest = sample(
        &samples,
        "aws_replicator_drift_scan_oldest_unconfirmed_seconds",
    )
    .unwrap();
    assert!(oldest.is_nan(), "{oldest}");
}

/// `/readyz` turns unready once the last successful sync is older than
/// `ready-max-age-seconds`, with the reason, and ready again after the next success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_lapses_when_syncs_stop_succeeding() {
    let s = setup().await;
    let config = s.config(
        "ready-age.dhall",
        "%s.%s.%4\\$s",
        &replicator_with(1, ", ready-max-age-seconds = Some 3"),
    );
    let snapshot = s.dir.path().join("snapshot.json");
    std::fs::copy(SNAPSHOT, &snapshot).unwrap();
    let server = spawn(
        &s,
        "ready-age",
        &config,
        &[OsStr::new("--snapshot"), snapshot.as_os_str()],
    )
    .await;
    assert_eq!(server.finished_by("startup").await["status"], "succeeded");
    assert_eq!(server.get("/readyz").await.unwrap().status(), 200);

    // Every run from now on fails: the snapshot cannot be read.
    std::fs::write(&snapshot, "not a snapshot").unwrap();
    let lapsed = Instant::now();
    let reason = loop {
        let response = server.get("/readyz").await.unwrap();
        if response.status() == 503 {
            break response.json::<Value>().await.unwrap()["error"].clone();
        }
        assert!(
            lapsed.elapsed() < Duration::from_secs(30),
            "still ready long after the last success"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = reason.as_str().unwrap();
    assert!(
        reason.contains("replicator.serve.ready-max-age-seconds (3 s)"),
        "{reason}"
    );
    assert!(
        lapsed.elapsed() >= Duration::from_secs(1),
        "unready too early: {reason}"
    );

    std::fs::copy(SNAPSHOT, &snapshot).unwrap();
    let restored = Instant::now();
    while server.get("/readyz").await.unwrap().status() != 200 {
        assert!(
            restored.elapsed() < Duration::from_secs(30),
            "not ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A webhook for a whole workspace syncs that workspace only; one for a project meshStack does
/// not have is a failed run that says so, not a silent success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_webhook_syncs_that_workspace_and_an_unknown_project_fails() {
    let s = setup().await;
    let server = start(&s, 3600).await;
    server.finished_by("startup").await;

    let (status, body) = server
        .post(r#"{"workspace": "acme", "project": "nope"}"#, &[bearer()])
        .await;
    assert_eq!(status, 202, "{body}");
    let run = server.finished(body["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("has no project acme.nope"),
        "{run}"
    );

    let stranger = stranger_in_both_admin_groups(&s);
    let (status, body) = server.post(r#"{"workspace": "globex"}"#, &[bearer()]).await;
    assert_eq!(status, 202, "{body}");
    let run = server.finished(body["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["projects"], serde_json::json!(["globex.*"]));
    let holds = |name: &str| holds(&s, name, &stranger);
    assert!(
        !holds("mst-globex.shop.meshstack-project-admin"),
        "repaired"
    );
    assert!(holds("mst-acme.web.meshstack-project-admin"), "left alone");
}

/// The settings of `replicator_with`, with the drift scan at `share` of the rates.
fn replicator_scanning(interval: u64, share: f64) -> String {
    replicator_with(interval, "").replacen(
        "T.Replicator::{ ",
        &format!("T.Replicator::{{ drift-scan.share = {share:?}, "),
        1,
    )
}

/// `serve` on a copy of the sample snapshot that the test may change between runs.
async fn start_scanning(
    s: &Setup,
    name: &str,
    interval: u64,
    share: f64,
) -> (Server, std::path::PathBuf) {
    let config = s.config(
        &format!("{name}.dhall"),
        "%s.%s.%4\\$s",
        &replicator_scanning(interval, share),
    );
    let snapshot = s.dir.path().join(format!("{name}.json"));
    std::fs::copy(SNAPSHOT, &snapshot).unwrap();
    let server = spawn(
        s,
        name,
        &config,
        &[OsStr::new("--snapshot"), snapshot.as_os_str()],
    )
    .await;
    (server, snapshot)
}

/// Runs an unscoped sync now, as the schedule does, and returns it once finished.
async fn run_now(server: &Server) -> Value {
    let (status, body) = server.post("", &[bearer()]).await;
    assert_eq!(status, 202, "{body}");
    let run = server.finished(body["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run
}

fn edit_snapshot(path: &Path, change: impl FnOnce(&mut Value)) {
    let mut snapshot: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    change(&mut snapshot);
    std::fs::write(path, serde_json::to_vec_pretty(&snapshot).unwrap()).unwrap();
}

fn user_id(s: &Setup, user_name: &str) -> String {
    s.running
        .emulator
        .dump()
        .users
        .into_iter()
        .find(|u| u.user_name == user_name)
        .unwrap()
        .id
}

/// Issue #17: once the start-up run has reconciled everything, a scheduled run reads meshStack
/// in full and AWS only for the projects whose desired state changed: nothing when nothing
/// changed, a handful of requests for one new membership, and a project gone from meshStack
/// loses its members. Counted from the emulator's request log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_costs_what_changed_in_meshstack() {
    let s = setup().await;
    let (server, snapshot) = start_scanning(&s, "by-change", 3600, 0.0).await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "succeeded", "{startup}");
    // A run that succeeds still names the projects it held, in its record and at warn.
    assert_eq!(
        startup["summary"]["held"],
        serde_json::json!(["acme.data", "globex.legacy"]),
        "{startup}"
    );
    let log = std::fs::read_to_string(s.dir.path().join("by-change.log")).unwrap();
    let held = log
        .lines()
        .find(|l| l.contains("projects held"))
        .unwrap_or_else(|| panic!("no warning names the held projects: {log}"));
    assert!(
        held.contains("WARN") && held.contains("acme.data, globex.legacy"),
        "{held}"
    );
    // Every project with groups or held, reconciled once: nothing was recorded before.
    assert!(
        startup["summary"]["reconciled_projects"].as_u64().unwrap() >= 2,
        "{startup}"
    );
    let requests = || s.running.emulator.requests().len();

    // Nothing changed: no AWS request at all.
    let before = requests();
    let run = run_now(&server).await;
    assert_eq!(run["summary"]["reconciled_projects"], 0, "{run}");
    assert_eq!(requests() - before, 0, "{run}");

    // One membership more: that project is reconciled, its groups looked up and read, the new
    // member looked up, and one PATCH.
    common::sample::alice_reads_shop(&snapshot);
    let before = requests();
    let run = run_now(&server).await;
    let calls = requests() - before;
    assert_eq!(run["summary"]["reconciled_projects"], 1, "{run}");
    assert_eq!(run["summary"]["applied"], 1, "{run}");
    assert!(
        calls <= 16,
        "one membership cost {calls} AWS requests: {run}"
    );
    let alice = user_id(&s, "alice@acme.example");
    assert!(holds(
        &s,
        "mst-globex.shop.meshstack-project-reader",
        &alice
    ));

    // A project meshStack no longer has: its groups lose their members.
    edit_snapshot(&snapshot, |snap| {
        for list in ["projects", "tenants", "bindings"] {
            snap[list]
                .as_array_mut()
                .unwrap()
                .retain(|p| p["workspace"] != "globex" || p["project"] != "shop");
        }
    });
    let run = run_now(&server).await;
    assert_eq!(run["summary"]["reconciled_projects"], 1, "{run}");
    let left: usize = s
        .running
        .emulator
        .dump()
        .groups
        .iter()
        .filter(|g| g.display_name.starts_with("mst-globex.shop."))
        .map(|g| g.members.len())
        .sum();
    assert_eq!(left, 0, "{run}");

    // And the next run has nothing to do again.
    let before = requests();
    let run = run_now(&server).await;
    assert_eq!(run["summary"]["reconciled_projects"], 0, "{run}");
    assert_eq!(requests() - before, 0, "{run}");
}

/// Issue #17: drift made by hand is found by the rolling scan, which reads AWS at its share of
/// the rates, writes nothing itself and queues a run for the drifted project; the cycle's
/// length and the age of the oldest confirmation are in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_scan_finds_drift_made_by_hand_within_a_cycle() {
    let s = setup().await;
    let (server, _) = start_scanning(&s, "scan", 3600, 0.5).await;
    server.finished_by("startup").await;
    let stranger = stranger_in_both_admin_groups(&s);
    let repair = server.finished_by("drift_scan").await;
    assert_eq!(repair["status"], "succeeded", "{repair}");
    let started = Instant::now();
    while holds(&s, "mst-acme.web.meshstack-project-admin", &stranger)
        || holds(&s, "mst-globex.shop.meshstack-project-admin", &stranger)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stranger stayed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A whole cycle has been measured.
    let started = Instant::now();
    let samples = loop {
        let samples = parse_openmetrics(&server.metrics().await);
        if sample(&samples, "aws_replicator_drift_scan_cycle_seconds").unwrap_or(0.0) > 0.0 {
            break samples;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no cycle: {samples:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let scan: Vec<&String> = samples
        .iter()
        .filter(|s| s.contains("drift_scan"))
        .collect();
    assert!(
        sample(&samples, "aws_replicator_drift_scan_drifted_total").unwrap() >= 2.0,
        "{scan:#?}"
    );
    // The sample's projects with groups: acme.web and globex.shop (the others are held or have
    // no tenant).
    assert!(
        sample(&samples, "aws_replicator_drift_scan_projects_total").unwrap() >= 2.0,
        "{scan:#?}"
    );
    let estimate = sample(&samples, "aws_replicator_drift_scan_cycle_estimate_seconds").unwrap();
    assert!(estimate > 0.0 && estimate < 10.0, "{estimate}");
    let oldest = sample(
        &samples,
        "aws_replicator_drift_scan_oldest_unconfirmed_seconds",
    )
    .unwrap();
    assert!(oldest < 60.0, "{oldest}");
}

/// Issue #17: `serve` killed with SIGKILL in the middle of a run by change converges once it
/// is started again: what a run by change knows lives in memory only, so the new process
/// starts with a full run, and `plan` then finds nothing left to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_during_a_run_by_change_converges_after_a_restart() {
    let s = setup().await;
    let (mut server, snapshot) = start_scanning(&s, "killed", 3600, 0.0).await;
    assert_eq!(server.finished_by("startup").await["status"], "succeeded");

    // Five new projects with every user in every role: groups, members and assignments that
    // take the run by change a few seconds (assignments settle in 50 ms each, one per account
    // at a time).
    edit_snapshot(&snapshot, |snap| {
        for p in 0..5 {
            let project = format!("p{p}");
            snap["projects"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "workspace": "crash", "identifier": project
                }));
            snap["tenants"].as_array_mut().unwrap().push(serde_json::json!({
                "workspace": "crash", "project": project,
                "account_id": format!("{:012}", 200_000_000_000u64 + p), "landing_zone": "aws-default"
            }));
            for role in ["Project Admin", "Project User", "Project Reader"] {
                for user in ["alice", "bob", "carol", "erin", "frank"] {
                    snap["bindings"]
                        .as_array_mut()
                        .unwrap()
                        .push(serde_json::json!({
                            "workspace": "crash", "project": project, "role": role,
                            "subject": {"user": user}
                        }));
                }
            }
        }
    });
    let writes = s.writes();
    let (status, body) = server.post("", &[bearer()]).await;
    assert_eq!(status, 202, "{body}");
    let started = Instant::now();
    while s.writes() == writes {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run wrote nothing"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    // The assignments on the new projects' accounts.
    let assigned = || {
        s.running
            .emulator
            .dump()
            .assignments
            .iter()
            .filter(|a| a.account_id.starts_with("2000"))
            .count()
    };
    assert!(assigned() < 15, "the kill came after the run had finished");

    let config = s.dir.path().join("killed.dhall");
    let server = spawn(
        &s,
        "killed-again",
        &config,
        &[OsStr::new("--snapshot"), snapshot.as_os_str()],
    )
    .await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "succeeded", "{startup}");
    // Without replicator.state nothing is recorded across the restart: every project once.
    assert!(
        startup["summary"]["reconciled_projects"].as_u64().unwrap() >= 7,
        "{startup}"
    );
    let out = s.run(&[
        "plan",
        "--config",
        config.to_str().unwrap(),
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--detailed-exitcode",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(assigned(), 15);
}

/// The test settings with `serve`'s record of what AWS holds in `state` (`replicator.state`).
fn replicator_recording(interval: u64, state: &Path) -> String {
    replicator(interval).replacen(
        "T.Replicator::{ ",
        &format!("T.Replicator::{{ state = Some \"{}\", ", state.display()),
        1,
    )
}

fn members_of(s: &Setup, name: &str) -> usize {
    s.running
        .emulator
        .dump()
        .groups
        .iter()
        .find(|g| g.display_name == name)
        .map_or(0, |g| g.members.len())
}

/// Issue #25: what was applied is known by content and kept across restarts
/// (`replicator.state`). Restarted with nothing changed, `serve` sends AWS no request at all;
/// restarted with the reader role's mapping removed from the config (a rolling update), every
/// project differs and the reader groups lose their members, though no role maps to them any
/// more; a record that is garbage confirms nothing, so every project is reconciled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reconciles_exactly_what_the_record_does_not_confirm() {
    let s = setup().await;
    let state = s.dir.path().join("state.json");
    let snapshot = s.dir.path().join("snapshot.json");
    std::fs::copy(SNAPSHOT, &snapshot).unwrap();
    let config = s.config(
        "recording.dhall",
        "%s.%s.%4\\$s",
        &replicator_recording(3600, &state),
    );
    let args = [OsStr::new("--snapshot"), snapshot.as_os_str()];
    let mut server = spawn(&s, "recording-1", &config, &args).await;
    let first = server.finished_by("startup").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    server.terminate(Duration::from_secs(25)).await;
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["platform"], "aws.aws-meshcloud", "{saved}");
    let reader = "mst-globex.shop.meshstack-project-reader";
    assert!(members_of(&s, reader) > 0);

    // Nothing changed: not one request to AWS.
    let before = s.running.emulator.requests().len();
    let mut server = spawn(&s, "recording-2", &config, &args).await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "succeeded", "{startup}");
    assert_eq!(startup["summary"]["reconciled_projects"], 0, "{startup}");
    assert_eq!(s.running.emulator.requests().len(), before, "{startup}");
    server.terminate(Duration::from_secs(25)).await;

    // The reader mapping removed: every project differs, and the reader groups are emptied.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(common::sample::READER_MAPPING));
    let without_reader = s.dir.path().join("without-reader.dhall");
    std::fs::write(
        &without_reader,
        text.replace(common::sample::READER_MAPPING, ""),
    )
    .unwrap();
    let mut server = spawn(&s, "recording-3", &without_reader, &args).await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "succeeded", "{startup}");
    assert!(
        startup["summary"]["reconciled_projects"].as_u64().unwrap() >= 2,
        "{startup}"
    );
    assert_eq!(members_of(&s, reader), 0, "{startup}");
    server.terminate(Duration::from_secs(25)).await;

    // A record that is garbage confirms nothing.
    std::fs::write(&state, "{\"format\": 1, \"buckets\": \"forged\"}").unwrap();
    let server = spawn(&s, "recording-4", &without_reader, &args).await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "succeeded", "{startup}");
    assert!(
        startup["summary"]["reconciled_projects"].as_u64().unwrap() >= 2,
        "{startup}"
    );
    let log = std::fs::read_to_string(s.dir.path().join("recording-4.log")).unwrap();
    assert!(log.contains("unusable"), "{log}");
}

/// Issue #25: one project whose account AWS refuses (`ValidationException: … is not a member
/// of the organization`) fails alone. Its runs fail and name it, it is retried with backoff
/// and counted in `aws_replicator_projects{state="failed"}`, and every other project's changes
/// are applied; a caller whose scope names a project meshStack lacks fails alone too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_project_that_aws_refuses_fails_alone_and_the_others_go_on() {
    let s = setup().await;
    // The organization holds acme's accounts, not globex.shop's (333333333333).
    for account in ["111111111111", "222222222222"] {
        s.running.emulator.add_account(account);
    }
    let (server, snapshot) = start_scanning(&s, "poison", 3600, 0.0).await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "failed", "{startup}");
    let problems = startup["summary"]["problems"].to_string();
    assert!(
        problems.contains("project globex.shop") && problems.contains("not a member"),
        "{startup}"
    );
    assert!(members_of(&s, "mst-acme.web.meshstack-project-admin") > 0);
    let samples = parse_openmetrics(&server.metrics().await);
    assert_eq!(
        sample(&samples, "aws_replicator_projects{state=failed}"),
        Some(1.0),
        "{samples:#?}"
    );
    assert!(sample(&samples, "aws_replicator_projects{state=confirmed}").unwrap() >= 1.0);
    // A project never confirmed counts from the start of the term: the oldest confirmation's
    // age grows while it fails, rather than reading as "all confirmed just now".
    let oldest = |samples: &[String]| {
        sample(
            samples,
            "aws_replicator_drift_scan_oldest_unconfirmed_seconds",
        )
        .unwrap()
    };
    let first = oldest(&samples);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.post("", &[bearer()]).await;
    let later = oldest(&parse_openmetrics(&server.metrics().await));
    assert!(first > 0.0 && later >= first + 1.0, "{first} then {later}");

    // acme.web's user binding (bob) goes: applied, though globex.shop still fails.
    let users = "mst-acme.web.meshstack-project-developer";
    assert!(members_of(&s, users) > 0);
    edit_snapshot(&snapshot, |snap| {
        snap["bindings"].as_array_mut().unwrap().retain(|b| {
            !(b["workspace"] == "acme" && b["project"] == "web" && b["role"] == "Project User")
        })
    });
    let (status, body) = server.post("", &[bearer()]).await;
    assert_eq!(status, 202, "{body}");
    let run = server.finished(body["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["summary"]["problems"]
            .to_string()
            .contains("globex.shop"),
        "{run}"
    );
    assert_eq!(members_of(&s, users), 0, "{run}");

    // Two callers at once: one names a project meshStack lacks, the other a good one.
    let auth = [bearer()];
    let bad = server.post(r#"{"workspace": "acme", "project": "nope"}"#, &auth);
    let good = server.post(r#"{"workspace": "acme", "project": "web"}"#, &auth);
    let ((bad_status, bad), (good_status, good)) = tokio::join!(bad, good);
    assert_eq!((bad_status, good_status), (202, 202), "{bad} {good}");
    assert_ne!(bad["run_id"], good["run_id"]);
    let good = server.finished(good["run_id"].as_u64().unwrap()).await;
    assert_eq!(good["status"], "succeeded", "{good}");
    let bad = server.finished(bad["run_id"].as_u64().unwrap()).await;
    assert_eq!(bad["status"], "failed", "{bad}");
    assert!(
        bad["error"].as_str().unwrap().contains("acme.nope"),
        "{bad}"
    );
}

/// Issue #25: a listing can count whole and still be wrong (offset paging while meshStack
/// deletes one project and creates another skips a live one). A project the last read wanted
/// and this read's listing lacks is confirmed gone by a point read first; meshStack still has
/// it, so the read is refused and its members stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_missing_from_a_listing_is_confirmed_gone_before_its_members_go() {
    let s = setup().await;
    let sample =
        aws_replicator::snapshot::Snapshot::from_file(std::path::Path::new(SNAPSHOT)).unwrap();
    let (fx, config) = with_meshstack(
        &s,
        &sample,
        "listing.dhall",
        &replicator(3600),
        ", page-size = 2",
    )
    .await;
    let server = spawn(&s, "listing", &config, &[]).await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "succeeded", "{startup}");
    let admins = "mst-globex.shop.meshstack-project-admin";
    assert!(members_of(&s, admins) > 0);

    // The listing loses globex.shop (its paging shifted); a point read finds it, so it is
    // kept, and the run of everything a person asked for goes on without taking anything away.
    fx.script(|script| script.hidden_from_listings = vec!["globex.shop".into()]);
    let before = members_of(&s, admins);
    let (status, body) = server.post("", &[bearer()]).await;
    assert_eq!(status, 202, "{body}");
    let run = server.finished(body["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(members_of(&s, admins), before, "{run}");
    assert!(
        fx.requests()
            .iter()
            .any(|r| r.contains("/meshprojects/globex.shop")),
        "no point read of globex.shop"
    );
}

/// A meshStack fixture serving `estate` (API-key login) and a config `name` with `replicator`
/// that reads it, `meshstack` fields added (`, page-size = 2`).
async fn with_meshstack(
    s: &Setup,
    estate: &aws_replicator::snapshot::Snapshot,
    name: &str,
    replicator: &str,
    meshstack: &str,
) -> (common::meshstack_fixture::Fixture, std::path::PathBuf) {
    use common::meshstack_fixture::{AuthMode, Fixture, Script};
    let auth = AuthMode::ApiKey {
        client_id: "demo".into(),
        client_secret: "demo-secret".into(),
    };
    let fx = Fixture::start(estate, &[], auth, Script::default()).await;
    let config = s.config(name, "%s.%s.%4\\$s", replicator);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "base-url = \"https://meshstack.example.com\"",
        &format!("base-url = \"{}\"{meshstack}", fx.base_url),
    );
    std::fs::write(&config, text).unwrap();
    (fx, config)
}

fn members(s: &Setup, name: &str) -> BTreeSet<String> {
    s.running
        .emulator
        .dump()
        .groups
        .into_iter()
        .find(|g| g.display_name == name)
        .map(|g| g.members.into_iter().collect())
        .unwrap_or_default()
}

/// Issue #25: a meshStack answer that takes away more than the deletion guard allows within an
/// interval pauses removals, not the service: the additions of the same answer are applied,
/// the removals wait (`aws_replicator_removals_paused`, `projects{state="paused"}`,
/// `GET /v1/removals`), a restart keeps them paused, and `POST /v1/removals/allow` applies them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_beyond_the_guard_pause_until_a_person_allows_them_and_additions_go_on() {
    let s = setup().await;
    let state = s.dir.path().join("state.json");
    let snapshot = s.dir.path().join("snapshot.json");
    std::fs::copy(SNAPSHOT, &snapshot).unwrap();
    let replicator = replicator_recording(3600, &state).replacen(
        "T.Replicator::{ ",
        "T.Replicator::{ deletion-guard = { max-share = 0.1, max-count = 1 }, ",
        1,
    );
    let config = s.config("pausing.dhall", "%s.%s.%4\\$s", &replicator);
    let args = [OsStr::new("--snapshot"), snapshot.as_os_str()];
    let mut server = spawn(&s, "pausing-1", &config, &args).await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "succeeded", "{startup}");
    let reader = "mst-globex.shop.meshstack-project-reader";
    let web_reader = "mst-acme.web.meshstack-project-reader";
    let grace = user_id(&s, "grace@globex.example");
    let alice = user_id(&s, "alice@acme.example");
    assert!(members(&s, reader).contains(&grace));

    // meshStack loses globex.shop's two readers, and alice becomes a reader of acme.web.
    edit_snapshot(&snapshot, |snap| {
        let bindings = snap["bindings"].as_array_mut().unwrap();
        bindings.retain(|b| b["project"] != "shop" || b["role"] != "Project Reader");
        bindings.push(serde_json::json!({
            "workspace": "acme", "project": "web", "role": "Project Reader",
            "subject": {"user": "alice"}
        }));
    });
    let (status, body) = server.post("", &[bearer()]).await;
    assert_eq!(status, 202, "{body}");
    let run = server.finished(body["run_id"].as_u64().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["summary"]["withheld"], 1, "{run}");
    let problems = run["summary"]["problems"].to_string();
    assert!(
        problems.contains("globex.shop") && problems.contains("/v1/removals/allow"),
        "{run}"
    );
    assert!(
        members(&s, web_reader).contains(&alice),
        "the addition waits for nothing"
    );
    assert!(
        members(&s, reader).contains(&grace),
        "a removal went out while paused"
    );
    let samples = parse_openmetrics(&server.metrics().await);
    assert_eq!(
        sample(&samples, "aws_replicator_removals_paused"),
        Some(1.0)
    );
    assert_eq!(
        sample(&samples, "aws_replicator_projects{state=paused}"),
        Some(1.0)
    );
    let removals = server.json("/v1/removals").await;
    assert_eq!(removals["paused"], true, "{removals}");
    assert_eq!(
        removals["pause"]["projects"][0], "globex.shop",
        "{removals}"
    );

    // A restart keeps the pause: the record says so.
    server.terminate(Duration::from_secs(25)).await;
    let server = spawn(&s, "pausing-2", &config, &args).await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "failed", "{startup}");
    assert!(
        members(&s, reader).contains(&grace),
        "the restart lifted the pause"
    );
    assert_eq!(server.json("/v1/removals").await["paused"], true);

    // Unauthenticated, nothing is allowed; with the token, the removals go out.
    let allow = |headers: Vec<(&'static str, String)>| {
        let mut request = server
            .http
            .post(format!("{}/v1/removals/allow", server.base));
        for (k, v) in headers {
            request = request.header(k, v);
        }
        request.send()
    };
    assert_eq!(allow(vec![]).await.unwrap().status(), 401);
    let answer = allow(vec![bearer()]).await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["allowed"]["waiting_projects"], 1, "{answer}");
    let started = Instant::now();
    while members(&s, reader).contains(&grace) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the removals did not go out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    loop {
        let samples = parse_openmetrics(&server.metrics().await);
        if sample(&samples, "aws_replicator_removals_paused") == Some(0.0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{samples:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(saved.get("removals-paused").is_none(), "{saved}");
}

/// Issue #25: after a restart no earlier read says which projects meshStack had, so a listing
/// that skips a live project (offset paging while projects come and go) shows its groups in
/// AWS as no longer wanted. The drift scan confirms such a project gone by a point read before
/// it retires anything of it; meshStack still has it, so it is read on its own instead and
/// its members stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_scan_confirms_a_project_gone_before_it_retires_its_groups() {
    let s = setup().await;
    let estate =
        aws_replicator::snapshot::Snapshot::from_file(std::path::Path::new(SNAPSHOT)).unwrap();
    let state = s.dir.path().join("state.json");
    let scanning = replicator_scanning(3600, 0.5).replacen(
        "T.Replicator::{ ",
        &format!("T.Replicator::{{ state = Some \"{}\", ", state.display()),
        1,
    );
    let (fx, config) = with_meshstack(
        &s,
        &estate,
        "restart-listing.dhall",
        &scanning,
        ", page-size = 2",
    )
    .await;
    let mut server = spawn(&s, "restart-listing-1", &config, &[]).await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "succeeded", "{startup}");
    let admins = "mst-globex.shop.meshstack-project-admin";
    let before = members(&s, admins);
    assert!(!before.is_empty());
    server.terminate(Duration::from_secs(25)).await;

    fx.script(|script| script.hidden_from_listings = vec!["globex.shop".into()]);
    let server = spawn(&s, "restart-listing-2", &config, &[]).await;
    let log = s.dir.path().join("restart-listing-2.log");
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("a point read finds")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the scan never met globex.shop's groups: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The project read on its own, and a whole scan cycle after it: nothing of it went.
    let started = Instant::now();
    loop {
        let runs = server.runs().await;
        let read_alone = runs.iter().any(|r| {
            r["trigger"] == "drift_scan"
                && r["projects"] == serde_json::json!(["globex.shop"])
                && r["status"] == "succeeded"
        });
        let samples = parse_openmetrics(&server.metrics().await);
        let cycled =
            sample(&samples, "aws_replicator_drift_scan_cycle_seconds").unwrap_or(0.0) > 0.0;
        if read_alone && cycled {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{runs:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(members(&s, admins), before);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The whole answer on a raw connection, up to `limit`, as text.
async fn answer(stream: &mut tokio::net::TcpStream, limit: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Issue #26 §1: the listener survives the network. 2,000 connections that never finish their
/// request head leave memory bounded (a connection limit, a head limit) and
/// health answering on the metrics listener at once and on the main one once the head timeout
/// has closed them; a head beyond the limit is answered 431, a body sent byte by byte 408; the
/// metrics listener serves no `/v1/*` and the main one no `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_many_connections_leave_memory_bounded_and_health_answering() {
    use tokio::io::AsyncWriteExt;
    let s = setup().await;
    let metrics_port = free_port();
    let config = s.config(
        "listener.dhall",
        "%s.%s.%4\\$s",
        &replicator_with(
            3600,
            &format!(", metrics-listen = Some \"127.0.0.1:{metrics_port}\""),
        ),
    );
    let snapshot = s.dir.path().join("snapshot.json");
    std::fs::copy(SNAPSHOT, &snapshot).unwrap();
    let server = spawn(
        &s,
        "listener",
        &config,
        &[OsStr::new("--snapshot"), snapshot.as_os_str()],
    )
    .await;
    server.finished_by("startup").await;
    let metrics = format!("http://127.0.0.1:{metrics_port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let status = |url: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    };
    // Each listener its own routes.
    assert_eq!(status(format!("{metrics}/metrics")).await.unwrap(), 200);
    assert_eq!(status(format!("{metrics}/v1/runs")).await.unwrap(), 404);
    assert_eq!(
        status(format!("{}/metrics", server.base)).await.unwrap(),
        404
    );
    assert_eq!(
        status(format!("{}/v1/runs", server.base)).await.unwrap(),
        200
    );

    let main = server.base.trim_start_matches("http://").to_owned();
    let pid = server.child.id();
    let before = rss_kib(pid);
    let flood_started = Instant::now();
    // 1,000 connections each sending 100 KiB of a head that never ends (hyper's default buffer
    // held 400 KiB of it per connection), and 1,000 that send 4 KiB and wait.
    let mut held = Vec::new();
    for i in 0..2000 {
        let Ok(mut stream) = tokio::net::TcpStream::connect(&main).await else {
            continue;
        };
        let pad = if i % 2 == 0 { 100 * 1024 } else { 4 * 1024 };
        let head = format!(
            "GET /v1/runs HTTP/1.1\r\nHost: x\r\nX-Pad: {}",
            "a".repeat(pad)
        );
        let _ = stream.write_all(head.as_bytes()).await;
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_kib(pid);
    eprintln!("RSS {before} KiB before, {during} KiB with 2,000 unfinished requests");
    assert!(
        during < before + 64 * 1024,
        "RSS grew from {before} KiB to {during} KiB with 2,000 unfinished requests"
    );
    // The probes' listener answers at once.
    assert_eq!(status(format!("{metrics}/healthz")).await.unwrap(), 200);
    // The main one once the head timeout (10 s) has closed the unfinished ones.
    loop {
        if status(format!("{}/healthz", server.base)).await.ok() == Some(200) {
            break;
        }
        assert!(
            flood_started.elapsed() < Duration::from_secs(30),
            "the main listener never answered again"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(held);

    // A head beyond the limit: 431.
    let mut big = tokio::net::TcpStream::connect(&main).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let text = answer(&mut big, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text:.200}");

    // A body that never completes: 408 once the request's time is up (30 s).
    let mut drip = tokio::net::TcpStream::connect(&main).await.unwrap();
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n{{"
    );
    drip.write_all(head.as_bytes()).await.unwrap();
    let text = answer(&mut drip, Duration::from_secs(45)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text:.200}");
}

/// Issue #25: meshStack is crawled, not read whole for every run. Each cycle takes the
/// listings once and each project's bindings once, spread over the interval; a change made in
/// meshStack without a webhook reaches AWS within a cycle, by a run that costs meshStack
/// nothing more; a cycle with nothing changed costs AWS nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshstack_is_crawled_within_its_budget_and_a_change_reaches_aws_within_a_cycle() {
    use aws_replicator::snapshot::{Binding, Snapshot, Subject};
    let s = setup().await;
    let mut estate = Snapshot::from_file(std::path::Path::new(SNAPSHOT)).unwrap();
    let interval = 4;
    let (fx, config) = with_meshstack(&s, &estate, "crawl.dhall", &replicator(interval), "").await;
    let server = spawn(&s, "crawl", &config, &[]).await;
    let startup = server.finished_by("startup").await;
    assert_eq!(startup["status"], "succeeded", "{startup}");

    // A cycle's cost: one page of each listing, the bindings of each project with a tenant
    // here once, nothing else.
    let with_tenant = estate
        .tenants
        .iter()
        .filter(|t| estate.projects.iter().any(|p| p.key() == t.key()))
        .count();
    let bindings = |requests: &[String]| {
        requests
            .iter()
            .filter(|r| r.contains("meshprojectbindings"))
            .count()
    };
    let aws = || s.running.emulator.requests().len();
    let (mesh_before, aws_before) = (fx.requests().len(), aws());
    tokio::time::sleep(Duration::from_secs(3 * interval)).await;
    let during: Vec<String> = fx.requests()[mesh_before..].to_vec();
    let cycles = during
        .iter()
        .filter(|r| r.contains("/meshprojects?") || r.ends_with("/meshprojects"))
        .count();
    assert!(
        (2..=4).contains(&cycles),
        "{cycles} listings in 3 intervals: {during:#?}"
    );
    // With meshstack.expand-group-bindings (the default): group bindings and user groups too.
    assert_eq!(bindings(&during), cycles * 2 * with_tenant, "{during:#?}");
    let per_cycle = 5 + 2 * with_tenant; // roles, projects, tenants, users, groups; bindings
    assert!(
        during.len() <= cycles * per_cycle + 1,
        "{} meshStack requests in {cycles} cycles, budget {per_cycle} each: {during:#?}",
        during.len()
    );
    assert_eq!(
        aws() - aws_before,
        0,
        "a cycle with nothing changed read AWS"
    );

    // alice becomes a reader of globex.shop in meshStack, and nobody calls the webhook.
    estate.bindings.push(Binding {
        workspace: "globex".into(),
        project: "shop".into(),
        role: "Project Reader".into(),
        subject: Subject::User("alice".into()),
    });
    fx.replace(&estate);
    let changed = Instant::now();
    let alice = user_id(&s, "alice@acme.example");
    let reader = "mst-globex.shop.meshstack-project-reader";
    while !holds(&s, reader, &alice) {
        assert!(
            changed.elapsed() < Duration::from_secs(2 * interval + 5),
            "not in AWS {} s after the change: {:#?}",
            changed.elapsed().as_secs(),
            server.runs().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let samples = parse_openmetrics(&server.metrics().await);
    let oldest = sample(
        &samples,
        "aws_replicator_meshstack_crawl_oldest_read_seconds",
    )
    .unwrap();
    assert!(oldest <= (2 * interval) as f64, "{oldest}");
    let estimate = sample(
        &samples,
        "aws_replicator_meshstack_crawl_cycle_estimate_seconds",
    )
    .unwrap();
    assert_eq!(estimate, interval as f64);

    // Every meshStack request is counted by what it read and how meshStack answered, and the
    // process shows its own memory.
    let read = || {
        fx.requests()
            .iter()
            .filter(|r| r.contains("/userbindings?"))
            .count() as f64
    };
    let before = read();
    let samples = parse_openmetrics(&server.metrics().await);
    let after = read();
    let counted = sample(
        &samples,
        "aws_replicator_api_requests_total{operation=userbindings,service=meshstack,status=ok}",
    )
    .unwrap_or_else(|| {
        panic!(
            "{:#?}",
            samples
                .iter()
                .filter(|s| s.contains("api_requests"))
                .collect::<Vec<_>>()
        )
    });
    assert!(
        before <= counted && counted <= after,
        "{counted} counted, {before}..{after} served"
    );
    assert!(sample(&samples, "process_resident_memory_bytes").unwrap() > 1e6);
}

/// Issue #25: a webhook right after a start is applied within seconds while the crawl's first
/// cycle is still reading a large estate: the crawl is not the reader, so the webhook's scoped
/// read does not queue behind a read of everything (measured at 10,000 projects before the
/// crawl: 20.6 min). Readiness meanwhile says how far the first cycle is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_right_after_a_start_is_applied_while_the_first_crawl_reads_the_estate() {
    let s = setup().await;
    for u in 0..1000 {
        s.running.emulator.add_user(&format!("user{u}@example.com"));
    }
    // 300 projects: 600 bindings requests at meshStack's 10 a second, a first cycle of a minute.
    let estate = common::sample::estate(300);
    let (_fx, config) =
        with_meshstack(&s, &estate, "first-cycle.dhall", &replicator(3600), "").await;
    let server = spawn(&s, "first-cycle", &config, &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (run, took) = server.announce("ws0", "project-0").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(
        took < Duration::from_secs(10),
        "{} s: {run}",
        took.as_secs()
    );
    assert_eq!(
        members_of(&s, "mst-ws0.project-0.meshstack-project-admin"),
        3,
        "{run}"
    );
    let ready = server.get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 503);
    let reason = ready.text().await.unwrap();
    assert!(
        reason.contains("the meshStack crawl's first cycle has read") && reason.contains("of 300"),
        "{reason}"
    );
    assert!(
        server
            .runs()
            .await
            .iter()
            .all(|r| r["trigger"] != "startup"),
        "the start-up run came before the first cycle ended"
    );
}

/// Issue #25 at scale, counted from the emulator's and the meshStack fixture's logs (1,000
/// projects in CI; `AWS_REPLICATOR_SCALE_PROJECTS=10000` opt-in), against the emulator at AWS's
/// 20 requests a second. `serve` restarts over an estate AWS already holds, with the record its
/// last run saved: with nothing changed it reads at most 1 % of a full observation (none) and
/// meshStack within the crawl's budget; restarted again, a change a webhook announces right
/// after the start is in AWS within 10 s; a change nobody announces is in AWS within a crawl
/// cycle; and a project AWS refuses (its account outside the organization) fails alone, named,
/// while every other project stays in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_at_scale_reads_almost_nothing_and_a_poison_project_fails_alone() {
    use aws_replicator::model::ProjectKey;
    use aws_replicator::snapshot::{Binding, Subject};
    let projects: usize = std::env::var("AWS_REPLICATOR_SCALE_PROJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let s = setup().await;
    for u in 0..1000 {
        s.running.emulator.add_user(&format!("user{u}@example.com"));
    }
    let mut estate = common::sample::estate(projects);
    // The organization holds every project's account but project-3's: AWS refuses it as soon
    // as the project is worked.
    let poison = ProjectKey::new("ws0", "project-3");
    for t in &estate.tenants {
        if ProjectKey::new(t.workspace.clone(), t.project.clone()) != poison {
            s.running
                .emulator
                .add_account(t.account_id.as_deref().unwrap());
        }
    }
    // meshStack at 150 requests a second: a cycle paced over an interval its budget allows.
    let rate = 150.0;
    let listings = aws_replicator::meshstack::Listings::of(&estate);
    let cycle_requests = aws_replicator::meshstack::crawl::requests(&listings, 1000, true);
    let interval = 20.max(
        (cycle_requests as f64 / (aws_replicator::meshstack::crawl::SHARE * rate)).ceil() as u64
            + 2,
    );
    let state = s.dir.path().join("state.json");
    let replicator = replicator_recording(interval, &state)
        .replace("meshstack = 10.0", &format!("meshstack = {rate:.1}"));
    let (fx, config) = with_meshstack(&s, &estate, "restart.dhall", &replicator, "").await;
    let loaded = aws_replicator::config::Config::load(&config).unwrap();
    let settings = aws_replicator::desired::Settings::new(&loaded, loaded.sso.as_ref().unwrap());
    let all = aws_replicator::desired::Scope::All;
    let desired = aws_replicator::desired::desired(&estate, &settings, &all);
    assert_eq!(desired.groups.len(), projects * 3, "{:?}", desired.findings);
    common::sample::synced(&s.running.emulator, &desired);
    std::fs::write(
        &state,
        common::sample::record(&desired, |_| true, "serve-before"),
    )
    .unwrap();
    let full = aws_replicator::scan::cycle(
        &desired,
        aws_replicator::directory::AssignmentReads::PerPair,
        1.0,
    );
    let full = (full.scim_calls + full.sso_admin_calls) as usize;
    let first_cycle = Duration::from_secs_f64(cycle_requests as f64 / rate) * 3;

    // Restarted with nothing changed: the first crawl cycle ends in a run of everything that
    // finds nothing to do, and AWS is not read.
    let (aws_before, mesh_before) = (s.running.emulator.requests().len(), fx.requests().len());
    let started = Instant::now();
    let mut server = spawn(&s, "restart-at-scale-1", &config, &[]).await;
    let startup = loop {
        if let Some(run) = server.runs().await.into_iter().find(|r| {
            r["trigger"] == "startup" && !matches!(r["status"].as_str(), Some("queued" | "running"))
        }) {
            break run;
        }
        assert!(
            started.elapsed() < first_cycle + Duration::from_secs(30),
            "no start-up run after {:?}: {:#?}",
            started.elapsed(),
            server.runs().await,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ready = started.elapsed();
    assert_eq!(startup["status"], "succeeded", "{startup}");
    assert_eq!(startup["summary"]["reconciled_projects"], 0, "{startup}");
    let reads = s.running.emulator.requests().len() - aws_before;
    let mesh = fx.requests().len() - mesh_before;
    println!(
        "restart at {projects} projects, nothing changed: the first crawl cycle read meshStack \
         in {ready:.2?} ({mesh} requests); {reads} AWS requests, against {full} reads for a full \
         observation"
    );
    assert!(
        reads * 100 <= full,
        "{reads} AWS requests, a full observation is {full}"
    );
    // No meshStack request beyond the crawl's: its first cycle and a tick of the next.
    let budget = cycle_requests as usize + 2 * aws_replicator::meshstack::crawl::TICK + 1;
    assert!(mesh <= budget, "{mesh} meshStack requests, budget {budget}");
    server.terminate(Duration::from_secs(25)).await;

    // Restarted again, user999 joins project-0's admins right away and a webhook says so.
    let mut server = spawn(&s, "restart-at-scale-2", &config, &[]).await;
    estate.bindings.push(Binding {
        workspace: "ws0".into(),
        project: "project-0".into(),
        role: "Project Admin".into(),
        subject: Subject::User("user999".into()),
    });
    fx.replace(&estate);
    let (run, announced) = server.announce("ws0", "project-0").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(announced < Duration::from_secs(10), "{announced:?}: {run}");
    let admins = "mst-ws0.project-0.meshstack-project-admin";
    assert!(
        holds(&s, admins, &user_id(&s, "user999@example.com")),
        "{run}"
    );

    // Nobody announces the next changes: user998 becomes a reader of project-1 and of
    // project-3, whose account AWS refuses.
    for project in ["project-1", "project-3"] {
        estate.bindings.push(Binding {
            workspace: "ws0".into(),
            project: project.into(),
            role: "Project Reader".into(),
            subject: Subject::User("user998".into()),
        });
    }
    fx.replace(&estate);
    let changed = Instant::now();
    let readers = "mst-ws0.project-1.meshstack-project-reader";
    let user998 = user_id(&s, "user998@example.com");
    while !holds(&s, readers, &user998) {
        assert!(
            changed.elapsed() < Duration::from_secs(2 * interval + 10),
            "not in AWS {:?} after the change: {:#?}",
            changed.elapsed(),
            server.runs().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unannounced = changed.elapsed();
    println!(
        "then a change announced by a webhook right after a restart was in AWS after \
         {announced:.2?}, one nobody announced after {unannounced:.2?} (crawl cycle {interval} s)"
    );

    // Every project but the poison one is exactly as meshStack wants it; the poison one fails,
    // counted and named.
    let failing = || async {
        let samples = parse_openmetrics(&server.metrics().await);
        sample(&samples, "aws_replicator_projects{state=failed}").unwrap_or(0.0)
            + sample(&samples, "aws_replicator_projects{state=held}").unwrap_or(0.0)
    };
    while failing().await < 1.0 {
        assert!(
            changed.elapsed() < Duration::from_secs(2 * interval + 20),
            "project-3 never failed: {:#?}",
            server.runs().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(failing().await, 1.0);
    let desired = aws_replicator::desired::desired(&estate, &settings, &all);
    let wrong = common::sample::out_of_sync(&s.running.emulator, &desired, |p| *p == poison);
    assert!(wrong.is_empty(), "{wrong:#?}");
    let named = server.runs().await.iter().any(|r| {
        let text = r.to_string();
        text.contains("project ws0.project-3") && text.contains("not a member")
    });
    assert!(named, "{:#?}", server.runs().await);
    server.terminate(Duration::from_secs(25)).await;
}
