//! The store's SQL, with its schema name filled in once.
//!
//! Every statement that changes an execution keeps its columns (`status`, `seq`,
//! `wake_at`, `workflow`, `parent`) equal to the fields of the `record` it writes.

use crate::schema::quoted;

/// The statements of one store.
pub(crate) struct Sql {
    /// The channel the store's notifications go to.
    pub channel: String,
    pub create: String,
    pub load: String,
    pub load_input: String,
    /// Keeps a layout's description unless one is kept: `$1` layout, `$2` description.
    pub save_layout: String,
    /// A layout's description: `$1` layout.
    pub layout: String,
    /// Commits one transition's record and history: `$1` id, `$2` expected seq, `$3` new
    /// seq, `$4` status, `$5` wake_at, `$6` record, `$7` lease owner (NULL: no lease
    /// check), `$8`/`$9` history numbers and entries, `$10` prune line, `$11` workflow,
    /// `$12` parent, `$13` notification payload (NULL: none), `$14` channel. Answers
    /// whether it applied; writes nothing otherwise. A status other than running ends the
    /// lease: the engine releases it right after such a commit anyway.
    pub commit: String,
    /// [`commit`](Sql::commit) for a transition with no history to prune and nothing to
    /// notify (most steps), which spares the server those parts of the statement: `$1`
    /// id, `$2` expected seq, `$3` new seq, `$4` status, `$5` wake_at, `$6` record, `$7`
    /// lease owner, `$8`/`$9` history numbers and entries, `$10` workflow, `$11` parent.
    pub commit_plain: String,
    /// [`commit_plain`](Sql::commit_plain) for a transition with exactly one history
    /// entry (a step's outcome): `$1`..`$7`, `$10`, `$11` as there, `$8` the entry's
    /// number, `$9` the entry. Answers a row if it applied, none otherwise. The entry is
    /// inserted without `ON CONFLICT` (a speculative insertion costs the server another
    /// index probe and WAL record on every step): its number is new unless a history
    /// entry outlived what its record says, and then the statement fails with a unique
    /// violation, writes nothing, and the commit runs again as
    /// [`commit_plain`](Sql::commit_plain), which replaces the entry. The insert is the statement's main query, fed by the
    /// update's one row, which spares the server an array to unnest and a subquery.
    pub commit_step: String,
    /// Commits several executions' transitions at once, each as [`commit`](Sql::commit)
    /// does its one, each under its own conditions: `$1` ids, `$2` expected seqs, `$3`
    /// new seqs, `$4` statuses, `$5` wake_at, `$6` records, `$7` lease owners, `$8`
    /// prune lines, `$9` workflows, `$10` parents, `$11` notification payloads (one
    /// element per commit); `$12`/`$13`/`$14` the history entries to write (the commit's
    /// place in the arrays from 1, number, entry; none below its commit's prune line);
    /// `$15` channel. Answers the places of the commits that applied. Of two commits of
    /// one execution, at most one applies (the row is updated once), and only the
    /// history of the commits that applied is written.
    pub commit_group: String,
    /// The seq and lease owner of an execution, to explain a refused commit.
    pub current: String,
    pub lock_execution: String,
    pub lock_operations: String,
    pub token_owners: String,
    pub put_operation: String,
    pub delete_operation: String,
    pub resolve_token: String,
    pub lock_operation: String,
    pub update_operation: String,
    /// Writes a record changed by a delivery (a wake-up): `$1` id, `$2` seq, `$3` status,
    /// `$4` wake_at, `$5` record; notifies `$6` that it is ready.
    pub wake: String,
    pub operation: String,
    pub operation_by_token: String,
    pub operations: String,
    pub delete: String,
    pub claim: String,
    pub release: String,
    pub acquire: String,
    pub next_wake_after: String,
    /// Renews `$1`'s leases on `$2` until `$3`; answers the ids another owner holds.
    /// (A data-modifying `WITH` runs whether or not the query reads it.)
    pub renew: String,
    pub due: String,
    pub timers_after: String,
    pub next_wake: String,
    pub history: String,
    /// `SELECT record FROM executions`, to which `list` adds its conditions.
    pub list: String,
}

impl Sql {
    pub fn new(schema: &str) -> Sql {
        let s = quoted(schema);
        let full_update = commit_update(&s, 11, 12, "1");
        // `commit_plain` and `commit_step` take the workflow and parent in `$10`, `$11`.
        let plain_update = commit_update(&s, 10, 11, "1");
        let step_update = commit_update(&s, 10, 11, "id");
        Sql {
            channel: format!("durable:{schema}"),
            create: format!(
                "WITH ins AS (
                    INSERT INTO {s}.executions (id, workflow, status, seq, wake_at, parent, record)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)
                    ON CONFLICT (id) DO NOTHING
                    RETURNING 1
                 ), input AS (
                    INSERT INTO {s}.inputs (id, input) SELECT $1, $8 WHERE EXISTS (SELECT 1 FROM ins)
                    ON CONFLICT (id) DO UPDATE SET input = EXCLUDED.input
                 )
                 SELECT EXISTS (SELECT 1 FROM ins)"
            ),
            load: format!("SELECT record FROM {s}.executions WHERE id = $1"),
            load_input: format!("SELECT input FROM {s}.inputs WHERE id = $1"),
            commit: format!(
                "WITH upd AS (
                    {full_update}
                 ), hist AS (
                    INSERT INTO {s}.history (execution, number, entry)
                    SELECT $1, h.number, h.entry FROM unnest($8::bigint[], $9::bytea[]) AS h(number, entry)
                    WHERE h.number >= $10 AND EXISTS (SELECT 1 FROM upd)
                    ON CONFLICT (execution, number) DO UPDATE SET entry = EXCLUDED.entry
                 ), pruned AS (
                    DELETE FROM {s}.history
                    WHERE $10 > 0 AND execution = $1 AND number < $10 AND EXISTS (SELECT 1 FROM upd)
                 ), notified AS (
                    SELECT pg_notify($14, $13::text) WHERE $13::text IS NOT NULL AND EXISTS (SELECT 1 FROM upd)
                 )
                 SELECT EXISTS (SELECT 1 FROM upd), (SELECT count(*) FROM notified)"
            ),
            commit_plain: format!(
                "WITH upd AS (
                    {plain_update}
                 ), hist AS (
                    INSERT INTO {s}.history (execution, number, entry)
                    SELECT $1, h.number, h.entry FROM unnest($8::bigint[], $9::bytea[]) AS h(number, entry)
                    WHERE EXISTS (SELECT 1 FROM upd)
                    ON CONFLICT (execution, number) DO UPDATE SET entry = EXCLUDED.entry
                 )
                 SELECT EXISTS (SELECT 1 FROM upd)"
            ),
            commit_step: format!(
                "WITH upd AS (
                    {step_update}
                 )
                 INSERT INTO {s}.history (execution, number, entry)
                 SELECT id, $8::bigint, $9::bytea FROM upd
                 RETURNING 1"
            ),
            commit_group: format!(
                "WITH input AS (
                    SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::smallint[],
                        $5::bigint[], $6::bytea[], $7::bytea[], $8::bigint[], $9::bytea[],
                        $10::bytea[], $11::text[]) WITH ORDINALITY
                    AS t(id, expected, seq, status, wake_at, record, owner, prune, workflow,
                         parent, notify, n)
                 ), upd AS (
                    UPDATE {s}.executions e
                    SET seq = i.seq, status = i.status, wake_at = i.wake_at, record = i.record,
                        workflow = i.workflow, parent = i.parent,
                        lease_owner = CASE WHEN i.status = 0 THEN e.lease_owner END,
                        lease_until = CASE WHEN i.status = 0 THEN e.lease_until END
                    FROM input i
                    WHERE e.id = i.id AND e.seq = i.expected
                      AND (i.owner IS NULL OR e.lease_owner IS NULL OR e.lease_owner = i.owner)
                    RETURNING i.n, i.id, i.prune, i.notify
                 ), hist AS (
                    INSERT INTO {s}.history (execution, number, entry)
                    SELECT u.id, h.number, h.entry
                    FROM unnest($12::bigint[], $13::bigint[], $14::bytea[]) AS h(n, number, entry)
                    JOIN upd u ON u.n = h.n
                    ON CONFLICT (execution, number) DO UPDATE SET entry = EXCLUDED.entry
                 ), pruned AS (
                    DELETE FROM {s}.history h USING upd u
                    WHERE u.prune > 0 AND h.execution = u.id AND h.number < u.prune
                 ), notified AS (
                    SELECT pg_notify($15, u.notify) FROM upd u WHERE u.notify IS NOT NULL
                 )
                 SELECT ARRAY(SELECT n FROM upd), (SELECT count(*) FROM notified)"
            ),
            current: format!("SELECT seq, lease_owner FROM {s}.executions WHERE id = $1"),
            lock_execution: format!(
                "SELECT seq, lease_owner, record FROM {s}.executions WHERE id = $1 FOR UPDATE"
            ),
            lock_operations: format!(
                "SELECT key, record FROM {s}.operations
                 WHERE execution = $1 AND key = ANY($2::bytea[]) FOR UPDATE"
            ),
            token_owners: format!(
                "SELECT token, execution, key FROM {s}.operations WHERE token = ANY($1::bytea[])"
            ),
            put_operation: format!(
                "INSERT INTO {s}.operations (execution, key, token, record) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (execution, key) DO UPDATE SET token = EXCLUDED.token, record = EXCLUDED.record"
            ),
            delete_operation: format!(
                "DELETE FROM {s}.operations WHERE execution = $1 AND key = $2"
            ),
            resolve_token: format!("SELECT execution, key FROM {s}.operations WHERE token = $1"),
            lock_operation: format!(
                "SELECT record FROM {s}.operations WHERE execution = $1 AND key = $2 FOR UPDATE"
            ),
            update_operation: format!(
                "UPDATE {s}.operations SET record = $3 WHERE execution = $1 AND key = $2"
            ),
            wake: format!(
                "WITH upd AS (
                    UPDATE {s}.executions SET seq = $2, status = $3, wake_at = $4, record = $5
                    WHERE id = $1 RETURNING 1
                 ), notified AS (
                    SELECT pg_notify($6, 'r') WHERE EXISTS (SELECT 1 FROM upd)
                 )
                 SELECT (SELECT count(*) FROM notified)"
            ),
            operation: format!(
                "SELECT record FROM {s}.operations WHERE execution = $1 AND key = $2"
            ),
            operation_by_token: format!("SELECT record FROM {s}.operations WHERE token = $1"),
            operations: format!(
                "SELECT record FROM {s}.operations
                 WHERE execution = $1 AND ($2::bytea IS NULL OR key > $2)
                 ORDER BY key LIMIT $3"
            ),
            delete: format!(
                "WITH gone AS (DELETE FROM {s}.executions WHERE id = $1 RETURNING 1),
                      input AS (DELETE FROM {s}.inputs WHERE id = $1),
                      hist AS (DELETE FROM {s}.history WHERE execution = $1),
                      ops AS (DELETE FROM {s}.operations WHERE execution = $1)
                 SELECT EXISTS (SELECT 1 FROM gone)"
            ),
            claim: format!(
                "UPDATE {s}.executions SET lease_owner = $2, lease_until = $4
                 WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until <= $3)
                 RETURNING 1"
            ),
            release: format!(
                "WITH rel AS (
                    UPDATE {s}.executions SET lease_owner = NULL, lease_until = NULL
                    WHERE id = $1 AND lease_owner = $2 RETURNING status
                 ), notified AS (
                    SELECT pg_notify($3, 'r') WHERE EXISTS (SELECT 1 FROM rel WHERE status = 0)
                 )
                 SELECT (SELECT count(*) FROM notified)"
            ),
            acquire: format!(
                "WITH due AS (
                    SELECT id FROM {s}.executions
                    WHERE wake_at IS NOT NULL AND wake_at <= $2 AND status = 1
                      AND (lease_owner IS NULL OR lease_until <= $2)
                    ORDER BY wake_at, id LIMIT $4
                    FOR UPDATE SKIP LOCKED
                 ), running AS (
                    SELECT id FROM {s}.executions
                    WHERE status = 0 AND (lease_owner IS NULL OR lease_until <= $2)
                    ORDER BY id LIMIT $4
                    FOR UPDATE SKIP LOCKED
                 ), picked AS (
                    SELECT id FROM due UNION ALL SELECT id FROM running LIMIT $4
                 )
                 UPDATE {s}.executions e SET lease_owner = $1, lease_until = $3
                 FROM picked WHERE e.id = picked.id
                 RETURNING e.id"
            ),
            next_wake_after: format!(
                "SELECT min(wake_at) FROM {s}.executions WHERE wake_at IS NOT NULL AND wake_at > $1"
            ),
            renew: format!(
                "WITH renewed AS (
                    UPDATE {s}.executions SET lease_until = $3
                    WHERE id = ANY($2::bytea[]) AND lease_owner = $1 RETURNING 1
                 )
                 SELECT id FROM {s}.executions
                 WHERE id = ANY($2::bytea[]) AND lease_owner IS NOT NULL AND lease_owner <> $1"
            ),
            due: format!(
                "SELECT wake_at, id FROM {s}.executions
                 WHERE wake_at IS NOT NULL AND wake_at <= $1
                 ORDER BY wake_at, id LIMIT $2"
            ),
            timers_after: format!(
                "SELECT wake_at, id FROM {s}.executions
                 WHERE wake_at IS NOT NULL AND wake_at <= $3 AND (wake_at, id) > ($1, $2)
                 ORDER BY wake_at, id LIMIT $4"
            ),
            next_wake: format!(
                "SELECT min(wake_at) FROM {s}.executions WHERE wake_at IS NOT NULL"
            ),
            save_layout: format!(
                "INSERT INTO {s}.layouts (layout, description) VALUES ($1, $2) ON CONFLICT (layout) DO NOTHING"
            ),
            layout: format!("SELECT description FROM {s}.layouts WHERE layout = $1"),
            history: format!(
                "SELECT entry FROM {s}.history WHERE execution = $1 ORDER BY number"
            ),
            list: format!("SELECT record FROM {s}.executions"),
        }
    }
}

/// The `UPDATE` of one transition's record that the commit statements share: `$1` id,
/// `$2` expected seq, `$3` new seq, `$4` status, `$5` wake_at, `$6` record, `$7` lease
/// owner (NULL: no lease check), the workflow in `$workflow` and the parent in `$parent`;
/// it returns `returning` if it applied. A status other than running ends the lease.
fn commit_update(s: &str, workflow: u8, parent: u8, returning: &str) -> String {
    format!(
        "UPDATE {s}.executions
                    SET seq = $3, status = $4::smallint, wake_at = $5, record = $6, workflow = ${workflow},
                        parent = ${parent},
                        lease_owner = CASE WHEN $4::smallint = 0 THEN lease_owner END,
                        lease_until = CASE WHEN $4::smallint = 0 THEN lease_until END
                    WHERE id = $1 AND seq = $2
                      AND ($7::bytea IS NULL OR lease_owner IS NULL OR lease_owner = $7)
                    RETURNING {returning}"
    )
}
