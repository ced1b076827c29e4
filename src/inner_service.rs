//! The accessors of a middleware service's inner service, written once for the crate's three
//! middleware services (the AppCode check, the signed body, the throttle).

/// `get_ref`, `get_mut` and `into_inner` of a middleware service whose wrapped service is its
/// `inner` field, as every tower middleware offers them; written once for the crate's three.
macro_rules! inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Unwraps the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
