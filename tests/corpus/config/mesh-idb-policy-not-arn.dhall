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
        { aws-sso = None T.AwsSso
        , mesh-idb = Some
            { role-mappings-managed =
              [ { mapKey = "admin"
                , mapValue =
                  { aws-role-name = "meshstack-project-admin"
                  , policies = [ "AdministratorAccess" ]
                  }
                }
              ]
            , role-mappings-external =
                [] : List { mapKey : Text, mapValue : { aws-role-name : Text } }
            }
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
      , replicator = T.Replicator::{ mesh-idb = T.Replicator.default.mesh-idb // { idp-metadata = Some "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"https://meshidb.example.com\"><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --><!-- padding --></EntityDescriptor>" } }
      }
    : T.Config Text
