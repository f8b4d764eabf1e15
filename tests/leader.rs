//! Two `serve` replicas with leader election, against the emulator (AWS IAM Identity Center),
//! moto's STS and a Kubernetes API peer that follows the API reference for Leases
//! (`common::kube_api`: optimistic concurrency on `resourceVersion`, 409 on a stale write).
//!
//! One writer at a time: the follower answers the webhook 503 naming the leader; after the
//! leader is SIGKILLed the follower takes over within the lease duration and completes the
//! work; after SIGTERM the leader keeps its record of what AWS holds on the lease, releases it
//! and the follower takes over at once, reconciling nothing that the record confirms; a leader
//! paused (SIGSTOP) past its lease sends no write after it resumes, by the emulator's request
//! log (each request names its replica in its User-Agent). A follower that kept meshStack's
//! desired state warm takes over from the record, and the take-over gap is measured at any
//! estate size.

mod common;

use common::cli::{Setup, setup};
use common::kube_api::KubeApi;
use common::peers::Spawned;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const TOKEN: &str = "webhook-token-0123456789abcdef";
const NAMESPACE: &str = "ops";
const LEASE: &str = "aws-replicator";
const LEASE_SECONDS: u64 = 4;
const SNAPSHOT: &str = "config/sample-snapshot.json";

struct Replica {
    process: Spawned,
    base: String,
    audit: PathBuf,
}

/// The port `pid` listens on, once it does: `serve` binds port 0 and the port is read from the
/// process's own listening socket (no port is freed and taken again in between).
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?.to_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // local address, state 0A (LISTEN), inode
        let listening = fields.get(3) == Some(&"0A");
        let ours = fields.get(9).is_some_and(|i| inodes.iter().any(|o| o == i));
        (listening && ours)
            .then(|| u16::from_str_radix(fields[1].rsplit(':').next()?, 16).ok())
            .flatten()
    })
}

/// A replica's config: leader election on a short lease, its own audit file, SCIM at
/// `scim_rate` requests per second (4 in most tests, so that an apply takes long enough to be
/// caught in the middle).
fn config(s: &Setup, name: &str, scim_rate: f64) -> (PathBuf, PathBuf) {
    let audit = s.dir.path().join(format!("{name}-audit.jsonl"));
    let replicator = format!(
        "T.Replicator::{{ schedule = {{ interval-seconds = 3600, jitter-seconds = 0 }}, \
         rate-limits = {{ scim = {scim_rate:?}, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 }}, \
         audit-log = Some \"{audit}\", \
         serve = T.Replicator.default.serve // {{ webhook-token = Some \"{TOKEN}\" }}, \
         leader-election = Some {{ lease-name = \"{LEASE}\", namespace = \"{NAMESPACE}\", \
         lease-duration-seconds = {LEASE_SECONDS}, renew-deadline-seconds = 3, retry-period-seconds = 1 }} }}",
        audit = audit.display()
    );
    (
        s.config(&format!("{name}.dhall"), "%s.%s.%4\\$s", &replicator),
        audit,
    )
}

async fn start(s: &Setup, kube: &KubeApi, name: &'static str) -> Replica {
    start_on(s, kube, name, Path::new(SNAPSHOT)).await
}

/// [`start`], reading meshStack's state from `snapshot`.
async fn start_on(s: &Setup, kube: &KubeApi, name: &'static str, snapshot: &Path) -> Replica {
    start_at(s, kube, name, snapshot, 4.0).await
}

/// [`start_on`], with SCIM at `scim_rate` requests per second.
async fn start_at(
    s: &Setup,
    kube: &KubeApi,
    name: &'static str,
    snapshot: &Path,
    scim_rate: f64,
) -> Replica {
    let (config, audit) = config(s, name, scim_rate);
    // The pod exists before its container starts; a restarted container finds it as it was.
    kube.add_pod(NAMESPACE, name);
    let log = std::fs::File::create(s.dir.path().join(format!("{name}.log"))).unwrap();
    let child = s
        .command()
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(["--snapshot", snapshot.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .env("KUBECONFIG", kube.kubeconfig(s.dir.path(), NAMESPACE, name))
        .env("POD_NAME", name)
        .env("AWS_REPLICATOR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    let process = Spawned(child);
    let mut port = None;
    wait("serve listens", Duration::from_secs(30), || {
        port = listening_port(pid);
        std::future::ready(port.is_some())
    })
    .await;
    let replica = Replica {
        process,
        base: format!("http://127.0.0.1:{}", port.unwrap()),
        audit,
    };
    wait("healthz", Duration::from_secs(30), || async {
        reqwest::get(format!("{}/healthz", replica.base))
            .await
            .is_ok()
    })
    .await;
    replica
}

async fn wait<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

fn signal(replica: &Replica, signal: &str) {
    let pid = replica.process.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// What the Kubernetes API peer refused that the replicas should never have sent: a request
/// the Role does not allow, or one the API server would reject as malformed (a Lease PUT
/// without its resourceVersion, a body that is not the URL's object, a pod that does not
/// exist). Conflicts (409) and a first read of a lease not yet made (404) are the protocol.
fn assert_the_api_server_agreed(kube: &KubeApi) {
    assert_eq!(kube.refused(), Vec::<String>::new(), "refused by the Role");
    let wrong: Vec<_> = kube
        .requests()
        .into_iter()
        .filter(|r| {
            (400..500).contains(&r.status)
                && r.status != 409
                && !(r.status == 404 && r.method == "GET")
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "requests the API server refuses: {wrong:?}"
    );
}

/// The audit file's intent lines (each a write about to be sent).
fn intents(audit: &Path) -> usize {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"phase\":\"intent\""))
        .count()
}

impl Replica {
    async fn runs(&self) -> Vec<serde_json::Value> {
        let value: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/v1/runs", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        value["runs"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200.
    async fn ready(&self) {
        wait("ready", Duration::from_secs(30), || async {
            reqwest::get(format!("{}/readyz", self.base))
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
    }

    /// `POST /v1/sync` with the webhook token and `body` (none: everything).
    async fn trigger(&self, body: Option<&'static str>) -> reqwest::Response {
        let request = reqwest::Client::new()
            .post(format!("{}/v1/sync", self.base))
            .bearer_auth(TOKEN);
        match body {
            Some(body) => request.body(body),
            None => request,
        }
        .send()
        .await
        .unwrap()
    }

    /// Waits until `/readyz` says the follower keeps meshStack's desired state warm.
    async fn warm(&self, limit: Duration) {
        wait("the desired state kept warm", limit, || async {
            let ready = reqwest::get(format!("{}/readyz", self.base)).await.unwrap();
            ready.text().await.unwrap().contains("kept warm")
        })
        .await;
    }

    /// Waits for the first run of `trigger` to end, and returns its record.
    async fn ended(&self, trigger: &str, limit: Duration) -> serde_json::Value {
        let ended = || async {
            self.runs()
                .await
                .into_iter()
                .find(|r| r["trigger"] == trigger && r["status"] != "running")
        };
        wait(&format!("a {trigger} run ends"), limit, || async {
            ended().await.is_some()
        })
        .await;
        ended().await.unwrap()
    }

    async fn finished_a_run(&self) -> bool {
        self.runs()
            .await
            .iter()
            .any(|r| r["status"] == "succeeded" || r["status"] == "failed")
    }
}

/// The replica that sent a write, by its User-Agent (`None` for a read).
fn writer(request: &aws_replicator::emulator::LoggedRequest) -> Option<&'static str> {
    let write = match request.family {
        aws_replicator::emulator::Family::Scim => request.method != "GET",
        _ => aws_replicator::fence::is_write(&request.endpoint),
    };
    let replica = ["replica-a", "replica-b"]
        .into_iter()
        .find(|r| request.user_agent.contains(r));
    if write {
        Some(replica.unwrap_or("untagged"))
    } else {
        None
    }
}

/// Adds a stranger to every group of ours and takes one member out of each: work for several
/// writes per group.
fn drift(s: &Setup, stranger: &str) {
    let mut state = s.running.emulator.dump();
    for g in state
        .groups
        .iter_mut()
        .filter(|g| g.display_name.starts_with("mst-"))
    {
        g.members.insert(stranger.to_owned());
        if let Some(m) = g.members.iter().find(|m| m.as_str() != stranger).cloned() {
            g.members.remove(&m);
        }
    }
    s.running.emulator.load(state);
}

fn has_stranger(s: &Setup, stranger: &str) -> bool {
    s.running
        .emulator
        .dump()
        .groups
        .iter()
        .any(|g| g.members.contains(stranger))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_takes_over_after_kill_term_and_pause() {
    let s = setup().await;
    let kube = KubeApi::start(NAMESPACE).await;
    let holder = || kube.holder(NAMESPACE, LEASE);

    // A leads, B follows.
    let a = start(&s, &kube, "replica-a").await;
    wait("a leads", Duration::from_secs(15), || async {
        holder().as_deref() == Some("replica-a")
    })
    .await;
    wait("a's first run", Duration::from_secs(60), || {
        a.finished_a_run()
    })
    .await;
    let b = start(&s, &kube, "replica-b").await;
    assert_eq!(
        kube.label(NAMESPACE, "replica-a", "aws-replicator/leader")
            .as_deref(),
        Some("true")
    );
    assert_eq!(
        kube.label(NAMESPACE, "replica-b", "aws-replicator/leader"),
        None
    );
    // Ready once its first read of meshStack ended (and the clocks' skew passed).
    b.ready().await;
    let ready = reqwest::get(format!("{}/readyz", b.base)).await.unwrap();
    assert!(ready.text().await.unwrap().contains("standby"));
    let refused = b.trigger(None).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["leader"], "replica-a", "{body}");
    assert!(b.runs().await.is_empty(), "a follower runs nothing");
    assert_eq!(intents(&b.audit), 0, "a follower writes nothing");

    // SIGKILL: B takes over once the lease runs out, and repairs what is left.
    let stranger = s.running.emulator.add_user("mallory@other.example");
    drift(&s, &stranger);
    signal(&a, "-KILL");
    let after_kill = wait(
        "b leads after SIGKILL",
        Duration::from_secs(3 * LEASE_SECONDS),
        || async { holder().as_deref() == Some("replica-b") },
    )
    .await;
    wait("b repairs", Duration::from_secs(60), || async {
        !has_stranger(&s, &stranger)
    })
    .await;
    assert_eq!(
        kube.label(NAMESPACE, "replica-b", "aws-replicator/leader")
            .as_deref(),
        Some("true")
    );
    drop(a);

    // SIGTERM, as in a rolling update: A comes back and is ready (it has read meshStack); B
    // keeps its record on the lease and releases it on its way out; A takes over at once and
    // has nothing to reconcile.
    let a = start(&s, &kube, "replica-a").await;
    a.ready().await;
    signal(&b, "-TERM");
    let after_term = wait(
        "a leads after SIGTERM",
        Duration::from_secs(2 * LEASE_SECONDS),
        || async { holder().as_deref() == Some("replica-a") },
    )
    .await;
    wait("b exits", Duration::from_secs(30), || async {
        std::fs::read_to_string(format!("/proc/{}/stat", b.process.0.id()))
            .map(|stat| stat.contains(") Z "))
            .unwrap_or(true)
    })
    .await;
    assert_eq!(
        kube.label(NAMESPACE, "replica-b", "aws-replicator/leader"),
        None,
        "b unlabelled itself"
    );
    drop(b);
    wait("a's run as leader", Duration::from_secs(60), || {
        a.finished_a_run()
    })
    .await;
    let log_b = std::fs::read_to_string(s.dir.path().join("replica-b.log")).unwrap();
    assert!(log_b.contains("record kept for the next leader"), "{log_b}");
    let first = a
        .runs()
        .await
        .into_iter()
        .find(|r| r["trigger"] == "startup");
    assert!(
        first
            .as_ref()
            .is_some_and(|r| r["summary"]["reconciled_projects"] == 0),
        "a took over from b's record: {first:?}"
    );

    // SIGSTOP past the lease, in the middle of an apply: B takes over and writes; A, resumed,
    // sends nothing more.
    let b = start(&s, &kube, "replica-b").await;
    drift(&s, &stranger);
    let before = intents(&a.audit);
    let kicked = a.trigger(None).await;
    assert_eq!(kicked.status(), 202);
    wait("a starts writing", Duration::from_secs(30), || async {
        intents(&a.audit) > before
    })
    .await;
    signal(&a, "-STOP");
    let paused_at = s.running.emulator.requests().len();
    let frozen = intents(&a.audit);
    wait(
        "b leads while a is paused",
        Duration::from_secs(4 * LEASE_SECONDS),
        || async { holder().as_deref() == Some("replica-b") },
    )
    .await;
    wait("b writes", Duration::from_secs(30), || async {
        intents(&b.audit) > 0
    })
    .await;
    let lost = log_of(&s, "replica-a").matches("lost the lease").count();
    signal(&a, "-CONT");
    wait("b repairs", Duration::from_secs(60), || async {
        !has_stranger(&s, &stranger)
    })
    .await;
    // Resumed, A finds out it lost the lease (its renewal is past the deadline, or the lease
    // names B); until then, and after, its fence kept it from writing.
    wait("a knows it lost", Duration::from_secs(15), || async {
        log_of(&s, "replica-a").matches("lost the lease").count() > lost
    })
    .await;
    assert_eq!(
        intents(&a.audit),
        frozen,
        "the paused leader sent no write after it resumed"
    );
    // The emulator's log, each request tagged with its replica by User-Agent: from B's first
    // write after the pause on, no write of A's.
    let log = s.running.emulator.requests();
    let writers: Vec<&str> = log.iter().filter_map(writer).collect();
    assert!(writers.contains(&"replica-a"), "a's writes are tagged");
    assert!(
        !writers.contains(&"untagged"),
        "every write is tagged: {writers:?}"
    );
    let after_pause: Vec<&str> = log[paused_at..].iter().filter_map(writer).collect();
    let first_of_b = after_pause
        .iter()
        .position(|w| *w == "replica-b")
        .expect("b wrote");
    assert!(
        !after_pause[first_of_b..].contains(&"replica-a"),
        "a wrote after b's first write: {after_pause:?}"
    );
    assert_eq!(holder().as_deref(), Some("replica-b"));
    assert_eq!(
        kube.label(NAMESPACE, "replica-a", "aws-replicator/leader"),
        None
    );
    // The record on the lease is the leader's: the deposed one's writes of it were refused.
    let record = kube
        .annotation(NAMESPACE, LEASE, "aws-replicator/record")
        .expect("b keeps its record on the lease");
    assert!(record.contains("\"written-by\":\"replica-b\""), "{record}");
    // A stopped in the middle of its work: B found writes left to do, and A knows it lost.
    assert!(intents(&b.audit) > 0);
    let log = std::fs::read_to_string(s.dir.path().join("replica-a.log")).unwrap();
    assert!(log.contains("lost the lease"), "{log}");
    println!(
        "take-over: {after_kill:?} after SIGKILL (lease {LEASE_SECONDS} s), {after_term:?} after SIGTERM"
    );
    assert_the_api_server_agreed(&kube);
    drop((a, b));
}

/// A rolling restart loses no change. The leader accepts a webhook trigger while its first
/// batch is still reading AWS, and is stopped (SIGTERM) before it gets to it: the batch, still
/// reading when the grace period ends, is cut, and the record confirms none of its projects.
/// The replica that takes over reconciles them, which applies the change; the stopped leader
/// never wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_cut_by_a_rolling_restart_is_applied_by_the_next_leader() {
    let s = setup().await;
    let kube = KubeApi::start(NAMESPACE).await;
    let holder = || kube.holder(NAMESPACE, LEASE);
    let snapshot = s.dir.path().join("rolling.json");
    std::fs::copy(SNAPSHOT, &snapshot).unwrap();

    // A's start-up run is held in its first SCIM read past the grace period.
    s.running.emulator.inject(aws_replicator::emulator::Fault {
        family: aws_replicator::emulator::Family::Scim,
        endpoint: "GET /".into(),
        status: 200,
        latency_ms: aws_replicator::server::GRACE.as_millis() as u64 + 2_000,
        times: 1,
        ..Default::default()
    });
    let a = start_on(&s, &kube, "replica-a", &snapshot).await;
    wait("a leads", Duration::from_secs(15), || async {
        holder().as_deref() == Some("replica-a")
    })
    .await;
    wait("a's start-up run", Duration::from_secs(15), || async {
        a.runs().await.iter().any(|r| r["status"] == "running")
    })
    .await;
    let b = start_on(&s, &kube, "replica-b", &snapshot).await;

    // meshStack changes (alice becomes a reader of globex.shop) and says so.
    common::sample::alice_reads_shop(&snapshot);
    let accepted = a
        .trigger(Some(r#"{"workspace": "globex", "project": "shop"}"#))
        .await;
    assert_eq!(accepted.status(), 202);
    let queued: serde_json::Value = accepted.json().await.unwrap();
    assert_eq!(queued["coalesced"], false, "{queued}");
    signal(&a, "-TERM");

    wait("b leads", Duration::from_secs(30), || async {
        holder().as_deref() == Some("replica-b")
    })
    .await;
    wait("b's start-up run", Duration::from_secs(60), || async {
        b.runs()
            .await
            .iter()
            .any(|r| r["trigger"] == "startup" && r["status"] == "succeeded")
    })
    .await;
    assert!(reader_of_shop_has_alice(&s), "the change was lost");
    // Written by B, not by A (whose start-up run read meshStack before the change).
    let adds_alice = |audit: &Path| {
        std::fs::read_to_string(audit)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"phase\":\"intent\""))
            .filter(|l| l.contains("mst-globex.shop.meshstack-project-reader"))
            .any(|l| l.contains("alice@acme.example"))
    };
    assert!(!adds_alice(&a.audit), "a ran the trigger before it stopped");
    assert!(adds_alice(&b.audit));
    let log_a = std::fs::read_to_string(s.dir.path().join("replica-a.log")).unwrap();
    assert!(
        log_a.contains("the batch in hand did not finish in the grace period"),
        "a's batch was cut by the grace period: {log_a}"
    );
    assert_the_api_server_agreed(&kube);
    drop(a);
}

fn reader_of_shop_has_alice(s: &Setup) -> bool {
    let state = s.running.emulator.dump();
    let Some(alice) = state
        .users
        .iter()
        .find(|u| u.user_name == "alice@acme.example")
    else {
        return false;
    };
    state.groups.iter().any(|g| {
        g.display_name == "mst-globex.shop.meshstack-project-reader"
            && g.members.contains(&alice.id)
    })
}

/// A follower keeps meshStack's desired state warm and takes over from the record the leader
/// keeps on the lease; after the leader is SIGKILLed, the follower's first run reconciles only
/// the project whose meshStack data changed, without reading the rest of the estate from AWS
/// first. The drift scan's first cycle, at the full rate, then finds a member added by hand
/// and queues its repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_takes_over_by_change_and_its_scan_finds_the_drift() {
    let s = setup().await;
    let kube = KubeApi::start(NAMESPACE).await;
    let holder = || kube.holder(NAMESPACE, LEASE);
    let snapshot = s.dir.path().join("warm.json");
    std::fs::copy(SNAPSHOT, &snapshot).unwrap();
    let a = start_on(&s, &kube, "replica-a", &snapshot).await;
    wait("a leads", Duration::from_secs(15), || async {
        holder().as_deref() == Some("replica-a")
    })
    .await;
    wait("a's first run", Duration::from_secs(60), || {
        a.finished_a_run()
    })
    .await;
    let b = start_on(&s, &kube, "replica-b", &snapshot).await;
    b.warm(Duration::from_secs(15)).await;
    let record = kube
        .annotation(NAMESPACE, LEASE, "aws-replicator/record")
        .expect("a keeps its record on the lease");
    assert!(record.contains("\"written-by\":\"replica-a\""), "{record}");

    let runs_of_a = a.runs().await;
    // meshStack changes; someone adds a stranger to another group of ours by hand.
    common::sample::alice_reads_shop(&snapshot);
    let stranger = s.running.emulator.add_user("mallory@other.example");
    let mut state = s.running.emulator.dump();
    state
        .groups
        .iter_mut()
        // Not the group meshStack changes: the run by change would repair it with that.
        .find(|g| g.display_name.starts_with("mst-acme."))
        .expect("a's start-up run made acme's groups")
        .members
        .insert(stranger.clone());
    s.running.emulator.load(state);
    signal(&a, "-KILL");
    let took_over = wait(
        "b leads after SIGKILL",
        Duration::from_secs(3 * LEASE_SECONDS),
        || async { holder().as_deref() == Some("replica-b") },
    )
    .await;
    let started = Instant::now();
    wait("b applies the change", Duration::from_secs(30), || async {
        reader_of_shop_has_alice(&s)
    })
    .await;
    let applied = started.elapsed();
    let first = b.ended("startup", Duration::from_secs(30)).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let summary = &first["summary"];
    assert_eq!(summary["reconciled_projects"], 1, "{first}");
    // The project's groups looked up and read, and its users; A's start-up run read every
    // project.
    let full = runs_of_a
        .iter()
        .find(|r| r["trigger"] == "startup")
        .unwrap();
    assert!(
        summary["scim_reads"].as_u64().unwrap() * 2
            < full["summary"]["scim_reads"].as_u64().unwrap(),
        "read only the changed project: {first}, against {full}"
    );
    // The scan finds the stranger and queues a run.
    let repair = b.ended("drift_scan", Duration::from_secs(60)).await;
    assert_eq!(repair["status"], "succeeded", "{repair}");
    assert!(!has_stranger(&s, &stranger));
    println!(
        "take-over by change: b led {took_over:?} after SIGKILL (lease {LEASE_SECONDS} s) and applied the change {applied:?} later"
    );
    assert_the_api_server_agreed(&kube);
    drop((a, b));
}

/// The gap a take-over leaves (issue #18): with a warm follower, from taking the lease to a
/// meshStack change being in AWS, against the emulator at AWS's 20 requests per second, at
/// `AWS_REPLICATOR_SCALE_PROJECTS` projects (300 by default). The last leader is played by the
/// test: AWS holds what it synced, it held and renewed the lease, kept its record of what AWS
/// holds on it, and stopped. A full start-up run would first read the whole estate; its reads
/// are printed beside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_follower_applies_a_change_within_seconds_of_taking_over() {
    let projects: usize = std::env::var("AWS_REPLICATOR_SCALE_PROJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let s = setup().await;
    for u in 0..1000 {
        s.running.emulator.add_user(&format!("user{u}@example.com"));
    }
    let kube = KubeApi::start(NAMESPACE).await;
    let snapshot = s.dir.path().join("estate.json");
    let mut snap = common::sample::estate(projects);
    std::fs::write(&snapshot, serde_json::to_vec(&snap).unwrap()).unwrap();
    let (config, _) = config(&s, "reference", 20.0);
    let config = aws_replicator::config::Config::load(&config).unwrap();
    let settings = aws_replicator::desired::Settings::new(&config, config.sso.as_ref().unwrap());
    let all = aws_replicator::desired::Scope::All;
    let desired = aws_replicator::desired::desired(&snap, &settings, &all);
    assert_eq!(desired.groups.len(), projects * 3, "{:?}", desired.findings);
    common::sample::synced(&s.running.emulator, &desired);

    // The last leader holds the lease and renews it while B starts and reads meshStack.
    kube.hold(NAMESPACE, LEASE, "replica-gone", serde_json::json!({}));
    let renewing = {
        let kube = kube.clone();
        tokio::spawn(async move {
            loop {
                kube.hold(NAMESPACE, LEASE, "replica-gone", serde_json::json!({}));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let b = start_at(&s, &kube, "replica-b", &snapshot, 20.0).await;
    b.warm(Duration::from_secs(120)).await;
    // The last leader's record says AWS holds `desired`; then meshStack changed (user999
    // joins project-0's admins) and the leader stopped.
    let saved = common::sample::record(&desired, |_| true, "replica-gone");
    kube.hold(
        NAMESPACE,
        LEASE,
        "replica-gone",
        serde_json::json!({ "aws-replicator/record": saved }),
    );
    snap.bindings.push(aws_replicator::snapshot::Binding {
        workspace: "ws0".into(),
        project: "project-0".into(),
        role: "Project Admin".into(),
        subject: aws_replicator::snapshot::Subject::User("user999".into()),
    });
    std::fs::write(&snapshot, serde_json::to_vec(&snap).unwrap()).unwrap();
    s.running.emulator.clear_requests();
    renewing.abort();

    wait(
        "b leads",
        Duration::from_secs(4 * LEASE_SECONDS),
        || async { kube.holder(NAMESPACE, LEASE).as_deref() == Some("replica-b") },
    )
    .await;
    let (took_over, _) = kube.last_change_of_holder().unwrap();
    let patched = || {
        s.running
            .emulator
            .requests()
            .iter()
            .any(|r| r.endpoint == "PATCH /Groups/{id}" && r.status == 204)
    };
    wait("b applies the change", Duration::from_secs(60), || async {
        patched()
    })
    .await;
    let gap = took_over.elapsed();
    let first = b.ended("startup", Duration::from_secs(60)).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["summary"]["reconciled_projects"], 1, "{first}");
    let reads = first["summary"]["scim_reads"].as_u64().unwrap()
        + first["summary"]["sso_admin_reads"].as_u64().unwrap();
    let cold = aws_replicator::scan::cycle(
        &desired,
        aws_replicator::directory::AssignmentReads::PerPair,
        1.0,
    );
    println!(
        "take-over at {projects} projects: the change was in AWS {gap:.2?} after B took the lease \
         (its first run read {reads} times); a full start-up run would first read about {} SCIM + {} \
         sso-admin times ({})",
        cold.scim_calls,
        cold.sso_admin_calls,
        aws_replicator::scan::human(cold.seconds)
    );
    // What the gap costs does not grow with the estate: the changed project's groups looked up
    // and read, its pairs and its new member (a full start-up run's reads are printed above).
    assert!(reads <= 12, "{first}");
    assert_the_api_server_agreed(&kube);
    drop(b);
}

const RENEW_DEADLINE: Duration = Duration::from_secs(3);
const LEADER_LABEL: &str = "aws-replicator/leader";

fn log_of(s: &Setup, name: &str) -> String {
    std::fs::read_to_string(s.dir.path().join(format!("{name}.log"))).unwrap_or_default()
}

/// The times of the audit file's intent lines (each a write about to be sent, past the fence).
fn intent_times(audit: &Path) -> Vec<std::time::SystemTime> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"phase\":\"intent\""))
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            let time: k8s_openapi::jiff::Timestamp =
                line["timestamp"].as_str().unwrap().parse().unwrap();
            std::time::SystemTime::from(time)
        })
        .collect()
}

/// One writer at a time, by the API server's record against the replicas' own: every write a
/// replica announced (an audit intent line, written only past its fence) fell while the Lease
/// named that replica.
fn assert_each_write_within_its_writers_term(kube: &KubeApi, replicas: &[(&str, &Path)]) {
    let writes = kube.lease_writes();
    let mut checked = 0;
    for (name, audit) in replicas {
        for time in intent_times(audit) {
            let holder = writes
                .iter()
                .rev()
                .find(|w| w.wall <= time)
                .and_then(|w| w.holder.as_deref());
            assert_eq!(
                holder,
                Some(*name),
                "{name} announced a write at {time:?} while the Lease named {holder:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no write to check");
}

/// The Lease changed hands only after it had gone unrenewed for a whole lease duration (a
/// release excepted), as the API server saw it: no candidate took it early, whatever the
/// holder's clock wrote into it.
fn assert_take_overs_waited_out_the_lease(kube: &KubeApi) -> usize {
    let mut last_renewal: Option<(Instant, Option<String>)> = None;
    let mut take_overs = 0;
    for write in kube.lease_writes() {
        if let Some((renewed, Some(before))) = &last_renewal
            && write.holder.as_ref().is_some_and(|h| h != before)
        {
            let unrenewed = write.at.duration_since(*renewed);
            assert!(
                unrenewed >= Duration::from_secs(LEASE_SECONDS),
                "{:?} took the lease from {before} {unrenewed:?} after its last renewal",
                write.holder
            );
            take_overs += 1;
        }
        if write.spec_changed {
            last_renewal = Some((write.at, write.holder.clone()));
        }
    }
    take_overs
}

/// Requests of `client` the peer's faults answered (0: hung) from position `from` of its log.
fn faulted(kube: &KubeApi, client: &str, from: usize) -> usize {
    kube.requests()[from..]
        .iter()
        .filter(|r| r.client == client && (r.status == 0 || r.status >= 500 || r.status == 429))
        .count()
}

/// meshStack gives a new user (made in AWS too) every role in every project: one write to each
/// of our groups (15 in the sample), for a run by change to do. Returns the user's id in AWS.
fn everyone_gains(s: &Setup, snapshot: &Path, user: &str) -> String {
    let euid = format!("{user}@acme.example");
    let id = s.running.emulator.add_user(&euid);
    let mut snap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(snapshot).unwrap()).unwrap();
    snap["users"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"username": user, "euid": euid}));
    let projects: Vec<(String, String)> = snap["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["workspace"].as_str().unwrap().to_owned(),
                p["identifier"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (workspace, project) in projects {
        for role in ["Project Admin", "Project User", "Project Reader"] {
            snap["bindings"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "workspace": workspace, "project": project, "role": role,
                    "subject": {"user": user}
                }));
        }
    }
    std::fs::write(snapshot, serde_json::to_vec_pretty(&snap).unwrap()).unwrap();
    id
}

/// Whether every group of ours holds the user `id`.
fn all_hold(s: &Setup, id: &str) -> bool {
    s.running
        .emulator
        .dump()
        .groups
        .iter()
        .filter(|g| g.display_name.starts_with("mst-"))
        .all(|g| g.members.contains(id))
}

/// A leader cut off from the Kubernetes API, its requests first hung (a dead connection), then
/// answered 500, in the middle of its work: from its renew deadline on (counted from before
/// the cut, its last chance to confirm the lease) it sends no write, by the emulator's request
/// log, though work is left; it knows it lost the lease and keeps trying to take it; once the
/// API answers again it leads again, labels its pod and finishes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_server_stops_writing_by_its_renew_deadline() {
    use common::kube_api::{Fault, FaultKind};
    let s = setup().await;
    let kube = KubeApi::start(NAMESPACE).await;
    let snapshot = s.dir.path().join("cut.json");
    std::fs::copy(SNAPSHOT, &snapshot).unwrap();
    let a = start_at(&s, &kube, "replica-a", &snapshot, 2.0).await;
    wait("a leads", Duration::from_secs(15), || async {
        kube.holder(NAMESPACE, LEASE).as_deref() == Some("replica-a")
    })
    .await;
    wait("a's first run", Duration::from_secs(60), || {
        a.finished_a_run()
    })
    .await;
    for (round, fault) in [FaultKind::Hang, FaultKind::Status(500)]
        .into_iter()
        .enumerate()
    {
        let newcomer = everyone_gains(&s, &snapshot, &format!("newcomer{round}"));
        let before = intents(&a.audit);
        assert_eq!(a.trigger(None).await.status(), 202);
        wait("a writes", Duration::from_secs(30), || async {
            intents(&a.audit) > before
        })
        .await;
        let lost = log_of(&s, "replica-a").matches("lost the lease").count();
        let cut = Instant::now();
        kube.inject(Fault::on("replica-a", fault.clone()));
        let requests_at_cut = kube.requests().len();
        let writes_at_cut = s.running.emulator.requests().len();
        // The deadline is the property itself: the last confirmation was before the cut.
        tokio::time::sleep_until((cut + RENEW_DEADLINE + Duration::from_millis(250)).into()).await;
        let at_deadline = s.running.emulator.requests().len();
        wait("a knows it lost", Duration::from_secs(15), || async {
            log_of(&s, "replica-a").matches("lost the lease").count() > lost
        })
        .await;
        // It keeps trying to take the lease, and is cut off each time.
        let tried = kube.requests().len();
        wait("a tries again", Duration::from_secs(30), || async {
            faulted(&kube, "replica-a", tried) >= 2
        })
        .await;
        let lifted = s.running.emulator.requests().len();
        assert!(
            !all_hold(&s, &newcomer),
            "the work was done before the deadline: nothing shows the fence"
        );
        let log = s.running.emulator.requests();
        let early = log[writes_at_cut..at_deadline]
            .iter()
            .filter(|r| writer(r) == Some("replica-a"))
            .count();
        let late: Vec<_> = log[at_deadline..lifted]
            .iter()
            .filter(|r| writer(r) == Some("replica-a"))
            .map(|r| &r.endpoint)
            .collect();
        assert!(
            late.is_empty(),
            "{fault:?}: a wrote after its renew deadline: {late:?}"
        );
        assert!(
            faulted(&kube, "replica-a", requests_at_cut) > 2,
            "the API was cut off"
        );
        kube.clear_faults();
        wait(
            "a leads again and finishes",
            Duration::from_secs(120),
            || async { all_hold(&s, &newcomer) },
        )
        .await;
        wait(
            "a's pod labelled again",
            Duration::from_secs(15),
            || async {
                kube.label(NAMESPACE, "replica-a", LEADER_LABEL).as_deref() == Some("true")
            },
        )
        .await;
        println!(
            "{fault:?}: a sent {early} writes after the cut before its deadline, none after; back {:?} after the cut",
            cut.elapsed()
        );
    }
    assert_each_write_within_its_writers_term(&kube, &[("replica-a", &a.audit)]);
    drop(a);
}

/// The API server throttles (429 with Retry-After), fails (503, 500) and answers late, for
/// both replicas, while the leader works and renews: leadership may change hands, but only
/// after the lease ran out, every write falls in its writer's term, and once the faults stop
/// one replica leads with its pod, alone, labelled, and finishes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_during_renewals_never_make_two_leaders() {
    use common::kube_api::{Fault, FaultKind};
    let s = setup().await;
    let kube = KubeApi::start(NAMESPACE).await;
    let snapshot = s.dir.path().join("faults.json");
    std::fs::copy(SNAPSHOT, &snapshot).unwrap();
    let a = start_at(&s, &kube, "replica-a", &snapshot, 2.0).await;
    wait("a leads", Duration::from_secs(15), || async {
        kube.holder(NAMESPACE, LEASE).as_deref() == Some("replica-a")
    })
    .await;
    wait("a's first run", Duration::from_secs(60), || {
        a.finished_a_run()
    })
    .await;
    let b = start_at(&s, &kube, "replica-b", &snapshot, 2.0).await;
    b.ready().await;
    let newcomer = everyone_gains(&s, &snapshot, "newcomer");
    let before = intents(&a.audit);
    assert_eq!(a.trigger(None).await.status(), 202);
    wait("a writes", Duration::from_secs(30), || async {
        intents(&a.audit) > before
    })
    .await;

    let from = kube.requests().len();
    kube.inject(Fault::everyone(
        FaultKind::TooManyRequests {
            retry_after_seconds: 1,
        },
        3,
    ));
    kube.inject(Fault::everyone(FaultKind::Status(503), 4));
    kube.inject(Fault::everyone(
        FaultKind::Latency(Duration::from_millis(700)),
        5,
    ));
    kube.inject(Fault::everyone(FaultKind::Status(500), 6));
    wait("the faults hit", Duration::from_secs(90), || async {
        faulted(&kube, "replica-a", from) >= 15 && faulted(&kube, "replica-b", from) >= 15
    })
    .await;
    kube.clear_faults();

    wait("the work is done", Duration::from_secs(120), || async {
        all_hold(&s, &newcomer)
    })
    .await;
    let holder = kube.holder(NAMESPACE, LEASE).expect("someone leads");
    let other = if holder == "replica-a" {
        "replica-b"
    } else {
        "replica-a"
    };
    wait(
        "only the leader's pod labelled",
        Duration::from_secs(15),
        || async {
            kube.label(NAMESPACE, &holder, LEADER_LABEL).as_deref() == Some("true")
                && kube.label(NAMESPACE, other, LEADER_LABEL).is_none()
        },
    )
    .await;
    let take_overs = assert_take_overs_waited_out_the_lease(&kube);
    assert_each_write_within_its_writers_term(
        &kube,
        &[("replica-a", &a.audit), ("replica-b", &b.audit)],
    );
    // The faults were the API server's, not the Role's: nothing was refused.
    assert_eq!(kube.refused(), Vec::<String>::new());
    println!(
        "faults: {} of a's and {} of b's requests; {take_overs} take-overs; {holder} leads",
        faulted(&kube, "replica-a", from),
        faulted(&kube, "replica-b", from)
    );
    drop((a, b));
}

/// A replica whose container restarted in place finds its pod labelled leader by its earlier
/// life, while another replica leads: it clears the label before it campaigns, so that the
/// webhook Service reaches only the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_clears_the_leader_label_its_pod_kept() {
    let s = setup().await;
    let kube = KubeApi::start(NAMESPACE).await;
    let b = start(&s, &kube, "replica-b").await;
    wait("b leads", Duration::from_secs(15), || async {
        kube.holder(NAMESPACE, LEASE).as_deref() == Some("replica-b")
    })
    .await;
    kube.add_pod(NAMESPACE, "replica-a");
    kube.set_label(NAMESPACE, "replica-a", LEADER_LABEL, "true");
    let a = start(&s, &kube, "replica-a").await;
    let of_a = || -> Vec<common::kube_api::Logged> {
        kube.requests()
            .into_iter()
            .filter(|r| r.client == "replica-a")
            .collect()
    };
    wait("a campaigns", Duration::from_secs(15), || async {
        of_a().iter().any(|r| r.path.contains("/leases"))
    })
    .await;
    assert_eq!(kube.label(NAMESPACE, "replica-a", LEADER_LABEL), None);
    assert_eq!(
        kube.label(NAMESPACE, "replica-b", LEADER_LABEL).as_deref(),
        Some("true")
    );
    let requests = of_a();
    let cleared = requests
        .iter()
        .position(|r| r.method == "PATCH" && r.path.ends_with("/pods/replica-a") && r.status == 200)
        .expect("a patched its pod");
    let campaigned = requests
        .iter()
        .position(|r| r.path.contains("/leases"))
        .unwrap();
    assert!(cleared < campaigned, "{requests:?}");
    assert_eq!(kube.holder(NAMESPACE, LEASE).as_deref(), Some("replica-b"));
    assert_the_api_server_agreed(&kube);
    drop((a, b));
}

/// Two replicas whose clocks are two minutes apart (+60 s and -60 s; each writes its own time
/// into the Lease, which the API server stores as sent): the election judges expiry by what
/// each candidate saw change, on its own monotonic clock, so neither takes the lease while its
/// holder renews it (to a clock-comparing candidate the -60 s holder's renewals look two
/// minutes old), and each takes over from the other within the lease after the holder dies
/// (to a clock-comparing candidate the +60 s holder's lease would look valid for a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_clocks_two_minutes_apart_lead_one_at_a_time() {
    let s = setup().await;
    let kube = KubeApi::start(NAMESPACE).await;
    kube.skew("replica-a", -60);
    kube.skew("replica-b", 60);
    let holder = || kube.holder(NAMESPACE, LEASE);
    let renew_time = || -> Duration {
        let lease = kube.lease(NAMESPACE, LEASE).unwrap();
        let renewed: k8s_openapi::jiff::Timestamp = lease["spec"]["renewTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let off = k8s_openapi::jiff::Timestamp::now().duration_since(renewed);
        Duration::from_secs_f64(off.as_secs_f64().abs())
    };
    let lease_reads_of = |client: &str| {
        kube.requests()
            .iter()
            .filter(|r| r.client == client && r.method == "GET" && r.path.contains("/leases/"))
            .count()
    };

    let a = start(&s, &kube, "replica-a").await;
    wait("a leads", Duration::from_secs(15), || async {
        holder().as_deref() == Some("replica-a")
    })
    .await;
    wait("a's first run", Duration::from_secs(60), || {
        a.finished_a_run()
    })
    .await;
    let b = start(&s, &kube, "replica-b").await;
    b.ready().await;
    // B has watched A's renewals for longer than a lease (it reads every 1 to 1.5 s).
    let seen = lease_reads_of("replica-b");
    wait("b watches the lease", Duration::from_secs(30), || async {
        lease_reads_of("replica-b") >= seen + 2 * LEASE_SECONDS as usize
    })
    .await;
    assert_eq!(holder().as_deref(), Some("replica-a"));
    let behind = renew_time();
    assert!(
        behind >= Duration::from_secs(55),
        "a's renewals are stamped by its clock, a minute behind: {behind:?}"
    );

    signal(&a, "-KILL");
    let after_a = wait(
        "b takes over",
        Duration::from_secs(3 * LEASE_SECONDS),
        || async { holder().as_deref() == Some("replica-b") },
    )
    .await;
    wait("b's pod labelled", Duration::from_secs(15), || async {
        kube.label(NAMESPACE, "replica-b", LEADER_LABEL).as_deref() == Some("true")
    })
    .await;
    drop(a);

    // A's container restarts (its clock still behind) and follows; B dies.
    let a = start(&s, &kube, "replica-a").await;
    a.ready().await;
    wait("b writes its record", Duration::from_secs(60), || async {
        b.finished_a_run().await
    })
    .await;
    let ahead = renew_time();
    assert!(
        ahead >= Duration::from_secs(55),
        "b's renewals are stamped by its clock, a minute ahead: {ahead:?}"
    );
    signal(&b, "-KILL");
    let b_audit = b.audit.clone();
    let after_b = wait(
        "a takes over",
        Duration::from_secs(3 * LEASE_SECONDS),
        || async { holder().as_deref() == Some("replica-a") },
    )
    .await;
    wait("a finishes a run", Duration::from_secs(60), || {
        a.finished_a_run()
    })
    .await;
    drop(b);

    let take_overs = assert_take_overs_waited_out_the_lease(&kube);
    assert_eq!(take_overs, 2, "{:?}", kube.lease_writes());
    assert_each_write_within_its_writers_term(
        &kube,
        &[("replica-a", &a.audit), ("replica-b", &b_audit)],
    );
    assert_the_api_server_agreed(&kube);
    println!(
        "clocks -60 s and +60 s: b took over {after_a:?} after a died, a {after_b:?} after b died (lease {LEASE_SECONDS} s)"
    );
    drop(a);
}

/// The Kubernetes API peer answers what the API server answers to what the replicas send, and
/// refuses what the Role does not allow: a Lease PUT without `resourceVersion` (422) or with a
/// stale one (409), a patch of a pod that does not exist (404, and no pod made), an object of
/// another namespace (404), an unknown path (404), every error a `Status`; 403 Forbidden to a
/// read of a pod, a patch, list or delete of the Lease, another Lease, a namespace the Role is
/// not bound in. Its faults switch on and off; a skewed client's times are stored skewed.
#[tokio::test]
async fn the_kubernetes_api_peer_refuses_what_the_api_server_refuses() {
    use common::kube_api::{Fault, FaultKind, token};
    use serde_json::{Value, json};
    let kube = KubeApi::start(NAMESPACE).await;
    kube.bind("elsewhere");
    let http = reqwest::Client::new();
    let leases = |ns: &str| {
        format!(
            "{}/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
            kube.url
        )
    };
    let lease = |ns: &str, name: &str| format!("{}/{name}", leases(ns));
    let pod = |ns: &str, name: &str| format!("{}/api/v1/namespaces/{ns}/pods/{name}", kube.url);
    let send = |method: reqwest::Method, url: String, body: Option<Value>, merge: bool| {
        let mut request = http.request(method, url).bearer_auth(token("t"));
        if let Some(body) = body {
            let content_type = if merge {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            request = request
                .header("content-type", content_type)
                .body(body.to_string());
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    use reqwest::Method as M;
    let failure = |(status, body): (u16, Value), code: u16, reason: &str| {
        assert_eq!(status, code, "{body}");
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["reason"], reason, "{body}");
        assert_eq!(body["code"], code, "{body}");
        body["message"].as_str().unwrap().to_owned()
    };

    let spec = json!({"holderIdentity": "x", "leaseDurationSeconds": 4});
    let created = send(
        M::POST,
        leases(NAMESPACE),
        Some(json!({"metadata": {"name": LEASE}, "spec": spec})),
        false,
    )
    .await;
    assert_eq!(created.0, 201, "{}", created.1);
    let version = created.1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    failure(
        send(
            M::POST,
            leases(NAMESPACE),
            Some(json!({"metadata": {"name": LEASE}, "spec": spec})),
            false,
        )
        .await,
        409,
        "AlreadyExists",
    );
    // A PUT must carry the resourceVersion it read, and the current one.
    let message = failure(
        send(
            M::PUT,
            lease(NAMESPACE, LEASE),
            Some(json!({"metadata": {"name": LEASE}, "spec": spec})),
            false,
        )
        .await,
        422,
        "Invalid",
    );
    assert!(
        message.contains("must be specified for an update"),
        "{message}"
    );
    let replaced = send(
        M::PUT,
        lease(NAMESPACE, LEASE),
        Some(json!({"metadata": {"name": LEASE, "resourceVersion": version}, "spec": spec})),
        false,
    )
    .await;
    assert_eq!(replaced.0, 200, "{}", replaced.1);
    failure(
        send(
            M::PUT,
            lease(NAMESPACE, LEASE),
            Some(json!({"metadata": {"name": LEASE, "resourceVersion": version}, "spec": spec})),
            false,
        )
        .await,
        409,
        "Conflict",
    );
    failure(
        send(
            M::PUT,
            lease(NAMESPACE, LEASE),
            Some(json!({"metadata": {"name": "other"}, "spec": spec})),
            false,
        )
        .await,
        400,
        "BadRequest",
    );
    // Namespaces are honoured.
    failure(
        send(M::GET, lease("elsewhere", LEASE), None, false).await,
        404,
        "NotFound",
    );
    assert_eq!(
        send(M::GET, lease(NAMESPACE, LEASE), None, false).await.0,
        200
    );
    // A pod that does not exist is not made by a patch.
    let label = json!({"metadata": {"labels": {LEADER_LABEL: "true"}}});
    failure(
        send(M::PATCH, pod(NAMESPACE, "ghost"), Some(label.clone()), true).await,
        404,
        "NotFound",
    );
    failure(
        send(M::PATCH, pod(NAMESPACE, "ghost"), Some(label.clone()), true).await,
        404,
        "NotFound",
    );
    kube.add_pod(NAMESPACE, "real");
    failure(
        send(
            M::PATCH,
            pod("elsewhere", "real"),
            Some(label.clone()),
            true,
        )
        .await,
        404,
        "NotFound",
    );
    assert_eq!(
        send(M::PATCH, pod(NAMESPACE, "real"), Some(label.clone()), true)
            .await
            .0,
        200
    );
    assert_eq!(
        kube.label(NAMESPACE, "real", LEADER_LABEL).as_deref(),
        Some("true")
    );
    failure(
        send(M::PATCH, pod(NAMESPACE, "real"), Some(label.clone()), false).await,
        415,
        "UnsupportedMediaType",
    );
    failure(
        send(
            M::GET,
            format!("{}/apis/nothing/v1/here", kube.url),
            None,
            false,
        )
        .await,
        404,
        "NotFound",
    );

    // The Role (deploy/kubernetes/role.yaml) allows nothing more than the election needs.
    let forbidden = [
        send(M::GET, pod(NAMESPACE, "real"), None, false).await,
        send(
            M::PATCH,
            lease(NAMESPACE, LEASE),
            Some(json!({"metadata": {"annotations": {"a": "b"}}})),
            true,
        )
        .await,
        send(M::GET, leases(NAMESPACE), None, false).await,
        send(M::DELETE, lease(NAMESPACE, LEASE), None, false).await,
        send(M::GET, lease(NAMESPACE, "someone-elses"), None, false).await,
        send(M::GET, lease("unbound", LEASE), None, false).await,
        send(
            M::POST,
            format!("{}/api/v1/namespaces/{NAMESPACE}/pods", kube.url),
            Some(json!({"metadata": {"name": "p"}})),
            false,
        )
        .await,
    ];
    for answer in forbidden {
        let message = failure(answer, 403, "Forbidden");
        assert!(
            message.contains("is forbidden: User \"system:serviceaccount:"),
            "{message}"
        );
    }
    assert_eq!(kube.refused().len(), 7, "{:?}", kube.refused());
    assert!(
        kube.refused()[0].starts_with("get pods \"real\""),
        "{:?}",
        kube.refused()
    );

    // Faults, on and off at runtime.
    kube.inject(Fault::on("t", FaultKind::Status(503)));
    failure(
        send(M::GET, lease(NAMESPACE, LEASE), None, false).await,
        503,
        "ServiceUnavailable",
    );
    kube.clear_faults();
    kube.inject(Fault::on(
        "t",
        FaultKind::TooManyRequests {
            retry_after_seconds: 2,
        },
    ));
    let throttled = http
        .get(lease(NAMESPACE, LEASE))
        .bearer_auth(token("t"))
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "2");
    kube.clear_faults();
    kube.inject(Fault::on("someone-else", FaultKind::Status(500)));
    assert_eq!(
        send(M::GET, lease(NAMESPACE, LEASE), None, false).await.0,
        200,
        "another client's fault"
    );
    kube.clear_faults();
    kube.inject(Fault::on(
        "t",
        FaultKind::Latency(Duration::from_millis(300)),
    ));
    let started = Instant::now();
    assert_eq!(
        send(M::GET, lease(NAMESPACE, LEASE), None, false).await.0,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    kube.clear_faults();
    kube.inject(Fault::on("t", FaultKind::Hang));
    let hung = http
        .get(lease(NAMESPACE, LEASE))
        .bearer_auth(token("t"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung.is_err_and(|e| e.is_timeout()));
    kube.clear_faults();
    assert_eq!(
        send(M::GET, lease(NAMESPACE, LEASE), None, false).await.0,
        200
    );

    // A client with a clock a minute behind writes times a minute behind.
    kube.skew("t", -60);
    let read = send(M::GET, lease(NAMESPACE, LEASE), None, false).await.1;
    let now = k8s_openapi::jiff::Timestamp::now();
    let stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string();
    let mut renewed = read.clone();
    renewed["spec"]["renewTime"] = json!(stamp);
    let (status, stored) = send(M::PUT, lease(NAMESPACE, LEASE), Some(renewed), false).await;
    assert_eq!(status, 200, "{stored}");
    let written: k8s_openapi::jiff::Timestamp = stored["spec"]["renewTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(now.duration_since(written).as_secs(), 60, "{stored}");
    // Unauthenticated: 401.
    assert_eq!(
        http.get(lease(NAMESPACE, LEASE))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}
