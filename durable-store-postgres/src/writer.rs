//! Group commit: a commit made while the store has a writer free runs at once in the
//! caller's task (one round trip, no hand-over); commits made while every writer ("lane")
//! is busy wait in a queue, and a lane takes them in groups, each group one statement
//! ([`Sql::commit_group`]) and so one transaction and one WAL flush for all of them.
//!
//! Invariants:
//! - A group holds only commits that are one statement each (no operation changes, no
//!   deliveries). Each commit's conditions are checked on its execution's row, and a
//!   commit whose conditions fail writes nothing, so a refused commit does not abort its
//!   group; of two commits of one execution with the same expected seq (which the engine
//!   never makes, as it commits an execution's transitions one after the other), at most
//!   one applies. A commit is answered only after its group's transaction committed.
//! - If a group fails anyway (a database error aborts the statement), nothing of it was
//!   written, and its commits run again one by one, each getting its own answer.
//! - At most `lanes` commits or groups are in flight at once; `busy` counts them. A
//!   queued commit always has a lane that will take it: whoever frees a lane while the
//!   queue is not empty starts a lane task with it instead.
//! - Other commits run alone, in a transaction of their own ([`commit_in`]).
//!
//! [`Sql::commit_group`]: crate::sql::Sql::commit_group

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use durable_core::{Commit, Committed, StoreError};
use tokio::sync::{oneshot, Notify};

use crate::commit::{commit_in, refusal, Abort, GroupParams, Statement};
use crate::convert::{pg, pool, retryable, unique_violation};
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

#[derive(Default)]
struct State {
    pending: VecDeque<Job>,
    /// Lanes in use: commits running in their caller's task, and lane tasks.
    busy: usize,
    closed: bool,
}

struct Inner {
    db: Arc<Db>,
    state: Mutex<State>,
    lanes: usize,
    max_batch: usize,
    /// Notified when `busy` falls to zero.
    idle: Notify,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The queue of commits and its lanes.
pub(crate) struct Writer {
    inner: Arc<Inner>,
}

impl Writer {
    pub fn start(db: Arc<Db>, lanes: usize, max_batch: usize) -> Writer {
        Writer {
            inner: Arc::new(Inner {
                db,
                state: Mutex::new(State::default()),
                lanes: lanes.max(1),
                max_batch: max_batch.max(1),
                idle: Notify::new(),
            }),
        }
    }

    /// Commits `commit` at once if a lane is free, with the next group otherwise; see
    /// [`Store::commit_leased`].
    ///
    /// [`Store::commit_leased`]: durable_core::Store::commit_leased
    pub async fn commit(
        &self,
        commit: Commit,
        owner: Option<u128>,
    ) -> Result<Committed, StoreError> {
        let mut commit = Some(commit);
        let answer = {
            let mut state = self.inner.state();
            if state.closed {
                return Err(StoreError::Closed);
            }
            if state.busy < self.inner.lanes && state.pending.is_empty() {
                state.busy += 1;
                None
            } else {
                let (reply, answer) = oneshot::channel();
                state.pending.push_back(Job {
                    commit: commit.take().expect("not queued yet"),
                    owner,
                    reply,
                });
                if state.busy < self.inner.lanes {
                    state.busy += 1;
                    Lane::spawn(&self.inner);
                }
                Some(answer)
            }
        };
        match answer {
            Some(answer) => answer.await.unwrap_or(Err(StoreError::Closed)),
            None => {
                let commit = commit.expect("not queued");
                let mut lane = Lane::new(self.inner.clone());
                let result = run_alone(&self.inner.db, &commit, owner).await;
                lane.hand_over();
                result
            }
        }
    }

    /// Refuses new commits, and returns once those already made are answered.
    pub async fn close(&self) {
        self.inner.state().closed = true;
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.inner.state().busy == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One unit of `busy`, given back (or handed to a new lane task if commits wait) when it
/// is done or dropped.
struct Lane {
    inner: Arc<Inner>,
    done: bool,
}

impl Lane {
    fn new(inner: Arc<Inner>) -> Lane {
        Lane { inner, done: false }
    }

    /// Starts a lane task with a unit of `busy` already counted.
    fn spawn(inner: &Arc<Inner>) {
        let lane = Lane::new(inner.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(lane.run());
            }
            // No runtime (it is shutting down): the queued commits are answered
            // `Closed` when the writer is dropped.
            Err(_) => drop(lane),
        }
    }

    async fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            run_batch(&self.inner.db, batch).await;
        }
    }

    /// The next group of queued commits, or `None` (and the lane given back) if none.
    fn next_batch(&mut self) -> Option<Vec<Job>> {
        let inner = self.inner.clone();
        let mut state = inner.state();
        if state.pending.is_empty() {
            self.release(&mut state);
            return None;
        }
        let n = state.pending.len().min(self.inner.max_batch);
        Some(state.pending.drain(..n).collect())
    }

    /// Gives the lane back, or to a new lane task if commits wait for one.
    fn hand_over(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let inner = self.inner.clone();
        let mut state = inner.state();
        if state.pending.is_empty() {
            self.release(&mut state);
        } else {
            drop(state);
            Lane::spawn(&self.inner);
        }
    }

    fn release(&mut self, state: &mut State) {
        self.done = true;
        state.busy -= 1;
        if state.busy == 0 {
            self.inner.idle.notify_waiters();
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        // Dropped unfinished: its task was cancelled.
        self.hand_over();
    }
}

/// Runs the one-statement commits of `batch` as one group, the others one by one.
async fn run_batch(db: &Db, batch: Vec<Job>) {
    let (group, alone): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(Job::is_one_statement);
    if !group.is_empty() {
        run_group(db, group).await;
    }
    for job in alone {
        let result = run_alone(db, &job.commit, job.owner).await;
        let _ = job.reply.send(result);
    }
}

/// Runs one-statement commits as one statement, or one by one if that fails.
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
    // Rows are locked in id order, as far as the plan follows its input.
    prepared.sort_by(|(a, _), (b, _)| a.id.cmp(&b.id));
    match group_statement(db, &prepared).await {
        Ok(applied) => {
            for ((statement, job), place) in prepared.into_iter().zip(1..) {
                let result = if applied.contains(&place) {
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
    /// The connection failed: the statement may have committed.
    Unknown(tokio_postgres::Error),
}

/// Runs the group's statement (its own transaction); answers the places (from 1) of the
/// commits that applied.
async fn group_statement(db: &Db, prepared: &[(Statement, Job)]) -> Result<HashSet<i64>, Group> {
    let client = db.pool.get().await.map_err(|_| Group::NotWritten)?;
    let statement = client
        .prepare_cached(&db.sql.commit_group)
        .await
        .map_err(|_| Group::NotWritten)?;
    let params = GroupParams::new(prepared.iter().map(|(s, _)| s));
    match client
        .query_one(&statement, &params.params(&db.sql.channel))
        .await
    {
        Ok(row) => Ok(row.get::<_, Vec<i64>>(0).into_iter().collect()),
        // The server refused the statement, and its transaction rolled back.
        Err(e) if e.as_db_error().is_some() => {
            tracing::debug!(error = %e, "a grouped commit failed; committing one by one");
            Err(Group::NotWritten)
        }
        Err(e) => Err(Group::Unknown(e)),
    }
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
        let step = if statement.is_step() {
            let query = client.prepare_cached(&db.sql.commit_step).await;
            let query = query.map_err(pg)?;
            match client.query_opt(&query, &statement.step_params()).await {
                Ok(row) => Some(row.is_some()),
                // A history entry with its number exists: nothing was written, and the
                // statement that replaces entries runs instead.
                Err(e) if unique_violation(&e) => None,
                Err(e) => return Err(pg(e)),
            }
        } else {
            None
        };
        let applied = match step {
            Some(applied) => applied,
            None if statement.is_plain() => {
                let query = client.prepare_cached(&db.sql.commit_plain).await;
                let query = query.map_err(pg)?;
                let row = client.query_one(&query, &statement.plain_params()).await;
                row.map_err(pg)?.get::<_, bool>(0)
            }
            None => {
                let query = client.prepare_cached(&db.sql.commit).await.map_err(pg)?;
                let row = client
                    .query_one(&query, &statement.params(&db.sql.channel))
                    .await;
                row.map_err(pg)?.get::<_, bool>(0)
            }
        };
        drop(client);
        return if applied {
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
