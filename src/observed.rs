//! Observed state: what AWS IAM Identity Center holds, as plain data. The directory readers
//! (the in-memory `World` now, the SCIM and sso-admin clients later) fill it; `plan` reads it.

use crate::model::{AccountId, ExternalId, GroupId, GroupName, PermissionSetArn, UserId, UserName};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    /// Every group the directory listed, ours and everybody else's. Members are read for ours
    /// only.
    pub groups: Vec<ObservedGroup>,
    /// The users whose names the plan may need: all users, or those looked up by euid.
    pub users: BTreeMap<UserId, UserName>,
    /// Assignments whose principal is one of our groups.
    pub assignments: BTreeSet<Assignment>,
    /// Which of our groups' assignments were read.
    #[serde(default)]
    pub assignment_coverage: AssignmentCoverage,
}

/// Which assignments an observation saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentCoverage {
    /// Every assignment of every group of ours (read per group).
    #[default]
    OurGroups,
    /// Only those on the desired (account, permission set) pairs (the seed's policy): a group
    /// no longer wanted may have assignments nobody saw.
    DesiredPairs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedGroup {
    pub id: GroupId,
    pub name: GroupName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<ExternalId>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub members: BTreeSet<UserId>,
}

/// One account assignment of a group: (account, permission set, group).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Assignment {
    pub account: AccountId,
    pub permission_set: PermissionSetArn,
    pub group: GroupId,
}

impl Observed {
    /// A digest of the observation, recorded in a plan so that a saved plan can be refused
    /// once AWS has changed under it.
    pub fn digest(&self) -> String {
        // Fed field by field, each length-prefixed so that no two states share a byte stream,
        // through a buffer: far cheaper than hashing a JSON rendering of a large directory.
        let mut hash = Sha256::new();
        let mut buffer: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut put = |s: &str| {
            buffer.extend_from_slice(&(s.len() as u32).to_le_bytes());
            buffer.extend_from_slice(s.as_bytes());
            if buffer.len() > (1 << 16) - 1024 {
                hash.update(&buffer);
                buffer.clear();
            }
        };
        let mut groups: Vec<&ObservedGroup> = self.groups.iter().collect();
        groups.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        put("groups");
        for g in groups {
            put(g.id.as_str());
            put(g.name.as_str());
            put(g.external_id.as_ref().map_or("", |e| e.as_str()));
            put(&g.members.len().to_string());
            for m in &g.members {
                put(m.as_str());
            }
        }
        put("users");
        for (id, name) in &self.users {
            put(id.as_str());
            put(name.as_str());
        }
        put(match self.assignment_coverage {
            AssignmentCoverage::OurGroups => "assignments of our groups",
            AssignmentCoverage::DesiredPairs => "assignments on desired pairs",
        });
        for a in &self.assignments {
            put(a.account.as_str());
            put(a.permission_set.as_str());
            put(a.group.as_str());
        }
        hash.update(&buffer);
        let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}
