//! App ACLs (APIG's "app access control"): which client addresses may use an app's credentials.
//!
//! An [`AppAcl`] is `PERMIT` (only the listed addresses may use the app) or `DENY` (the listed
//! ones may not), over up to [`MAX_ACL_VALUES`] addresses, ranges and CIDR blocks. The cache
//! holds the ACLs of the apps that have one ([`AppCodeCache::set_app_acl`]); once a request's
//! AppCode is verified, the [`AppCodeAuth`](crate::AppCodeAuth) layer checks its client's
//! address ([`client_ip`]) against its app's ACL, and refuses it with `403 APIG.0402`
//! (`403 APIG.0401` when the address cannot be told). An app without an ACL costs one atomic
//! load per request.
//!
//! [`AppCodeCache::set_app_acl`]: crate::AppCodeCache::set_app_acl
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use apig_appcode::acl::{AclType, AppAcl};
//! use apig_appcode::{AppCode, AppCodeCache, AppIdentity};
//!
//! let cache = AppCodeCache::new();
//! let code = AppCode::generate();
//! cache.replace_all([(code, AppIdentity::new("app-1", "code-1"))]);
//! let acl = AppAcl::new(AclType::Permit, ["192.0.2.0/24"]).unwrap();
//! cache.set_app_acl("app-1", Arc::new(acl));
//! assert!(cache.app_acl("app-1").unwrap().admits("192.0.2.7".parse().unwrap()));
//! ```

mod client;
mod rule;

pub use client::client_ip;
pub use rule::{AclError, AclType, AppAcl, MAX_ACL_VALUES};
