//! The log line of every write made through the management API: at INFO, the request's ID and
//! the caller's name first, then what the write did, so that each change can be traced back
//! to who asked for it.

/// Logs what `call` wrote: `audit!(call, app_id = %app.id, "app created")`.
macro_rules! audit {
    ($call:expr, $($what:tt)+) => {
        tracing::info!(
            request_id = %$call.request_id,
            caller = %$call.caller.name,
            $($what)+
        )
    };
}

pub(crate) use audit;
