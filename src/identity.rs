//! Who a verified caller is: the app and AppCode behind a request.
//!
//! # Example
//!
//! ```
//! use apig_appcode::AppIdentity;
//!
//! let id = AppIdentity::new("app-1", "code-1").with_attribute("tier", "gold");
//! assert_eq!(id.app_id(), "app-1");
//! assert_eq!(id.attribute("tier"), Some("gold"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The identity the layer attaches to a request whose AppCode it verified.
///
/// It is placed in the request's extensions; in axum, extract it with
/// `Extension<AppIdentity>`. Cloning costs one reference-count increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppIdentity(Arc<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    app_id: Arc<str>,
    app_code_id: Id,
    /// `None` rather than an empty map, so an identity without attributes costs no allocation.
    attributes: Option<Arc<BTreeMap<String, String>>>,
}

/// An ID stored inline when it is short (APIG's are 32 hex characters), so a cached identity is
/// one allocation.
#[derive(Clone, PartialEq, Eq)]
enum Id {
    Inline { len: u8, bytes: [u8; INLINE_ID] },
    Heap(Box<str>),
}

const INLINE_ID: usize = 32;

impl Id {
    fn new(id: &str) -> Self {
        if id.len() <= INLINE_ID {
            let mut bytes = [0u8; INLINE_ID];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            Self::Inline {
                len: id.len() as u8,
                bytes,
            }
        } else {
            Self::Heap(id.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes were copied from a whole `&str`, so they are valid UTF-8.
            Self::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("")
            }
            Self::Heap(s) => s,
        }
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

static NO_ATTRIBUTES: BTreeMap<String, String> = BTreeMap::new();

impl AppIdentity {
    /// An identity for the app `app_id` holding the AppCode `app_code_id`, with no attributes.
    pub fn new(app_id: impl Into<Arc<str>>, app_code_id: impl AsRef<str>) -> Self {
        Self(Arc::new(Inner {
            app_id: app_id.into(),
            app_code_id: Id::new(app_code_id.as_ref()),
            attributes: None,
        }))
    }

    /// Adds an attribute (a provider's extra fact about the app, such as its name).
    ///
    /// ```
    /// use apig_appcode::AppIdentity;
    ///
    /// let id = AppIdentity::new("a", "c").with_attribute("name", "shop");
    /// assert_eq!(id.attributes().get("name").map(String::as_str), Some("shop"));
    /// ```
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let inner = Arc::make_mut(&mut self.0);
        let attributes = inner.attributes.get_or_insert_with(Arc::default);
        Arc::make_mut(attributes).insert(name.into(), value.into());
        self
    }

    /// Replaces all attributes with a shared map, so that every code of one app can point to
    /// one copy.
    pub fn with_attributes(mut self, attributes: Arc<BTreeMap<String, String>>) -> Self {
        Arc::make_mut(&mut self.0).attributes = Some(attributes);
        self
    }

    /// The app's ID.
    pub fn app_id(&self) -> &str {
        &self.0.app_id
    }

    /// The ID of the AppCode the request carried (not the code itself).
    pub fn app_code_id(&self) -> &str {
        self.0.app_code_id.as_str()
    }

    /// One attribute by name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes().get(name).map(String::as_str)
    }

    /// All attributes.
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        self.0.attributes.as_deref().unwrap_or(&NO_ATTRIBUTES)
    }

    /// The shared handle of the app ID, for building more identities of one app cheaply.
    pub fn shared_app_id(&self) -> &Arc<str> {
        &self.0.app_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_ids_read_back() {
        let long = "x".repeat(40);
        for id in [
            "",
            "c1",
            "0123456789abcdef0123456789abcdef",
            long.as_str(),
            "ünïcødé",
        ] {
            assert_eq!(AppIdentity::new("a", id).app_code_id(), id);
        }
    }

    #[test]
    fn attributes_default_to_empty_and_compare_by_value() {
        let a = AppIdentity::new("a", "c");
        assert!(a.attributes().is_empty());
        assert_eq!(a.attribute("x"), None);
        let b = a.clone().with_attribute("x", "1");
        assert_ne!(a, b);
        assert_eq!(b, AppIdentity::new("a", "c").with_attribute("x", "1"));
    }
}
