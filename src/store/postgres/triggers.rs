//! The triggers that make the database the source of truth for changes: whatever changes a row a
//! gateway depends on (an AppCode, an app's ACL or quota binding, a bound quota, an app's
//! creation, deletion, new ID, or new signing key or secret), by the management API or by
//! plain SQL, is logged in
//! `app_code_log` under the instance's revision and announced with `pg_notify`, in the
//! transaction that made it. The management API writes no log entry of its own.
//!
//! - **One revision per transaction and instance.** The first logging statement of a
//!   transaction takes the instance's next revision (`instance_revisions.xact` records which
//!   transaction holds it, `entries` how many entries it logged so far); later statements of the
//!   same transaction log under it. The revision comes from `INSERT ... ON CONFLICT DO UPDATE` on
//!   the instance's row, which stays locked until the transaction ends, so revisions commit in
//!   order and without gaps, as a listener expects.
//! - **Statement-level triggers** with transition tables on `app_codes`, `app_acls`,
//!   `app_quota_bindings`, `app_quotas` and (for new app IDs) `apps`: a `DELETE` of 100 000
//!   rows logs them in one statement. Only the deletion of an app is logged row by row
//!   (`BEFORE DELETE`): its codes, ACL and binding go with it by `ON DELETE CASCADE`, after
//!   the app's row is gone, when nothing could say which app they belonged to. Those cascaded
//!   rows are skipped by their own tables' triggers, which log only rows whose app exists.
//! - **Bounded announcements.** The first 32 entries of a transaction are announced one by one
//!   (what a listener applies at once); past them, one announcement of kind `R` tells
//!   listeners to catch up on the log (identical payloads of one transaction reach a listener
//!   once, so a bulk `DELETE` sends 33 notifications whatever its size).
//! - **Whatever the session's `search_path`.** The functions keep the one they were created
//!   with (the store's schema), so a session of psql that names the table with its schema
//!   (`DELETE FROM apig.app_codes ...`) is logged in that schema's log.
//! - **Who wrote it.** The store's sessions set `apig_appcode.origin` (so a node can tell its
//!   own writes) and `apig_appcode.retention` (how many revisions the log keeps); a session
//!   without them (psql) writes as origin `sql` with the default retention.

/// The session settings a store's connection sets for the triggers (see the module docs).
pub(super) fn session_settings(origin: &str, retention: i64) -> String {
    format!("SET apig_appcode.origin = '{origin}'; SET apig_appcode.retention = {retention};")
}

/// The migration that installs the triggers (schema version 5). The default retention is
/// written into it (a test holds it to [`CHANGE_LOG_RETENTION`](crate::store::CHANGE_LOG_RETENTION)).
pub(super) const MIGRATION: &str = r#"
ALTER TABLE instance_revisions
    ADD COLUMN xact bigint,
    ADD COLUMN entries integer NOT NULL DEFAULT 0;

-- Logs entries (kind, app ID, code ID; in order) of the instance `p_instance` and announces
-- them on the instance's channel of schema `p_schema` (see the module docs of triggers.rs).
CREATE FUNCTION apig_appcode_log(p_schema text, p_instance text, p_kinds text[],
                                 p_app_ids text[], p_code_ids text[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    v_xact bigint := txid_current();
    v_retention bigint := COALESCE(
        NULLIF(current_setting('apig_appcode.retention', true), '')::bigint, 10000);
    v_origin text := COALESCE(NULLIF(current_setting('apig_appcode.origin', true), ''), 'sql');
    v_count integer := COALESCE(cardinality(p_kinds), 0);
    v_revision bigint;
    v_pruned bigint;
    v_base integer;
    v_channel text;
BEGIN
    IF v_count = 0 THEN
        RETURN;
    END IF;
    INSERT INTO instance_revisions AS r (instance_id, revision, pruned_through, xact, entries)
    VALUES (p_instance, 1, 0, v_xact, v_count)
    ON CONFLICT (instance_id) DO UPDATE SET
        revision = CASE WHEN r.xact = excluded.xact THEN r.revision ELSE r.revision + 1 END,
        pruned_through = CASE WHEN r.xact = excluded.xact THEN r.pruned_through
                              ELSE GREATEST(r.pruned_through, r.revision + 1 - v_retention) END,
        entries = CASE WHEN r.xact = excluded.xact THEN r.entries + v_count ELSE v_count END,
        xact = excluded.xact
    RETURNING r.revision, r.pruned_through, r.entries - v_count
        INTO v_revision, v_pruned, v_base;
    INSERT INTO app_code_log (instance_id, revision, ord, app_code_id, app_id, kind)
    SELECT p_instance, v_revision, v_base + e.ord::integer, e.code_id, e.app_id, e.kind
    FROM unnest(p_kinds, p_app_ids, p_code_ids) WITH ORDINALITY AS e (kind, app_id, code_id, ord);
    IF v_base = 0 THEN
        DELETE FROM app_code_log WHERE instance_id = p_instance AND revision <= v_pruned;
    END IF;
    v_channel := 'apig_appcode_' || left(encode(sha256(
        convert_to(p_schema, 'UTF8') || decode('00', 'hex') || convert_to(p_instance, 'UTF8')),
        'hex'), 32);
    PERFORM pg_notify(v_channel, '2 ' || v_revision || ' ' || e.kind || ' ' || v_origin || ' '
                                 || octet_length(e.app_id) || ' ' || e.app_id || e.code_id)
    FROM unnest(p_kinds, p_app_ids, p_code_ids) WITH ORDINALITY AS e (kind, app_id, code_id, ord)
    WHERE v_base + e.ord <= 32
    ORDER BY e.ord;
    IF v_base + v_count > 32 THEN
        PERFORM pg_notify(v_channel, '2 ' || v_revision || ' R ' || v_origin || ' 0 ');
    END IF;
END
$fn$;

-- Logs the rows of `changes` (instance_id, kind, app_id, code_id, step, seq): one call of
-- apig_appcode_log per instance, in the order of the instances (the order their revision rows
-- are locked in), each instance's entries by (step, seq).
CREATE FUNCTION apig_appcode_log_all(p_schema text, p_changes jsonb) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    PERFORM apig_appcode_log(p_schema, g.instance_id, g.kinds, g.app_ids, g.code_ids)
    FROM (SELECT c.instance_id,
                 array_agg(c.kind ORDER BY c.step, c.seq) AS kinds,
                 array_agg(c.app_id ORDER BY c.step, c.seq) AS app_ids,
                 array_agg(c.code_id ORDER BY c.step, c.seq) AS code_ids
          FROM jsonb_to_recordset(p_changes)
              AS c (instance_id text, kind text, app_id text, code_id text, step int, seq bigint)
          GROUP BY c.instance_id) g
    ORDER BY g.instance_id;
END
$fn$;

-- One entry for apig_appcode_log_all.
CREATE FUNCTION apig_appcode_entry(p_instance text, p_kind text, p_app_id text, p_code_id text,
                                   p_step int, p_seq bigint) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT jsonb_build_object('instance_id', p_instance, 'kind', p_kind, 'app_id', p_app_id,
                              'code_id', p_code_id, 'step', p_step, 'seq', p_seq)
$fn$;

CREATE FUNCTION apig_appcode_codes_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    v_changes jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_agg(apig_appcode_entry(n.instance_id, 'C', a.id, n.id, 1, n.seq))
        INTO v_changes
        FROM new_rows n JOIN apps a ON a.seq = n.app_seq;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT jsonb_agg(apig_appcode_entry(o.instance_id, 'D', a.id, o.id, 0, o.seq))
        INTO v_changes
        FROM old_rows o JOIN apps a ON a.seq = o.app_seq;
    ELSE
        -- A changed value, ID, app or instance: the old code goes, the new one comes.
        SELECT jsonb_agg(c) INTO v_changes FROM (
            SELECT apig_appcode_entry(o.instance_id, 'D', a.id, o.id, 0, o.seq) AS c
            FROM old_rows o JOIN new_rows n ON n.seq = o.seq JOIN apps a ON a.seq = o.app_seq
            WHERE (o.id, o.app_seq, o.instance_id, o.value, o.value_nonce, o.value_digest)
                  IS DISTINCT FROM
                  (n.id, n.app_seq, n.instance_id, n.value, n.value_nonce, n.value_digest)
            UNION ALL
            SELECT apig_appcode_entry(n.instance_id, 'C', a.id, n.id, 1, n.seq)
            FROM old_rows o JOIN new_rows n ON n.seq = o.seq JOIN apps a ON a.seq = n.app_seq
            WHERE (o.id, o.app_seq, o.instance_id, o.value, o.value_nonce, o.value_digest)
                  IS DISTINCT FROM
                  (n.id, n.app_seq, n.instance_id, n.value, n.value_nonce, n.value_digest)
        ) changed;
    END IF;
    PERFORM apig_appcode_log_all(TG_TABLE_SCHEMA, v_changes);
    RETURN NULL;
END
$fn$;

-- An app's ACL or quota binding changed: kind `A` for the app (rows of `app_seq`).
CREATE FUNCTION apig_appcode_policy_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    v_apps bigint[] := '{}';
    v_changes jsonb;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT v_apps || array_agg(app_seq) INTO v_apps FROM new_rows;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT v_apps || array_agg(app_seq) INTO v_apps FROM old_rows;
    END IF;
    SELECT jsonb_agg(apig_appcode_entry(a.instance_id, 'A', a.id, '', 0, a.seq))
    INTO v_changes
    FROM apps a WHERE a.seq = ANY (v_apps);
    PERFORM apig_appcode_log_all(TG_TABLE_SCHEMA, v_changes);
    RETURN NULL;
END
$fn$;

-- A quota changed: kind `A` for every app bound to it.
CREATE FUNCTION apig_appcode_quotas_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    v_changes jsonb;
BEGIN
    SELECT jsonb_agg(apig_appcode_entry(a.instance_id, 'A', a.id, '', 0, b.seq))
    INTO v_changes
    FROM app_quota_bindings b JOIN apps a ON a.seq = b.app_seq
    WHERE b.quota_seq IN (SELECT seq FROM new_rows);
    PERFORM apig_appcode_log_all(TG_TABLE_SCHEMA, v_changes);
    RETURN NULL;
END
$fn$;

-- An app is deleted: its codes (deleted), and its ACL or quota if it has one, logged while the
-- app's row still names them.
CREATE FUNCTION apig_appcode_app_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    v_changes jsonb;
BEGIN
    SELECT jsonb_agg(c) INTO v_changes FROM (
        SELECT apig_appcode_entry(k.instance_id, 'D', OLD.id, k.id, 0, k.seq) AS c
        FROM app_codes k WHERE k.app_seq = OLD.seq
        UNION ALL
        -- Its signing key goes with it (and any ACL and quota): always a change.
        SELECT apig_appcode_entry(OLD.instance_id, 'A', OLD.id, '', 1, OLD.seq)
    ) gone;
    PERFORM apig_appcode_log_all(TG_TABLE_SCHEMA, v_changes);
    RETURN OLD;
END
$fn$;

-- An app's ID (or instance) changed: its codes now stand for another app, and its ACL and
-- quota belong to the new ID.
CREATE FUNCTION apig_appcode_apps_renamed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    v_changes jsonb;
BEGIN
    SELECT jsonb_agg(c) INTO v_changes FROM (
        SELECT apig_appcode_entry(k.instance_id, 'D', o.id, k.id, 0, k.seq) AS c
        FROM old_rows o JOIN new_rows n ON n.seq = o.seq JOIN app_codes k ON k.app_seq = n.seq
        WHERE (o.id, o.instance_id) IS DISTINCT FROM (n.id, n.instance_id)
        UNION ALL
        SELECT apig_appcode_entry(k.instance_id, 'C', n.id, k.id, 1, k.seq)
        FROM old_rows o JOIN new_rows n ON n.seq = o.seq JOIN app_codes k ON k.app_seq = n.seq
        WHERE (o.id, o.instance_id) IS DISTINCT FROM (n.id, n.instance_id)
        UNION ALL
        SELECT apig_appcode_entry(x.instance_id, 'A', x.id, '', 2, x.seq)
        FROM old_rows o JOIN new_rows n ON n.seq = o.seq,
             LATERAL (VALUES (o.instance_id, o.id, o.seq), (n.instance_id, n.id, n.seq))
                 AS x (instance_id, id, seq)
        WHERE (o.id, o.instance_id) IS DISTINCT FROM (n.id, n.instance_id)
        UNION ALL
        -- The same app with another signing key or secret.
        SELECT apig_appcode_entry(n.instance_id, 'A', n.id, '', 3, n.seq)
        FROM old_rows o JOIN new_rows n ON n.seq = o.seq
        WHERE (o.id, o.instance_id) IS NOT DISTINCT FROM (n.id, n.instance_id)
          AND (o.app_key, o.app_secret, o.app_secret_nonce)
              IS DISTINCT FROM (n.app_key, n.app_secret, n.app_secret_nonce)
    ) renamed;
    PERFORM apig_appcode_log_all(TG_TABLE_SCHEMA, v_changes);
    RETURN NULL;
END
$fn$;

-- Each of these tables gets one statement trigger per operation, with the transition tables
-- the operation has.
DO $do$
DECLARE
    t record;
    op record;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('app_codes', 'codes', 'apig_appcode_codes_changed'),
                                   ('app_acls', 'acls', 'apig_appcode_policy_changed'),
                                   ('app_quota_bindings', 'bindings',
                                    'apig_appcode_policy_changed')) AS v (tab, name, fn)
    LOOP
        FOR op IN SELECT * FROM (VALUES ('INSERT', 'inserted', 'NEW TABLE AS new_rows'),
                                        ('UPDATE', 'updated',
                                         'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
                                        ('DELETE', 'deleted', 'OLD TABLE AS old_rows'))
                                 AS v (event, done, tables)
        LOOP
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I REFERENCING %s
                            FOR EACH STATEMENT EXECUTE FUNCTION %I()',
                           'apig_appcode_' || t.name || '_' || op.done, op.event, t.tab,
                           op.tables, t.fn);
        END LOOP;
    END LOOP;
END
$do$;

CREATE TRIGGER apig_appcode_quotas_updated AFTER UPDATE ON app_quotas
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apig_appcode_quotas_changed();

CREATE TRIGGER apig_appcode_app_deleted BEFORE DELETE ON apps
    FOR EACH ROW EXECUTE FUNCTION apig_appcode_app_deleted();
-- A new app brings a signing key.
CREATE FUNCTION apig_appcode_apps_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    v_changes jsonb;
BEGIN
    SELECT jsonb_agg(apig_appcode_entry(n.instance_id, 'A', n.id, '', 0, n.seq))
    INTO v_changes FROM new_rows n;
    PERFORM apig_appcode_log_all(TG_TABLE_SCHEMA, v_changes);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER apig_appcode_apps_inserted AFTER INSERT ON apps
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apig_appcode_apps_inserted();
CREATE TRIGGER apig_appcode_apps_renamed AFTER UPDATE ON apps
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apig_appcode_apps_renamed();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CHANGE_LOG_RETENTION;

    #[test]
    fn the_migration_defaults_to_the_crates_retention() {
        let default =
            format!("'apig_appcode.retention', true), '')::bigint, {CHANGE_LOG_RETENTION})");
        assert!(MIGRATION.contains(&default));
        assert_eq!(
            session_settings("0a1b", 7),
            "SET apig_appcode.origin = '0a1b'; SET apig_appcode.retention = 7;"
        );
    }
}
