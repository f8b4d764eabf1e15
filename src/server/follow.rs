//! Following and taking over. With leader election on, a replica that does not lead reads
//! meshStack on the leader's schedule (never AWS) and keeps the desired state warm. When it
//! takes the lease, its engine starts from the record the last leader kept on the lease and
//! from that last read: every project whose desired state the record does not confirm is
//! queued at once, before meshStack is read again. Nothing here compares clocks: what was
//! applied is known by content (`engine::record`). Without leader election the record is a
//! file (`replicator.state`), or nothing.

use super::Service;
use crate::desired::{Desired, Scope, Settings, desired};
use crate::engine::{Engine, Record, Saved};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a follower looks whether it leads: a replica that lost the lease starts reading
/// again within this.
const TICK: Duration = Duration::from_secs(1);

/// Reads meshStack every interval (plus jitter) while this replica follows, until dropped.
pub async fn follow(service: Arc<Service>) {
    if !following(&service) {
        return std::future::pending().await;
    }
    let schedule = &service.config.replicator.schedule;
    let mut next = Instant::now();
    loop {
        if service.leading() {
            *service.warm() = None;
            next = Instant::now();
        } else if Instant::now() >= next && (service.meshstack.is_none() || service.crawl().whole())
        {
            match read(&service).await {
                // Leadership may have begun during the read: the leader started without it.
                Ok(_) if service.leading() => {}
                Ok(desired) => {
                    *service.warm() = Some(desired);
                    tracing::debug!("following: read meshStack");
                }
                Err(error) => {
                    tracing::warn!(%error, "following: reading meshStack failed; keeping the last read")
                }
            }
            service
                .follower_read
                .store(true, std::sync::atomic::Ordering::Relaxed);
            next = Instant::now()
                + Duration::from_secs(
                    schedule.interval_seconds + super::jitter(schedule.jitter_seconds),
                );
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Whether a follower keeps the desired state warm: with leader election on the SSO path.
pub fn following(service: &Service) -> bool {
    service.election.is_some() && service.sso.is_some()
}

/// The platform's desired state, as a read of everything computes it before its account phase.
async fn read(service: &Service) -> Result<Desired, String> {
    let sso = service.config.require_sso().map_err(|e| e.to_string())?;
    let snapshot = service.snapshot(&Scope::All).await?;
    Ok(desired(
        &snapshot,
        &Settings::new(&service.config, sso),
        &Scope::All,
    ))
}

/// The record kept by the last writer: on the lease with leader election, else in the file
/// `replicator.state`. Anything that cannot be read counts as nothing confirmed.
async fn load(service: &Service) -> Option<Saved> {
    let text = match (&service.election, &service.config.replicator.state) {
        (Some(election), _) => election.load_record().await?.into_bytes(),
        (None, Some(path)) => match tokio::fs::read(path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "cannot read the record (replicator.state); nothing counts as confirmed");
                return None;
            }
        },
        (None, None) => return None,
    };
    match Record::<Instant>::parse(&text) {
        Ok(saved) => Some(saved),
        Err(why) => {
            tracing::warn!(%why, "the saved record is unusable; nothing counts as confirmed");
            None
        }
    }
}

/// Keeps the engine's record where the next writer finds it. Best effort: a record not
/// written costs the next start reads, never a change.
pub async fn save(service: &Service) {
    let text = {
        let engine = service.engine();
        let Some(engine) = engine.as_ref() else {
            return;
        };
        let saved = engine.save(&service.identity(), &crate::audit::now());
        serde_json::to_string(&saved).expect("a record serializes")
    };
    let outcome = match (&service.election, &service.config.replicator.state) {
        (Some(election), _) => election.save_record(&text).await,
        (None, Some(path)) => write_file(path, &text).await,
        (None, None) => Ok(()),
    };
    if let Err(error) = outcome {
        tracing::warn!(%error, "could not save the record of what AWS holds");
    }
}

/// Written beside and renamed over, so that a kill leaves the old record or the new one.
async fn write_file(path: &str, text: &str) -> Result<(), String> {
    let temporary = format!("{path}.tmp");
    tokio::fs::write(&temporary, text)
        .await
        .map_err(|e| format!("writing {temporary} (replicator.state): {e}"))?;
    tokio::fs::rename(&temporary, path)
        .await
        .map_err(|e| format!("renaming {temporary} to {path} (replicator.state): {e}"))
}

/// The engine a new term starts with: the saved record, and (a follower's) last read of
/// meshStack, whose differing projects are queued at once.
pub async fn take_over(service: &Service) -> Engine<tokio::time::Instant> {
    let saved = load(service).await;
    let had_record = saved.is_some();
    let roles = service
        .config
        .meshstack
        .project_roles
        .keys()
        .cloned()
        .collect();
    let mut engine = Engine::new(&service.config.platform, roles, saved);
    if let Some(limits) = crate::sso::sync_settings(&service.config).guard {
        // Removals add up over one interval of the schedule: a meshStack answer losing a
        // little at every read is measured as one.
        let window =
            std::time::Duration::from_secs(service.config.replicator.schedule.interval_seconds);
        engine = engine.guarded(limits, window);
        if let Some(paused) = engine.removals_paused() {
            tracing::error!(why = %paused.why, "removals stay paused, as the last writer left them: additions go on; POST /v1/removals/allow once what meshStack returned is checked");
        }
    }
    if let Some(desired) = service.warm().take() {
        let (queued, unusable) = engine.read(desired, tokio::time::Instant::now());
        if let Some(why) = unusable {
            tracing::warn!(%why, "the last leader's record is unusable: every project is reconciled once");
        }
        tracing::info!(
            queued = queued.len(),
            confirmed = engine.record().confirmed(),
            "leading from the desired state read while following and the last leader's record"
        );
    } else {
        tracing::info!(
            record = had_record,
            "leading: the record is taken against the first read of meshStack"
        );
    }
    engine
}
