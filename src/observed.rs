//! Observed state: what AWS IAM Identity Center holds, as plain data. The directory readers
//! (the in-memory `World` now, the SCIM and sso-admin clients later) fill it; `plan` reads it.

use crate::model::{AccountId, ExternalId, GroupId, GroupName, PermissionSetArn, UserId, UserName};
use serde::{Deserialize, Serialize};
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
