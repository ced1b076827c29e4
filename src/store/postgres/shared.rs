//! [`Shared`]: what the store's operations and its listening tasks share. Apart from the
//! store's public face, so that they need not import it.

use sha2::{Digest, Sha256};

use super::pool::Pool;
use crate::store::cipher::Sealer;

/// What the store's operations and listeners share.
pub(super) struct Shared {
    pub(super) pool: Pool,
    pub(super) sealer: Sealer,
    /// The schema the tables live in.
    pub(super) schema: String,
    /// Identifies this store in announcements, so its listeners can tell its own writes (the
    /// triggers read it from the session's `apig_appcode.origin`).
    pub(super) origin: String,
}

impl Shared {
    /// The `NOTIFY` channel of an instance in this schema: a name of 45 lowercase characters.
    pub(super) fn channel(&self, instance_id: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(self.schema.as_bytes());
        hash.update([0]);
        hash.update(instance_id.as_bytes());
        let digest = hash.finalize();
        let mut name = String::from("apig_appcode_");
        for byte in &digest[..16] {
            name.push_str(&format!("{byte:02x}"));
        }
        name
    }
}
