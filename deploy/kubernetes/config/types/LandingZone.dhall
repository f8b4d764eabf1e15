{- What every account of one landing zone gets, step by step, as a schema:
   `LandingZone::{ organizational-unit = "/workloads/prod" }` keeps the other defaults.

      organizational-unit  where the account lives: an OU id ("ou-ab12-cd34ef56"), or a path of
                           OU names below the organization's root ("/workloads/prod", "/" for the
                           root), whose missing OUs are created
      tags                 account tags beside meshStack's project tags and the replicator's own
      access-stack         a CloudFormation stack deployed into the account through its
                           MeshstackAccountAccessRole (aws.accountAccessRole): the stack's name and
                           its template as JSON text (import a file with `./access.json as Text`)
      stack-sets           StackSets of the automation account (by name) that get an instance for
                           the account, each in the regions listed
      lambda               a Lambda function of the automation account (ARN), invoked once with
                           {"AccountId": "<id>"} after everything else: the permission downgrade
                           of the seed's "Downgrading meshcloud Access"
-}
let Tag = { mapKey : Text, mapValue : Text }

let AccessStack = { stack-name : Text, template : Text }

let StackSet = { name : Text, regions : List Text }

let LandingZone =
      { organizational-unit : Text
      , tags : List Tag
      , access-stack : Optional AccessStack
      , stack-sets : List StackSet
      , lambda : Optional Text
      }

let default =
      { tags = [] : List Tag
      , access-stack = None AccessStack
      , stack-sets = [] : List StackSet
      , lambda = None Text
      }

in  { Type = LandingZone, default, AccessStack, StackSet }
