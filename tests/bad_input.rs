//! The bad-input corpus under `tests/corpus/`: every file must be rejected with a clear error
//! that names what is wrong (each line of its `.expect` file appears in the message), without
//! a panic. See `tests/corpus/config/README.md` for the convention.

use aws_replicator::meshstack::{self, payload::Kind};
use aws_replicator::snapshot::Snapshot;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cases(dir: &str, ext: &str) -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some(ext) {
            continue;
        }
        let expect = std::fs::read_to_string(path.with_extension("expect"))
            .unwrap_or_else(|_| panic!("{} has no .expect file", path.display()));
        let lines = expect
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        out.push((path, lines));
    }
    out.sort();
    assert!(!out.is_empty(), "no cases in {dir}");
    out
}

fn check(path: &Path, expect: &[String], message: &str, failures: &mut Vec<String>) {
    for line in expect {
        if !message.contains(line.as_str()) {
            failures.push(format!(
                "{}: expected {line:?} in:\n{message}\n",
                path.display()
            ));
        }
    }
    if message.contains("panicked") {
        failures.push(format!("{}: panicked:\n{message}", path.display()));
    }
}

#[test]
fn bad_configs_are_rejected_by_config_check_with_the_field_named() {
    let cases = cases("tests/corpus/config", "dhall");
    // Two at a time: each run evaluates Dhall, and the machine has two cores.
    let (left, right) = cases.split_at(cases.len() / 2);
    let failures: Vec<String> = std::thread::scope(|s| {
        let a = s.spawn(|| run_config_cases(left));
        let b = s.spawn(|| run_config_cases(right));
        [a.join().unwrap(), b.join().unwrap()].concat()
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn run_config_cases(cases: &[(PathBuf, Vec<String>)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (path, expect) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_aws-replicator"))
            .args(["config", "check", "--require-secrets", "--config"])
            .arg(path)
            .env_remove("AWS_REPLICATOR_CORPUS_UNSET")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) {
            failures.push(format!(
                "{}: exit {:?}, want 1\n{stderr}",
                path.display(),
                out.status.code()
            ));
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{}: printed to stdout on error", path.display()));
        }
        check(path, expect, &stderr, &mut failures);
    }
    failures
}

#[test]
fn malformed_meshstack_payloads_name_the_field() {
    let mut failures = Vec::new();
    for (path, expect) in cases("tests/corpus/meshstack", "json") {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let kind = match name.split('-').next().unwrap() {
            "projects" => Kind::Projects,
            "users" => Kind::Users,
            "projectroles" => Kind::ProjectRoles,
            "workspaceusergroups" => Kind::WorkspaceUserGroups,
            "userbindings" => Kind::UserBindings,
            "groupbindings" => Kind::GroupBindings,
            "tenants" if name.starts_with("tenants-v4") => Kind::TenantsV4,
            "tenants" => Kind::TenantsV3,
            other => panic!("{name}: unknown kind {other}"),
        };
        let body = std::fs::read(&path).unwrap();
        match meshstack::parse_page(kind, &body) {
            Ok(n) => failures.push(format!("{}: accepted ({n} items)", path.display())),
            Err(e) => check(&path, &expect, &e.to_string(), &mut failures),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn malformed_snapshots_name_the_field() {
    let mut failures = Vec::new();
    for (path, expect) in cases("tests/corpus/snapshot", "json") {
        match Snapshot::from_file(&path) {
            Ok(_) => failures.push(format!("{}: accepted", path.display())),
            Err(e) => check(&path, &expect, &e.to_string(), &mut failures),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
