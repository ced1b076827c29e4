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
    app_code_id: Box<str>,
    attributes: Arc<BTreeMap<String, String>>,
}

impl AppIdentity {
    /// An identity for the app `app_id` holding the AppCode `app_code_id`, with no attributes.
    pub fn new(app_id: impl Into<Arc<str>>, app_code_id: impl Into<Box<str>>) -> Self {
        Self(Arc::new(Inner {
            app_id: app_id.into(),
            app_code_id: app_code_id.into(),
            attributes: Arc::default(),
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
        Arc::make_mut(&mut inner.attributes).insert(name.into(), value.into());
        self
    }

    /// Replaces all attributes with a shared map, so that every code of one app can point to
    /// one copy.
    pub fn with_attributes(mut self, attributes: Arc<BTreeMap<String, String>>) -> Self {
        Arc::make_mut(&mut self.0).attributes = attributes;
        self
    }

    /// The app's ID.
    pub fn app_id(&self) -> &str {
        &self.0.app_id
    }

    /// The ID of the AppCode the request carried (not the code itself).
    pub fn app_code_id(&self) -> &str {
        &self.0.app_code_id
    }

    /// One attribute by name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.0.attributes.get(name).map(String::as_str)
    }

    /// All attributes.
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.0.attributes
    }

    /// The shared handle of the app ID, for building more identities of one app cheaply.
    pub fn shared_app_id(&self) -> &Arc<str> {
        &self.0.app_id
    }
}
