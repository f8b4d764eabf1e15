//! Account provisioning and the landing-zone bootstrap, end to end: the binary's `sync` against
//! moto (Organizations, STS, IAM, CloudFormation with StackSets, Lambda without Docker) and the
//! emulator (SSO). The organization is set up and read back with boto3, as an operator would,
//! and moto's request recorder shows which calls the replicator made.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};

const LAMBDA: &str = "arn:aws:lambda:eu-central-1:210987654321:function:PermissionDowngrade";

/// The operator's side, in boto3: `setup`, `state`, `precreate`, `set-alias`, `recording`.
const ORG_PY: &str = r#"
import base64, io, json, sys, zipfile, urllib.parse, urllib.request, boto3

endpoint = sys.argv[1]
command = sys.argv[2]
args = sys.argv[3:]
AUTOMATION = "210987654321"

def client(service, account=None):
    if account is None:
        return boto3.client(service)
    c = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/Operator", RoleSessionName="operator")["Credentials"]
    return boto3.client(service, aws_access_key_id=c["AccessKeyId"],
                        aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])

def moto_api(path, body=None):
    req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode() if body is not None else b"", method="POST")
    return urllib.request.urlopen(req).read()

if command == "setup":
    moto_api("/moto-api/config", {"lambda": {"use_docker": False}})
    client("organizations").create_organization(FeatureSet="ALL")
    iam = client("iam", AUTOMATION)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    role = iam.create_role(RoleName="PermissionDowngradeLambdaAdministrationRole", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("index.py", "def main(event, context):\n    return event\n")
    client("lambda", AUTOMATION).create_function(
        FunctionName="PermissionDowngrade", Runtime="python3.12", Role=role, Handler="index.main",
        Code={"ZipFile": code.getvalue()})
    template = {"Resources": {"BaselineRole": {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": "MeshstackBaselineProbe",
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}}}}}
    client("cloudformation", AUTOMATION).create_stack_set(
        StackSetName="meshstack-baseline", TemplateBody=json.dumps(template),
        Capabilities=["CAPABILITY_NAMED_IAM"], PermissionModel="SELF_MANAGED")
    print("{}")

elif command == "state":
    org = client("organizations")
    out = []
    for page in org.get_paginator("list_accounts").paginate():
        for a in page["Accounts"]:
            if a["Id"] == "123456789012":
                continue
            parent = org.list_parents(ChildId=a["Id"])["Parents"][0]
            path = []
            pid, ptype = parent["Id"], parent["Type"]
            while ptype == "ORGANIZATIONAL_UNIT":
                path.insert(0, org.describe_organizational_unit(OrganizationalUnitId=pid)["OrganizationalUnit"]["Name"])
                up = org.list_parents(ChildId=pid)["Parents"][0]
                pid, ptype = up["Id"], up["Type"]
            tags = {t["Key"]: t["Value"] for t in org.list_tags_for_resource(ResourceId=a["Id"])["Tags"]}
            iam = client("iam", a["Id"])
            roles = sorted(r["RoleName"] for r in iam.list_roles()["Roles"])
            instances = client("cloudformation", AUTOMATION).list_stack_instances(
                StackSetName="meshstack-baseline", StackInstanceAccount=a["Id"])["Summaries"]
            out.append({"id": a["Id"], "email": a["Email"], "name": a["Name"], "ou": "/" + "/".join(path),
                        "tags": tags, "aliases": iam.list_account_aliases()["AccountAliases"],
                        "roles": roles, "stack_instances": [i["Region"] for i in instances]})
    print(json.dumps(out))

elif command == "precreate":
    email, name, tags = args[0], args[1], json.loads(args[2])
    status = client("organizations").create_account(
        Email=email, AccountName=name, RoleName="MeshstackAccountAccessRole",
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["CreateAccountStatus"]
    print(json.dumps({"id": status["AccountId"]}))

elif command == "ous":
    org = client("organizations")
    names = []
    def walk(parent, prefix):
        for page in org.get_paginator("list_organizational_units_for_parent").paginate(ParentId=parent):
            for ou in page["OrganizationalUnits"]:
                names.append(prefix + "/" + ou["Name"])
                walk(ou["Id"], prefix + "/" + ou["Name"])
    walk(org.list_roots()["Roots"][0]["Id"], "")
    print(json.dumps(sorted(names)))

elif command == "tag":
    client("organizations").tag_resource(ResourceId=args[0], Tags=[{"Key": args[1], "Value": args[2]}])
    print("{}")

elif command == "set-alias":
    client("iam", args[0]).create_account_alias(AccountAlias=args[1])
    print("{}")

elif command == "recording":
    action = args[0]
    if action in ("start", "stop", "reset"):
        moto_api(f"/moto-api/recorder/{action}-recording")
        print("{}")
    else:
        lines = urllib.request.urlopen(endpoint + "/moto-api/recorder/download-recording").read().decode().splitlines()
        out = []
        for line in lines:
            if not line.strip():
                continue
            r = json.loads(line)
            body = r.get("body") or ""
            if r.get("body_encoded"):
                body = base64.b64decode(body).decode(errors="replace")
            headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
            target = headers.get("x-amz-target", "")
            form = urllib.parse.parse_qs(body) if "=" in body and not body.startswith("{") else {}
            operation = target.split(".")[-1] if target else (form.get("Action", [""])[0] or r.get("url", r.get("uri", "")))
            scope = headers.get("authorization", "").split("Credential=")[-1].split(",")[0].split("/")
            service = scope[3] if len(scope) > 3 else ""
            if "/invocations" in operation:
                service = "lambda"
            out.append({"operation": operation, "body": body, "url": r.get("url", r.get("uri", "")), "method": r.get("method", ""),
                        "service": service, "role": form.get("RoleArn", [""])[0]})
        print(json.dumps(out))
"#;

struct Org {
    setup: common::cli::Setup,
    _recordings: tempfile::TempDir,
    config_dir: PathBuf,
}

impl Org {
    async fn start() -> Org {
        let recordings = tempfile::tempdir().unwrap();
        let moto = common::peers::moto_with(
            &[("MOTO_ENABLE_RECORDING", "true")],
            Some(recordings.path()),
        );
        let setup = common::cli::setup_with(moto).await;
        let config_dir = setup.dir.path().to_owned();
        let org = Org {
            setup,
            _recordings: recordings,
            config_dir,
        };
        org.py("setup", &[]);
        org
    }

    fn py(&self, command: &str, args: &[&str]) -> Value {
        let out = common::peers::boto3(&self.setup.moto_endpoint, ORG_PY)
            .arg(&self.setup.moto_endpoint)
            .arg(command)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "org.py {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The demo configuration with one landing zone, `dev`.
    fn config(&self, name: &str, enforce_alias: bool) -> PathBuf {
        self.config_with(name, enforce_alias, false)
    }

    fn config_with(&self, name: &str, enforce_alias: bool, wait_for_avm: bool) -> PathBuf {
        std::fs::write(self.config_dir.join("access.json"), ACCESS_STACK).unwrap();
        let accounts = format!(
            r#"T.Replicator::{{ accounts =
                {{ landing-zones =
                  [ {{ mapKey = "dev"
                    , mapValue = T.LandingZone::{{
                      , organizational-unit = "/workloads/dev"
                      , tags = [ {{ mapKey = "cost-center", mapValue = "1234" }} ]
                      , access-stack = Some {{ stack-name = "meshstack-access", template = ./access.json as Text }}
                      , stack-sets = [ {{ name = "meshstack-baseline", regions = [ "eu-central-1" ] }} ]
                      , lambda = Some "{LAMBDA}"
                      }}
                    }}
                  ]
                , avm-done-tag = {{ key = "meshstack-avm", value = "done" }}
                , create-timeout-seconds = 60
                }}
              }}"#
        );
        let path = self.setup.config(name, "%s.%s.%4\\$s", &accounts);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(
                "enforceAccountAlias = False",
                &format!(
                    "enforceAccountAlias = {}",
                    if enforce_alias { "True" } else { "False" }
                ),
            )
            // Its own ExternalId, so that the test can tell which role was assumed with which.
            .replace(
                "automationAccountExternalId = Some \"demo-external-id\"",
                &format!("automationAccountExternalId = Some \"{AUTOMATION_EXTERNAL_ID}\""),
            )
            .replace(
                "waitForExternalAvm = False",
                &format!(
                    "waitForExternalAvm = {}",
                    if wait_for_avm { "True" } else { "False" }
                ),
            );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn sync(&self, config: &Path) -> (bool, String, String) {
        let (code, stdout, stderr) = self.run("sync", config, &[]);
        (code == Some(0), stdout, stderr)
    }

    fn run(&self, command: &str, config: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
        self.run_with(SNAPSHOT, command, config, extra)
    }

    fn run_with(
        &self,
        snapshot_json: &str,
        command: &str,
        config: &Path,
        extra: &[&str],
    ) -> (Option<i32>, String, String) {
        let snapshot = self.config_dir.join("snapshot.json");
        std::fs::write(&snapshot, snapshot_json).unwrap();
        let out = self
            .setup
            .command()
            .env("AWS_ENDPOINT_URL", &self.setup.moto_endpoint)
            .env("AWS_ENDPOINT_URL_STS", &self.setup.moto_endpoint)
            .env("AWS_REPLICATOR_LOG", "debug")
            .args([command, "--config", config.to_str().unwrap(), "--snapshot"])
            .arg(&snapshot)
            .args(extra)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        // Every run logs at debug level, and none may print a secret of the config (keys,
        // ExternalIds, tokens), whatever the account steps log or fail with.
        for secret in common::cli::SECRETS {
            assert!(!stdout.contains(secret), "{secret} on stdout");
            let leak = stderr.lines().find(|l| l.contains(secret));
            assert!(leak.is_none(), "{secret} on stderr: {leak:?}");
        }
        (out.status.code(), stdout, stderr)
    }

    fn state(&self) -> Vec<Value> {
        self.py("state", &[]).as_array().unwrap().clone()
    }

    /// A successful `sync`, with the AWS calls moto recorded during it.
    /// A sync with moto recording: its standard output, the account steps' audit lines (the
    /// CLI writes the trail to standard error) and the requests moto received.
    fn recorded_sync(&self, config: &Path) -> (String, Vec<Value>, Vec<Value>) {
        self.py("recording", &["reset"]);
        self.py("recording", &["start"]);
        let (ok, stdout, stderr) = self.sync(config);
        assert!(ok, "{stdout}\n{stderr}");
        self.py("recording", &["stop"]);
        let recorded = self.py("recording", &["download"]);
        let steps = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l.get("step").is_some())
            .collect();
        (stdout, steps, recorded.as_array().unwrap().clone())
    }
}

/// The seed's access stack, cut to its role: what `bootstrap` writes as access-stack.json.
const ACCESS_STACK: &str = r#"{
  "AWSTemplateFormatVersion": "2010-09-09",
  "Resources": {
    "AWSCloudFormationStackSetExecutionRole": {
      "Type": "AWS::IAM::Role",
      "Properties": {
        "RoleName": "AWSCloudFormationStackSetExecutionRole",
        "AssumeRolePolicyDocument": {
          "Version": "2012-10-17",
          "Statement": [{ "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::210987654321:root" }, "Action": "sts:AssumeRole" }]
        }
      }
    }
  }
}"#;

/// One project, acme.web, whose tenant in landing zone `dev` has no account yet.
const SNAPSHOT: &str = r#"{
  "format_version": 1,
  "platform": "aws.aws-meshcloud",
  "projects": [ { "workspace": "acme", "identifier": "web", "tags": { "environment": ["dev"] } } ],
  "tenants": [ { "workspace": "acme", "project": "web", "landing_zone": "dev" } ],
  "users": [ { "username": "alice", "euid": "alice@acme.example" } ],
  "bindings": [ { "workspace": "acme", "project": "web", "role": "Project Admin", "subject": { "user": "alice" } } ]
}"#;

const EMAIL: &str = "aws+acme.web@example.com";
const AUTOMATION_EXTERNAL_ID: &str = "demo-automation-external-id";
/// The tags each bootstrap step writes on the account when it succeeded.
const BOOTSTRAP_TAGS: [&str; 3] = [
    "aws-replicator:access-stack",
    "aws-replicator:stack-sets",
    "aws-replicator:downgraded",
];

/// The calls a run made, by operation, for the figures in the README and the notes.
fn calls(recorded: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for r in recorded {
        let op = r["operation"].as_str().unwrap_or_default();
        let op = if op.contains("/invocations") {
            "lambda:Invoke"
        } else {
            op
        };
        *out.entry(op.to_owned()).or_default() += 1;
    }
    out
}

fn writes(recorded: &[Value]) -> Vec<String> {
    const WRITES: [&str; 9] = [
        "CreateAccount",
        "MoveAccount",
        "TagResource",
        "CreateOrganizationalUnit",
        "CreateAccountAlias",
        "CreateStack",
        "UpdateStack",
        "CreateStackInstances",
        "invocations",
    ];
    recorded
        .iter()
        .map(|r| {
            let op = r["operation"].as_str().unwrap_or_default();
            if op.contains("/invocations") {
                "invocations".to_owned()
            } else {
                op.to_owned()
            }
        })
        .filter(|op| WRITES.contains(&op.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_project_gets_an_account_bootstrapped_and_a_rerun_changes_nothing() {
    let org = Org::start().await;
    let config = org.config("accounts.dhall", false);
    let (stdout, steps, recorded) = org.recorded_sync(&config);
    // Each step's writes are announced before they are sent, and their outcome follows.
    let phases: Vec<(String, String)> = steps
        .iter()
        .map(|l| (l["operation"].to_string(), l["phase"].to_string()))
        .collect();
    assert!(phases.len() >= 6, "{steps:#?}");
    for pair in phases.chunks(2) {
        assert_eq!(pair[0].0, pair[1].0, "{steps:#?}");
        assert_eq!(
            (pair[0].1.as_str(), pair[1].1.as_str()),
            ("\"intent\"", "\"outcome\""),
            "{steps:#?}"
        );
    }
    eprintln!(
        "first run, one new account: {} calls {:?}",
        recorded.len(),
        calls(&recorded)
    );

    let accounts = org.state();
    assert_eq!(accounts.len(), 1, "{accounts:#?}");
    let a = &accounts[0];
    let id = a["id"].as_str().unwrap();
    assert_eq!(a["email"], EMAIL);
    assert_eq!(a["name"], "acme.web");
    assert_eq!(a["ou"], "/workloads/dev");
    let tags = &a["tags"];
    assert_eq!(tags["aws-replicator:platform"], "aws.aws-meshcloud");
    assert_eq!(tags["aws-replicator:project"], "acme.web");
    assert_eq!(tags["cost-center"], "1234");
    assert_eq!(tags["environment"], "dev");
    for step in BOOTSTRAP_TAGS {
        assert!(tags[step].is_string(), "{step}: {tags}");
    }
    assert_eq!(a["aliases"], serde_json::json!(["acme-acme-web"]));
    let roles: Vec<&str> = a["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"AWSCloudFormationStackSetExecutionRole"),
        "{roles:?}"
    );
    assert!(roles.contains(&"MeshstackBaselineProbe"), "{roles:?}");
    assert_eq!(a["stack_instances"], serde_json::json!(["eu-central-1"]));

    // Every AssumeRole carried the ExternalId; the Lambda got the new account's id.
    let assumes: Vec<&Value> = recorded
        .iter()
        .filter(|r| r["operation"] == "AssumeRole")
        .collect();
    // One each: the management role for the account phase (Organizations and the member chain
    // share it) and for sso-admin, the automation role, the member account's role. Credentials
    // are cached, not asked for per call.
    assert_eq!(assumes.len(), 4, "{assumes:#?}");
    // Each role with its own ExternalId: the member account's role is assumed through the
    // management role, with the management role's ExternalId (the seed's MeshfedServiceRole
    // policy requires it).
    let mut roles: Vec<(String, String)> = assumes
        .iter()
        .map(|r| {
            let form: std::collections::BTreeMap<String, String> =
                url::form_urlencoded::parse(r["body"].as_str().unwrap().as_bytes())
                    .into_owned()
                    .collect();
            let role = form["RoleArn"].rsplit('/').next().unwrap().to_owned();
            let external = form.get("ExternalId").cloned().unwrap_or_default();
            (role, external)
        })
        .collect();
    roles.sort();
    let expected = [
        ("MeshfedAutomationRole", AUTOMATION_EXTERNAL_ID),
        ("MeshfedServiceRole", "demo-external-id"),
        ("MeshfedServiceRole", "demo-external-id"),
        ("MeshstackAccountAccessRole", "demo-external-id"),
    ];
    assert_eq!(
        roles,
        expected.map(|(r, e)| (r.to_owned(), e.to_owned())),
        "{assumes:#?}"
    );
    let invokes: Vec<&Value> = recorded
        .iter()
        .filter(|r| {
            r["operation"]
                .as_str()
                .unwrap_or_default()
                .contains("/invocations")
        })
        .collect();
    assert_eq!(invokes.len(), 1, "{invokes:#?}");
    assert!(
        invokes[0]["operation"]
            .as_str()
            .unwrap()
            .contains("PermissionDowngrade")
    );
    let payload: Value = serde_json::from_str(invokes[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(payload, serde_json::json!({ "AccountId": id }));
    // The SSO sync of the same run assigned the project's groups to the new account.
    assert!(
        org.setup
            .running
            .emulator
            .requests()
            .iter()
            .any(|r| r.endpoint == "CreateAccountAssignment"),
        "{stdout}"
    );

    // Every call the first run made (account creation, bootstrap, SSO) is one that
    // `bootstrap`'s policy for the role making it allows; sso-admin's are in the emulator's log.
    let checked = common::policy::assert_calls_allowed(&config, &recorded);
    eprintln!("calls checked against bootstrap's policies: {checked:?}");
    for role in ["meshcloud", "management", "automation"] {
        assert!(checked.get(role).is_some_and(|n| *n > 0), "{checked:?}");
    }
    let sso = common::policy::operations(&config, "management", "sso");
    for r in org.setup.running.emulator.requests() {
        if r.family == aws_replicator::emulator::Family::SsoAdmin {
            assert!(
                sso.contains(&r.endpoint),
                "sso:{} beyond {sso:?}",
                r.endpoint
            );
        }
    }

    let (stdout, _, rerun) = org.recorded_sync(&config);
    eprintln!(
        "rerun, nothing to do: {} calls {:?}",
        rerun.len(),
        calls(&rerun)
    );
    assert_eq!(writes(&rerun), Vec::<String>::new(), "{stdout}");
    assert_eq!(org.state().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_after_create_account_resumes_without_a_second_account() {
    let org = Org::start().await;
    // What a run that died right after CreateAccount leaves: the account, with our tags.
    let tags = serde_json::json!({
        "aws-replicator:platform": "aws.aws-meshcloud",
        "aws-replicator:project": "acme.web",
    });
    let made = org.py("precreate", &[EMAIL, "acme.web", &tags.to_string()]);
    let config = org.config("accounts.dhall", false);
    let (_, _, recorded) = org.recorded_sync(&config);
    let writes = writes(&recorded);
    assert!(!writes.contains(&"CreateAccount".to_owned()), "{writes:?}");
    let accounts = org.state();
    assert_eq!(accounts.len(), 1, "one account, not two: {accounts:#?}");
    assert_eq!(accounts[0]["id"], made["id"]);
    assert_eq!(accounts[0]["ou"], "/workloads/dev");
    assert_eq!(accounts[0]["aliases"], serde_json::json!(["acme-acme-web"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alias_set_by_hand_is_kept_or_replaced_as_enforce_account_alias_says() {
    let org = Org::start().await;
    let made = org.py("precreate", &[EMAIL, "acme.web", "{}"]);
    let id = made["id"].as_str().unwrap();
    org.py("set-alias", &[id, "hand-made"]);

    let keep = org.config("keep.dhall", false);
    let (ok, stdout, stderr) = org.sync(&keep);
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(org.state()[0]["aliases"], serde_json::json!(["hand-made"]));

    let enforce = org.config("enforce.dhall", true);
    let (ok, stdout, stderr) = org.sync(&enforce);
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(
        org.state()[0]["aliases"],
        serde_json::json!(["acme-acme-web"])
    );
    assert_eq!(org.state().len(), 1);
}

/// An account with the project's email whose tags name another project is never adopted.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_tagged_for_another_project_is_refused() {
    let org = Org::start().await;
    let tags = serde_json::json!({ "aws-replicator:project": "globex.shop" });
    org.py("precreate", &[EMAIL, "acme.web", &tags.to_string()]);
    let config = org.config("accounts.dhall", false);
    let (ok, stdout, _) = org.sync(&config);
    assert!(!ok);
    assert!(stdout.contains("belongs to someone else"), "{stdout}");
    let accounts = org.state();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["ou"], "/", "not moved");
    assert_eq!(accounts[0]["aliases"], serde_json::json!([]));
}

/// An account made under an earlier email pattern is found by our tags and taken over: no
/// second account, whatever the pattern says now.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_tagged_as_the_projects_is_adopted_whatever_its_email() {
    let org = Org::start().await;
    let tags = serde_json::json!({
        "aws-replicator:platform": "aws.aws-meshcloud",
        "aws-replicator:project": "acme.web",
    });
    org.py(
        "precreate",
        &[
            "old-pattern+acme.web@example.com",
            "acme.web",
            &tags.to_string(),
        ],
    );
    let config = org.config("accounts.dhall", false);
    let (ok, stdout, stderr) = org.sync(&config);
    assert!(ok, "{stdout}\n{stderr}");
    let accounts = org.state();
    assert_eq!(accounts.len(), 1, "adopted, not created: {accounts:#?}");
    let a = &accounts[0];
    assert_eq!(a["email"], "old-pattern+acme.web@example.com");
    assert_eq!(a["ou"], "/workloads/dev");
    assert_eq!(a["aliases"], serde_json::json!(["acme-acme-web"]));
    for step in BOOTSTRAP_TAGS {
        assert!(a["tags"][step].is_string(), "{step}: {a}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_shows_the_pending_account_steps_and_changes_nothing() {
    let org = Org::start().await;
    let config = org.config("accounts.dhall", false);
    let (code, stdout, stderr) = org.run("plan", &config, &["--detailed-exitcode"]);
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "~ account acme.web (new): create account acme.web <aws+acme.web@example.com>; move from root to /workloads/dev; tag "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("alias acme-acme-web; deploy access stack meshstack-access; StackSet instances of meshstack-baseline; invoke arn:aws:lambda"),
        "{stdout}"
    );
    let (_, json, _) = org.run("plan", &config, &["--json"]);
    let plan: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        plan["accounts"]["accounts"][0]["pending"][0]["step"],
        "create"
    );
    assert_eq!(org.state().len(), 0, "a plan creates nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_wait_for_external_avm_the_bootstrap_waits_for_the_vending_machines_tag() {
    let org = Org::start().await;
    let config = org.config_with("avm.dhall", false, true);
    let (ok, stdout, stderr) = org.sync(&config);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("step(s) left") && !stdout.contains(" 0 step(s) left"),
        "{stdout}"
    );
    let a = org.state()[0].clone();
    assert_eq!(a["ou"], "/workloads/dev", "created and placed");
    assert_eq!(
        a["aliases"],
        serde_json::json!([]),
        "nothing after the wait"
    );
    for step in BOOTSTRAP_TAGS {
        assert!(a["tags"].get(step).is_none(), "{step}: {a}");
    }

    org.py("tag", &[a["id"].as_str().unwrap(), "meshstack-avm", "done"]);
    let (ok, stdout, stderr) = org.sync(&config);
    assert!(ok, "{stdout}\n{stderr}");
    let a = org.state()[0].clone();
    assert_eq!(a["aliases"], serde_json::json!(["acme-acme-web"]));
    for step in BOOTSTRAP_TAGS {
        assert!(a["tags"][step].is_string(), "{step}: {a}");
    }
    assert_eq!(a["stack_instances"], serde_json::json!(["eu-central-1"]));
}

/// Several new projects at once: accounts are worked on side by side, each OU is created once.
#[tokio::test(flavor = "multi_thread")]
async fn several_new_projects_get_their_accounts_side_by_side_and_each_ou_once() {
    let org = Org::start().await;
    let config = org.config("accounts.dhall", false);
    let projects = ["web", "data", "shop", "ml", "api"];
    let snapshot = serde_json::json!({
        "format_version": 1,
        "platform": "aws.aws-meshcloud",
        "projects": projects.iter().map(|p| serde_json::json!({ "workspace": "acme", "identifier": p })).collect::<Vec<_>>(),
        "tenants": projects.iter().map(|p| serde_json::json!({ "workspace": "acme", "project": p, "landing_zone": "dev" })).collect::<Vec<_>>(),
        "users": [],
        "bindings": []
    });
    let (code, stdout, stderr) = org.run_with(&snapshot.to_string(), "sync", &config, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let accounts = org.state();
    assert_eq!(accounts.len(), projects.len(), "{accounts:#?}");
    for a in &accounts {
        assert_eq!(a["ou"], "/workloads/dev");
        assert!(a["tags"]["aws-replicator:downgraded"].is_string(), "{a}");
    }
    assert_eq!(
        org.py("ous", &[]),
        serde_json::json!(["/workloads", "/workloads/dev"]),
        "each OU created once"
    );
}

/// Issue #25: in `serve` an account is part of its project's unit of work. A step that keeps
/// failing (a StackSet that does not exist) is retried with backoff (5 s, then 10 s, …), not
/// at every run of everything (one a second here), and each run in between names it.
#[tokio::test(flavor = "multi_thread")]
async fn serve_retries_a_failing_account_step_with_backoff_not_at_every_run() {
    let org = Org::start().await;
    let config = org.config("backoff.dhall", false);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"meshstack-baseline\"", "\"missing-baseline\"")
        .replace(
            "T.Replicator::{ accounts",
            "T.Replicator::{ schedule = { interval-seconds = 1, jitter-seconds = 0 }, accounts",
        );
    assert!(text.contains("missing-baseline") && text.contains("interval-seconds = 1"));
    std::fs::write(&config, text).unwrap();
    let snapshot = org.config_dir.join("snapshot.json");
    std::fs::write(&snapshot, SNAPSHOT).unwrap();
    let log = std::fs::File::create(org.config_dir.join("serve.log")).unwrap();
    let mut child = org
        .setup
        .command()
        .env("AWS_ENDPOINT_URL", &org.setup.moto_endpoint)
        .env("AWS_ENDPOINT_URL_STS", &org.setup.moto_endpoint)
        .args(["serve", "--config", config.to_str().unwrap(), "--snapshot"])
        .arg(&snapshot)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(13));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(org.config_dir.join("serve.log")).unwrap();
    drop(out);
    let tries = log
        .lines()
        .filter(|l| l.contains("account step failed") && l.contains("missing-baseline"))
        .count();
    let runs = log.lines().filter(|l| l.contains("sync started")).count();
    assert!(runs >= 8, "{runs} runs in 13 s:\n{log}");
    // At 0 s, 5 s (and 15 s): two tries, three at most, where every run used to try.
    assert!(
        (1..=3).contains(&tries),
        "{tries} tries in {runs} runs:\n{log}"
    );
    // The runs in between name it all the same.
    assert!(
        log.contains("account of acme.web: failed 1 times, retried with backoff"),
        "{log}"
    );
}
