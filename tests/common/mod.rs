//! Helpers shared by the integration tests; each test crate uses a part of them.
#![allow(dead_code)]

pub mod aws;
pub mod cli;
pub mod kube_api;
pub mod meshstack_fixture;
pub mod peers;
pub mod policy;
pub mod sample;

/// `observed` after `plan` is applied through the executor into the in-memory directory (not
/// the planner's own simulator), which must report every operation done.
pub fn applied(
    plan: &aws_replicator::plan::Plan,
    observed: &aws_replicator::observed::Observed,
) -> aws_replicator::observed::Observed {
    let world = aws_replicator::directory::World::new(observed.clone());
    let report = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(aws_replicator::apply::apply(
            plan,
            &world,
            &world,
            aws_replicator::apply::Options::default(),
            &aws_replicator::audit::Audit::discard(),
            &|_| {},
        ));
    assert!(report.is_success(), "{report:?}");
    world.dump()
}
