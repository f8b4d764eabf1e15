//! SCIM listings as AWS (or anything pretending to be it) sends them.
#![no_main]

use aws_replicator::sso::scim;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body: serde_json::Value = serde_json::from_slice(data).unwrap_or(serde_json::Value::Null);
    if let Ok((resources, _)) = scim::parse_list("ListGroups", 200, body) {
        let _ = scim::records(&resources);
    }
});
