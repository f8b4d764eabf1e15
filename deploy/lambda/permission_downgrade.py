"""Takes meshStack's admin rights away in a new project account.

aws-replicator invokes this Lambda (in the automation account) with {"AccountId": "<12 digits>"}
once an account is set up. It assumes PermissionDowngradeLambdaExecutionRole in that account,
gives the account access role (MeshstackAccountAccessRole unless ACCESS_ROLE_NAME says otherwise)
the minimum inline policy meshStack still needs, and then removes AdministratorAccess from it,
whether that is attached as a managed policy or inline. A second run changes nothing.

Written for aws-replicator after the behaviour the meshStack AWS integration guide describes; unlike
that example it also finds AdministratorAccess when it is attached rather than inline, and the
minimum policy also allows iam:DetachRolePolicy (meshIdB's detach-extra-policies).
"""

import json
import logging
import os
import re

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)

ACCESS_ROLE = os.environ.get("ACCESS_ROLE_NAME", "MeshstackAccountAccessRole")
EXECUTION_ROLE = os.environ.get("EXECUTION_ROLE_NAME", "PermissionDowngradeLambdaExecutionRole")
ADMIN_POLICY = "AdministratorAccess"
MINIMUM_POLICY = "MeshstackAccountAccessPolicy"


def minimum_policy(account_id):
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "iam:CreateSAMLProvider",
                        "iam:GetSAMLProvider",
                        "iam:UpdateSAMLProvider",
                        "iam:DeleteSAMLProvider",
                        "iam:ListSAMLProviders",
                    ],
                    "Resource": [
                        f"arn:aws:iam::{account_id}:saml-provider/*",
                        f"arn:aws:cloudformation:*:{account_id}:stack/meshstack-cf-access*",
                    ],
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "iam:ListAttachedRolePolicies",
                        "iam:CreateAccountAlias",
                        "iam:ListAccountAliases",
                        "iam:DeleteAccountAlias",
                        "iam:GetRole",
                        "iam:CreateRole",
                        "iam:AttachRolePolicy",
                        # Beyond the guide's example: meshIdB's detach-extra-policies.
                        "iam:DetachRolePolicy",
                        "iam:UpdateAssumeRolePolicy",
                    ],
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Action": ["cloudformation:DescribeStacks"],
                    "Resource": "*",
                },
            ],
        }
    )


def iam_in(account_id):
    credentials = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/{EXECUTION_ROLE}",
        RoleSessionName="DowngradePermissionsSession",
    )["Credentials"]
    return boto3.client(
        "iam",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def main(event, context):
    account_id = str(event.get("AccountId", "")) if isinstance(event, dict) else ""
    if not re.fullmatch(r"[0-9]{12}", account_id):
        raise ValueError(f"AccountId must be a 12-digit account id, got {account_id!r}")
    iam = iam_in(account_id)
    changed = []

    # The minimum policy goes on before the admin rights come off, so that the role is never
    # left with less than meshStack needs.
    inline = iam.list_role_policies(RoleName=ACCESS_ROLE)["PolicyNames"]
    if MINIMUM_POLICY not in inline:
        iam.put_role_policy(
            RoleName=ACCESS_ROLE,
            PolicyName=MINIMUM_POLICY,
            PolicyDocument=minimum_policy(account_id),
        )
        changed.append(f"put {MINIMUM_POLICY}")

    attached = iam.list_attached_role_policies(RoleName=ACCESS_ROLE)["AttachedPolicies"]
    for policy in attached:
        if policy["PolicyName"] == ADMIN_POLICY:
            iam.detach_role_policy(RoleName=ACCESS_ROLE, PolicyArn=policy["PolicyArn"])
            changed.append(f"detached {policy['PolicyArn']}")
    if ADMIN_POLICY in inline:
        iam.delete_role_policy(RoleName=ACCESS_ROLE, PolicyName=ADMIN_POLICY)
        changed.append(f"deleted inline {ADMIN_POLICY}")

    logger.info("account %s: %s", account_id, ", ".join(changed) or "already downgraded")
    return {
        "statusCode": 200,
        "body": json.dumps({"AccountId": account_id, "changed": changed}),
    }
