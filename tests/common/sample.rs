//! The shipped sample, as the sync tests use it: desired state from `config/demo.dhall` and
//! `config/sample-snapshot.json`, and the AWS users the customer's IdP would have provisioned.

use aws_replicator::config::Config;
use aws_replicator::desired::{Desired, Scope, Settings, desired};
use aws_replicator::emulator::Emulator;
use aws_replicator::snapshot::Snapshot;
use std::path::Path;

/// The sample's euids that exist in AWS (dave has no euid, heidi is not provisioned).
pub const AWS_USERS: [&str; 6] = [
    "alice@acme.example",
    "bob@acme.example",
    "carol@globex.example",
    "erin@globex.example",
    "frank@globex.example",
    "grace@globex.example",
];

pub fn desired_state() -> Desired {
    let config = Config::load(Path::new("config/demo.dhall")).unwrap();
    let snapshot = Snapshot::from_file(Path::new("config/sample-snapshot.json")).unwrap();
    desired(
        &snapshot,
        &Settings::new(&config, config.sso.as_ref().unwrap()),
        &Scope::All,
    )
}

pub fn provision_users(emulator: &Emulator) {
    for user in AWS_USERS {
        emulator.add_user(user);
    }
}
