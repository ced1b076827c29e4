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

/// The identity the layer attaches to a request whose AppCode (or signature) it verified.
///
/// It is placed in the request's extensions; in axum, extract it with
/// `Extension<AppIdentity>`.
///
/// IDs of up to 38 bytes (APIG's are 32 hex characters) are held inline, so cloning an identity
/// copies a few words and touches no shared counter; a longer ID, or attributes, are shared
/// behind a reference count.
#[derive(Clone, PartialEq, Eq)]
pub struct AppIdentity {
    app_id: Id,
    app_code_id: Id,
    /// `None` rather than an empty map, so an identity without attributes costs no allocation.
    attributes: Option<Arc<BTreeMap<String, String>>>,
}

/// An ID: inline when it fits, shared otherwise.
#[derive(Clone)]
pub(crate) enum Id {
    Inline { len: u8, bytes: [u8; INLINE_ID] },
    Shared(Arc<str>),
}

/// The longest ID held inline: with its length and the variant tag, an [`Id`] is 40 bytes.
pub(crate) const INLINE_ID: usize = 38;

impl Id {
    pub(crate) fn new(id: &str) -> Self {
        if id.len() <= INLINE_ID {
            Self::inline(id.as_bytes())
        } else {
            Self::Shared(Arc::from(id))
        }
    }

    /// `bytes` must be UTF-8 of at most [`INLINE_ID`] bytes (every caller copies them from a
    /// `&str` or writes ASCII); anything else reads back as an empty ID rather than panicking.
    pub(crate) fn inline(bytes: &[u8]) -> Self {
        let mut buf = [0u8; INLINE_ID];
        let len = bytes.len().min(INLINE_ID);
        buf[..len].copy_from_slice(&bytes[..len]);
        Self::Inline {
            len: len as u8,
            bytes: buf,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("")
            }
            Self::Shared(s) => s,
        }
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Id {}

static NO_ATTRIBUTES: BTreeMap<String, String> = BTreeMap::new();

impl AppIdentity {
    /// An identity for the app `app_id` holding the AppCode `app_code_id`, with no attributes.
    ///
    /// ```
    /// use apig_appcode::AppIdentity;
    ///
    /// let id = AppIdentity::new("a1b2c3d4e5f60718293a4b5c6d7e8f90", String::from("code-1"));
    /// assert_eq!(id.app_id(), "a1b2c3d4e5f60718293a4b5c6d7e8f90");
    /// assert_eq!(id.app_code_id(), "code-1");
    /// ```
    pub fn new(app_id: impl AsRef<str>, app_code_id: impl AsRef<str>) -> Self {
        Self {
            app_id: Id::new(app_id.as_ref()),
            app_code_id: Id::new(app_code_id.as_ref()),
            attributes: None,
        }
    }

    pub(crate) fn from_parts(
        app_id: Id,
        app_code_id: Id,
        attributes: Option<Arc<BTreeMap<String, String>>>,
    ) -> Self {
        Self {
            app_id,
            app_code_id,
            attributes,
        }
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
        let attributes = self.attributes.get_or_insert_with(Arc::default);
        Arc::make_mut(attributes).insert(name.into(), value.into());
        self
    }

    /// Replaces all attributes with a shared map, so that every code of one app can point to
    /// one copy.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use std::sync::Arc;
    /// use apig_appcode::AppIdentity;
    ///
    /// let shared = Arc::new(BTreeMap::from([("tier".to_owned(), "gold".to_owned())]));
    /// let a = AppIdentity::new("app", "c1").with_attributes(Arc::clone(&shared));
    /// let b = AppIdentity::new("app", "c2").with_attributes(shared);
    /// assert_eq!(a.attribute("tier"), b.attribute("tier"));
    /// ```
    pub fn with_attributes(mut self, attributes: Arc<BTreeMap<String, String>>) -> Self {
        self.attributes = Some(attributes);
        self
    }

    /// The app's ID.
    pub fn app_id(&self) -> &str {
        self.app_id.as_str()
    }

    /// The ID of the AppCode the request carried (not the code itself); empty for a request
    /// signed with the app's key and secret (see [`AppAuth`](crate::layer::AppAuth)).
    pub fn app_code_id(&self) -> &str {
        self.app_code_id.as_str()
    }

    /// One attribute by name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes().get(name).map(String::as_str)
    }

    /// All attributes.
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        self.attributes.as_deref().unwrap_or(&NO_ATTRIBUTES)
    }

    pub(crate) fn ids(&self) -> (&Id, &Id) {
        (&self.app_id, &self.app_code_id)
    }

    pub(crate) fn shared_attributes(&self) -> Option<&Arc<BTreeMap<String, String>>> {
        self.attributes.as_ref()
    }
}

impl fmt::Debug for AppIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppIdentity")
            .field("app_id", &self.app_id())
            .field("app_code_id", &self.app_code_id())
            .field("attributes", self.attributes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_ids_read_back() {
        let long = "x".repeat(INLINE_ID + 1);
        let edge = "y".repeat(INLINE_ID);
        for id in [
            "",
            "c1",
            "0123456789abcdef0123456789abcdef",
            edge.as_str(),
            long.as_str(),
            "ünïcødé",
        ] {
            let identity = AppIdentity::new(id, id);
            assert_eq!(identity.app_id(), id);
            assert_eq!(identity.app_code_id(), id);
        }
    }

    #[test]
    fn ids_compare_by_text_whatever_their_form() {
        let text = "a".repeat(10);
        assert!(Id::inline(text.as_bytes()) == Id::Shared(Arc::from(text.as_str())));
        assert!(Id::inline(b"a") != Id::inline(b"b"));
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

    #[test]
    fn debug_names_the_ids() {
        let text = format!("{:?}", AppIdentity::new("app-1", "code-1"));
        assert!(
            text.contains("\"app-1\"") && text.contains("\"code-1\""),
            "{text}"
        );
    }
}
