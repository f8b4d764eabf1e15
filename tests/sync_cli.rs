//! `aws-replicator sync` and `plan` as a user runs them, end to end: the binary reads a config
//! and a snapshot, assumes the management-account role through STS (moto), and syncs AWS IAM
//! Identity Center (the emulator: SCIM and sso-admin over one store).

mod common;

use aws_replicator::emulator::{Family, SEED_POLICY};
use common::cli::{assert_synced_but_held, setup};
use std::collections::BTreeSet;

const FAST: &str = "T.Replicator::{ rate-limits = { scim = 20.0, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 } }";
const FAST_EXTENDED: &str = "T.Replicator::{ rate-limits = { scim = 20.0, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 }, sso-admin = { delete-assignments = True, list-assignments-for-principal = True, list-assignment-status = False, max-in-flight = 10 } }";
const SNAPSHOT: &str = "config/sample-snapshot.json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_converges_is_idempotent_repairs_drift_and_renames() {
    let s = setup().await;
    // The emulator answers as AWS answers the seed's management role: only the three sso
    // actions of its policy, AccessDeniedException for anything else.
    s.running.emulator.set_sso_admin_policy(Some(SEED_POLICY));
    common::sample::provision_organization(&s.running.emulator);
    let config = s.config("seed-policy.dhall", "%s.%s.%4\\$s", FAST);

    // From an empty directory: everything is created, audited, and nothing is left.
    let (out, stdout, stderr) = s.sync(&config, SNAPSHOT);
    assert_synced_but_held(&out, &stdout, &stderr);
    assert!(stdout.contains("0 failed, 0 skipped"), "{stdout}");
    assert!(stdout.contains("0 change(s) left"), "{stdout}");
    let audit: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each write: its intent before it, its outcome after it.
    let outcomes: Vec<_> = audit.iter().filter(|l| l["phase"] == "outcome").collect();
    assert!(!outcomes.is_empty() && outcomes.iter().all(|l| l["outcome"] == "ok"));
    assert_eq!(audit.len(), 2 * outcomes.len());
    assert!(!stdout.contains("emulator-token") && !stderr.contains("emulator-token"));
    // acme.web and globex.shop, three roles each, one permission set per role (acme.data and
    // globex.legacy are held, initech.ml has no tenant).
    let assignments = s.running.emulator.dump().assignments.len();
    assert_eq!(assignments, 6);

    // A second sync writes nothing; `plan` agrees there is nothing to do.
    let mut called = sso_admin_calls(&s);
    s.running.emulator.clear_requests();
    let (out, stdout, stderr) = s.sync(&config, SNAPSHOT);
    assert_synced_but_held(&out, &stdout, &stderr);
    assert_eq!(s.writes(), 0, "a second sync only reads");
    let plan = s.run(&[
        "plan",
        "--detailed-exitcode",
        "--config",
        config.to_str().unwrap(),
        "--snapshot",
        SNAPSHOT,
    ]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );

    // Drift behind its back: a stranger added to an admin group is removed again.
    let mallory = s.running.emulator.add_user("mallory@other.example");
    let state = s.running.emulator.dump();
    let group = state
        .groups
        .iter()
        .find(|g| g.display_name == "mst-acme.web.meshstack-project-admin")
        .unwrap();
    let mut changed = state.clone();
    changed
        .groups
        .iter_mut()
        .find(|g| g.id == group.id)
        .unwrap()
        .members
        .insert(mallory.clone());
    s.running.emulator.load(changed);
    let (out, stdout, stderr) = s.sync(&config, SNAPSHOT);
    assert_synced_but_held(&out, &stdout, &stderr);
    assert!(
        stdout.contains("- member mallory@other.example"),
        "{stdout}"
    );
    let after = s.running.emulator.dump();
    assert!(!after.groups.iter().any(|g| g.members.contains(&mallory)));

    // A new group-name-pattern renames, and the assignments stay as they are.
    let renamed = s.config("renamed.dhall", "%2\\$s.%1\\$s.%4\\$s", FAST);
    let (out, stdout, stderr) = s.sync(&renamed, SNAPSHOT);
    assert_synced_but_held(&out, &stdout, &stderr);
    assert!(stdout.contains("~ group"), "{stdout}");
    assert!(
        !stdout.contains("+ group") && !stdout.contains("- group"),
        "{stdout}"
    );
    let after = s.running.emulator.dump();
    assert_eq!(after.assignments.len(), assignments);
    assert!(
        after
            .groups
            .iter()
            .any(|g| g.display_name == "mst-web.acme.meshstack-project-admin")
    );

    // The default configuration never called outside the seed's policy: every sso-admin
    // request of the whole scenario (denied ones are logged too) is one of its three actions.
    called.extend(sso_admin_calls(&s));
    let seed: BTreeSet<String> = SEED_POLICY.iter().map(|s| s.to_string()).collect();
    assert!(called.is_subset(&seed), "{called:?} beyond {seed:?}");
    assert!(called.contains("CreateAccountAssignment"), "{called:?}");
}

/// The sso-admin operations in the emulator's log (refused ones too).
fn sso_admin_calls(s: &common::cli::Setup) -> BTreeSet<String> {
    s.running
        .emulator
        .requests()
        .iter()
        .filter(|r| r.family == Family::SsoAdmin)
        .map(|r| r.endpoint.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_removed_from_meshstack_loses_its_groups_and_assignments() {
    let s = setup().await;
    let config = s.config("extended.dhall", "%s.%s.%4\\$s", FAST_EXTENDED);
    // Exactly what `bootstrap` grants for this config (the seed's actions widened by
    // `delete-assignments` and `list-assignments-for-principal`).
    let allowed = common::policy::operations(&config, "management", "sso");
    assert_eq!(allowed.len(), 6, "{allowed:?}");
    s.running.emulator.set_sso_admin_policy(Some(allowed));
    common::sample::provision_organization(&s.running.emulator);
    let (out, stdout, stderr) = s.sync(&config, SNAPSHOT);
    assert_synced_but_held(&out, &stdout, &stderr);
    let before = s.running.emulator.dump();

    let mut snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SNAPSHOT).unwrap()).unwrap();
    snapshot["projects"]
        .as_array_mut()
        .unwrap()
        .retain(|p| !(p["workspace"] == "acme" && p["identifier"] == "web"));
    let smaller = s.dir.path().join("without-acme-web.json");
    std::fs::write(&smaller, snapshot.to_string()).unwrap();

    let (out, stdout, stderr) = s.sync(&config, smaller.to_str().unwrap());
    assert_synced_but_held(&out, &stdout, &stderr);
    let after = s.running.emulator.dump();
    let web: Vec<_> = before
        .groups
        .iter()
        .filter(|g| g.display_name.starts_with("mst-acme.web."))
        .collect();
    assert_eq!(web.len(), 3, "acme.web's three role groups");
    for g in &web {
        assert!(
            !after.groups.iter().any(|h| h.id == g.id),
            "{} is gone",
            g.display_name
        );
        assert!(
            !after.assignments.iter().any(|a| a.principal_id == g.id),
            "no assignment of {} is left",
            g.display_name
        );
    }
    let others = |state: &aws_replicator::emulator::store::State| {
        state
            .groups
            .iter()
            .filter(|g| {
                g.display_name.starts_with("mst-") && !g.display_name.starts_with("mst-acme.web.")
            })
            .count()
    };
    assert_eq!(
        others(&after),
        others(&before),
        "other projects keep their groups"
    );
}

/// meshStack answering with no projects at all looks like "take everyone's access away": the
/// deletion guard refuses it and changes nothing, unless the run is told it is meant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deletion_guard_refuses_a_plan_that_removes_too_much() {
    let s = setup().await;
    let guarded = "T.Replicator::{ rate-limits = { scim = 20.0, sso-admin = 20.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 }, deletion-guard = { max-share = 0.2, max-count = 2 } }";
    let config = s.config("guarded.dhall", "%s.%s.%4\\$s", guarded);
    let (out, stdout, stderr) = s.sync(&config, SNAPSHOT);
    assert_synced_but_held(&out, &stdout, &stderr);

    let mut snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SNAPSHOT).unwrap()).unwrap();
    snapshot["projects"] = serde_json::json!([]);
    snapshot["bindings"] = serde_json::json!([]);
    let empty = s.dir.path().join("empty.json");
    std::fs::write(&empty, snapshot.to_string()).unwrap();
    let before = s.running.emulator.dump();
    s.running.emulator.clear_requests();
    let (out, stdout, _) = s.sync(&config, empty.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Refused, nothing applied"), "{stdout}");
    assert!(stdout.contains("--allow-mass-delete"), "{stdout}");
    assert_eq!(s.writes(), 0);
    assert_eq!(s.running.emulator.dump(), before);

    let (out, stdout, stderr) =
        s.sync_with(&config, empty.to_str().unwrap(), &["--allow-mass-delete"]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(s.writes() > 0);
}

/// A full sync with debug logs from every crate (STS, SCIM, sso-admin, the executor, the audit
/// trail) prints no secret of the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_output_even_with_debug_logs() {
    let s = setup().await;
    let config = s.config("debug.dhall", "%s.%s.%4\\$s", FAST);
    let out = s
        .command()
        .args([
            "sync",
            "--json",
            "--config",
            config.to_str().unwrap(),
            "--snapshot",
            SNAPSHOT,
        ])
        .env("AWS_REPLICATOR_LOG", "debug")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("DEBUG"), "debug logs were on");
    for secret in common::cli::SECRETS {
        assert!(!stdout.contains(secret), "{secret} on stdout");
        let leak = stderr.lines().find(|l| l.contains(secret));
        assert!(leak.is_none(), "{secret} on stderr: {leak:?}");
    }
}

/// On a small estate `max-count` lets any share through: a snapshot without bindings would
/// take every membership away. Removing every managed membership is refused whatever the
/// limits say, and applied only when the run is told it is meant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_every_membership_is_refused_even_below_max_count() {
    let s = setup().await;
    let config = s.config("default-guard.dhall", "%s.%s.%4\\$s", FAST);
    let (out, stdout, stderr) = s.sync(&config, SNAPSHOT);
    assert_synced_but_held(&out, &stdout, &stderr);
    let memberships = || -> usize {
        let state = s.running.emulator.dump();
        state.groups.iter().map(|g| g.members.len()).sum()
    };
    let members = memberships();
    assert!(members > 0 && members < 50, "below the default max-count");

    let mut snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SNAPSHOT).unwrap()).unwrap();
    snapshot["bindings"] = serde_json::json!([]);
    let unbound = s.dir.path().join("unbound.json");
    std::fs::write(&unbound, snapshot.to_string()).unwrap();
    let before = s.running.emulator.dump();
    s.running.emulator.clear_requests();
    let (out, stdout, stderr) = s.sync(&config, unbound.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "removes {members} of {members} managed memberships, every one of them"
        )),
        "{stdout}"
    );
    assert_eq!(s.writes(), 0);
    assert_eq!(s.running.emulator.dump(), before);

    // The same answer in a run scoped to the workspace that holds the memberships: the same
    // rule, measured against the scope.
    let globex_only = |snap: &mut serde_json::Value| {
        snap["bindings"]
            .as_array_mut()
            .unwrap()
            .retain(|b| b["workspace"] == "globex");
    };
    let mut only_globex: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SNAPSHOT).unwrap()).unwrap();
    globex_only(&mut only_globex);
    let bound = s.dir.path().join("only-globex.json");
    std::fs::write(&bound, only_globex.to_string()).unwrap();
    let (out, stdout, stderr) =
        s.sync_with(&config, bound.to_str().unwrap(), &["--allow-mass-delete"]);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let before = s.running.emulator.dump();
    let (out, stdout, stderr) = s.sync_with(
        &config,
        unbound.to_str().unwrap(),
        &["--workspace", "globex"],
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("every one of them"), "{stdout}");
    assert_eq!(s.running.emulator.dump(), before);

    let (out, stdout, stderr) =
        s.sync_with(&config, unbound.to_str().unwrap(), &["--allow-mass-delete"]);
    // globex.legacy's tenant still has no account id: held, exit 3.
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert_eq!(memberships(), 0);
}

/// The reproduced case: after a good sync, meshStack answers the second page of users with a
/// well-formed page that is short (no items, no next link, totals unchanged). The sync fails
/// and AWS is not written to; before, it removed the memberships of the users on that page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_meshstack_page_fails_the_sync_and_writes_nothing() {
    use common::meshstack_fixture::{AuthMode, Fixture, Script};
    let s = setup().await;
    let sample =
        aws_replicator::snapshot::Snapshot::from_file(std::path::Path::new(SNAPSHOT)).unwrap();
    let auth = AuthMode::ApiKey {
        client_id: "demo".into(),
        client_secret: "demo-secret".into(),
    };
    let fx = Fixture::start(&sample, &[], auth, Script::default()).await;
    let config = s.config("meshstack.dhall", "%s.%s.%4\\$s", FAST);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "base-url = \"https://meshstack.example.com\"",
        &format!("base-url = \"{}\", page-size = 2", fx.base_url),
    );
    std::fs::write(&config, text).unwrap();
    let sync = |s: &common::cli::Setup| {
        let out = s.run(&["sync", "--config", config.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out, stdout, stderr)
    };
    let (out, stdout, stderr) = sync(&s);
    assert_synced_but_held(&out, &stdout, &stderr);
    let before = s.running.emulator.dump();

    fx.script(|script| script.short_pages = vec!["meshusers?size=2&page=1".into()]);
    s.running.emulator.clear_requests();
    let (out, stdout, stderr) = sync(&s);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("is not complete"), "{stderr}");
    assert_eq!(s.writes(), 0);
    assert_eq!(s.running.emulator.dump(), before);
}

fn stdio(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Terraform's saved plan: `plan --out` writes it, `sync --plan` applies exactly its
/// operations while what they touch reads as it did: a user or group the plan does not touch
/// never refuses it; a touched group that changed in AWS, or a touched project whose bindings
/// changed in meshStack, does (exit 1, nothing written, the group or project named); so does a
/// plan made by another format version or for another platform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_applied_as_reviewed_and_refused_after_drift() {
    let s = setup().await;
    let config = s.config("saved.dhall", "%s.%s.%4\\$s", FAST);
    let config = config.to_str().unwrap();
    let plan_to = |file: &std::path::Path, snapshot: &str| {
        let out = s.run(&[
            "plan",
            "--config",
            config,
            "--snapshot",
            snapshot,
            "--out",
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{:?}", stdio(&out));
    };
    let sync_plan = |file: &std::path::Path| {
        let out = s.run(&[
            "sync",
            "--config",
            config,
            "--snapshot",
            SNAPSHOT,
            "--plan",
            file.to_str().unwrap(),
        ]);
        let (stdout, stderr) = stdio(&out);
        (out, stdout, stderr)
    };
    let refused = |file: &std::path::Path, names: &str| {
        let before = s.running.emulator.dump();
        s.running.emulator.clear_requests();
        let (out, stdout, stderr) = sync_plan(file);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
        assert!(
            stderr.contains("changed since the plan was made")
                && stderr.contains(names)
                && stderr.contains("aws-replicator plan --out"),
            "{stderr}"
        );
        assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
        assert_eq!(s.writes(), 0);
        assert_eq!(s.running.emulator.dump(), before);
    };

    // A binding granted when the plan was made is gone from meshStack when it is applied:
    // the plan is refused, naming the project, and the grant is not made.
    let granting = s.dir.path().join("granting.json");
    let more = s.dir.path().join("more.json");
    std::fs::copy(SNAPSHOT, &more).unwrap();
    common::sample::alice_reads_shop(&more);
    plan_to(&granting, more.to_str().unwrap());
    refused(
        &granting,
        "meshStack changed since the plan was made for 1 project(s) it touches: globex.shop",
    );

    // Someone makes a group under a name the plan creates: refused, naming the group.
    let squatted = s.dir.path().join("squatted.json");
    plan_to(&squatted, SNAPSHOT);
    let squat = s
        .running
        .emulator
        .add_group("mst-acme.web.meshstack-project-admin");
    refused(
        &squatted,
        "group(s) it touches: mst-acme.web.meshstack-project-admin",
    );
    let mut state = s.running.emulator.dump();
    state.groups.retain(|g| g.id != squat);
    s.running.emulator.load(state);

    // Someone else's group and a user the IdP added, neither touched: the plan is applied,
    // exactly its operations, and then nothing is left.
    let fresh = s.dir.path().join("fresh.json");
    plan_to(&fresh, SNAPSHOT);
    s.running.emulator.add_group("someone-elses-group");
    s.running.emulator.add_user("newcomer@acme.example");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fresh).unwrap()).unwrap();
    let ops = saved["ops"].as_array().unwrap().len();
    assert!(ops > 0);
    let (out, stdout, stderr) = sync_plan(&fresh);
    assert_synced_but_held(&out, &stdout, &stderr);
    assert!(
        stdout.contains(&format!("Applied {ops} change(s), 0 failed")),
        "{stdout}"
    );
    let check = s.run(&[
        "plan",
        "--detailed-exitcode",
        "--config",
        config,
        "--snapshot",
        SNAPSHOT,
    ]);
    assert_eq!(check.status.code(), Some(0), "{:?}", stdio(&check));

    // Applied once, the same plan is stale: AWS now holds what it created.
    refused(&fresh, "mst-acme.web.meshstack-project-admin");

    // Another format version or platform is refused before anything is read.
    for (field, value, says) in [
        ("format_version", serde_json::json!(99), "format_version 99"),
        ("platform", serde_json::json!("other"), "platform other"),
    ] {
        let mut changed = saved.clone();
        changed[field] = value;
        let file = s.dir.path().join(format!("{field}.json"));
        std::fs::write(&file, changed.to_string()).unwrap();
        let (out, _, stderr) = sync_plan(&file);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// `--project` and `--workspace` take the webhook's scoped path: a scoped sync creates and
/// changes the groups of its projects only, and a project meshStack lacks fails the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_sync_changes_only_its_projects() {
    let s = setup().await;
    let config = s.config("scoped.dhall", "%s.%s.%4\\$s", FAST);
    let ours = |prefix: &str| {
        s.running
            .emulator
            .dump()
            .groups
            .iter()
            .filter(|g| g.display_name.starts_with("mst-"))
            .all(|g| g.display_name.starts_with(prefix))
    };

    // A scoped plan says which projects it covers, and so does its saved file.
    let file = s.dir.path().join("scoped-plan.json");
    let out = s.run(&[
        "plan",
        "--config",
        config.to_str().unwrap(),
        "--snapshot",
        SNAPSHOT,
        "--project",
        "acme.web",
        "--out",
        file.to_str().unwrap(),
    ]);
    let (stdout, stderr) = stdio(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("mst-acme.web."), "{stdout}");
    assert!(!stdout.contains("mst-globex."), "{stdout}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        saved["scope"],
        serde_json::json!({"only": {"projects": [{"workspace": "acme", "project": "web"}]}})
    );

    // acme.web alone is neither held nor waiting: exit 0, and only its groups exist.
    let (out, stdout, stderr) = s.sync_with(&config, SNAPSHOT, &["--project", "acme.web"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        ours("mst-acme.web."),
        "{:?}",
        s.running.emulator.dump().groups
    );
    assert!(!s.running.emulator.dump().assignments.is_empty());

    // A workspace: globex.shop is synced, globex.legacy is held (exit 3); acme stays.
    let (out, stdout, stderr) = s.sync_with(&config, SNAPSHOT, &["--workspace", "globex"]);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("globex.legacy"), "{stderr}");
    assert!(!stderr.contains("acme.data"), "{stderr}");
    let names: Vec<String> = s
        .running
        .emulator
        .dump()
        .groups
        .iter()
        .map(|g| g.display_name.clone())
        .filter(|n| n.starts_with("mst-"))
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("mst-globex.shop.")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("mst-acme.web.")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("mst-initech.")),
        "{names:?}"
    );

    // A project the snapshot lacks fails the run; a malformed one is refused by the parser.
    s.running.emulator.clear_requests();
    let (out, _, stderr) = s.sync_with(&config, SNAPSHOT, &["--project", "acme.nope"]);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has no project acme.nope"), "{stderr}");
    assert_eq!(s.writes(), 0);
    let (out, _, stderr) = s.sync_with(&config, SNAPSHOT, &["--project", "acme"]);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("workspace.project"), "{stderr}");
}
