//! `aws-replicator bootstrap`: the seed's IAM policies and trust relationships, filled in from the
//! config. Golden files for the demo config; the management policy follows `replicator.sso-admin`;
//! ExternalIds only when asked for.

mod common;

use aws_replicator::bootstrap::{
    AUTOMATION_EXTERNAL_ID_PLACEHOLDER, MANAGEMENT_EXTERNAL_ID_PLACEHOLDER, Options, files,
};
use aws_replicator::config::Config;
use std::path::Path;
use std::process::Command;

fn demo() -> Config {
    Config::load(Path::new("config/demo.dhall")).unwrap()
}

fn options(reveal: bool) -> Options<'static> {
    Options {
        meshcloud_account_id: "999999999999",
        reveal_external_id: reveal,
    }
}

/// With a landing zone every feature is in use: the seed's policies (and the sso actions).
#[test]
fn a_config_with_a_landing_zone_gives_the_seeds_policies() {
    let files = files(&with_landing_zone(demo()), &options(false)).unwrap();
    let mut all = String::new();
    for (name, text) in &files {
        all.push_str(&format!("=== {name}\n{text}"));
        if name.starts_with("templates/") {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["AWSTemplateFormatVersion"], "2010-09-09", "{name}");
        } else if name.ends_with(".json") {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["Version"], "2012-10-17", "{name}");
            assert!(
                v["Statement"].as_array().is_some_and(|s| !s.is_empty()),
                "{name}"
            );
        }
    }
    assert!(
        !all.contains("demo-external-id"),
        "no ExternalId unless asked for"
    );
    expect_test::expect_file!["golden/bootstrap_demo.txt"].assert_eq(&all);
}

#[test]
fn external_ids_only_when_asked_and_sso_actions_follow_the_config() {
    let mut config = with_landing_zone(demo());
    let revealed = files(&config, &options(true)).unwrap();
    let text: String = revealed.iter().map(|(_, t)| t.as_str()).collect();
    assert!(text.contains("demo-external-id") && !text.contains("<<"));

    // Each role's ExternalId has its own placeholder, in the statements about that role.
    let hidden = files(&config, &options(false)).unwrap();
    let file = |prefix: &str, suffix: &str| {
        hidden
            .iter()
            .find(|(n, _)| n.starts_with(prefix) && n.ends_with(suffix))
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    let management_trust = file("management/", "-trust.json");
    assert!(
        management_trust.contains(MANAGEMENT_EXTERNAL_ID_PLACEHOLDER)
            && !management_trust.contains(AUTOMATION_EXTERNAL_ID_PLACEHOLDER)
    );
    let automation_trust = file("automation/MeshfedAutomationRole", "-trust.json");
    assert!(
        automation_trust.contains(AUTOMATION_EXTERNAL_ID_PLACEHOLDER)
            && !automation_trust.contains(MANAGEMENT_EXTERNAL_ID_PLACEHOLDER)
    );
    let user: serde_json::Value =
        serde_json::from_str(&file("meshcloud/", "-policy.json")).unwrap();
    for statement in user["Statement"].as_array().unwrap() {
        let want = if statement["Resource"]
            .as_str()
            .unwrap()
            .ends_with("MeshfedServiceRole")
        {
            MANAGEMENT_EXTERNAL_ID_PLACEHOLDER
        } else {
            AUTOMATION_EXTERNAL_ID_PLACEHOLDER
        };
        assert_eq!(
            statement["Condition"]["StringEquals"]["sts:ExternalId"], want,
            "{statement}"
        );
    }

    let actions = |config: &Config| {
        let files = files(config, &options(false)).unwrap();
        let (_, policy) = files
            .iter()
            .find(|(n, _)| n.starts_with("management/") && n.ends_with("-policy.json"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(policy).unwrap();
        v["Statement"][3]["Action"].as_array().unwrap().len()
    };
    assert_eq!(actions(&config), 3, "the seed's three sso actions");
    config.replicator.sso_admin.delete_assignments = true;
    config.replicator.sso_admin.list_assignments_for_principal = true;
    config.replicator.sso_admin.list_assignment_status = true;
    assert_eq!(actions(&config), 8);
}

#[test]
fn the_command_writes_the_files_and_refuses_a_bad_account_id() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_aws-replicator");
    let out = Command::new(bin)
        .args([
            "bootstrap",
            "--config",
            "config/demo.dhall",
            "--meshcloud-account-id",
            "999999999999",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.path()
            .join("management/MeshfedServiceRole-policy.json")
            .exists()
    );
    assert!(dir.path().join("README.md").exists());
    // Every file written is listed with what to do with it.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let listed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  /")).collect();
    let written = walk(dir.path());
    assert_eq!(listed.len(), written.len(), "{stdout}");
    for (line, next) in stdout.lines().zip(stdout.lines().skip(1)) {
        if line.starts_with("  /") {
            assert!(
                next.starts_with("      ") && next.trim().len() > 10,
                "no instruction for {line}"
            );
        }
    }
    assert!(
        stdout.contains("attach to IAM user meshfed-service-user"),
        "{stdout}"
    );
    let differences = std::fs::read_to_string(dir.path().join("DIFFERENCES.md")).unwrap();
    assert!(
        differences.contains("cloudformation:DescribeStackSetOperation")
            && differences.contains("waits for the StackSet operation"),
        "{differences}"
    );

    let out = Command::new(bin)
        .args([
            "bootstrap",
            "--config",
            "config/demo.dhall",
            "--meshcloud-account-id",
            "12345",
            "--out",
        ])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--meshcloud-account-id") && stderr.contains("12-digit"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("other").exists(),
        "nothing written on a bad input"
    );
}

fn cfn_lint() -> String {
    std::env::var("AWS_REPLICATOR_CFN_LINT").unwrap_or_else(|_| "cfn-lint".into())
}

/// The templates pass cfn-lint (the CloudFormation linter, installed by scripts/test).
#[test]
fn the_templates_pass_cfn_lint() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files(&demo(), &options(false)).unwrap() {
        if name.starts_with("templates/") {
            let path = dir.path().join(name.replace('/', "-"));
            std::fs::write(&path, text).unwrap();
            let out = Command::new(cfn_lint())
                .args(["--regions", "eu-central-1", "--"])
                .arg(&path)
                .output()
                .expect("cfn-lint: run the tests with ./scripts/test");
            assert!(
                out.status.success(),
                "{name}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The permission-downgrade Lambda against moto's STS and IAM: in a new account it puts the
/// minimum policy on the access role and takes AdministratorAccess away (attached and inline);
/// a second run changes nothing; a bad event is refused.
#[test]
fn the_downgrade_lambda_downgrades_once() {
    let moto = common::peers::moto();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("permission_downgrade.py"),
        aws_replicator::bootstrap::PERMISSION_DOWNGRADE_LAMBDA,
    )
    .unwrap();
    let driver = r#"
import json, boto3, permission_downgrade as lam

account = "111122223333"
# Set up the new account as the StackSet and account creation would leave it.
sts = boto3.client("sts")
c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/Setup", RoleSessionName="setup")["Credentials"]
iam = boto3.client("iam", aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
admin = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
iam.create_role(RoleName="PermissionDowngradeLambdaExecutionRole", AssumeRolePolicyDocument=trust)
iam.create_role(RoleName="MeshstackAccountAccessRole", AssumeRolePolicyDocument=trust)
arn = iam.create_policy(PolicyName="AdministratorAccess", PolicyDocument=admin)["Policy"]["Arn"]
iam.attach_role_policy(RoleName="MeshstackAccountAccessRole", PolicyArn=arn)
iam.put_role_policy(RoleName="MeshstackAccountAccessRole", PolicyName="AdministratorAccess", PolicyDocument=admin)

first = json.loads(lam.main({"AccountId": account}, None)["body"])["changed"]
assert len(first) == 3, first
assert iam.list_role_policies(RoleName="MeshstackAccountAccessRole")["PolicyNames"] == ["MeshstackAccountAccessPolicy"]
assert iam.list_attached_role_policies(RoleName="MeshstackAccountAccessRole")["AttachedPolicies"] == []
again = json.loads(lam.main({"AccountId": account}, None)["body"])["changed"]
assert again == [], again
try:
    lam.main({"AccountId": "12"}, None)
    raise SystemExit("a bad AccountId was accepted")
except ValueError:
    pass
print("downgraded")
"#;
    let out = common::peers::boto3(&moto.endpoint, driver)
        .current_dir(dir.path())
        .env("PYTHONPATH", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("downgraded"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A landing zone whose accounts get the permission-downgrade Lambda: accounts are created and
/// bootstrapped, and the automation account is entered.
fn with_landing_zone(mut config: Config) -> Config {
    use aws_replicator::config::{LandingZone, OuTarget};
    config.accounts.landing_zones.insert(
        "aws-default".into(),
        LandingZone {
            organizational_unit: OuTarget::Path(vec!["projects".into()]),
            tags: Default::default(),
            access_stack: None,
            stack_sets: Vec::new(),
            lambda: Some("arn:aws:lambda:eu-central-1:210987654321:function:downgrade".into()),
        },
    );
    config
}

/// Each policy grants what the configured features call, no more: without a landing zone no
/// `organizations:` action (no `CreateAccount`, no `MoveAccount`), no member account's access
/// role and no automation account; DIFFERENCES.md says what was left out and why.
#[test]
fn policies_grant_only_what_the_configured_features_use() {
    let statements = |files: &[(String, String)], suffix: &str| -> Vec<serde_json::Value> {
        let (_, text) = files.iter().find(|(n, _)| n.ends_with(suffix)).unwrap();
        let policy: serde_json::Value = serde_json::from_str(text).unwrap();
        policy["Statement"].as_array().unwrap().clone()
    };
    let sids = |statements: &[serde_json::Value]| -> Vec<String> {
        statements
            .iter()
            .map(|s| s["Sid"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let bare = files(&demo(), &options(false)).unwrap();
    let management = statements(&bare, "MeshfedServiceRole-policy.json");
    assert_eq!(
        sids(&management),
        ["OrgManagementAccessSSO"],
        "{management:?}"
    );
    let user = statements(&bare, "meshfed-service-user-policy.json");
    assert_eq!(user.len(), 1, "only the management role: {user:?}");
    assert!(
        user[0]["Resource"]
            .as_str()
            .unwrap()
            .ends_with(":role/MeshfedServiceRole")
    );
    let (_, differences) = bare.iter().find(|(n, _)| n == "DIFFERENCES.md").unwrap();
    assert!(
        differences.contains("no `organizations:` statements")
            && differences.contains("no `StsAccessMemberAccount` statement")
            && differences.contains("does not allow assuming `MeshfedAutomationRole`"),
        "{differences}"
    );

    let landing = files(&with_landing_zone(demo()), &options(false)).unwrap();
    let management = statements(&landing, "MeshfedServiceRole-policy.json");
    assert_eq!(
        sids(&management),
        [
            "StsAccessMemberAccount",
            "OrgManagementAccess1",
            "OrgManagementAccess2",
            "OrgManagementAccessSSO"
        ]
    );
    let text = serde_json::to_string(&management).unwrap();
    assert!(
        text.contains("organizations:CreateAccount") && text.contains("organizations:MoveAccount"),
        "{text}"
    );
    assert_eq!(
        statements(&landing, "meshfed-service-user-policy.json").len(),
        2
    );
    let (_, differences) = landing.iter().find(|(n, _)| n == "DIFFERENCES.md").unwrap();
    assert!(
        !differences.contains("no `organizations:`"),
        "{differences}"
    );
}

/// `bootstrap` writes placeholders for the ExternalIds, so it needs none of the config's
/// secrets: the example config, with none of its `env:` variables set, works.
#[test]
fn bootstrap_needs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aws-replicator"))
        .args([
            "bootstrap",
            "--config",
            "config/example.dhall",
            "--meshcloud-account-id",
            "999999999999",
            "--out",
        ])
        .arg(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = std::fs::read_to_string(
        dir.path()
            .join("meshcloud/meshfed-service-user-policy.json"),
    )
    .unwrap();
    assert!(user.contains("<<MANAGEMENT_EXTERNAL_ID>>"), "{user}");
}

#[test]
fn a_role_without_an_external_id_gets_no_condition_and_mesh_idb_no_sso_actions() {
    let mut config = with_landing_zone(demo());
    config.aws.automation_account_external_id = None;
    config.sso = None;
    let files = files(&config, &options(true)).unwrap();
    let file = |suffix: &str| -> serde_json::Value {
        let (_, text) = files.iter().find(|(n, _)| n.ends_with(suffix)).unwrap();
        serde_json::from_str(text).unwrap()
    };
    let trust = file("MeshfedAutomationRole-trust.json");
    assert!(trust["Statement"][0].get("Condition").is_none(), "{trust}");
    let user = file("meshfed-service-user-policy.json");
    assert_eq!(
        user["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"], "demo-external-id",
        "the management role keeps its ExternalId: {user}"
    );
    assert!(user["Statement"][1].get("Condition").is_none(), "{user}");
    let management = file("MeshfedServiceRole-policy.json").to_string();
    assert!(!management.contains("\"sso:"), "{management}");
    let automation = file("MeshfedAutomationRole-policy.json").to_string();
    assert!(
        automation.contains("cloudformation:DescribeStackSetOperation"),
        "the replicator waits for the StackSet operation it starts: {automation}"
    );
    let (_, readme) = files.iter().find(|(n, _)| n == "README.md").unwrap();
    assert!(readme.contains("no ExternalId condition"), "{readme}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The landing zone the example config shows in a comment imports the access stack from where
/// `bootstrap --out bootstrap` writes it: uncommented next to such a folder, it checks.
#[test]
fn the_example_landing_zone_imports_what_bootstrap_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aws-replicator"))
        .args([
            "bootstrap",
            "--config",
            "config/demo.dhall",
            "--meshcloud-account-id",
            "999999999999",
            "--out",
        ])
        .arg(dir.path().join("bootstrap"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let example = std::fs::read_to_string("config/example.dhall").unwrap();
    let start = example.find("list it:\n").unwrap() + "list it:\n".len();
    let end = example
        .find("\n           `aws-replicator bootstrap")
        .unwrap();
    let landing_zone = &example[start..end];
    assert!(
        landing_zone.contains("./bootstrap/templates/access-stack.json as Text"),
        "{landing_zone}"
    );
    // The replicator record, and the commented landing zone after it, give way to that
    // landing zone's record.
    let comment_start = example
        .find("      , replicator = T.Replicator::{")
        .unwrap();
    let comment_end = example[start..].find("-}").unwrap() + start + 2;
    let types = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/types/package.dhall");
    let uncommented = format!(
        "{}{}{}",
        &example[..comment_start],
        landing_zone,
        &example[comment_end..]
    )
    .replace("./types/package.dhall", types.to_str().unwrap());
    let config = dir.path().join("config.dhall");
    std::fs::write(&config, uncommented).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aws-replicator"))
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("landing zone aws-default"), "{stdout}");
    assert!(stdout.contains("an access stack"), "{stdout}");
}
