//! The legacy meshIdB path end to end: `plan`, `sync` and `saml-roles` as a user runs them,
//! against moto's IAM (with AWS's managed policies loaded) and STS, read back and tampered
//! with through boto3 as an operator would.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const IAM_PY: &str = r#"
import json, sys, urllib.parse, boto3

command, account = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
c = boto3.client("sts").assume_role(
    RoleArn=f"arn:aws:iam::{account}:role/Operator", RoleSessionName="operator")["Credentials"]
iam = boto3.client("iam", aws_access_key_id=c["AccessKeyId"],
                   aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])

def role(name):
    try:
        r = iam.get_role(RoleName=name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return None
    doc = r["AssumeRolePolicyDocument"]
    if isinstance(doc, str):
        doc = json.loads(urllib.parse.unquote(doc))
    attached = sorted(p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"])
    return {"trust": doc, "attached": attached}

if command == "state":
    providers = []
    for p in iam.list_saml_providers()["SAMLProviderList"]:
        providers.append({"arn": p["Arn"], "metadata": iam.get_saml_provider(SAMLProviderArn=p["Arn"])["SAMLMetadataDocument"]})
    print(json.dumps({"providers": providers, "admin": role("meshstack-admin"), "reader": role("meshstack-reader")}))
elif command == "tamper":
    iam.detach_role_policy(RoleName="meshstack-admin", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    iam.attach_role_policy(RoleName="meshstack-admin", PolicyArn="arn:aws:iam::aws:policy/PowerUserAccess")
    iam.update_assume_role_policy(RoleName="meshstack-admin", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))
    print("{}")
"#;

struct Idb {
    moto: common::peers::Peer,
    dir: tempfile::TempDir,
}

fn metadata() -> String {
    format!(
        "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"https://meshidb.example.com\">{}</EntityDescriptor>",
        "<!-- padding -->".repeat(70)
    )
}

impl Idb {
    fn start() -> Idb {
        let dir = tempfile::tempdir().unwrap();
        // Started in the test's folder: moto's recorder writes its file into the working
        // directory, which would otherwise be the repository.
        let moto = common::peers::moto_with(
            &[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")],
            Some(dir.path()),
        );
        Idb { moto, dir }
    }

    fn config(&self, detach_extra: bool) -> PathBuf {
        let root = env!("CARGO_MANIFEST_DIR");
        std::fs::write(self.dir.path().join("meshidb.xml"), metadata()).unwrap();
        let text = format!(
            r#"let T = {root}/config/types/package.dhall
let c = {root}/config/demo.dhall
in c // {{ iam-configuration =
            {{ aws-sso = None T.AwsSso
            , mesh-idb = Some
                {{ role-mappings-managed =
                    [ {{ mapKey = "admin", mapValue = {{ aws-role-name = "meshstack-admin", policies = [ "arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/ReadOnlyAccess" ] }} }} ]
                , role-mappings-external =
                    [ {{ mapKey = "reader", mapValue = {{ aws-role-name = "meshstack-reader" }} }} ]
                }}
            }}
        , replicator = c.replicator // {{ mesh-idb = c.replicator.mesh-idb // {{ idp-metadata = Some ./meshidb.xml as Text, detach-extra-policies = {detach} }}, serve = c.replicator.serve // {{ webhook-token = Some "{TOKEN}" }} }}
        }}"#,
            detach = if detach_extra { "True" } else { "False" }
        );
        let path = self.dir.path().join(format!("idb-{detach_extra}.dhall"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sample-snapshot.json");
        let out = Command::new(env!("CARGO_BIN_EXE_aws-replicator"))
            .args(args)
            .arg("--snapshot")
            .arg(snapshot)
            .env("AWS_ENDPOINT_URL", &self.moto.endpoint)
            .env("AWS_REPLICATOR_LOG", "debug")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        // At debug level too, no secret of the config reaches the output.
        for secret in common::cli::SECRETS {
            assert!(!stdout.contains(secret), "{secret} on stdout");
            let leak = stderr.lines().find(|l| l.contains(secret));
            assert!(leak.is_none(), "{secret} on stderr: {leak:?}");
        }
        (out.status.code(), stdout, stderr)
    }

    fn iam(&self, command: &str, account: &str) -> Value {
        let out = common::peers::boto3(&self.moto.endpoint, IAM_PY)
            .args([command, account])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

const TOKEN: &str = "meshidb-webhook-token-0123456789";

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const READONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const POWER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";

#[test]
fn sync_creates_provider_and_roles_repairs_drift_reports_the_rest_and_then_rests() {
    let idb = Idb::start();
    let config = idb.config(false);
    let c = config.to_str().unwrap();

    let (code, stdout, stderr) = idb.run(&["plan", "--config", c, "--detailed-exitcode"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("+ SAML provider (account 111111111111 of acme.web)"),
        "{stdout}"
    );
    let saved = config.with_file_name("plan.json");
    let (code, stdout, stderr) = idb.run(&[
        "plan",
        "--config",
        c,
        "--json",
        "--out",
        saved.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["format_version"], 1, "{doc}");
    assert_eq!(doc["path"], "mesh-idb");
    assert!(
        doc["mesh_idb"]["accounts"][0]["pending"]
            .as_array()
            .is_some_and(|ops| !ops.is_empty()),
        "{doc}"
    );
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(file, doc, "--out holds the document --json prints");
    assert!(
        idb.iam("state", "111111111111")["providers"] == serde_json::json!([]),
        "plan writes nothing"
    );

    common::policy::recorder(&idb.moto.endpoint, "reset");
    common::policy::recorder(&idb.moto.endpoint, "start");
    let (code, stdout, stderr) = idb.run(&["sync", "--config", c]);
    common::policy::recorder(&idb.moto.endpoint, "stop");
    // The external role is missing: what could be done was, and a person must create it.
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    // Every call the sync made is one that `bootstrap`'s policy for its role allows (on the
    // meshIdB path it writes no sso actions at all; IAM goes through the member account's role).
    let recorded = common::policy::recorder(&idb.moto.endpoint, "download");
    let checked = common::policy::assert_calls_allowed(&config, &recorded);
    eprintln!("calls checked against bootstrap's policies: {checked:?}");
    for role in ["meshcloud", "management", "member access role"] {
        assert!(checked.get(role).is_some_and(|n| *n > 0), "{checked:?}");
    }
    assert!(
        common::policy::operations(&config, "management", "sso").is_empty(),
        "no sso actions on the meshIdB path"
    );
    // Each IAM write is announced in the audit trail before it is sent, its outcome after.
    let iam_lines: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.get("op").is_some())
        .collect();
    assert!(!iam_lines.is_empty(), "{stderr}");
    // Accounts are worked on side by side: their lines interleave, each account's in order.
    let mut by_account: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for line in iam_lines {
        by_account
            .entry(line["account"].to_string())
            .or_default()
            .push(line);
    }
    for pair in by_account.values().flat_map(|lines| lines.chunks(2)) {
        assert_eq!(pair[0]["phase"], "intent", "{pair:#?}");
        assert_eq!(pair[1]["phase"], "outcome", "{pair:#?}");
        assert_eq!(pair[0]["op"], pair[1]["op"], "{pair:#?}");
    }
    let act = stderr
        .lines()
        .find(|l| l.contains("a person must act"))
        .unwrap_or_else(|| panic!("nothing says a person must act: {stderr}"));
    assert!(
        act.contains("account 111111111111: external role meshstack-reader does not exist"),
        "{act}"
    );
    assert!(
        stdout.contains("account 111111111111: external role meshstack-reader does not exist"),
        "an external role is reported: {stdout}"
    );
    let state = idb.iam("state", "111111111111");
    assert_eq!(
        state["providers"][0]["arn"],
        "arn:aws:iam::111111111111:saml-provider/meshIdB"
    );
    assert_eq!(state["providers"][0]["metadata"], metadata());
    let admin = &state["admin"];
    assert_eq!(admin["attached"], serde_json::json!([ADMIN, READONLY]));
    let statement = &admin["trust"]["Statement"][0];
    assert_eq!(
        statement["Principal"]["Federated"],
        "arn:aws:iam::111111111111:saml-provider/meshIdB"
    );
    assert_eq!(statement["Action"], "sts:AssumeRoleWithSAML");
    assert_eq!(
        statement["Condition"]["StringEquals"]["SAML:aud"],
        "https://signin.aws.amazon.com/saml"
    );
    assert_eq!(
        state["reader"],
        Value::Null,
        "an external role is never created"
    );
    // The project without an account id gets nothing; the other two accounts got the same.
    for account in ["222222222222", "333333333333"] {
        assert_eq!(
            idb.iam("state", account)["admin"]["attached"],
            serde_json::json!([ADMIN, READONLY])
        );
    }

    let (code, stdout, _) = idb.run(&["sync", "--config", c]);
    assert_eq!(code, Some(3), "the external role is still missing");
    assert!(
        stdout.contains("0 change(s) left, 0 applied"),
        "a second run is a no-op: {stdout}"
    );

    idb.iam("tamper", "111111111111");
    let (code, stdout, stderr) = idb.run(&["sync", "--config", c]);
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    assert!(
        stdout.contains("~ role meshstack-admin trust policy restored (account 111111111111"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{POWER} attached beyond the mapping; kept")),
        "{stdout}"
    );
    let admin = &idb.iam("state", "111111111111")["admin"];
    assert_eq!(
        admin["attached"],
        serde_json::json!([ADMIN, POWER, READONLY]),
        "re-attached, extra kept"
    );
    assert_eq!(
        admin["trust"]["Statement"][0]["Action"],
        "sts:AssumeRoleWithSAML"
    );

    let strict = idb.config(true);
    let (code, stdout, _) = idb.run(&["sync", "--config", strict.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{stdout}");
    assert_eq!(
        idb.iam("state", "111111111111")["admin"]["attached"],
        serde_json::json!([ADMIN, READONLY]),
        "detached when configured"
    );

    // meshIdB published new metadata: the provider is updated in place, in every account.
    let renewed = metadata().replace("padding", "renewed");
    std::fs::write(strict.with_file_name("meshidb.xml"), &renewed).unwrap();
    let (code, stdout, stderr) = idb.run(&["sync", "--config", strict.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    for account in ["111111111111", "222222222222", "333333333333"] {
        let providers = &idb.iam("state", account)["providers"];
        assert_eq!(providers.as_array().unwrap().len(), 1, "{providers}");
        assert_eq!(providers[0]["metadata"], renewed.as_str(), "{account}");
    }
}

#[test]
fn saml_roles_lists_each_users_role_and_provider_pairs() {
    let idb = Idb::start();
    let config = idb.config(false);
    let (code, stdout, stderr) = idb.run(&["saml-roles", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let users = doc["users"].as_object().unwrap();
    assert!(!users.is_empty(), "{stdout}");
    let all: Vec<&str> = users
        .values()
        .flat_map(|v| v.as_array().unwrap())
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(all.contains(
        &"arn:aws:iam::111111111111:role/meshstack-admin,arn:aws:iam::111111111111:saml-provider/meshIdB"
    ), "{stdout}");
    let (code, one, stderr) = idb.run(&[
        "saml-roles",
        "--config",
        config.to_str().unwrap(),
        "--user",
        "alice",
    ]);
    assert_eq!(code, Some(0), "{one}\n{stderr}");
    let one: Value = serde_json::from_str(&one).unwrap();
    let users = one["users"].as_object().unwrap();
    assert_eq!(
        users.keys().collect::<Vec<_>>(),
        ["alice"],
        "exactly one key: {one}"
    );
    let pairs = users["alice"].as_array().unwrap();
    assert!(!pairs.is_empty(), "alice holds roles: {one}");
    assert!(
        pairs.iter().any(|p| p
            == "arn:aws:iam::111111111111:role/meshstack-admin,arn:aws:iam::111111111111:saml-provider/meshIdB"),
        "{one}"
    );
}

/// `serve` on the meshIdB path: its first run sets up the accounts, and `GET /v1/saml-roles`
/// serves the pairs to a caller with the token, and to nobody else.
#[tokio::test(flavor = "multi_thread")]
async fn serve_syncs_the_accounts_and_serves_saml_roles_to_callers_with_the_token() {
    let idb = Idb::start();
    let config = idb.config(false);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sample-snapshot.json");
    let _serve = common::peers::Spawned(
        Command::new(env!("CARGO_BIN_EXE_aws-replicator"))
            .args(["serve", "--config", config.to_str().unwrap(), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--snapshot")
            .arg(snapshot)
            .env("AWS_ENDPOINT_URL", &idb.moto.endpoint)
            .env("AWS_REPLICATOR_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let roles = loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no run finished in 60 s"
        );
        let answer = http
            .get(format!("{base}/v1/saml-roles?user=alice"))
            .bearer_auth(TOKEN)
            .send()
            .await;
        if let Ok(answer) = answer
            && answer.status() == 200
        {
            break answer.json::<Value>().await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let alice = roles["users"]["alice"].as_array().unwrap();
    assert!(
        alice
            .iter()
            .any(|p| p.as_str().unwrap().ends_with(":saml-provider/meshIdB")),
        "{roles}"
    );
    assert_eq!(
        roles["users"].as_object().unwrap().len(),
        1,
        "only alice: {roles}"
    );
    let anonymous = http
        .get(format!("{base}/v1/saml-roles"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .get(format!("{base}/v1/saml-roles"))
        .bearer_auth("not-the-token-at-all-0000")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        idb.iam("state", "111111111111")["admin"]["attached"],
        serde_json::json!([ADMIN, READONLY])
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("aws_replicator_mesh_idb_findings 3"),
        "one missing external role in each of the 3 accounts:\n{metrics}"
    );
    assert!(
        metrics.contains("aws_replicator_mesh_idb_changes_pending 0"),
        "{metrics}"
    );
    // IAM calls are paced and counted like sso-admin's: on the first sync, a GetRole that finds
    // nothing for each mapped role (managed and external) in each of the 3 accounts.
    assert!(
        metrics.contains(
            r#"aws_replicator_api_requests_total{service="iam",operation="GetRole",status="NoSuchEntity"} 6"#
        ),
        "{metrics}"
    );
}
