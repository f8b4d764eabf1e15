{- The seed's `MeshIdb` (mesh.platforms.aws.iam-configuration.mesh-idb, deprecated), unchanged. -}
{ role-mappings-managed :
    List
      { mapKey : Text
      , mapValue : { aws-role-name : Text, policies : List Text }
      }
, role-mappings-external :
    List { mapKey : Text, mapValue : { aws-role-name : Text } }
}
