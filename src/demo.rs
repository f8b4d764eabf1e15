//! `aws-replicator demo`: the whole authorization sync on the shipped sample, against the
//! emulator of AWS IAM Identity Center on loopback, through the real SCIM and sso-admin clients.
//!
//! It loads the shipped demo configuration (embedded in the binary), reads the sample meshStack
//! snapshot, plans against a partly synced directory, applies, shows that nothing is left to
//! do, then changes the directory behind the replicator's back and shows the next sync
//! repairing it.

use crate::audit::Audit;
use crate::config::Config;
use crate::desired::{Scope, Settings, desired};
use crate::directory::{AccountAssignments, IdentityStore, observe};
use crate::emulator::store::State;
use crate::emulator::{Emulator, EmulatorConfig};
use crate::model::{GroupId, GroupName, UserId};
use crate::observed::Observed;
use crate::plan::{Plan, plan};
use crate::retry::RetryPolicy;
use crate::snapshot::Snapshot;
use crate::sso::admin::{Polling, SsoAdmin};
use crate::sso::scim::ScimClient;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

const FILES: [(&str, &str); 10] = [
    ("demo.dhall", include_str!("../config/demo.dhall")),
    (
        "types/package.dhall",
        include_str!("../config/types/package.dhall"),
    ),
    ("types/Aws.dhall", include_str!("../config/types/Aws.dhall")),
    (
        "types/AwsSso.dhall",
        include_str!("../config/types/AwsSso.dhall"),
    ),
    (
        "types/MeshIdb.dhall",
        include_str!("../config/types/MeshIdb.dhall"),
    ),
    (
        "types/Identifiers.dhall",
        include_str!("../config/types/Identifiers.dhall"),
    ),
    (
        "types/MeshStack.dhall",
        include_str!("../config/types/MeshStack.dhall"),
    ),
    (
        "types/Replicator.dhall",
        include_str!("../config/types/Replicator.dhall"),
    ),
    (
        "types/LandingZone.dhall",
        include_str!("../config/types/LandingZone.dhall"),
    ),
    (
        "types/Config.dhall",
        include_str!("../config/types/Config.dhall"),
    ),
];
const SNAPSHOT: &str = include_str!("../config/sample-snapshot.json");
const OBSERVED: &str = include_str!("../config/sample-observed.json");

/// The embedded demo configuration, written to a temporary folder so its imports resolve.
pub fn config() -> anyhow::Result<Config> {
    let dir = std::env::temp_dir().join(format!("aws-replicator-demo-{}", std::process::id()));
    for (name, text) in FILES {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("has a parent"))
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|source| unwritable(&path, source))?;
    }
    let config = Config::load(&dir.join("demo.dhall"));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(config?)
}

/// A container with a read-only root and no volume at `/tmp` answers "Read-only file system"
/// or "Permission denied", which names neither the path nor what to do.
fn unwritable(path: &std::path::Path, source: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "the demo writes its configuration to {} and cannot ({source}): it needs a writable \
         temporary folder, TMPDIR or else /tmp; mount one at /tmp (an emptyDir in Kubernetes, \
         `--tmpfs /tmp` with docker or podman) or point TMPDIR at one",
        path.display()
    )
}

pub async fn run(out: &mut impl Write) -> anyhow::Result<()> {
    let config = config()?;
    let sso = config.require_sso()?;
    let snapshot = Snapshot::from_json(SNAPSHOT, "sample-snapshot.json")?;
    let observed: Observed = serde_json::from_str(OBSERVED)?;

    // AWS IAM Identity Center, emulated on loopback, reached over SCIM and sso-admin exactly as
    // AWS would be.
    let emulator = Emulator::new(EmulatorConfig {
        instance_arn: sso.instance_arn.clone(),
        operation_delay: Duration::from_millis(30),
        rate_limit: None,
        ..EmulatorConfig::default()
    });
    emulator.load(State::from_observed(&observed));
    let running = emulator.serve(0).await?;
    let endpoint = url::Url::parse(&running.scim_endpoint())?;
    let scim = ScimClient::new(
        &endpoint,
        emulator.config().token.clone(),
        200.0,
        RetryPolicy::aws(),
    )?;
    let sdk = aws_sdk_ssoadmin::Config::builder()
        .behavior_version(aws_sdk_ssoadmin::config::BehaviorVersion::latest())
        .region(aws_sdk_ssoadmin::config::Region::new(
            config.aws.region.clone(),
        ))
        .endpoint_url(running.endpoint())
        .credentials_provider(aws_sdk_ssoadmin::config::Credentials::new(
            "demo", "demo", None, None, "demo",
        ))
        .build();
    let polling = Polling {
        first: Duration::from_millis(20),
        max: Duration::from_millis(100),
        ..Polling::default()
    };
    let admin = SsoAdmin::new(
        aws_sdk_ssoadmin::Client::from_conf(sdk),
        &sso.instance_arn,
        200.0,
        polling,
    );
    let desired = desired(&snapshot, &Settings::new(&config, sso), &Scope::All);
    let settings = crate::sso::sync_settings(&config);

    writeln!(
        out,
        "aws-replicator demo: meshStack sample with {} projects, {} users and {} bindings;\n\
         AWS IAM Identity Center emulated at {} (SCIM and sso-admin) with {} groups.\n",
        snapshot.projects.len(),
        snapshot.users.len(),
        snapshot.bindings.len(),
        running.endpoint(),
        observed.groups.len()
    )?;

    let first = sync(out, "1. First sync", &scim, &admin, &desired, settings).await?;
    let again = plan(
        &desired,
        &observe(&scim, &admin, &desired, settings.reads).await?,
    );
    writeln!(out, "2. Drift after the sync: {}\n", drift(&again))?;

    // Behind the replicator's back, with the SCIM token: a stranger added to an admin group by
    // hand, a legitimate member removed.
    let group = GroupName::from("mst-acme.web.meshstack-project-admin");
    let state = emulator.dump();
    let user = |name: &str| {
        state
            .users
            .iter()
            .find(|u| u.user_name == name)
            .map(|u| UserId::from(u.id.clone()))
            .expect("demo user exists")
    };
    let group_id = state
        .groups
        .iter()
        .find(|g| g.display_name == group.as_str())
        .map(|g| GroupId::from(g.id.clone()))
        .expect("demo group exists");
    scim.add_members(&group_id, &[user("mallory@other.example")])
        .await?;
    scim.remove_members(&group_id, &[user("alice@acme.example")])
        .await?;
    writeln!(
        out,
        "3. By hand, in AWS: + mallory@other.example and - alice@acme.example in {group}\n"
    )?;

    sync(
        out,
        "4. Next sync repairs it",
        &scim,
        &admin,
        &desired,
        settings,
    )
    .await?;
    let last = plan(
        &desired,
        &observe(&scim, &admin, &desired, settings.reads).await?,
    );
    writeln!(out, "5. Drift after the repair: {}", drift(&last))?;
    let counts = emulator.counts();
    writeln!(
        out,
        "\nAPI calls made: {} SCIM, {} sso-admin.",
        counts.get("scim").copied().unwrap_or(0),
        counts.get("sso-admin").copied().unwrap_or(0)
    )?;
    anyhow::ensure!(
        last.ops.is_empty() && !first.ops.is_empty(),
        "the demo did not converge"
    );
    Ok(())
}

async fn sync(
    out: &mut impl Write,
    title: &str,
    identity: &impl IdentityStore,
    assignments: &impl AccountAssignments,
    desired: &crate::desired::Desired,
    settings: crate::sync::Settings,
) -> anyhow::Result<Plan> {
    let mut shown: std::io::Result<()> = Ok(());
    let show = |plan: &Plan| {
        shown = (|| {
            writeln!(out, "{title}: plan\n")?;
            for line in plan.render_text().lines() {
                if line.is_empty() {
                    writeln!(out)?;
                } else {
                    writeln!(out, "    {line}")?;
                }
            }
            Ok(())
        })();
    };
    let result = crate::sync::sync(
        desired,
        identity,
        assignments,
        settings,
        &Audit::discard(),
        show,
        &|_| {},
    )
    .await?;
    shown?;
    let report = &result.report;
    writeln!(
        out,
        "\n    applied {} operation(s), {} failed; {} SCIM and {} sso-admin call(s) (estimated {} and {})\n",
        report.applied,
        report.failed,
        result.calls.scim,
        result.calls.sso_admin,
        result.calls.scim_estimate,
        result.calls.sso_admin_estimate,
    )?;
    anyhow::ensure!(
        result.is_success(),
        "the demo could not apply its plan: {}",
        report.problems(&result.plan).collect::<Vec<_>>().join("; ")
    );
    Ok(result.plan)
}

fn drift(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut text = String::new();
    let _ = write!(
        text,
        "{} operation(s) pending (groups {}, members {}, assignments {})",
        plan.ops.len(),
        s.groups_to_create + s.groups_to_rename + s.groups_to_delete,
        s.members_to_add + s.members_to_remove,
        s.assignments_to_create + s.assignments_to_delete
    );
    text
}
