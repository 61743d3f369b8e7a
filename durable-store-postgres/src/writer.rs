//! Group commit: commits wait in one queue, and a few writer tasks ("lanes") take them in
//! groups, each group one transaction whose statements are sent together (pipelined), so
//! that concurrent executions' commits share one round trip and one WAL flush.
//!
//! Invariants:
//! - A group holds only commits that are one statement each (no operation changes, no
//!   deliveries), and at most one per execution is ever in flight (the engine commits an
//!   execution's transitions one after the other). Each statement checks its own
//!   conditions and writes nothing when they fail, so a refused commit does not abort its
//!   group; a commit is answered only after its group's transaction committed.
//! - Statements of a group lock their rows in id order, so two groups cannot deadlock.
//!   If a group fails anyway (a database error in one statement aborts the transaction),
//!   nothing of it was written, and its commits run again one by one, each getting its
//!   own answer.
//! - Other commits run alone, in a transaction of their own ([`commit_in`]).

use std::sync::Arc;

use durable_core::{Commit, Committed, StoreError};
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::commit::{commit_in, refusal, Abort, Statement};
use crate::convert::{pg, pool, retryable};
use crate::store::Db;

/// How often a transaction that PostgreSQL aborted (deadlock, serialization) runs again.
const RETRIES: usize = 5;

struct Job {
    commit: Commit,
    owner: Option<u128>,
    reply: oneshot::Sender<Result<Committed, StoreError>>,
}

impl Job {
    fn is_one_statement(&self) -> bool {
        self.commit.operations.is_empty() && self.commit.deliveries.is_empty()
    }
}

/// The queue of commits and its lanes.
pub(crate) struct Writer {
    jobs: std::sync::Mutex<Option<mpsc::UnboundedSender<Job>>>,
    lanes: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Writer {
    pub fn start(db: Arc<Db>, lanes: usize, max_batch: usize) -> Writer {
        let (sender, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let lanes = (0..lanes)
            .map(|_| tokio::spawn(lane(db.clone(), receiver.clone(), max_batch)))
            .collect();
        Writer {
            jobs: std::sync::Mutex::new(Some(sender)),
            lanes: std::sync::Mutex::new(lanes),
        }
    }

    /// Commits `commit` with the next group; see [`Store::commit_leased`].
    ///
    /// [`Store::commit_leased`]: durable_core::Store::commit_leased
    pub async fn commit(
        &self,
        commit: Commit,
        owner: Option<u128>,
    ) -> Result<Committed, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            let jobs = jobs.as_ref().ok_or(StoreError::Closed)?;
            jobs.send(Job {
                commit,
                owner,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        }
        answer.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Finishes the commits already queued, then stops the lanes.
    pub async fn close(&self) {
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        let lanes: Vec<_> = self
            .lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for lane in lanes {
            let _ = lane.await;
        }
    }
}

async fn lane(db: Arc<Db>, jobs: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>, max_batch: usize) {
    loop {
        let batch = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let (group, alone): (Vec<Job>, Vec<Job>) =
            batch.into_iter().partition(Job::is_one_statement);
        if !group.is_empty() {
            run_group(&db, group).await;
        }
        for job in alone {
            let result = run_alone(&db, &job.commit, job.owner).await;
            let _ = job.reply.send(result);
        }
    }
}

/// Runs one-statement commits as one transaction, or one by one if that fails.
async fn run_group(db: &Db, mut jobs: Vec<Job>) {
    if jobs.len() == 1 {
        let job = jobs.pop().expect("one job");
        let result = run_alone(db, &job.commit, job.owner).await;
        let _ = job.reply.send(result);
        return;
    }
    let mut prepared = Vec::with_capacity(jobs.len());
    for job in jobs {
        match Statement::new(&job.commit, job.owner) {
            Ok(statement) => prepared.push((statement, job)),
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }
    prepared.sort_by(|(a, _), (b, _)| a.id.cmp(&b.id));
    match group_transaction(db, &prepared).await {
        Ok(applied) => {
            for ((statement, job), applied) in prepared.into_iter().zip(applied) {
                let result = if applied {
                    Ok(Committed::default())
                } else {
                    Err(explain(db, &job.commit, &statement, job.owner).await)
                };
                let _ = job.reply.send(result);
            }
        }
        Err(Group::Unknown(e)) => {
            // The transaction may or may not have committed: the engine reads the
            // executions again before it goes on.
            let message = e.to_string();
            for (_, job) in prepared {
                let _ = job
                    .reply
                    .send(Err(StoreError::backend(std::io::Error::other(format!(
                        "the outcome of a grouped commit is unknown: {message}"
                    )))));
            }
        }
        Err(Group::NotWritten) => {
            for (_, job) in prepared {
                let result = run_alone(db, &job.commit, job.owner).await;
                let _ = job.reply.send(result);
            }
        }
    }
}

enum Group {
    /// Nothing was written.
    NotWritten,
    /// The `COMMIT` itself failed: it may have landed.
    Unknown(tokio_postgres::Error),
}

/// Sends `BEGIN`, every statement and `COMMIT` at once; answers which applied.
async fn group_transaction(db: &Db, prepared: &[(Statement, Job)]) -> Result<Vec<bool>, Group> {
    let client = db.pool.get().await.map_err(|_| Group::NotWritten)?;
    let statement = client
        .prepare_cached(&db.sql.commit)
        .await
        .map_err(|_| Group::NotWritten)?;
    let params: Vec<_> = prepared
        .iter()
        .map(|(s, _)| s.params(&db.sql.channel))
        .collect();
    let begin = client.batch_execute("BEGIN");
    let rows = join_all(params.iter().map(|p| client.query_one(&statement, p)));
    let commit = client.batch_execute("COMMIT");
    let (begun, rows, committed) = tokio::join!(begin, rows, commit);
    // Any failure before `COMMIT` aborted the transaction, and `COMMIT` then rolls back.
    if begun.is_err() || rows.iter().any(Result::is_err) {
        if let Some(Err(e)) = rows.iter().find(|r| r.is_err()) {
            tracing::debug!(error = %e, "a grouped commit failed; committing one by one");
        }
        return Err(Group::NotWritten);
    }
    committed.map_err(Group::Unknown)?;
    Ok(rows
        .into_iter()
        .map(|row| row.map(|row| row.get::<_, bool>(0)).unwrap_or(false))
        .collect())
}

/// Why a statement that did not apply was refused.
async fn explain(
    db: &Db,
    commit: &Commit,
    statement: &Statement,
    owner: Option<u128>,
) -> StoreError {
    let current = async {
        let client = db.pool.get().await.map_err(pool)?;
        let query = client.prepare_cached(&db.sql.current).await.map_err(pg)?;
        let row = client
            .query_opt(&query, &[&statement.id])
            .await
            .map_err(pg)?;
        Ok::<_, StoreError>(row.map(|row| (row.get::<_, i64>(0), row.get::<_, Option<Vec<u8>>>(1))))
    };
    match current.await {
        Ok(current) => refusal(&commit.record.id, statement.expected, owner, current),
        Err(e) => e,
    }
}

/// Runs one commit in its own transaction (one statement, or the full check of a commit
/// with operation changes and deliveries).
pub(crate) async fn run_alone(
    db: &Db,
    commit: &Commit,
    owner: Option<u128>,
) -> Result<Committed, StoreError> {
    if commit.operations.is_empty() && commit.deliveries.is_empty() {
        let statement = Statement::new(commit, owner)?;
        let client = db.pool.get().await.map_err(pool)?;
        let query = client.prepare_cached(&db.sql.commit).await.map_err(pg)?;
        let row = client
            .query_one(&query, &statement.params(&db.sql.channel))
            .await
            .map_err(pg)?;
        drop(client);
        return if row.get::<_, bool>(0) {
            Ok(Committed::default())
        } else {
            Err(explain(db, commit, &statement, owner).await)
        };
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut client = db.pool.get().await.map_err(pool)?;
        let tx = client.transaction().await.map_err(pg)?;
        let error = match commit_in(&tx, &db.sql, commit, owner).await {
            Ok(committed) => match tx.commit().await {
                Ok(()) => return Ok(committed),
                Err(e) => e,
            },
            Err(Abort::Store(e)) => return Err(e),
            Err(Abort::Db(e)) => e,
        };
        if !(retryable(&error) && attempt < RETRIES) {
            return Err(pg(error));
        }
    }
}
