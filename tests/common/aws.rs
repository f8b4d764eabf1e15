//! The replicator's SCIM and sso-admin clients pointed at an emulator, tuned for tests: no
//! client-side rate to speak of, quick polling, and the SDK's own retries off (ours count).

use aws_replicator::emulator::RunningEmulator;
use aws_replicator::retry::RetryPolicy;
use aws_replicator::secret::Secret;
use aws_replicator::sso::admin::{Polling, SsoAdmin};
use aws_replicator::sso::scim::ScimClient;
use std::time::Duration;

pub const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-123456789";

pub fn sdk(endpoint: &str) -> aws_sdk_ssoadmin::Client {
    let config = aws_sdk_ssoadmin::Config::builder()
        .behavior_version(aws_sdk_ssoadmin::config::BehaviorVersion::latest())
        .region(aws_sdk_ssoadmin::config::Region::new("eu-central-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ssoadmin::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .retry_config(aws_sdk_ssoadmin::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ssoadmin::Client::from_conf(config)
}

pub fn fast_polling() -> Polling {
    Polling {
        first: Duration::from_millis(10),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(30),
        max_retries: 20,
    }
}

/// Both clients against `running`, with `retry` for SCIM.
pub fn clients(running: &RunningEmulator, retry: RetryPolicy) -> (ScimClient, SsoAdmin) {
    let scim = ScimClient::new(
        &url::Url::parse(&running.scim_endpoint()).unwrap(),
        Secret::new("emulator-token"),
        1000.0,
        retry,
    )
    .unwrap();
    let admin = SsoAdmin::new(sdk(&running.endpoint()), INSTANCE, 1000.0, fast_polling());
    (scim, admin)
}
