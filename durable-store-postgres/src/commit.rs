//! Committing transitions and applying deliveries, inside PostgreSQL transactions.
//!
//! A commit with no operation changes and no deliveries (a step's outcome, a sleep, the
//! end of an execution) is one statement, [`Sql::commit`] (or one of its lighter forms,
//! [`Sql::commit_plain`] and [`Sql::commit_step`], when it needs less), whose conditions
//! (sequence number and lease) and writes happen together; the writer groups many such
//! statements in one transaction. A commit that changes operations or delivers to other executions
//! runs in a transaction of its own: it locks its execution's row, then the rows of its
//! operations, checks them with [`store_rules`] as every store does, writes, and applies
//! its deliveries. A delivery locks the execution's row before the operation's, as a
//! commit does, so the two cannot deadlock; a deadlock PostgreSQL reports anyway (rows
//! of several executions locked in other orders) aborts a transaction that wrote nothing
//! yet, which simply runs again.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use durable_core::{
    store_rules, Commit, Committed, Delivered, Delivery, ExecutionRecord, OperationAction,
    OperationRecord, OperationRef, Status, StoreError,
};
use tokio_postgres::types::ToSql;

use crate::convert::{self, decode, encode, finished_payload, int, status_code, text, wake_at};
use crate::sql::Sql;

/// The parameters of [`Sql::commit`] for one commit.
pub(crate) struct Statement {
    pub id: Vec<u8>,
    pub expected: i64,
    seq: i64,
    status: i16,
    wake_at: Option<i64>,
    record: Vec<u8>,
    owner: Option<Vec<u8>>,
    numbers: Vec<i64>,
    entries: Vec<Vec<u8>>,
    prune: i64,
    workflow: Vec<u8>,
    parent: Option<Vec<u8>>,
    notify: Option<String>,
}

impl Statement {
    /// The statement of `commit` made by lease owner `owner` (no lease check if `None`).
    pub fn new(commit: &Commit, owner: Option<u128>) -> Result<Self, StoreError> {
        let record = &commit.record;
        let id = &record.id;
        let mut numbers = Vec::with_capacity(commit.history.len());
        let mut entries = Vec::with_capacity(commit.history.len());
        for entry in &commit.history {
            numbers.push(int("a history entry number", entry.number)?);
            entries.push(encode("a history entry", entry)?);
        }
        let notify = matches!(
            record.status,
            Status::Completed | Status::Failed | Status::Parked | Status::Cancelled
        )
        .then(|| finished_payload(id));
        Ok(Statement {
            id: id.as_bytes().to_vec(),
            expected: int("a sequence number", commit.expected_seq)?,
            seq: int("a sequence number", record.seq)?,
            status: status_code(record.status)?,
            wake_at: wake_at(id, record.wake_at)?,
            record: encode("an execution record", record)?,
            owner: owner.map(convert::owner),
            numbers,
            entries,
            prune: int("a history prune line", commit.prune_history_below)?,
            workflow: record.workflow.as_bytes().to_vec(),
            parent: record
                .parent
                .as_ref()
                .map(|p| p.execution.as_bytes().to_vec()),
            notify,
        })
    }

    /// Whether [`Sql::commit_plain`] does all that this commit needs.
    pub fn is_plain(&self) -> bool {
        self.prune <= 0 && self.notify.is_none()
    }

    /// The parameters of [`Sql::commit_plain`] (see [`is_plain`](Self::is_plain)).
    pub fn plain_params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.id,
            &self.expected,
            &self.seq,
            &self.status,
            &self.wake_at,
            &self.record,
            &self.owner,
            &self.numbers,
            &self.entries,
            &self.workflow,
            &self.parent,
        ]
    }

    /// Whether [`Sql::commit_step`] does all that this commit needs: it is plain and
    /// writes exactly one history entry.
    pub fn is_step(&self) -> bool {
        self.is_plain() && self.numbers.len() == 1
    }

    /// The parameters of [`Sql::commit_step`] (see [`is_step`](Self::is_step)).
    pub fn step_params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.id,
            &self.expected,
            &self.seq,
            &self.status,
            &self.wake_at,
            &self.record,
            &self.owner,
            &self.numbers[0],
            &self.entries[0],
            &self.workflow,
            &self.parent,
        ]
    }

    pub fn params<'a>(&'a self, channel: &'a String) -> [&'a (dyn ToSql + Sync); 14] {
        [
            &self.id,
            &self.expected,
            &self.seq,
            &self.status,
            &self.wake_at,
            &self.record,
            &self.owner,
            &self.numbers,
            &self.entries,
            &self.prune,
            &self.workflow,
            &self.parent,
            &self.notify,
            channel,
        ]
    }
}

/// The parameters of [`Sql::commit_group`] for several commits, one array per column.
#[derive(Default)]
pub(crate) struct GroupParams {
    ids: Vec<Vec<u8>>,
    expected: Vec<i64>,
    seq: Vec<i64>,
    status: Vec<i16>,
    wake_at: Vec<Option<i64>>,
    records: Vec<Vec<u8>>,
    owners: Vec<Option<Vec<u8>>>,
    prune: Vec<i64>,
    workflows: Vec<Vec<u8>>,
    parents: Vec<Option<Vec<u8>>>,
    notify: Vec<Option<String>>,
    history_commits: Vec<i64>,
    history_numbers: Vec<i64>,
    history_entries: Vec<Vec<u8>>,
}

impl GroupParams {
    /// The arrays of `statements`.
    pub fn new<'a>(statements: impl IntoIterator<Item = &'a Statement>) -> Self {
        let mut group = GroupParams::default();
        for (place, s) in (1..).zip(statements) {
            group.ids.push(s.id.clone());
            group.expected.push(s.expected);
            group.seq.push(s.seq);
            group.status.push(s.status);
            group.wake_at.push(s.wake_at);
            group.records.push(s.record.clone());
            group.owners.push(s.owner.clone());
            group.prune.push(s.prune);
            group.workflows.push(s.workflow.clone());
            group.parents.push(s.parent.clone());
            group.notify.push(s.notify.clone());
            // Entries below the prune line are not kept, as `Sql::commit` drops them.
            for (number, entry) in s.numbers.iter().zip(&s.entries) {
                if *number >= s.prune {
                    group.history_commits.push(place);
                    group.history_numbers.push(*number);
                    group.history_entries.push(entry.clone());
                }
            }
        }
        group
    }

    pub fn params<'a>(&'a self, channel: &'a String) -> [&'a (dyn ToSql + Sync); 15] {
        [
            &self.ids,
            &self.expected,
            &self.seq,
            &self.status,
            &self.wake_at,
            &self.records,
            &self.owners,
            &self.prune,
            &self.workflows,
            &self.parents,
            &self.notify,
            &self.history_commits,
            &self.history_numbers,
            &self.history_entries,
            channel,
        ]
    }
}

/// Why a commit that was not applied was refused, from the execution as it is now.
pub(crate) fn refusal(
    id: &str,
    expected: i64,
    owner: Option<u128>,
    current: Option<(i64, Option<Vec<u8>>)>,
) -> StoreError {
    let expected_seq = u64::try_from(expected).unwrap_or(0);
    match current {
        None => StoreError::Conflict {
            id: id.to_owned(),
            expected: expected_seq,
            found: None,
        },
        Some((_, Some(holder))) if owner.is_some_and(|o| holder != convert::owner(o)) => {
            StoreError::LeaseLost { id: id.to_owned() }
        }
        Some((seq, _)) => StoreError::Conflict {
            id: id.to_owned(),
            expected: expected_seq,
            found: Some(u64::try_from(seq).unwrap_or(0)),
        },
    }
}

/// What can end a transaction early: an answer for the caller, or a database error (which
/// may be worth running the transaction again).
pub(crate) enum Abort {
    Store(StoreError),
    Db(tokio_postgres::Error),
}

impl From<StoreError> for Abort {
    fn from(e: StoreError) -> Self {
        Abort::Store(e)
    }
}

impl From<tokio_postgres::Error> for Abort {
    fn from(e: tokio_postgres::Error) -> Self {
        Abort::Db(e)
    }
}

type OpKey = (String, String);

/// Applies a commit with operation changes or deliveries within `tx`.
pub(crate) async fn commit_in(
    tx: &Transaction<'_>,
    sql: &Sql,
    commit: &Commit,
    owner: Option<u128>,
) -> Result<Committed, Abort> {
    let id = commit.record.id.as_str();
    let statement = Statement::new(commit, None)?;
    let lock = tx.prepare_cached(&sql.lock_execution).await?;
    let current = tx.query_opt(&lock, &[&statement.id]).await?;
    let current = current.map(|row| (row.get::<_, i64>(0), row.get::<_, Option<Vec<u8>>>(1)));
    match &current {
        Some((seq, holder))
            if *seq == statement.expected
                && owner
                    .is_none_or(|o| holder.as_ref().is_none_or(|h| *h == convert::owner(o))) => {}
        _ => return Err(refusal(id, statement.expected, owner, current).into()),
    }

    // The operations the changes name, locked, and the holders of the tokens they write.
    let mut keys: Vec<Vec<u8>> = commit
        .operations
        .iter()
        .map(|c| c.key.as_bytes().to_vec())
        .collect();
    keys.sort();
    keys.dedup();
    let mut stored: HashMap<String, OperationRecord> = HashMap::new();
    if !keys.is_empty() {
        let lock_ops = tx.prepare_cached(&sql.lock_operations).await?;
        for row in tx.query(&lock_ops, &[&statement.id, &keys]).await? {
            let key = text("an operation key", row.get(0))?;
            let op: OperationRecord =
                decode(|| format!("operation {key:?} of {id:?}"), row.get(1))?;
            stored.insert(key, op);
        }
    }
    let tokens: Vec<Vec<u8>> = commit
        .operations
        .iter()
        .filter_map(|c| match &c.action {
            OperationAction::Put(op) => op.token.as_ref().map(|t| t.as_bytes().to_vec()),
            _ => None,
        })
        .collect();
    let mut holders: HashMap<Vec<u8>, OpKey> = HashMap::new();
    if !tokens.is_empty() {
        let owners = tx.prepare_cached(&sql.token_owners).await?;
        for row in tx.query(&owners, &[&tokens]).await? {
            let execution = text("an execution id", row.get(1))?;
            let key = text("an operation key", row.get(2))?;
            holders.insert(row.get(0), (execution, key));
        }
    }

    // Check every change before writing anything, against the operations as the earlier
    // changes leave them.
    let mut staged: HashMap<&str, Option<&OperationRecord>> = HashMap::new();
    for change in &commit.operations {
        let current = match staged.get(change.key.as_str()) {
            Some(staged) => *staged,
            None => stored.get(&change.key),
        };
        store_rules::check_change(id, change, current)?;
        let after = match &change.action {
            OperationAction::Keep => current,
            OperationAction::Put(op) => Some(&**op),
            OperationAction::Delete => None,
        };
        if let Some(token) = after.and_then(|op| op.token.as_ref()) {
            let holder = holders.get(token.as_bytes());
            if holder.is_some_and(|(e, k)| e != id || *k != change.key) {
                return Err(StoreError::OperationConflict {
                    id: id.to_owned(),
                    key: change.key.clone(),
                    expected: change.expect,
                }
                .into());
            }
        }
        staged.insert(&change.key, after);
    }

    let write = tx.prepare_cached(&sql.commit).await?;
    let row = tx
        .query_one(&write, &statement.params(&sql.channel))
        .await?;
    if !row.get::<_, bool>(0) {
        return Err(refusal(id, statement.expected, owner, None).into());
    }
    for change in &commit.operations {
        let key = change.key.as_bytes();
        match &change.action {
            OperationAction::Keep => {}
            OperationAction::Put(op) => {
                let put = tx.prepare_cached(&sql.put_operation).await?;
                let token = op.token.as_ref().map(|t| t.as_bytes());
                let bytes = encode("an operation record", &**op)?;
                let written = tx
                    .execute(&put, &[&statement.id, &key, &token, &bytes])
                    .await;
                match written {
                    Ok(_) => {}
                    // A concurrent commit of another execution took the same token.
                    Err(e) if convert::unique_violation(&e) => {
                        return Err(StoreError::OperationConflict {
                            id: id.to_owned(),
                            key: change.key.clone(),
                            expected: change.expect,
                        }
                        .into())
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            OperationAction::Delete => {
                let delete = tx.prepare_cached(&sql.delete_operation).await?;
                tx.execute(&delete, &[&statement.id, &key]).await?;
            }
        }
    }
    let mut committed = Committed::default();
    for delivery in &commit.deliveries {
        if store_rules::check_delivery(delivery).is_err() {
            continue;
        }
        if let Delivered::Applied {
            execution,
            woke: true,
            ..
        } = deliver_in(tx, sql, delivery).await?
        {
            committed.woken.push(execution);
        }
    }
    Ok(committed)
}

/// Applies a delivery within `tx` (already checked with `check_delivery`).
pub(crate) async fn deliver_in(
    tx: &Transaction<'_>,
    sql: &Sql,
    delivery: &Delivery,
) -> Result<Delivered, Abort> {
    let (execution, key, token) = match &delivery.to {
        OperationRef::Token(token) => {
            let resolve = tx.prepare_cached(&sql.resolve_token).await?;
            let Some(row) = tx.query_opt(&resolve, &[&token.as_bytes()]).await? else {
                return Ok(Delivered::Unknown);
            };
            let execution = text("an execution id", row.get(0))?;
            let key = text("an operation key", row.get(1))?;
            (execution, key, Some(token))
        }
        OperationRef::Key { execution, key } => (execution.clone(), key.clone(), None),
    };
    // The execution's row first, then the operation's: the order commits lock them in.
    let lock = tx.prepare_cached(&sql.lock_execution).await?;
    let record: Option<ExecutionRecord> =
        match tx.query_opt(&lock, &[&execution.as_bytes()]).await? {
            Some(row) => Some(decode(|| format!("execution {execution:?}"), row.get(2))?),
            None => None,
        };
    let lock_op = tx.prepare_cached(&sql.lock_operation).await?;
    let op: Option<OperationRecord> = match tx
        .query_opt(&lock_op, &[&execution.as_bytes(), &key.as_bytes()])
        .await?
    {
        Some(row) => Some(decode(
            || format!("operation {key:?} of {execution:?}"),
            row.get(0),
        )?),
        None => None,
    };
    // The token moved to another operation between the lookup and the lock.
    if token.is_some() && op.as_ref().and_then(|op| op.token.as_ref()) != token {
        return Ok(Delivered::Unknown);
    }
    if let Some(refused) = store_rules::refusal(op.as_ref(), record.as_ref(), delivery.at) {
        return Ok(refused);
    }
    let (Some(mut op), Some(old)) = (op, record) else {
        return Ok(Delivered::Unknown);
    };
    let mut record = old.clone();
    let answer = store_rules::apply(delivery, &mut op, &mut record);
    let update = tx.prepare_cached(&sql.update_operation).await?;
    let bytes = encode("an operation record", &op)?;
    tx.execute(&update, &[&execution.as_bytes(), &key.as_bytes(), &bytes])
        .await?;
    if record != old {
        let wake = tx.prepare_cached(&sql.wake).await?;
        let seq = int("a sequence number", record.seq)?;
        let status = status_code(record.status)?;
        let at = wake_at(&record.id, record.wake_at)?;
        let bytes = encode("an execution record", &record)?;
        tx.query_one(
            &wake,
            &[
                &execution.as_bytes(),
                &seq,
                &status,
                &at,
                &bytes,
                &sql.channel,
            ],
        )
        .await?;
    }
    Ok(answer)
}
