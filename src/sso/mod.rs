//! AWS IAM Identity Center as the replicator reaches it: the SCIM endpoint (users, groups,
//! members) with the seed's SCIM token. sso-admin follows in "Apply".

pub mod scim;
