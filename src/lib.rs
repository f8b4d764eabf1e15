//! aws-replicator: makes AWS follow meshStack.
//!
//! Data flows in the order of the modules below: `config` is loaded and validated, `meshstack`
//! reads a [`snapshot::Snapshot`], `desired` turns it into the groups, members and assignments
//! AWS IAM Identity Center must hold, `directory` observes what it does hold, and `plan` diffs
//! the two. `desired`, `plan` and `format` are pure: no I/O, no clock, no randomness.
//! See ARCHITECTURE.md for the map and the invariants.

pub mod accounts;
pub mod apply;
pub mod audit;
pub mod aws;
pub mod bootstrap;
pub mod config;
pub mod demo;
pub mod desired;
pub mod digest;
pub mod directory;
pub mod emulator;
pub mod engine;
pub mod fence;
pub mod finding;
pub mod format;
pub mod idb;
pub mod meshstack;
pub mod metrics;
pub mod model;
pub mod observed;
pub mod paced;
pub mod paging;
pub mod plan;
pub mod retry;
pub mod scan;
pub mod secret;
pub mod server;
pub mod snapshot;
pub mod sso;
pub mod sync;
pub mod tls;
