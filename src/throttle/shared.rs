//! [`Shared`]: the limits and per-app state that a [`ThrottleLayer`](super::ThrottleLayer), its
//! clones and every [`Throttle`](super::Throttle) it made hold behind one `Arc`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::limiter::Limiter;
use super::quota::Quota;
use super::store::Remote;

/// The configuration and state every clone of the layer and its services share.
pub(crate) struct Shared {
    pub(crate) default: Option<Quota>,
    pub(crate) apps: HashMap<Box<str>, Quota>,
    /// Local state: the only one without a store, the fallback with one.
    pub(crate) limiter: Limiter,
    pub(crate) remote: Option<Remote>,
    pub(crate) throttled: AtomicU64,
}

impl Shared {
    /// The quota `app` is held to, if any.
    #[inline]
    pub(crate) fn quota(&self, app: &str) -> Option<&Quota> {
        // An empty map is not hashed into: the common "one default for all" costs nothing here.
        if self.apps.is_empty() {
            return self.default.as_ref();
        }
        self.apps.get(app).or(self.default.as_ref())
    }
}

// Shown under the layer's name: users configure and see a `ThrottleLayer`, never this struct.
impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleLayer")
            .field("default", &self.default)
            .field("apps", &self.apps.len())
            .field("store", &self.remote)
            .field("throttled", &self.throttled.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
