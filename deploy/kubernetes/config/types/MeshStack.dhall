{- How the replicator reads meshStack (aws-replicator's own settings), as a schema:
   write `(MeshStack Text)::{ base-url = …, credentials = … }` and keep the defaults for the rest.

      base-url:               the meshStack backend, e.g. "https://meshstack.example.com"
      credentials:            an API key (recommended) or a legacy API user
      tenant-api-version:     meshtenant media type version: v3 (default, served everywhere) or v4
      page-size:              items per page, at most 1000
      project-roles:          role identifier → display name; the roles role-mappings may name, and the
                              fallback when meshStack does not serve meshprojectroles
      project-id:             where argument 3 of group-name-pattern (the numeric project id) comes from:
                              a project tag (first value, base 10) and/or a map "workspace.project" → id,
                              which wins over the tag. meshStack's API does not expose the id itself.
      expand-group-bindings:  whether users bound through a workspace user group get the role too
-}
  λ(Secret : Type)
→ let Credentials =
        < api-key : { client-id : Text, client-secret : Secret }
        | api-user : { username : Text, password : Secret }
        >

  let TenantApiVersion = < v3 | v4 >

  let Settings =
        { base-url : Text
        , credentials : Credentials
        , tenant-api-version : TenantApiVersion
        , page-size : Natural
        , project-roles : List { mapKey : Text, mapValue : Text }
        , project-id :
            { tag : Optional Text
            , overrides : List { mapKey : Text, mapValue : Natural }
            }
        , expand-group-bindings : Bool
        }

  let default =
        { tenant-api-version = TenantApiVersion.v3
        , page-size = 1000
        , project-roles = [] : List { mapKey : Text, mapValue : Text }
        , project-id =
          { tag = Some "meshProjectId"
          , overrides = [] : List { mapKey : Text, mapValue : Natural }
          }
        , expand-group-bindings = True
        }

  in  { Type = Settings, default, Credentials, TenantApiVersion }
