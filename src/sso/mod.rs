//! AWS IAM Identity Center as the replicator reaches it: the SCIM endpoint (users, groups,
//! members) with the seed's SCIM token, and sso-admin for account assignments.

pub mod admin;
pub mod scim;
