//! meshStack API pages of every kind.
#![no_main]

use aws_replicator::meshstack::{self, payload::Kind};
use libfuzzer_sys::fuzz_target;

const KINDS: [Kind; 8] = [
    Kind::ProjectRoles,
    Kind::Projects,
    Kind::TenantsV3,
    Kind::TenantsV4,
    Kind::Users,
    Kind::WorkspaceUserGroups,
    Kind::UserBindings,
    Kind::GroupBindings,
];

fuzz_target!(|data: &[u8]| {
    for kind in KINDS {
        let _ = meshstack::parse_page(kind, data);
    }
});
