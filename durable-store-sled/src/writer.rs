//! The single writer thread and its group commit.
//!
//! Invariants:
//! - Every write to the tree goes through this thread, so a request's check (does the id
//!   exist, is the stored `seq` the expected one) and its write cannot be interleaved with
//!   another write: there is no other writer.
//! - The thread takes every request already queued (up to [`MAX_GROUP`]), checks each one
//!   against the tree *and* against the requests accepted before it in the same group,
//!   writes all accepted ones with one atomic `apply_batch`, then makes them durable once
//!   and answers them (see `sync`). A request whose answer is `Ok` was therefore durable
//!   before the answer was sent, and waited for exactly one sync after it was applied.
//! - A refused request wrote nothing. Its refusal is answered with the group, after the
//!   sync, since it may rest on a request accepted earlier in the group; only failures to
//!   read or encode, and a layout the tree already has, are answered at once (the tree
//!   holds only durable groups when a group starts).
//! - Each group is synced, and `recent` updated, before the next one is checked: a group
//!   finds in `recent` what the tree holds.
//! - If the batch or the sync fails, every request of the group that was waiting for it
//!   gets [`StoreError::Backend`]: its write may or may not have reached the disk.
//! - Groups that write are numbered from 1 without gaps; each batch stores its number
//!   (key `m`), and once the group is durable, before any answer, the number becomes the
//!   high-water mark (see `mark`), fsynced at most `mark::SYNC_DELAY` later.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use durable_core::{
    store_rules, Commit, Committed, Created, Delivered, Delivery, ExecutionRecord, OperationAction,
    OperationChange, OperationRecord, OperationRef, Status, StoreError,
};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use tokio::sync::oneshot;

use crate::blobs::Blobs;
use crate::digest::{self, Digest, Writes};
use crate::error::sled_error;
use crate::keys;
use crate::mark::Mark;
use crate::options::Durability;
use crate::recent::{Kept, KeptOp, Recent};
use crate::running::RunningIndex;
use crate::sync::{Applied, Publish, Reply, Syncer, Visibility, Waiting};

/// Most requests written with one batch and one sync, so a flood of requests cannot
/// grow a batch (and the wait of its first request) without bound.
const MAX_GROUP: usize = 1024;

/// A write for the writer thread, encoded by the caller so that encoding runs on the
/// callers' threads, in parallel, and the writer only checks and writes.
pub(crate) enum Request {
    Create {
        record: ExecutionRecord,
        encoded: Vec<u8>,
        input: Vec<u8>,
        reply: Reply<Created>,
    },
    Commit {
        record: ExecutionRecord,
        encoded: Vec<u8>,
        expected_seq: u64,
        history: Vec<keys::Entry>,
        prune_history_below: u64,
        operations: Vec<OperationChange>,
        deliveries: Vec<Delivery>,
        reply: Reply<Committed>,
    },
    Deliver {
        delivery: Delivery,
        reply: Reply<Delivered>,
    },
    Delete {
        id: String,
        reply: Reply<bool>,
    },
    SaveLayout {
        layout: u64,
        description: Vec<u8>,
        reply: Reply<()>,
    },
}

impl Request {
    pub(crate) fn create(
        record: ExecutionRecord,
        input: Vec<u8>,
    ) -> Result<(Self, oneshot::Receiver<Result<Created, StoreError>>), StoreError> {
        let (reply, answer) = oneshot::channel();
        let encoded = keys::encode(&record)?;
        let request = Request::Create {
            record,
            encoded,
            input,
            reply,
        };
        Ok((request, answer))
    }

    pub(crate) fn commit(
        commit: Commit,
    ) -> Result<(Self, oneshot::Receiver<Result<Committed, StoreError>>), StoreError> {
        let (reply, answer) = oneshot::channel();
        let encoded = keys::encode(&commit.record)?;
        let history = commit
            .history
            .iter()
            .map(|entry| Ok((entry.number, Arc::from(keys::encode(entry)?))))
            .collect::<Result<_, StoreError>>()?;
        for delivery in &commit.deliveries {
            store_rules::check_delivery(delivery)?;
        }
        let request = Request::Commit {
            record: commit.record,
            encoded,
            expected_seq: commit.expected_seq,
            history,
            prune_history_below: commit.prune_history_below,
            operations: commit.operations,
            deliveries: commit.deliveries,
            reply,
        };
        Ok((request, answer))
    }

    pub(crate) fn deliver(
        delivery: Delivery,
    ) -> Result<(Self, oneshot::Receiver<Result<Delivered, StoreError>>), StoreError> {
        store_rules::check_delivery(&delivery)?;
        let (reply, answer) = oneshot::channel();
        Ok((Request::Deliver { delivery, reply }, answer))
    }

    pub(crate) fn save_layout(
        layout: u64,
        description: Vec<u8>,
    ) -> (Self, oneshot::Receiver<Result<(), StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let request = Request::SaveLayout {
            layout,
            description,
            reply,
        };
        (request, answer)
    }

    pub(crate) fn delete(id: &str) -> (Self, oneshot::Receiver<Result<bool, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let request = Request::Delete {
            id: id.to_owned(),
            reply,
        };
        (request, answer)
    }
}

/// The error a caller sees when the writer thread is gone without answering, which only
/// a panic inside it can cause.
pub(crate) fn writer_gone() -> StoreError {
    StoreError::backend(std::io::Error::other(
        "the sled store's writer thread stopped unexpectedly",
    ))
}

/// What the writer thread works on: the tree and the state of its groups, and what makes
/// them durable.
pub(crate) struct Disk {
    pub(crate) applier: Applier,
    pub(crate) syncer: Syncer,
}

/// What the writer thread needs: the tree, and the state of its groups.
pub(crate) struct Applier {
    pub(crate) db: sled::Db,
    /// The number of the last group applied to the tree.
    pub(crate) group: u64,
    /// The digest of the tree's contents (see `digest`).
    pub(crate) digest: Digest,
    /// Set when a group could not be written or synced: sled 0.34 refuses every write
    /// after an I/O error until it is opened again (see `SledStore::recover`).
    pub(crate) failed: Arc<AtomicBool>,
    /// Which groups readers may see (see `sync::Visibility`).
    pub(crate) visibility: Arc<Visibility>,
    /// Recently written executions as the tree durably holds them (see `recent`), shared
    /// with the store's reads.
    pub(crate) recent: Arc<Recent>,
    /// The running lists (see `running`); empty until the open loads them.
    pub(crate) running: RunningIndex,
}

impl Disk {
    /// The writer's state for sled `db` with its log file `log`, whose last group (as the
    /// open found it) is `group` with `digest`.
    pub(crate) fn new(
        db: sled::Db,
        log: File,
        blobs: Blobs,
        mark: Mark,
        (group, digest): (u64, Digest),
        durability: Durability,
        failed: Arc<AtomicBool>,
    ) -> Disk {
        let visibility = Arc::new(Visibility::new(group));
        let recent = Arc::new(Recent::default());
        Disk {
            applier: Applier {
                db: db.clone(),
                group,
                digest,
                failed: failed.clone(),
                visibility: visibility.clone(),
                recent: recent.clone(),
                running: RunningIndex::default(),
            },
            syncer: Syncer {
                db,
                log,
                blobs,
                mark,
                durability,
                failed,
                visibility,
                recent,
                broken: None,
            },
        }
    }

    /// Applies `batch` as a group of its own and syncs it before returning: for writes
    /// made before the writer thread starts (a migration as the store opens).
    pub(crate) fn write_now(&mut self, batch: Writes) -> Result<(), StoreError> {
        let (number, applied) = apply_writes(&mut self.applier, batch);
        applied?;
        self.syncer.sync().map_err(|e| {
            self.applier.failed.store(true, Ordering::SeqCst);
            StoreError::backend(e)
        })?;
        self.applier.visibility.durable(number);
        if let Err(e) = self.syncer.mark.record(number) {
            tracing::error!(error = %e, "cannot write the store's high-water mark");
        }
        Ok(())
    }
}

/// The handle on the writer thread. Dropping it lets the thread finish every queued
/// request, sync, and exit, and waits for that.
pub(crate) struct Writer {
    requests: Option<mpsc::Sender<Box<Request>>>,
    /// Returns the result of the thread's last sync.
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Writer {
    pub(crate) fn spawn(disk: Disk) -> Result<Self, StoreError> {
        let (requests, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("durable-sled-writer".into())
            .spawn(move || {
                let Disk {
                    mut applier,
                    mut syncer,
                } = disk;
                run(&mut applier, &mut syncer, &queue);
                // Every group was synced already (with power-loss durability); this
                // makes the mark durable, and `close` report a disk that stopped
                // accepting writes.
                syncer.sync_all().map_err(StoreError::backend)
            })
            .map_err(StoreError::backend)?;
        Ok(Writer {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    pub(crate) fn send(&self, request: Box<Request>) -> Result<(), StoreError> {
        self.requests
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(request)
            .map_err(|_| writer_gone())
    }

    /// Lets the thread write every queued request, sync and exit, and returns the last
    /// sync's result; blocks until then.
    pub(crate) fn finish(mut self) -> Result<(), StoreError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), StoreError> {
        self.requests = None;
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                tracing::error!("the sled store's writer thread panicked");
                Err(writer_gone())
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %e, "the sled store's last sync failed");
        }
    }
}

fn run(applier: &mut Applier, syncer: &mut Syncer, queue: &mpsc::Receiver<Box<Request>>) {
    // Kept from group to group: growing a new one to a large group's size each time
    // copies its requests again and again.
    let mut group = Vec::with_capacity(16);
    loop {
        // `recv` keeps returning queued requests after the sender is dropped, so stopping
        // never loses one.
        let first = match syncer.idle_limit() {
            None => match queue.recv() {
                Ok(first) => first,
                Err(mpsc::RecvError) => return,
            },
            Some(limit) => match queue.recv_timeout(limit) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    syncer.sync_mark_if_due();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
        };
        group.push(first);
        group.extend(std::iter::from_fn(|| queue.try_recv().ok()).take(MAX_GROUP - 1));
        let applied = apply_group(applier, group.drain(..).map(|request| *request));
        syncer.finish(applied);
        syncer.sync_mark_if_due();
    }
}

/// What the group has accepted so far for one execution: the state later requests of the
/// same group must be checked against and build on, since it is not in the tree yet.
struct Staged {
    value: Value,
    /// Last numbers (keys) of the history chunks this group inserts, so a later prune or
    /// delete in the group can take them out again.
    chunks: Vec<u64>,
    /// The digest hash of the `e/` entry as the group leaves it (see `digest::entry_hash`).
    hash: u64,
    /// The length of that entry's value, for `recent`'s budget.
    size: usize,
}

/// A staged execution value: the one `recent` holds, as long as the group has not changed
/// it (no copy for a commit that only reads it before writing a new one), or a new one,
/// allocated as `recent` will keep it once the group is durable (its hash and size are
/// the `Staged`'s until then).
enum Value {
    Kept(Arc<Kept>),
    New(Arc<Kept>),
}

impl Value {
    fn new(value: keys::Execution) -> Value {
        Value::New(Arc::new(Kept {
            value,
            hash: 0,
            size: 0,
        }))
    }
}

impl std::ops::Deref for Value {
    type Target = keys::Execution;

    fn deref(&self) -> &keys::Execution {
        match self {
            Value::Kept(kept) | Value::New(kept) => &kept.value,
        }
    }
}

/// An operation's identity: its execution and its key.
type OpId = (String, String);

/// Checks the requests and writes the accepted ones with one batch: see the module docs.
/// `Syncer::finish` then makes the group durable and answers it (see `sync`).
fn apply_group<I>(applier: &mut Applier, requests: I) -> Applied
where
    I: IntoIterator<Item = Request>,
    I::IntoIter: ExactSizeIterator,
{
    let requests = requests.into_iter();
    let size = requests.len();
    // Sized for a group of commits of different executions, the common large group, so
    // that the maps do not grow (and rehash) step by step.
    let list = applier.group + 1;
    let mut group = Group {
        db: &applier.db,
        recent: &applier.recent,
        running: &mut applier.running,
        list,
        batch: Writes::with_capacity(size),
        staged: HashMap::with_capacity(size),
        deleted: HashSet::new(),
        operations: HashMap::new(),
        op_hashes: HashMap::new(),
        tokens: HashMap::new(),
        waiting: Vec::with_capacity(size),
        writes: false,
    };
    for request in requests {
        match request {
            Request::Create {
                record,
                encoded,
                input,
                reply,
            } => group.create(record, encoded, input, reply),
            Request::Commit {
                record,
                encoded,
                expected_seq,
                history,
                prune_history_below,
                operations,
                deliveries,
                reply,
            } => {
                let commit = StagedCommit {
                    record,
                    encoded,
                    expected_seq,
                    history,
                    prune: prune_history_below,
                    operations,
                    deliveries,
                };
                group.commit(commit, reply)
            }
            Request::Deliver { delivery, reply } => group.deliver_request(delivery, reply),
            Request::Delete { id, reply } => group.delete(id, reply),
            Request::SaveLayout {
                layout,
                description,
                reply,
            } => group.save_layout(layout, description, reply),
        }
    }
    if group.running.finish_group(list, &mut group.batch) {
        group.writes = true;
    }
    let Group {
        batch,
        staged,
        deleted,
        operations,
        mut op_hashes,
        waiting,
        writes,
        ..
    } = group;
    if !writes {
        // Only refusals and reads: nothing to make durable.
        return Applied {
            number: None,
            applied: Ok(()),
            publish: Publish::default(),
            waiting,
        };
    }
    // What the group leaves, for `recent` once durable (the values it kept are there
    // already).
    let written = staged
        .into_iter()
        .filter_map(|(id, staged)| match staged.value {
            Value::Kept(_) => None,
            Value::New(mut kept) => {
                let (hash, size) = (staged.hash, staged.size);
                match Arc::get_mut(&mut kept) {
                    Some(only) => (only.hash, only.size) = (hash, size),
                    // Never shared while staged; a copy all the same if it were.
                    None => {
                        let value = kept.value.clone();
                        kept = Arc::new(Kept { value, hash, size });
                    }
                }
                Some((id, kept))
            }
        })
        .collect();
    let operations = operations
        .into_iter()
        .map(|(id, op)| {
            let key = keys::operation(&id.0, &id.1);
            let (hash, size) = op_hashes.remove(&id).unwrap_or_default();
            (key, op.map(|op| Arc::new(KeptOp { op, hash, size })))
        })
        .collect();
    let publish = Publish {
        written,
        deleted,
        operations,
    };
    let (number, applied) = apply_writes(applier, batch);
    tracing::trace!(requests = size, answers = waiting.len(), "group applied");
    Applied {
        number: Some(number),
        applied,
        publish,
        waiting,
    }
}

/// Applies one group: numbers it, updates the digest and stores both with the writes in
/// one atomic batch. Returns its number, and whether the batch was applied.
fn apply_writes(applier: &mut Applier, mut batch: Writes) -> (u64, Result<(), StoreError>) {
    let number = applier.group + 1;
    let digest = match batch.apply_to(&applier.db, applier.digest) {
        Ok(digest) => digest,
        Err(e) => return (number, Err(e)),
    };
    batch.insert(keys::GROUP, keys::encode_group(number, digest.as_u64()));
    // Before the batch: a read that may see it waits for its sync.
    let (batch, written) = batch.into_parts();
    applier.visibility.applying(number, written);
    match applier.db.apply_batch(batch) {
        Ok(()) => {
            // In the tree now, durable or not: the next group must not reuse the number.
            applier.group = number;
            applier.digest = digest;
            (number, Ok(()))
        }
        Err(e) => {
            applier.failed.store(true, Ordering::SeqCst);
            (number, Err(StoreError::backend(io::Error::from(e))))
        }
    }
}

/// A commit request's contents, once taken out of its [`Request`].
struct StagedCommit {
    record: ExecutionRecord,
    encoded: Vec<u8>,
    expected_seq: u64,
    /// Encoded on the caller's thread, shared (not copied) with the tail it joins.
    history: Vec<keys::Entry>,
    prune: u64,
    operations: Vec<OperationChange>,
    deliveries: Vec<Delivery>,
}

/// One group being checked and staged.
///
/// A request either changes `batch` and the staged state and waits for the sync, or is
/// refused and changes neither; every fallible read and encoding happens before the first
/// change. Every answer is sent after the group's sync (a refusal may depend on a write
/// accepted earlier in the group, which is true only if that write lands).
struct Group<'a> {
    db: &'a sled::Db,
    /// Recently written executions as the tree holds them before this group.
    recent: &'a Recent,
    running: &'a mut RunningIndex,
    /// The running list this group writes for the executions it makes running.
    list: keys::ListKey,
    batch: Writes,
    /// Executions written by this group, as they will be in the tree.
    staged: HashMap<String, Staged>,
    /// Executions deleted by this group.
    deleted: HashSet<String>,
    /// Operations written (`Some`) or deleted (`None`) by this group.
    operations: HashMap<OpId, Option<OperationRecord>>,
    /// The digest hashes of the `o/` entries of the operations written by this group, and
    /// the lengths of their values.
    op_hashes: HashMap<OpId, (u64, usize)>,
    /// Token index entries written (`Some`) or deleted (`None`) by this group.
    tokens: HashMap<String, Option<OpId>>,
    waiting: Vec<Waiting>,
    /// Whether anything was staged in `batch`.
    writes: bool,
}

impl Group<'_> {
    /// The execution value of `id` as this group will leave it, without taking it.
    fn value(&mut self, id: &str) -> Result<Option<keys::Execution>, StoreError> {
        if self.deleted.contains(id) {
            return Ok(None);
        }
        if let Some(staged) = self.staged.get(id) {
            return Ok(Some(keys::Execution::clone(&staged.value)));
        }
        let key = keys::execution(id);
        if let Some(kept) = self.recent.get(id) {
            self.batch.know_hash(&key, Some(kept.hash));
            return Ok(Some(kept.value.clone()));
        }
        let stored = self.db.get(&key).map_err(sled_error)?;
        // The digest needs this value if the group writes the key: it is read already.
        self.batch.know(&key, stored.as_deref());
        stored
            .map(|bytes| keys::decode_execution(&key, &bytes))
            .transpose()
    }

    /// Takes the execution `id` out of the group's staging (or reads it from the tree),
    /// for a request that rewrites it; `put_back` must return it if the request is
    /// refused.
    fn take(&mut self, id: &str) -> Result<Option<Staged>, StoreError> {
        if self.deleted.contains(id) {
            return Ok(None);
        }
        if let Some(staged) = self.staged.remove(id) {
            return Ok(Some(staged));
        }
        let key = keys::execution_ivec(id);
        if let Some(kept) = self.recent.get(id) {
            // The digest needs the hash of the value the group replaces.
            self.batch.know_hash(&key, Some(kept.hash));
            // Shared: readers see the entry until the group is durable, and the group
            // writes a new value if it changes it.
            let (hash, size) = (kept.hash, kept.size);
            return Ok(Some(Staged {
                value: Value::Kept(kept),
                chunks: Vec::new(),
                hash,
                size,
            }));
        }
        let stored = self.db.get(&key).map_err(sled_error)?;
        let Some(bytes) = stored else {
            self.batch.know_hash(&key, None);
            return Ok(None);
        };
        let value = keys::decode_execution(&key, &bytes)?;
        // The digest needs this value too: the group read it already.
        let hash = digest::entry_hash(&key, &bytes);
        self.batch.know_hash(&key, Some(hash));
        Ok(Some(Staged {
            value: Value::new(value),
            chunks: Vec::new(),
            hash,
            size: bytes.len(),
        }))
    }

    fn put_back(&mut self, id: String, staged: Option<Staged>) {
        if let Some(staged) = staged {
            self.staged.insert(id, staged);
        }
    }

    /// The operation `(execution, key)` as this group will leave it.
    fn operation(&mut self, id: &OpId) -> Result<Option<OperationRecord>, StoreError> {
        if let Some(staged) = self.operations.get(id) {
            return Ok(staged.clone());
        }
        if self.deleted.contains(&id.0) {
            return Ok(None);
        }
        let key = keys::operation(&id.0, &id.1);
        if let Some(kept) = self.recent.operation(&key) {
            self.batch.know_hash(&key, Some(kept.hash));
            return Ok(Some(kept.op.clone()));
        }
        let stored = self.db.get(&key).map_err(sled_error)?;
        // The digest needs this value if the group writes the key.
        self.batch.know(&key, stored.as_deref());
        match stored {
            Some(bytes) => keys::decode_operation(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The operation that `token` belongs to, as this group will leave the index.
    fn token_owner(&mut self, token: &str) -> Result<Option<OpId>, StoreError> {
        if let Some(staged) = self.tokens.get(token) {
            return Ok(staged.clone());
        }
        let key = keys::token(token);
        let stored = self.db.get(&key).map_err(sled_error)?;
        // The digest needs this value if the group writes the key.
        self.batch.know(&key, stored.as_deref());
        match stored {
            Some(bytes) => keys::decode::<OpId>(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Stages an execution value: the `e/` key, and the timer and unfinished index
    /// changes from `old` (the record before, if any) to the new record.
    fn put_value(&mut self, old: Option<&ExecutionRecord>, encoded: Vec<u8>, mut staged: Staged) {
        let key = keys::execution_ivec(&staged.value.record.id);
        staged.hash = digest::entry_hash(&key, &encoded);
        staged.size = encoded.len();
        let record = &staged.value.record;
        let id = record.id.clone();
        let batch = &mut self.batch;
        // Index entries change only with what they index: a commit that keeps its wake-up
        // time and status writes no index key.
        let (old_wake, old_status) = (old.and_then(|o| o.wake_at), old.map(|o| o.status));
        if old_wake != record.wake_at {
            if let Some(at) = old_wake {
                batch.remove(keys::timer(at, &id));
            }
            if let Some(at) = record.wake_at {
                batch.insert(keys::timer(at, &id), sled::IVec::default());
            }
        }
        if old_status != Some(record.status) {
            if let Some(key) = old_status.and_then(|status| keys::unfinished(status, &id)) {
                batch.remove(key);
            }
            if let Some(key) = keys::unfinished(record.status, &id) {
                batch.insert(key, sled::IVec::default());
            }
            if old_status == Some(Status::Running) {
                self.running.leave(&id, self.list, batch);
            }
            if record.status == Status::Running {
                self.running.join(&id, self.list);
            }
        }
        batch.insert_hashed(key, encoded, staged.hash);
        self.writes = true;
        self.deleted.remove(&id);
        self.staged.insert(id, staged);
    }

    /// Stages an operation write (`Some`) or deletion (`None`) with its token index
    /// entries; `old` is the operation before.
    fn put_operation(
        &mut self,
        id: OpId,
        old: Option<&OperationRecord>,
        op: Option<OperationRecord>,
    ) {
        let old_token = old.and_then(|op| op.token.clone());
        let new_token = op.as_ref().and_then(|op| op.token.clone());
        if let Some(token) = old_token.clone().filter(|t| Some(t) != new_token.as_ref()) {
            self.batch.remove(keys::token(&token));
            self.tokens.insert(token, None);
        }
        let key = keys::operation(&id.0, &id.1);
        match &op {
            Some(op) => {
                // Encoded and checked by the caller before any change.
                let encoded = keys::encode_operation(op).unwrap_or_default();
                let hashed = digest::entry_hash(&key, &encoded);
                self.op_hashes.insert(id.clone(), (hashed, encoded.len()));
                self.batch.insert_hashed(key, encoded, hashed);
                if let Some(token) = new_token {
                    // An entry that names this operation already stays as it is.
                    if old_token.as_ref() != Some(&token) {
                        let owner = keys::encode(&id).unwrap_or_default();
                        self.batch.insert(keys::token(&token), owner);
                    }
                    self.tokens.insert(token, Some(id.clone()));
                }
            }
            None => self.batch.remove(key),
        }
        self.writes = true;
        self.operations.insert(id, op);
    }

    fn create(
        &mut self,
        record: ExecutionRecord,
        encoded: Vec<u8>,
        input: Vec<u8>,
        reply: Reply<Created>,
    ) {
        let existing = match self.value(&record.id) {
            Ok(existing) => existing,
            Err(e) => return self.waiting.push(Waiting::Create(reply, Err(e))),
        };
        if let Some(existing) = existing {
            let existing = Created::Existing(Box::new(existing.record));
            return self.waiting.push(Waiting::Create(reply, Ok(existing)));
        }
        let inline = input.len() <= keys::INLINE_INPUT_MAX;
        let value = match keys::encode_execution(&encoded, inline.then_some(&input), 0, &[]) {
            Ok(value) => value,
            Err(e) => return self.waiting.push(Waiting::Create(reply, Err(e))),
        };
        if !inline {
            self.batch.insert(keys::input(&record.id), input.as_slice());
        }
        let staged = Staged {
            value: Value::new(keys::Execution {
                record,
                input: inline.then_some(input),
                history_from: 0,
                tail: Vec::new(),
            }),
            chunks: Vec::new(),
            // Set by `put_value`.
            hash: 0,
            size: 0,
        };
        self.put_value(None, value, staged);
        self.waiting.push(Waiting::Create(reply, Ok(Created::New)));
    }

    fn commit(&mut self, commit: StagedCommit, reply: Reply<Committed>) {
        // Borrowed, not copied: a commit that goes through never needs its own copy.
        let id = commit.record.id.as_str();
        let old = match self.take(id) {
            Ok(old) => old,
            Err(e) => return self.waiting.push(Waiting::Commit(reply, Err(e))),
        };
        let found = old.as_ref().map(|o| o.value.record.seq);
        if found != Some(commit.expected_seq) {
            let conflict = StoreError::Conflict {
                id: id.to_owned(),
                expected: commit.expected_seq,
                found,
            };
            self.put_back(id.to_owned(), old);
            return self.waiting.push(Waiting::Commit(reply, Err(conflict)));
        }
        let Some(old) = old else {
            unreachable!("a found seq means an execution");
        };
        match self.prepare_commit(&commit, &old) {
            Ok(prepared) => {
                let woken = self.apply_commit(commit, old, prepared);
                self.waiting
                    .push(Waiting::Commit(reply, Ok(Committed { woken })));
            }
            Err(e) => {
                self.put_back(commit.record.id, Some(old));
                self.waiting.push(Waiting::Commit(reply, Err(e)));
            }
        }
    }

    /// Everything a commit needs that can fail, computed before anything changes.
    fn prepare_commit(
        &mut self,
        commit: &StagedCommit,
        old: &Staged,
    ) -> Result<PreparedCommit, StoreError> {
        let id = &commit.record.id;
        // The operation changes, checked in order against the state the earlier ones
        // leave.
        let mut overlay: HashMap<String, Option<OperationRecord>> = HashMap::new();
        let mut befores: HashMap<String, Option<OperationRecord>> = HashMap::new();
        let mut claimed_tokens: HashMap<String, String> = HashMap::new();
        for change in &commit.operations {
            let op_id = (id.clone(), change.key.clone());
            if !befores.contains_key(&change.key) {
                befores.insert(change.key.clone(), self.operation(&op_id)?);
            }
            let current = match overlay.get(&change.key) {
                Some(current) => current.clone(),
                None => befores[&change.key].clone(),
            };
            store_rules::check_change(id, change, current.as_ref())?;
            let held = current.as_ref().and_then(|op| op.token.clone());
            let after = match &change.action {
                OperationAction::Keep => current,
                OperationAction::Put(op) => {
                    keys::encode_operation(op)?;
                    Some((**op).clone())
                }
                OperationAction::Delete => None,
            };
            if let Some(token) = after.as_ref().and_then(|op| op.token.clone()) {
                // A token the operation holds already is its own: the index changes only
                // with the operations, so it names this one (and no change before this
                // one in the commit could claim it while this operation held it).
                if held.as_ref() != Some(&token) {
                    let owner = match claimed_tokens.get(&token) {
                        Some(key) => Some((id.clone(), key.clone())),
                        None => self.token_owner(&token)?,
                    };
                    if owner.is_some_and(|owner| owner != op_id) {
                        return Err(StoreError::OperationConflict {
                            id: id.clone(),
                            key: change.key.clone(),
                            expected: change.expect,
                        });
                    }
                }
                claimed_tokens.insert(token, change.key.clone());
            }
            overlay.insert(change.key.clone(), after);
        }
        // The history, the new execution value and a chunk, if the tail fills one.
        let history_from = old.value.history_from.max(commit.prune);
        let pruned = if history_from > old.value.history_from {
            let prefix = keys::history_prefix(id);
            let below = keys::history_key(prefix.clone(), history_from);
            let range = self.db.range(prefix.as_slice()..below.as_slice());
            range
                .keys()
                .map(|key| key.map(|k| k.to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(sled_error)?
        } else {
            Vec::new()
        };
        let mut tail = old.value.tail.clone();
        tail.retain(|(number, _)| *number >= history_from);
        // Entries below the prune line would be dropped in the same breath.
        tail.extend(
            commit
                .history
                .iter()
                .filter(|(n, _)| *n >= history_from)
                .cloned(),
        );
        let tail_bytes: usize = tail.iter().map(|(_, entry)| entry.len()).sum();
        let chunk =
            if tail.len() >= keys::HISTORY_CHUNK || tail_bytes >= keys::HISTORY_TAIL_MAX_BYTES {
                let last = tail.last().map_or(0, |(n, _)| *n);
                let chunk = keys::encode_chunk(&tail)?;
                tail.clear();
                Some((last, chunk))
            } else {
                None
            };
        let value = keys::encode_execution(
            &commit.encoded,
            old.value.input.as_deref(),
            history_from,
            &tail,
        )?;
        Ok(PreparedCommit {
            operations: overlay,
            befores,
            history_from,
            pruned,
            tail,
            chunk,
            value,
        })
    }

    /// Stages a checked commit; returns the executions its deliveries woke.
    fn apply_commit(
        &mut self,
        commit: StagedCommit,
        old: Staged,
        prepared: PreparedCommit,
    ) -> Vec<String> {
        // Most commits neither prune nor fill a chunk nor change operations: no history
        // key to build and no copy of the id.
        let prefix = std::cell::LazyCell::new(|| keys::history_prefix(&commit.record.id));
        let PreparedCommit {
            operations,
            befores,
            history_from,
            pruned,
            tail,
            chunk,
            value,
        } = prepared;
        for key in pruned {
            self.batch.remove(key);
        }
        let Staged {
            value: old_value,
            mut chunks,
            ..
        } = old;
        let batch = &mut self.batch;
        chunks.retain(|&last| {
            let keep = last >= history_from;
            if !keep {
                batch.remove(keys::history_key((*prefix).clone(), last));
            }
            keep
        });
        if let Some((last, bytes)) = chunk {
            batch.insert(keys::history_key((*prefix).clone(), last), bytes);
            chunks.push(last);
        }
        drop(prefix);
        let owner = (!operations.is_empty()).then(|| commit.record.id.clone());
        let staged = Staged {
            value: Value::new(keys::Execution {
                record: commit.record,
                input: old_value.input.clone(),
                history_from,
                tail,
            }),
            chunks,
            hash: 0,
            size: 0,
        };
        self.put_value(Some(&old_value.record), value, staged);
        if let Some(owner) = owner {
            for (key, after) in operations {
                let before = befores.get(&key).cloned().flatten();
                if before != after {
                    self.put_operation((owner.clone(), key), before.as_ref(), after);
                }
            }
        }
        let mut woken = Vec::new();
        for delivery in &commit.deliveries {
            // A delivery of a commit that cannot apply (or cannot be read) is skipped.
            if let Ok(Delivered::Applied {
                execution,
                woke: true,
                ..
            }) = self.deliver(delivery)
            {
                woken.push(execution);
            }
        }
        woken
    }

    /// Applies one delivery to the group's state.
    fn deliver(&mut self, delivery: &Delivery) -> Result<Delivered, StoreError> {
        let op_id = match &delivery.to {
            OperationRef::Token(token) => match self.token_owner(token)? {
                Some(owner) => owner,
                None => return Ok(Delivered::Unknown),
            },
            OperationRef::Key { execution, key } => (execution.clone(), key.clone()),
        };
        let op = self.operation(&op_id)?;
        let execution = self.value(&op_id.0)?;
        if let Some(refused) = store_rules::refusal(
            op.as_ref(),
            execution.as_ref().map(|e| &e.record),
            delivery.at,
        ) {
            return Ok(refused);
        }
        let (Some(before), Some(execution)) = (op, execution) else {
            return Ok(Delivered::Unknown);
        };
        let mut op = before.clone();
        let mut record = execution.record.clone();
        let answer = store_rules::apply(delivery, &mut op, &mut record);
        keys::encode_operation(&op)?;
        if record != execution.record {
            let encoded = keys::encode(&record)?;
            let value = keys::encode_execution(
                &encoded,
                execution.input.as_deref(),
                execution.history_from,
                &execution.tail,
            )?;
            let chunks = self
                .staged
                .remove(&op_id.0)
                .map(|staged| staged.chunks)
                .unwrap_or_default();
            let old = execution.record.clone();
            let staged = Staged {
                value: Value::new(keys::Execution {
                    record,
                    ..execution
                }),
                chunks,
                hash: 0,
                size: 0,
            };
            self.put_value(Some(&old), value, staged);
        }
        self.put_operation(op_id, Some(&before), Some(op));
        Ok(answer)
    }

    fn deliver_request(&mut self, delivery: Delivery, reply: Reply<Delivered>) {
        match self.deliver(&delivery) {
            Ok(delivered) => self.waiting.push(Waiting::Deliver(reply, delivered)),
            Err(e) => drop(reply.send(Err(e))),
        }
    }

    /// Stages a layout's description unless the tree or this group has one already.
    fn save_layout(&mut self, layout: u64, description: Vec<u8>, reply: Reply<()>) {
        let key = keys::layout(layout);
        match self.db.contains_key(&key).map_err(sled_error) {
            Ok(true) => drop(reply.send(Ok(()))),
            Ok(false) => {
                // A second description of the same layout in this group is the same
                // bytes (a layout's description never changes): writing it again is
                // harmless.
                self.batch.insert(key, description);
                self.writes = true;
                self.waiting.push(Waiting::SaveLayout(reply));
            }
            Err(e) => drop(reply.send(Err(e))),
        }
    }

    fn delete(&mut self, id: String, reply: Reply<bool>) {
        match self.delete_keys(&id) {
            Ok(existed) => self.waiting.push(Waiting::Delete(reply, existed)),
            Err(e) => drop(reply.send(Err(e))),
        }
    }

    /// Stages the removal of every key of execution `id`; returns whether it existed.
    fn delete_keys(&mut self, id: &str) -> Result<bool, StoreError> {
        let Some(value) = self.value(id)? else {
            return Ok(false);
        };
        let chunk_keys: Vec<Vec<u8>> = self
            .db
            .scan_prefix(keys::history_prefix(id))
            .keys()
            .map(|key| key.map(|k| k.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(sled_error)?;
        let op_prefix = keys::operation_prefix(id);
        let mut op_keys = Vec::new();
        for entry in self.db.scan_prefix(&op_prefix) {
            let (key, _) = entry.map_err(sled_error)?;
            op_keys.push(keys::parse_operation_key(&op_prefix, &key)?);
        }
        op_keys.extend(
            self.operations
                .keys()
                .filter(|(execution, _)| execution == id)
                .map(|(_, key)| key.clone()),
        );
        let mut ops = Vec::new();
        for key in op_keys {
            let op_id = (id.to_owned(), key);
            if let Some(op) = self.operation(&op_id)? {
                ops.push((op_id, op));
            }
        }
        // Nothing below can fail.
        let record = &value.record;
        let batch = &mut self.batch;
        batch.remove(keys::execution(id));
        batch.remove(keys::input(id));
        if let Some(at) = record.wake_at {
            batch.remove(keys::timer(at, id));
        }
        if let Some(key) = keys::unfinished(record.status, id) {
            batch.remove(key);
        }
        if record.status == Status::Running {
            self.running.leave(id, self.list, batch);
        }
        for key in chunk_keys {
            batch.remove(key);
        }
        if let Some(staged) = self.staged.remove(id) {
            for last in staged.chunks {
                self.batch
                    .remove(keys::history_key(keys::history_prefix(id), last));
            }
        }
        for (op_id, op) in ops {
            self.put_operation(op_id, Some(&op), None);
        }
        self.deleted.insert(id.to_owned());
        self.writes = true;
        Ok(true)
    }
}

/// What [`Group::prepare_commit`] computed for a commit.
struct PreparedCommit {
    /// Each changed operation's state after the commit, by key.
    operations: HashMap<String, Option<OperationRecord>>,
    /// Each changed operation's state before the commit, by key.
    befores: HashMap<String, Option<OperationRecord>>,
    history_from: u64,
    /// History chunk keys in the tree below the new prune line.
    pruned: Vec<Vec<u8>>,
    tail: Vec<keys::Entry>,
    /// A chunk to write: its last number and its bytes.
    chunk: Option<(u64, Vec<u8>)>,
    /// The new execution value.
    value: Vec<u8>,
}

/// The record stored under `key`, decoded.
pub(crate) fn load(tree: &sled::Tree, key: &[u8]) -> Result<Option<ExecutionRecord>, StoreError> {
    match tree.get(key).map_err(sled_error)? {
        Some(bytes) => keys::decode_record(key, &bytes).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use durable_core::{Event, HistoryEntry, Status, Timestamp};

    use super::*;

    fn record(id: &str, seq: u64, wake_at: Option<u64>) -> ExecutionRecord {
        ExecutionRecord {
            id: id.into(),
            workflow: "w".into(),
            fingerprint: 7,
            seq,
            status: Status::Running,
            position: None,
            wake_at: wake_at.map(Timestamp::from_millis),
            output: None,
            message: None,
            history_next: 0,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::from_millis(seq),
            parent: None,
            awaiting: Vec::new(),
        }
    }

    fn entry(number: u64) -> HistoryEntry {
        HistoryEntry {
            number,
            at: Timestamp::from_millis(number),
            point: None,
            event: Event::Completed,
        }
    }

    fn commit(
        record: ExecutionRecord,
        expected_seq: u64,
        history: &[u64],
        prune_history_below: u64,
    ) -> (Request, oneshot::Receiver<Result<Committed, StoreError>>) {
        Request::commit(Commit {
            record,
            expected_seq,
            history: history.iter().copied().map(entry).collect(),
            prune_history_below,
            operations: Vec::new(),
            deliveries: Vec::new(),
        })
        .unwrap()
    }

    fn history(db: &sled::Db, id: &str) -> Vec<u64> {
        crate::store::read_history(db, id)
            .unwrap()
            .iter()
            .map(|e| e.number)
            .collect()
    }

    /// The numbers (last entries) of `id`'s history chunks.
    fn chunks(db: &sled::Db, id: &str) -> Vec<u64> {
        let prefix = keys::history_prefix(id);
        db.scan_prefix(&prefix)
            .keys()
            .map(|k| u64::from_be_bytes(k.unwrap()[prefix.len()..].try_into().unwrap()))
            .collect()
    }

    fn input(db: &sled::Db, id: &str) -> Option<Vec<u8>> {
        let key = keys::execution(id);
        let value = db.get(&key).unwrap()?;
        match keys::decode_execution(&key, &value).unwrap().input {
            Some(input) => Some(input),
            None => db.get(keys::input(id)).unwrap().map(|v| v.to_vec()),
        }
    }

    fn timers(db: &sled::Db) -> Vec<(Timestamp, String)> {
        db.scan_prefix(keys::TIMER)
            .keys()
            .map(|k| keys::parse_timer(&k.unwrap()).unwrap())
            .collect()
    }

    /// Applies one group and syncs it, as the two threads do.
    fn write_group(disk: &mut Disk, requests: Vec<Request>) {
        let applied = apply_group(&mut disk.applier, requests);
        disk.syncer.finish(applied);
    }

    /// A database in a fresh directory, which sled removes when it is dropped.
    fn temporary() -> Disk {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("durable-writer-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = sled::Config::new()
            .path(&dir)
            .temporary(true)
            .open()
            .unwrap();
        let log = File::options()
            .read(true)
            .write(true)
            .open(dir.join("db"))
            .unwrap();
        let mark = Mark::open(&dir, &dir.join("db"), 0, false).unwrap();
        Disk::new(
            db,
            log,
            Blobs::new(dir),
            mark,
            (0, Digest::default()),
            Durability::default(),
            Arc::default(),
        )
    }

    #[test]
    fn requests_of_one_group_see_the_ones_accepted_before_them() {
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        let (first, mut created) =
            Request::create(record("a", 0, Some(50)), b"in".to_vec()).unwrap();
        let (twin, mut twin_created) =
            Request::create(record("a", 0, None), b"other".to_vec()).unwrap();
        let (c1, mut r1) = commit(record("a", 1, Some(40)), 0, &[0, 1], 0);
        let (c2, mut r2) = commit(record("a", 2, None), 1, &[2], 0);
        let (stale, mut r_stale) = commit(record("a", 1, None), 0, &[], 0);
        let (missing, mut r_missing) = commit(record("b", 1, None), 0, &[], 0);
        write_group(&mut disk, vec![first, twin, c1, c2, stale, missing]);

        assert_eq!(created.try_recv().unwrap().unwrap(), Created::New);
        assert_eq!(
            twin_created.try_recv().unwrap().unwrap(),
            Created::Existing(Box::new(record("a", 0, Some(50))))
        );
        r1.try_recv().unwrap().unwrap();
        r2.try_recv().unwrap().unwrap();
        assert!(matches!(
            r_stale.try_recv().unwrap(),
            Err(StoreError::Conflict {
                expected: 0,
                found: Some(2),
                ..
            })
        ));
        assert!(matches!(
            r_missing.try_recv().unwrap(),
            Err(StoreError::Conflict { found: None, .. })
        ));
        assert_eq!(
            load(db, &keys::execution("a")).unwrap(),
            Some(record("a", 2, None))
        );
        assert_eq!(input(db, "a").unwrap(), b"in");
        assert_eq!(
            db.get(keys::input("a")).unwrap(),
            None,
            "a small input is inline"
        );
        assert_eq!(history(db, "a"), [0, 1, 2]);
        assert_eq!(timers(db), [], "both timers of the group were taken out");
        assert_eq!(db.get(keys::execution("b")).unwrap(), None);
    }

    #[test]
    fn a_prune_removes_entries_of_the_tree_and_of_its_own_group() {
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        let (create, _) = Request::create(record("a", 0, None), Vec::new()).unwrap();
        let (c1, _) = commit(record("a", 1, None), 0, &[0, 1, 2], 0);
        write_group(&mut disk, vec![create, c1]);
        assert_eq!(history(db, "a"), [0, 1, 2]);

        let (c2, mut r2) = commit(record("a", 2, Some(9)), 1, &[3, 4], 0);
        let (c3, mut r3) = commit(record("a", 3, Some(9)), 2, &[5, 6], 4);
        write_group(&mut disk, vec![c2, c3]);
        r2.try_recv().unwrap().unwrap();
        r3.try_recv().unwrap().unwrap();
        assert_eq!(history(db, "a"), [4, 5, 6]);
        assert_eq!(timers(db), [(Timestamp::from_millis(9), "a".to_owned())]);

        let (c4, _) = commit(record("a", 4, None), 3, &[7, 8], 8);
        write_group(&mut disk, vec![c4]);
        assert_eq!(
            history(db, "a"),
            [8],
            "entries below the line are not written"
        );
    }

    #[test]
    fn a_corrupt_record_refuses_its_request_only() {
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        db.insert(keys::execution("bad"), b"garbage".as_slice())
            .unwrap();
        let (bad, mut r_bad) = commit(record("bad", 1, None), 0, &[], 0);
        let (bad_create, mut r_bad_create) =
            Request::create(record("bad", 0, None), Vec::new()).unwrap();
        let (good, mut r_good) = Request::create(record("good", 0, None), Vec::new()).unwrap();
        write_group(&mut disk, vec![bad, bad_create, good]);
        assert!(matches!(
            r_bad.try_recv().unwrap(),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            r_bad_create.try_recv().unwrap(),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(r_good.try_recv().unwrap().unwrap(), Created::New);
    }

    #[test]
    fn history_moves_into_chunks_that_a_prune_drops_whole() {
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        let (create, _) = Request::create(record("a", 0, None), Vec::new()).unwrap();
        write_group(&mut disk, vec![create]);
        let chunk = keys::HISTORY_CHUNK as u64;
        let mut seq = 0;
        let mut next = 0;
        let mut step = |count: u64, prune: u64| {
            let numbers: Vec<u64> = (next..next + count).collect();
            let (c, mut r) = commit(record("a", seq + 1, None), seq, &numbers, prune);
            write_group(&mut disk, vec![c]);
            r.try_recv().unwrap().unwrap();
            seq += 1;
            next += count;
        };
        step(chunk - 1, 0);
        assert_eq!(chunks(db, "a"), [0u64; 0], "the tail holds them");
        step(2, 0);
        assert_eq!(chunks(db, "a"), [chunk], "a full tail became a chunk");
        assert_eq!(history(db, "a"), (0..=chunk).collect::<Vec<_>>());
        step(1, 3);
        assert_eq!(
            chunks(db, "a"),
            [chunk],
            "a chunk partly above the line stays"
        );
        assert_eq!(history(db, "a"), (3..=chunk + 1).collect::<Vec<_>>());
        step(1, chunk + 1);
        assert_eq!(
            chunks(db, "a"),
            [0u64; 0],
            "a chunk wholly below the line is gone"
        );
        assert_eq!(history(db, "a"), [chunk + 1, chunk + 2]);
    }

    #[test]
    fn a_large_history_entry_moves_into_a_chunk_at_once() {
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        let (create, _) = Request::create(record("a", 0, None), Vec::new()).unwrap();
        let large = HistoryEntry {
            event: Event::Failed {
                message: "x".repeat(keys::HISTORY_TAIL_MAX_BYTES),
            },
            ..entry(0)
        };
        let (c, mut r) = Request::commit(Commit {
            record: record("a", 1, None),
            expected_seq: 0,
            history: vec![large.clone()],
            prune_history_below: 0,
            operations: Vec::new(),
            deliveries: Vec::new(),
        })
        .unwrap();
        write_group(&mut disk, vec![create, c]);
        r.try_recv().unwrap().unwrap();
        assert_eq!(chunks(db, "a"), [0]);
        assert_eq!(crate::store::read_history(db, "a").unwrap(), [large]);
    }

    #[test]
    fn a_large_input_has_its_own_key() {
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        let large = vec![7; keys::INLINE_INPUT_MAX + 1];
        let (create, _) = Request::create(record("a", 0, None), large.clone()).unwrap();
        write_group(&mut disk, vec![create]);
        let (c, _) = commit(record("a", 1, Some(5)), 0, &[0], 0);
        write_group(&mut disk, vec![c]);
        assert_eq!(input(db, "a").unwrap(), large);
        assert_eq!(db.get(keys::input("a")).unwrap().unwrap(), large.as_slice());
    }

    /// Issue 7, item 9: sled writes an item of over about 128 KiB to a file of its own
    /// and does not fsync it; the group's sync does, before answering.
    #[test]
    fn a_value_too_large_for_sleds_log_is_fsynced_before_the_answer() {
        let mut disk = temporary();
        let large = vec![7; 200 * 1024];
        let (create, mut created) = Request::create(record("a", 0, None), large.clone()).unwrap();
        write_group(&mut disk, vec![create]);
        assert_eq!(created.try_recv().unwrap().unwrap(), Created::New);
        let files: std::collections::HashMap<_, _> = std::fs::read_dir(disk.syncer.blobs.dir())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name(), e.metadata().unwrap().len())
            })
            .collect();
        assert!(!files.is_empty(), "sled wrote no blob file");
        assert_eq!(&files, disk.syncer.blobs.synced());
        assert_eq!(input(&disk.applier.db, "a").unwrap(), large);
    }

    #[test]
    fn values_of_layout_1_are_read_and_rewritten() {
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        // Layout 1: a bare record envelope, the input under `i/`, one entry per `h/` key.
        db.insert(
            keys::execution("a"),
            keys::encode_v1(&record("a", 1, Some(9))),
        )
        .unwrap();
        db.insert(keys::input("a"), b"old input".as_slice())
            .unwrap();
        db.insert(keys::timer(Timestamp::from_millis(9), "a"), b"".as_slice())
            .unwrap();
        for number in [1, 2] {
            let key = keys::history_key(keys::history_prefix("a"), number);
            db.insert(key, keys::encode(&entry(number)).unwrap())
                .unwrap();
        }
        assert_eq!(history(db, "a"), [1, 2]);
        assert_eq!(input(db, "a").unwrap(), b"old input");

        let (c, mut r) = commit(record("a", 2, None), 1, &[3], 2);
        write_group(&mut disk, vec![c]);
        r.try_recv().unwrap().unwrap();
        assert_eq!(
            load(db, &keys::execution("a")).unwrap(),
            Some(record("a", 2, None))
        );
        assert_eq!(history(db, "a"), [2, 3]);
        assert_eq!(input(db, "a").unwrap(), b"old input");
        assert_eq!(timers(db), []);
    }

    /// The writer keeps recently written executions in memory between groups (see
    /// `recent`): what it keeps and the digest it keeps up to date match the tree after
    /// every group, and it forgets an execution that is deleted.
    #[test]
    fn recent_executions_are_kept_as_the_tree_holds_them() {
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        let check = |disk: &Disk, kept: &[&str]| {
            assert_eq!(disk.applier.recent.len(), kept.len());
            for id in kept {
                let key = keys::execution(id);
                let bytes = db.get(&key).unwrap().unwrap();
                let entry = disk.applier.recent.get(id).unwrap();
                let stored = keys::decode_execution(&key, &bytes).unwrap();
                assert_eq!(entry.value.record, stored.record);
                assert_eq!(entry.value.input, stored.input);
                assert_eq!(entry.value.history_from, stored.history_from);
                assert_eq!(entry.value.tail, stored.tail);
                assert_eq!(entry.hash, crate::digest::entry_hash(&key, &bytes));
            }
            assert_eq!(crate::digest::scan(db).unwrap().0, disk.applier.digest);
        };
        let (a, _) = Request::create(record("a", 0, None), b"in".to_vec()).unwrap();
        let (b, _) = Request::create(record("b", 0, None), Vec::new()).unwrap();
        write_group(&mut disk, vec![a, b]);
        check(&disk, &["a", "b"]);
        // Commits of kept executions, one of them refused: its execution stays kept.
        let (c1, mut r1) = commit(record("a", 1, None), 0, &[0, 1], 0);
        let (stale, mut r_stale) = commit(record("b", 1, None), 5, &[], 0);
        write_group(&mut disk, vec![c1, stale]);
        r1.try_recv().unwrap().unwrap();
        assert!(matches!(
            r_stale.try_recv().unwrap(),
            Err(StoreError::Conflict { .. })
        ));
        check(&disk, &["a", "b"]);
        let mut suspended = record("a", 2, Some(9));
        suspended.status = Status::Suspended;
        let (c2, mut r2) = commit(suspended, 1, &[2], 0);
        write_group(&mut disk, vec![c2]);
        r2.try_recv().unwrap().unwrap();
        check(&disk, &["a", "b"]);
        let chunk = keys::HISTORY_CHUNK as u64;
        let numbers: Vec<u64> = (3..3 + chunk).collect();
        let (c3, mut r3) = commit(record("a", 3, None), 2, &numbers, 1);
        write_group(&mut disk, vec![c3]);
        r3.try_recv().unwrap().unwrap();
        check(&disk, &["a", "b"]);
        assert_eq!(history(db, "a"), (1..3 + chunk).collect::<Vec<_>>());
        assert_eq!(input(db, "a").unwrap(), b"in");
        let (delete, _) = Request::delete("b");
        write_group(&mut disk, vec![delete]);
        check(&disk, &["a"]);
        assert_eq!(db.get(keys::execution("b")).unwrap(), None);
    }

    /// The digest the writer keeps equals a scan of the tree after each group, through the
    /// timer and unfinished index changes: status and wake-up changes, two commits of one
    /// execution in a group, a refused commit, and a delete and create again of one id in
    /// a group (whose index entries the tree holds until the group applies).
    #[test]
    fn index_changes_keep_the_digest() {
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        let check = |disk: &Disk, step: &str| {
            assert_eq!(
                crate::digest::scan(db).unwrap().0,
                disk.applier.digest,
                "{step}"
            );
        };
        let status = |mut record: ExecutionRecord, status| {
            record.status = status;
            record
        };
        let (a, _) = Request::create(record("a", 0, None), Vec::new()).unwrap();
        let (b, _) = Request::create(record("b", 0, None), Vec::new()).unwrap();
        write_group(&mut disk, vec![a, b]);
        check(&disk, "created");
        // Suspended until a time: a timer entry, and the running entry becomes suspended.
        let (c1, _) = commit(
            status(record("a", 1, Some(5)), Status::Suspended),
            0,
            &[],
            0,
        );
        write_group(&mut disk, vec![c1]);
        check(&disk, "suspended");
        // Woken, then suspended again at another time, in one group: the second commit
        // finds the first one's value staged, not the tree's.
        let (c2, _) = commit(record("a", 2, None), 1, &[], 0);
        let (c3, _) = commit(
            status(record("a", 3, Some(7)), Status::Suspended),
            2,
            &[],
            0,
        );
        write_group(&mut disk, vec![c2, c3]);
        check(&disk, "woken and suspended again");
        assert_eq!(timers(db), [(Timestamp::from_millis(7), "a".to_owned())]);
        // A refused commit puts its execution back; the next one of the group goes on.
        let (stale, _) = commit(record("a", 9, None), 7, &[], 0);
        let (c4, _) = commit(status(record("a", 4, None), Status::Completed), 3, &[], 0);
        write_group(&mut disk, vec![stale, c4]);
        check(&disk, "refused, then completed");
        assert_eq!(timers(db), []);
        // Deleted and created again in one group, with the same index entries: the tree
        // holds them until the group applies, and the digest must count them once.
        let (delete, _) = Request::delete("b");
        let (again, _) = Request::create(record("b", 0, None), Vec::new()).unwrap();
        write_group(&mut disk, vec![delete, again]);
        check(&disk, "deleted and created again");
        // Parked with a wake-up time, then deleted and created again with another one.
        let (c5, _) = commit(status(record("b", 1, Some(3)), Status::Parked), 0, &[], 0);
        write_group(&mut disk, vec![c5]);
        check(&disk, "parked");
        let (delete, _) = Request::delete("b");
        let (again, _) = Request::create(record("b", 0, Some(4)), Vec::new()).unwrap();
        write_group(&mut disk, vec![delete, again]);
        check(&disk, "deleted and created again, waiting");
        assert_eq!(timers(db), [(Timestamp::from_millis(4), "b".to_owned())]);
    }

    /// The running index follows the statuses through random groups of creations, status
    /// changes (several of one execution in a group among them) and deletions, with the
    /// lists' maximum never reached and reached all the time: after each group every
    /// running execution is listed or has its own entry (never both, and nothing else
    /// is), the lists hold at most twice as many ids as they index and at most the
    /// maximum, and the digest is the tree's; an index loaded from the tree (as an open
    /// does) lists the same executions.
    #[test]
    fn running_index_follows_the_statuses() {
        for max_listed in [crate::running::MAX_LISTED, 6] {
            running_index_follows_the_statuses_with(max_listed);
        }
    }

    fn running_index_follows_the_statuses_with(max_listed: usize) {
        use std::collections::BTreeMap;
        type Check = Box<dyn FnOnce()>;
        fn accepted<T: 'static>(mut answer: oneshot::Receiver<Result<T, StoreError>>) -> Check {
            Box::new(move || {
                answer.try_recv().expect("answered").expect("accepted");
            })
        }
        // The disk's index is made on this thread.
        crate::running::TEST_MAX_LISTED.with(|max| max.set(max_listed));
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        let mut rng = fastrand::Rng::with_seed(8);
        let mut moved = 0;
        // The model: each execution's seq and status.
        let mut model: BTreeMap<String, (u64, Status)> = BTreeMap::new();
        let statuses = [
            Status::Running,
            Status::Suspended,
            Status::Parked,
            Status::Completed,
            Status::Running,
        ];
        for round in 0..300 {
            let mut requests = Vec::new();
            let mut answers = Vec::new();
            for _ in 0..rng.usize(1..12) {
                let id = format!("x{}", rng.u8(0..40));
                match model.get(&id).copied() {
                    None => {
                        let (create, answer) =
                            Request::create(record(&id, 0, None), Vec::new()).unwrap();
                        requests.push(create);
                        answers.push(accepted(answer));
                        model.insert(id, (0, Status::Running));
                    }
                    Some(_) if rng.u8(0..8) == 0 => {
                        let (delete, answer) = Request::delete(&id);
                        requests.push(delete);
                        answers.push(accepted(answer));
                        model.remove(&id);
                    }
                    Some((seq, _)) => {
                        let status = statuses[rng.usize(0..statuses.len())];
                        let mut next = record(&id, seq + 1, None);
                        next.status = status;
                        let (c, answer) = commit(next, seq, &[], 0);
                        requests.push(c);
                        answers.push(accepted(answer));
                        model.insert(id, (seq + 1, status));
                    }
                }
            }
            write_group(&mut disk, requests);
            answers.into_iter().for_each(|check| check());
            assert_eq!(
                crate::digest::scan(db).unwrap().0,
                disk.applier.digest,
                "round {round}"
            );
            let running: Vec<String> = model
                .iter()
                .filter(|(_, (_, status))| *status == Status::Running)
                .map(|(id, _)| id.clone())
                .collect();
            let own: Vec<String> = db
                .scan_prefix(keys::RUNNING_ENTRY)
                .keys()
                .map(|k| keys::parse_unfinished(keys::RUNNING_ENTRY, &k.unwrap()).unwrap())
                .collect();
            let listed = disk.applier.running.listed();
            moved = moved.max(own.len());
            let mut both: Vec<String> = own.iter().chain(&listed).cloned().collect();
            both.sort();
            assert_eq!(
                both, running,
                "round {round}: listed {listed:?}, own {own:?}"
            );
            if let Err(wrong) = disk.applier.running.check(db) {
                panic!("round {round}: {wrong}");
            }
            if round % 50 == 49 {
                let loaded = RunningIndex::load(db).unwrap();
                assert_eq!(loaded.listed(), listed, "loaded, round {round}");
            }
        }
        assert_eq!(
            moved > 0,
            max_listed < crate::running::MAX_LISTED,
            "executions moved to their own entries: {moved}"
        );
    }

    /// Operations kept in `recent` match the tree, their token index entries are written
    /// once, and the digest stays that of the tree through a delivery, a settled commit
    /// and a delete.
    #[test]
    fn recent_operations_and_tokens_follow_the_tree() {
        use durable_core::{Expect, OperationAction, OperationKind, OperationState, Settlement};
        let mut disk = temporary();
        let db = &disk.applier.db.clone();
        let check = |disk: &Disk| {
            assert_eq!(crate::digest::scan(db).unwrap().0, disk.applier.digest);
            let key = keys::operation("a", "cb");
            let stored = db.get(&key).unwrap();
            match (stored, disk.applier.recent.operation(&key)) {
                (Some(bytes), Some(kept)) => {
                    assert_eq!(kept.op, keys::decode_operation(&key, &bytes).unwrap());
                    assert_eq!(kept.hash, crate::digest::entry_hash(&key, &bytes));
                }
                (None, None) => {}
                (stored, kept) => panic!("tree {stored:?}, kept {kept:?}"),
            }
        };
        let op = OperationRecord {
            execution: "a".into(),
            key: "cb".into(),
            kind: OperationKind::Callback {
                timeout_at: None,
                heartbeat_timeout_ms: None,
            },
            name: "approval".into(),
            token: Some("cb_token".into()),
            state: OperationState::Pending,
            heartbeat_at: None,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
        };
        let (create, _) = Request::create(record("a", 0, None), Vec::new()).unwrap();
        let (put, mut r_put) = Request::commit(Commit {
            record: record("a", 1, None),
            expected_seq: 0,
            history: Vec::new(),
            prune_history_below: 0,
            operations: vec![OperationChange {
                key: "cb".into(),
                expect: Expect::Absent,
                action: OperationAction::Put(Box::new(op.clone())),
            }],
            deliveries: Vec::new(),
        })
        .unwrap();
        write_group(&mut disk, vec![create, put]);
        r_put.try_recv().unwrap().unwrap();
        check(&disk);
        let token = db.get(keys::token("cb_token")).unwrap().unwrap();
        let (deliver, mut r_deliver) = Request::deliver(Delivery {
            to: OperationRef::Token("cb_token".into()),
            settlement: Settlement::Settle(OperationState::Succeeded {
                payload: b"true".to_vec(),
            }),
            at: Timestamp::from_millis(5),
        })
        .unwrap();
        write_group(&mut disk, vec![deliver]);
        assert!(matches!(
            r_deliver.try_recv().unwrap().unwrap(),
            Delivered::Applied { .. }
        ));
        check(&disk);
        assert_eq!(db.get(keys::token("cb_token")).unwrap().unwrap(), token);
        // The token is the operation's own: a commit that keeps it needs no lookup.
        let settled = disk
            .applier
            .recent
            .operation(&keys::operation("a", "cb"))
            .unwrap();
        let (keep, mut r_keep) = Request::commit(Commit {
            record: record("a", 2, None),
            expected_seq: 1,
            history: Vec::new(),
            prune_history_below: 0,
            operations: vec![OperationChange {
                key: "cb".into(),
                expect: Expect::Settled,
                action: OperationAction::Put(Box::new(OperationRecord {
                    updated_at: Timestamp::from_millis(6),
                    ..settled.op.clone()
                })),
            }],
            deliveries: Vec::new(),
        })
        .unwrap();
        write_group(&mut disk, vec![keep]);
        r_keep.try_recv().unwrap().unwrap();
        check(&disk);
        // Another operation cannot take the token.
        let (steal, mut r_steal) = Request::commit(Commit {
            record: record("a", 3, None),
            expected_seq: 2,
            history: Vec::new(),
            prune_history_below: 0,
            operations: vec![OperationChange {
                key: "other".into(),
                expect: Expect::Absent,
                action: OperationAction::Put(Box::new(OperationRecord {
                    key: "other".into(),
                    ..op.clone()
                })),
            }],
            deliveries: Vec::new(),
        })
        .unwrap();
        write_group(&mut disk, vec![steal]);
        assert!(matches!(
            r_steal.try_recv().unwrap(),
            Err(StoreError::OperationConflict { .. })
        ));
        let (delete, _) = Request::delete("a");
        write_group(&mut disk, vec![delete]);
        check(&disk);
        assert_eq!(db.get(keys::token("cb_token")).unwrap(), None);
    }

    #[test]
    fn answers_and_recent_wait_for_the_sync() {
        let mut disk = temporary();
        let (create, _) = Request::create(record("a", 0, None), Vec::new()).unwrap();
        write_group(&mut disk, vec![create]);
        assert_eq!(disk.applier.recent.get("a").unwrap().value.record.seq, 0);

        let (c1, mut r1) = commit(record("a", 1, None), 0, &[0], 0);
        let (stale, mut r_stale) = commit(record("a", 1, None), 0, &[], 0);
        let applied = apply_group(&mut disk.applier, vec![c1, stale]);
        // Applied, not synced.
        assert_eq!(disk.applier.recent.get("a").unwrap().value.record.seq, 0);
        assert!(r1.try_recv().is_err(), "answered before its sync");
        assert!(
            r_stale.try_recv().is_err(),
            "a refusal waits for the sync too"
        );

        disk.syncer.finish(applied);
        r1.try_recv().unwrap().unwrap();
        assert!(matches!(
            r_stale.try_recv().unwrap(),
            Err(StoreError::Conflict {
                expected: 0,
                found: Some(1),
                ..
            })
        ));
        assert_eq!(disk.applier.recent.get("a").unwrap().value.record.seq, 1);
    }

    #[test]
    fn reads_wait_for_the_groups_that_wrote_what_they_read() {
        let mut disk = temporary();
        let visibility = disk.applier.visibility.clone();
        let (create, _) = Request::create(record("a", 0, None), Vec::new()).unwrap();
        let applied = apply_group(&mut disk.applier, vec![create]);
        let number = applied.number.unwrap();
        let execution = keys::execution("a");
        let other = keys::execution("b");
        let prefix = keys::EXECUTION.to_vec();
        assert_eq!(
            visibility.pending_group(std::slice::from_ref(&execution), &[]),
            Some(number)
        );
        assert_eq!(
            visibility.pending_group(&[], std::slice::from_ref(&prefix)),
            Some(number)
        );
        assert_eq!(
            visibility.pending_group(std::slice::from_ref(&other), &[]),
            None
        );
        assert_eq!(
            visibility.pending_group(&[], &[keys::operation_prefix("a")]),
            None
        );

        disk.syncer.finish(applied);
        assert_eq!(visibility.synced(), number);
        assert_eq!(visibility.pending_group(&[execution], &[prefix]), None);
        // Nothing is pending: neither returns before it may.
        visibility.wait_durable();
        visibility.wait_reads(&[other], &[]);
    }

    #[test]
    fn a_read_waiting_for_a_sync_goes_on_once_its_group_is_durable() {
        let mut disk = temporary();
        let visibility = disk.applier.visibility.clone();
        let (create, _) = Request::create(record("a", 0, None), Vec::new()).unwrap();
        let applied = apply_group(&mut disk.applier, vec![create]);
        let (done, returned) = mpsc::channel();
        let reader = {
            let visibility = visibility.clone();
            std::thread::spawn(move || {
                visibility.wait_reads(&[keys::execution("a")], &[]);
                done.send(()).unwrap();
            })
        };
        // Until the reader waits: a reader that comes after the sync needs no wake-up.
        while visibility.waiters() == 0 {
            assert!(returned.try_recv().is_err(), "went on before the sync");
            std::thread::yield_now();
        }
        disk.syncer.finish(applied);
        returned
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the sync wakes the waiting reader");
        reader.join().unwrap();
        assert_eq!(visibility.waiters(), 0);
    }

    #[test]
    fn after_a_failed_sync_later_groups_fail_and_reads_stop_waiting() {
        let mut disk = temporary();
        let visibility = disk.applier.visibility.clone();
        let (create, mut created) = Request::create(record("a", 0, None), Vec::new()).unwrap();
        let first = apply_group(&mut disk.applier, vec![create]);
        // As if its sync had failed.
        disk.syncer.broken = Some(StoreError::backend(io::Error::other("disk gone")));
        disk.syncer.finish(first);
        let (twin, mut twin_created) = Request::create(record("a", 0, None), Vec::new()).unwrap();
        let second = apply_group(&mut disk.applier, vec![twin]);
        assert_eq!(second.number, None, "a refusal writes nothing");
        disk.syncer.finish(second);

        assert!(matches!(
            created.try_recv().unwrap(),
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            twin_created.try_recv().unwrap(),
            Err(StoreError::Backend(_))
        ));
        assert!(disk.applier.failed.load(Ordering::SeqCst));
        assert_eq!(disk.applier.recent.len(), 0);
        // The group is not synced, yet a read of what it wrote returns.
        assert_eq!(visibility.synced(), 0);
        visibility.wait_reads(&[keys::execution("a")], &[]);
        visibility.wait_durable();
    }
}
