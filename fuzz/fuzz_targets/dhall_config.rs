//! The Dhall config loader on arbitrary text (imports resolve against the shipped types).
#![no_main]

use aws_replicator::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let dir = std::env::temp_dir().join(format!("aws-replicator-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("config.dhall");
    let text = text.replace(
        "./types/",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../config/types/"),
    );
    if std::fs::write(&path, text).is_ok() {
        let _ = Config::load(&path);
    }
});
