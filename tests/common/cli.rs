//! The binary run as a user runs it, against AWS IAM Identity Center (the emulator, in this
//! process) with STS from moto: a temporary folder for configs, and the environment that points
//! the binary at both.

use aws_replicator::emulator::{Emulator, EmulatorConfig, RunningEmulator};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The secrets in the configuration `config()` writes: none may ever be printed.
pub const SECRETS: [&str; 6] = [
    "emulator-token",
    "demo-access-key",
    "demo-secret-key",
    "demo-external-id",
    "demo-automation-external-id",
    "demo-secret",
];

pub struct Setup {
    pub _moto: super::peers::Peer,
    pub running: RunningEmulator,
    pub dir: tempfile::TempDir,
    pub moto_endpoint: String,
}

pub async fn setup() -> Setup {
    setup_with(super::peers::moto()).await
}

/// [`setup`] with a moto started by the caller.
pub async fn setup_with(moto: super::peers::Peer) -> Setup {
    let emulator = Emulator::new(EmulatorConfig {
        operation_delay: Duration::from_millis(50),
        ..EmulatorConfig::default()
    });
    super::sample::provision_users(&emulator);
    let running = emulator.serve(0).await.unwrap();
    Setup {
        moto_endpoint: moto.endpoint.clone(),
        _moto: moto,
        running,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    /// The demo configuration, pointed at the emulator, with `replicator` as given.
    pub fn config(&self, name: &str, pattern: &str, replicator: &str) -> PathBuf {
        let types = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/types/package.dhall");
        let text = std::fs::read_to_string("config/demo.dhall")
            .unwrap()
            .replace("./types/package.dhall", types.to_str().unwrap())
            .replace(
                "https://scim.eu-central-1.amazonaws.com/xxxxx-xxxx-xxxx-xxxx/scim/v2/",
                &self.running.scim_endpoint(),
            )
            .replace("\"demo-scim-token\"", "\"emulator-token\"")
            .replace("%s.%s.%4\\$s", pattern)
            .replace("T.Replicator::{=}", replicator);
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The binary with the environment that points it at moto's STS and the emulator.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_aws-replicator"));
        command
            .env("AWS_ENDPOINT_URL_STS", &self.moto_endpoint)
            .env("AWS_ENDPOINT_URL_SSO_ADMIN", self.running.endpoint())
            .env_remove("AWS_ENDPOINT_URL");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    pub fn sync(&self, config: &Path, snapshot: &str) -> (Output, String, String) {
        self.sync_with(config, snapshot, &[])
    }

    pub fn sync_with(
        &self,
        config: &Path,
        snapshot: &str,
        extra: &[&str],
    ) -> (Output, String, String) {
        let mut args = vec![
            "sync",
            "--config",
            config.to_str().unwrap(),
            "--snapshot",
            snapshot,
        ];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out, stdout, stderr)
    }

    pub fn writes(&self) -> usize {
        self.running
            .emulator
            .requests()
            .iter()
            .filter(|r| r.method != "GET" && !r.endpoint.starts_with("List"))
            .filter(|r| !r.endpoint.starts_with("Describe"))
            .count()
    }
}

/// The sample holds two projects (acme.data binds a user meshStack does not list; globex.legacy
/// has a tenant without an account id): a sync that applied everything else exits 3 and names
/// both on standard error.
#[allow(dead_code)]
pub fn assert_synced_but_held(out: &Output, stdout: &str, stderr: &str) {
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("project(s) are held"))
        .unwrap_or_else(|| panic!("no held line in: {stderr}"));
    assert!(line.contains("acme.data, globex.legacy"), "{line}");
}
