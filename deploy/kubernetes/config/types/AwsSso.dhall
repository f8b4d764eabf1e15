{- The seed's `AwsSso` (mesh.platforms.aws.iam-configuration.aws-sso), unchanged.
      scim-endpoint:
        The SCIM endpoint you can find in you AWS SSO Automatic provisioning config.
      arn:
        The ARN of your AWS SSO Instance.
      group-name-pattern:
          Java String.format pattern for the names of the AWS SSO groups managed by meshStack, receiving
            1. meshCustomer identifier
            2. meshProject identifier
            3. meshProject ID (numeric)
            4. role name suffix (aws-role-name)
          The names must be unique within the AWS SSO instance; "mst-" is prefixed to mark managed groups.
      sso-access-token:
        The AWS SSO Access Token that was generated via the Automatic provisioning config in AWS SSO.
      role-mappings:
        meshProject role identifier → AWS SSO group name suffix and the permission sets assigned to the group.
-}
{ scim-endpoint : Text
, arn : Text
, group-name-pattern : Text
, sso-access-token : Text
, role-mappings :
    List
      { mapKey : Text
      , mapValue : { aws-role-name : Text, permission-set-arns : List Text }
      }
}
