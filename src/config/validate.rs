//! Every rule a configuration must satisfy before anything reads meshStack or touches AWS.

use super::raw::{self, Entry, RawConfig};
use super::{
    AccessStack, AccountsConfig, Auth, Config, DEFAULT_ALIAS_PATTERN, DEFAULT_PROJECT_ROLES,
    IdentifierLimits, LandingZone, MeshStackConfig, OuTarget, Problem, ProjectIdConfig,
    RoleMapping, SsoConfig, StackSetTarget,
};
use crate::format::Pattern;
use crate::model::{GROUP_PREFIX, PermissionSetArn, ProjectKey, RoleId};
use std::collections::{BTreeMap, BTreeSet};

/// AWS's documented ceiling per API family; the replicator never plans to go above it.
const AWS_MAX_TPS: f64 = 20.0;
/// IAM Identity Center's limit on a group's displayName.
const GROUP_NAME_MAX: usize = 1024;
/// Characters IdPs and AWS refuse in SCIM-synced attributes (aws-sso.md §A.7).
const FORBIDDEN_NAME_CHARS: &[char] = &['<', '>', ';', ':', '%', '\t', '\n', '\r'];
/// `Administrator` and `AWSAdministrators` are reserved, but no name starting with `mst-` can
/// collide with them; the constant documents why the check is not needed.
const _RESERVED_GROUP_NAMES: [&str; 2] = ["Administrator", "AWSAdministrators"];
/// The longest decimal rendering of a numeric project id (u64).
const NUMERIC_ID_MAX_LEN: usize = 20;
const ALIAS_MIN: usize = 3;
const ALIAS_MAX: usize = 63;
const EMAIL_MAX: usize = 64;

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }
}

pub(super) fn validate(raw: RawConfig) -> Result<Config, Vec<Problem>> {
    let mut p = Problems(Vec::new());
    let RawConfig {
        aws,
        iam_configuration,
        identifiers,
        meshstack,
        replicator,
    } = raw;

    check_platform(&mut p, &aws.platform);
    let limits = check_identifiers(&mut p, &identifiers);
    let project_roles = project_roles(&mut p, &meshstack.project_roles);
    check_aws(&mut p, &aws, &project_roles);
    let alias_pattern = alias_pattern(&mut p, aws.account_alias_pattern.as_deref(), limits);
    let email_pattern = email_pattern(&mut p, &aws.account_email_pattern, limits);
    let project_id = project_id(&mut p, &meshstack.project_id);

    match (&iam_configuration.aws_sso, &iam_configuration.mesh_idb) {
        (Some(_), Some(_)) => p.add(
            "iam-configuration",
            "both aws-sso and mesh-idb are active; one platform instance uses one of them",
            "set the one you do not use to `None`",
        ),
        (None, None) => p.add(
            "iam-configuration",
            "neither aws-sso nor mesh-idb is configured, so there is nothing to replicate",
            "set `aws-sso = Some { … }` (see config/example.dhall)",
        ),
        _ => {}
    }
    let sso = iam_configuration
        .aws_sso
        .map(|sso| check_sso(&mut p, sso, limits, &project_roles, &project_id));
    let mut warnings = Vec::new();
    let mesh_idb = match iam_configuration.mesh_idb {
        Some(idb) => Some(mesh_idb(&mut p, idb, &aws, &project_roles)),
        None => {
            if !aws.role_mappings_managed.is_empty() || !aws.role_mappings_external.is_empty() {
                warnings.push(Problem {
                    path: "aws.roleMappingsManaged, aws.roleMappingsExternal".into(),
                    message: "role mappings for meshIdB are ignored on the aws-sso path".into(),
                    fix: "remove them, or map roles in iam-configuration.aws-sso.role-mappings"
                        .into(),
                });
            }
            None
        }
    };
    check_idb_settings(&mut p, &replicator.mesh_idb, mesh_idb.is_some());
    let meshstack = check_meshstack(&mut p, meshstack, project_roles, project_id);
    check_replicator(&mut p, &replicator);
    let accounts = accounts(&mut p, &replicator.accounts);

    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Config {
        platform: aws.platform.clone(),
        aws,
        sso: sso.flatten(),
        mesh_idb,
        identifiers: limits,
        meshstack: meshstack.expect("no problems, so meshstack is valid"),
        replicator,
        accounts,
        alias_pattern: alias_pattern.expect("no problems, so the alias pattern compiled"),
        email_pattern: email_pattern.expect("no problems, so the email pattern compiled"),
        warnings,
    })
}

fn check_platform(p: &mut Problems, platform: &str) {
    let ok = !platform.is_empty()
        && platform
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !ok {
        p.add(
            "aws.platform",
            format!("{platform:?} is not a platform identifier"),
            "use meshStack's full platform identifier `<platform>.<location>`, e.g. \"aws.aws-meshcloud\"",
        );
    }
}

fn check_identifiers(p: &mut Problems, ids: &raw::Identifiers) -> IdentifierLimits {
    for (field, value, max) in [
        (
            "customer_identifier_length",
            ids.customer_identifier_length,
            16,
        ),
        (
            "project_identifier_length",
            ids.project_identifier_length,
            30,
        ),
    ] {
        if value == 0 || value > max {
            p.add(
                format!("identifiers.{field}"),
                format!("{value} is outside 1..={max}, which AWS names and aliases require"),
                format!("set it to at most {max}, as in meshStack's own configuration"),
            );
        }
    }
    IdentifierLimits {
        customer: ids.customer_identifier_length.clamp(1, 16) as usize,
        project: ids.project_identifier_length.clamp(1, 30) as usize,
    }
}

fn project_roles(p: &mut Problems, entries: &[Entry<String>]) -> BTreeMap<RoleId, String> {
    let mut roles: BTreeMap<RoleId, String> = DEFAULT_PROJECT_ROLES
        .iter()
        .map(|(id, name)| (RoleId::from(*id), name.to_string()))
        .collect();
    let mut seen = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        let path = format!("meshstack.project-roles[{i}]");
        if !seen.insert(e.key.as_str()) {
            p.add(
                &path,
                format!("role `{}` is listed twice", e.key),
                "keep one entry per role identifier",
            );
        }
        if !is_identifier(&e.key) {
            p.add(
                &path,
                format!("`{}` is not a role identifier", e.key),
                "use the role's identifier (metadata.name in meshprojectroles), e.g. \"admin\"",
            );
        }
        if e.value.trim().is_empty() {
            p.add(
                &path,
                "the display name is empty",
                "give the role's display name, e.g. \"Project Admin\"",
            );
        }
        roles.insert(RoleId::from(e.key.as_str()), e.value.clone());
    }
    let mut by_name: BTreeMap<&str, &RoleId> = BTreeMap::new();
    for (id, name) in &roles {
        if let Some(other) = by_name.insert(name.as_str(), id) {
            p.add(
                "meshstack.project-roles",
                format!("roles `{other}` and `{id}` share the display name {name:?}"),
                "give each role its own display name, as meshStack does",
            );
        }
    }
    roles
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn check_role_key(p: &mut Problems, path: &str, key: &str, roles: &BTreeMap<RoleId, String>) {
    if !roles.contains_key(&RoleId::from(key)) {
        let known: Vec<&str> = roles.keys().map(RoleId::as_str).collect();
        p.add(
            path,
            format!(
                "`{key}` is not a known project role (known: {})",
                known.join(", ")
            ),
            "use a role identifier, or add the role to meshstack.project-roles",
        );
    }
}

fn check_role_arn(p: &mut Problems, path: &str, arn: &str) {
    // arn:aws:iam::123456789012:role/Name (partition may be aws-cn, aws-us-gov)
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && crate::model::AccountId::is_valid(parts[4])
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty());
    if !ok {
        p.add(
            path,
            format!("{arn:?} is not an IAM role ARN"),
            "write the full role ARN, e.g. \"arn:aws:iam::123456789012:role/MeshfedServiceRole\"",
        );
    }
}

fn check_policy_arn(p: &mut Problems, path: &str, arn: &str) {
    let ok = arn.starts_with("arn:aws")
        && arn.split(':').nth(2) == Some("iam")
        && arn.contains(":policy/");
    if !ok {
        p.add(
            path,
            format!("{arn:?} is not an IAM policy ARN"),
            "write a policy ARN, e.g. \"arn:aws:iam::aws:policy/ReadOnlyAccess\"",
        );
    }
}

fn check_aws(p: &mut Problems, aws: &raw::Aws, roles: &BTreeMap<RoleId, String>) {
    let region_ok = !aws.region.is_empty()
        && aws
            .region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        p.add(
            "aws.region",
            format!("{:?} is not an AWS region", aws.region),
            "write a region name, e.g. \"eu-central-1\"",
        );
    }
    check_role_arn(
        p,
        "aws.organizationRootAccountRole",
        &aws.organization_root_account_role,
    );
    check_role_arn(p, "aws.automationAccountRole", &aws.automation_account_role);
    if let Some(role) = &aws.account_access_role
        && (role.is_empty() || role.contains(['/', ':']))
    {
        p.add(
                "aws.accountAccessRole",
                format!("{role:?} is not a role name"),
                "give the role's name only, e.g. \"MeshstackAccountAccessRole\", or None for that default",
            );
    }
    for (i, e) in aws.role_mappings_managed.iter().enumerate() {
        let path = format!("aws.roleMappingsManaged[{i}]");
        check_role_key(p, &path, &e.key, roles);
        for (j, arn) in e.value.policies.iter().enumerate() {
            check_policy_arn(p, &format!("{path}.mapValue.policies[{j}]"), arn);
        }
    }
    for (i, e) in aws.role_mappings_external.iter().enumerate() {
        check_role_key(p, &format!("aws.roleMappingsExternal[{i}]"), &e.key, roles);
    }
}

fn alias_pattern(
    p: &mut Problems,
    source: Option<&str>,
    limits: IdentifierLimits,
) -> Option<Pattern> {
    let path = "aws.accountAliasPattern";
    let source = source.unwrap_or(DEFAULT_ALIAS_PATTERN);
    let pattern = match Pattern::compile(source, 3) {
        Ok(pattern) => pattern,
        Err(e) => {
            p.add(
                path,
                format!("{source:?}: {e}"),
                "arguments are 1 workspace, 2 project, 3 numeric project id",
            );
            return None;
        }
    };
    let bad: BTreeSet<char> = pattern
        .literal_text()
        .flat_map(str::chars)
        .filter(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        .collect();
    if !bad.is_empty() {
        p.add(
            path,
            format!("{source:?} puts {bad:?} into the alias; AWS allows lowercase letters, digits and single hyphens only"),
            "join the parts with `-`, e.g. \"%s-%s\"",
        );
    }
    if !(pattern.uses(1) && pattern.uses(2) || pattern.uses(3)) {
        p.add(path, format!("{source:?} does not make aliases unique"), "use workspace and project (%s-%s) or the numeric id (%3$s); aliases are unique across all of AWS");
    }
    let max = pattern.max_len(&[limits.customer, limits.project, NUMERIC_ID_MAX_LEN]);
    if max > ALIAS_MAX {
        p.add(
            path,
            format!(
                "{source:?} can render {max} characters; AWS allows {ALIAS_MIN} to {ALIAS_MAX}"
            ),
            "shorten the literal text of the pattern",
        );
    }
    Some(pattern)
}

fn email_pattern(p: &mut Problems, source: &str, limits: IdentifierLimits) -> Option<Pattern> {
    let path = "aws.accountEmailPattern";
    let pattern = match Pattern::compile(source, 1) {
        Ok(pattern) => pattern,
        Err(e) => {
            p.add(
                path,
                format!("{source:?}: {e}"),
                "use one `%s` for `<workspace>.<project>`, e.g. \"aws+%s@example.com\"",
            );
            return None;
        }
    };
    if !pattern.uses(1) {
        p.add(
            path,
            format!("{source:?} has no `%s`, so every account would get the same address"),
            "put `%s` before the `@`, e.g. \"aws+%s@example.com\"",
        );
    }
    let literal: String = pattern.literal_text().collect();
    if literal.matches('@').count() != 1 || source.find('@') < source.find("%s") {
        p.add(
            path,
            format!("{source:?} is not an address with the placeholder in its local part"),
            "write it as \"<name>+%s@<domain>\"",
        );
    }
    let max = pattern.max_len(&[limits.customer + 1 + limits.project]);
    if max > EMAIL_MAX {
        p.add(
            path,
            format!("{source:?} can render {max} characters; AWS allows {EMAIL_MAX}"),
            "keep the pattern at 20 characters or fewer, as the meshStack documentation advises",
        );
    }
    Some(pattern)
}

fn project_id(p: &mut Problems, raw: &raw::ProjectIdSource) -> ProjectIdConfig {
    if raw.tag.as_deref().is_some_and(|t| t.trim().is_empty()) {
        p.add(
            "meshstack.project-id.tag",
            "the tag name is empty",
            "use Some \"meshProjectId\", or None to read no tag",
        );
    }
    let mut overrides = BTreeMap::new();
    for (i, e) in raw.overrides.iter().enumerate() {
        let path = format!("meshstack.project-id.overrides[{i}]");
        let key = e
            .key
            .split_once('.')
            .filter(|(w, pr)| is_identifier(w) && is_identifier(pr));
        match key {
            Some((w, pr)) => {
                if overrides.insert(ProjectKey::new(w, pr), e.value).is_some() {
                    p.add(
                        &path,
                        format!("`{}` is listed twice", e.key),
                        "keep one entry per project",
                    );
                }
            }
            None => p.add(
                &path,
                format!("`{}` is not `<workspace>.<project>`", e.key),
                "write the key as workspace and project identifiers joined by a dot",
            ),
        }
    }
    let mut seen: BTreeMap<u64, &ProjectKey> = BTreeMap::new();
    for (key, id) in &overrides {
        if let Some(other) = seen.insert(*id, key) {
            p.add(
                "meshstack.project-id.overrides",
                format!("{other} and {key} both get id {id}"),
                "give every project its own numeric id",
            );
        }
    }
    ProjectIdConfig {
        tag: raw.tag.clone(),
        overrides,
    }
}

fn check_sso(
    p: &mut Problems,
    sso: raw::AwsSso,
    limits: IdentifierLimits,
    roles: &BTreeMap<RoleId, String>,
    project_id: &ProjectIdConfig,
) -> Option<SsoConfig> {
    let base = "iam-configuration.aws-sso";
    let scim_endpoint = check_url(p, &format!("{base}.scim-endpoint"), &sso.scim_endpoint);
    let instance = sso
        .arn
        .strip_prefix("arn:aws:sso:::instance/")
        .filter(|i| i.starts_with("ssoins-") && i.len() > 7 && !i.contains('/'));
    if instance.is_none() {
        p.add(
            format!("{base}.arn"),
            format!("{:?} is not an IAM Identity Center instance ARN", sso.arn),
            "copy it from the console: \"arn:aws:sso:::instance/ssoins-…\"",
        );
    }
    if sso.sso_access_token.is_empty() {
        p.add(format!("{base}.sso-access-token"), "the SCIM access token is empty", "generate one under Automatic provisioning and pass it with `env:AWS_SSO_TOKEN as Text`");
    }

    let mut mappings = BTreeMap::new();
    let mut role_names: BTreeMap<String, &str> = BTreeMap::new();
    for (i, e) in sso.role_mappings.iter().enumerate() {
        let path = format!("{base}.role-mappings[{i}]");
        check_role_key(p, &path, &e.key, roles);
        let name = &e.value.aws_role_name;
        if name.is_empty() || name.contains(FORBIDDEN_NAME_CHARS) {
            p.add(
                format!("{path}.mapValue.aws-role-name"),
                format!("{name:?} is empty or holds one of < > ; : % or a control character"),
                "use letters, digits, `.`, `-` and `_`",
            );
        }
        if let Some(other) = role_names.insert(name.to_lowercase(), &e.key) {
            p.add(format!("{path}.mapValue.aws-role-name"), format!("roles `{other}` and `{}` both use {name:?}, so their groups would get one name", e.key), "give each role its own aws-role-name");
        }
        if e.value.permission_set_arns.is_empty() {
            p.add(
                format!("{path}.mapValue.permission-set-arns"),
                "no permission set, so the group would grant nothing",
                "list at least one permission set ARN",
            );
        }
        let mut sets = Vec::new();
        for (j, arn) in e.value.permission_set_arns.iter().enumerate() {
            let ps_path = format!("{path}.mapValue.permission-set-arns[{j}]");
            let parsed = arn
                .strip_prefix("arn:aws:sso:::permissionSet/")
                .and_then(|rest| rest.split_once('/'))
                .filter(|(ins, ps)| {
                    ins.starts_with("ssoins-") && ps.starts_with("ps-") && ps.len() > 3
                });
            match parsed {
                None => p.add(
                    &ps_path,
                    format!("{arn:?} is not a permission set ARN"),
                    "write \"arn:aws:sso:::permissionSet/ssoins-…/ps-…\"",
                ),
                Some((ins, _)) if instance.is_some_and(|i| i != ins) => p.add(
                    &ps_path,
                    format!("{arn:?} belongs to instance {ins}, not to {}", sso.arn),
                    "use permission sets of the configured instance",
                ),
                Some(_) => {}
            }
            if sets.contains(&PermissionSetArn::from(arn.as_str())) {
                p.add(
                    &ps_path,
                    format!("{arn:?} is listed twice"),
                    "list each permission set once",
                );
            }
            sets.push(PermissionSetArn::from(arn.as_str()));
        }
        if mappings
            .insert(
                RoleId::from(e.key.as_str()),
                RoleMapping {
                    aws_role_name: name.clone(),
                    permission_sets: sets,
                },
            )
            .is_some()
        {
            p.add(
                &path,
                format!("role `{}` is mapped twice", e.key),
                "keep one mapping per role (Dhall would silently keep only the last)",
            );
        }
    }
    if mappings.is_empty() {
        p.add(
            format!("{base}.role-mappings"),
            "no role is mapped, so no group would be created",
            "map at least one project role, e.g. admin",
        );
    }

    let group_path = format!("{base}.group-name-pattern");
    let source = &sso.group_name_pattern;
    let group_pattern = match Pattern::compile(source, 4) {
        Ok(pattern) => Some(pattern),
        Err(e) => {
            p.add(&group_path, format!("{source:?}: {e}"), "arguments are 1 workspace, 2 project, 3 numeric project id, 4 aws-role-name; e.g. \"%s.%s.%4$s\"");
            None
        }
    };
    if let Some(pattern) = &group_pattern {
        if !(pattern.uses(1) && pattern.uses(2) || pattern.uses(3)) {
            p.add(
                &group_path,
                format!("{source:?} does not keep group names unique per project"),
                "use workspace and project (%s.%s) or the numeric project id (%3$s)",
            );
        }
        if mappings.len() > 1 && !pattern.uses(4) {
            p.add(&group_path, format!("{source:?} does not use the role name, so the {} roles' groups would share one name", mappings.len()), "add %4$s, e.g. \"%s.%s.%4$s\"");
        }
        let bad: BTreeSet<char> = pattern
            .literal_text()
            .flat_map(str::chars)
            .filter(|c| FORBIDDEN_NAME_CHARS.contains(c))
            .collect();
        if !bad.is_empty() {
            p.add(
                &group_path,
                format!(
                    "{source:?} puts {bad:?} into group names, which SCIM clients and AWS refuse"
                ),
                "use `.`, `-` or `_` as separators",
            );
        }
        let longest_role = mappings
            .values()
            .map(|m| m.aws_role_name.chars().count())
            .max()
            .unwrap_or(0);
        let max = GROUP_PREFIX.len()
            + pattern.max_len(&[
                limits.customer,
                limits.project,
                NUMERIC_ID_MAX_LEN,
                longest_role,
            ]);
        if max > GROUP_NAME_MAX {
            p.add(
                &group_path,
                format!("names can reach {max} characters; AWS allows {GROUP_NAME_MAX}"),
                "shorten the pattern or the aws-role-names",
            );
        }
        if pattern.uses(3) && project_id.tag.is_none() && project_id.overrides.is_empty() {
            p.add(&group_path, format!("{source:?} uses the numeric project id (argument 3), which meshStack's API does not expose"), "set meshstack.project-id.tag (e.g. Some \"meshProjectId\") or list meshstack.project-id.overrides, or drop %3$s");
        }
    }
    Some(SsoConfig {
        scim_endpoint: scim_endpoint?,
        instance_arn: sso.arn,
        group_pattern: group_pattern?,
        token: sso.sso_access_token,
        roles: mappings,
    })
}

/// The meshIdB mappings: `iam-configuration.mesh-idb`'s, plus those the seed's `Aws.dhall`
/// keeps in `aws.roleMappingsManaged` / `aws.roleMappingsExternal`, as one list each. A project
/// role maps to one AWS role, wherever it is mapped.
fn mesh_idb(
    p: &mut Problems,
    idb: raw::MeshIdb,
    aws: &raw::Aws,
    roles: &BTreeMap<RoleId, String>,
) -> raw::MeshIdb {
    let base = "iam-configuration.mesh-idb";
    // The seed's lists are checked where they stand, in check_aws.
    for (i, e) in idb.role_mappings_managed.iter().enumerate() {
        let path = format!("{base}.role-mappings-managed[{i}]");
        check_role_key(p, &path, &e.key, roles);
        for (j, arn) in e.value.policies.iter().enumerate() {
            check_policy_arn(p, &format!("{path}.mapValue.policies[{j}]"), arn);
        }
    }
    for (i, e) in idb.role_mappings_external.iter().enumerate() {
        let path = format!("{base}.role-mappings-external[{i}]");
        check_role_key(p, &path, &e.key, roles);
    }

    // Each project role and each IAM role once, wherever it is mapped.
    let entries = (idb.role_mappings_managed.iter().enumerate())
        .map(|(i, e)| {
            let path = format!("{base}.role-mappings-managed[{i}]");
            (path, &e.key, &e.value.aws_role_name)
        })
        .chain(aws.role_mappings_managed.iter().enumerate().map(|(i, e)| {
            let path = format!("aws.roleMappingsManaged[{i}]");
            (path, &e.key, &e.value.aws_role_name)
        }))
        .chain(idb.role_mappings_external.iter().enumerate().map(|(i, e)| {
            let path = format!("{base}.role-mappings-external[{i}]");
            (path, &e.key, &e.value.aws_role_name)
        }))
        .chain(aws.role_mappings_external.iter().enumerate().map(|(i, e)| {
            let path = format!("aws.roleMappingsExternal[{i}]");
            (path, &e.key, &e.value.aws_role_name)
        }));
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    let mut role_names: BTreeMap<String, String> = BTreeMap::new();
    for (path, key, role_name) in entries {
        if let Some(first) = seen.insert(key, path.clone()) {
            p.add(
                &path,
                format!("project role `{key}` is mapped already, at {first}"),
                "map each project role once, in one of the lists",
            );
        }
        let name_ok = !role_name.is_empty()
            && role_name.len() <= 64
            && role_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if !name_ok {
            p.add(
                format!("{path}.mapValue.aws-role-name"),
                format!("{role_name:?} is not an IAM role name"),
                "use 1 to 64 letters, digits and + = , . @ _ -",
            );
        } else if let Some(first) = role_names.insert(role_name.to_lowercase(), path.clone()) {
            p.add(
                format!("{path}.mapValue.aws-role-name"),
                format!("the IAM role {role_name:?} is named already, at {first} (IAM role names ignore case)"),
                "give each mapping its own aws-role-name",
            );
        }
    }

    let mut merged = idb;
    merged
        .role_mappings_managed
        .extend(aws.role_mappings_managed.iter().map(|e| raw::Entry {
            key: e.key.clone(),
            value: raw::IdbManagedRole {
                aws_role_name: e.value.aws_role_name.clone(),
                policies: e.value.policies.clone(),
            },
        }));
    merged
        .role_mappings_external
        .extend(aws.role_mappings_external.iter().map(|e| raw::Entry {
            key: e.key.clone(),
            value: raw::IdbExternalRole {
                aws_role_name: e.value.aws_role_name.clone(),
            },
        }));
    merged
}

/// HTTPS, or plain HTTP to a loopback address (test peers and the emulator).
fn check_url(p: &mut Problems, path: &str, text: &str) -> Option<url::Url> {
    match url::Url::parse(text) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Some(u),
        Ok(u) if u.scheme() == "http" && is_loopback(&u) => Some(u),
        Ok(u) if u.scheme() == "http" => {
            p.add(
                path,
                format!("{text:?} is plain http to a remote host"),
                "use https; plain http is only allowed for loopback test peers",
            );
            None
        }
        _ => {
            p.add(
                path,
                format!("{text:?} is not an absolute https URL"),
                "write the full URL, e.g. \"https://…\"",
            );
            None
        }
    }
}

pub(crate) fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn check_meshstack(
    p: &mut Problems,
    m: raw::MeshStack,
    project_roles: BTreeMap<RoleId, String>,
    project_id: ProjectIdConfig,
) -> Option<MeshStackConfig> {
    let base_url = check_url(p, "meshstack.base-url", &m.base_url);
    let auth = match m.credentials {
        raw::Credentials::ApiUser(u) => {
            if u.username.is_empty() || u.password.is_empty() {
                p.add("meshstack.credentials.api-user", "username or password is empty", "pass them with `env:MESHSTACK_USERNAME as Text` and `env:MESHSTACK_PASSWORD as Text`");
            }
            Auth::Basic {
                username: u.username,
                password: u.password,
            }
        }
        raw::Credentials::ApiKey(k) => {
            if k.client_id.is_empty() || k.client_secret.is_empty() {
                p.add("meshstack.credentials.api-key", "client-id or client-secret is empty", "pass them with `env:MESHSTACK_CLIENT_ID as Text` and `env:MESHSTACK_CLIENT_SECRET as Text`");
            }
            Auth::ApiKey {
                client_id: k.client_id,
                client_secret: k.client_secret,
            }
        }
    };
    if !(1..=1000).contains(&m.page_size) {
        p.add(
            "meshstack.page-size",
            format!(
                "{} is outside 1..=1000 (meshStack lowers anything above 1000)",
                m.page_size
            ),
            "use 1000",
        );
    }
    Some(MeshStackConfig {
        base_url: base_url?,
        auth,
        tenant_api_version: m.tenant_api_version,
        page_size: m.page_size.clamp(1, 1000) as u32,
        project_roles,
        project_id,
        expand_group_bindings: m.expand_group_bindings,
    })
}

fn check_replicator(p: &mut Problems, r: &raw::Replicator) {
    if r.schedule.interval_seconds == 0 {
        p.add(
            "replicator.schedule.interval-seconds",
            "0 would sync without pause",
            "use at least 60",
        );
    }
    if r.schedule.jitter_seconds > r.schedule.interval_seconds {
        p.add(
            "replicator.schedule.jitter-seconds",
            "the jitter is longer than the interval",
            "keep it below interval-seconds",
        );
    }
    for (field, value, max) in [
        ("scim", r.rate_limits.scim, AWS_MAX_TPS),
        ("sso-admin", r.rate_limits.sso_admin, AWS_MAX_TPS),
        ("identitystore", r.rate_limits.identitystore, AWS_MAX_TPS),
        ("iam", r.rate_limits.iam, AWS_MAX_TPS),
        ("meshstack", r.rate_limits.meshstack, f64::INFINITY),
    ] {
        if !(value > 0.0 && value <= max) {
            p.add(
                format!("replicator.rate-limits.{field}"),
                format!("{value} requests/s is outside (0, {max}]"),
                "AWS throttles each family at 20/s and the customer's IdP shares the SCIM budget; 5.0 is a safe default",
            );
        }
    }
    if !(0.0..=1.0).contains(&r.deletion_guard.max_share) {
        p.add(
            "replicator.deletion-guard.max-share",
            format!(
                "{} is not a share between 0.0 and 1.0",
                r.deletion_guard.max_share
            ),
            "e.g. 0.2 refuses plans that delete more than a fifth",
        );
    }
    if !(0.0..=0.9).contains(&r.drift_scan.share) {
        p.add(
            "replicator.drift-scan.share",
            format!(
                "{} is not a share between 0.0 and 0.9",
                r.drift_scan.share
            ),
            "0.25 lets the scan spend a quarter of each family's rate and leaves the rest to syncs; 0.0 turns it off",
        );
    }
    if !(1..=15).contains(&r.sso_admin.max_in_flight) {
        p.add(
            "replicator.sso-admin.max-in-flight",
            format!(
                "{} assignment changes in flight is outside 1–15",
                r.sso_admin.max_in_flight
            ),
            "AWS refuses more than 15 at once; 10 leaves room for other tools",
        );
    }
    if r.audit_log.as_deref().is_some_and(|f| f.trim().is_empty()) {
        p.add(
            "replicator.audit-log",
            "the file name is empty",
            "name a file, or use None Text to write audit lines to stderr",
        );
    }
    if r.state.as_deref().is_some_and(|f| f.trim().is_empty()) {
        p.add(
            "replicator.state",
            "the file name is empty",
            "name a file on a volume that outlives the process, or use None Text to keep the record in memory",
        );
    }
    let serve = &r.serve;
    if serve.listen.parse::<std::net::SocketAddr>().is_err() {
        p.add(
            "replicator.serve.listen",
            format!("{:?} is not an address with a port", serve.listen),
            "e.g. \"127.0.0.1:8080\", or \"0.0.0.0:8080\" in a container",
        );
    }
    if let Some(metrics) = &serve.metrics_listen {
        match metrics.parse::<std::net::SocketAddr>() {
            Err(_) => p.add(
                "replicator.serve.metrics-listen",
                format!("{metrics:?} is not an address with a port"),
                "e.g. \"0.0.0.0:9090\" in a container, or None Text to serve /metrics on listen",
            ),
            Ok(at)
                if serve
                    .listen
                    .parse::<std::net::SocketAddr>()
                    .is_ok_and(|l| l.port() == at.port() && at.port() != 0) =>
            {
                p.add(
                    "replicator.serve.metrics-listen",
                    format!(
                        "{metrics:?} uses the port of replicator.serve.listen ({})",
                        serve.listen
                    ),
                    "give the metrics listener a port of its own, e.g. 9090",
                )
            }
            Ok(_) => {}
        }
    }
    for (field, secret) in [
        ("webhook-token", &serve.webhook_token),
        ("webhook-hmac-secret", &serve.webhook_hmac_secret),
    ] {
        if secret.as_ref().is_some_and(|s| s.expose().len() < 16) {
            p.add(
                format!("replicator.serve.{field}"),
                "shorter than 16 characters",
                "use a long random value, e.g. `openssl rand -hex 32`, imported with env:",
            );
        }
    }
    if !(64..=1_048_576).contains(&serve.max_body_bytes) {
        p.add(
            "replicator.serve.max-body-bytes",
            format!("{} is outside 64–1048576", serve.max_body_bytes),
            "a sync request is a few hundred bytes; 4096 is plenty",
        );
    }
    if serve.run_deadline_seconds == 0 {
        p.add(
            "replicator.serve.run-deadline-seconds",
            "0 would stop every run at once",
            "give a whole run time to finish, e.g. 3600",
        );
    }
    if let Some(le) = &r.leader_election {
        leader_election(p, le);
    }
    let between_syncs = r.schedule.interval_seconds + r.schedule.jitter_seconds;
    if let Some(max_age) = serve.ready_max_age_seconds
        && max_age <= between_syncs
    {
        p.add(
            "replicator.serve.ready-max-age-seconds",
            format!(
                "{max_age} s is not above interval-seconds + jitter-seconds ({between_syncs} s), \
                 so a healthy replicator would turn unready between two syncs"
            ),
            "allow a few missed syncs, e.g. Some (3 × interval-seconds), or None: derived from \
             the schedule",
        );
    }
}

/// The Lease's name and namespace are Kubernetes names, and its timings must nest as
/// client-go's do: retry period < renew deadline < lease duration, so that a leader that cannot
/// renew stops writing before another may take over.
fn leader_election(p: &mut Problems, le: &raw::LeaderElection) {
    let dns_label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    for (field, value) in [("lease-name", &le.lease_name), ("namespace", &le.namespace)] {
        if !dns_label(value) {
            p.add(
                format!("replicator.leader-election.{field}"),
                format!("{value:?} is not a Kubernetes name"),
                "use lowercase letters, digits and -, at most 63, e.g. \"aws-replicator\"",
            );
        }
    }
    if le.retry_period_seconds == 0 || le.retry_period_seconds >= le.renew_deadline_seconds {
        p.add(
            "replicator.leader-election.retry-period-seconds",
            format!(
                "{} s is not between 0 and renew-deadline-seconds ({} s)",
                le.retry_period_seconds, le.renew_deadline_seconds
            ),
            "renew several times within the deadline, e.g. 2 with a deadline of 10",
        );
    }
    if le.renew_deadline_seconds >= le.lease_duration_seconds {
        p.add(
            "replicator.leader-election.renew-deadline-seconds",
            format!(
                "{} s is not below lease-duration-seconds ({} s), so a leader that cannot renew \
                 could still be writing when another takes over",
                le.renew_deadline_seconds, le.lease_duration_seconds
            ),
            "keep it well below, e.g. 10 with a lease of 15 (client-go's defaults)",
        );
    }
}

/// Tag keys the replicator writes itself; landing zones may not set them.
pub(crate) const OWN_TAG_PREFIX: &str = "aws-replicator:";

fn accounts(p: &mut Problems, raw: &raw::Accounts) -> AccountsConfig {
    let mut landing_zones = BTreeMap::new();
    for (i, e) in raw.landing_zones.iter().enumerate() {
        let path = format!("replicator.accounts.landing-zones[{i}]");
        if e.key.trim().is_empty() {
            p.add(
                format!("{path}.mapKey"),
                "the landing-zone identifier is empty",
                "use meshStack's landing-zone identifier, as tenants name it",
            );
        }
        let zone = landing_zone(p, &format!("{path}.mapValue"), &e.value);
        if landing_zones.insert(e.key.clone(), zone).is_some() {
            p.add(
                format!("{path}.mapKey"),
                format!("landing zone {:?} is listed twice", e.key),
                "keep one entry per landing zone",
            );
        }
    }
    let tag = &raw.avm_done_tag;
    check_tag(p, "replicator.accounts.avm-done-tag", &tag.key, &tag.value);
    if !(60..=3600).contains(&raw.create_timeout_seconds) {
        p.add(
            "replicator.accounts.create-timeout-seconds",
            format!("{} s is outside 60–3600", raw.create_timeout_seconds),
            "AWS creates an account in a few minutes; 900 is a safe default",
        );
    }
    AccountsConfig {
        landing_zones,
        avm_done_tag: raw.avm_done_tag.clone(),
        create_timeout: std::time::Duration::from_secs(raw.create_timeout_seconds),
    }
}

fn landing_zone(p: &mut Problems, path: &str, raw: &raw::LandingZone) -> LandingZone {
    let ou = raw.organizational_unit.trim();
    let organizational_unit = if let Some(rest) = ou.strip_prefix('/') {
        let names: Vec<String> = rest
            .split('/')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if names.iter().any(|n| n.len() > 128 || n.trim() != n) {
            p.add(
                format!("{path}.organizational-unit"),
                format!("{ou:?} has an OU name that AWS refuses (longer than 128 characters, or padded with spaces)"),
                "write the path as \"/workloads/prod\"",
            );
        }
        OuTarget::Path(names)
    } else if is_ou_id(ou) {
        OuTarget::Id(ou.to_owned())
    } else {
        p.add(
            format!("{path}.organizational-unit"),
            format!("{ou:?} is neither an OU id nor a path"),
            "write an OU id (\"ou-ab12-cd34ef56\" or the root \"r-ab12\") or a path below the root (\"/workloads/prod\")",
        );
        OuTarget::Path(Vec::new())
    };
    let mut tags = BTreeMap::new();
    for (j, t) in raw.tags.iter().enumerate() {
        let tag_path = format!("{path}.tags[{j}]");
        check_tag(p, &tag_path, &t.key, &t.value);
        if t.key.starts_with(OWN_TAG_PREFIX) {
            p.add(
                format!("{tag_path}.mapKey"),
                format!("{:?} is a tag the replicator writes itself", t.key),
                format!("choose a key that does not start with {OWN_TAG_PREFIX}"),
            );
        }
        tags.insert(t.key.clone(), t.value.clone());
    }
    let access_stack = raw.access_stack.as_ref().map(|a| {
        let stack_path = format!("{path}.access-stack");
        if !is_cfn_name(&a.stack_name) {
            p.add(
                format!("{stack_path}.stack-name"),
                format!("{:?} is not a stack name", a.stack_name),
                "start with a letter; use letters, digits and hyphens, at most 128",
            );
        }
        check_template(p, &format!("{stack_path}.template"), &a.template);
        AccessStack {
            stack_name: a.stack_name.clone(),
            template: a.template.clone(),
        }
    });
    let mut stack_sets = Vec::new();
    for (j, s) in raw.stack_sets.iter().enumerate() {
        let set_path = format!("{path}.stack-sets[{j}]");
        if !is_cfn_name(&s.name) {
            p.add(
                format!("{set_path}.name"),
                format!("{:?} is not a StackSet name", s.name),
                "give the StackSet's name in the automation account (letters, digits, hyphens)",
            );
        }
        if s.regions.is_empty() {
            p.add(
                format!("{set_path}.regions"),
                "no region, so no instance would be created",
                "list at least one region, e.g. [ \"eu-central-1\" ]",
            );
        }
        for (k, region) in s.regions.iter().enumerate() {
            if !is_region(region) {
                p.add(
                    format!("{set_path}.regions[{k}]"),
                    format!("{region:?} is not an AWS region"),
                    "write a region name, e.g. \"eu-central-1\"",
                );
            }
        }
        stack_sets.push(StackSetTarget {
            name: s.name.clone(),
            regions: s.regions.clone(),
        });
    }
    if let Some(arn) = &raw.lambda
        && !is_lambda_arn(arn)
    {
        p.add(
            format!("{path}.lambda"),
            format!("{arn:?} is not a Lambda function ARN"),
            "give the function's ARN, e.g. \"arn:aws:lambda:eu-central-1:210987654321:function:PermissionDowngrade\"",
        );
    }
    LandingZone {
        organizational_unit,
        tags,
        access_stack,
        stack_sets,
        lambda: raw.lambda.clone(),
    }
}

fn check_tag(p: &mut Problems, path: &str, key: &str, value: &str) {
    if key.is_empty() || key.chars().count() > 128 || key.to_ascii_lowercase().starts_with("aws:") {
        p.add(
            format!("{path}.key"),
            format!("{key:?} is not a tag key AWS accepts"),
            "use 1–128 characters, not starting with aws:",
        );
    }
    if value.chars().count() > 256 {
        p.add(
            format!("{path}.value"),
            "longer than 256 characters",
            "shorten the tag value",
        );
    }
}

/// CloudFormation's own limit for an inline `TemplateBody`.
const TEMPLATE_BODY_MAX: usize = 51_200;

fn check_template(p: &mut Problems, path: &str, template: &str) {
    match serde_json::from_str::<serde_json::Value>(template) {
        Err(e) => p.add(
            path,
            format!("the template is not valid JSON: {e}"),
            "fix the JSON (YAML templates are not accepted here), or import the file with `./access-stack.json as Text`",
        ),
        Ok(v) if !v.get("Resources").is_some_and(|r| r.is_object()) => p.add(
            path,
            "the template has no \"Resources\" object",
            "give a CloudFormation template with at least one resource",
        ),
        Ok(_) => {}
    }
    if template.len() > TEMPLATE_BODY_MAX {
        p.add(
            path,
            format!(
                "the template has {} bytes; CloudFormation takes {TEMPLATE_BODY_MAX} inline",
                template.len()
            ),
            "shorten the template",
        );
    }
}

fn is_ou_id(s: &str) -> bool {
    let lower_alnum = |x: &str| {
        !x.is_empty()
            && x.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    match s.split('-').collect::<Vec<_>>().as_slice() {
        ["ou", root, ou] => lower_alnum(root) && lower_alnum(ou),
        ["r", root] => lower_alnum(root),
        _ => false,
    }
}

fn is_cfn_name(s: &str) -> bool {
    s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn is_lambda_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(7, ':').collect();
    matches!(parts.as_slice(),
        ["arn", partition, "lambda", region, account, "function", name]
            if partition.starts_with("aws") && is_region(region)
                && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
                && !name.is_empty())
}

fn check_idb_settings(p: &mut Problems, idb: &raw::MeshIdbSettings, active: bool) {
    let base = "replicator.mesh-idb";
    let name = &idb.saml_provider_name;
    let name_ok = (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !name_ok {
        p.add(
            format!("{base}.saml-provider-name"),
            format!("{name:?} is not a SAML provider name IAM accepts"),
            "use 1–128 letters, digits, '.', '_' or '-', e.g. \"meshIdB\"",
        );
    }
    if url::Url::parse(&idb.saml_audience).is_err() {
        p.add(
            format!("{base}.saml-audience"),
            format!("{:?} is not a URL", idb.saml_audience),
            "keep the default \"https://signin.aws.amazon.com/saml\"",
        );
    }
    match (&idb.idp_metadata, active) {
        (None, true) => p.add(
            format!("{base}.idp-metadata"),
            "mesh-idb is active but meshIdB's SAML metadata is not given",
            "import the metadata file: `idp-metadata = Some ./meshidb-metadata.xml as Text`",
        ),
        (Some(xml), _) if !xml.contains("EntityDescriptor") => p.add(
            format!("{base}.idp-metadata"),
            "this is not SAML metadata (no EntityDescriptor)",
            "use the metadata XML that meshIdB publishes",
        ),
        (Some(xml), _) if !(1000..=10_000_000).contains(&xml.len()) => p.add(
            format!("{base}.idp-metadata"),
            format!("{} characters; IAM takes 1,000 to 10,000,000", xml.len()),
            "use the complete metadata XML that meshIdB publishes",
        ),
        _ => {}
    }
}
