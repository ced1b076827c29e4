//! How the cache holds an identity: compact and inline in the map's slot.
//!
//! A hit reads the digest and the entry from one slot and builds the [`AppIdentity`] from it,
//! with no pointer to chase (with a million codes, every chase is another miss to memory) and
//! no shared counter to touch. APIG's IDs are 32 lowercase hex characters and are kept as their
//! 16 bytes, which keeps a slot at 88 bytes; so are lowercase UUIDs. Other IDs of up to 22 bytes
//! are inline too; longer ones sit behind a shared pointer, which a hit then follows.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::hex;
use crate::identity::{AppIdentity, Id, INLINE_ID};

/// An identity as the cache stores it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    app_id: StoredId,
    app_code_id: StoredId,
    attributes: Option<Arc<BTreeMap<String, String>>>,
}

impl Entry {
    pub(crate) fn new(identity: &AppIdentity) -> Self {
        let (app_id, app_code_id) = identity.ids();
        Self {
            app_id: StoredId::new(app_id),
            app_code_id: StoredId::new(app_code_id),
            attributes: identity.shared_attributes().cloned(),
        }
    }

    pub(crate) fn identity(&self) -> AppIdentity {
        AppIdentity::from_parts(
            self.app_id.expand(),
            self.app_code_id.expand(),
            self.attributes.clone(),
        )
    }

    pub(crate) fn app_id_is(&self, id: &StoredId) -> bool {
        self.app_id == *id
    }

    pub(crate) fn app_code_id_is(&self, id: &StoredId) -> bool {
        self.app_code_id == *id
    }

    pub(crate) fn app_code_id(&self) -> &StoredId {
        &self.app_code_id
    }

    /// This code's hash in a [`CodesDigest`](crate::provider::CodesDigest).
    pub(crate) fn digest_hash(&self) -> u64 {
        crate::provider::CodesDigest::hash(
            self.app_id.expand().as_str(),
            self.app_code_id.expand().as_str(),
        )
    }

    pub(crate) fn app_id_in(&self, ids: &HashSet<StoredId>) -> bool {
        !ids.is_empty() && ids.contains(&self.app_id)
    }
}

/// An ID in the form that takes least room. The form is a function of the text, so two
/// `StoredId`s are equal exactly when their texts are.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum StoredId {
    /// 32 lowercase hex characters, as 16 bytes.
    Hex([u8; 16]),
    /// A UUID in lowercase text form (36 characters), as 16 bytes.
    Uuid([u8; 16]),
    /// Any other text of up to [`SHORT`] bytes.
    Short { len: u8, bytes: [u8; SHORT] },
    /// Anything longer.
    Long(Arc<str>),
}

/// With its length and the variant tag, a short ID fills the 24 bytes the other forms take.
const SHORT: usize = 22;

impl StoredId {
    fn new(id: &Id) -> Self {
        let text = id.as_str();
        if let Some(bytes) = hex::decode16(text.as_bytes()) {
            return Self::Hex(bytes);
        }
        if let Some(bytes) = hex::decode_uuid(text.as_bytes()) {
            return Self::Uuid(bytes);
        }
        if text.len() <= SHORT {
            let mut bytes = [0u8; SHORT];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            return Self::Short {
                len: text.len() as u8,
                bytes,
            };
        }
        match id {
            Id::Shared(shared) => Self::Long(Arc::clone(shared)),
            Id::Inline { .. } => Self::Long(Arc::from(text)),
        }
    }

    /// The stored form of `text`, to compare entries against.
    pub(crate) fn of(text: &str) -> Self {
        Self::new(&Id::new(text))
    }

    /// Feeds the stored form to `hasher`, tagged with its kind: one text always has one stored
    /// form, so equal IDs hash equally.
    pub(crate) fn feed(&self, hasher: &mut blake3::Hasher) {
        let (tag, bytes): (u8, &[u8]) = match self {
            Self::Hex(bytes) => (0, bytes),
            Self::Uuid(bytes) => (1, bytes),
            Self::Short { len, bytes } => (2, &bytes[..usize::from(*len)]),
            Self::Long(text) => (3, text.as_bytes()),
        };
        hasher.update(&[tag]);
        hasher.update(bytes);
    }

    fn expand(&self) -> Id {
        match self {
            Self::Hex(bytes) => Id::inline(&hex::encode16(bytes)),
            Self::Uuid(bytes) => Id::inline(&hex::encode_uuid(bytes)),
            Self::Short { len, bytes } => Id::inline(&bytes[..usize::from(*len)]),
            // Copied when it fits, so the identity a request carries shares no counter.
            Self::Long(shared) if shared.len() <= INLINE_ID => Id::inline(shared.as_bytes()),
            Self::Long(shared) => Id::Shared(Arc::clone(shared)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_stays_small() {
        // Digest (16 bytes) + entry: the memory per cached code depends on it.
        assert!(std::mem::size_of::<Entry>() <= 56);
        assert_eq!(std::mem::size_of::<StoredId>(), 24);
    }

    #[test]
    fn every_form_round_trips() {
        let long = "L".repeat(60);
        for (text, form) in [
            ("0123456789abcdef0123456789abcdef", "hex"),
            ("ffffffffffffffffffffffffffffffff", "hex"),
            ("0123456789ABCDEF0123456789ABCDEF", "long"),
            ("0123456789abcdef0123456789abcdeg", "long"),
            ("0f8fad5b-d9cb-469f-a165-70867728950e", "uuid"),
            ("0F8FAD5B-D9CB-469F-A165-70867728950E", "long"),
            ("", "short"),
            ("app-1", "short"),
            ("ünïcødé", "short"),
            ("0123456789abcdef012345", "short"),
            ("0123456789abcdef0123456", "long"),
            (long.as_str(), "long"),
        ] {
            let stored = StoredId::of(text);
            let got = match stored {
                StoredId::Hex(_) => "hex",
                StoredId::Uuid(_) => "uuid",
                StoredId::Short { .. } => "short",
                StoredId::Long(_) => "long",
            };
            assert_eq!(got, form, "{text}");
            let expanded = stored.expand();
            assert_eq!(expanded.as_str(), text);
            let inline = matches!(expanded, Id::Inline { .. });
            assert_eq!(inline, text.len() <= INLINE_ID, "{text}");
        }
    }

    #[test]
    fn entries_keep_the_identity() {
        let identity = AppIdentity::new("a1b2c3d4e5f60718293a4b5c6d7e8f90", "line-7")
            .with_attribute("name", "shop");
        let entry = Entry::new(&identity);
        assert_eq!(entry.identity(), identity);
        assert!(entry.app_id_is(&StoredId::of("a1b2c3d4e5f60718293a4b5c6d7e8f90")));
        assert!(!entry.app_id_is(&StoredId::of("A1B2C3D4E5F60718293A4B5C6D7E8F90")));
        assert!(entry.app_code_id_is(&StoredId::of("line-7")));
    }
}
