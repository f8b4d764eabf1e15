//! The write fence: whether this process may write to AWS now. Open unless leader election is
//! on; then open only until the moment this replica last confirmed its lease plus the renew
//! deadline. The executor checks it before every write, so a leader that was paused (or cut
//! off from the Kubernetes API) past its deadline sends nothing more before it has confirmed
//! the lease again, even if its renewal loop has not run yet. Process-wide: a process is one
//! replica.

use std::sync::Mutex;
use std::time::Instant;

/// `None`: no election, always open. `Some(until)`: open before `until`.
static OPEN_UNTIL: Mutex<Option<Option<Instant>>> = Mutex::new(None);

/// Closes the fence for good in this process until [`open_until`] opens it: leader election
/// is on, and nothing is confirmed yet.
pub fn close() {
    *OPEN_UNTIL.lock().expect("fence lock") = Some(None);
}

/// The lease was confirmed; writes may go on until `until`.
pub fn open_until(until: Instant) {
    *OPEN_UNTIL.lock().expect("fence lock") = Some(Some(until));
}

/// Whether a write may be sent now.
pub fn is_open() -> bool {
    match *OPEN_UNTIL.lock().expect("fence lock") {
        None => true,
        Some(None) => false,
        Some(Some(until)) => Instant::now() < until,
    }
}

#[cfg(test)]
pub(crate) fn reset() {
    *OPEN_UNTIL.lock().expect("fence lock") = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_fence_opens_only_until_the_confirmed_deadline() {
        reset();
        assert!(is_open(), "no election: open");
        close();
        assert!(!is_open(), "election on, nothing confirmed");
        open_until(Instant::now() + Duration::from_secs(60));
        assert!(is_open());
        open_until(Instant::now() - Duration::from_millis(1));
        assert!(!is_open(), "past the deadline");
        reset();
    }
}

/// A write that was not sent because the fence is closed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} not sent: this replica is not sure it still holds the lease (replicator.leader-election); the leader does it"
)]
pub struct Closed(pub String);

/// Whether an AWS operation of this name writes (everything but reads by AWS's naming).
pub fn is_write(operation: &str) -> bool {
    !["List", "Get", "Describe"]
        .iter()
        .any(|read| operation.starts_with(read))
}

/// The fence on every AWS SDK client the replicator builds (`aws::client!`: Organizations,
/// IAM, CloudFormation and its StackSets, Lambda, sso-admin), checked before each attempt is
/// transmitted: after signing and after a retry's backoff, either of which may outlive the
/// lease. One check for every service, so that no writer is left out (account provisioning,
/// bootstrap steps and meshIdB roles wrote unfenced before). STS is not behind it: assuming a
/// role writes nothing.
#[derive(Debug)]
pub struct Interceptor;

impl aws_sdk_ssoadmin::config::Intercept for Interceptor {
    fn name(&self) -> &'static str {
        "aws-replicator write fence"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_ssoadmin::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_ssoadmin::config::RuntimeComponents,
        cfg: &mut aws_sdk_ssoadmin::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_smithy_runtime_api::client::orchestrator::Metadata;
        // Every operation of the SDKs stores its name; a request without one is a write.
        let operation = cfg
            .load::<Metadata>()
            .map_or("an AWS request", Metadata::name);
        check(operation).map_err(Into::into)
    }
}

/// Called right before a request is sent (after its rate-limit wait, which may be long): an
/// error for a write while the fence is closed.
pub fn check(operation: &str) -> Result<(), Closed> {
    if is_write(operation) && !is_open() {
        Err(Closed(operation.to_owned()))
    } else {
        Ok(())
    }
}
