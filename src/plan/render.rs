//! The plan for people: one line per change, greppable, then findings and a summary.

use super::{Op, Plan, Reason};
use crate::finding::Finding;
use std::collections::BTreeSet;
use std::fmt::Write;

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Reason::GroupMissing => "group missing",
            Reason::NameChanged => "name changed",
            Reason::RoleBound => "role bound in meshStack",
            Reason::RoleUnbound => "not bound in meshStack",
            Reason::AssignmentMissing => "assignment missing",
            Reason::AssignmentUnmapped => "permission set no longer mapped",
            Reason::ProjectGone => "project has no tenant on this platform",
            Reason::RoleUnmapped => "role no longer mapped",
            Reason::GroupRetired => "group retired, assignments kept",
        }
    }
}

/// The last path segment of a permission set ARN (`ps-…`), which is unique in its instance.
fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl Plan {
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            let why = match op {
                Op::CreateGroup { reason, .. }
                | Op::RenameGroup { reason, .. }
                | Op::AddMembers { reason, .. }
                | Op::CreateAssignment { reason, .. }
                | Op::DeleteAssignment { reason, .. }
                | Op::RemoveMembers { reason, .. }
                | Op::DeleteGroup { reason, .. } => reason.describe(),
            };
            let name = &op.group().name;
            let _ = match op {
                Op::CreateGroup { members, .. } => {
                    let _ = writeln!(out, "+ group {name}  ({why})");
                    members
                        .iter()
                        .try_for_each(|m| writeln!(out, "+ member {} → {name}", m.user_name))
                }
                Op::RenameGroup { from, .. } => {
                    writeln!(out, "~ group {from} renamed to {name}  ({why})")
                }
                Op::AddMembers { members, .. } => members
                    .iter()
                    .try_for_each(|m| writeln!(out, "+ member {} → {name}  ({why})", m.user_name)),
                Op::RemoveMembers { members, .. } => members
                    .iter()
                    .try_for_each(|m| writeln!(out, "- member {} → {name}  ({why})", m.user_name)),
                Op::CreateAssignment {
                    account,
                    permission_set,
                    ..
                } => writeln!(
                    out,
                    "+ assignment {name} → account {account} / {}  ({why})",
                    short(permission_set.as_str())
                ),
                Op::DeleteAssignment {
                    account,
                    permission_set,
                    ..
                } => writeln!(
                    out,
                    "- assignment {name} → account {account} / {}  ({why})",
                    short(permission_set.as_str())
                ),
                Op::DeleteGroup { .. } => writeln!(out, "- group {name}  ({why})"),
            };
        }
        if !self.findings.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            for f in &self.findings {
                let _ = writeln!(out, "! {f}");
            }
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }

    /// What the findings say cannot be done until a person acts, as one clause per kind:
    /// held projects (the cases for which `sync` exits 3), users AWS lacks, groups or
    /// assignments kept. Empty when nothing is blocked.
    pub fn blocked(&self) -> Vec<String> {
        let mut held = BTreeSet::new();
        let mut users = BTreeSet::new();
        let mut names = BTreeSet::new();
        let mut kept_groups = 0;
        let mut kept_assignments = 0;
        for f in &self.findings {
            match f {
                Finding::BindingToUnknownUser { project, .. }
                | Finding::BindingToUnknownGroup { project, .. }
                | Finding::TenantWithoutAccount { project }
                | Finding::InvalidAccountId { project, .. }
                | Finding::DuplicateTenant { project }
                | Finding::ProjectWithoutNumericId { project, .. }
                | Finding::IdentifierTooLong { project, .. } => {
                    held.insert(project.to_string());
                }
                Finding::DuplicateGroupName { projects, .. } => {
                    held.extend(projects.iter().map(|p| p.to_string()));
                }
                Finding::UnresolvedEuid { euid, .. } | Finding::AmbiguousEuid { euid, .. } => {
                    users.insert(euid.to_string());
                }
                Finding::NameTakenByForeignGroup { name, .. }
                | Finding::InvalidGroupName { name, .. } => {
                    names.insert(name.to_string());
                }
                Finding::GroupKeptForAssignments { .. } => kept_groups += 1,
                Finding::AssignmentKept { .. } => kept_assignments += 1,
                _ => {}
            }
        }
        let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
        let mut out = Vec::new();
        if !held.is_empty() {
            out.push(format!("{} project(s) held ({})", held.len(), list(&held)));
        }
        if !users.is_empty() {
            out.push(format!(
                "{} user(s) not found in AWS ({})",
                users.len(),
                list(&users)
            ));
        }
        if !names.is_empty() {
            out.push(format!(
                "{} group(s) not created ({})",
                names.len(),
                list(&names)
            ));
        }
        if kept_groups > 0 {
            out.push(format!(
                "{kept_groups} retired group(s) emptied, not deleted"
            ));
        }
        if kept_assignments > 0 {
            out.push(format!(
                "{kept_assignments} assignment(s) kept that this role may not delete"
            ));
        }
        out
    }

    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let blocked = self.blocked();
        if self.ops.is_empty() {
            if blocked.is_empty() {
                return format!(
                    "No changes. AWS IAM Identity Center matches meshStack ({} finding(s)).",
                    self.findings.len()
                );
            }
            return format!(
                "No changes. AWS IAM Identity Center does not match meshStack yet; blocked until a person acts (the findings ! say what): {} ({} finding(s)).",
                blocked.join("; "),
                self.findings.len()
            );
        }
        let blocked = if blocked.is_empty() {
            String::new()
        } else {
            format!(" Blocked until a person acts: {}.", blocked.join("; "))
        };
        format!(
            "Plan: {} group(s) to create, {} to rename, {} to delete; {} member(s) to add, {} to remove; \
             {} assignment(s) to create, {} to delete. ≈ {} SCIM + {} sso-admin calls to write, \
             {} + {} to read, ≈ {:.0} s at the configured rates.",
            s.groups_to_create,
            s.groups_to_rename,
            s.groups_to_delete,
            s.members_to_add,
            s.members_to_remove,
            s.assignments_to_create,
            s.assignments_to_delete,
            self.estimate.scim_calls,
            self.estimate.sso_admin_calls,
            self.estimate.scim_reads,
            self.estimate.sso_admin_reads,
            self.estimate.seconds.ceil()
        ) + &blocked
    }
}
