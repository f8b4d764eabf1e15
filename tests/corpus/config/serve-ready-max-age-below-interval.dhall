{- The configuration `aws-replicator demo` runs with: the example, with made-up credentials,
   for a directory that lives in memory. Never use these values against real services. -}
let T = ../../../config/types/package.dhall

let MeshStack = T.MeshStack Text

let ssoInstance = "arn:aws:sso:::instance/ssoins-123456789"

let permissionSet = λ(id : Text) → "arn:aws:sso:::permissionSet/ssoins-123456789/${id}"

in    { aws =
        { platform = "aws.aws-meshcloud"
        , region = "eu-central-1"
        , meshfedServiceUser =
          { accessKey = "demo-access-key"
          , secretKey = "demo-secret-key"
          }
        , organizationRootAccountRole =
            "arn:aws:iam::123456789012:role/MeshfedServiceRole"
        , organizationRootAccountExternalId = Some "demo-external-id"
        , automationAccountRole =
            "arn:aws:iam::210987654321:role/MeshfedAutomationRole"
        , automationAccountExternalId = Some "demo-external-id"
        , waitForExternalAvm = False
        , roleMappingsManaged =
            [] : List
                   { mapKey : Text
                   , mapValue : { awsRoleName : Text, policies : List Text }
                   }
        , roleMappingsExternal =
            [] : List { mapKey : Text, mapValue : { awsRoleName : Text } }
        , accountAccessRole = None Text
        , accountEmailPattern = "aws+%s@example.com"
        , accountAliasPattern = Some "acme-%s-%s"
        , enforceAccountAlias = False
        }
      , iam-configuration =
        { aws-sso = Some
            { scim-endpoint =
                "https://scim.eu-central-1.amazonaws.com/xxxxx-xxxx-xxxx-xxxx/scim/v2/"
            , arn = ssoInstance
            , group-name-pattern = "%s.%s.%4\$s"
            , sso-access-token = "demo-scim-token"
            , role-mappings =
              [ { mapKey = "admin"
                , mapValue =
                  { aws-role-name = "meshstack-project-admin"
                  , permission-set-arns = [ permissionSet "ps-123456789" ]
                  }
                }
              , { mapKey = "user"
                , mapValue =
                  { aws-role-name = "meshstack-project-developer"
                  , permission-set-arns = [ permissionSet "ps-456789123" ]
                  }
                }
              , { mapKey = "reader"
                , mapValue =
                  { aws-role-name = "meshstack-project-reader"
                  , permission-set-arns = [ permissionSet "ps-789123456" ]
                  }
                }
              ]
            }
        , mesh-idb = None T.MeshIdb
        }
      , identifiers =
        { customer_identifier_length = 16, project_identifier_length = 30 }
      , meshstack = MeshStack::{
        , base-url = "https://meshstack.example.com"
        , credentials =
            MeshStack.Credentials.api-key
              { client-id = "demo"
              , client-secret = "demo-secret"
              }
        }
      , replicator = T.Replicator::{ serve = T.Replicator.default.serve // { ready-max-age-seconds = Some 600 } }
      }
    : T.Config Text
