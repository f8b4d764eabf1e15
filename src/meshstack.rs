//! meshStack API source (placeholder until the client lands).
use crate::config::Config;
use crate::snapshot::Snapshot;

#[derive(Debug, thiserror::Error)]
#[error("meshStack client not implemented")]
pub struct MeshStackError;

pub async fn read_snapshot(_config: &Config) -> Result<Snapshot, MeshStackError> {
    Err(MeshStackError)
}
