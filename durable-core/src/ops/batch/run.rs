//! Running a batch at its durable point: start items up to the limit, gather what
//! settles, commit it in groups, suspend while only children and retry delays are
//! pending, and complete as the policy says.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::task::Poll;

use futures_util::future::{select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use super::item::{ChildItem, ItemBody, ItemWork};
use super::policy::Completion;
use super::result::{BatchItem, BatchResult, ItemError, ItemStatus};
use super::{Map, MapBody};
use crate::codec::{decode_value, Codec};
use crate::error::StepError;
use crate::execution::{Interrupt, PointRun, Progress};
use crate::failure::Failure;
use crate::ops::cancel::{cancel_tree, Cancelled};
use crate::ops::child::{child_id, start_child, ChildError};
use crate::ops::step::StepContext;
use crate::panic::panic_message;
use crate::record::{
    BatchState, CompletionReason, Event, Expect, InFlight, OperationAction, OperationChange,
    OperationKind, OperationRecord, OperationState, ParentLink, PointState, Status,
};
use crate::retry::RetryPolicy;
use crate::time::Timestamp;

/// How many item records are read per store call when the result is gathered.
const PAGE: usize = 1024;

/// How a failed item is stored (`OperationState::Failed`'s error, a value envelope): its
/// error, and a child's output when the child workflow returned `Err`.
#[derive(Serialize, Deserialize)]
struct StoredFailure {
    error: ItemError,
    output: Option<Vec<u8>>,
}

/// An attempt of a step item that has ended.
struct Finished<T> {
    index: u64,
    result: Result<T, StepError>,
}

type Running<'a, T> = FuturesUnordered<Pin<Box<dyn Future<Output = Finished<T>> + Send + 'a>>>;

/// The items, fetched by index in increasing order (the iterator is built again on every
/// activation, from the frame, so the items in flight are fetched from it again).
struct Cursor<It> {
    iter: It,
    pos: u64,
}

impl<It: Iterator> Cursor<It> {
    fn fetch(&mut self, index: u64) -> Result<It::Item, Interrupt> {
        let skip = index
            .checked_sub(self.pos)
            .and_then(|n| usize::try_from(n).ok());
        let item = skip.and_then(|n| self.iter.nth(n));
        self.pos = index + 1;
        item.ok_or_else(|| {
            Interrupt::Failed(format!(
                "a batch's items changed while it ran: item {index} is missing"
            ))
        })
    }
}

/// Everything about the batch that stays the same while it runs.
struct Setup<'b, B> {
    name: String,
    body: &'b B,
    completion: Completion,
    retry: RetryPolicy,
    timeout: Option<std::time::Duration>,
    max_in_flight: usize,
    codec: Codec,
}

/// What the batch has gathered since its last commit.
struct Pending<T> {
    changes: Vec<OperationChange>,
    events: Vec<Event>,
    /// Child items whose operation records the next commit writes; created after it.
    to_create: Vec<(u64, ChildItem<T>)>,
}

impl<T> Pending<T> {
    fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.events.is_empty()
    }
}

/// The value of an item of a batch whose body is `B` over items `I`.
type Value<B, I> = <<B as MapBody<I>>::Item as ItemBody>::Value;

pub(super) async fn run_batch<It, B>(
    map: Map<It, B>,
    run: PointRun,
) -> Result<BatchResult<Value<B, It::Item>>, Interrupt>
where
    It: ExactSizeIterator + Send,
    It::Item: Clone + Send,
    B: MapBody<It::Item>,
{
    let Map {
        name,
        items,
        body,
        max_in_flight,
        completion,
        retry,
        timeout,
    } = map;
    let setup = Setup {
        name,
        body: &body,
        completion,
        retry,
        timeout,
        max_in_flight,
        codec: run.codec(),
    };
    let total = items.len() as u64;
    let mut state = match run.resumed_state() {
        None => {
            let state = BatchState {
                key: batch_key(run.seq()),
                total,
                next: 0,
                in_flight: Vec::new(),
                succeeded: 0,
                failed: 0,
                done: None,
            };
            let started = Event::BatchStarted {
                name: setup.name.clone(),
                items: total,
            };
            run.commit_progress(Progress {
                events: vec![started],
                ..Progress::to(PointState::Batch(state.clone()))
            })
            .await?;
            state
        }
        Some(PointState::Batch(state)) if state.total == total => state.clone(),
        Some(PointState::Batch(state)) => {
            return Err(Interrupt::Failed(format!(
                "batch `{}` has {total} items now, {} when it began: its items must be the same whenever it resumes",
                setup.name, state.total
            )))
        }
        Some(other) => {
            return Err(Interrupt::Failed(format!(
                "batch `{}` resumed in a state that is not a batch's: {other:?}",
                setup.name
            )))
        }
    };
    if state.done.is_none() {
        state.done = setup.completion.verdict(&state);
    }
    if state.done.is_some() {
        return finish(run, &setup, state, Pending::new()).await;
    }

    let mut cursor = Cursor {
        iter: items,
        pos: 0,
    };
    let mut held: BTreeMap<u64, It::Item> = BTreeMap::new();
    let mut running: Running<'_, Value<B, It::Item>> = FuturesUnordered::new();
    let mut finished: Vec<Finished<Value<B, It::Item>>> = Vec::new();
    let mut pending = Pending::new();

    // The items in flight when the batch was last committed: step items run again (or
    // wait for their retry), children not known to exist are created (again).
    for slot in state.in_flight.clone() {
        if slot.attempt == 0 && slot.created {
            continue;
        }
        let item = cursor.fetch(slot.index)?;
        if slot.attempt == 0 {
            match work(&setup, item) {
                Ok(ItemWork::Child(child)) => pending.to_create.push((slot.index, child)),
                _ => return Err(changed_kind(&setup, slot.index)),
            }
            continue;
        }
        if slot.retry_at.is_none() {
            start_attempt(&run, &setup, &state, &mut running, item.clone(), &slot)?;
        }
        held.insert(slot.index, item);
    }
    create_children(&run, &setup, &mut state, &mut pending).await?;

    loop {
        apply(
            &run,
            &setup,
            &mut state,
            &mut held,
            &mut finished,
            &mut pending,
        )?;
        if !pending.is_empty() {
            let progress = Progress {
                operations: std::mem::take(&mut pending.changes),
                events: std::mem::take(&mut pending.events),
                ..Progress::to(PointState::Batch(state.clone()))
            };
            commit_polling(&run, progress, &mut running, &mut finished).await?;
            create_children(&run, &setup, &mut state, &mut pending).await?;
            if run.ctx().should_yield() {
                return Err(Interrupt::Yielded);
            }
            continue;
        }
        // The state is as committed: the policy decides on it.
        if let Some(reason) = setup.completion.verdict(&state) {
            drop(running);
            state.done = Some(reason);
            return finish(run, &setup, state, pending).await;
        }
        let now = run.now();
        // New items, up to the limit.
        while state.in_flight.len() < setup.max_in_flight && state.next < state.total {
            let index = state.next;
            let item = cursor.fetch(index)?;
            state.next += 1;
            match work(&setup, item.clone()) {
                Ok(ItemWork::Child(child)) => {
                    let slot = InFlight {
                        index,
                        attempt: 0,
                        since: now,
                        retry_at: None,
                        created: false,
                    };
                    let key = state.item_key(index);
                    let record = item_record(
                        &run,
                        &setup,
                        &state,
                        index,
                        Some((child_id(run.execution_id(), &key), child.workflow)),
                        OperationState::Pending,
                    );
                    pending.changes.push(put(record, Expect::Absent));
                    pending.to_create.push((index, child));
                    state.in_flight.push(slot);
                }
                Ok(ItemWork::Step(future)) => {
                    let slot = first_attempt(index, now);
                    running.push(attempt_future(&run, &setup, &state, future, &slot));
                    state.in_flight.push(slot);
                    held.insert(index, item);
                }
                Err(message) => {
                    // The body panicked before giving its work: a failed step attempt.
                    let slot = first_attempt(index, now);
                    running.push(Box::pin(std::future::ready(Finished {
                        index,
                        result: Err(StepError::Panicked {
                            message,
                            attempts: 1,
                        }),
                    })));
                    state.in_flight.push(slot);
                    held.insert(index, item);
                }
            }
        }
        // Retries that are due.
        let due: Vec<InFlight> = state
            .in_flight
            .iter_mut()
            .filter(|s| s.retry_at.is_some_and(|at| at <= now))
            .map(|slot| {
                slot.retry_at = None;
                slot.clone()
            })
            .collect();
        for slot in due {
            let item = held.get(&slot.index).cloned().ok_or_else(|| {
                Interrupt::Failed(format!(
                    "batch `{}`: item {} waits for a retry but is not held",
                    setup.name, slot.index
                ))
            })?;
            start_attempt(&run, &setup, &state, &mut running, item, &slot)?;
        }
        if !pending.is_empty() {
            continue;
        }
        if running.is_empty() {
            observe_children(&run, &setup, &mut state, &mut pending).await?;
            if !pending.is_empty() {
                continue;
            }
            return Err(suspend(&run, &setup, &state).await);
        }
        let next_retry = state.in_flight.iter().filter_map(|s| s.retry_at).min();
        match next_retry {
            None => {
                if let Some(done) = running.next().await {
                    finished.push(done);
                }
            }
            Some(at) => {
                let timer = run.sleep_until(at);
                if let Either::Left((Some(done), _)) = select(running.next(), timer).await {
                    finished.push(done);
                }
            }
        }
        while let Some(Some(done)) = running.next().now_or_never() {
            finished.push(done);
        }
    }
}

impl<T> Pending<T> {
    fn new() -> Self {
        Pending {
            changes: Vec::new(),
            events: Vec::new(),
            to_create: Vec::new(),
        }
    }
}

/// The batch key of a batch entered afresh after the commit with sequence number `seq`
/// (unique within the execution, stable across a crash before its first commit, as a
/// call's key is): `m`, the number of hex digits of `seq` less one, then `seq` in hex.
fn batch_key(seq: u64) -> String {
    let digits = format!("{seq:x}");
    format!("m{:x}{digits}", digits.len() - 1)
}

fn first_attempt(index: u64, now: Timestamp) -> InFlight {
    InFlight {
        index,
        attempt: 1,
        since: now,
        retry_at: None,
        created: false,
    }
}

fn changed_kind<B>(setup: &Setup<'_, B>, index: u64) -> Interrupt {
    Interrupt::Failed(format!(
        "batch `{}`: item {index} was a child workflow and its body now gives a step",
        setup.name
    ))
}

/// The body's work for `item`, or the message of its panic.
fn work<'w, I, B>(setup: &Setup<'_, B>, item: I) -> Result<ItemWork<'w, Value<B, I>>, String>
where
    B: MapBody<I>,
    B::Item: 'w,
{
    std::panic::catch_unwind(AssertUnwindSafe(|| setup.body.call(item).into_work()))
        .map_err(|panic| panic_message(&*panic))
}

/// Starts attempt `slot.attempt` of step item `slot.index`.
fn start_attempt<'w, I, B>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &BatchState,
    running: &mut Running<'w, Value<B, I>>,
    item: I,
    slot: &InFlight,
) -> Result<(), Interrupt>
where
    B: MapBody<I>,
    B::Item: 'w,
{
    match work(setup, item) {
        Ok(ItemWork::Step(future)) => {
            running.push(attempt_future(run, setup, state, future, slot));
            Ok(())
        }
        Ok(ItemWork::Child(_)) => Err(Interrupt::Failed(format!(
            "batch `{}`: item {} was a step and its body now gives a child workflow",
            setup.name, slot.index
        ))),
        Err(message) => {
            let (index, attempts) = (slot.index, slot.attempt);
            running.push(Box::pin(std::future::ready(Finished {
                index,
                result: Err(StepError::Panicked { message, attempts }),
            })));
            Ok(())
        }
    }
}

/// One attempt of a step item: its future run with the item's step context, a panic
/// caught, the timeout applied.
fn attempt_future<'w, T: Send + 'w, B>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &BatchState,
    future: Pin<Box<dyn Future<Output = Result<T, Failure>> + Send + 'w>>,
    slot: &InFlight,
) -> Pin<Box<dyn Future<Output = Finished<T>> + Send + 'w>> {
    let (index, attempts) = (slot.index, slot.attempt);
    let deadline = setup.timeout.map(|t| run.now().saturating_add(t));
    let timeout_ms = setup
        .timeout
        .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
    let cx = StepContext::for_item(
        run.execution_id(),
        &setup.name,
        &state.item_key(index),
        attempts,
        deadline,
    );
    let timer = deadline.map(|at| run.sleep_until(at));
    Box::pin(async move {
        let caught = AssertUnwindSafe(cx.scope(future)).catch_unwind();
        let outcome = match timer {
            None => Some(caught.await),
            Some(timer) => match select(pin!(caught), timer).await {
                Either::Left((outcome, _)) => Some(outcome),
                Either::Right(((), _)) => None,
            },
        };
        let result = match outcome {
            Some(Ok(Ok(value))) => Ok(value),
            Some(Ok(Err(error))) => Err(StepError::Failed { error, attempts }),
            Some(Err(panic)) => Err(StepError::Panicked {
                message: panic_message(&*panic),
                attempts,
            }),
            None => Err(StepError::TimedOut {
                attempts,
                timeout_ms,
            }),
        };
        Finished { index, result }
    })
}

/// Commits `progress` while the step items keep running: what finishes meanwhile is
/// gathered for the next commit.
async fn commit_polling<'w, T>(
    run: &PointRun,
    progress: Progress,
    running: &mut Running<'w, T>,
    finished: &mut Vec<Finished<T>>,
) -> Result<(), Interrupt> {
    let mut commit = pin!(run.commit_progress(progress));
    std::future::poll_fn(|cx| {
        while let Poll::Ready(Some(done)) = running.poll_next_unpin(cx) {
            finished.push(done);
        }
        commit.as_mut().poll(cx)
    })
    .await
}

/// Records the attempts that finished: a success or a final failure settles its item (in
/// the order seen), a failure the policy retries waits for its retry.
fn apply<I, B, T: Serialize>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &mut BatchState,
    held: &mut BTreeMap<u64, I>,
    finished: &mut Vec<Finished<T>>,
    pending: &mut Pending<T>,
) -> Result<(), Interrupt> {
    let now = run.now();
    for done in finished.drain(..) {
        let Some(pos) = state.in_flight.iter().position(|s| s.index == done.index) else {
            continue;
        };
        let settled = match done.result {
            Ok(value) => match setup.codec.encode_value(&value) {
                Ok(payload) if payload.len() <= max_value(run) => {
                    OperationState::Succeeded { payload }
                }
                Ok(payload) => failed(
                    setup,
                    ItemError::Step(StepError::Failed {
                        error: Failure::new(format!(
                            "the item's value is {} bytes, over the limit of {} \
                             (EngineBuilder::max_value_bytes)",
                            payload.len(),
                            max_value(run)
                        )),
                        attempts: state.in_flight[pos].attempt,
                    }),
                    None,
                )?,
                Err(e) => {
                    return Err(Interrupt::codec(
                        "cannot encode the value of a batch item",
                        e,
                    ))
                }
            },
            Err(error) => {
                let slot = &mut state.in_flight[pos];
                if let Some(at) = retry_at(&setup.retry, &error, slot.attempt, now) {
                    // Recorded (and committed with the next group): a crash does not give
                    // the item its attempt back, and the history shows the retry.
                    pending.events.push(Event::StepFailed {
                        name: format!("{}[{}]", setup.name, slot.index),
                        attempt: slot.attempt,
                        error: error.to_string(),
                        retry_at: Some(at),
                    });
                    slot.attempt += 1;
                    slot.retry_at = Some(at);
                    continue;
                }
                failed(setup, ItemError::Step(error), None)?
            }
        };
        held.remove(&done.index);
        settle(
            run,
            setup,
            state,
            pos,
            None,
            settled,
            Expect::Absent,
            pending,
        );
    }
    Ok(())
}

/// The state of a failed item.
fn failed<B>(
    setup: &Setup<'_, B>,
    error: ItemError,
    output: Option<Vec<u8>>,
) -> Result<OperationState, Interrupt> {
    let error = setup
        .codec
        .encode_value(&StoredFailure { error, output })
        .map_err(|e| Interrupt::codec("cannot encode the error of a batch item", e))?;
    Ok(OperationState::Failed { error })
}

/// Settles the item in flight at `pos` with `settled`: its record gets its place in the
/// completion order; the counters follow.
#[allow(clippy::too_many_arguments)] // one call per kind of item; a struct would only rename them
fn settle<B, T>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &mut BatchState,
    pos: usize,
    stored: Option<OperationRecord>,
    settled: OperationState,
    expect: Expect,
    pending: &mut Pending<T>,
) {
    let slot = state.in_flight.remove(pos);
    let order = state.settled();
    let is_failure = matches!(settled, OperationState::Failed { .. });
    if is_failure {
        state.failed += 1;
        let error = match &settled {
            OperationState::Failed { error } => decode_value::<StoredFailure>(error)
                .map(|f| f.error.to_string())
                .unwrap_or_default(),
            _ => String::new(),
        };
        pending.events.push(Event::ItemFailed {
            name: setup.name.clone(),
            index: slot.index,
            error,
        });
    } else {
        state.succeeded += 1;
    }
    let mut record =
        stored.unwrap_or_else(|| item_record(run, setup, state, slot.index, None, settled.clone()));
    if let OperationKind::Item { order: o, .. } = &mut record.kind {
        *o = Some(order);
    }
    record.state = settled;
    record.updated_at = run.now();
    pending.changes.push(put(record, expect));
}

fn max_value(run: &PointRun) -> usize {
    run.ctx().runtime().limits().max_value_bytes
}

/// When the attempt after the one that failed with `error` runs, `None` if none does.
fn retry_at(
    policy: &RetryPolicy,
    error: &StepError,
    attempt: u32,
    now: Timestamp,
) -> Option<Timestamp> {
    if let StepError::Failed { error, .. } = error {
        if error.is_terminal() {
            return None;
        }
    }
    policy
        .allows_another(attempt)
        .then(|| now.saturating_add(policy.jittered_delay_after(attempt)))
}

/// The operation record of item `index`.
fn item_record<B>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &BatchState,
    index: u64,
    child: Option<(String, &str)>,
    settled: OperationState,
) -> OperationRecord {
    let now = run.now();
    let (execution, workflow) = match child {
        Some((id, workflow)) => (Some(id), Some(workflow.to_owned())),
        None => (None, None),
    };
    OperationRecord {
        execution: run.execution_id().to_owned(),
        key: state.item_key(index),
        kind: OperationKind::Item {
            batch: state.key.clone(),
            index,
            order: None,
            execution,
            workflow,
        },
        name: format!("{}[{index}]", setup.name),
        token: None,
        state: settled,
        heartbeat_at: None,
        created_at: now,
        updated_at: now,
    }
}

fn put(record: OperationRecord, expect: Expect) -> OperationChange {
    OperationChange {
        key: record.key.clone(),
        expect,
        action: OperationAction::Put(Box::new(record)),
    }
}

/// Creates the children whose operation records are committed; a child that cannot
/// start fails its item.
async fn create_children<B, T>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &mut BatchState,
    pending: &mut Pending<T>,
) -> Result<(), Interrupt> {
    for (index, child) in std::mem::take(&mut pending.to_create) {
        let key = state.item_key(index);
        let id = child_id(run.execution_id(), &key);
        let started = if run.ctx().runtime().runs(child.workflow, child.fingerprint) {
            match child.input {
                Ok(input) => {
                    let link = ParentLink {
                        execution: run.execution_id().to_owned(),
                        operation: key.clone(),
                    };
                    start_child(
                        run.ctx(),
                        &id,
                        child.workflow,
                        child.fingerprint,
                        input,
                        link,
                    )
                    .await?
                }
                Err(e) => Err(ChildError::Failed {
                    workflow: child.workflow.to_owned(),
                    id: id.clone(),
                    message: format!("its input cannot be encoded: {e}"),
                }),
            }
        } else {
            Err(ChildError::NotRegistered {
                workflow: child.workflow.to_owned(),
            })
        };
        let Some(pos) = state.in_flight.iter().position(|s| s.index == index) else {
            continue;
        };
        match started {
            Ok(()) => state.in_flight[pos].created = true,
            Err(error) => {
                let stored = run
                    .ctx()
                    .runtime()
                    .store()
                    .operation(run.execution_id(), &key);
                let stored = stored.await?;
                let settled = failed(setup, ItemError::Child(error), None)?;
                settle(
                    run,
                    setup,
                    state,
                    pos,
                    stored,
                    settled,
                    Expect::Pending,
                    pending,
                );
            }
        }
    }
    Ok(())
}

/// Settles the child items whose children have finished.
async fn observe_children<B, T>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &mut BatchState,
    pending: &mut Pending<T>,
) -> Result<(), Interrupt> {
    let store = run.ctx().runtime().store().clone();
    let children: Vec<u64> = state
        .in_flight
        .iter()
        .filter(|s| s.attempt == 0)
        .map(|s| s.index)
        .collect();
    for index in children {
        let key = state.item_key(index);
        let Some(op) = store.operation(run.execution_id(), &key).await? else {
            return Err(Interrupt::Failed(format!(
                "batch `{}`: the record of item {index} is missing from the store",
                setup.name
            )));
        };
        if op.state.is_pending() {
            continue;
        }
        let (id, workflow) = match &op.kind {
            OperationKind::Item {
                execution: Some(id),
                workflow,
                ..
            } => (id.clone(), workflow.clone().unwrap_or_default()),
            other => {
                return Err(Interrupt::Failed(format!(
                    "batch `{}`: item {index} is not a child item: {other:?}",
                    setup.name
                )))
            }
        };
        let child_error = |message: String| {
            ItemError::Child(ChildError::Failed {
                workflow: workflow.clone(),
                id: id.clone(),
                message,
            })
        };
        let settled = match &op.state {
            OperationState::Succeeded { payload } => {
                // A child that returned `Err` gave an output and failed.
                match store.load(&id).await? {
                    Some(child) if child.status == Status::Failed => {
                        let message = child.message.unwrap_or_default();
                        failed(setup, child_error(message), Some(payload.clone()))?
                    }
                    _ => op.state.clone(),
                }
            }
            OperationState::Failed { error } => {
                let message = String::from_utf8_lossy(error).into_owned();
                failed(setup, child_error(message), None)?
            }
            other => failed(
                setup,
                child_error(format!("the child ended as {other:?}")),
                None,
            )?,
        };
        let Some(pos) = state.in_flight.iter().position(|s| s.index == index) else {
            continue;
        };
        settle(
            run,
            setup,
            state,
            pos,
            Some(op),
            settled,
            Expect::Settled,
            pending,
        );
    }
    Ok(())
}

/// Commits the wait for the children in flight and the next retry, and leaves memory.
async fn suspend<B>(run: &PointRun, setup: &Setup<'_, B>, state: &BatchState) -> Interrupt {
    let awaiting: Vec<String> = state
        .in_flight
        .iter()
        .filter(|s| s.attempt == 0 && s.created)
        .map(|s| state.item_key(s.index))
        .collect();
    let wake_at = state.in_flight.iter().filter_map(|s| s.retry_at).min();
    if awaiting.is_empty() && wake_at.is_none() {
        return Interrupt::Failed(format!(
            "durable: internal error: batch `{}` has nothing to wait for and is not complete; please report this bug",
            setup.name
        ));
    }
    let operations = awaiting
        .iter()
        .map(|key| OperationChange {
            key: key.clone(),
            expect: Expect::Pending,
            action: OperationAction::Keep,
        })
        .collect();
    let committed = run
        .commit_progress(Progress {
            wake_at,
            awaiting,
            operations,
            ..Progress::to(PointState::Batch(state.clone()))
        })
        .await;
    committed.err().unwrap_or(Interrupt::Suspended)
}

/// Completes the batch: commits why (cancelling the items in flight) unless that is
/// committed already, cancels the children still running, and gives the result.
async fn finish<B, T>(
    run: PointRun,
    setup: &Setup<'_, B>,
    mut state: BatchState,
    mut pending: Pending<T>,
) -> Result<BatchResult<T>, Interrupt>
where
    T: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let reason = state.done.unwrap_or(CompletionReason::AllCompleted);
    let store = run.ctx().runtime().store().clone();
    let committed_done = matches!(
        run.ctx().record().position.as_ref().map(|p| &p.state),
        Some(PointState::Batch(s)) if s.done.is_some()
    );
    if !committed_done {
        for slot in &state.in_flight {
            let key = state.item_key(slot.index);
            let (stored, expect) = if slot.attempt == 0 {
                (
                    store.operation(run.execution_id(), &key).await?,
                    Expect::Pending,
                )
            } else {
                (None, Expect::Absent)
            };
            let mut record = stored.unwrap_or_else(|| {
                item_record(
                    &run,
                    setup,
                    &state,
                    slot.index,
                    None,
                    OperationState::Cancelled,
                )
            });
            record.state = OperationState::Cancelled;
            record.updated_at = run.now();
            pending.changes.push(put(record, expect));
        }
        pending.events.push(Event::BatchFinished {
            name: setup.name.clone(),
            reason,
            succeeded: state.succeeded,
            failed: state.failed,
            cancelled: state.in_flight.len() as u64,
        });
        state.done = Some(reason);
        run.commit_progress(Progress {
            operations: std::mem::take(&mut pending.changes),
            events: std::mem::take(&mut pending.events),
            ..Progress::to(PointState::Batch(state.clone()))
        })
        .await?;
    }
    // The children of items cancelled: cancelling again after a crash is harmless.
    let why = format!(
        "batch `{}` of execution {:?} completed early ({})",
        setup.name,
        run.execution_id(),
        reason.as_str()
    );
    let mut cancelled = Cancelled::default();
    for slot in state.in_flight.iter().filter(|s| s.attempt == 0) {
        let id = child_id(run.execution_id(), &state.item_key(slot.index));
        cancel_tree(&store, &id, &why, run.now(), &mut cancelled).await?;
    }
    let runtime = run.ctx().runtime();
    for id in &cancelled.cancelled {
        runtime.finished(id);
    }
    runtime.committed(run.execution_id(), None, &cancelled.woken);
    let result = gather::<T>(&run, setup, &state, reason).await?;
    run.complete(&result, Vec::new()).await
}

/// Reads every item's record, in input order, into the result.
async fn gather<T: serde::de::DeserializeOwned>(
    run: &PointRun,
    setup: &Setup<'_, impl Sized>,
    state: &BatchState,
    reason: CompletionReason,
) -> Result<BatchResult<T>, Interrupt> {
    let store = run.ctx().runtime().store();
    let prefix = format!("{}.", state.key);
    let total = usize::try_from(state.total).unwrap_or(usize::MAX);
    let mut items: Vec<BatchItem<T>> = Vec::with_capacity(total.min(1 << 20));
    let mut after = state.key.clone();
    'pages: loop {
        let page = store
            .operations(run.execution_id(), Some(&after), PAGE)
            .await?;
        let full = page.len() == PAGE;
        for op in page {
            if !op.key.starts_with(&prefix) {
                break 'pages;
            }
            after.clone_from(&op.key);
            items.push(item_of(setup, op)?);
        }
        if !full {
            break;
        }
    }
    let started = usize::try_from(state.next).unwrap_or(usize::MAX);
    let in_order = items.iter().enumerate().all(|(i, item)| item.index == i);
    if items.len() != started || !in_order {
        return Err(Interrupt::Failed(format!(
            "batch `{}`: {} item records found for {started} items started",
            setup.name,
            items.len()
        )));
    }
    items.extend((started..total).map(|index| BatchItem {
        index,
        status: ItemStatus::NotStarted,
        value: None,
        error: None,
        completion_order: None,
        execution: None,
    }));
    Ok(BatchResult::new(items, reason))
}

/// One item of the result, from its record.
fn item_of<T: serde::de::DeserializeOwned>(
    setup: &Setup<'_, impl Sized>,
    op: OperationRecord,
) -> Result<BatchItem<T>, Interrupt> {
    let OperationKind::Item {
        index,
        order,
        execution,
        workflow,
        ..
    } = op.kind
    else {
        return Err(Interrupt::Failed(format!(
            "batch `{}`: operation {:?} is not an item",
            setup.name, op.key
        )));
    };
    let index = usize::try_from(index).unwrap_or(usize::MAX);
    let undecodable = |e: crate::error::CodecError| match &execution {
        Some(id) => Ok(ItemError::Child(ChildError::Undecodable {
            workflow: workflow.clone().unwrap_or_default(),
            id: id.clone(),
            message: e.to_string(),
        })),
        None => Err(Interrupt::unreadable(
            "cannot decode the value of a batch item",
            e,
        )),
    };
    let mut item = BatchItem {
        index,
        status: ItemStatus::Succeeded,
        value: None,
        error: None,
        completion_order: order,
        execution: execution.clone(),
    };
    match op.state {
        OperationState::Succeeded { payload } => match decode_value::<T>(&payload) {
            Ok(value) => item.value = Some(value),
            Err(e) => {
                item.status = ItemStatus::Failed;
                item.error = Some(undecodable(e)?);
            }
        },
        OperationState::Failed { error } => {
            let stored: StoredFailure = decode_value(&error)
                .map_err(|e| Interrupt::unreadable("cannot decode the error of a batch item", e))?;
            item.status = ItemStatus::Failed;
            item.error = Some(stored.error);
            if let Some(output) = stored.output {
                match decode_value::<T>(&output) {
                    Ok(value) => item.value = Some(value),
                    Err(e) => item.error = Some(undecodable(e)?),
                }
            }
        }
        _ => {
            item.status = ItemStatus::Cancelled;
            item.completion_order = None;
        }
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::batch_key;

    #[test]
    fn batch_keys_sort_in_creation_order() {
        let keys: Vec<String> = [1u64, 15, 16, 4095, 4096]
            .iter()
            .map(|&s| batch_key(s))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(batch_key(5), "m05");
    }
}
