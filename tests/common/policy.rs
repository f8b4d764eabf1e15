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
