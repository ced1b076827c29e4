//! The boxed future and error that the crate's object-safe async traits return: providers,
//! stores and shared quota counts. Apart from the provider's module, which re-exports them, so
//! that the quota module below it can name them too.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: what provider methods return, so that the trait stays usable as
/// `dyn AppCodeProvider`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed error from a provider's backend.
pub type BoxError = Box<dyn StdError + Send + Sync>;
