//! The JSON documents are a contract: `plan --json` / `plan --out` and `sync --json` are checked
//! against the schemas shipped in `docs/schema/` (with Python's `jsonschema`, from the test
//! peers' virtualenv), and the schemas and the README list every op kind, reason and finding
//! kind the code has.

mod common;

use std::path::Path;
use std::process::Command;

const VALIDATE: &str = r#"
import json, sys
import jsonschema, referencing
from referencing.jsonschema import DRAFT202012
schemas = [json.load(open(p)) for p in ("docs/schema/plan.schema.json", "docs/schema/sync-report.schema.json")]
for s in schemas:
    jsonschema.Draft202012Validator.check_schema(s)
registry = referencing.Registry().with_resources([(s["$id"], DRAFT202012.create_resource(s)) for s in schemas])
schema = {"plan": schemas[0], "sync-report": schemas[1]}[sys.argv[1]]
validator = jsonschema.Draft202012Validator(schema, registry=registry)
errors = list(validator.iter_errors(json.load(open(sys.argv[2]))))
for e in errors:
    print(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}")
sys.exit(1 if errors else 0)
"#;

/// Checks `document` against `docs/schema/<schema>.schema.json`.
fn assert_valid(schema: &str, document: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("document.json");
    std::fs::write(&file, document).unwrap();
    let out = Command::new(common::peers::python())
        .args(["-c", VALIDATE, schema])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run Python ({e}); run the tests with ./scripts/test"));
    assert!(
        out.status.success(),
        "{schema}: {}{}\n{document}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aws-replicator"));
    cmd.env_remove("AWS_REPLICATOR_LOG");
    cmd
}

#[test]
fn plan_json_follows_its_schema() {
    for extra in [
        &[][..],
        &["--project", "acme.web"][..],
        &["--workspace", "globex"][..],
    ] {
        let out = bin()
            .args([
                "plan",
                "--json",
                "--config",
                "config/demo.dhall",
                "--snapshot",
                "config/sample-snapshot.json",
                "--observed",
                "config/sample-observed.json",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc = String::from_utf8(out.stdout).unwrap();
        let value: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert!(!value["ops"].as_array().unwrap().is_empty(), "{extra:?}");
        assert!(
            !value["findings"].as_array().unwrap().is_empty(),
            "{extra:?}"
        );
        assert_valid("plan", &doc);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_json_follows_its_schema() {
    let s = common::cli::setup().await;
    let config = s.config("schema.dhall", "%s.%s.%4\\$s", "T.Replicator::{ rate-limits = { scim = 20.0, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 } }");
    let (out, stdout, stderr) = s.sync_with(&config, "config/sample-snapshot.json", &["--json"]);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["format_version"], 1);
    assert!(
        value["calls"]["scim_reads"].as_u64().unwrap() > 0,
        "{stdout}"
    );
    assert!(!value["report"]["outcomes"].as_array().unwrap().is_empty());
    assert_valid("sync-report", &stdout);
}

/// `Name` → `name`, `CreateGroup` → `create_group`: serde's `snake_case`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The variants of `pub enum NAME` in `file`, as serde names them.
fn variants(file: &str, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let start = text.find(&format!("pub enum {name} {{")).unwrap();
    let body = &text[start..];
    let body = &body[..body.find("\n}\n").unwrap()];
    body.lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| snake(l.split([' ', ',', '{', '(']).next().unwrap()))
        .collect()
}

#[test]
fn schemas_and_readme_list_every_op_reason_and_finding() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("docs/schema/plan.schema.json").unwrap())
            .unwrap();
    let defs = &schema["$defs"];
    let consts = |def: &str, field: &str| -> Vec<String> {
        defs[def]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["properties"][field]["const"].as_str().unwrap().to_owned())
            .collect()
    };
    let reasons: Vec<String> = defs["reason"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let readme = std::fs::read_to_string("README.md").unwrap();
    for (listed, code) in [
        (consts("op", "op"), variants("src/plan/mod.rs", "Op")),
        (reasons, variants("src/plan/mod.rs", "Reason")),
        (
            consts("finding", "kind"),
            variants("src/finding.rs", "Finding"),
        ),
    ] {
        assert_eq!(
            listed, code,
            "the schema lists what the code has, in its order"
        );
        for name in &code {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README does not list `{name}`"
            );
        }
    }
    assert!(Path::new("docs/schema/sync-report.schema.json").exists());
}
