{- How the replicator runs (aws-replicator's own settings), as a schema: `Replicator::{=}` keeps
   every default.

      schedule:                sync every interval-seconds, plus up to jitter-seconds at random
      rate-limits:             requests per second per API family. AWS allows 20 each, and the
                               customer's IdP shares the SCIM budget: stay well below.
      deletion-guard:          refuse a plan that deletes more than max-share of the managed groups,
                               memberships or assignments and more than max-count of them
      sso-admin:               what the management-account role may do beyond the seed's policy,
                               and how many assignment changes may be in flight (AWS allows 15):
        delete-assignments             sso:DeleteAccountAssignment and
                                       sso:DescribeAccountAssignmentDeletionStatus. When False, a
                                       group that may still have assignments is emptied, not deleted.
        list-assignments-for-principal sso:ListAccountAssignmentsForPrincipal: read assignments per
                                       group (it also finds those of groups no longer wanted). When
                                       False, they are read per (account, permission set).
        list-assignment-status         sso:ListAccountAssignmentCreationStatus and …DeletionStatus:
                                       poll all in-flight changes with one call, not one each.
      audit-log:               a file that gets one JSON line per write; None writes them to stderr
      serve:                   `aws-replicator serve`: the address to listen on, and the webhook's
                               authentication: a bearer token, or an HMAC-SHA256 secret for the
                               `X-Signature-256: sha256=<hex>` header over the body (import both
                               with `env:`); with neither, POST /v1/sync is refused. Bodies larger
                               than max-body-bytes are refused.
-}
let Settings =
      { schedule : { interval-seconds : Natural, jitter-seconds : Natural }
      , rate-limits :
          { scim : Double, sso-admin : Double, identitystore : Double, meshstack : Double }
      , deletion-guard : { max-share : Double, max-count : Natural }
      , sso-admin :
          { delete-assignments : Bool
          , list-assignments-for-principal : Bool
          , list-assignment-status : Bool
          , max-in-flight : Natural
          }
      , audit-log : Optional Text
      , serve :
          { listen : Text
          , webhook-token : Optional Text
          , webhook-hmac-secret : Optional Text
          , max-body-bytes : Natural
          }
      }

let default =
      { schedule = { interval-seconds = 900, jitter-seconds = 60 }
      , rate-limits =
        { scim = 5.0, sso-admin = 5.0, identitystore = 5.0, meshstack = 10.0 }
      , deletion-guard = { max-share = 0.2, max-count = 50 }
      , sso-admin =
        { delete-assignments = False
        , list-assignments-for-principal = False
        , list-assignment-status = False
        , max-in-flight = 10
        }
      , audit-log = None Text
      , serve =
        { listen = "127.0.0.1:8080"
        , webhook-token = None Text
        , webhook-hmac-secret = None Text
        , max-body-bytes = 4096
        }
      }

in  { Type = Settings, default }
