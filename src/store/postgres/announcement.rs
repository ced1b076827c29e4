//! What a write announces with `NOTIFY` (the triggers of `triggers.rs` write it), and how a
//! listener reads it back.
//!
//! An announcement names ids only, never an AppCode value or a secret:
//! `2 <revision> <kind> <origin> <app id length> <app id><app code id>`, where `revision` is the
//! instance's revision the write took (every event of one write shares it), `kind` is `C`
//! (created) or `D` (deleted), `A` (the app's ACL or quota changed; no code ID), or `R` (the
//! write changed more than its announcements name; no IDs: catch up on the log), `origin`
//! identifies the store (the process) that wrote it, `sql` for a session of another program,
//! and `app id length` is in bytes. A node reading any other version (version 1 had no
//! revision) reloads.

/// What an announcement says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventKind {
    Created,
    Deleted,
    /// An app's ACL or quota was set, changed or removed; the event names no code.
    Policy,
    /// The write changed more than was announced one by one (a bulk statement); the event
    /// names nothing: the reader catches up on the change log.
    More,
}

impl EventKind {
    /// Its letter, in payloads and in the change log's `kind` column.
    #[cfg(test)]
    fn code(self) -> &'static str {
        match self {
            Self::Created => "C",
            Self::Deleted => "D",
            Self::Policy => "A",
            Self::More => "R",
        }
    }
}

/// One announced change of an AppCode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Event<'a> {
    pub(super) kind: EventKind,
    pub(super) app_id: &'a str,
    pub(super) app_code_id: &'a str,
}

impl Event<'_> {
    /// The `NOTIFY` payload of this event, written by `origin` under `revision`: ids only.
    #[cfg(test)]
    pub(super) fn encode(&self, origin: &str, revision: u64) -> String {
        format!("{PAYLOAD_VERSION} {revision} {}", self.tail(origin))
    }

    /// The payload without its version and revision.
    #[cfg(test)]
    fn tail(&self, origin: &str) -> String {
        format!(
            "{} {origin} {} {}{}",
            self.kind.code(),
            self.app_id.len(),
            self.app_id,
            self.app_code_id
        )
    }
}

/// The payload format this version writes and reads. Version 1 had no revision; a node reading
/// a version it does not know resyncs.
const PAYLOAD_VERSION: &str = "2";

/// A payload read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Announcement<'a> {
    pub(super) event: Event<'a>,
    /// The store (process) that wrote it.
    pub(super) origin: &'a str,
    /// The instance's revision the write took; all events of one write share it.
    pub(super) revision: u64,
}

/// A payload read back; `None` if it is not one this version writes.
pub(super) fn decode(payload: &str) -> Option<Announcement<'_>> {
    let mut parts = payload.splitn(6, ' ');
    if parts.next()? != PAYLOAD_VERSION {
        return None;
    }
    let revision: u64 = parts.next()?.parse().ok()?;
    let kind = match parts.next()? {
        "C" => EventKind::Created,
        "D" => EventKind::Deleted,
        "A" => EventKind::Policy,
        "R" => EventKind::More,
        _ => return None,
    };
    let origin = parts.next()?;
    let app_len: usize = parts.next()?.parse().ok()?;
    let ids = parts.next()?;
    if !ids.is_char_boundary(app_len) {
        return None;
    }
    let (app_id, app_code_id) = ids.split_at(app_len);
    let names_a_code = !app_code_id.is_empty();
    let fits = match kind {
        EventKind::Created | EventKind::Deleted => names_a_code,
        EventKind::Policy => !names_a_code,
        EventKind::More => !names_a_code && app_id.is_empty(),
    };
    if !fits {
        return None;
    }
    let event = Event {
        kind,
        app_id,
        app_code_id,
    };
    Some(Announcement {
        event,
        origin,
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_hold_only_ids() {
        for (app_id, app_code_id) in [
            (
                "0123456789abcdef0123456789abcdef",
                "fedcba9876543210fedcba9876543210",
            ),
            ("app with spaces 1", "code 2"),
            ("应用", "c"),
            ("", "only-code"),
        ] {
            for kind in [EventKind::Created, EventKind::Deleted] {
                for revision in [0, 1, 42, u64::MAX] {
                    let event = Event {
                        kind,
                        app_id,
                        app_code_id,
                    };
                    let payload = event.encode("0a1b2c3d4e5f6a7b", revision);
                    assert_eq!(
                        decode(&payload),
                        Some(Announcement {
                            event,
                            origin: "0a1b2c3d4e5f6a7b",
                            revision
                        })
                    );
                }
            }
        }
        // Payloads as written: a new code; an ACL change, which names the app only; what the
        // triggers send past a transaction's first entries.
        for (kind, app_id, app_code_id, origin, revision, payload) in [
            (EventKind::Created, "a", "b", "o", 7, "2 7 C o 1 ab"),
            (EventKind::Policy, "app 1", "", "o", 9, "2 9 A o 5 app 1"),
            (EventKind::More, "", "", "sql", 11, "2 11 R sql 0 "),
        ] {
            let event = Event {
                kind,
                app_id,
                app_code_id,
            };
            assert_eq!(event.encode(origin, revision), payload);
            // What the writing statement sends: `'2 ' || revision || ' ' || tail`.
            assert_eq!(format!("2 {revision} {}", event.tail(origin)), payload);
            let read = Announcement {
                event,
                origin,
                revision,
            };
            assert_eq!(decode(payload), Some(read));
        }
    }

    #[test]
    fn foreign_payloads_are_refused() {
        for bad in [
            "",
            // Version 1 (no revision) and unknown versions.
            "1 C o 1 ab",
            "3 7 C o 1 ab",
            "2 C o 1 ab",
            "2 -1 C o 1 ab",
            "2 x C o 1 ab",
            "2 18446744073709551616 C o 1 ab",
            "2 7 X o 1 ab",
            "2 7 C o x ab",
            "2 7 C o 9 ab",
            "2 7 C o 2 ab",
            "2 7 C o 1",
            "2 7 C o 1 应",
            // A code ID where none belongs, none where one must be.
            "2 7 A o 1 ab",
            "2 7 D o 2 ab",
            // A catch-up names nothing.
            "2 7 R o 1 a",
            "2 7 R o 0 a",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
