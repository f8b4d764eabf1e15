{- The whole configuration file of aws-replicator. `Secret` is `Text`. -}
  λ(Secret : Type)
→ { aws : ./Aws.dhall Secret
  , iam-configuration :
      { aws-sso : Optional ./AwsSso.dhall, mesh-idb : Optional ./MeshIdb.dhall }
  , identifiers : ./Identifiers.dhall
  , meshstack : (./MeshStack.dhall Secret).Type
  , replicator : (./Replicator.dhall).Type
  }
