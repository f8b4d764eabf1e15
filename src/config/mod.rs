//! Configuration: a Dhall file shaped after the seed's types, loaded, type-checked and
//! validated into a [`Config`] that the rest of the program can trust.
//!
//! Loading goes Dhall → plain JSON (`dhall.rs`) → the field-for-field `raw` types (errors name
//! the field path) → [`validate`] (errors name the path and the fix). Every problem is
//! collected, so one `config check` run lists them all.

mod annot;
mod dhall;
pub mod raw;
mod validate;

use crate::format::Pattern;
use crate::model::{PermissionSetArn, ProjectKey, RoleId};
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use dhall::DhallError;
pub use raw::TenantApiVersion;
pub(crate) use validate::is_loopback;

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The platform instance identifier (`<platform>.<location>`), from `aws.platform`.
    pub platform: String,
    pub aws: raw::Aws,
    pub sso: Option<SsoConfig>,
    pub mesh_idb: Option<raw::MeshIdb>,
    pub identifiers: IdentifierLimits,
    pub meshstack: MeshStackConfig,
    pub replicator: raw::Replicator,
    /// Account provisioning and the landing-zone bootstrap (`replicator.accounts`).
    pub accounts: AccountsConfig,
    pub alias_pattern: Pattern,
    pub email_pattern: Pattern,
    /// Things that work but probably should not be so (a secret written into the file).
    pub warnings: Vec<Problem>,
}

#[derive(Debug)]
pub struct SsoConfig {
    pub scim_endpoint: url::Url,
    pub instance_arn: String,
    /// `group-name-pattern`, compiled for its four arguments; `mst-` is not part of it.
    pub group_pattern: Pattern,
    pub token: Secret,
    pub roles: BTreeMap<RoleId, RoleMapping>,
}

#[derive(Debug, Clone)]
pub struct RoleMapping {
    pub aws_role_name: String,
    pub permission_sets: Vec<PermissionSetArn>,
}

#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Landing-zone identifier → what its accounts get. Tenants of other landing zones are
    /// neither created nor bootstrapped.
    pub landing_zones: BTreeMap<String, LandingZone>,
    pub avm_done_tag: raw::TagValue,
    pub create_timeout: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandingZone {
    pub organizational_unit: OuTarget,
    pub tags: BTreeMap<String, String>,
    pub access_stack: Option<AccessStack>,
    pub stack_sets: Vec<StackSetTarget>,
    pub lambda: Option<String>,
}

/// Where an account lives in the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OuTarget {
    /// An existing OU (or root) by id.
    Id(String),
    /// OU names below the root, outermost first; empty for the root itself.
    Path(Vec<String>),
}

impl fmt::Display for OuTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OuTarget::Id(id) => f.write_str(id),
            OuTarget::Path(names) => write!(f, "/{}", names.join("/")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessStack {
    pub stack_name: String,
    pub template: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSetTarget {
    pub name: String,
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct IdentifierLimits {
    pub customer: usize,
    pub project: usize,
}

#[derive(Debug)]
pub struct MeshStackConfig {
    pub base_url: url::Url,
    pub auth: Auth,
    pub tenant_api_version: TenantApiVersion,
    pub page_size: u32,
    /// Role identifier → display name: meshStack's three defaults plus `project-roles`.
    pub project_roles: BTreeMap<RoleId, String>,
    pub project_id: ProjectIdConfig,
    pub expand_group_bindings: bool,
}

#[derive(Debug, Clone)]
pub enum Auth {
    /// An API user, sent as HTTP Basic on every request.
    Basic { username: String, password: Secret },
    /// An API key, exchanged at `POST /api/login` for a short-lived bearer token.
    ApiKey {
        client_id: String,
        client_secret: Secret,
    },
}

#[derive(Debug, Clone, Default)]
pub struct ProjectIdConfig {
    pub tag: Option<String>,
    pub overrides: BTreeMap<ProjectKey, u64>,
}

/// meshStack's default project roles, by identifier, with their default display names.
pub const DEFAULT_PROJECT_ROLES: [(&str, &str); 3] = [
    ("admin", "Project Admin"),
    ("user", "Project User"),
    ("reader", "Project Reader"),
];

/// The seed's default `accountAliasPattern` is `%s.%s`, but IAM refuses dots in an account
/// alias (lowercase letters, digits and single hyphens only), so ours joins with a hyphen.
pub const DEFAULT_ALIAS_PATTERN: &str = "%s-%s";

/// An environment variable that `config check` found unset: the running service needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeededEnv {
    pub name: String,
    /// The fields it feeds, as paths in the config's JSON image (`aws.meshfedServiceUser.accessKey`).
    pub fields: Vec<String>,
}

/// The paths of the strings in `value` equal to `needle`.
fn fields_holding(value: &serde_json::Value, needle: &str, at: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if s == needle => out.push(at.to_owned()),
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                let next = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                fields_holding(v, needle, &next, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                fields_holding(v, needle, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// One thing wrong with a configuration: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n    fix: {}", self.fix)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Dhall(#[from] DhallError),
    #[error("{file}: {path}: {message}")]
    Shape {
        file: String,
        path: String,
        message: String,
    },
    #[error("{file}: {} problem(s):\n{}", .problems.len(), list(.problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Loads, type-checks and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let json = dhall::load_json(path)?;
        let mut config = Self::from_json(json, &path.display().to_string())?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        config.warnings.extend(config.literal_secrets(&text));
        Ok(config)
    }

    /// `config check` without production secrets: loads and validates like [`Config::load`],
    /// but an `env:` import that is not set stands in as a placeholder. Returns the config and
    /// what the running service will need: each variable and the fields it feeds.
    ///
    /// It sets environment variables while it loads, so it must be called before any other
    /// thread starts (the command line does).
    pub fn check_without_env(path: &Path) -> Result<(Self, Vec<NeededEnv>), ConfigError> {
        let (json, missing) = dhall::load_json_standing_in(path)?;
        let needed = missing
            .into_iter()
            .map(|name| {
                let mut fields = Vec::new();
                fields_holding(&json, &dhall::placeholder(&name), "", &mut fields);
                NeededEnv { name, fields }
            })
            .collect();
        let mut config = Self::from_json(json, &path.display().to_string())?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        config.warnings.extend(config.literal_secrets(&text));
        Ok((config, needed))
    }

    /// Secrets written into the file itself rather than imported with `env:`.
    fn literal_secrets(&self, text: &str) -> Vec<Problem> {
        let mut secrets: Vec<(&str, &Secret)> = vec![
            (
                "aws.meshfedServiceUser.accessKey",
                &self.aws.meshfed_service_user.access_key,
            ),
            (
                "aws.meshfedServiceUser.secretKey",
                &self.aws.meshfed_service_user.secret_key,
            ),
        ];
        if let Some(sso) = &self.sso {
            secrets.push(("iam-configuration.aws-sso.sso-access-token", &sso.token));
        }
        match &self.meshstack.auth {
            Auth::Basic { password, .. } => {
                secrets.push(("meshstack.credentials.api-user.password", password))
            }
            Auth::ApiKey { client_secret, .. } => {
                secrets.push(("meshstack.credentials.api-key.client-secret", client_secret))
            }
        }
        let serve = &self.replicator.serve;
        for (path, secret) in [
            ("replicator.serve.webhook-token", &serve.webhook_token),
            (
                "replicator.serve.webhook-hmac-secret",
                &serve.webhook_hmac_secret,
            ),
        ] {
            if let Some(secret) = secret {
                secrets.push((path, secret));
            }
        }
        secrets
            .into_iter()
            .filter(|(_, s)| s.expose().len() >= 4 && text.contains(&format!("\"{}\"", s.expose())))
            .map(|(path, _)| Problem {
                path: path.into(),
                message: "the secret is written into the config file".into(),
                fix: "import it from the environment: `env:NAME as Text`".into(),
            })
            .collect()
    }

    /// Validates a configuration given as the JSON image of its Dhall value.
    pub fn from_json(json: serde_json::Value, file: &str) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig = serde_path_to_error::deserialize(&json).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Shape {
                file: file.to_owned(),
                path: if path == "." {
                    "(top level)".into()
                } else {
                    path
                },
                message: e.into_inner().to_string(),
            }
        })?;
        validate::validate(raw).map_err(|problems| ConfigError::Invalid {
            file: file.to_owned(),
            problems,
        })
    }

    /// The SSO settings, or an error saying that this command needs them.
    pub fn require_sso(&self) -> Result<&SsoConfig, ConfigError> {
        self.sso.as_ref().ok_or_else(|| ConfigError::Invalid {
            file: String::new(),
            problems: vec![Problem {
                path: "iam-configuration.aws-sso".into(),
                message: "authorization sync needs AWS IAM Identity Center settings".into(),
                fix: "set `aws-sso = Some { … }` (see config/example.dhall)".into(),
            }],
        })
    }

    /// One line per fact a reader of `config check` wants confirmed.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = vec![format!("platform instance: {}", self.platform)];
        lines.push(format!("meshStack: {}", self.meshstack.base_url));
        if let Some(sso) = &self.sso {
            lines.push(format!(
                "AWS SSO: groups `mst-{}`, {} role mapping(s), SCIM at {}",
                sso.group_pattern,
                sso.roles.len(),
                sso.scim_endpoint
            ));
            if sso.group_pattern.uses(3) {
                let source = match &self.meshstack.project_id.tag {
                    Some(tag) => format!("project tag `{tag}`"),
                    None => "the override map only".into(),
                };
                lines.push(format!(
                    "numeric project id (argument 3) comes from {source}, {} override(s)",
                    self.meshstack.project_id.overrides.len()
                ));
            }
        }
        if let Some(idb) = &self.mesh_idb {
            lines.push(format!(
                "meshIdB: SAML provider `{}`, {} managed and {} external role mapping(s)",
                self.replicator.mesh_idb.saml_provider_name,
                idb.role_mappings_managed.len(),
                idb.role_mappings_external.len()
            ));
        }
        for (id, zone) in &self.accounts.landing_zones {
            lines.push(format!(
                "landing zone {id}: accounts in {}, {} access stack, {} StackSet(s), {} Lambda",
                zone.organizational_unit,
                if zone.access_stack.is_some() {
                    "an"
                } else {
                    "no"
                },
                zone.stack_sets.len(),
                if zone.lambda.is_some() { "a" } else { "no" },
            ));
        }
        {
            let cycle = |projects| {
                crate::scan::human(crate::meshstack::crawl::cycle_of_shape(
                    projects,
                    self.meshstack.page_size,
                    self.meshstack.expand_group_bindings,
                    self.replicator.rate_limits.meshstack,
                    self.replicator.schedule.interval_seconds,
                ))
            };
            lines.push(format!(
                "meshStack crawl (serve): a cycle every {} s, or as long as {} % of {}/s needs; about {} at 1,000 projects, {} at 10,000, {} at 33,000",
                self.replicator.schedule.interval_seconds,
                crate::meshstack::crawl::SHARE * 100.0,
                self.replicator.rate_limits.meshstack,
                cycle(1000),
                cycle(10_000),
                cycle(33_000)
            ));
        }
        if let Some(sso) = &self.sso {
            let share = self.replicator.drift_scan.share;
            if share > 0.0 {
                let rates = &self.replicator.rate_limits;
                let pairs = if self.replicator.sso_admin.list_assignments_for_principal {
                    sso.roles.len()
                } else {
                    let sets: std::collections::BTreeSet<_> = sso
                        .roles
                        .values()
                        .flat_map(|r| &r.permission_sets)
                        .collect();
                    sets.len()
                };
                let cycle = |projects| {
                    crate::scan::cycle_of_shape(
                        projects,
                        sso.roles.len(),
                        pairs,
                        rates.scim,
                        rates.sso_admin,
                        share,
                    )
                };
                lines.push(format!(
                    "drift scan (serve): {} % of the rates; one cycle takes about {} per 1,000 projects, {} at 33,000 (the most one identity store holds)",
                    share * 100.0,
                    crate::scan::human(cycle(1000).seconds),
                    crate::scan::human(cycle(33_000).seconds)
                ));
            } else {
                lines.push("drift scan (serve): off; drift made by hand is found by full runs only (at start-up)".into());
            }
        }
        lines
    }
}
