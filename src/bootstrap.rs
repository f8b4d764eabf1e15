//! `aws-replicator bootstrap`: the IAM policies and trust relationships the seed asks operators
//! to create in the meshcloud, management and automation accounts, filled in from the config.
//! The management role's policy grants exactly what the configured `replicator.sso-admin` reads
//! and writes need, no more (and no sso actions at all on the meshIdB path). An ExternalId
//! condition is written only where the config has an ExternalId: with none, the replicator sends
//! none, and a condition would refuse every AssumeRole.
//!
//! Pure: config in, files (name and text) out; the CLI writes them.

use crate::config::Config;
use serde_json::{Value, json};

const POLICY_VERSION: &str = "2012-10-17";
/// The permission-downgrade Lambda (Python), as shipped under `deploy/lambda/`.
pub const PERMISSION_DOWNGRADE_LAMBDA: &str =
    include_str!("../deploy/lambda/permission_downgrade.py");
/// What a file shows where `aws.organizationRootAccountExternalId` goes, unless it is asked to
/// reveal it. The two ExternalIds have their own placeholders, so neither is pasted for the other.
pub const MANAGEMENT_EXTERNAL_ID_PLACEHOLDER: &str = "<<MANAGEMENT_EXTERNAL_ID>>";
/// The same for `aws.automationAccountExternalId`.
pub const AUTOMATION_EXTERNAL_ID_PLACEHOLDER: &str = "<<AUTOMATION_EXTERNAL_ID>>";
/// The file that says where the policies differ from the seed's, and why.
pub const DIFFERENCES: &str = "DIFFERENCES.md";

/// What an operator does with a file `files` wrote, for the command's listing.
pub fn what_to_do(name: &str) -> String {
    let role = |name: &str, suffix: &str| {
        name.rsplit('/')
            .next()
            .and_then(|f| f.strip_suffix(suffix))
            .unwrap_or("")
            .to_owned()
    };
    let account = name.split('/').next().unwrap_or("");
    match name {
        "README.md" => "read first: which account gets which role, and from which file".into(),
        DIFFERENCES => "read: where these policies differ from the seed's, and why".into(),
        "meshcloud/meshfed-service-user-policy.json" => {
            "attach to IAM user meshfed-service-user in the meshcloud account".into()
        }
        "templates/stackset.json" => {
            "create a StackSet from it in the automation account; name it in the landing zone's stack-sets".into()
        }
        "templates/access-stack.json" => {
            "the landing zone's access-stack template: import it with `./<this folder>/templates/access-stack.json as Text`".into()
        }
        "lambda/permission_downgrade.py" => {
            "deploy as the permission-downgrade Lambda in the automation account; its ARN goes into the landing zone's lambda".into()
        }
        n if n.ends_with("-policy.json") => format!(
            "the permissions policy of role {} in the {account} account",
            role(n, "-policy.json")
        ),
        n if n.ends_with("-trust.json") => format!(
            "the trust policy of role {} in the {account} account",
            role(n, "-trust.json")
        ),
        _ => String::new(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{field}: {value:?} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)")]
    RoleArn { field: &'static str, value: String },
    #[error(
        "--meshcloud-account-id: {0:?} is not a 12-digit AWS account id (the account of meshfed-service-user)"
    )]
    AccountId(String),
}

pub struct Options<'a> {
    /// The account where `meshfed-service-user` lives.
    pub meshcloud_account_id: &'a str,
    /// Write the configured ExternalIds into the files instead of a placeholder.
    pub reveal_external_id: bool,
}

/// (path relative to the output folder, contents)
pub type File = (String, String);

struct Role {
    account: String,
    name: String,
    arn: String,
}

fn role(field: &'static str, arn: &str) -> Result<Role, BootstrapError> {
    let bad = || BootstrapError::RoleArn {
        field,
        value: arn.to_owned(),
    };
    let rest = arn.strip_prefix("arn:aws:iam::").ok_or_else(bad)?;
    let (account, name) = rest.split_once(":role/").ok_or_else(bad)?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return Err(bad());
    }
    Ok(Role {
        account: account.to_owned(),
        name: name.rsplit('/').next().unwrap_or(name).to_owned(),
        arn: arn.to_owned(),
    })
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON values serialize") + "\n"
}

/// An AssumeRole statement, with the ExternalId condition when there is an ExternalId.
fn assume_role(mut statement: Value, external_id: Option<&str>) -> Value {
    if let Some(id) = external_id {
        statement["Condition"] = json!({"StringEquals": {"sts:ExternalId": id}});
    }
    statement
}

fn trust_from_user(meshcloud: &str, external_id: Option<&str>) -> Value {
    json!({
        "Version": POLICY_VERSION,
        "Statement": [assume_role(json!({
            "Sid": "",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{meshcloud}:user/meshfed-service-user")},
            "Action": "sts:AssumeRole"
        }), external_id)]
    })
}

/// What the configured features reach, and so what the policies grant: an AWS setup no
/// wider than the replicator's calls.
struct Uses {
    /// Accounts are created, moved, tagged and located (tenants of a configured landing zone).
    organizations: bool,
    /// Member accounts are entered through their access role (landing zones bootstrap them,
    /// the meshIdB path writes their IAM).
    member_accounts: bool,
    /// The automation account is entered (a landing zone with StackSets or the Lambda).
    automation: bool,
}

impl Uses {
    fn of(config: &Config) -> Self {
        let zones = &config.accounts.landing_zones;
        Uses {
            organizations: !zones.is_empty(),
            member_accounts: !zones.is_empty() || config.mesh_idb.is_some(),
            automation: zones
                .values()
                .any(|z| !z.stack_sets.is_empty() || z.lambda.is_some()),
        }
    }
}

pub fn files(config: &Config, options: &Options) -> Result<Vec<File>, BootstrapError> {
    let meshcloud = options.meshcloud_account_id;
    if meshcloud.len() != 12 || !meshcloud.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BootstrapError::AccountId(meshcloud.to_owned()));
    }
    let aws = &config.aws;
    let management = role(
        "aws.organizationRootAccountRole",
        &aws.organization_root_account_role,
    )?;
    let automation = role("aws.automationAccountRole", &aws.automation_account_role)?;
    let external_id = |secret: &Option<crate::secret::Secret>, placeholder: &str| match secret {
        Some(s) if options.reveal_external_id => Some(s.expose().to_owned()),
        Some(_) => Some(placeholder.to_owned()),
        None => None,
    };
    let management_external_id = external_id(
        &aws.organization_root_account_external_id,
        MANAGEMENT_EXTERNAL_ID_PLACEHOLDER,
    );
    let automation_external_id = external_id(
        &aws.automation_account_external_id,
        AUTOMATION_EXTERNAL_ID_PLACEHOLDER,
    );
    let access_role = aws
        .account_access_role
        .as_deref()
        .unwrap_or("MeshstackAccountAccessRole");

    let uses = Uses::of(config);
    let mut user_statements = vec![assume_role(
        json!({
            "Sid": "", "Effect": "Allow", "Action": "sts:AssumeRole",
            "Resource": management.arn
        }),
        management_external_id.as_deref(),
    )];
    if uses.automation {
        user_statements.push(assume_role(
            json!({
                "Sid": "", "Effect": "Allow", "Action": "sts:AssumeRole",
                "Resource": automation.arn
            }),
            automation_external_id.as_deref(),
        ));
    }
    let user_policy = json!({ "Version": POLICY_VERSION, "Statement": user_statements });

    let sso_admin = &config.replicator.sso_admin;
    let mut sso_actions = vec![
        "sso:ListAccountAssignments",
        "sso:CreateAccountAssignment",
        "sso:DescribeAccountAssignmentCreationStatus",
    ];
    if sso_admin.delete_assignments {
        sso_actions.extend([
            "sso:DeleteAccountAssignment",
            "sso:DescribeAccountAssignmentDeletionStatus",
        ]);
    }
    if sso_admin.list_assignments_for_principal {
        sso_actions.push("sso:ListAccountAssignmentsForPrincipal");
    }
    if sso_admin.list_assignment_status {
        sso_actions.extend([
            "sso:ListAccountAssignmentCreationStatus",
            "sso:ListAccountAssignmentDeletionStatus",
        ]);
    }
    let mut management_statements = Vec::new();
    if uses.member_accounts {
        management_statements.push(assume_role(
            json!({
                "Sid": "StsAccessMemberAccount", "Effect": "Allow", "Action": "sts:AssumeRole",
                "Resource": format!("arn:aws:iam::*:role/{access_role}")
            }),
            management_external_id.as_deref(),
        ));
    }
    if uses.organizations {
        management_statements.extend([
            json!({
                "Sid": "OrgManagementAccess1", "Effect": "Allow",
                "Action": [
                    "organizations:UntagResource",
                    "organizations:TagResource",
                    "organizations:MoveAccount",
                    "organizations:ListTagsForResource",
                    "organizations:ListParents",
                    "organizations:ListOrganizationalUnitsForParent",
                    "organizations:DescribeOrganizationalUnit",
                    "organizations:DescribeAccount",
                    "organizations:CreateOrganizationalUnit"
                ],
                "Resource": [
                    format!("arn:aws:organizations::{}:root/o-*/r-*", management.account),
                    "arn:aws:organizations::*:ou/o-*/ou-*",
                    "arn:aws:organizations::*:account/o-*/*"
                ]
            }),
            json!({
                "Sid": "OrgManagementAccess2", "Effect": "Allow",
                "Action": [
                    "organizations:ListRoots",
                    "organizations:ListAccounts",
                    "organizations:DescribeCreateAccountStatus",
                    "organizations:CreateAccount"
                ],
                "Resource": "*"
            }),
        ]);
    }
    let mut management_policy =
        json!({ "Version": POLICY_VERSION, "Statement": management_statements });
    if let Some(sso) = &config.sso {
        management_policy["Statement"]
            .as_array_mut()
            .expect("a statement list")
            .push(json!({
                "Sid": "OrgManagementAccessSSO", "Effect": "Allow",
                "Action": sso_actions,
                "Resource": [sso.instance_arn, "arn:aws:sso:::permissionSet/*/*", "arn:aws:sso:::account/*"]
            }));
    }

    let automation_policy = json!({
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "AutomationPolicy", "Effect": "Allow",
            "Action": [
                "lambda:InvokeFunction",
                "cloudformation:UpdateStackInstances",
                "cloudformation:ListStackInstances",
                "cloudformation:DescribeStackSet",
                "cloudformation:CreateStackInstances",
                // Beyond the guide's policy: the replicator waits for the operation it started.
                "cloudformation:DescribeStackSetOperation"
            ],
            "Resource": "*"
        }]
    });
    let stackset_admin_policy = json!({
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "AllowAssumeCloudFormationExecutionOnAllAccounts", "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": "arn:aws:iam::*:role/AWSCloudFormationStackSetExecutionRole"
        }]
    });
    let stackset_admin_trust = json!({
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "", "Effect": "Allow",
            "Principal": {"Service": "cloudformation.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    });

    let role_trust = |principal: Value| {
        json!({
            "Version": POLICY_VERSION,
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}]
        })
    };
    let join_arn = |parameter: &str, suffix: &str| json!({"Fn::Join": ["", ["arn:aws:iam::", {"Ref": parameter}, suffix]]});
    let account_parameter = |default: &str, description: &str| json!({"Type": "String", "Default": default, "AllowedPattern": "[0-9]{12}", "Description": description});
    let access_stack = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "aws-replicator access stack: the role StackSets from the automation account use in a new account",
        "Parameters": {
            "AutomationAccountId": account_parameter(&automation.account, "The ID of the automation account")
        },
        "Resources": {
            "AWSCloudFormationStackSetExecutionRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": "AWSCloudFormationStackSetExecutionRole",
                    "AssumeRolePolicyDocument": role_trust(join_arn("AutomationAccountId", ":root")),
                    "Path": "/",
                    "Policies": [
                        {
                            "PolicyName": "MinimumCloudFormationPolicy",
                            "PolicyDocument": {
                                "Version": POLICY_VERSION,
                                "Statement": [{"Effect": "Allow", "Action": ["cloudformation:*", "s3:*", "sns:*"], "Resource": "*"}]
                            }
                        },
                        {
                            "PolicyName": "StackSetExecutionPolicy",
                            "PolicyDocument": {
                                "Version": POLICY_VERSION,
                                "Statement": [{"Effect": "Allow", "Action": ["iam:*"], "Resource": "*"}]
                            }
                        }
                    ]
                }
            }
        }
    });
    let stackset = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "aws-replicator StackSet: an admin role for the management account and the role the permission-downgrade Lambda assumes",
        "Parameters": {
            "ManagementAccountId": account_parameter(&management.account, "The ID of the management account"),
            "AutomationAccountId": account_parameter(&automation.account, "The ID of the automation account")
        },
        "Resources": {
            "OrganizationAccountAccessRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": "OrganizationAccountAccessRole",
                    "AssumeRolePolicyDocument": role_trust(join_arn("ManagementAccountId", ":root")),
                    "Path": "/",
                    "ManagedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]
                }
            },
            "PermissionDowngradeLambdaExecutionRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": "PermissionDowngradeLambdaExecutionRole",
                    "AssumeRolePolicyDocument": role_trust(join_arn(
                        "AutomationAccountId",
                        ":role/PermissionDowngradeLambdaAdministrationRole"
                    )),
                    "Path": "/",
                    "ManagedPolicyArns": ["arn:aws:iam::aws:policy/IAMFullAccess"]
                }
            }
        }
    });
    let lambda_admin_policy = json!({
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "AllowAssumePermissionDowngradeLambdaOnAllAccounts", "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": "arn:aws:iam::*:role/PermissionDowngradeLambdaExecutionRole"
        }]
    });
    let lambda_admin_trust = json!({
        "Version": POLICY_VERSION,
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    });

    let readme = format!(
        "# IAM setup for aws-replicator on platform {platform}\n\n\
         Generated by `aws-replicator bootstrap` from the config; regenerate after changing it.\n\n\
         | account | create | files |\n|---|---|---|\n\
         | meshcloud ({meshcloud}) | IAM user `meshfed-service-user` with an access key; its keys go into `aws.meshfedServiceUser` | `meshcloud/meshfed-service-user-policy.json` |\n\
         | management ({m_account}) | role `{m_name}` | `management/{m_name}-policy.json`, `management/{m_name}-trust.json` |\n\
         | automation ({a_account}) | role `{a_name}` | `automation/{a_name}-policy.json`, `automation/{a_name}-trust.json` |\n\
         | automation ({a_account}) | role `AWSCloudFormationStackSetAdministrationRole` | `automation/AWSCloudFormationStackSetAdministrationRole-policy.json`, `…-trust.json` |\n\
         | automation ({a_account}) | role `PermissionDowngradeLambdaAdministrationRole`, plus the managed policy `AWSLambdaBasicExecutionRole` | `automation/PermissionDowngradeLambdaAdministrationRole-policy.json`, `…-trust.json` |\n\
         | automation ({a_account}) | a StackSet from `templates/stackset.json`; its ARN goes into the landing zone | `templates/stackset.json` |\n\
         | automation ({a_account}) | a Lambda (Python 3.12, handler `permission_downgrade.main`) running as `PermissionDowngradeLambdaAdministrationRole`{access_role_env} | `lambda/permission_downgrade.py` |\n\
         | each new account | the access stack of the landing zone | `templates/access-stack.json` |\n\n\
         {external_id_note}\n",
        access_role_env = if access_role == "MeshstackAccountAccessRole" {
            String::new()
        } else {
            format!(", with the environment variable `ACCESS_ROLE_NAME={access_role}`")
        },
        platform = config.platform,
        m_account = management.account,
        m_name = management.name,
        a_account = automation.account,
        a_name = automation.name,
        external_id_note = if management_external_id.is_none() || automation_external_id.is_none() {
            "A role without a configured ExternalId gets no ExternalId condition, since the replicator \
             sends none. The meshStack guide recommends one per role (a random GUID) in \
             `aws.organizationRootAccountExternalId` and `aws.automationAccountExternalId`."
                .to_owned()
        } else if options.reveal_external_id {
            "The files contain the configured ExternalIds: keep them as you keep the config's secrets."
                .to_owned()
        } else {
            format!(
                "Replace `{MANAGEMENT_EXTERNAL_ID_PLACEHOLDER}` with the ExternalId of `aws.organizationRootAccountExternalId` \
                 and `{AUTOMATION_EXTERNAL_ID_PLACEHOLDER}` with that of `aws.automationAccountExternalId` \
                 (or run with `--reveal-external-id`)."
            )
        },
    );

    let differences = differences(
        config,
        &management,
        &automation,
        options.reveal_external_id,
        &uses,
    );

    Ok(vec![
        ("README.md".into(), readme),
        (DIFFERENCES.into(), differences),
        (
            "meshcloud/meshfed-service-user-policy.json".into(),
            pretty(&user_policy),
        ),
        (
            format!("management/{}-policy.json", management.name),
            pretty(&management_policy),
        ),
        (
            format!("management/{}-trust.json", management.name),
            pretty(&trust_from_user(
                meshcloud,
                management_external_id.as_deref(),
            )),
        ),
        (
            format!("automation/{}-policy.json", automation.name),
            pretty(&automation_policy),
        ),
        (
            format!("automation/{}-trust.json", automation.name),
            pretty(&trust_from_user(
                meshcloud,
                automation_external_id.as_deref(),
            )),
        ),
        (
            "automation/AWSCloudFormationStackSetAdministrationRole-policy.json".into(),
            pretty(&stackset_admin_policy),
        ),
        (
            "automation/AWSCloudFormationStackSetAdministrationRole-trust.json".into(),
            pretty(&stackset_admin_trust),
        ),
        (
            "automation/PermissionDowngradeLambdaAdministrationRole-policy.json".into(),
            pretty(&lambda_admin_policy),
        ),
        (
            "automation/PermissionDowngradeLambdaAdministrationRole-trust.json".into(),
            pretty(&lambda_admin_trust),
        ),
        ("templates/access-stack.json".into(), pretty(&access_stack)),
        ("templates/stackset.json".into(), pretty(&stackset)),
        (
            "lambda/permission_downgrade.py".into(),
            PERMISSION_DOWNGRADE_LAMBDA.to_owned(),
        ),
    ])
}

/// Where the written policies differ from the seed's (meshStack's AWS platform guide), and why:
/// an operator who compares them with the guide finds each difference explained.
fn differences(
    config: &Config,
    management: &Role,
    automation: &Role,
    revealed: bool,
    uses: &Uses,
) -> String {
    let policy = format!("management/{}-policy.json", management.name);
    let mut left_out = Vec::new();
    if !uses.organizations {
        left_out.push(format!(
            "- `{policy}` has no `organizations:` statements (the seed's `OrgManagementAccess1` \
             and `OrgManagementAccess2`, with `CreateAccount` and `MoveAccount`): no landing zone \
             is configured (`replicator.accounts.landing-zones`), so the replicator creates, \
             moves, tags and looks up no account. Configure one and run `bootstrap` again."
        ));
    }
    if !uses.member_accounts {
        left_out.push(format!(
            "- `{policy}` has no `StsAccessMemberAccount` statement: neither a landing zone nor \
             the meshIdB path enters a member account through its access role."
        ));
    }
    if !uses.automation {
        left_out.push(format!(
            "- `meshcloud/meshfed-service-user-policy.json` does not allow assuming `{}`: no \
             landing zone uses StackSets or the permission-downgrade Lambda. The automation \
             account's files are written for when one does.",
            automation.name
        ));
    }
    let mut items = left_out;
    items.push(format!(
        "- `automation/{}-policy.json` adds `cloudformation:DescribeStackSetOperation`: the \
         replicator waits for the StackSet operation it started (adding the new account's stack \
         instances) to succeed before it takes the next step, and reads the operation's status \
         for that.",
        automation.name
    ));
    let sso_admin = &config.replicator.sso_admin;
    if config.sso.is_none() {
        items.push(format!(
            "- `{policy}` has no `sso:` actions: with `iam-configuration.aws-sso` unset (the \
             meshIdB path) the replicator makes no IAM Identity Center call."
        ));
    } else {
        for (set, actions, why) in [
            (
                sso_admin.delete_assignments,
                "`sso:DeleteAccountAssignment`, `sso:DescribeAccountAssignmentDeletionStatus`",
                "`replicator.sso-admin.delete-assignments` is on: the replicator deletes the \
                 assignments of a project role that is gone and waits for the deletion",
            ),
            (
                sso_admin.list_assignments_for_principal,
                "`sso:ListAccountAssignmentsForPrincipal`",
                "`replicator.sso-admin.list-assignments-for-principal` is on: assignments are \
                 read per group, which also sees those of a group no longer wanted",
            ),
            (
                sso_admin.list_assignment_status,
                "`sso:ListAccountAssignmentCreationStatus`, `sso:ListAccountAssignmentDeletionStatus`",
                "`replicator.sso-admin.list-assignment-status` is on: the replicator checks \
                 many pending assignment requests in one call",
            ),
        ] {
            if set {
                items.push(format!("- `{policy}` adds {actions}: {why}."));
            }
        }
    }
    let aws = &config.aws;
    for (field, present) in [
        (
            "aws.organizationRootAccountExternalId",
            aws.organization_root_account_external_id.is_some(),
        ),
        (
            "aws.automationAccountExternalId",
            aws.automation_account_external_id.is_some(),
        ),
    ] {
        if !present {
            items.push(format!(
                "- No `sts:ExternalId` condition for the role of `{field}`: the config has no \
                 ExternalId there, so the replicator sends none, and a condition would refuse \
                 every AssumeRole."
            ));
        }
    }
    if !revealed {
        items.push(format!(
            "- The ExternalIds are placeholders, one per role: `{MANAGEMENT_EXTERNAL_ID_PLACEHOLDER}` \
             (`aws.organizationRootAccountExternalId`) and `{AUTOMATION_EXTERNAL_ID_PLACEHOLDER}` \
             (`aws.automationAccountExternalId`)."
        ));
    }
    format!(
        "# Where these policies differ from the seed's\n\n\
         The reference is the seed's account setup (the policies its documentation asks for); \
         everything not listed here is as the seed has it.\n\n{}\n",
        items.join("\n")
    )
}
