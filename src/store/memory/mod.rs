//! [`MemoryStore`]: everything in one mutex-guarded map, for tests and throwaway setups.
//!
//! The store and its locking live in `store`, the data and its lookups in `state`, each
//! instance's revision and change log in `log`, what a reader behind a revision is sent in
//! `changes`, and the rules of quotas and their bindings in `quotas`.

mod changes;
mod log;
mod quotas;
mod state;
mod store;

pub use store::MemoryStore;
