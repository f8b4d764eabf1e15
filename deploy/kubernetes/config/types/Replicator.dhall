{- How the replicator runs (aws-replicator's own settings), as a schema: `Replicator::{=}` keeps
   every default.

      schedule:                sync every interval-seconds, plus up to jitter-seconds at random;
                               `serve` reads meshStack once a cycle of that length, project by
                               project (slower when 75 % of rate-limits.meshstack cannot)
      rate-limits:             requests per second per API family. AWS allows 20 each, and the
                               customer's IdP shares the SCIM budget: stay well below. `iam` paces
                               the IAM calls in member accounts (meshIdB roles, account aliases),
                               all accounts together.
      deletion-guard:          refuse a plan that deletes more than max-share of the managed groups,
                               memberships or assignments and more than max-count of them
      drift-scan:              `serve` reconciles by change: a run reads meshStack in full and
                               writes only where the desired state changed. Drift made by hand
                               in AWS is found by a scan that reads every project again in turn,
                               spending at most `share` (0.0–0.9) of each family's rate above;
                               0.0 turns it off. `plan` shows how long one cycle takes.
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
      audit-log:               a file that gets one JSON line per write; None writes them to
                               standard output under `serve`, standard error for `sync`
      state:                   `serve` without leader election: a file where it records which
                               projects AWS was confirmed to hold (digests of their desired
                               state, 16 KiB), so that a restart reconciles only what changed.
                               None keeps it in memory: a restart reconciles every project once.
                               With leader election the record is kept on the Lease instead.
      accounts:                account provisioning and the landing-zone bootstrap, for tenants
                               whose landing zone is listed here (all others are left alone):
        landing-zones                  landing-zone identifier → what its accounts get
                                       (./LandingZone.dhall)
        avm-done-tag                   with aws.waitForExternalAvm: the tag an external account
                                       vending machine puts on an account when it is done with it
        create-timeout-seconds         how long one run waits for CreateAccount to finish (AWS
                                       takes minutes); a later run picks the account up by email
      mesh-idb:                with iam-configuration.mesh-idb (deprecated): the SAML identity
                               provider that every project account gets, and its roles:
        saml-provider-name             the provider's name in IAM
        idp-metadata                   meshIdB's SAML metadata XML, required with mesh-idb
                                       (import the file with `./meshidb-metadata.xml as Text`)
        saml-audience                  the SAML audience the managed roles' trust requires
        detach-extra-policies          detach policies attached by hand to a managed role;
                                       when False they are reported as drift and kept
      serve:                   `aws-replicator serve`: the address to listen on, and the
                               authentication of POST /v1/sync, GET /v1/runs and GET
                               /v1/saml-roles: a bearer token, or an HMAC-SHA256 secret for the
                               `X-Timestamp` and `X-Signature-256: sha256=<hex>` headers (see the
                               README; import both with `env:`); with neither, those routes are
                               refused. Bodies larger than max-body-bytes are refused.
        metrics-listen                 a second address for /metrics, /healthz and /readyz only, so
                                       that what scrapes every replica cannot reach /v1/*; then
                                       `listen` serves /v1/* and health, not /metrics. None
                                       serves everything on `listen`
        run-deadline-seconds           a run (meshStack read, accounts, observe, apply) that takes
                                       longer is stopped and fails; the next run resumes
        ready-max-age-seconds          /readyz answers 503 once the last successful read of
                                       everything is older than this (keep it above
                                       interval-seconds + jitter-seconds). None: derived, 3 ×
                                       (interval-seconds + jitter-seconds) and at least 7200,
                                       and at least twice the meshStack crawl's cycle
      leader-election:         None runs one replicator as the only writer. Some { … } lets several
                               replicas run (Kubernetes): only the holder of the Lease
                               `lease-name` in `namespace` schedules and writes, and labels its
                               own pod aws-replicator/leader=true; the others serve /metrics
                               and health and answer the webhook 503. The identity is the pod
                               name ($POD_NAME, else $HOSTNAME).
        lease-duration-seconds         how long a lease not renewed stays the holder's
        renew-deadline-seconds         a leader that could not renew for this long stops writing
                                       (below lease-duration-seconds)
        retry-period-seconds           how often the leader renews and the others try
-}
let LandingZone = ./LandingZone.dhall

let Settings =
      { schedule : { interval-seconds : Natural, jitter-seconds : Natural }
      , rate-limits :
          { scim : Double
          , sso-admin : Double
          , identitystore : Double
          , iam : Double
          , meshstack : Double
          }
      , deletion-guard : { max-share : Double, max-count : Natural }
      , drift-scan : { share : Double }
      , sso-admin :
          { delete-assignments : Bool
          , list-assignments-for-principal : Bool
          , list-assignment-status : Bool
          , max-in-flight : Natural
          }
      , audit-log : Optional Text
      , state : Optional Text
      , accounts :
          { landing-zones :
              List { mapKey : Text, mapValue : LandingZone.Type }
          , avm-done-tag : { key : Text, value : Text }
          , create-timeout-seconds : Natural
          }
      , mesh-idb :
          { saml-provider-name : Text
          , idp-metadata : Optional Text
          , saml-audience : Text
          , detach-extra-policies : Bool
          }
      , serve :
          { listen : Text
          , metrics-listen : Optional Text
          , webhook-token : Optional Text
          , webhook-hmac-secret : Optional Text
          , max-body-bytes : Natural
          , run-deadline-seconds : Natural
          , ready-max-age-seconds : Optional Natural
          }
      , leader-election :
          Optional
            { lease-name : Text
            , namespace : Text
            , lease-duration-seconds : Natural
            , renew-deadline-seconds : Natural
            , retry-period-seconds : Natural
            }
      }

let default =
      { schedule = { interval-seconds = 900, jitter-seconds = 60 }
      , rate-limits =
        { scim = 5.0, sso-admin = 5.0, identitystore = 5.0, iam = 5.0, meshstack = 10.0 }
      , deletion-guard = { max-share = 0.2, max-count = 50 }
      , drift-scan.share = 0.25
      , sso-admin =
        { delete-assignments = False
        , list-assignments-for-principal = False
        , list-assignment-status = False
        , max-in-flight = 10
        }
      , audit-log = None Text
      , state = None Text
      , accounts =
        { landing-zones =
            [] : List { mapKey : Text, mapValue : LandingZone.Type }
        , avm-done-tag = { key = "meshstack-avm", value = "done" }
        , create-timeout-seconds = 900
        }
      , mesh-idb =
        { saml-provider-name = "meshIdB"
        , idp-metadata = None Text
        , saml-audience = "https://signin.aws.amazon.com/saml"
        , detach-extra-policies = False
        }
      , serve =
        { listen = "127.0.0.1:8080"
        , metrics-listen = None Text
        , webhook-token = None Text
        , webhook-hmac-secret = None Text
        , max-body-bytes = 4096
        , run-deadline-seconds = 3600
        , ready-max-age-seconds = None Natural
        }
      , leader-election =
          None
            { lease-name : Text
            , namespace : Text
            , lease-duration-seconds : Natural
            , renew-deadline-seconds : Natural
            , retry-period-seconds : Natural
            }
      }

in  { Type = Settings, default }
