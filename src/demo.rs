//! `aws-replicator demo`: the whole authorization sync on the shipped sample, in memory.
//!
//! It loads the shipped demo configuration (embedded in the binary), reads the sample meshStack
//! snapshot, plans against a partly synced directory, applies, shows that nothing is left to
//! do, then changes the directory behind the replicator's back and shows the next sync
//! repairing it.

use crate::apply::apply;
use crate::config::Config;
use crate::desired::{Scope, Settings, desired};
use crate::directory::{World, observe};
use crate::model::{GroupName, UserName};
use crate::observed::Observed;
use crate::plan::{Plan, plan};
use crate::snapshot::Snapshot;
use std::fmt::Write as _;
use std::io::Write;

const FILES: [(&str, &str); 9] = [
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
        "types/Config.dhall",
        include_str!("../config/types/Config.dhall"),
    ),
];
const SNAPSHOT: &str = include_str!("../config/sample-snapshot.json");
const OBSERVED: &str = include_str!("../config/sample-observed.json");

/// The embedded demo configuration, written to a temporary folder so its imports resolve.
pub fn config() -> anyhow::Result<Config> {
    let dir = tempfile_dir()?;
    for (name, text) in FILES {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(&path, text)?;
    }
    let config = Config::load(&dir.join("demo.dhall"));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(config?)
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("aws-replicator-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub async fn run(out: &mut impl Write) -> anyhow::Result<()> {
    let config = config()?;
    let sso = config.require_sso()?;
    let snapshot = Snapshot::from_json(SNAPSHOT, "sample-snapshot.json")?;
    let observed: Observed = serde_json::from_str(OBSERVED)?;
    let world = World::new(observed);
    let desired = desired(&snapshot, &Settings::new(&config, sso), &Scope::All);

    writeln!(
        out,
        "aws-replicator demo: meshStack sample with {} projects, {} users and {} bindings; \
         AWS IAM Identity Center in memory with {} groups.\n",
        snapshot.projects.len(),
        snapshot.users.len(),
        snapshot.bindings.len(),
        world.dump().groups.len()
    )?;

    let first = sync(out, "1. First sync", &world, &desired).await?;
    let again = plan(&desired, &observe(&world, &world, &desired).await?);
    writeln!(out, "2. Drift after the sync: {}\n", drift(&again))?;

    // Behind the replicator's back: someone adds a stranger to an admin group by hand and
    // removes a legitimate member.
    let group = GroupName::from("mst-acme.web.meshstack-project-admin");
    tamper(
        &world,
        &group,
        "mallory@other.example",
        "alice@acme.example",
    );
    writeln!(
        out,
        "3. By hand, in AWS: + mallory@other.example and - alice@acme.example in {group}\n"
    )?;
    sync(out, "4. Next sync repairs it", &world, &desired).await?;
    let last = plan(&desired, &observe(&world, &world, &desired).await?);
    writeln!(out, "5. Drift after the repair: {}", drift(&last))?;
    anyhow::ensure!(
        last.ops.is_empty() && !first.ops.is_empty(),
        "the demo did not converge"
    );
    Ok(())
}

async fn sync(
    out: &mut impl Write,
    title: &str,
    world: &World,
    desired: &crate::desired::Desired,
) -> anyhow::Result<Plan> {
    let observed = observe(world, world, desired).await?;
    let plan = plan(desired, &observed);
    writeln!(out, "{title}: plan\n")?;
    for line in plan.render_text().lines() {
        if line.is_empty() {
            writeln!(out)?;
        } else {
            writeln!(out, "    {line}")?;
        }
    }
    let report = apply(&plan, world, world).await;
    writeln!(
        out,
        "\n    applied {} operation(s), {} failed\n",
        report.applied, report.failed
    )?;
    anyhow::ensure!(
        report.is_success(),
        "the demo could not apply its plan: {report:?}"
    );
    Ok(plan)
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

fn tamper(world: &World, group: &GroupName, add: &str, remove: &str) {
    let state = world.dump();
    let id_of = |name: &str| {
        state
            .users
            .iter()
            .find(|(_, n)| **n == UserName::from(name))
            .map(|(id, _)| id.clone())
            .expect("demo user exists")
    };
    let g = state
        .groups
        .iter()
        .find(|g| &g.name == group)
        .expect("demo group exists");
    world.edit_members(&g.id, &[id_of(add)], &[id_of(remove)]);
}
