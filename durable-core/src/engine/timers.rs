//! The timer service: hands out executions whose wake-up time has come.
//!
//! Event-driven, never polling on an interval: between waves of due timers it sleeps on
//! the engine clock until the earliest wake-up time it has not handed out, and wakes
//! earlier only when a commit sets an earlier one, when the ready queue has room again,
//! or (for an auto-advancing test clock) when the engine falls idle. An idle engine makes
//! no store calls at all.
//!
//! Invariants:
//! - `cursor` is the last timer-index entry `(wake_at, id)` handed out (enqueued). Every
//!   entry at or before it that is still in the index belongs to an execution that is
//!   queued or running, and leaves the index when that execution commits. A pass
//!   therefore reads only entries after the cursor: each due timer is read once, however
//!   many are due, instead of once per activation.
//! - The cursor is never later than the clock's `now`: it only moves over due entries,
//!   and a pass that finds the clock behind it (a wall clock set back) starts over from
//!   the first entry. A commit that sets a wake-up time at or before `now` enqueues its
//!   execution itself ([`Shared::timer_set`]), so a timer inserted behind the cursor is
//!   never missed; one later than `now` is after the cursor, where the next pass finds
//!   it.
//! - A commit that sets a wake-up time earlier than the deadline the service sleeps
//!   until wakes the service: `armed` holds that deadline, and `u64::MAX` while the
//!   service is reading the store, so no commit can slip between its read and its sleep.
//! - An auto-advancing test clock is moved only on a reading of the queue taken after
//!   the service registered for `room` and published its watch, so every activation
//!   that ends either is in that reading or wakes the service: the engine never sits
//!   idle with a timer pending and the clock standing still.
//! - The service keeps at most [`Signals::high_water`] executions queued or running: it
//!   hands out due timers in batches and waits for room, so a million due timers never
//!   sit in memory at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::shared::Shared;
use crate::error::StoreError;
use crate::time::Timestamp;

/// Most due timers one store read takes.
const BATCH: usize = 1024;

/// Means "no watch" in [`Signals::watch`].
const NO_WATCH: usize = usize::MAX;

/// How the engine and the timer service signal each other.
pub(crate) struct Signals {
    /// The deadline (ms) the service sleeps until; `u64::MAX` while it reads the store
    /// or has no deadline.
    armed: AtomicU64,
    /// A commit set an earlier wake-up time, or the engine is shutting down.
    pub changed: Notify,
    /// The service wants [`Signals::room`] once at most this many executions are queued
    /// or running ([`NO_WATCH`]: it does not).
    watch: AtomicUsize,
    /// See `watch`.
    room: Notify,
    /// Hand out timers while fewer than this many executions are queued or running.
    high_water: usize,
    /// After waiting for room, resume once at most this many are.
    low_water: usize,
}

impl Signals {
    pub fn new(max_concurrent: usize) -> Self {
        let high_water = max_concurrent.saturating_mul(2).max(BATCH);
        // Strictly below the high water mark, or the service would never wait for room;
        // far enough below that one read hands out a batch, not one timer.
        let low_water = high_water - (max_concurrent / 2).max(BATCH / 4);
        Signals {
            armed: AtomicU64::new(u64::MAX),
            changed: Notify::new(),
            watch: AtomicUsize::new(NO_WATCH),
            room: Notify::new(),
            high_water,
            low_water,
        }
    }

    /// Called after every activation with the number of executions still queued or
    /// running.
    pub fn activation_ended(&self, active: usize) {
        let watch = self.watch.load(Ordering::SeqCst);
        if watch != NO_WATCH && active <= watch {
            self.room.notify_one();
        }
    }
}

impl Shared {
    /// Called after a commit of `id` that set wake-up time `at` returned: enqueues the
    /// execution if the time has already come, and wakes the timer service if it sleeps
    /// until a later time.
    pub fn timer_set(&self, id: &str, at: Timestamp) {
        if at <= self.clock.now() {
            self.enqueue(id);
        } else if at.as_millis() < self.timers.armed.load(Ordering::SeqCst) {
            self.timers.changed.notify_one();
        }
    }
}

/// What the service waits for between passes.
enum Wait {
    /// Room in the ready queue (at most this many executions queued or running): a wave
    /// of due timers is being handed out.
    Room(usize),
    /// The next wake-up time, if any.
    Until(Option<Timestamp>),
}

pub(super) async fn run(shared: Arc<Shared>) {
    let mut cursor: Option<(Timestamp, String)> = None;
    loop {
        let changed = shared.timers.changed.notified();
        let shutdown = shared.shutdown_signal.notified();
        tokio::pin!(changed, shutdown);
        changed.as_mut().enable();
        shutdown.as_mut().enable();
        if shared.is_shutting_down() {
            return;
        }
        shared.timers.armed.store(u64::MAX, Ordering::SeqCst);
        let wait = match pass(&shared, &mut cursor).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "timer service: store error, retrying in 1s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown => return,
                }
                continue;
            }
        };
        let next = match wait {
            Wait::Room(low_water) => {
                let room = shared.timers.room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                shared.timers.watch.store(low_water, Ordering::SeqCst);
                if shared.active() > low_water {
                    tokio::select! {
                        _ = room => {}
                        _ = shutdown => return,
                    }
                }
                shared.timers.watch.store(NO_WATCH, Ordering::SeqCst);
                continue;
            }
            Wait::Until(next) => next,
        };
        if let Some(at) = next {
            shared.timers.armed.store(at.as_millis(), Ordering::SeqCst);
        }
        let mut sleep = next.map(|at| shared.clock.sleep_until(at));
        // Sleep until `next`; an auto-advancing test clock instead jumps there once the
        // engine is idle, which the end of an activation reports through `room`.
        loop {
            // Listen for `room` and publish the watch *before* reading whether the engine
            // is idle, and decide on that one reading: an activation that ends after the
            // read finds the watch and notifies the listener; one that ended before it is
            // seen by the read (the queue lock orders the two). Reading idleness before
            // the watch was up lost the wake-up of an activation ending in between, and
            // the clock then never advanced.
            let room = shared.timers.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            shared.timers.watch.store(0, Ordering::SeqCst);
            let idle = shared.is_idle();
            if let Some(at) = next {
                if idle && shared.clock.skip_idle_to(at) {
                    break;
                }
            }
            tokio::select! {
                _ = &mut changed => break,
                _ = &mut shutdown => return,
                _ = async {
                    match sleep.as_mut() {
                        Some(s) => s.await,
                        None => std::future::pending().await,
                    }
                } => break,
                _ = room, if !idle && next.is_some() => {}
            }
        }
        shared.timers.watch.store(NO_WATCH, Ordering::SeqCst);
        // Drop a sleep that did not fire before the next pass.
        sleep.take();
    }
}

/// Hands out due timers after `cursor`, as many as the ready queue has room for, and
/// says what to wait for next.
async fn pass(
    shared: &Shared,
    cursor: &mut Option<(Timestamp, String)>,
) -> Result<Wait, StoreError> {
    if shared.store.is_shared() {
        return pass_shared(shared).await;
    }
    loop {
        let room = shared.timers.high_water.saturating_sub(shared.active());
        if room == 0 {
            return Ok(Wait::Room(shared.timers.low_water));
        }
        let now = shared.clock.now();
        if cursor.as_ref().is_some_and(|(at, _)| *at > now) {
            // The clock went back (a wall clock can): a timer committed since may sort
            // behind the cursor and yet not be due, so read the index from its start.
            // Executions handed out again meanwhile are queued once, harmlessly.
            *cursor = None;
        }
        let limit = room.min(BATCH);
        let after = cursor.as_ref().map(|(at, id)| (*at, id.as_str()));
        let due = shared.store.timers_after(after, now, limit).await?;
        let full = due.len() == limit;
        for (at, id) in due {
            shared.enqueue(&id);
            *cursor = Some((at, id));
        }
        if full {
            continue;
        }
        let after = cursor.as_ref().map(|(at, id)| (*at, id.as_str()));
        let next = shared
            .store
            .timers_after(after, Timestamp::from_millis(u64::MAX), 1)
            .await?
            .pop()
            .map(|(at, _)| at);
        // An entry due by now was committed during this pass: take it in the next one.
        if next.is_some_and(|at| at <= shared.clock.now()) {
            continue;
        }
        return Ok(Wait::Until(next));
    }
}

/// The pass over a store that several engines share: claims ready executions (due
/// timers, and new, woken or abandoned running ones) with [`Store::acquire`], no more
/// than can start now so that idle engines get the rest, and says when the next timer
/// falls due. Other engines' changes wake the service through the store's signals, and a
/// slow poll catches what signals miss (expired leases, lost notifications).
///
/// [`Store::acquire`]: crate::Store::acquire
async fn pass_shared(shared: &Shared) -> Result<Wait, StoreError> {
    let max = shared.config.max_concurrent;
    loop {
        let room = max.saturating_sub(shared.active());
        if room == 0 {
            return Ok(Wait::Room(max - 1));
        }
        let now = shared.clock.now();
        let until = now.saturating_add(shared.config.lease_ttl);
        let limit = room.min(BATCH);
        let acquired = shared
            .store
            .acquire(shared.owner, now, until, limit)
            .await?;
        let full = acquired.ids.len() == limit;
        for id in &acquired.ids {
            if shared.is_shutting_down() {
                // Not run here: let another engine have it now rather than when the
                // lease expires.
                shared.store.release(id, shared.owner).await?;
            } else {
                shared.enqueue(id);
            }
        }
        if !full {
            return Ok(Wait::Until(acquired.next_wake));
        }
    }
}
