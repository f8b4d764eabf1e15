//! The command line as a user runs it: `demo`, `config check`, `snapshot` and `plan` against
//! the meshStack fixture server, exit codes, JSON output, and no secret in any output.

mod common;

use aws_replicator::config::Config;
use aws_replicator::desired::{Scope, Settings, desired};
use aws_replicator::observed::Observed;
use aws_replicator::plan::plan;
use aws_replicator::snapshot::Snapshot;
use common::meshstack_fixture::{AuthMode, Fixture, Script};
use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aws-replicator"));
    cmd.env_remove("AWS_REPLICATOR_LOG");
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PLAN: [&str; 6] = [
    "plan",
    "--config",
    "config/demo.dhall",
    "--snapshot",
    "config/sample-snapshot.json",
    "--observed",
];

#[test]
fn demo_converges_and_repairs_drift() {
    let out = bin().arg("demo").output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("2. Drift after the sync: 0 operation(s) pending"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ member alice@acme.example → mst-acme.web.meshstack-project-admin"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- member mallory@other.example → mst-acme.web.meshstack-project-admin"),
        "{stdout}"
    );
    assert!(
        stdout.contains("5. Drift after the repair: 0 operation(s) pending"),
        "{stdout}"
    );
    assert!(!stdout.contains("demo-scim-token") && !stderr.contains("demo-scim-token"));
}

/// A usage error (a typo'd flag, a missing argument) exits 64, never 2: `plan
/// --detailed-exitcode` means "changes pending" by 2, and a CI job would read a typo as that.
/// `--help` and `--version` exit 0.
#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    for args in [
        &["plan", "--detailed-exitcode", "--confg", "x.dhall"][..],
        &["plan", "--detailed-exitcode"][..],
        &["no-such-command"][..],
    ] {
        let out = bin().args(args).output().unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains("Usage:"), "{stderr}");
    }
    for args in [&["--help"][..], &["plan", "--help"][..], &["--version"][..]] {
        let out = bin().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!text(&out).0.is_empty());
    }
}

#[test]
fn plan_exit_codes_json_and_out_file() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("plan.json");
    let out = bin()
        .args(PLAN)
        .args([
            "config/sample-observed.json",
            "--detailed-exitcode",
            "--json",
            "--out",
        ])
        .arg(&out_file)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "changes pending: {stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["format_version"], 2);
    assert!(
        json["basis"]["aws"]
            .as_object()
            .unwrap()
            .contains_key("mst-acme.web.meshstack-project-reader"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap().trim(),
        stdout.trim()
    );

    // Without --detailed-exitcode, pending changes still exit 0.
    let out = bin()
        .args(PLAN)
        .arg("config/sample-observed.json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).0.contains("Plan: 4 group(s) to create"));

    // A directory that already holds the desired state: nothing to do, exit 0.
    let config = Config::load(Path::new("config/demo.dhall")).unwrap();
    let snapshot = Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap();
    let observed: Observed =
        serde_json::from_str(&std::fs::read_to_string("config/sample-observed.json").unwrap())
            .unwrap();
    let d = desired(
        &snapshot,
        &Settings::new(&config, config.sso.as_ref().unwrap()),
        &Scope::All,
    );
    let synced = common::applied(&plan(&d, &observed), &observed);
    let synced_file = dir.path().join("synced.json");
    std::fs::write(&synced_file, serde_json::to_string(&synced).unwrap()).unwrap();
    let out = bin()
        .args(PLAN)
        .arg(&synced_file)
        .arg("--detailed-exitcode")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert!(text(&out).0.contains("No changes."));
}

#[test]
fn a_snapshot_of_another_platform_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("other.json");
    let text_in = std::fs::read_to_string("config/sample-snapshot.json").unwrap();
    std::fs::write(&file, text_in.replace("aws.aws-meshcloud", "aws.elsewhere")).unwrap();
    let out = bin()
        .args(["plan", "--config", "config/demo.dhall", "--snapshot"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("aws.elsewhere"), "{}", text(&out).1);
}

#[test]
fn the_example_config_checks_with_its_environment_and_names_what_is_missing() {
    let vars = [
        ("MESHFED_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("MESHFED_SECRET_ACCESS_KEY", "example-secret-key"),
        ("MESHFED_EXTERNAL_ID", "example-external-id"),
        ("AWS_SSO_SCIM_TOKEN", "example-scim-token"),
        ("MESHSTACK_CLIENT_ID", "replicator"),
        ("MESHSTACK_CLIENT_SECRET", "example-client-secret"),
    ];
    let out = bin()
        .args(["config", "check", "--config", "config/example.dhall"])
        .envs(vars)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("OK") && stdout.contains("aws.aws-meshcloud"),
        "{stdout}"
    );
    assert!(
        stderr.is_empty(),
        "the example imports every secret from the environment: {stderr}"
    );
    for (_, value) in vars.iter().skip(1) {
        assert!(!stdout.contains(value), "secret {value} printed");
    }

    // The running service's view: every unset import fails the check.
    let out = bin()
        .args([
            "config",
            "check",
            "--require-secrets",
            "--config",
            "config/example.dhall",
        ])
        .envs(
            vars.iter()
                .filter(|(k, _)| *k != "AWS_SSO_SCIM_TOKEN")
                .copied(),
        )
        .env_remove("AWS_SSO_SCIM_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("AWS_SSO_SCIM_TOKEN"),
        "{}",
        text(&out).1
    );
}

/// In a pull request, where no production secret is: `config check` passes a config whose
/// `env:` imports are unset, and lists them all at once with the fields they feed;
/// `--require-secrets` fails naming every one. `AWS_REPLICATOR_CONFIG` names the file.
#[test]
fn config_check_passes_without_secrets_and_lists_what_the_service_needs() {
    let names = [
        "MESHFED_ACCESS_KEY_ID",
        "MESHFED_SECRET_ACCESS_KEY",
        "MESHFED_EXTERNAL_ID",
        "AWS_SSO_SCIM_TOKEN",
        "MESHSTACK_CLIENT_ID",
        "MESHSTACK_CLIENT_SECRET",
    ];
    let without = |args: &[&str]| {
        let mut cmd = bin();
        cmd.args(["config", "check"]).args(args);
        for name in names {
            cmd.env_remove(name);
        }
        cmd.env("AWS_REPLICATOR_CONFIG", "config/example.dhall");
        cmd.output().unwrap()
    };
    let out = without(&[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("config/example.dhall: OK"), "{stdout}");
    assert!(
        stdout.contains("The running service will need these environment variables:"),
        "{stdout}"
    );
    for name in names {
        assert_eq!(stdout.matches(name).count(), 1, "{name} once: {stdout}");
    }
    assert!(
        stdout.contains("AWS_SSO_SCIM_TOKEN (for iam-configuration.aws-sso.sso-access-token)"),
        "{stdout}"
    );
    assert!(!stdout.contains("placeholder-for"), "{stdout}");

    let out = without(&["--require-secrets"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for name in names {
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    assert!(stderr.contains("6 environment variable(s)"), "{stderr}");

    // A mistake beside the unset secrets is still found.
    let dir = tempfile::tempdir().unwrap();
    let types = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/types/package.dhall");
    let broken = std::fs::read_to_string("config/example.dhall")
        .unwrap()
        .replace("./types/package.dhall", types.to_str().unwrap())
        .replace("\"eu-central-1\"", "\"\"");
    let file = dir.path().join("broken.dhall");
    std::fs::write(&file, broken).unwrap();
    let out = without(&["--config", file.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("aws.region"), "{stderr}");
}

/// A Dhall syntax error says where (file, line, column), what stands there and what was
/// expected, in words rather than the grammar's rule names.
#[test]
fn a_dhall_syntax_error_says_where_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    for (source, says) in [
        (
            "{ a = [ 1, 2 }\n",
            "broken.dhall:1:14: syntax error at `}`: expected a `,` or a closing bracket",
        ),
        (
            "{ a = \"abc }\n",
            "broken.dhall:1:13: syntax error at the end of the file: expected the closing `\"` of a text",
        ),
        (
            "{ a = 1,, }\n",
            "broken.dhall:1:9: syntax error at `, }`: expected a field name",
        ),
        (
            "let x = 1\n",
            "broken.dhall:2:1: syntax error at the end of the file: expected",
        ),
    ] {
        let file = dir.path().join("broken.dhall");
        std::fs::write(&file, source).unwrap();
        let out = bin()
            .args(["config", "check", "--config", file.to_str().unwrap()])
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr.contains(says), "{source}: {stderr}");
        assert!(
            !stderr.contains("primitive_expression") && !stderr.contains("import_alt"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// A config file that is not there is said once, with the fix; so is any other missing file.
#[test]
fn a_missing_config_file_is_said_once() {
    for args in [
        &[
            "plan",
            "--config",
            "config/demo.dhall",
            "--snapshot",
            "no/such.json",
            "--observed",
            "config/sample-observed.json",
        ][..],
        &[
            "plan",
            "--config",
            "config/demo.dhall",
            "--snapshot",
            "config/sample-snapshot.json",
            "--observed",
            "no/such.json",
        ][..],
        &[
            "sync",
            "--config",
            "config/demo.dhall",
            "--snapshot",
            "config/sample-snapshot.json",
            "--plan",
            "no/such.json",
        ][..],
        &["emulator", "--state", "no/such.json"][..],
    ] {
        let out = bin().args(args).output().unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(
            stderr.matches("No such file").count(),
            1,
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("no/such.json"), "{stderr}");
    }

    let out = bin()
        .args(["config", "check", "--config", "no/such/config.dhall"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr.trim(),
        "error: cannot read no/such/config.dhall: no such file; check the path given to --config"
    );
}

/// The demo config pointed at a fixture, written next to the shipped one's imports.
fn fixture_config(dir: &Path, base_url: &str) -> std::path::PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = dir.join("config.dhall");
    std::fs::write(
        &path,
        format!(
            "let base = {root}/config/demo.dhall\n\
             let MS = {root}/config/types/MeshStack.dhall Text\n\
             in base // {{ meshstack = base.meshstack // {{ base-url = \"{base_url}\", page-size = 3, \
             credentials = MS.Credentials.api-key {{ client-id = \"replicator\", client-secret = env:FIXTURE_SECRET as Text }} }} }}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn snapshot_then_plan_against_the_meshstack_api_without_leaking_the_secret() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sample = Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap();
    let auth = AuthMode::ApiKey {
        client_id: "replicator".into(),
        client_secret: "fixture-s3cret-value".into(),
    };
    let fx = runtime.block_on(Fixture::start(
        &sample,
        &[("aws.other", "acme", "web")],
        auth,
        Script::default(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = fixture_config(dir.path(), &fx.base_url);
    let snapshot_file = dir.path().join("snapshot.json");

    let out = bin()
        .args(["snapshot", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&snapshot_file)
        .env("FIXTURE_SECRET", "fixture-s3cret-value")
        .env("AWS_REPLICATOR_LOG", "debug")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let written = Snapshot::from_file(&snapshot_file).unwrap();
    assert_eq!(written.projects.len(), sample.projects.len());
    assert_eq!(
        written.tenants.len(),
        sample.tenants.len(),
        "the other platform's tenant is left out"
    );

    // Planning straight from the API gives the same plan as planning from the file.
    let from_api = bin()
        .args(["plan", "--json", "--config"])
        .arg(&config)
        .args(["--observed", "config/sample-observed.json"])
        .env("FIXTURE_SECRET", "fixture-s3cret-value")
        .env("AWS_REPLICATOR_LOG", "debug")
        .output()
        .unwrap();
    let from_file = bin()
        .args(["plan", "--json", "--config"])
        .arg(&config)
        .arg("--snapshot")
        .arg(&snapshot_file)
        .args(["--observed", "config/sample-observed.json"])
        .env("FIXTURE_SECRET", "fixture-s3cret-value")
        .output()
        .unwrap();
    assert!(from_api.status.success(), "{}", text(&from_api).1);
    assert_eq!(text(&from_api).0, text(&from_file).0);

    for output in [stdout, stderr, text(&from_api).0, text(&from_api).1] {
        assert!(
            !output.contains("fixture-s3cret-value"),
            "secret leaked:\n{output}"
        );
        assert!(
            !output.contains("token-1"),
            "bearer token leaked:\n{output}"
        );
    }
}

/// The Dockerfile's `docker run` example passes exactly the variables the example config
/// imports.
#[test]
fn the_docker_run_example_passes_what_the_example_config_imports() {
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    let mut passed: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-e")
        .map(|w| w[1])
        .collect();
    passed.sort_unstable();
    let example = std::fs::read_to_string("config/example.dhall").unwrap();
    let mut imported: Vec<&str> = example
        .match_indices("env:")
        .map(|(i, _)| {
            example[i + 4..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap()
        })
        .collect();
    imported.sort_unstable();
    imported.dedup();
    assert_eq!(passed, imported);
}

/// `emulator --state` takes its own state or an observed-state file (`plan --observed`), and
/// names both formats when a file is neither.
#[test]
fn the_emulator_names_the_state_formats_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"users": 3}"#).unwrap();
    let out = bin()
        .args(["emulator", "--state"])
        .arg(&bad)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("GET /_emulator/state") && stderr.contains("plan --observed"),
        "{stderr}"
    );

    // An observed state is taken: the emulator starts (and is stopped by its PID).
    let mut child = bin()
        .args(["emulator", "--state", "config/sample-observed.json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The banner, up to its last line: which variable points the SDK at it (only sso-admin's:
    // AWS_ENDPOINT_URL would send STS there too, and STS is not emulated).
    let stdout = child.stdout.take().unwrap();
    let mut banner = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let Ok(line) = line else { break };
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    assert!(
        banner.starts_with("AWS IAM Identity Center emulator"),
        "{status:?}: {banner}{err}"
    );
    assert!(
        banner.contains("export AWS_ENDPOINT_URL_SSO_ADMIN=http://127.0.0.1:")
            && banner.contains("not AWS_ENDPOINT_URL,")
            && banner.contains("iam-configuration.aws-sso.scim-endpoint"),
        "{banner}"
    );
}

/// The Dockerfile's default command is one the binary understands; the types it copies exist.
#[test]
fn the_container_command_parses() {
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    let cmd = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("a CMD line");
    let args: Vec<String> = serde_json::from_str(cmd).unwrap();
    assert_eq!(args[0], "serve");
    let out = bin().args(&args).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("/etc/aws-replicator/config.dhall") && !stderr.contains("Usage:"),
        "{stderr}"
    );
    assert!(dockerfile.contains("COPY config/types /etc/aws-replicator/types"));
    assert!(std::path::Path::new("config/types/package.dhall").exists());
}
