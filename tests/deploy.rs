//! What `deploy/` ships, checked as a cluster and a Prometheus would take it: the Kubernetes
//! manifests (the kustomize base and its ServiceMonitor component) validate against Kubernetes
//! 1.30's schemas (`kubernetes-validate`, offline), list every file, lock the pods down, give
//! the config every secret it imports and send the webhook to the leader only; the alert rules
//! pass `promtool check` and `promtool test`, also fed a real `/metrics` scrape; and `serve`'s
//! output is what a log collector wants: JSON lines, no colour codes, each run's start and end
//! at the default filter, the audit trail on its own stream.

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

/// The names `config/example.dhall` imports with `env:NAME`.
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

/// The ConfigMap holds the config and the types it imports; the copies here are the
/// repository's, and the Deployment mounts each key where `./types/package.dhall` resolves.
#[test]
fn the_config_map_carries_the_config_and_its_types_where_the_import_finds_them() {
    let (name, files) = generated_config();
    let mut expected: BTreeMap<String, PathBuf> = BTreeMap::new();
    expected.insert("config.dhall".into(), "config/example.dhall".into());
    for entry in std::fs::read_dir("config/types").unwrap() {
        let path = entry.unwrap().path();
        expected.insert(path.file_name().unwrap().to_str().unwrap().to_owned(), path);
    }
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the configMapGenerator lists config.dhall and every file of config/types"
    );
    for (key, file) in &files {
        assert_eq!(
            std::fs::read_to_string(file).unwrap(),
            std::fs::read_to_string(&expected[key]).unwrap(),
            "{} differs from {}: cp config/example.dhall {BASE}/config/config.dhall; cp config/types/*.dhall {BASE}/config/types/",
            file.display(),
            expected[key].display()
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
/// Kubernetes 1.30's schemas, strictly (no unknown field). The ServiceMonitor's schema is the
/// Prometheus Operator's, which kubernetes-validate does not ship; its fields are checked in
/// `the_webhook_reaches_the_leader_and_rbac_is_one_lease_and_the_own_pod`.
#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let (name, files) = generated_config();
    let data: BTreeMap<String, String> = files
        .iter()
        .map(|(k, f)| (k.clone(), std::fs::read_to_string(f).unwrap()))
        .collect();
    let config_map = dir.path().join("configmap.json");
    std::fs::write(
        &config_map,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
            .to_string(),
    )
    .unwrap();
    let mut paths: Vec<PathBuf> = resources(BASE);
    paths.push(format!("{BASE}/secret.example.yaml").into());
    paths.push(config_map);
    let crds: Vec<PathBuf> = resources(COMPONENT)
        .into_iter()
        .filter(|p| yaml(p).iter().any(|d| d["kind"] == "ServiceMonitor"))
        .collect();
    assert_eq!(crds.len(), 1);
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
/// replicas with a budget that keeps one.
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
        assert_eq!(c[probe]["httpGet"]["port"], c["ports"][0]["name"]);
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
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        d["spec"]["selector"]["matchLabels"]
    );
}

/// The secrets in the Deployment's environment are exactly what `config/example.dhall` imports
/// with `env:`, each from the Secret's key of that name, and the Secret template has each.
#[test]
fn the_deployment_gives_the_config_every_secret_it_imports() {
    let imports = env_imports("config/example.dhall");
    assert!(imports.len() >= 5, "{imports:?}");
    let d = deployment();
    let from_secret: BTreeSet<String> = container(&d)["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["valueFrom"].get("secretKeyRef").is_some())
        .map(|e| {
            let r = &e["valueFrom"]["secretKeyRef"];
            assert_eq!(r["name"], "aws-replicator");
            assert_eq!(r["key"], e["name"]);
            e["name"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(from_secret, imports);
    let secret = one(&format!("{BASE}/secret.example.yaml"));
    let keys: BTreeSet<String> = secret["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, imports);
}

/// The webhook Service reaches only the pod labelled leader; RBAC is the one Lease (by name,
/// plus create) and the pods (the leader label); the ServiceMonitor scrapes every replica.
#[test]
fn the_webhook_reaches_the_leader_and_rbac_is_one_lease_and_the_own_pod() {
    let service = one(&format!("{BASE}/service.yaml"));
    assert_eq!(
        service["spec"]["selector"],
        json!({"app.kubernetes.io/name": "aws-replicator", "aws-replicator/leader": "true"})
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");

    let role = one(&format!("{BASE}/role.yaml"));
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["aws-replicator"], "verbs": ["get", "update", "patch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]},
        ])
    );
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
            json!({"series": format!("{name}{{{labels}}}"), "values": format!("{value}x{minutes}")})
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
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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

    // The scrape as promtool input: taken at 10 min, then nothing changes.
    let silent = |at: &str| -> Vec<Value> {
        [
            "AwsReplicatorNoRecentSuccess",
            "AwsReplicatorNeverSucceeded",
            "AwsReplicatorDriftPersists",
            "AwsReplicatorDeletionGuardTripped",
            "AwsReplicatorNoLeader",
            "AwsReplicatorUnresolvedEuidsRising",
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
/// exactly the environment the Deployment gives: the types resolve, and no `env:` import is
/// left without its variable.
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
    let mut command = Command::new(env!("CARGO_BIN_EXE_aws-replicator"));
    command
        .args(["config", "check", "--config"])
        .arg(mount.path().join("config.dhall"))
        .env_clear();
    for var in container(&d)["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap();
        let value = var["value"]
            .as_str()
            .unwrap_or("placeholder-from-the-secret");
        command.env(name, value);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Without one of the Secret's variables the service would not start (`config check`
    // passes it without --require-secrets, naming it): the check above is not vacuous.
    let out = command
        .env_remove("AWS_SSO_SCIM_TOKEN")
        .arg("--require-secrets")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AWS_SSO_SCIM_TOKEN"));
}
