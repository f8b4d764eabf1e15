//! Helpers shared by the integration tests; each test crate uses a part of them.
#![allow(dead_code)]

pub mod aws;
pub mod cli;
pub mod kube_api;
pub mod meshstack_fixture;
pub mod peers;
pub mod policy;
pub mod sample;
