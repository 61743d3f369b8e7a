//! The engine's timer service, observed through a store that counts its timer-index
//! reads: it reads nothing while idle, reads each due timer once in a wave, and never
//! misses a timer committed behind the entries it has handed out. No test sleeps in real
//! time: the engine runs on a manual `TestClock`, and tokio's clock is paused where time
//! must pass for tokio.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use durable_core::test_support::InstrumentedStore;
use durable_core::{
    durable, Ctx, Engine, EngineBuilder, MemoryStore, RetryPolicy, Status, StepError, Store,
    TestClock, Timestamp, WaitError,
};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const DAY: Duration = Duration::from_secs(86_400);

/// A [`MemoryStore`] that counts timer-index reads and can hold back one commit.
type Watched = InstrumentedStore<MemoryStore>;

fn watched() -> Arc<Watched> {
    Arc::new(InstrumentedStore::new(MemoryStore::new()))
}

fn reads(store: &Watched) -> u64 {
    store.counts().timer_reads
}

#[durable]
async fn nap(ctx: Ctx, days: u32) -> Result<u32, WaitError> {
    ctx.sleep(DAY * days).await?;
    Ok(days)
}

async fn engine(store: &Arc<Watched>, clock: &TestClock, max_concurrent: usize) -> Engine {
    EngineBuilder::with_store(store.clone())
        .register(nap)
        .register(flaky)
        .clock(clock.clone())
        .max_concurrent(max_concurrent)
        .open()
        .await
        .unwrap()
}

async fn until_status(store: &Watched, id: &str, status: Status) {
    loop {
        let record = store.load(id).await.unwrap();
        if record.is_some_and(|r| r.status == status) {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Lets every task that can run, run.
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_engine_makes_no_store_calls_for_timers() {
    let store = watched();
    let clock = TestClock::new(START);
    let engine = engine(&store, &clock, 8).await;
    settle().await;
    let at_open = reads(&store);
    // An hour passes for tokio, and none for the engine clock: nothing may poll.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(reads(&store), at_open, "no timers, no reads");

    let handle = engine.start(nap, "nap", 1).await.unwrap();
    until_status(&store, "nap", Status::Suspended).await;
    settle().await;
    let suspended = reads(&store);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    settle().await;
    assert_eq!(
        reads(&store),
        suspended,
        "a suspended execution whose time has not come costs no reads"
    );

    clock.advance(DAY);
    assert_eq!(handle.result().await.unwrap(), Ok(1));
    settle().await;
    let done = reads(&store);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    settle().await;
    assert_eq!(reads(&store), done, "and neither does a finished one");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_wave_of_due_timers_reads_each_entry_once() {
    const EXECUTIONS: usize = 3000;
    let store = watched();
    let clock = TestClock::new(START);
    let engine = engine(&store, &clock, 4).await;
    for i in 0..EXECUTIONS {
        engine.start(nap, format!("nap-{i:04}"), 1).await.unwrap();
    }
    until_status(
        &store,
        &format!("nap-{:04}", EXECUTIONS - 1),
        Status::Suspended,
    )
    .await;
    for i in 0..EXECUTIONS {
        until_status(&store, &format!("nap-{i:04}"), Status::Suspended).await;
    }
    let entries_before = store.counts().timer_entries;
    clock.advance(DAY);
    for i in 0..EXECUTIONS {
        let result = engine.handle(nap, format!("nap-{i:04}")).result().await;
        assert_eq!(result.unwrap(), Ok(1));
    }
    let read = store.counts().timer_entries - entries_before;
    // Each due entry once, plus a look at the next one after each batch.
    assert!(
        read <= (EXECUTIONS + EXECUTIONS / 100) as u64,
        "{read} timer entries read to wake {EXECUTIONS} executions"
    );
    engine.shutdown().await;
}

/// Fails its first attempt and retries a minute later.
#[durable]
async fn flaky(ctx: Ctx, _n: u32) -> Result<u32, StepError<String>> {
    ctx.step_with_attempt("flaky", |attempt| async move {
        if attempt == 1 {
            Err("not yet".to_string())
        } else {
            Ok(attempt)
        }
    })
    .retry(
        RetryPolicy::fixed(Duration::from_secs(60))
            .max_attempts(2)
            .jitter(0.0),
    )
    .await
}

#[tokio::test]
async fn a_timer_committed_behind_handed_out_ones_still_fires() {
    let store = watched();
    let clock = TestClock::new(START);
    let engine = engine(&store, &clock, 8).await;
    let later = engine.start(nap, "later", 1).await.unwrap();
    until_status(&store, "later", Status::Suspended).await;

    // `early`'s retry, due a minute from now, is held back before it reaches the store.
    let held = store.hold_commit(|c| c.record.id == "early" && c.record.wake_at.is_some());
    let early = engine.start(flaky, "early", 0).await.unwrap();
    held.reached.await.unwrap();

    // Meanwhile a day passes: the timer service hands out `later`, whose entry comes
    // after the minute-long retry's, and `later` completes.
    clock.advance(DAY);
    assert_eq!(later.result().await.unwrap(), Ok(1));

    // Now the retry lands in the index, due already and behind what was handed out.
    held.release.send(()).unwrap();
    let retried = tokio::time::timeout(Duration::from_secs(30), early.result())
        .await
        .expect("the retry was not missed");
    assert_eq!(retried.unwrap(), Ok(2));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_wave_larger_than_the_ready_queue_drains_with_one_permit() {
    // More due timers than the service keeps queued, and one activation at a time: the
    // service must wait for room, not spin (this runtime has a single thread).
    const EXECUTIONS: usize = 1100;
    let store = watched();
    let clock = TestClock::new(START);
    let engine = engine(&store, &clock, 1).await;
    for i in 0..EXECUTIONS {
        engine.start(nap, format!("nap-{i:04}"), 1).await.unwrap();
    }
    for i in 0..EXECUTIONS {
        until_status(&store, &format!("nap-{i:04}"), Status::Suspended).await;
    }
    clock.advance(DAY);
    for i in 0..EXECUTIONS {
        let result = engine.handle(nap, format!("nap-{i:04}")).result().await;
        assert_eq!(result.unwrap(), Ok(1));
    }
    engine.shutdown().await;
}

/// A clock that can be set back, as a wall clock can: a [`TestClock`] read `back` ms
/// behind.
#[derive(Clone)]
struct SetBack {
    clock: TestClock,
    back: Arc<std::sync::atomic::AtomicU64>,
}

impl durable_core::Clock for SetBack {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.clock.now().as_millis() - self.back.load(Ordering::SeqCst))
    }

    fn sleep_until(&self, deadline: Timestamp) -> durable_core::SleepFuture {
        let back = self.back.load(Ordering::SeqCst);
        self.clock
            .sleep_until(Timestamp::from_millis(deadline.as_millis() + back))
    }
}

#[durable]
async fn nap_seconds(ctx: Ctx, seconds: u64) -> Result<u64, WaitError> {
    ctx.sleep(Duration::from_secs(seconds)).await?;
    Ok(seconds)
}

#[tokio::test]
async fn a_timer_set_after_the_clock_went_back_still_fires() {
    let store = watched();
    let clock = SetBack {
        clock: TestClock::new(START),
        back: Arc::default(),
    };
    let engine = EngineBuilder::with_store(store.clone())
        .register(nap_seconds)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let first = engine.start(nap_seconds, "first", 10).await.unwrap();
    until_status(&store, "first", Status::Suspended).await;
    clock.clock.advance(Duration::from_secs(20));
    assert_eq!(first.result().await.unwrap(), Ok(10));

    // The clock goes back 15 s, to 5 s after the start: a 2 s nap wakes at 7 s, before
    // the timer the service handed out last (10 s), and is not due yet.
    clock.back.store(15_000, Ordering::SeqCst);
    let second = engine.start(nap_seconds, "second", 2).await.unwrap();
    until_status(&store, "second", Status::Suspended).await;
    clock.clock.advance(Duration::from_secs(3));
    let woke = tokio::time::timeout(Duration::from_secs(30), second.result())
        .await
        .expect("the timer was not missed");
    assert_eq!(woke.unwrap(), Ok(2));
    engine.shutdown().await;
}
