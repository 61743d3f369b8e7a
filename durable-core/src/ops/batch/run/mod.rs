//! Running a batch at its durable point: start items up to the limit, gather what
//! settles, commit it in groups, suspend while only children and retry delays are
//! pending, and complete as the policy says. The step items' attempts are in [`steps`],
//! the child items' creation and settlement in [`children`], the completion in [`end`].

mod children;
mod end;
mod steps;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;

use futures_util::future::{select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use children::{create_children, observe_children};
use end::finish;
use steps::{attempt_future, retry_at, start_attempt, work};

use super::item::{ChildItem, ItemBody, ItemWork};
use super::policy::Completion;
use super::result::{BatchResult, ItemError};
use super::{Map, MapBody};
use crate::codec::{decode_value, Codec};
use crate::error::StepError;
use crate::execution::{Interrupt, PointRun, Progress};
use crate::failure::Failure;
use crate::ops::child::child_id;
use crate::record::{
    BatchState, Event, Expect, InFlight, OperationAction, OperationChange, OperationKind,
    OperationRecord, OperationState, PointState,
};
use crate::retry::RetryPolicy;

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
    fn new() -> Self {
        Pending {
            changes: Vec::new(),
            events: Vec::new(),
            to_create: Vec::new(),
        }
    }

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
                    let slot = first_attempt(index);
                    running.push(attempt_future(&run, &setup, &state, future, &slot));
                    state.in_flight.push(slot);
                    held.insert(index, item);
                }
                Err(message) => {
                    // The body panicked before giving its work: a failed step attempt.
                    let slot = first_attempt(index);
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

/// The batch key of a batch entered afresh after the commit with sequence number `seq`
/// (unique within the execution, stable across a crash before its first commit, as a
/// call's key is), in creation order (see `record::ordered_key`).
fn batch_key(seq: u64) -> String {
    crate::record::ordered_key("m", seq)
}

fn first_attempt(index: u64) -> InFlight {
    InFlight {
        index,
        attempt: 1,
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
