{- How the replicator runs (aws-replicator's own settings), as a schema: `Replicator::{=}` keeps
   every default.

      schedule:                sync every interval-seconds, plus up to jitter-seconds at random
      rate-limits:             requests per second per API family. AWS allows 20 each, and the
                               customer's IdP shares the SCIM budget: stay well below.
      deletion-guard:          refuse a plan that deletes more than max-share of the managed groups,
                               memberships or assignments and more than max-count of them
      may-delete-assignments:  True when the management-account role may call
                               sso:DeleteAccountAssignment (not in the seed's policy). When False, a
                               group that still has assignments is emptied instead of deleted.
-}
let Settings =
      { schedule : { interval-seconds : Natural, jitter-seconds : Natural }
      , rate-limits :
          { scim : Double, sso-admin : Double, identitystore : Double, meshstack : Double }
      , deletion-guard : { max-share : Double, max-count : Natural }
      , may-delete-assignments : Bool
      }

let default =
      { schedule = { interval-seconds = 900, jitter-seconds = 60 }
      , rate-limits =
        { scim = 5.0, sso-admin = 5.0, identitystore = 5.0, meshstack = 10.0 }
      , deletion-guard = { max-share = 0.2, max-count = 50 }
      , may-delete-assignments = False
      }

in  { Type = Settings, default }
