//! (pure) What AWS was confirmed to hold, by content: for each project, the [`Digest`] of the
//! desired state a reconcile brought it to (or a drift-scan read found it at), and when, by the
//! caller's own clock (any ordered value; `serve` passes `Instant`, which never leaves the
//! process). A project without an entry is unconfirmed: never reconciled, drifted, or failed.
//!
//! What survives a restart or a take-over is [`Saved`]: the entries digested into
//! [`BUCKETS`] buckets, with what each bucket's projects want counted for the deletion guard
//! (at most about 29 KiB whatever the estate's size), the roles whose groups may still be in
//! AWS, and who wrote it. Loading compares each bucket with the loader's own desired state;
//! a bucket that digests alike has all its projects confirmed, any other has none. A record
//! that cannot be read, is of another platform, format or planning version, means "nothing
//! confirmed": the safe direction, which costs reads and never skips a change.

use super::digest::Digest;
use crate::model::{ProjectKey, RoleId};
use crate::plan::guard::Managed;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Buckets of the saved record: at 33,000 projects about 32 projects share one, so a single
/// change found at a restart costs a reconcile of 32 projects (≈ 224 reads, ≤ 1 % of reading
/// the estate).
pub const BUCKETS: usize = 1024;

/// The saved record's format; another one reads as nothing confirmed.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<T> {
    /// The desired state AWS was confirmed to hold.
    pub applied: Digest,
    pub confirmed_at: T,
}

#[derive(Debug, Clone)]
pub struct Record<T> {
    platform: String,
    entries: BTreeMap<ProjectKey, Entry<T>>,
    /// Roles whose groups of ours may be in AWS: those configured, and those of an earlier
    /// configuration until a listing of the store shows none of them left. A reconcile looks
    /// up each of them in every project it reads, so that a role mapping removed from the
    /// configuration takes its groups' members away.
    roles: BTreeSet<RoleId>,
}

/// The record as it is kept outside the process (`replicator.state`, or the Lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Saved {
    pub format: u32,
    pub platform: String,
    pub planning_version: u32,
    pub roles: BTreeSet<RoleId>,
    /// [`BUCKETS`] digests of 8 bytes, hex.
    pub buckets: String,
    /// For people reading it: the projects confirmed, who wrote it and when. Never compared.
    pub projects: usize,
    pub written_by: String,
    pub written_at: String,
    /// Removals were paused by the deletion guard ([`super::removals`]) and not yet allowed:
    /// the next process keeps them paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removals_paused: Option<SavedPause>,
    /// Per bucket, what its confirmed projects want: groups, memberships, assignments. A new
    /// process has no read before its first one; the deletion guard measures that read
    /// against these ([`taken_away`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<Vec<[u64; 3]>>,
}

/// What paused removals, as kept in a saved record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SavedPause {
    pub what: String,
    pub deleted: u64,
    pub managed: u64,
}

impl Saved {
    /// `project` is about to be written before this record was loaded: its bucket confirms
    /// nothing any more (no bucket of projects digests to zeros).
    pub fn taint(&mut self, project: &ProjectKey) {
        if let Some(mut buckets) = unhex(&self.buckets) {
            buckets[bucket_of(project)] = [0; 8];
            self.buckets = hex(&buckets);
        }
        if let Some(counts) = self.managed.as_mut().filter(|c| c.len() == BUCKETS) {
            counts[bucket_of(project)] = [0; 3];
        }
    }
}

impl SavedPause {
    pub fn of(tripped: &crate::plan::guard::Tripped) -> Self {
        SavedPause {
            what: tripped.what.to_owned(),
            deleted: tripped.deleted,
            managed: tripped.managed,
        }
    }

    pub fn tripped(&self) -> crate::plan::guard::Tripped {
        let what = ["groups", "memberships", "assignments"]
            .into_iter()
            .find(|w| *w == self.what)
            .unwrap_or("items");
        crate::plan::guard::Tripped {
            what,
            deleted: self.deleted,
            managed: self.managed,
        }
    }
}

/// Why a saved record was not taken: nothing of it counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("it is not a record of this format ({0})")]
    Garbage(String),
    #[error("it is of format {0}, this replicator reads {FORMAT}")]
    Format(u32),
    #[error("it was written for platform {0}, not this one")]
    Platform(String),
    #[error("it was written by planning version {0}, this replicator plans by {planning}", planning = super::digest::PLANNING_VERSION)]
    Planning(u32),
}

fn bucket_of(project: &ProjectKey) -> usize {
    let mut hash = Sha256::new();
    hash.update(project.workspace.as_str());
    hash.update([0]);
    hash.update(project.project.as_str());
    let h = hash.finalize();
    (usize::from(h[0]) << 8 | usize::from(h[1])) % BUCKETS
}

/// What the projects of each bucket want, summed per bucket.
pub fn bucket_counts<'a>(
    projects: impl IntoIterator<Item = (&'a ProjectKey, Managed)>,
) -> Vec<[u64; 3]> {
    let mut counts = vec![[0u64; 3]; BUCKETS];
    for (project, m) in projects {
        let c = &mut counts[bucket_of(project)];
        c[0] += m.groups;
        c[1] += m.memberships;
        c[2] += m.assignments;
    }
    counts
}

/// What a first read takes away from a saved record's counts (`saved`, one per bucket), and
/// the estate they stand for: per bucket what `now` wants less of, summed. Buckets holding one
/// of `held` are left out (a held project takes nothing away, and its share of a bucket is not
/// known). `None`: the saved counts are not one per bucket.
pub fn taken_away(
    saved: &[[u64; 3]],
    now: &[[u64; 3]],
    held: &BTreeSet<ProjectKey>,
) -> Option<(Managed, Managed)> {
    if saved.len() != BUCKETS || now.len() != BUCKETS {
        return None;
    }
    let skipped: BTreeSet<usize> = held.iter().map(bucket_of).collect();
    let (mut removed, mut estate) = (Managed::default(), Managed::default());
    for (b, (was, is)) in saved.iter().zip(now).enumerate() {
        if skipped.contains(&b) {
            continue;
        }
        removed.groups += was[0].saturating_sub(is[0]);
        removed.memberships += was[1].saturating_sub(is[1]);
        removed.assignments += was[2].saturating_sub(is[2]);
        estate.groups += was[0];
        estate.memberships += was[1];
        estate.assignments += was[2];
    }
    Some((removed, estate))
}

/// Each bucket's digest over `(project, digest)` of the projects in it, in key order.
fn bucket_digests<'a>(
    projects: impl IntoIterator<Item = (&'a ProjectKey, &'a Digest)>,
) -> Vec<[u8; 8]> {
    let mut hashes: Vec<Sha256> = (0..BUCKETS).map(|_| Sha256::new()).collect();
    for (project, digest) in projects {
        let hash = &mut hashes[bucket_of(project)];
        let key = project.to_string();
        hash.update((key.len() as u32).to_le_bytes());
        hash.update(key.as_bytes());
        hash.update(digest.0);
    }
    hashes
        .into_iter()
        .map(|h| {
            let full = h.finalize();
            let mut out = [0u8; 8];
            out.copy_from_slice(&full[..8]);
            out
        })
        .collect()
}

fn hex(buckets: &[[u8; 8]]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(buckets.len() * 16);
    for b in buckets.iter().flatten() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<[u8; 8]>> {
    if text.len() != BUCKETS * 16 || !text.is_ascii() {
        return None;
    }
    text.as_bytes()
        .chunks(16)
        .map(|chunk| {
            let mut out = [0u8; 8];
            for (i, pair) in chunk.chunks(2).enumerate() {
                out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
            }
            Some(out)
        })
        .collect()
}

impl<T: Copy + Ord> Record<T> {
    /// Nothing confirmed.
    pub fn new(platform: &str, roles: impl IntoIterator<Item = RoleId>) -> Self {
        Record {
            platform: platform.to_owned(),
            entries: BTreeMap::new(),
            roles: roles.into_iter().collect(),
        }
    }

    /// Takes `saved` against the loader's own desired state `current` (every project with
    /// groups or held, by digest): the projects of each bucket that digests alike are
    /// confirmed at `now`, no other. `configured`: the roles mapped now.
    pub fn load(
        saved: &Saved,
        platform: &str,
        configured: impl IntoIterator<Item = RoleId>,
        current: &BTreeMap<ProjectKey, Digest>,
        now: T,
    ) -> Result<Self, Unusable> {
        if saved.format != FORMAT {
            return Err(Unusable::Format(saved.format));
        }
        if saved.platform != platform {
            return Err(Unusable::Platform(saved.platform.clone()));
        }
        if saved.planning_version != super::digest::PLANNING_VERSION {
            return Err(Unusable::Planning(saved.planning_version));
        }
        let buckets = unhex(&saved.buckets).ok_or_else(|| {
            Unusable::Garbage(format!("buckets must be {} hex digits", BUCKETS * 16))
        })?;
        let mine = bucket_digests(current);
        let mut record = Record::new(platform, configured);
        record.roles.extend(saved.roles.iter().cloned());
        for (project, digest) in current {
            if mine[bucket_of(project)] == buckets[bucket_of(project)] {
                record.entries.insert(
                    project.clone(),
                    Entry {
                        applied: *digest,
                        confirmed_at: now,
                    },
                );
            }
        }
        Ok(record)
    }

    /// Reads a saved record's text; see [`Record::load`].
    pub fn parse(text: &[u8]) -> Result<Saved, Unusable> {
        serde_json::from_slice(text).map_err(|e| Unusable::Garbage(e.to_string()))
    }

    /// The record as it is kept outside the process.
    pub fn save(&self, written_by: &str, written_at: &str) -> Saved {
        let buckets = bucket_digests(self.entries.iter().map(|(p, e)| (p, &e.applied)));
        Saved {
            format: FORMAT,
            platform: self.platform.clone(),
            planning_version: super::digest::PLANNING_VERSION,
            roles: self.roles.clone(),
            buckets: hex(&buckets),
            projects: self.entries.len(),
            written_by: written_by.to_owned(),
            written_at: written_at.to_owned(),
            removals_paused: None,
            managed: None,
        }
    }

    /// The projects a reconcile must look at: those of `current` not confirmed at their
    /// digest, and those confirmed with groups that `current` no longer wants (`absent`).
    pub fn to_reconcile(
        &self,
        current: &BTreeMap<ProjectKey, Digest>,
        absent: Digest,
    ) -> BTreeSet<ProjectKey> {
        let differing = current
            .iter()
            .filter(|(p, d)| self.entries.get(*p).is_none_or(|e| e.applied != **d))
            .map(|(p, _)| p.clone());
        let gone = self
            .entries
            .iter()
            .filter(|(p, e)| !current.contains_key(*p) && e.applied != absent)
            .map(|(p, _)| p.clone());
        differing.chain(gone).collect()
    }

    /// AWS holds `project` as `digest` says, seen at `now`; a project confirmed absent leaves
    /// the record.
    pub fn confirm(&mut self, project: &ProjectKey, digest: Digest, absent: Digest, now: T) {
        if digest == absent {
            self.entries.remove(project);
        } else {
            self.entries.insert(
                project.clone(),
                Entry {
                    applied: digest,
                    confirmed_at: now,
                },
            );
        }
    }

    /// What AWS holds of `project` is no longer known (a write failed, or the scan found it
    /// differing).
    pub fn forget(&mut self, project: &ProjectKey) {
        self.entries.remove(project);
    }

    /// `project` was confirmed at `digest` when last read by the scan, at `now`.
    pub fn reconfirm(&mut self, project: &ProjectKey, now: T) {
        if let Some(entry) = self.entries.get_mut(project) {
            entry.confirmed_at = now;
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = (&ProjectKey, &Entry<T>)> {
        self.entries.iter()
    }

    pub fn entry(&self, project: &ProjectKey) -> Option<&Entry<T>> {
        self.entries.get(project)
    }

    pub fn confirmed(&self) -> usize {
        self.entries.len()
    }

    pub fn oldest_confirmation(&self) -> Option<T> {
        self.entries.values().map(|e| e.confirmed_at).min()
    }

    pub fn roles(&self) -> &BTreeSet<RoleId> {
        &self.roles
    }

    /// A listing of the store found groups of ours of `present` roles: the others configured
    /// no more have no group left to look up.
    pub fn roles_listed(
        &mut self,
        configured: impl IntoIterator<Item = RoleId>,
        present: &BTreeSet<RoleId>,
    ) {
        self.roles = configured.into_iter().collect();
        self.roles.extend(present.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str) -> ProjectKey {
        ProjectKey::new("ws", p)
    }

    fn d(n: u8) -> Digest {
        Digest([n; 16])
    }

    fn roles(r: &[&str]) -> Vec<RoleId> {
        r.iter().map(|r| RoleId::from(*r)).collect()
    }

    #[test]
    fn only_what_was_confirmed_at_its_current_digest_is_left_alone() {
        let absent = d(0);
        let mut record = Record::new("p", roles(&["admin"]));
        let current: BTreeMap<_, _> = [(key("a"), d(1)), (key("b"), d(2))].into();
        assert_eq!(
            record.to_reconcile(&current, absent),
            [key("a"), key("b")].into()
        );
        record.confirm(&key("a"), d(1), absent, 10u64);
        record.confirm(&key("b"), d(2), absent, 10);
        assert!(record.to_reconcile(&current, absent).is_empty());

        // b changes, c was confirmed and is gone from meshStack, a drifted.
        record.confirm(&key("c"), d(3), absent, 10);
        let now: BTreeMap<_, _> = [(key("a"), d(1)), (key("b"), d(9))].into();
        assert_eq!(
            record.to_reconcile(&now, absent),
            [key("b"), key("c")].into()
        );
        record.forget(&key("a"));
        assert_eq!(
            record.to_reconcile(&now, absent),
            [key("a"), key("b"), key("c")].into()
        );
        // Once c's groups are retired it leaves the record.
        record.confirm(&key("c"), absent, absent, 20);
        assert!(record.entry(&key("c")).is_none());
        assert_eq!(record.oldest_confirmation(), Some(10));
    }

    #[test]
    fn a_saved_record_confirms_exactly_the_buckets_that_digest_alike() {
        let absent = d(0);
        let mut record = Record::new("p", roles(&["admin", "reader"]));
        let mut current = BTreeMap::new();
        for i in 0..3000u32 {
            let project = key(&format!("p{i}"));
            let digest = Digest([(i % 251) as u8 + 1; 16]);
            record.confirm(&project, digest, absent, 1u64);
            current.insert(project, digest);
        }
        let saved = record.save("replica-a", "2026-12-07T00:00:00Z");
        let text = serde_json::to_vec(&saved).unwrap();
        assert!(text.len() < 20 * 1024, "{} bytes", text.len());
        let saved = Record::<u64>::parse(&text).unwrap();

        // The same desired state: every project confirmed, nothing to do.
        let loaded = Record::load(&saved, "p", roles(&["admin"]), &current, 5u64).unwrap();
        assert_eq!(loaded.confirmed(), 3000);
        assert!(loaded.to_reconcile(&current, absent).is_empty());
        // A role no longer configured stays to be looked up.
        assert!(loaded.roles().contains(&RoleId::from("reader")));

        // One project changed, one is new: their buckets are reconciled, and only those.
        let mut changed = current.clone();
        changed.insert(key("p7"), d(250));
        changed.insert(key("new"), d(3));
        let loaded = Record::load(&saved, "p", roles(&["admin"]), &changed, 5u64).unwrap();
        let todo = loaded.to_reconcile(&changed, absent);
        assert!(todo.contains(&key("p7")) && todo.contains(&key("new")));
        let buckets: BTreeSet<usize> = [bucket_of(&key("p7")), bucket_of(&key("new"))].into();
        assert!(
            todo.iter().all(|p| buckets.contains(&bucket_of(p))),
            "{todo:?}"
        );
        assert!(todo.len() < 20, "{}", todo.len());

        // Garbage, another platform, format or planning version: nothing confirmed.
        assert!(matches!(
            Record::<u64>::parse(b"{\"format\": 1"),
            Err(Unusable::Garbage(_))
        ));
        let other = |change: fn(&mut Saved)| {
            let mut s = saved.clone();
            change(&mut s);
            Record::load(&s, "p", roles(&["admin"]), &current, 5u64).unwrap_err()
        };
        assert!(matches!(
            other(|s| s.platform = "q".into()),
            Unusable::Platform(_)
        ));
        assert!(matches!(other(|s| s.format = 2), Unusable::Format(2)));
        assert!(matches!(
            other(|s| s.planning_version = 0),
            Unusable::Planning(0)
        ));
        assert!(matches!(
            other(|s| s.buckets.truncate(10)),
            Unusable::Garbage(_)
        ));
        assert!(matches!(
            other(|s| s.buckets.replace_range(0..2, "zz")),
            Unusable::Garbage(_)
        ));
        // A bucket made up without knowing the desired state confirms nothing.
        let forged = Saved {
            buckets: "00".repeat(BUCKETS * 8),
            ..saved.clone()
        };
        let loaded = Record::load(&forged, "p", roles(&["admin"]), &current, 5u64).unwrap();
        assert_eq!(loaded.confirmed(), 0);
    }

    /// The saved record's size does not grow with the estate: at 33,000 projects of three
    /// groups, with the per-bucket counts the deletion guard reads at a start.
    #[test]
    fn the_saved_record_stays_small_at_33000_projects() {
        let mut record = Record::new("aws.aws-meshcloud", roles(&["admin", "user", "reader"]));
        let projects: Vec<ProjectKey> = (0..33_000)
            .map(|p| ProjectKey::new(format!("ws{}", p / 10), format!("project-{p}")))
            .collect();
        for (n, project) in projects.iter().enumerate() {
            let mut digest = [0u8; 16];
            digest[..8].copy_from_slice(&(n as u64).to_le_bytes());
            record.confirm(project, Digest(digest), Digest([0xff; 16]), 0u64);
        }
        let mut saved = record.save("replica-0", "2026-12-07T00:00:00Z");
        let wants = Managed {
            groups: 3,
            memberships: 9,
            assignments: 3,
        };
        saved.managed = Some(bucket_counts(projects.iter().map(|p| (p, wants))));
        let size = serde_json::to_vec(&saved).unwrap().len();
        println!("the saved record at 33,000 projects: {size} bytes");
        assert!(size <= 32 * 1024, "{size} bytes");
    }
}
