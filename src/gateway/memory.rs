//! Giving back the memory a snapshot load used.
//!
//! Loading every code allocates about as much again as the cache keeps: the rows, the
//! provider's records, the digested entries (a few hundred MiB at a million codes). All of it is
//! freed once the cache holds the codes, but glibc's malloc keeps freed memory for later use,
//! spread over the arenas of the threads that allocated it, so the process would stay as large
//! as at its peak. After a large snapshot, `malloc_trim` hands every arena's free pages back.

use std::thread;

/// Below this many codes a load leaves too little behind to be worth a pass over the heap.
const WORTH_TRIMMING: usize = 10_000;

/// The refresher's after-snapshot hook: trims the heap on a thread of its own, so the refresher
/// goes on applying changes meanwhile.
pub(super) fn release_after_snapshot(codes: usize) {
    if codes < WORTH_TRIMMING {
        return;
    }
    let spawned = thread::Builder::new().name("apig-trim".into()).spawn(trim);
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "could not start a thread to trim the heap");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // The crate's only unsafe block: a call into the C library.
fn trim() {
    // SAFETY: malloc_trim takes no pointer and locks each arena itself: it may run beside any
    // allocation or free on other threads.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other C libraries (musl) and systems keep no comparable hoard, or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
