//! meshStack API pages of every kind.
#![no_main]

use aws_replicator::meshstack::{self, payload::Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for kind in Kind::ALL {
        let _ = meshstack::parse_page(kind, data);
    }
});
