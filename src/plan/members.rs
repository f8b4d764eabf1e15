//! Members: each wanted group's euids resolved to AWS users, and the members to add and to
//! remove, in requests of at most [`MAX_MEMBERS_PER_REQUEST`].

use super::{GroupRef, MAX_MEMBERS_PER_REQUEST, Member, Op, Ops, Reason};
use crate::desired::DesiredGroup;
use crate::finding::Finding;
use crate::model::{Euid, UserId, UserName};
use crate::observed::{Observed, ObservedGroup};
use foldhash::{HashMap, HashSet, HashSetExt};
use std::collections::{BTreeMap, BTreeSet};

/// The user index: exact `userName` first; a case-insensitive match only when it is unique.
pub(super) struct Users<'a> {
    all: &'a BTreeMap<UserId, UserName>,
    /// Keyed by a copy of each name (inline when short): a lookup compares within the table.
    exact: HashMap<smol_str::SmolStr, (&'a UserId, &'a UserName)>,
    /// Built on the first euid without an exact match: most directories never need it.
    folded: std::cell::OnceCell<HashMap<String, Vec<(&'a UserId, &'a UserName)>>>,
}

enum Resolved<'a> {
    Found(&'a UserId, &'a UserName),
    Missing,
    Ambiguous(Vec<(&'a UserId, &'a UserName)>),
}

impl<'a> Users<'a> {
    pub(super) fn new(users: &'a BTreeMap<UserId, UserName>) -> Self {
        let exact = users
            .iter()
            .map(|(id, name)| (name.0.clone(), (id, name)))
            .collect();
        Self {
            all: users,
            exact,
            folded: std::cell::OnceCell::new(),
        }
    }

    fn resolve(&self, euid: &Euid) -> Resolved<'a> {
        if let Some((id, name)) = self.exact.get(euid.as_str()) {
            return Resolved::Found(id, name);
        }
        let folded = self.folded.get_or_init(|| {
            let mut folded: HashMap<String, Vec<_>> = HashMap::default();
            for (id, name) in self.all {
                folded
                    .entry(name.as_str().to_lowercase())
                    .or_default()
                    .push((id, name));
            }
            folded
        });
        match folded.get(&euid.as_str().to_lowercase()).map(Vec::as_slice) {
            None | Some([]) => Resolved::Missing,
            Some([(id, name)]) => Resolved::Found(id, name),
            Some(many) => Resolved::Ambiguous(many.to_vec()),
        }
    }
}

/// A member as an operation names it, with the userName the observation holds for it.
pub(super) fn member(observed: &Observed, id: &UserId) -> Member {
    Member {
        id: id.clone(),
        user_name: observed
            .users
            .get(id)
            .cloned()
            .unwrap_or_else(|| UserName(id.0.clone())),
    }
}

/// Resolves `want`'s euids into `out` (sorted by id, distinct), counting the ones no user has;
/// returns the users matched ambiguously, which are neither added nor removed.
pub(super) fn resolve<'a>(
    want: &'a DesiredGroup,
    users: &Users<'a>,
    findings: &mut BTreeSet<Finding>,
    unresolved: &mut BTreeMap<&'a Euid, usize>,
    out: &mut Vec<(&'a UserId, &'a UserName)>,
) -> HashSet<&'a UserId> {
    out.clear();
    let mut protected: HashSet<&UserId> = HashSet::new();
    for euid in &want.members {
        match users.resolve(euid) {
            Resolved::Found(id, name) => out.push((id, name)),
            Resolved::Missing => *unresolved.entry(euid).or_default() += 1,
            Resolved::Ambiguous(candidates) => {
                findings.insert(Finding::AmbiguousEuid {
                    euid: euid.clone(),
                    candidates: candidates.iter().map(|(_, n)| n.to_string()).collect(),
                });
                protected.extend(candidates.iter().map(|(id, _)| *id));
            }
        }
    }
    // Two euids may resolve to one user (one exactly, one ignoring case).
    out.sort_unstable_by_key(|(id, _)| *id);
    out.dedup_by_key(|(id, _)| *id);
    protected
}

/// The members to add to and remove from an existing group.
pub(super) fn diff(
    ops: &mut Ops,
    group: &impl Fn() -> GroupRef,
    members: &[(&UserId, &UserName)],
    have: &ObservedGroup,
    protected: &HashSet<&UserId>,
    member: &impl Fn(&UserId) -> Member,
) {
    // Both sides are sorted by id: one walk finds what to add and what to remove.
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    let mut had = have.members.iter().peekable();
    for &(id, name) in members {
        while let Some(gone) = had.next_if(|h| *h < id) {
            if !protected.contains(gone) {
                remove.push(member(gone));
            }
        }
        if had.next_if(|h| *h == id).is_none() {
            add.push(Member {
                id: id.clone(),
                user_name: name.clone(),
            });
        }
    }
    remove.extend(had.filter(|h| !protected.contains(h)).map(member));
    for chunk in sorted_chunks(add) {
        ops.add.push(Op::AddMembers {
            group: group(),
            members: chunk,
            reason: Reason::RoleBound,
        });
    }
    for chunk in sorted_chunks(remove) {
        ops.remove.push(Op::RemoveMembers {
            group: group(),
            members: chunk,
            reason: Reason::RoleUnbound,
        });
    }
}

/// One finding per euid no AWS user has, with the number of groups that want it.
pub(super) fn report_unresolved(
    findings: &mut BTreeSet<Finding>,
    unresolved: BTreeMap<&Euid, usize>,
) {
    for (euid, groups) in unresolved {
        findings.insert(Finding::UnresolvedEuid {
            euid: euid.clone(),
            groups,
        });
    }
}

pub(super) fn sorted_chunks(mut members: Vec<Member>) -> Vec<Vec<Member>> {
    members.sort();
    members
        .chunks(MAX_MEMBERS_PER_REQUEST)
        .map(<[Member]>::to_vec)
        .collect()
}
