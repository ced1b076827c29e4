//! The triggers that make the database the source of truth for changes: whatever changes a row a
//! gateway depends on (an AppCode, an app's ACL or quota binding, a bound quota, an app's
//! deletion or a new app ID), by the management API or by plain SQL (the `sqlite3` shell, a
//! restore), is logged in `app_code_log` under the instance's revision, in the transaction that
//! made it. The management API writes no log entry of its own; a node sees every change at its
//! next catch-up.
//!
//! SQLite has row triggers only. Each logs its entries through the view `app_code_log_entries`,
//! whose `INSTEAD OF INSERT` trigger takes the revision, logs the entry and prunes the log:
//! - a write of the management API opens a row of `open_writes` for its instance
//!   ([`Write`](super::transactions::Write)) and removes it before it commits, so every entry of the
//!   write goes under one revision, in order, as the write is one change;
//! - any other change (no open write) takes a revision per row: a bulk `DELETE` of more rows
//!   than the log keeps revisions makes the nodes reload every code, which is what they must do.
//!
//! The retention is the open write's; other changes prune with the default (10 000).
//!
//! An app's deletion is logged before its row goes (`BEFORE DELETE`): its codes go with it by
//! `ON DELETE CASCADE`, after the app's row is gone, and are skipped by their own table's
//! triggers, which log only rows whose app exists.

/// The triggers that log a change of a row of `table`, which gives an app its ACL or its quota
/// (the app is `app_seq`): kind `A` for the app.
macro_rules! policy_triggers {
    ($table:literal) => {
        concat!(
            "CREATE TRIGGER ",
            $table,
            "_inserted AFTER INSERT ON ",
            $table,
            "
BEGIN
    INSERT INTO app_code_log_entries
    SELECT a.instance_id, a.id, '', 'A' FROM apps a WHERE a.seq = NEW.app_seq;
END;
CREATE TRIGGER ",
            $table,
            "_updated AFTER UPDATE ON ",
            $table,
            "
BEGIN
    INSERT INTO app_code_log_entries
    SELECT a.instance_id, a.id, '', 'A' FROM apps a
    WHERE a.seq IN (OLD.app_seq, NEW.app_seq) ORDER BY a.seq;
END;
CREATE TRIGGER ",
            $table,
            "_deleted AFTER DELETE ON ",
            $table,
            "
BEGIN
    INSERT INTO app_code_log_entries
    SELECT a.instance_id, a.id, '', 'A' FROM apps a WHERE a.seq = OLD.app_seq;
END;
"
        )
    };
}

/// The migration that installs the triggers (schema version 5).
pub(super) const MIGRATION: &str = concat!(
    "
CREATE TABLE open_writes (
    instance_id TEXT PRIMARY KEY,
    retention INTEGER NOT NULL CHECK (retention > 0),
    revision INTEGER,
    next_ord INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

CREATE VIEW app_code_log_entries (instance_id, app_id, app_code_id, kind) AS
    SELECT instance_id, app_id, app_code_id, kind FROM app_code_log WHERE 0;

CREATE TRIGGER app_code_log_entry INSTEAD OF INSERT ON app_code_log_entries
BEGIN
    INSERT INTO instance_revisions (instance_id, revision, pruned_through)
    SELECT NEW.instance_id, 1, 0
    WHERE NOT EXISTS (SELECT 1 FROM open_writes
                      WHERE instance_id = NEW.instance_id AND revision IS NOT NULL)
    ON CONFLICT (instance_id) DO UPDATE SET
        revision = revision + 1,
        pruned_through = MAX(pruned_through, revision + 1 - COALESCE(
            (SELECT retention FROM open_writes WHERE instance_id = NEW.instance_id), 10000));
    UPDATE open_writes
    SET revision = (SELECT revision FROM instance_revisions WHERE instance_id = NEW.instance_id)
    WHERE instance_id = NEW.instance_id AND revision IS NULL;
    INSERT INTO app_code_log (instance_id, revision, ord, app_code_id, app_id, kind)
    SELECT NEW.instance_id, r.revision,
           COALESCE((SELECT next_ord FROM open_writes WHERE instance_id = NEW.instance_id), 0),
           NEW.app_code_id, NEW.app_id, NEW.kind
    FROM instance_revisions r WHERE r.instance_id = NEW.instance_id;
    UPDATE open_writes SET next_ord = next_ord + 1 WHERE instance_id = NEW.instance_id;
    DELETE FROM app_code_log
    WHERE instance_id = NEW.instance_id
      AND revision <= (SELECT pruned_through FROM instance_revisions
                       WHERE instance_id = NEW.instance_id);
END;

CREATE TRIGGER app_codes_inserted AFTER INSERT ON app_codes
BEGIN
    INSERT INTO app_code_log_entries
    SELECT NEW.instance_id, a.id, NEW.id, 'C' FROM apps a WHERE a.seq = NEW.app_seq;
END;

CREATE TRIGGER app_codes_deleted AFTER DELETE ON app_codes
BEGIN
    INSERT INTO app_code_log_entries
    SELECT OLD.instance_id, a.id, OLD.id, 'D' FROM apps a WHERE a.seq = OLD.app_seq;
END;

-- A changed value, ID, app or instance: the old code goes, the new one comes.
CREATE TRIGGER app_codes_updated AFTER UPDATE ON app_codes
WHEN OLD.id IS NOT NEW.id OR OLD.app_seq IS NOT NEW.app_seq
  OR OLD.instance_id IS NOT NEW.instance_id OR OLD.value IS NOT NEW.value
  OR OLD.value_nonce IS NOT NEW.value_nonce OR OLD.value_digest IS NOT NEW.value_digest
BEGIN
    INSERT INTO app_code_log_entries
    SELECT OLD.instance_id, a.id, OLD.id, 'D' FROM apps a WHERE a.seq = OLD.app_seq;
    INSERT INTO app_code_log_entries
    SELECT NEW.instance_id, a.id, NEW.id, 'C' FROM apps a WHERE a.seq = NEW.app_seq;
END;

",
    policy_triggers!("app_acls"),
    policy_triggers!("app_quota_bindings"),
    "
CREATE TRIGGER app_quotas_updated AFTER UPDATE ON app_quotas
BEGIN
    INSERT INTO app_code_log_entries
    SELECT a.instance_id, a.id, '', 'A'
    FROM app_quota_bindings b JOIN apps a ON a.seq = b.app_seq
    WHERE b.quota_seq = NEW.seq ORDER BY b.seq;
END;

CREATE TRIGGER apps_deleted BEFORE DELETE ON apps
BEGIN
    INSERT INTO app_code_log_entries
    SELECT c.instance_id, OLD.id, c.id, 'D' FROM app_codes c
    WHERE c.app_seq = OLD.seq ORDER BY c.seq;
    -- Its signing key goes with it (and any ACL and quota): always a change for the gateways.
    INSERT INTO app_code_log_entries VALUES (OLD.instance_id, OLD.id, '', 'A');
END;

-- A new app brings a signing key.
CREATE TRIGGER apps_inserted AFTER INSERT ON apps
BEGIN
    INSERT INTO app_code_log_entries VALUES (NEW.instance_id, NEW.id, '', 'A');
END;

-- An app's signing key or secret changed (its ID unchanged: that is a rename, below).
CREATE TRIGGER apps_key_changed AFTER UPDATE OF app_key, app_secret, app_secret_nonce ON apps
WHEN OLD.id IS NEW.id AND OLD.instance_id IS NEW.instance_id
 AND (OLD.app_key IS NOT NEW.app_key OR OLD.app_secret IS NOT NEW.app_secret
      OR OLD.app_secret_nonce IS NOT NEW.app_secret_nonce)
BEGIN
    INSERT INTO app_code_log_entries VALUES (NEW.instance_id, NEW.id, '', 'A');
END;

-- An app's ID (or instance) changed: its codes now stand for another app, and its ACL and
-- quota belong to the new ID.
CREATE TRIGGER apps_renamed AFTER UPDATE OF id, instance_id ON apps
WHEN OLD.id IS NOT NEW.id OR OLD.instance_id IS NOT NEW.instance_id
BEGIN
    INSERT INTO app_code_log_entries
    SELECT c.instance_id, OLD.id, c.id, 'D' FROM app_codes c
    WHERE c.app_seq = NEW.seq ORDER BY c.seq;
    INSERT INTO app_code_log_entries
    SELECT c.instance_id, NEW.id, c.id, 'C' FROM app_codes c
    WHERE c.app_seq = NEW.seq ORDER BY c.seq;
    INSERT INTO app_code_log_entries VALUES (OLD.instance_id, OLD.id, '', 'A');
    INSERT INTO app_code_log_entries VALUES (NEW.instance_id, NEW.id, '', 'A');
END;
"
);
