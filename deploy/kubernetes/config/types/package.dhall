{ Aws = ./Aws.dhall
, AwsSso = ./AwsSso.dhall
, MeshIdb = ./MeshIdb.dhall
, Identifiers = ./Identifiers.dhall
, MeshStack = ./MeshStack.dhall
, Replicator = ./Replicator.dhall
, LandingZone = ./LandingZone.dhall
, Config = ./Config.dhall
}
