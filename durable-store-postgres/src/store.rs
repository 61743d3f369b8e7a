//! [`PostgresStore`]: the [`Store`] on PostgreSQL, shared by any number of engines.
//!
//! Invariants:
//! - Every change to an execution is conditional on its row as the database holds it
//!   (sequence number, lease, operation states), checked and written in one transaction,
//!   so engines in any number of processes can commit side by side.
//! - A lease is the `lease_owner`/`lease_until` of the execution's row. Claims, renewals,
//!   releases and [`Store::acquire`] run on connections with `synchronous_commit = off`
//!   (leases need not be durable: a lease lost in a database crash only lets another
//!   engine claim sooner, and commits are still conditional); every other write waits for
//!   its WAL flush before it is acknowledged.
//! - Changes other engines must hear of send a notification in the same transaction:
//!   an execution woken or released while running (`r`), and one that finished or was
//!   parked (`f` and its id in hex). New executions are announced (`r`) right after their
//!   transaction committed, by the [`Notifier`]: PostgreSQL lets only one notifying
//!   transaction commit at a time, and an announcement lost with its process is made up
//!   for by the other engines' slow poll.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod};
use durable_core::{
    store_rules, Acquired, Commit, Committed, Created, Delivered, Delivery, ExecutionRecord,
    HistoryEntry, ListFilter, OperationRecord, Store, StoreError, StoreSignal, Timestamp,
};
use futures_util::future::try_join_all;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::commit::{deliver_in, Abort};
use crate::convert::{
    self, decode, encode, int, millis, pg, pool, retryable, status_code, text, timestamp, wake_at,
};
use crate::listener;
use crate::notifier::Notifier;
use crate::options::Options;
use crate::schema;
use crate::sql::Sql;
use crate::writer::Writer;

/// How many signals an engine may fall behind before it is told it missed some.
const SIGNAL_BUFFER: usize = 1024;

/// How many connections lease operations use.
const LEASE_CONNECTIONS: usize = 4;

/// What the store's parts share: the connection pools and the SQL.
pub(crate) struct Db {
    /// Reads and durable writes.
    pub pool: Pool,
    /// Lease changes, with `synchronous_commit = off`.
    pub leases: Pool,
    pub sql: Sql,
}

/// A [`Store`] in a PostgreSQL database, which any number of engines, in any number of
/// processes on any number of hosts, open at once to share the work.
///
/// The store creates its tables in its schema when it opens, and migrates them when they
/// were made by an older version (see [`Options::schema`]). Connections are not
/// encrypted: reach the database over a trusted network or a Unix socket.
pub struct PostgresStore {
    db: Arc<Db>,
    writer: Writer,
    notifier: Notifier,
    signals: broadcast::Sender<StoreSignal>,
    listener: JoinHandle<()>,
    closed: AtomicBool,
    schema: String,
    /// A temporary store drops its schema when it closes.
    temporary: bool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("temporary", &self.temporary)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Opens the store in the default schema of the database at `url` (see
    /// [`Options::new`]), creating or migrating its tables.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(Options::new(url)?).await
    }

    /// Opens the store as `options` say, creating or migrating its tables. A schema made
    /// by a newer version of this crate is refused with [`StoreError::UnsupportedFormat`]
    /// and left unchanged.
    pub async fn open(options: Options) -> Result<Self, StoreError> {
        Self::open_inner(options, false).await
    }

    /// Opens a store in a new schema of its own, with a unique name, which is dropped
    /// with everything in it when the store is closed: for tests.
    pub async fn temporary(url: &str) -> Result<Self, StoreError> {
        let schema = format!(
            "durable_tmp_{}_{:016x}",
            std::process::id(),
            fastrand::u64(..)
        );
        Self::open_inner(Options::new(url)?.schema(schema).pool_size(4), true).await
    }

    async fn open_inner(options: Options, temporary: bool) -> Result<Self, StoreError> {
        options.check()?;
        let pool = build_pool(options.config.clone(), options.pool_size)?;
        let mut lease_config = options.config.clone();
        let extra = lease_config.get_options().unwrap_or_default().to_owned();
        lease_config.options(format!("{extra} -c synchronous_commit=off").trim());
        let leases = build_pool(lease_config, LEASE_CONNECTIONS)?;
        {
            let mut client = pool.get().await.map_err(convert::pool)?;
            schema::prepare(&mut client, &options.schema).await?;
        }
        let db = Arc::new(Db {
            pool,
            leases,
            sql: Sql::new(&options.schema),
        });
        let sql = &db.sql;
        let hot = [
            &sql.commit_step,
            &sql.commit_plain,
            &sql.commit,
            &sql.commit_group,
            &sql.load,
            &sql.load_input,
            &sql.create,
        ];
        warm(&db.pool, options.pool_size, &hot).await?;
        let hot = [
            &sql.claim,
            &sql.release,
            &sql.renew,
            &sql.acquire,
            &sql.next_wake_after,
        ];
        warm(&db.leases, LEASE_CONNECTIONS, &hot).await?;
        let (signals, _) = broadcast::channel(SIGNAL_BUFFER);
        let (listener, listening) = listener::spawn(
            options.config.clone(),
            db.sql.channel.clone(),
            signals.clone(),
        );
        // Once open, the store hears every notification (or is told it missed some).
        match listening.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StoreError::backend(std::io::Error::other(e))),
            Err(_) => return Err(StoreError::Closed),
        }
        Ok(PostgresStore {
            writer: Writer::start(db.clone(), options.writers, options.max_batch),
            notifier: Notifier::start(db.leases.clone(), db.sql.channel.clone()),
            db,
            signals,
            listener,
            closed: AtomicBool::new(false),
            schema: options.schema,
            temporary,
        })
    }

    /// The schema that holds the store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.check_open()?;
        self.db.pool.get().await.map_err(pool)
    }

    async fn lease_client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.check_open()?;
        self.db.leases.get().await.map_err(pool)
    }

    /// The encoded records in the first column of `rows`.
    fn records<T: serde::de::DeserializeOwned>(
        rows: Vec<tokio_postgres::Row>,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        rows.into_iter()
            .map(|row| decode(|| what.to_owned(), row.get(0)))
            .collect()
    }

    fn timers(rows: Vec<tokio_postgres::Row>) -> Result<Vec<(Timestamp, String)>, StoreError> {
        rows.into_iter()
            .map(|row| Ok((timestamp(row.get(0)), text("an execution id", row.get(1))?)))
            .collect()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn build_pool(config: tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // The connection used last first: a few busy connections whose server processes stay
    // warm, rather than every connection in turn.
    Pool::builder(manager)
        .max_size(size)
        .queue_mode(QueueMode::Lifo)
        .build()
        .map_err(StoreError::backend)
}

/// Opens all `size` connections of `pool` and prepares the `hot` statements on each, so
/// that the first burst of work pays neither for starting server processes (several
/// milliseconds of server time each) nor for planning its statements.
async fn warm(pool: &Pool, size: usize, hot: &[&String]) -> Result<(), StoreError> {
    let clients = try_join_all((0..size).map(|_| pool.get()))
        .await
        .map_err(convert::pool)?;
    try_join_all(
        clients
            .iter()
            .flat_map(|client| hot.iter().map(|sql| client.prepare_cached(sql))),
    )
    .await
    .map_err(pg)?;
    Ok(())
}

fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for PostgresStore {
    /// Durable: one transaction, acknowledged after its WAL flush; other engines hear of
    /// the new execution right after.
    async fn create(&self, record: ExecutionRecord, input: Vec<u8>) -> Result<Created, StoreError> {
        let id = record.id.as_bytes().to_vec();
        let workflow = record.workflow.as_bytes().to_vec();
        let status = status_code(record.status)?;
        let seq = int("a sequence number", record.seq)?;
        let at = wake_at(&record.id, record.wake_at)?;
        let parent = record
            .parent
            .as_ref()
            .map(|p| p.execution.as_bytes().to_vec());
        let bytes = encode("an execution record", &record)?;
        loop {
            let client = self.client().await?;
            let create = client
                .prepare_cached(&self.db.sql.create)
                .await
                .map_err(pg)?;
            let row = client
                .query_one(
                    &create,
                    &[&id, &workflow, &status, &seq, &at, &parent, &bytes, &input],
                )
                .await
                .map_err(pg)?;
            if row.get::<_, bool>(0) {
                self.notifier.ready();
                return Ok(Created::New);
            }
            drop(client);
            // It exists (or existed: a deletion may race this read, then try again).
            if let Some(existing) = self.load(&record.id).await? {
                return Ok(Created::Existing(Box::new(existing)));
            }
        }
    }

    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let client = self.client().await?;
        let load = client.prepare_cached(&self.db.sql.load).await.map_err(pg)?;
        let row = client
            .query_opt(&load, &[&id.as_bytes()])
            .await
            .map_err(pg)?;
        row.map(|row| decode(|| format!("execution {id:?}"), row.get(0)))
            .transpose()
    }

    async fn load_input(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let load = client
            .prepare_cached(&self.db.sql.load_input)
            .await
            .map_err(pg)?;
        let row = client
            .query_opt(&load, &[&id.as_bytes()])
            .await
            .map_err(pg)?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Durable: the commit's transaction is acknowledged after its WAL flush; concurrent
    /// commits share transactions (group commit).
    async fn commit(&self, commit: Commit) -> Result<Committed, StoreError> {
        self.check_open()?;
        self.writer.commit(commit, None).await
    }

    /// Durable: as [`commit`](Store::commit). The lease and the sequence number are
    /// checked in the statement that writes, so a lease taken over at any moment before
    /// it refuses the commit.
    async fn commit_leased(&self, commit: Commit, owner: u128) -> Result<Committed, StoreError> {
        self.check_open()?;
        self.writer.commit(commit, Some(owner)).await
    }

    /// Durable: one transaction, acknowledged after its WAL flush.
    async fn deliver(&self, delivery: Delivery) -> Result<Delivered, StoreError> {
        store_rules::check_delivery(&delivery)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            let error = match deliver_in(&tx, &self.db.sql, &delivery).await {
                Ok(delivered) => match tx.commit().await {
                    Ok(()) => return Ok(delivered),
                    Err(e) => e,
                },
                Err(Abort::Store(e)) => return Err(e),
                Err(Abort::Db(e)) => e,
            };
            if !(retryable(&error) && attempt < 5) {
                return Err(pg(error));
            }
        }
    }

    async fn operation(
        &self,
        execution: &str,
        key: &str,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let client = self.client().await?;
        let query = client
            .prepare_cached(&self.db.sql.operation)
            .await
            .map_err(pg)?;
        let row = client
            .query_opt(&query, &[&execution.as_bytes(), &key.as_bytes()])
            .await
            .map_err(pg)?;
        row.map(|row| decode(|| format!("operation {key:?} of {execution:?}"), row.get(0)))
            .transpose()
    }

    async fn operation_by_token(&self, token: &str) -> Result<Option<OperationRecord>, StoreError> {
        let client = self.client().await?;
        let query = client
            .prepare_cached(&self.db.sql.operation_by_token)
            .await
            .map_err(pg)?;
        let row = client
            .query_opt(&query, &[&token.as_bytes()])
            .await
            .map_err(pg)?;
        row.map(|row| decode(|| "an operation".to_owned(), row.get(0)))
            .transpose()
    }

    async fn operations(
        &self,
        execution: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let client = self.client().await?;
        let query = client
            .prepare_cached(&self.db.sql.operations)
            .await
            .map_err(pg)?;
        let rows = client
            .query(
                &query,
                &[
                    &execution.as_bytes(),
                    &after.map(str::as_bytes),
                    &limit(count),
                ],
            )
            .await
            .map_err(pg)?;
        Self::records(rows, "an operation")
    }

    /// Durable: one transaction, acknowledged after its WAL flush.
    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let query = client
            .prepare_cached(&self.db.sql.delete)
            .await
            .map_err(pg)?;
        let row = client
            .query_one(&query, &[&id.as_bytes()])
            .await
            .map_err(pg)?;
        Ok(row.get(0))
    }

    async fn claim(
        &self,
        id: &str,
        owner: u128,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.lease_client().await?;
        let query = client
            .prepare_cached(&self.db.sql.claim)
            .await
            .map_err(pg)?;
        let rows = client
            .query(
                &query,
                &[
                    &id.as_bytes(),
                    &convert::owner(owner),
                    &millis(now),
                    &millis(until),
                ],
            )
            .await
            .map_err(pg)?;
        Ok(!rows.is_empty())
    }

    async fn release(&self, id: &str, owner: u128) -> Result<(), StoreError> {
        let client = self.lease_client().await?;
        let query = client
            .prepare_cached(&self.db.sql.release)
            .await
            .map_err(pg)?;
        client
            .query_one(
                &query,
                &[&id.as_bytes(), &convert::owner(owner), &self.db.sql.channel],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    fn is_shared(&self) -> bool {
        true
    }

    /// One statement claims the executions with `FOR UPDATE SKIP LOCKED`: rows another
    /// engine is claiming or committing are skipped, never waited for or taken twice.
    async fn acquire(
        &self,
        owner: u128,
        now: Timestamp,
        until: Timestamp,
        count: usize,
    ) -> Result<Acquired, StoreError> {
        let client = self.lease_client().await?;
        let acquire = client
            .prepare_cached(&self.db.sql.acquire)
            .await
            .map_err(pg)?;
        let next = client
            .prepare_cached(&self.db.sql.next_wake_after)
            .await
            .map_err(pg)?;
        let (owner, now, until, count) = (
            convert::owner(owner),
            millis(now),
            millis(until),
            limit(count),
        );
        // Both go out at once: one round trip.
        let claim_params: [&(dyn ToSql + Sync); 4] = [&owner, &now, &until, &count];
        let next_params: [&(dyn ToSql + Sync); 1] = [&now];
        let (claimed, next) = tokio::join!(
            client.query(&acquire, &claim_params),
            client.query_one(&next, &next_params),
        );
        let ids = claimed
            .map_err(pg)?
            .into_iter()
            .map(|row| text("an execution id", row.get(0)))
            .collect::<Result<_, _>>()?;
        let next_wake = next.map_err(pg)?.get::<_, Option<i64>>(0).map(timestamp);
        let mut acquired = Acquired::default();
        acquired.ids = ids;
        acquired.next_wake = next_wake;
        Ok(acquired)
    }

    async fn renew(
        &self,
        owner: u128,
        ids: &[String],
        _now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.lease_client().await?;
        let query = client
            .prepare_cached(&self.db.sql.renew)
            .await
            .map_err(pg)?;
        let ids: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes()).collect();
        let rows = client
            .query(&query, &[&convert::owner(owner), &ids, &millis(until)])
            .await
            .map_err(pg)?;
        rows.into_iter()
            .map(|row| text("an execution id", row.get(0)))
            .collect()
    }

    fn signals(&self) -> Option<broadcast::Receiver<StoreSignal>> {
        Some(self.signals.subscribe())
    }

    async fn due(
        &self,
        now: Timestamp,
        count: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        let client = self.client().await?;
        let query = client.prepare_cached(&self.db.sql.due).await.map_err(pg)?;
        let rows = client
            .query(&query, &[&millis(now), &limit(count)])
            .await
            .map_err(pg)?;
        Self::timers(rows)
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        let client = self.client().await?;
        let query = client
            .prepare_cached(&self.db.sql.next_wake)
            .await
            .map_err(pg)?;
        let row = client.query_one(&query, &[]).await.map_err(pg)?;
        Ok(row.get::<_, Option<i64>>(0).map(timestamp))
    }

    async fn timers_after(
        &self,
        after: Option<(Timestamp, &str)>,
        until: Timestamp,
        count: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        // Before every entry: no wake-up time is negative.
        let (at, id) = after.map_or((-1, &b""[..]), |(at, id)| (millis(at), id.as_bytes()));
        let client = self.client().await?;
        let query = client
            .prepare_cached(&self.db.sql.timers_after)
            .await
            .map_err(pg)?;
        let rows = client
            .query(&query, &[&at, &id, &millis(until), &limit(count)])
            .await
            .map_err(pg)?;
        Self::timers(rows)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        let mut conditions = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        // The status is written into the SQL so that the planner can use the index of
        // unfinished executions, which covers only some statuses.
        if let Some(status) = filter.status {
            conditions.push(format!("status = {}", status_code(status)?));
        }
        let mut bind = |column: &str, value: Option<&String>| {
            if let Some(value) = value {
                params.push(Box::new(value.as_bytes().to_vec()));
                conditions.push(format!("{column} ${}", params.len()));
            }
        };
        bind("workflow =", filter.workflow.as_ref());
        bind("parent =", filter.parent.as_ref());
        bind("id >", filter.after.as_ref());
        let mut sql = self.db.sql.list.clone();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        params.push(Box::new(filter.limit.map(limit)));
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", params.len()));
        let client = self.client().await?;
        let query = client.prepare_cached(&sql).await.map_err(pg)?;
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        let rows = client.query(&query, &params).await.map_err(pg)?;
        Self::records(rows, "an execution")
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let client = self.client().await?;
        let query = client
            .prepare_cached(&self.db.sql.history)
            .await
            .map_err(pg)?;
        let rows = client.query(&query, &[&id.as_bytes()]).await.map_err(pg)?;
        Self::records(rows, &format!("a history entry of {id:?}"))
    }

    /// Durable: the insert's transaction is acknowledged after its WAL flush.
    async fn save_layout(&self, layout: u64, description: Vec<u8>) -> Result<(), StoreError> {
        self.check_open()?;
        let client = self.client().await?;
        let query = client
            .prepare_cached(&self.db.sql.save_layout)
            .await
            .map_err(pg)?;
        // The same 64 bits, read back by `layout` with the inverse cast.
        let key = layout as i64;
        client
            .execute(&query, &[&key, &description])
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn layout(&self, layout: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        let query = client
            .prepare_cached(&self.db.sql.layout)
            .await
            .map_err(pg)?;
        let key = layout as i64;
        let row = client.query_opt(&query, &[&key]).await.map_err(pg)?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Waits for the commits already queued, stops listening and closes every
    /// connection; a temporary store drops its schema first.
    ///
    /// Durable: when this returns `Ok`, every acknowledged write was flushed (each was
    /// when it was acknowledged).
    /// Drops the idle pooled connections that have closed (the database restarted, the
    /// network was cut), so that the retries after a failure connect afresh. A pool
    /// checks a connection when it hands it out, too; this empties the pool of dead
    /// ones at once instead of one failed check at a time. Reads memory only.
    async fn recover(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        for pool in [&self.db.pool, &self.db.leases] {
            let dropped = pool.retain(|client, _| !client.is_closed()).removed.len();
            if dropped > 0 {
                tracing::warn!(dropped, "dropped closed database connections");
            }
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), StoreError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.writer.close().await;
        self.notifier.close().await;
        self.listener.abort();
        let dropped = if self.temporary {
            match self.db.pool.get().await {
                Ok(client) => client
                    .batch_execute(&format!(
                        "DROP SCHEMA {} CASCADE",
                        schema::quoted(&self.schema)
                    ))
                    .await
                    .map_err(pg),
                Err(e) => Err(pool(e)),
            }
        } else {
            Ok(())
        };
        self.db.pool.close();
        self.db.leases.close();
        dropped
    }
}
