//! The store's tables, created and migrated by versioned migrations when a store opens.
//!
//! `<schema>.schema_version` holds one row: the number of migrations applied. Opening a
//! store takes an advisory lock on the schema's name for the length of one transaction,
//! applies the migrations it lacks in that transaction, and records the new version, so
//! engines that open an empty database at once create it once. A schema whose version is
//! newer than [`VERSION`] was written by newer code: it is refused with
//! [`StoreError::UnsupportedFormat`] and left as it is.
//!
//! # Version 1
//!
//! - `executions`: one row per execution: `id`, `workflow`, `status` (0 running,
//!   1 suspended, 2 completed, 3 failed, 4 parked, 5 cancelled), `seq`, `wake_at` (ms), `parent` (the
//!   parent execution's id), the lease (`lease_owner`, 16 bytes; `lease_until`, ms) and
//!   `record` (the whole `ExecutionRecord`, a bincode value envelope). Indexes: timers
//!   `(wake_at, id)`, unfinished executions `(status, id)`, children `(parent, id)`.
//! - `inputs`: `id`, `input` (kept apart so that commits do not copy it).
//! - `history`: `(execution, number)`, `entry` (a `HistoryEntry` envelope).
//! - `operations`: `(execution, key)`, `token` (unique), `record` (an
//!   `OperationRecord` envelope).

use deadpool_postgres::Client;
use durable_core::StoreError;

use crate::convert::pg;

/// The schema version this build writes and reads.
pub(crate) const VERSION: i64 = 2;

/// The migrations, in order; migration `n` (from 1) brings the schema to version `n`.
/// Version 2 adds `layouts`: each workflow layout's description, once (a layout
/// fingerprint, a `u64`, is stored as the `bigint` with the same bits).
/// `{s}` stands for the quoted schema name.
const MIGRATIONS: [&str; VERSION as usize] = [
    r#"
CREATE TABLE {s}.executions (
    id bytea PRIMARY KEY,
    workflow bytea NOT NULL,
    status smallint NOT NULL,
    seq bigint NOT NULL,
    wake_at bigint,
    parent bytea,
    lease_owner bytea,
    lease_until bigint,
    record bytea NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX executions_timers ON {s}.executions (wake_at, id) WHERE wake_at IS NOT NULL;
CREATE INDEX executions_unfinished ON {s}.executions (status, id) WHERE status IN (0, 1, 4);
CREATE INDEX executions_children ON {s}.executions (parent, id) WHERE parent IS NOT NULL;
CREATE TABLE {s}.inputs (
    id bytea PRIMARY KEY,
    input bytea NOT NULL
);
CREATE TABLE {s}.history (
    execution bytea NOT NULL,
    number bigint NOT NULL,
    entry bytea NOT NULL,
    PRIMARY KEY (execution, number)
);
CREATE TABLE {s}.operations (
    execution bytea NOT NULL,
    key bytea NOT NULL,
    token bytea UNIQUE,
    record bytea NOT NULL,
    PRIMARY KEY (execution, key)
);
"#,
    r#"
CREATE TABLE {s}.layouts (
    layout bigint PRIMARY KEY,
    description bytea NOT NULL
);
"#,
];

/// The schema name as SQL: quoted (names are checked to need no escaping).
pub(crate) fn quoted(schema: &str) -> String {
    format!("\"{schema}\"")
}

/// A stable 64-bit key for the advisory lock of `schema` (FNV-1a).
fn lock_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"durable-store-postgres:".iter().chain(schema.as_bytes()) {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates or migrates the store's tables in `schema`; refuses a newer schema.
pub(crate) async fn prepare(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    let s = quoted(schema);
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema)])
        .await
        .map_err(pg)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.schema_version (version bigint NOT NULL);"
    ))
    .await
    .map_err(pg)?;
    let found: Option<i64> = tx
        .query_opt(&format!("SELECT max(version) FROM {s}.schema_version"), &[])
        .await
        .map_err(pg)?
        .and_then(|row| row.get(0));
    let found = found.unwrap_or(0);
    if found > VERSION {
        // Dropping the transaction rolls back: nothing is changed.
        return Err(StoreError::UnsupportedFormat {
            what: format!("the PostgreSQL schema {schema:?}"),
            found: u64::try_from(found).unwrap_or(0),
            supported: VERSION as u64,
        });
    }
    if found < 0 {
        return Err(StoreError::Invalid {
            message: format!("the PostgreSQL schema {schema:?} has version {found}"),
        });
    }
    if found == VERSION {
        return tx.commit().await.map_err(pg);
    }
    for migration in &MIGRATIONS[found as usize..] {
        tx.batch_execute(&migration.replace("{s}", &s))
            .await
            .map_err(pg)?;
    }
    tx.execute(&format!("DELETE FROM {s}.schema_version"), &[])
        .await
        .map_err(pg)?;
    tx.execute(
        &format!("INSERT INTO {s}.schema_version (version) VALUES ($1)"),
        &[&VERSION],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    tracing::info!(
        schema,
        from = found,
        to = VERSION,
        "migrated the PostgreSQL store"
    );
    Ok(())
}
