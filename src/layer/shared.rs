//! [`Shared`]: what every clone of a layer and of its services holds. Apart from the layer's
//! public face, so that the service and its future need not import the layer.

use std::sync::Arc;

use http::HeaderName;

use super::headers::IdentityHeaders;
use super::held_bodies::HeldBodies;
use super::https::HttpsPolicy;
use super::signed::SignaturePolicy;
use crate::cache::ReadThrough;

/// What every clone of a layer and its services shares.
pub(crate) struct Shared {
    /// The cache and the provider behind it; dropping the last clone stops its refresher.
    pub(crate) codes: ReadThrough,
    pub(crate) header: HeaderName,
    pub(crate) strip_header: bool,
    pub(crate) identity_headers: Option<IdentityHeaders>,
    /// Also whose `X-Forwarded-For` names the client for app ACLs.
    pub(crate) https: HttpsPolicy,
    /// Which credentials are accepted, and the signatures' clock skew.
    pub(crate) signatures: SignaturePolicy,
    /// The bytes of signed bodies being read, shared by every body layer taken from this one.
    pub(crate) held_bodies: Arc<HeldBodies>,
}
