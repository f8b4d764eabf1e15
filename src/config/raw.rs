//! The configuration as written in Dhall, field for field. Where the seed defines a type
//! (`Aws.dhall`, `AwsSso`, `MeshIdb`, the identifier lengths) these mirror it exactly, including
//! its spelling (camelCase in `Aws.dhall`, kebab-case elsewhere). Nothing here is validated:
//! see `validate.rs`.

use crate::secret::Secret;
use serde::Deserialize;

/// One entry of a Dhall map (`List { mapKey : Text, mapValue : V }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry<V> {
    #[serde(rename = "mapKey")]
    pub key: String,
    #[serde(rename = "mapValue")]
    pub value: V,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    /// The seed's `Aws.dhall`, applied to `Text` for `Secret`.
    pub aws: Aws,
    pub iam_configuration: IamConfiguration,
    pub identifiers: Identifiers,
    pub meshstack: MeshStack,
    pub replicator: Replicator,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Aws {
    pub platform: String,
    pub region: String,
    pub meshfed_service_user: ServiceUser,
    pub organization_root_account_role: String,
    pub organization_root_account_external_id: Option<Secret>,
    pub automation_account_role: String,
    pub automation_account_external_id: Option<Secret>,
    pub wait_for_external_avm: bool,
    pub role_mappings_managed: Vec<Entry<ManagedRole>>,
    pub role_mappings_external: Vec<Entry<ExternalRole>>,
    pub account_access_role: Option<String>,
    pub account_email_pattern: String,
    pub account_alias_pattern: Option<String>,
    pub enforce_account_alias: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceUser {
    pub access_key: Secret,
    pub secret_key: Secret,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ManagedRole {
    pub aws_role_name: String,
    pub policies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalRole {
    pub aws_role_name: String,
}

/// `mesh.platforms.aws.iam-configuration`: at most one of the two is active.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IamConfiguration {
    pub aws_sso: Option<AwsSso>,
    pub mesh_idb: Option<MeshIdb>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AwsSso {
    pub scim_endpoint: String,
    pub arn: String,
    pub group_name_pattern: String,
    pub sso_access_token: Secret,
    pub role_mappings: Vec<Entry<SsoRole>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SsoRole {
    pub aws_role_name: String,
    pub permission_set_arns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MeshIdb {
    pub role_mappings_managed: Vec<Entry<IdbManagedRole>>,
    pub role_mappings_external: Vec<Entry<IdbExternalRole>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IdbManagedRole {
    pub aws_role_name: String,
    pub policies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IdbExternalRole {
    pub aws_role_name: String,
}

/// The seed's "Identifier Configuration", as configured on the meshStack side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifiers {
    pub customer_identifier_length: u64,
    pub project_identifier_length: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MeshStack {
    pub base_url: String,
    pub credentials: Credentials,
    pub tenant_api_version: TenantApiVersion,
    pub page_size: u64,
    /// Project role identifier → display name: the roles the config may map, and the fallback
    /// when meshStack does not serve `meshprojectroles`.
    pub project_roles: Vec<Entry<String>>,
    pub project_id: ProjectIdSource,
    pub expand_group_bindings: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Credentials {
    ApiUser(ApiUser),
    ApiKey(ApiKey),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiUser {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiKey {
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantApiVersion {
    V3,
    V4,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProjectIdSource {
    /// The project tag whose first value is the numeric id; `None` reads no tag.
    pub tag: Option<String>,
    /// `workspace.project` → id; wins over the tag.
    pub overrides: Vec<Entry<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Replicator {
    pub schedule: Schedule,
    pub rate_limits: RateLimits,
    pub deletion_guard: DeletionGuard,
    pub drift_scan: DriftScan,
    pub sso_admin: SsoAdminSettings,
    /// Where the JSON audit lines go: a file appended to, or stderr.
    pub audit_log: Option<String>,
    /// `serve`'s record of what AWS was confirmed to hold (without leader election).
    pub state: Option<String>,
    pub accounts: Accounts,
    pub mesh_idb: MeshIdbSettings,
    pub serve: Serve,
    pub leader_election: Option<LeaderElection>,
}

/// `replicator.leader-election`: several replicas, one writer (the Lease's holder).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LeaderElection {
    pub lease_name: String,
    pub namespace: String,
    pub lease_duration_seconds: u64,
    pub renew_deadline_seconds: u64,
    pub retry_period_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MeshIdbSettings {
    pub saml_provider_name: String,
    pub idp_metadata: Option<String>,
    pub saml_audience: String,
    pub detach_extra_policies: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Accounts {
    pub landing_zones: Vec<Entry<LandingZone>>,
    pub avm_done_tag: TagValue,
    pub create_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LandingZone {
    pub organizational_unit: String,
    pub tags: Vec<Entry<String>>,
    pub access_stack: Option<AccessStack>,
    pub stack_sets: Vec<StackSet>,
    pub lambda: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AccessStack {
    pub stack_name: String,
    pub template: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StackSet {
    pub name: String,
    pub regions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Serve {
    /// `host:port` to listen on.
    pub listen: String,
    /// `host:port` for `/metrics` and health alone; then `listen` does not serve `/metrics`.
    pub metrics_listen: Option<String>,
    pub webhook_token: Option<Secret>,
    pub webhook_hmac_secret: Option<Secret>,
    pub max_body_bytes: u64,
    /// A run (meshStack read, accounts, observe, apply) that takes longer fails.
    pub run_deadline_seconds: u64,
    /// `/readyz` turns unready once the last successful read of everything is older than
    /// this; `None`: derived ([`Serve::ready_max_age`]).
    pub ready_max_age_seconds: Option<u64>,
}

impl Serve {
    /// How old the last successful read of everything may be before `/readyz` says no: as
    /// configured, else three schedule intervals (with jitter), at least two hours, and at
    /// least two cycles of the meshStack crawl once its length is known (at 33,000 projects
    /// and meshStack's default rate a cycle takes 2.5 h; a fixed two hours would turn a
    /// healthy replicator unready between two of them).
    pub fn ready_max_age(
        &self,
        schedule: &Schedule,
        crawl_cycle_seconds: Option<f64>,
    ) -> std::time::Duration {
        let seconds = self.ready_max_age_seconds.unwrap_or_else(|| {
            let between = schedule.interval_seconds + schedule.jitter_seconds;
            let crawl = crawl_cycle_seconds
                .filter(|c| c.is_finite())
                .map_or(0, |c| (2.0 * c).ceil() as u64);
            (3 * between).max(7200).max(crawl)
        });
        std::time::Duration::from_secs(seconds)
    }
}

/// What the management-account role may do beyond the seed's policy (all `false` there).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SsoAdminSettings {
    pub delete_assignments: bool,
    pub list_assignments_for_principal: bool,
    pub list_assignment_status: bool,
    /// Assignment creations and deletions in flight at once (AWS allows 15).
    pub max_in_flight: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Schedule {
    pub interval_seconds: u64,
    pub jitter_seconds: u64,
}

/// Requests per second, per API family.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RateLimits {
    pub scim: f64,
    pub sso_admin: f64,
    pub identitystore: f64,
    pub iam: f64,
    pub meshstack: f64,
}

/// `replicator.drift-scan`: the rolling scan `serve` runs to find drift made by hand.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DriftScan {
    /// The share (0.0–0.9) of each family's rate the scan may spend; 0.0 turns it off.
    pub share: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeletionGuard {
    /// Refuse a plan that deletes more than this share (0.0–1.0) of the managed objects …
    pub max_share: f64,
    /// … and more than this many of them.
    pub max_count: u64,
}
