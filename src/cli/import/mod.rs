//! `apig-appcode import`: apps, their AppCodes, ACLs and app quotas copied from another
//! Huawei-compatible management API (Huawei Cloud APIG, or another apig-appcode) into the store
//! `serve` runs on, each with the source's ID, so that callers and scripts holding IDs keep
//! working.
//!
//! The source is read over its API ([`source`], typed by [`records`]); the target is written
//! through the [`Store`](apig_appcode::store::Store) trait ([`target`], [`sync`]), as the
//! management API writes it, so that running nodes see the rows as any change.
//!
//! A run can be repeated: an item that exists and matches is skipped, one that differs is
//! reported (or made to match with `--update`). So an interrupted run resumes by being run
//! again; nothing else is kept between runs. `--dry-run` prints the plan. Secrets (app
//! secrets, AppCodes, the source's credential) never reach the output, the progress or an
//! error: items are named by IDs and names.

mod command;
mod progress;
mod records;
mod report;
mod source;
mod sync;
mod target;

pub(crate) use command::{import, ImportArgs};
