//! The IAM policies `bootstrap` generates for a config, as sets of actions, so a test can hold
//! what the binary called (moto's recording, the emulator's log) against what the role may do.

use aws_replicator::bootstrap::{Options, files};
use aws_replicator::config::Config;
use std::collections::BTreeSet;
use std::path::Path;

/// The actions of the policy file of `role` (`management`, `automation` or `meshcloud`) that
/// `bootstrap` writes for the config at `path`, e.g. `sso:CreateAccountAssignment`.
pub fn actions(path: &Path, role: &str) -> BTreeSet<String> {
    let config = Config::load(path).unwrap();
    let options = Options {
        meshcloud_account_id: "999999999999",
        reveal_external_id: false,
    };
    let files = files(&config, &options).unwrap();
    let (_, text) = files
        .iter()
        .find(|(n, _)| n.starts_with(&format!("{role}/")) && n.ends_with("-policy.json"))
        .unwrap_or_else(|| {
            panic!(
                "no {role} policy among {:?}",
                files.iter().map(|f| &f.0).collect::<Vec<_>>()
            )
        });
    let policy: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut out = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        match &statement["Action"] {
            serde_json::Value::String(a) => {
                out.insert(a.clone());
            }
            serde_json::Value::Array(a) => {
                out.extend(a.iter().map(|a| a.as_str().unwrap().to_owned()));
            }
            other => panic!("an Action of {other}"),
        }
    }
    out
}

/// `actions` of one service, without the prefix: `sso` → `CreateAccountAssignment`, ….
pub fn operations(path: &Path, role: &str, service: &str) -> BTreeSet<String> {
    actions(path, role)
        .into_iter()
        .filter_map(|a| a.strip_prefix(&format!("{service}:")).map(str::to_owned))
        .collect()
}

/// moto's request recorder: `start`, `stop`, `reset`, or `download` (prints one JSON list of
/// `{service, operation, role}`: the service from the SigV4 credential scope, the operation from
/// `X-Amz-Target`, the query `Action` or Lambda's invocation path, and for AssumeRole the role).
const RECORDER_PY: &str = r#"
import base64, json, sys, urllib.parse, urllib.request
endpoint, action = sys.argv[1], sys.argv[2]
if action != "download":
    req = urllib.request.Request(endpoint + f"/moto-api/recorder/{action}-recording", data=b"", method="POST")
    urllib.request.urlopen(req).read()
    print("[]")
    sys.exit(0)
out = []
for line in urllib.request.urlopen(endpoint + "/moto-api/recorder/download-recording").read().decode().splitlines():
    if not line.strip():
        continue
    r = json.loads(line)
    body = r.get("body") or ""
    if r.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
    scope = headers.get("authorization", "").split("Credential=")[-1].split(",")[0].split("/")
    service = scope[3] if len(scope) > 3 else ""
    target = headers.get("x-amz-target", "")
    form = urllib.parse.parse_qs(body) if "=" in body and not body.startswith("{") else {}
    url = r.get("url", r.get("uri", ""))
    if target:
        operation = target.split(".")[-1]
    elif form.get("Action"):
        operation = form["Action"][0]
    elif "/invocations" in url:
        operation = "InvokeFunction"
    else:
        operation = r.get("method", "") + " " + urllib.parse.urlparse(url).path
    out.append({"service": service, "operation": operation, "role": form.get("RoleArn", [""])[0]})
print(json.dumps(out))
"#;

/// Drives moto's recorder at `moto` (the endpoint).
pub fn recorder(moto: &str, action: &str) -> Vec<serde_json::Value> {
    let out = super::peers::boto3(moto, RECORDER_PY)
        .args([moto, action])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every call moto recorded is allowed by the policy `bootstrap` writes for the role that makes
/// it (config at `path`):
/// - AssumeRole of the management or automation role: the meshcloud user's policy, for that
///   role's ARN; AssumeRole of a member account's access role: the management role's policy;
/// - Organizations: the management role's;
/// - StackSet operations and Lambda: the automation role's;
/// - IAM and CloudFormation stacks in a member account go through its access role, which
///   `bootstrap` does not write (Organizations creates it with the account): counted, not
///   checked against a policy.
///
/// Returns the calls checked per role, so a test can see that each role was exercised.
pub fn assert_calls_allowed(
    path: &Path,
    recorded: &[serde_json::Value],
) -> std::collections::BTreeMap<&'static str, usize> {
    let config = Config::load(path).unwrap();
    let meshcloud = actions(path, "meshcloud");
    let management = actions(path, "management");
    let automation = actions(path, "automation");
    let access_role = config
        .aws
        .account_access_role
        .clone()
        .unwrap_or_else(|| "MeshstackAccountAccessRole".to_owned());
    let mut checked = std::collections::BTreeMap::new();
    for call in recorded {
        let service = call["service"].as_str().unwrap_or_default();
        let operation = call["operation"].as_str().unwrap_or_default();
        let operation = if operation.contains("/invocations") {
            "InvokeFunction"
        } else {
            operation
        };
        let action = format!("{service}:{operation}");
        let (role, allowed): (&'static str, &BTreeSet<String>) = match (service, operation) {
            ("sts", "AssumeRole") => {
                let target = call["role"].as_str().unwrap_or_default();
                if target == config.aws.organization_root_account_role
                    || target == config.aws.automation_account_role
                {
                    ("meshcloud", &meshcloud)
                } else {
                    assert!(
                        target.ends_with(&format!(":role/{access_role}")),
                        "AssumeRole of an unexpected role {target}"
                    );
                    ("management", &management)
                }
            }
            ("organizations", _) => ("management", &management),
            ("lambda", _) => ("automation", &automation),
            ("cloudformation", op) if op.contains("StackSet") || op.contains("StackInstances") => {
                ("automation", &automation)
            }
            ("iam", _) | ("cloudformation", _) => {
                *checked.entry("member access role").or_default() += 1;
                continue;
            }
            _ => panic!("a call no bootstrap policy covers: {call}"),
        };
        assert!(
            allowed.contains(&action),
            "{action} is not allowed by the {role} policy bootstrap writes: {allowed:?}"
        );
        *checked.entry(role).or_default() += 1;
    }
    checked
}
