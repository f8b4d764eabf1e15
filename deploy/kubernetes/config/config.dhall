{- An aws-replicator configuration for one AWS platform instance with AWS IAM Identity Center.
   Secrets come from the environment; nothing secret is written here.
   Check it with: aws-replicator config check --config config/example.dhall -}
let T = ./types/package.dhall

let MeshStack = T.MeshStack Text

let ssoInstance = "arn:aws:sso:::instance/ssoins-123456789"

let permissionSet = λ(id : Text) → "arn:aws:sso:::permissionSet/ssoins-123456789/${id}"

in    { aws =
        { platform = "aws.aws-meshcloud"
        , region = "eu-central-1"
        , meshfedServiceUser =
          { accessKey = env:MESHFED_ACCESS_KEY_ID as Text
          , secretKey = env:MESHFED_SECRET_ACCESS_KEY as Text
          }
        , organizationRootAccountRole =
            "arn:aws:iam::123456789012:role/MeshfedServiceRole"
        , organizationRootAccountExternalId = Some env:MESHFED_EXTERNAL_ID as Text
        , automationAccountRole =
            "arn:aws:iam::210987654321:role/MeshfedAutomationRole"
        , automationAccountExternalId = Some env:MESHFED_EXTERNAL_ID as Text
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
            , sso-access-token = env:AWS_SSO_SCIM_TOKEN as Text
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
              { client-id = env:MESHSTACK_CLIENT_ID as Text
              , client-secret = env:MESHSTACK_CLIENT_SECRET as Text
              }
        }
      , replicator = T.Replicator::{
        {- The webhook's bearer token, from the Secret (WEBHOOK_TOKEN in
           deploy/kubernetes/secret.example.yaml); without one, every POST /v1/sync and
           GET /v1/runs is answered 403. The Deployment's --listen overrides `listen`.
           /metrics and the probes have a listener of their own, so that the metrics Service,
           which reaches every replica, does not reach /v1/*. -}
        , serve =
            T.Replicator.default.serve
            // { webhook-token = Some env:WEBHOOK_TOKEN as Text
               , metrics-listen = Some "0.0.0.0:9090"
               }
        {- Two replicas on Kubernetes (deploy/kubernetes), one writer: the holder of this Lease
           in the namespace the pods run in. For one process outside Kubernetes: None. -}
        , leader-election = Some
          { lease-name = "aws-replicator"
          , {- The namespace the pod runs in: the Deployment sets POD_NAMESPACE from the
               downward API. Elsewhere (`config check` on a laptop) "aws-replicator". -}
            namespace = env:POD_NAMESPACE as Text ? "aws-replicator"
          , lease-duration-seconds = 15
          , renew-deadline-seconds = 10
          , retry-period-seconds = 2
          }
        }
        {- To have the replicator create and bootstrap the accounts of a landing zone, list it:
           , replicator = T.Replicator::{
             , accounts = T.Replicator.default.accounts // {
               , landing-zones =
                 [ { mapKey = "aws-default"
                   , mapValue = T.LandingZone::{
                     , organizational-unit = "/workloads/prod"
                     , tags = [ { mapKey = "cost-center", mapValue = "1234" } ]
                     , access-stack = Some
                         { stack-name = "meshstack-access"
                         , template = ./bootstrap/templates/access-stack.json as Text
                         }
                     , stack-sets =
                       [ { name = "meshstack-baseline", regions = [ "eu-central-1" ] } ]
                     , lambda = Some
                         "arn:aws:lambda:eu-central-1:210987654321:function:PermissionDowngrade"
                     }
                   }
                 ]
               }
             }
           `aws-replicator bootstrap --config config.dhall --meshcloud-account-id … --out bootstrap`,
           run next to this file, writes bootstrap/templates/access-stack.json. -}
      }
    : T.Config Text
