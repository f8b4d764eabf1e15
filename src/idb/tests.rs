//! The meshIdB core: desired IAM per account, the plan against what an account holds, and the
//! SAML role pairs per user.

use super::*;

/// A stand-in for meshIdB's metadata: IAM wants at least 1,000 characters.
pub(crate) fn metadata() -> String {
    format!(
        "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"https://meshidb.example.com\">{}</EntityDescriptor>",
        "<!-- padding -->".repeat(70)
    )
}

/// The demo configuration switched to meshIdB: admin managed (two policies), reader external.
pub(crate) fn idb_config() -> Config {
    config_with(
        "",
        r#"role-mappings-managed =
            [ { mapKey = "admin", mapValue = { aws-role-name = "meshstack-admin", policies = [ "arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/ReadOnlyAccess" ] } } ]
        , role-mappings-external =
            [ { mapKey = "reader", mapValue = { aws-role-name = "meshstack-reader" } } ]"#,
    )
}

/// The demo configuration on the meshIdB path, with `aws` fields replaced (`, field = value`
/// each) and `mesh-idb` as given.
fn config_with(aws: &str, mesh_idb: &str) -> Config {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.dhall");
    let types = concat!(env!("CARGO_MANIFEST_DIR"), "/config/types/package.dhall");
    let text = format!(
        r#"let T = {types}
let c = {demo}
in c // {{ aws = c.aws // {{ platform = c.aws.platform {aws} }}
        , iam-configuration = {{ aws-sso = None T.AwsSso, mesh-idb = Some {{ {mesh_idb} }} }}
        , replicator = c.replicator // {{ mesh-idb = c.replicator.mesh-idb // {{ idp-metadata = Some "{}" }} }}
        }}"#,
        metadata().replace('"', "\\\"")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.dhall");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn snapshot() -> Snapshot {
    Snapshot::from_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/sample-snapshot.json"
    )))
    .unwrap()
}

#[test]
fn every_project_account_gets_the_provider_and_the_mapped_roles() {
    let config = idb_config();
    let ids = BTreeMap::from([(
        ProjectKey::new("globex", "legacy"),
        "444444444444".to_owned(),
    )]);
    let desired = desired_iam(&snapshot(), &config, &ids);
    let accounts: Vec<&str> = desired.iter().map(|d| d.account.as_str()).collect();
    assert_eq!(
        accounts,
        [
            "222222222222",
            "111111111111",
            "444444444444",
            "333333333333"
        ]
    );
    let d = &desired[0];
    assert_eq!(d.provider, "meshIdB");
    assert_eq!(d.external, ["meshstack-reader"]);
    let admin = &d.managed[0];
    assert_eq!(admin.name, "meshstack-admin");
    assert_eq!(admin.policies.len(), 2);
    assert_eq!(
        admin.trust["Statement"][0]["Principal"]["Federated"],
        "arn:aws:iam::222222222222:saml-provider/meshIdB"
    );
    assert_eq!(
        admin.trust["Statement"][0]["Action"],
        "sts:AssumeRoleWithSAML"
    );
    assert_eq!(
        admin.trust["Statement"][0]["Condition"]["StringEquals"]["SAML:aud"],
        "https://signin.aws.amazon.com/saml"
    );
}

fn observed_in_sync(d: &DesiredIam) -> ObservedIam {
    let mut roles: BTreeMap<String, Option<ObservedRole>> = d
        .managed
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                Some(ObservedRole {
                    trust: r.trust.clone(),
                    attached: r.policies.clone(),
                }),
            )
        })
        .collect();
    for e in &d.external {
        roles.insert(
            e.clone(),
            Some(ObservedRole {
                trust: Value::Null,
                attached: BTreeSet::new(),
            }),
        );
    }
    ObservedIam {
        provider: Some(metadata()),
        roles,
    }
}

#[test]
fn an_empty_account_gets_provider_then_role_then_policies_and_a_synced_one_nothing() {
    let config = idb_config();
    let d = &desired_iam(&snapshot(), &config, &BTreeMap::new())[0];
    let (ops, findings) = plan_iam(d, &ObservedIam::default(), &metadata(), false);
    let shown: Vec<String> = ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "+ SAML provider",
            "+ role meshstack-admin",
            "+ policy arn:aws:iam::aws:policy/AdministratorAccess → meshstack-admin",
            "+ policy arn:aws:iam::aws:policy/ReadOnlyAccess → meshstack-admin",
        ]
    );
    assert_eq!(
        findings,
        [IamFinding::ExternalRoleMissing {
            account: "222222222222".into(),
            role: "meshstack-reader".into()
        }],
        "an external role is reported, never created"
    );
    assert_eq!(
        plan_iam(d, &observed_in_sync(d), &metadata(), false),
        (vec![], vec![])
    );
}

#[test]
fn drift_is_repaired_and_extra_policies_detached_only_when_configured() {
    let config = idb_config();
    let d = &desired_iam(&snapshot(), &config, &BTreeMap::new())[0];
    let mut drifted = observed_in_sync(d);
    drifted.provider = Some("<EntityDescriptor>old</EntityDescriptor>".into());
    let admin = drifted
        .roles
        .get_mut("meshstack-admin")
        .unwrap()
        .as_mut()
        .unwrap();
    admin.trust["Statement"][0]["Condition"] = Value::Null;
    admin
        .attached
        .remove("arn:aws:iam::aws:policy/ReadOnlyAccess");
    admin
        .attached
        .insert("arn:aws:iam::aws:policy/PowerUserAccess".into());
    let (ops, findings) = plan_iam(d, &drifted, &metadata(), false);
    assert_eq!(
        ops,
        [
            IamOp::UpdateSamlProvider,
            IamOp::UpdateTrust {
                role: "meshstack-admin".into()
            },
            IamOp::AttachPolicy {
                role: "meshstack-admin".into(),
                policy: "arn:aws:iam::aws:policy/ReadOnlyAccess".into()
            },
        ]
    );
    assert!(
        matches!(&findings[..], [IamFinding::ExtraPolicy { policy, .. }] if policy.ends_with("PowerUserAccess"))
    );
    let (ops, findings) = plan_iam(d, &drifted, &metadata(), true);
    assert!(ops.contains(&IamOp::DetachPolicy {
        role: "meshstack-admin".into(),
        policy: "arn:aws:iam::aws:policy/PowerUserAccess".into()
    }));
    assert!(findings.is_empty());
}

#[test]
fn each_user_gets_the_saml_role_pairs_of_the_roles_they_hold() {
    let config = idb_config();
    let roles = saml_roles(&snapshot(), &config, &BTreeMap::new());
    let text = serde_json::to_string_pretty(&roles).unwrap();
    for (user, pairs) in &roles {
        for pair in pairs {
            let (role, provider) = pair.split_once(',').unwrap();
            assert!(
                role.starts_with("arn:aws:iam::") && role.contains(":role/meshstack-"),
                "{user}: {pair}"
            );
            assert_eq!(&role[..25], &provider[..25], "same account: {pair}");
            assert!(provider.ends_with(":saml-provider/meshIdB"), "{pair}");
        }
    }
    // Project users are not mapped under meshIdB here: only admins and readers get pairs.
    assert!(!roles.is_empty(), "{text}");
    assert!(
        roles
            .values()
            .flatten()
            .all(|p| !p.contains("globex-legacy")),
        "no account, no pair: {text}"
    );
}

/// The seed's `Aws.dhall` keeps meshIdB mappings in `aws.roleMappingsManaged` /
/// `aws.roleMappingsExternal` too: they count as if written under `mesh-idb`.
#[test]
fn the_seeds_aws_role_mappings_are_mapped_too() {
    let config = config_with(
        r#", roleMappingsManaged = [ { mapKey = "admin", mapValue = { awsRoleName = "seed-admin", policies = [ "arn:aws:iam::aws:policy/ReadOnlyAccess" ] } } ]
           , roleMappingsExternal = [ { mapKey = "reader", mapValue = { awsRoleName = "seed-reader" } } ]"#,
        r#"role-mappings-managed = [] : List { mapKey : Text, mapValue : { aws-role-name : Text, policies : List Text } }
        , role-mappings-external = [ { mapKey = "user", mapValue = { aws-role-name = "own-user" } } ]"#,
    );
    let desired = desired_iam(&snapshot(), &config, &BTreeMap::new());
    let d = &desired[0];
    let managed: Vec<&str> = d.managed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(managed, ["seed-admin"]);
    assert_eq!(
        d.managed[0].policies,
        BTreeSet::from(["arn:aws:iam::aws:policy/ReadOnlyAccess".to_owned()])
    );
    assert_eq!(d.external, ["own-user", "seed-reader"]);
}

#[test]
fn the_seeds_role_mappings_on_the_aws_sso_path_are_a_warning() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.dhall");
    let text = format!(
        r#"let c = {demo}
in c // {{ aws = c.aws // {{ roleMappingsExternal = [ {{ mapKey = "reader", mapValue = {{ awsRoleName = "seed-reader" }} }} ] }} }}"#
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.dhall");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("aws.roleMappingsManaged")
                && w.contains("ignored on the aws-sso path")),
        "{warnings:?}"
    );
}

#[test]
fn a_scoped_run_replaces_only_its_accounts_saml_roles() {
    use std::collections::{BTreeMap, BTreeSet};
    let pair = |account: &str, role: &str| {
        format!("arn:aws:iam::{account}:role/{role},arn:aws:iam::{account}:saml-provider/meshIdB")
    };
    let set = |pairs: &[String]| pairs.iter().cloned().collect::<BTreeSet<String>>();
    let before: BTreeMap<String, BTreeSet<String>> = [
        (
            "alice".to_owned(),
            set(&[pair("111111111111", "admin"), pair("222222222222", "admin")]),
        ),
        ("bob".to_owned(), set(&[pair("111111111111", "reader")])),
        ("carol".to_owned(), set(&[pair("333333333333", "admin")])),
    ]
    .into();
    // The run read account 111…: alice is now a reader there, bob lost his role.
    let now: BTreeMap<String, BTreeSet<String>> =
        [("alice".to_owned(), set(&[pair("111111111111", "reader")]))].into();
    let accounts: BTreeSet<String> = ["111111111111".to_owned()].into();
    let merged = super::merge_saml_roles(before, now, &accounts);
    assert_eq!(
        merged,
        [
            (
                "alice".to_owned(),
                set(&[
                    pair("111111111111", "reader"),
                    pair("222222222222", "admin")
                ])
            ),
            ("carol".to_owned(), set(&[pair("333333333333", "admin")])),
        ]
        .into()
    );
}
