//! AWS IAM Identity Center as the replicator reaches it: the SCIM endpoint (users, groups,
//! members) with the seed's SCIM token, and sso-admin for account assignments.

pub mod admin;
pub mod scim;

use crate::config::{Config, SsoConfig};
use crate::directory::AssignmentReads;

/// The SCIM and sso-admin clients for the configured instance, at the configured rates.
/// `observer` (the metrics, in `serve`) hears of every request and retry.
pub fn connect(
    config: &Config,
    sso: &SsoConfig,
    observer: Option<std::sync::Arc<dyn crate::metrics::RequestObserver>>,
) -> Result<(scim::ScimClient, admin::SsoAdmin), crate::aws::AwsError> {
    connect_at(config, sso, observer, 1.0)
}

/// [`connect`], with clients that allow themselves `share` (0–1] of each family's configured
/// rate: the drift scan's.
pub fn connect_at(
    config: &Config,
    sso: &SsoConfig,
    observer: Option<std::sync::Arc<dyn crate::metrics::RequestObserver>>,
    share: f64,
) -> Result<(scim::ScimClient, admin::SsoAdmin), crate::aws::AwsError> {
    let rates = &config.replicator.rate_limits;
    let mut scim = scim::ScimClient::new(
        &sso.scim_endpoint,
        sso.token.clone(),
        rates.scim * share,
        crate::retry::RetryPolicy::aws(),
    )?;
    let mut admin = admin::SsoAdmin::new(
        crate::aws::sso_admin(config)?,
        &sso.instance_arn,
        rates.sso_admin * share,
        admin::Polling::default(),
    )
    .with_batch_status(config.replicator.sso_admin.list_assignment_status);
    if let Some(observer) = observer {
        scim = scim.with_observer(observer.clone());
        admin = admin.with_observer(observer);
    }
    Ok((scim, admin))
}

/// How a sync reads and writes, from what the configured role may do.
pub fn sync_settings(config: &Config) -> crate::sync::Settings {
    let sso_admin = &config.replicator.sso_admin;
    crate::sync::Settings {
        reads: if sso_admin.list_assignments_for_principal {
            AssignmentReads::PerGroup
        } else {
            AssignmentReads::PerPair
        },
        options: crate::apply::Options {
            max_in_flight: sso_admin.max_in_flight as usize,
            ..crate::apply::Options::default()
        },
        guard: Some(crate::plan::guard::Limits {
            max_share: config.replicator.deletion_guard.max_share,
            max_count: config.replicator.deletion_guard.max_count,
        }),
        withhold_removals: false,
    }
}
