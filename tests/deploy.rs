//! What `deploy/` ships, checked as a cluster and a Prometheus would take it: the Kubernetes
//! manifests (the kustomize base and its monitoring component) validate against Kubernetes
//! 1.30's schemas (`kubernetes-validate`, offline) and render with `kubectl kustomize` (where
//! kubectl is installed), list every file, carry the recommended labels, lock the pods down,
//! give the config every secret it imports (the whole Secret, `envFrom`), a webhook token and
//! the pod's namespace, send the webhook to the leader only and admit it only from the
//! namespaces an overlay names; the alert rules pass `promtool check` and `promtool test`, also
//! fed a real `/metrics` scrape, the PrometheusRule carries exactly them, and each links its
//! section of `docs/runbook.md`; and `serve`'s output is what a log collector wants: JSON
//! lines, no colour codes, each run's start and end at the default filter, the audit trail on
//! its own stream.

mod common;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BASE: &str = "deploy/kubernetes";
const COMPONENT: &str = "deploy/kubernetes/servicemonitor";
/// The Kubernetes version the manifests are validated against.
const KUBERNETES: &str = "1.30.0";
const RULES: &str = "deploy/prometheus-rules.yaml";
const RUNBOOK: &str = "docs/runbook.md";
/// Where an alert's `runbook_url` points, up to the section's anchor.
const RUNBOOK_URL: &str = "https://github.com/meshcloud/aws-replicator/blob/main/docs/runbook.md#";
/// The variables the Deployment sets itself (the downward API, the log format); every other
/// variable comes from the Secret.
const POD_ENV: [&str; 3] = ["POD_NAME", "POD_NAMESPACE", "AWS_REPLICATOR_LOG_FORMAT"];

/// Where the shipped config differs from `config/example.dhall`: a webhook token from the
/// Secret, and the Lease in the pod's own namespace. Everything else is the example's.
const SHIPPED_CONFIG_EDITS: [(&str, &str); 2] = [
    (
        "\n      , replicator = T.Replicator::{\n",
        "\n      , replicator = T.Replicator::{
        {- The webhook's bearer token, from the Secret (WEBHOOK_TOKEN in
           deploy/kubernetes/secret.example.yaml); without one, every POST /v1/sync and
           GET /v1/runs is answered 403. The Deployment's --listen overrides `listen`.
           /metrics and the probes have a listener of their own, so that the metrics Service,
           which reaches every replica, does not reach /v1/*. -}
        , serve =
            T.Replicator.default.serve
            // { webhook-token = Some env:WEBHOOK_TOKEN as Text
               , metrics-listen = Some \"0.0.0.0:9090\"
               }\n",
    ),
    (
        "          , namespace = \"aws-replicator\"\n",
        "          , {- The namespace the pod runs in: the Deployment sets POD_NAMESPACE from the
               downward API. Elsewhere (`config check` on a laptop) \"aws-replicator\". -}
            namespace = env:POD_NAMESPACE as Text ? \"aws-replicator\"\n",
    ),
];

/// `config/example.dhall` with [`SHIPPED_CONFIG_EDITS`]: what the base's `config.dhall` holds.
fn shipped_config() -> String {
    let mut text = std::fs::read_to_string("config/example.dhall").unwrap();
    for (from, to) in SHIPPED_CONFIG_EDITS {
        assert_eq!(
            text.matches(from).count(),
            1,
            "config/example.dhall changed where the shipped config differs from it: {from:?}"
        );
        text = text.replacen(from, to, 1);
    }
    text
}

fn kubernetes_validate() -> String {
    std::env::var("AWS_REPLICATOR_KUBERNETES_VALIDATE")
        .unwrap_or_else(|_| "kubernetes-validate".into())
}

fn promtool() -> String {
    std::env::var("AWS_REPLICATOR_PROMTOOL").unwrap_or_else(|_| "promtool".into())
}

/// Runs a test tool; one that is missing fails the test with the way to install it.
fn tool(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}); scripts/test installs the test tools and sets its variable")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The documents of a YAML file, through PyYAML in the test peers' Python.
fn yaml(path: &Path) -> Vec<Value> {
    let out = Command::new(common::peers::python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))",
        ])
        .arg(path)
        .output()
        .expect("the test peers' Python (AWS_REPLICATOR_PYTHON)");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn one(path: &str) -> Value {
    let mut docs = yaml(Path::new(path));
    assert_eq!(docs.len(), 1, "{path} holds one manifest");
    docs.remove(0)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The files a kustomization lists as resources, as paths.
fn resources(dir: &str) -> Vec<PathBuf> {
    let k = one(&format!("{dir}/kustomization.yaml"));
    strings(&k["resources"])
        .iter()
        .map(|r| Path::new(dir).join(r))
        .collect()
}

/// The base's config generator: ConfigMap key → file.
fn generated_config() -> (String, BTreeMap<String, PathBuf>) {
    let k = one(&format!("{BASE}/kustomization.yaml"));
    let generators = k["configMapGenerator"].as_array().unwrap();
    assert_eq!(generators.len(), 1);
    let files = strings(&generators[0]["files"])
        .iter()
        .map(|entry| {
            let (key, file) = entry.split_once('=').expect("key=file");
            (key.to_owned(), Path::new(BASE).join(file))
        })
        .collect();
    (generators[0]["name"].as_str().unwrap().to_owned(), files)
}

/// A resource of the Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule).
fn operator_kind(document: &Value) -> bool {
    document["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("monitoring.coreos.com/"))
}

/// The labels the base's config generator puts on the ConfigMap.
fn generator_labels() -> Value {
    one(&format!("{BASE}/kustomization.yaml"))["configMapGenerator"][0]["options"]["labels"].clone()
}

fn deployment() -> Value {
    one(&format!("{BASE}/deployment.yaml"))
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

/// The names a Dhall file imports with `env:NAME`.
fn env_imports(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.match_indices("env:")
        .map(|(i, _)| {
            text[i + 4..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .collect()
}

#[test]
fn every_manifest_is_listed_and_every_listed_file_exists() {
    for dir in [BASE, COMPONENT] {
        let listed: BTreeSet<PathBuf> = resources(dir).into_iter().collect();
        for path in &listed {
            assert!(
                path.is_file(),
                "{dir}/kustomization.yaml lists {path:?}, which is missing"
            );
        }
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            // The Secret is a template: applying its placeholders would overwrite real values.
            if !name.ends_with(".yaml")
                || name == "kustomization.yaml"
                || name.ends_with(".example.yaml")
            {
                continue;
            }
            assert!(
                listed.contains(&path),
                "{} is not in {dir}/kustomization.yaml",
                path.display()
            );
        }
    }
    // The component stays out of the base: it needs the Prometheus Operator's CRDs.
    let base = one(&format!("{BASE}/kustomization.yaml"));
    assert!(base.get("components").is_none(), "{base}");
    assert_eq!(
        one(&format!("{COMPONENT}/kustomization.yaml"))["kind"],
        "Component"
    );
}

/// The ConfigMap holds the config and the types it imports; the types are the repository's,
/// the config is `config/example.dhall` with only [`SHIPPED_CONFIG_EDITS`], and the Deployment
/// mounts each key where `./types/package.dhall` resolves.
#[test]
fn the_config_map_carries_the_config_and_its_types_where_the_import_finds_them() {
    let (name, files) = generated_config();
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    expected.insert("config.dhall".into(), shipped_config());
    for entry in std::fs::read_dir("config/types").unwrap() {
        let path = entry.unwrap().path();
        expected.insert(
            path.file_name().unwrap().to_str().unwrap().to_owned(),
            std::fs::read_to_string(&path).unwrap(),
        );
    }
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the configMapGenerator lists config.dhall and every file of config/types"
    );
    for (key, file) in &files {
        assert!(
            std::fs::read_to_string(file).unwrap() == expected[key],
            "{} differs from the repository's: cp config/types/*.dhall {BASE}/config/types/; \
             the config is config/example.dhall with SHIPPED_CONFIG_EDITS (tests/deploy.rs)",
            file.display(),
        );
    }

    let d = deployment();
    let volumes = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let config = volumes.iter().find(|v| v["name"] == "config").unwrap();
    assert_eq!(config["configMap"]["name"], name.as_str());
    let items: BTreeMap<String, String> = config["configMap"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["key"].as_str().unwrap().into(),
                i["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let wanted: BTreeMap<String, String> = files
        .keys()
        .map(|k| {
            let path = if k == "config.dhall" {
                k.clone()
            } else {
                format!("types/{k}")
            };
            (k.clone(), path)
        })
        .collect();
    assert_eq!(items, wanted);
    let c = container(&d);
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .unwrap();
    assert_eq!(mount["mountPath"], "/etc/aws-replicator");
    assert_eq!(
        strings(&c["args"]),
        [
            "serve",
            "--config",
            "/etc/aws-replicator/config.dhall",
            "--listen",
            "0.0.0.0:8080"
        ]
    );
}

/// Every manifest, the Secret template and the ConfigMap the generator makes validate against
/// Kubernetes 1.30's schemas, strictly (no unknown field). The ServiceMonitor's and the
/// PrometheusRule's schemas are the Prometheus Operator's, which kubernetes-validate does not
/// ship; their fields are checked in
/// `the_webhook_reaches_the_leader_and_rbac_is_one_lease_and_the_own_pod` and
/// `the_prometheus_rule_carries_exactly_the_rules_file` (whose rules promtool checks).
#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let (name, files) = generated_config();
    let data: BTreeMap<String, String> = files
        .iter()
        .map(|(k, f)| (k.clone(), std::fs::read_to_string(f).unwrap()))
        .collect();
    let config_map = dir.path().join("configmap.json");
    let labels = generator_labels();
    std::fs::write(
        &config_map,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": data})
            .to_string(),
    )
    .unwrap();
    let mut paths: Vec<PathBuf> = resources(BASE);
    paths.push(format!("{BASE}/secret.example.yaml").into());
    paths.push(config_map);
    let crds: Vec<PathBuf> = resources(COMPONENT)
        .into_iter()
        .filter(|p| yaml(p).iter().any(operator_kind))
        .collect();
    assert_eq!(crds.len(), 2, "the ServiceMonitor and the PrometheusRule");
    paths.extend(
        resources(COMPONENT)
            .into_iter()
            .filter(|p| !crds.contains(p)),
    );
    let mut args = vec!["--strict", "--kubernetes-version", KUBERNETES];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let (ok, out) = tool(&kubernetes_validate(), &args);
    assert!(ok, "{out}");
    let documents: usize = paths.iter().map(|p| yaml(p).len()).sum();
    assert_eq!(
        out.matches(" passed for resource ").count(),
        documents,
        "{out}"
    );
    assert!(!out.contains("WARN") && !out.contains("ERROR"), "{out}");

    // A manifest that breaks the schema fails: the validation is not vacuous.
    let broken = dir.path().join("broken.yaml");
    let text = std::fs::read_to_string(format!("{BASE}/service.yaml"))
        .unwrap()
        .replace("targetPort: http", "targetPort: http\n      portt: 1");
    std::fs::write(&broken, text).unwrap();
    let (ok, out) = tool(
        &kubernetes_validate(),
        &[
            "--strict",
            "--kubernetes-version",
            KUBERNETES,
            broken.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{out}");
}

/// Non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp, no privilege
/// escalation; probes on /healthz and /readyz; the downward API for leader election; two
/// replicas with a budget that keeps one, and lets a pod that is not ready go (a replica stuck
/// unready must not block a node drain).
#[test]
fn the_pods_run_locked_down_and_know_their_name() {
    let d = deployment();
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
    let c = container(&d);
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["capabilities"].get("add").is_none());
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        // The probes go to the metrics listener, which a flood on the webhook's cannot starve.
        assert_eq!(c[probe]["httpGet"]["port"], c["ports"][1]["name"]);
    }
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    let env = c["env"].as_array().unwrap();
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = env.iter().find(|e| e["name"] == name).unwrap();
        assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field);
    }
    let pdb = one(&format!("{BASE}/poddisruptionbudget.yaml"));
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
}

/// The Deployment takes the whole Secret as its environment (`envFrom`: a config that imports
/// one more secret needs one more key, not a patch), and sets no secret one by one. The
/// Secret template has a key for each `env:` import of the shipped config but the variables
/// the Deployment sets itself (`POD_NAMESPACE`), a webhook token among them, and nothing else.
#[test]
fn the_deployment_gives_the_config_every_secret_it_imports() {
    let imports = env_imports(&format!("{BASE}/config/config.dhall"));
    assert!(imports.len() >= 7, "{imports:?}");
    assert!(imports.contains("WEBHOOK_TOKEN") && imports.contains("POD_NAMESPACE"));
    let d = deployment();
    let c = container(&d);
    assert_eq!(
        c["envFrom"],
        json!([{"secretRef": {"name": "aws-replicator"}}])
    );
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["valueFrom"].get("secretKeyRef").is_none(), "{e}");
            e["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(env, POD_ENV);
    let secret = one(&format!("{BASE}/secret.example.yaml"));
    assert_eq!(secret["metadata"]["name"], "aws-replicator");
    let keys: BTreeSet<String> = secret["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let from_secret: BTreeSet<String> = imports
        .iter()
        .filter(|name| !POD_ENV.contains(&name.as_str()))
        .cloned()
        .collect();
    assert_eq!(keys, from_secret);
}

/// The webhook Service reaches only the pod labelled leader (the label the code sets); RBAC is
/// the config's one Lease (by name, plus create) and `patch` on pods (the leader label; pod
/// names are generated, so RBAC cannot name them, and the code never reads a pod); the
/// ServiceMonitor scrapes every replica.
#[test]
fn the_webhook_reaches_the_leader_and_rbac_is_one_lease_and_the_own_pod() {
    let service = one(&format!("{BASE}/service.yaml"));
    assert_eq!(
        service["spec"]["selector"],
        json!({"app.kubernetes.io/name": "aws-replicator", "aws-replicator/leader": "true"})
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert!(
        source_contains("src", "\"aws-replicator/leader\""),
        "the Service selects a label the code no longer sets"
    );

    let config = std::fs::read_to_string(format!("{BASE}/config/config.dhall")).unwrap();
    let lease = config
        .split("lease-name = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the shipped config names its Lease");
    let role = one(&format!("{BASE}/role.yaml"));
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": [lease], "verbs": ["get", "update"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]},
        ])
    );
    // Said once more, plainly: no rule lets a replica read pods.
    for rule in role["rules"].as_array().unwrap() {
        if strings(&rule["resources"]).iter().any(|r| r == "pods") {
            assert!(
                !strings(&rule["verbs"]).iter().any(|v| v == "get"),
                "{rule}"
            );
        }
    }
    let binding = one(&format!("{BASE}/rolebinding.yaml"));
    assert_eq!(binding["roleRef"]["name"], "aws-replicator");
    assert_eq!(
        binding["subjects"][0]["name"],
        deployment()["spec"]["template"]["spec"]["serviceAccountName"]
    );

    let monitor = resources(COMPONENT)
        .iter()
        .flat_map(|p| yaml(p))
        .find(|d| d["kind"] == "ServiceMonitor")
        .unwrap();
    let metrics = resources(COMPONENT)
        .iter()
        .flat_map(|p| yaml(p))
        .find(|d| d["kind"] == "Service")
        .unwrap();
    assert_eq!(
        metrics["spec"]["selector"],
        json!({"app.kubernetes.io/name": "aws-replicator"})
    );
    for (label, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&metrics["metadata"]["labels"][label], value);
    }
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        metrics["spec"]["ports"][0]["name"]
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let (ok, out) = tool(&promtool(), &["check", "rules", RULES]);
    assert!(ok, "{out}");
    let (ok, out) = tool(
        &promtool(),
        &["test", "rules", "deploy/tests/prometheus-rules.test.yaml"],
    );
    assert!(ok && out.contains("SUCCESS"), "{out}");
}

const TOKEN: &str = "webhook-token-0123456789abcdef";

/// `/metrics` text as promtool input series, each sample constant for `minutes`, with the
/// labels a scrape adds. `now` (Unix seconds) becomes promtool's time `at` (seconds): the last
/// success keeps its age.
fn series(metrics: &str, now: f64, at: f64, minutes: u32) -> Vec<Value> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (selector, value) = line.rsplit_once(' ').unwrap();
            let mut value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            let (name, labels) = match selector.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}').to_owned()),
                None => (selector, String::new()),
            };
            if name == "aws_replicator_last_success_timestamp_seconds" && value > 0.0 {
                value = value - now + at;
            }
            let scrape = r#"job="aws-replicator",instance="pod-a:8080""#;
            let labels = if labels.is_empty() {
                scrape.to_owned()
            } else {
                format!("{labels},{scrape}")
            };
            // promtool's series notation has no `NaNxN`; `NaN+0xN` is the same series.
            let values = if value.is_nan() {
                format!("NaN+0x{minutes}")
            } else {
                format!("{value}x{minutes}")
            };
            json!({"series": format!("{name}{{{labels}}}"), "values": values})
        })
        .collect()
}

/// `serve` as the Deployment runs it (`AWS_REPLICATOR_LOG_FORMAT=json`, the default filter):
/// every line on standard error is a JSON object, with no colour code; each run's start and
/// end are there; the audit trail is on standard output. Its `/metrics` then feeds the alert
/// rules: quiet while the last success is recent, `AwsReplicatorNoRecentSuccess` once three
/// intervals pass without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_json_runs_and_audit_apart_and_its_metrics_feed_the_alerts() {
    let s = common::cli::setup().await;
    let replicator = format!(
        "T.Replicator::{{ schedule = {{ interval-seconds = 3600, jitter-seconds = 0 }}, \
         rate-limits = {{ scim = 20.0, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 }}, \
         serve = T.Replicator.default.serve // {{ webhook-token = Some \"{TOKEN}\" }} }}"
    );
    let config = s.config("serve.dhall", "%s.%s.%4\\$s", &replicator);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (stdout, stderr) = (s.dir.path().join("stdout"), s.dir.path().join("stderr"));
    let mut child = s
        .command()
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--snapshot",
            "config/sample-snapshot.json",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("AWS_REPLICATOR_LOG")
        .env("AWS_REPLICATOR_LOG_FORMAT", "json")
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    let run = loop {
        let runs: Option<Value> = match http
            .get(format!("{base}/v1/runs"))
            .bearer_auth(TOKEN)
            .send()
            .await
        {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
        let done = runs.and_then(|r| {
            r["runs"]
                .as_array()?
                .iter()
                .find(|r| r["status"] == "succeeded" || r["status"] == "failed")
                .cloned()
        });
        if let Some(run) = done {
            break run;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no run finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    let metrics = http
        .get(format!("{base}/metrics"))
        .header("Accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    // Without asking for OpenMetrics: Prometheus's text format, which promtool lints.
    let plain = http
        .get(format!("{base}/metrics"))
        .header("Accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let plain = plain.text().await.unwrap();
    let scraped = s.dir.path().join("scrape.txt");
    std::fs::write(&scraped, &plain).unwrap();
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&scraped).unwrap())
        .output()
        .unwrap();
    check.stdout.extend(check.stderr);
    assert!(
        check.status.success(),
        "promtool check metrics: {}\n{plain}",
        String::from_utf8_lossy(&check.stdout)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());

    // Logs: JSON lines only, no colour; the run's start and end at the default filter.
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(!log.contains("\x1b["), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |m: &str| {
        lines
            .iter()
            .find(|l| l["message"] == m)
            .unwrap_or_else(|| panic!("no {m:?} in {log}"))
    };
    let start = message("sync started");
    assert_eq!(
        (
            start["level"].as_str(),
            start["run"].as_u64(),
            start["scope"].as_str()
        ),
        (Some("INFO"), Some(1), Some("all"))
    );
    let end = message("sync finished");
    assert_eq!(
        (end["run"].as_u64(), end["succeeded"].as_bool()),
        (Some(1), Some(true)),
        "{end}"
    );
    assert!(
        end["seconds"].as_f64().is_some() && end["applied"].as_u64().unwrap() > 0,
        "{end}"
    );
    assert!(lines.iter().all(|l| l["level"] != "DEBUG"), "{log}");

    // The audit trail: on standard output, nothing else there, each write intended then done.
    let audit = std::fs::read_to_string(&stdout).unwrap();
    let trail: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes = trail.iter().filter(|l| l["phase"] == "outcome").count();
    assert!(outcomes > 0 && trail.len() == 2 * outcomes, "{audit}");
    assert!(!log.contains("\"phase\""), "no audit line among the logs");
    // One timestamp field, one format, in both: a log pipeline parses them alike.
    for line in lines.iter().chain(&trail) {
        let at = line["timestamp"]
            .as_str()
            .unwrap_or_else(|| panic!("{line}"));
        assert!(
            at.parse::<k8s_openapi::jiff::Timestamp>().is_ok() && at.ends_with('Z'),
            "{line}"
        );
    }

    // Every series the rules read exists.
    let rules = std::fs::read_to_string(RULES).unwrap();
    for (i, _) in rules.match_indices("aws_replicator_") {
        let name: String = rules[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "the rules read {name}, which /metrics lacks"
        );
    }

    // Every series the runbook tells people to look at exists.
    let runbook = std::fs::read_to_string(RUNBOOK).unwrap();
    for (i, _) in runbook.match_indices("aws_replicator_") {
        let name: String = runbook[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            metrics.contains(&name),
            "{RUNBOOK} names {name}, which /metrics lacks"
        );
    }

    // The scrape as promtool input: taken at 10 min, then nothing changes.
    let silent = |at: &str| -> Vec<Value> {
        [
            "AwsReplicatorNoRecentSuccess",
            "AwsReplicatorNeverSucceeded",
            "AwsReplicatorDriftPersists",
            "AwsReplicatorDeletionGuardTripped",
            "AwsReplicatorNoLeader",
            "AwsReplicatorUnresolvedEuidsRising",
            "AwsReplicatorMeshStackCrawlBehind",
        ]
        .iter()
        .map(|a| json!({"eval_time": at, "alertname": a, "exp_alerts": []}))
        .collect()
    };
    let mut checks = silent("40m");
    checks.extend(
        silent("70m")
            .into_iter()
            .filter(|c| c["alertname"] != "AwsReplicatorNoRecentSuccess"),
    );
    // The sample holds two projects (acme.data, globex.legacy): an hour later the alert says so;
    // nothing fails.
    for (at, held) in [("40m", false), ("80m", true)] {
        checks.push(
            json!({"eval_time": at, "alertname": "AwsReplicatorProjectsFailing", "exp_alerts": []}),
        );
        checks.push(json!({
            "eval_time": at,
            "alertname": "AwsReplicatorProjectsHeld",
            "exp_alerts": if held { json!([{
                "exp_labels": {"severity": "warning", "job": "aws-replicator"},
                "exp_annotations": expected_annotations("AwsReplicatorProjectsHeld"),
            }]) } else { json!([]) },
        }));
    }
    checks.push(json!({
        "eval_time": "70m",
        "alertname": "AwsReplicatorNoRecentSuccess",
        "exp_alerts": [{
            "exp_labels": {"severity": "critical", "job": "aws-replicator"},
            "exp_annotations": expected_annotations("AwsReplicatorNoRecentSuccess"),
        }],
    }));
    let test = json!({
        "rule_files": [Path::new(RULES).canonicalize().unwrap()],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series(&metrics, now, 600.0, 90), "alert_rule_test": checks}],
    });
    let file = s.dir.path().join("scrape.test.yaml");
    std::fs::write(&file, serde_json::to_string_pretty(&test).unwrap()).unwrap();
    let (ok, out) = tool(&promtool(), &["test", "rules", file.to_str().unwrap()]);
    assert!(ok, "{out}\n{}", std::fs::read_to_string(&file).unwrap());
}

/// Whether a Rust source file under `dir` contains `needle`.
fn source_contains(dir: &str, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_contains(path.to_str().unwrap(), needle)
        } else {
            path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle))
        }
    })
}

/// An alert's annotations as deploy/tests/prometheus-rules.test.yaml expects them for the job
/// `aws-replicator` (the hand-written tests pin the text; this one reuses it).
fn expected_annotations(alert: &str) -> Value {
    let tests = one("deploy/tests/prometheus-rules.test.yaml");
    tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .filter(|c| c["alertname"] == alert)
        .flat_map(|c| c["exp_alerts"].as_array().unwrap())
        .map(|a| a["exp_annotations"].clone())
        .next()
        .unwrap()
}

/// Text logs carry no colour codes when standard error is not a terminal (a file, a pipe, a
/// container runtime's log).
#[test]
fn text_logs_have_no_colour_codes_off_a_terminal() {
    let out = Command::new(env!("CARGO_BIN_EXE_aws-replicator"))
        .arg("demo")
        .env("AWS_REPLICATOR_LOG", "debug")
        .env_remove("AWS_REPLICATOR_LOG_FORMAT")
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains(" DEBUG "), "{log}");
    assert!(!log.contains('\x1b'), "{log}");

    // `--log-format json` on the command line does the same as the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_aws-replicator"))
        .args(["demo", "--log-format", "json"])
        .env("AWS_REPLICATOR_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.lines().count() > 10);
    for line in log.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}

/// The Grafana dashboard picks a job and its instances, every query keeps to them, it shows the
/// leader and the deletion guard, and "since the last success" reads "never" before the first
/// one instead of the 56 years `time() - 0` is. (tests/serve.rs checks every series it queries
/// exists.)
#[test]
fn the_dashboard_filters_by_job_and_instance_and_says_never() {
    let text = std::fs::read_to_string("deploy/grafana-dashboard.json").unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "job", "instance"]);
    let panels = dashboard["panels"].as_array().unwrap();
    let mut queried = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("aws_replicator_") {
                let rest = &expr[i..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    rest[name.len()..].starts_with(r#"{job=~"$job",instance=~"$instance""#),
                    "{expr} does not keep to the chosen job and instances"
                );
                queried.insert(name);
            }
        }
    }
    assert!(queried.contains("aws_replicator_leader"), "{queried:?}");
    assert!(
        queried.contains("aws_replicator_deletion_guard_tripped"),
        "{queried:?}"
    );

    let since = panels
        .iter()
        .find(|p| {
            p["targets"][0]["expr"]
                .as_str()
                .unwrap()
                .contains("aws_replicator_last_success_timestamp_seconds")
        })
        .unwrap();
    let never_starts = since["fieldConfig"]["defaults"]["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "range" && m["options"]["result"]["text"] == "never")
        .and_then(|m| {
            assert!(m["options"]["to"].is_null(), "{m}");
            m["options"]["from"].as_f64()
        })
        .expect("a range mapping to \"never\"");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // Before the first success the panel shows `time() - 0`; any real age is far below.
    assert!(never_starts < now && never_starts > 10.0 * 365.0 * 86400.0);
}

/// The ConfigMap laid out as the Deployment mounts it (each key at its item's path) loads with
/// exactly the environment the Deployment gives (its own variables and every key of the
/// Secret): the types resolve, and no `env:` import is left without its variable. The Lease's
/// namespace is the pod's (`POD_NAMESPACE`), and without it (`config check` away from a
/// cluster) the config still loads.
#[test]
fn the_mounted_config_loads_with_the_deployments_environment() {
    let (_, files) = generated_config();
    let d = deployment();
    let volumes = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let items = volumes.iter().find(|v| v["name"] == "config").unwrap()["configMap"]["items"]
        .as_array()
        .unwrap();
    let mount = tempfile::tempdir().unwrap();
    for item in items {
        let path = mount.path().join(item["path"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(&files[item["key"].as_str().unwrap()], path).unwrap();
    }
    let mut environment: Vec<(String, String)> = Vec::new();
    for var in container(&d)["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap();
        // The downward API's values: a pod name and a namespace are Kubernetes names.
        let value = var["value"].as_str().unwrap_or("from-the-downward-api");
        environment.push((name.into(), value.into()));
    }
    let secret = one(&format!("{BASE}/secret.example.yaml"));
    for key in secret["stringData"].as_object().unwrap().keys() {
        environment.push((key.clone(), "placeholder-from-the-secret".into()));
    }
    let config = mount.path().join("config.dhall");
    let check = |environment: &[(String, String)], args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_aws-replicator"))
            .args(["config", "check", "--config"])
            .arg(&config)
            .args(args)
            .env_clear()
            .envs(environment.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, out) = check(&environment, &[]);
    assert!(ok && out.contains(": OK\n"), "{out}");

    // The namespace is the pod's: one that is not a Kubernetes name is refused, by its path.
    let mut other = environment.clone();
    other.push(("POD_NAMESPACE".into(), "Not_A_Namespace".into()));
    let (ok, out) = check(&other, &[]);
    assert!(
        !ok && out.contains("replicator.leader-election.namespace")
            && out.contains("Not_A_Namespace"),
        "{out}"
    );

    // Away from a cluster, with no variable at all, the config checks (placeholders for the
    // secrets, the namespace falling back to "aws-replicator"), naming the webhook token among
    // what the service needs.
    let (ok, out) = check(&[], &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("WEBHOOK_TOKEN (for replicator.serve.webhook-token)")
            && !out.contains("POD_NAMESPACE"),
        "{out}"
    );

    // Without one of the Secret's variables the service would not start (`config check`
    // passes it without --require-secrets, naming it): the check above is not vacuous.
    let without: Vec<(String, String)> = environment
        .into_iter()
        .filter(|(name, _)| name != "AWS_SSO_SCIM_TOKEN")
        .collect();
    let (ok, out) = check(&without, &["--require-secrets"]);
    assert!(!ok && out.contains("AWS_SSO_SCIM_TOKEN"), "{out}");
}

/// The monitoring component's PrometheusRule carries exactly the groups of the rules file
/// (which promtool checks and tests), so the two cannot drift apart.
#[test]
fn the_prometheus_rule_carries_exactly_the_rules_file() {
    let rules: Vec<Value> = resources(COMPONENT)
        .iter()
        .flat_map(|p| yaml(p))
        .filter(|d| d["kind"] == "PrometheusRule")
        .collect();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        rule["spec"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["groups"]
    );
    assert!(
        rule["spec"]["groups"] == one(RULES)["groups"],
        "{COMPONENT}/prometheusrule.yaml's spec.groups differ from {RULES}'s groups: copy them"
    );
}

/// The anchors GitHub gives the headings of a Markdown file: the text in lower case, spaces as
/// `-`, other punctuation dropped. Headings inside code blocks do not count.
fn anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut anchors = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#').trim();
        anchors.push(
            text.to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect(),
        );
    }
    anchors
}

/// Every alert links its section of `docs/runbook.md` (the anchor exists, once), and the
/// runbook also has the sections the alerts' and the README's texts send people to.
#[test]
fn every_alert_links_its_section_of_the_runbook() {
    let runbook = std::fs::read_to_string(RUNBOOK).unwrap();
    let anchors = anchors(&runbook);
    let unique: BTreeSet<&String> = anchors.iter().collect();
    assert_eq!(unique.len(), anchors.len(), "two headings share an anchor");
    let mut alerts = 0;
    for group in one(RULES)["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let Some(alert) = rule["alert"].as_str() else {
                continue;
            };
            alerts += 1;
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{alert} has no runbook_url"));
            let anchor = url
                .strip_prefix(RUNBOOK_URL)
                .unwrap_or_else(|| panic!("{alert}'s runbook_url {url} is not {RUNBOOK_URL}…"));
            assert!(
                anchors.iter().any(|a| a == anchor),
                "{alert}'s runbook_url names #{anchor}, which is no heading of {RUNBOOK}"
            );
        }
    }
    assert!(alerts >= 7, "{alerts} alerts");
    for topic in [
        "scim-token-rotation",
        "allowing-a-mass-deletion-under-leader-election",
        "a-project-held-or-a-plan-refused-by-the-deletion-guard",
        "an-account-outside-the-organization",
        "a-stuck-account-vending-machine-wait",
        "a-failed-start-up",
    ] {
        assert!(
            anchors.iter().any(|a| a == topic),
            "{RUNBOOK} has no section #{topic}: {anchors:?}"
        );
    }
}

/// The six recommended `app.kubernetes.io/*` labels, the version this crate's.
fn recommended(labels: &Value) -> Result<(), String> {
    for (key, value) in [
        ("name", Some("aws-replicator")),
        ("instance", Some("aws-replicator")),
        ("version", Some(env!("CARGO_PKG_VERSION"))),
        ("component", None),
        ("part-of", Some("meshstack")),
        ("managed-by", Some("kustomize")),
    ] {
        let key = format!("app.kubernetes.io/{key}");
        match (labels[&key].as_str(), value) {
            (None, _) => return Err(format!("no {key}")),
            (Some(found), Some(value)) if found != value => {
                return Err(format!("{key} is {found}, not {value}"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every resource (the base, the component, the Secret template, the generated ConfigMap and
/// the pods) carries the recommended labels. The Deployment's selector, which cannot change
/// once applied, is the one stable label; every other selector of the pods is that label
/// too, except the webhook Service's, which adds the leader label the code sets.
#[test]
fn every_resource_carries_the_recommended_labels_and_selectors_stay_minimal() {
    let mut documents: Vec<Value> = resources(BASE)
        .iter()
        .chain(resources(COMPONENT).iter())
        .flat_map(|p| yaml(p))
        .collect();
    documents.push(one(&format!("{BASE}/secret.example.yaml")));
    documents.push(json!({"kind": "ConfigMap", "metadata": {"labels": generator_labels()}}));
    for d in &documents {
        recommended(&d["metadata"]["labels"])
            .unwrap_or_else(|e| panic!("{} {}: {e}", d["kind"], d["metadata"]["name"]));
    }
    let d = deployment();
    let pod = &d["spec"]["template"];
    recommended(&pod["metadata"]["labels"]).unwrap_or_else(|e| panic!("the pods: {e}"));

    let minimal = json!({"app.kubernetes.io/name": "aws-replicator"});
    assert_eq!(d["spec"]["selector"], json!({"matchLabels": minimal}));
    let find = |kind: &str, name: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    let affinity = &pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    for selector in [
        &find("PodDisruptionBudget", "aws-replicator")["spec"]["selector"]["matchLabels"],
        &find("NetworkPolicy", "aws-replicator")["spec"]["podSelector"]["matchLabels"],
        &find("Service", "aws-replicator-metrics")["spec"]["selector"],
        &affinity["labelSelector"]["matchLabels"],
    ] {
        assert_eq!(selector, &minimal);
    }
    let mut webhook = minimal.clone();
    webhook["aws-replicator/leader"] = json!("true");
    assert_eq!(
        find("Service", "aws-replicator")["spec"]["selector"],
        webhook
    );
}

/// The NetworkPolicy selects the pods and admits the webhook from the namespaces it lists (the
/// base's own; an overlay names the callers') on the `http` port, and the metrics scrape from
/// the monitoring namespace on the `metrics` port alone; it leaves egress alone. kubernetes-validate checks its
/// schema (`manifests_validate_against_the_kubernetes_schemas`), `kubectl kustomize` an
/// overlay's patch of the list (`the_kustomization_renders_with_kubectl`).
#[test]
fn the_network_policy_admits_the_webhook_from_named_namespaces_only() {
    let path = PathBuf::from(format!("{BASE}/networkpolicy.yaml"));
    assert!(resources(BASE).contains(&path));
    let policy = one(path.to_str().unwrap());
    assert_eq!(policy["apiVersion"], "networking.k8s.io/v1");
    let d = deployment();
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    let port = &container(&d)["ports"][0]["name"];
    let metrics = &container(&d)["ports"][1]["name"];
    assert_eq!((port, metrics), (&json!("http"), &json!("metrics")));
    let from = |namespaces: &[&str]| {
        json!([{"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
        ]}}])
    };
    assert_eq!(
        policy["spec"]["ingress"],
        json!([
            {"from": from(&["aws-replicator"]), "ports": [{"protocol": "TCP", "port": port}]},
            {"from": from(&["monitoring"]), "ports": [{"protocol": "TCP", "port": metrics}]},
        ])
    );
}

/// `kubectl kustomize` renders an overlay as the README writes it (the base, the monitoring
/// component, the NetworkPolicy's namespaces patched), and what it renders validates: every
/// resource in the namespace with the recommended labels, the ConfigMap's hashed name mounted,
/// the overlay's namespaces in the policy. Skipped, saying so, where kubectl is not installed
/// (Debian's `kubectl` package; `AWS_REPLICATOR_KUBECTL` names another).
#[test]
fn the_kustomization_renders_with_kubectl() {
    let kubectl = std::env::var("AWS_REPLICATOR_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    if Command::new(&kubectl)
        .args(["version", "--client"])
        .output()
        .is_err()
    {
        eprintln!("skipped: {kubectl} is not installed, so the kustomization is not rendered");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // kustomize takes only relative paths to a base.
    let repository = std::env::current_dir().unwrap().canonicalize().unwrap();
    let overlay = dir.path().canonicalize().unwrap();
    let up = "../".repeat(overlay.components().count() - 1);
    let relative = |path: &str| {
        format!(
            "{up}{}/{path}",
            repository.to_str().unwrap().trim_start_matches('/')
        )
    };
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [relative(BASE)],
        "components": [relative(COMPONENT)],
        "patches": [{
            "target": {"kind": "NetworkPolicy", "name": "aws-replicator"},
            "patch": json!([{
                "op": "replace",
                "path": "/spec/ingress/0/from/0/namespaceSelector/matchExpressions/0/values",
                "value": ["aws-replicator", "ingress-nginx"],
            }]).to_string(),
        }],
    });
    std::fs::write(
        overlay.join("kustomization.yaml"),
        kustomization.to_string(),
    )
    .unwrap();
    let (ok, out) = tool(&kubectl, &["kustomize", overlay.to_str().unwrap()]);
    assert!(ok, "{out}");
    let rendered = overlay.join("rendered.yaml");
    std::fs::write(&rendered, &out).unwrap();
    let documents = yaml(&rendered);
    let kinds: BTreeSet<&str> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ConfigMap",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ])
    );
    for d in &documents {
        let what = format!("{} {}", d["kind"], d["metadata"]["name"]);
        recommended(&d["metadata"]["labels"]).unwrap_or_else(|e| panic!("{what}: {e}"));
        if d["kind"] != "Namespace" {
            assert_eq!(d["metadata"]["namespace"], "aws-replicator", "{what}");
        }
    }
    let find = |kind: &str| documents.iter().find(|d| d["kind"] == kind).unwrap();
    let config_map = find("ConfigMap")["metadata"]["name"].as_str().unwrap();
    assert!(
        config_map.starts_with("aws-replicator-config-"),
        "{config_map}"
    );
    let volumes = find("Deployment")["spec"]["template"]["spec"]["volumes"].clone();
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["configMap"]["name"] == config_map),
        "{volumes}"
    );
    assert_eq!(
        find("NetworkPolicy")["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"]
            [0]["values"],
        json!(["aws-replicator", "ingress-nginx"])
    );

    // What a cluster would take, checked against its schemas (the Operator's kinds aside).
    let mut paths = Vec::new();
    for (i, d) in documents.iter().filter(|d| !operator_kind(d)).enumerate() {
        let path = overlay.join(format!("{i}.json"));
        std::fs::write(&path, d.to_string()).unwrap();
        paths.push(path);
    }
    let mut args = vec!["--strict", "--kubernetes-version", KUBERNETES];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let (ok, out) = tool(&kubernetes_validate(), &args);
    assert!(ok, "{out}");
    assert_eq!(
        out.matches(" passed for resource ").count(),
        paths.len(),
        "{out}"
    );
}
