//! Conventions the code map in ARCHITECTURE.md relies on: every source file says what it owns,
//! the pure modules do no I/O, and nothing unfinished is left in.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    for (path, text) in sources() {
        assert!(
            text.starts_with("//!"),
            "{} has no module doc (`//!`) at its top",
            path.display()
        );
    }
}

#[test]
fn pure_modules_do_no_io() {
    const PURE: [&str; 20] = [
        "src/desired.rs",
        "src/accounts/retry.rs",
        "src/meshstack/crawl.rs",
        "src/engine/mod.rs",
        "src/digest.rs",
        "src/plan/basis.rs",
        "src/engine/record.rs",
        "src/engine/queue.rs",
        "src/engine/removals.rs",
        "src/scan.rs",
        "src/accounts/mod.rs",
        "src/idb/mod.rs",
        "src/plan/mod.rs",
        "src/plan/render.rs",
        "src/plan/simulate.rs",
        "src/format.rs",
        "src/model.rs",
        "src/finding.rs",
        "src/observed.rs",
        "src/config/annot.rs",
    ];
    const IO: [&str; 11] = [
        "tokio",
        "aws_sdk",
        "reqwest",
        "axum",
        "std::fs",
        "std::net",
        "std::env",
        "std::time",
        "std::process",
        "rand",
        "SystemTime",
    ];
    for file in PURE {
        let text = std::fs::read_to_string(file).unwrap();
        for needle in IO {
            assert!(
                !text.contains(needle),
                "{file} is pure but mentions `{needle}`"
            );
        }
    }
}

#[test]
fn nothing_unfinished() {
    for (path, text) in sources() {
        for needle in ["todo!(", "unimplemented!(", "dbg!("] {
            assert!(
                !text.contains(needle),
                "{} contains {needle}",
                path.display()
            );
        }
    }
}

/// `demo` writes the config types it embeds into a temporary folder: a type file left out makes
/// the embedded default fail to load.
#[test]
fn the_demo_embeds_every_config_type() {
    let demo = std::fs::read_to_string("src/demo.rs").unwrap();
    for entry in std::fs::read_dir("config/types").unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            demo.contains(&format!("include_str!(\"../config/types/{name}\")")),
            "src/demo.rs does not embed config/types/{name}"
        );
    }
}

/// The metrics sit below the domains: the account and meshIdB phases hand them numbers, so
/// `metrics.rs` reaches only the plan and executor types it counts, never a module that
/// reports to it (which closed an import circle through `paced` and the AWS clients).
#[test]
fn metrics_import_no_domain_that_reports_to_them() {
    const ALLOWED: [&str; 4] = ["apply", "model", "plan", "finding"];
    let text = std::fs::read_to_string("src/metrics.rs").unwrap();
    // Its unit tests may build whatever they need.
    let text = text.split("#[cfg(test)]").next().unwrap();
    for (at, _) in text.match_indices("crate::") {
        let module: String = text[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            ALLOWED.contains(&module.as_str()),
            "src/metrics.rs uses crate::{module}; hand the metrics plain numbers instead"
        );
    }
}
