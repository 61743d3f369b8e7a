//! A store whose writes fail (a full disk, a lost database) for a while: the engine says
//! so (health, describe, typed errors), retries with backoff on its clock, asks the store
//! to recover, and every execution completes with its crash-free result once writes
//! succeed again, none failed, no step run twice.
//!
//! The faults come from `InstrumentedStore` over the memory store, poisoned after a
//! failure until `recover` as sled 0.34 is. Time is the engine's `TestClock`, moved to
//! whatever the engine waits for by a driver task; nothing sleeps in real time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::test_support::{FailWrites, InstrumentedStore};
use durable_core::{
    durable, CallbackError, CompletionError, Ctx, Engine, EngineBuilder, Error, ListFilter,
    MemoryStore, Status, Store, StoreError, TestClock, Timestamp, WaitError, Waiting,
};
use durable_store_sled::SledStore;

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const STEPS: u32 = 20;
const EXECUTIONS: u64 = 50;

/// Step body runs by (input, step): tests use disjoint inputs.
static RUNS: Mutex<Option<HashMap<(u64, u32), u32>>> = Mutex::new(None);

fn ran(n: u64, i: u32) {
    let mut runs = RUNS.lock().unwrap();
    *runs
        .get_or_insert_with(HashMap::new)
        .entry((n, i))
        .or_default() += 1;
}

fn runs(n: u64, i: u32) -> u32 {
    let runs = RUNS.lock().unwrap();
    runs.as_ref()
        .and_then(|r| r.get(&(n, i)).copied())
        .unwrap_or(0)
}

/// Twenty steps with a durable sleep halfway.
#[durable]
async fn twenty(ctx: Ctx, n: u64) -> Result<u64, WaitError> {
    let mut total = 0u64;
    let mut i = 0u32;
    while i < STEPS {
        if i == STEPS / 2 {
            ctx.sleep(Duration::from_secs(1)).await?;
        }
        let value = ctx
            .step_infallible("add", move || async move {
                ran(n, i);
                n * 1000 + u64::from(i)
            })
            .await;
        total += value;
        i += 1;
    }
    Ok(total)
}

/// What `twenty(n)` returns when nothing goes wrong.
fn expected(n: u64) -> u64 {
    (0..STEPS).map(|i| n * 1000 + u64::from(i)).sum()
}

type Faulty = InstrumentedStore<MemoryStore>;

fn faulty(clock: &TestClock) -> Arc<Faulty> {
    let store = InstrumentedStore::new(MemoryStore::new()).with_clock(clock.clone());
    store.poison_on_failure(true);
    Arc::new(store)
}

async fn engine(store: &Arc<Faulty>, clock: &TestClock) -> Engine {
    EngineBuilder::with_store(store.clone())
        .register(twenty)
        .clock(clock.clone())
        .max_concurrent(8)
        .open()
        .await
        .unwrap()
}

/// Moves the clock to each deadline the engine waits for (the healer's backoff, the
/// workflow's sleeps), as soon as it waits for one; aborted when dropped.
struct Driver(tokio::task::JoinHandle<()>);

impl Driver {
    fn start(clock: &TestClock) -> Self {
        let clock = clock.clone();
        Driver(tokio::spawn(async move {
            loop {
                if let Some(at) = clock.next_deadline() {
                    clock.set(at);
                }
                tokio::task::yield_now().await;
            }
        }))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Yields until `check` holds.
async fn until(mut check: impl FnMut() -> bool) {
    while !check() {
        tokio::task::yield_now().await;
    }
}

/// Starts `n`, retrying while the store fails (a start is idempotent).
async fn start(engine: &Engine, n: u64) {
    loop {
        match engine.start(twenty, format!("x-{n}"), n).await {
            Ok(_) => return,
            Err(Error::Store(StoreError::Backend(_))) => tokio::task::yield_now().await,
            Err(e) => panic!("start of {n}: {e}"),
        }
    }
}

/// Awaits every execution of `inputs` and checks the crash-free results, that none
/// failed, and that every step ran exactly once: a failed commit is retried as it was,
/// so no step body runs again.
async fn check_all_complete(engine: &Engine, inputs: std::ops::Range<u64>) {
    for n in inputs.clone() {
        let result = engine.handle(twenty, format!("x-{n}")).result().await;
        assert_eq!(result.unwrap(), Ok(expected(n)), "execution {n}");
    }
    let failed = engine
        .executions(&ListFilter::default().status(Status::Failed))
        .await
        .unwrap();
    assert!(failed.is_empty(), "failed executions: {failed:?}");
    for n in inputs {
        for i in 0..STEPS {
            assert_eq!(runs(n, i), 1, "step {i} of execution {n}");
        }
    }
}

#[tokio::test]
async fn every_write_failing_for_a_period_is_reported_then_healed() {
    let clock = TestClock::new(START);
    let store = faulty(&clock);
    let engine = engine(&store, &clock).await;
    assert!(engine.health().is_ok());
    let inputs = 0..EXECUTIONS;
    for n in inputs.clone() {
        start(&engine, n).await;
    }
    // The executions have not run yet (this runtime has one thread and the test has not
    // yielded): every one meets the fault.
    let until_at = START.saturating_add(Duration::from_secs(60));
    store.fail_writes(FailWrites::Between {
        from: START,
        until: until_at,
    });
    until(|| {
        engine
            .health()
            .degraded
            .is_some_and(|d| d.waiting_executions >= 8)
    })
    .await;

    // Degraded, since the first failure, with its cause.
    let health = engine.health();
    let degraded = health.degraded.clone().unwrap();
    assert_eq!(degraded.since, START);
    assert!(
        degraded.cause.contains("no space left"),
        "{}",
        degraded.cause
    );
    assert!(health.failed_writes >= 8);
    // A start is refused with the store's error, and counted.
    match engine.start(twenty, "refused", 1).await {
        Err(Error::Store(StoreError::Backend(e))) => {
            assert!(e.to_string().contains("no space left"), "{e}")
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    assert!(engine.health().failed_writes > health.failed_writes);
    // A running execution says it waits for the store; its result waits.
    let mut waiting = 0;
    for n in inputs.clone() {
        let description = engine.describe(&format!("x-{n}")).await.unwrap();
        if let Some(Waiting::Store { since, cause }) = description.waiting_for {
            assert_eq!(description.status, Status::Running);
            assert_eq!(since, START);
            assert!(cause.contains("no space left"), "{cause}");
            waiting += 1;
        }
    }
    assert_eq!(waiting, 8, "every running execution waits for the store");
    let pending = tokio::spawn({
        let handle = engine.handle(twenty, "x-0");
        async move { handle.result().await }
    });
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!pending.is_finished(), "result() keeps waiting");
    assert_eq!(clock.now(), START, "nothing moved the clock yet");

    // Time passes: the healer retries with backoff, and the fault ends at `until_at`.
    let _driver = Driver::start(&clock);
    check_all_complete(&engine, inputs).await;
    assert_eq!(pending.await.unwrap().unwrap(), Ok(expected(0)));
    assert!(clock.now() >= until_at);
    let health = engine.health();
    assert!(health.is_ok(), "{health:?}");
    assert!(health.failed_writes > 8);
    assert!(
        store.counts().recoveries > 0,
        "the store was asked to recover"
    );
    // The backoff grows: far fewer retry rounds than failed writes over a minute.
    let failed = store.counts().failed_writes;
    assert!(
        store.counts().recoveries < 30,
        "{} recoveries for {failed} failed writes",
        store.counts().recoveries
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn one_write_in_n_failing_loses_nothing() {
    let clock = TestClock::new(START);
    let store = Arc::new(InstrumentedStore::new(MemoryStore::new()).with_clock(clock.clone()));
    let engine = engine(&store, &clock).await;
    store.fail_writes(FailWrites::OneIn(7));
    let _driver = Driver::start(&clock);
    let inputs = 100..100 + EXECUTIONS;
    for n in inputs.clone() {
        start(&engine, n).await;
    }
    check_all_complete(&engine, inputs).await;
    assert!(store.counts().failed_writes > 50);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_window_of_failures_while_executions_sleep_loses_nothing() {
    let clock = TestClock::new(START);
    let store = faulty(&clock);
    let engine = engine(&store, &clock).await;
    // Writes fail from half a second to ten seconds: the executions are asleep when it
    // starts and wake up in the middle of it.
    store.fail_writes(FailWrites::Between {
        from: START.saturating_add(Duration::from_millis(500)),
        until: START.saturating_add(Duration::from_secs(10)),
    });
    let inputs = 200..200 + EXECUTIONS;
    for n in inputs.clone() {
        start(&engine, n).await;
    }
    let _driver = Driver::start(&clock);
    check_all_complete(&engine, inputs).await;
    assert!(store.counts().failed_writes > 0);
    assert!(engine.health().is_ok());
    engine.shutdown().await;
}

#[durable]
async fn signal(ctx: Ctx) -> Result<String, CallbackError> {
    let cb = ctx.create_callback::<String>("signal").await?;
    ctx.wait_callback(&cb).await
}

#[tokio::test]
async fn a_callback_completion_while_writes_fail_returns_the_store_error() {
    let clock = TestClock::new(START);
    let store = Arc::new(InstrumentedStore::new(MemoryStore::new()).with_clock(clock.clone()));
    let engine = EngineBuilder::with_store(store.clone())
        .register(signal)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let handle = engine.start(signal, "s", ()).await.unwrap();
    while store.load("s").await.unwrap().map(|r| r.status) != Some(Status::Suspended) {
        tokio::task::yield_now().await;
    }
    let id = engine.describe("s").await.unwrap().callbacks[0].id.clone();

    store.fail_writes(FailWrites::Always);
    match engine.complete_callback(&id, "go").await {
        Err(CompletionError::Store(StoreError::Backend(e))) => {
            assert!(e.to_string().contains("no space left"), "{e}")
        }
        other => panic!("expected the store's error, got {other:?}"),
    }
    let health = engine.health();
    assert_eq!(health.degraded.map(|d| d.failed_writes), Some(1));
    assert_eq!(
        store.load("s").await.unwrap().map(|r| r.status),
        Some(Status::Suspended),
        "nothing was written, nothing failed"
    );

    store.fail_writes(FailWrites::Never);
    engine.complete_callback(&id, "go").await.unwrap();
    assert!(engine.health().is_ok(), "the first successful write heals");
    assert_eq!(handle.result().await.unwrap(), Ok("go".to_owned()));
    engine.shutdown().await;
}

/// An engine shut down while its writes fail loses nothing either: its executions stop
/// waiting, and a new engine over the reopened sled store completes them. Only the steps
/// whose commits failed when the engine stopped run again (at-least-once).
#[tokio::test]
async fn a_restart_while_writes_fail_resumes_every_execution() {
    let dir = std::env::temp_dir().join(format!("durable-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = TestClock::new(START);
    let store =
        Arc::new(InstrumentedStore::new(SledStore::open(&dir).unwrap()).with_clock(clock.clone()));
    let engine = EngineBuilder::with_store(store.clone())
        .register(twenty)
        .clock(clock.clone())
        .max_concurrent(4)
        .open()
        .await
        .unwrap();
    let inputs = 300..310;
    for n in inputs.clone() {
        start(&engine, n).await;
    }
    store.fail_writes(FailWrites::Always);
    until(|| {
        engine
            .health()
            .degraded
            .is_some_and(|d| d.waiting_executions >= 4)
    })
    .await;
    // Returns, and closes the store: the waiting commits give up when the engine stops.
    engine.shutdown().await;

    let engine = EngineBuilder::new(SledStore::open(&dir).unwrap())
        .register(twenty)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let _driver = Driver::start(&clock);
    for n in inputs.clone() {
        let result = engine.handle(twenty, format!("x-{n}")).result().await;
        assert_eq!(result.unwrap(), Ok(expected(n)), "execution {n}");
    }
    let mut again = 0;
    for n in inputs.clone() {
        for i in 0..STEPS {
            let runs = runs(n, i);
            assert!((1..=2).contains(&runs), "step {i} of {n} ran {runs} times");
            again += runs - 1;
        }
    }
    assert!(
        again <= 4,
        "{again} steps ran again: only those whose commit failed"
    );
    assert!(engine.health().is_ok());
    engine.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// When the store cannot be read either (sled 0.34 fails some reads once a write failed),
/// `result()` keeps waiting, and `describe` shows the state the engine last committed
/// for the execution whose commit waits, saying that the rest is unavailable.
#[tokio::test]
async fn while_reads_fail_too_result_waits_and_describe_shows_the_last_commit() {
    let clock = TestClock::new(START);
    let store = faulty(&clock);
    let engine = engine(&store, &clock).await;
    start(&engine, 400).await;
    while store.load("x-400").await.unwrap().map(|r| r.status) != Some(Status::Suspended) {
        tokio::task::yield_now().await;
    }
    let asleep = store.load("x-400").await.unwrap().unwrap();

    // The sleep ends, and the commit of its end fails.
    store.fail_writes(FailWrites::Always);
    clock.advance(Duration::from_secs(1));
    until(|| {
        engine
            .health()
            .degraded
            .is_some_and(|d| d.waiting_executions == 1)
    })
    .await;
    store.fail_reads(true);
    assert!(store.load("x-400").await.is_err(), "reads fail");

    let pending = tokio::spawn({
        let handle = engine.handle(twenty, "x-400");
        async move { handle.result().await }
    });
    let description = engine.describe("x-400").await.unwrap();
    assert!(
        matches!(description.waiting_for, Some(Waiting::Store { .. })),
        "{:?}",
        description.waiting_for
    );
    let why = description.store_unavailable.expect("says what is missing");
    assert!(why.contains("injected read failure"), "{why}");
    assert_eq!(description.status, Status::Suspended, "as last committed");
    assert_eq!(description.updated_at, asleep.updated_at);
    assert!(description.point.is_some());
    assert!(description.history.is_empty());
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!pending.is_finished(), "result() keeps waiting");

    store.fail_reads(false);
    store.fail_writes(FailWrites::Never);
    let _driver = Driver::start(&clock);
    assert_eq!(pending.await.unwrap().unwrap(), Ok(expected(400)));
    for i in 0..STEPS {
        assert_eq!(runs(400, i), 1, "step {i}");
    }
    assert!(engine.health().is_ok());
    engine.shutdown().await;
}

/// A child of [`fanned`]: one step.
#[durable]
async fn fanned_child(ctx: Ctx, n: u64) -> u64 {
    ctx.step_infallible("triple", move || async move { n * 3 })
        .await
}

/// A batch of step items, then a batch of children (issue 13).
#[durable]
async fn fanned(ctx: Ctx, n: u64) -> (Vec<u64>, Vec<u64>) {
    let steps = ctx
        .map("steps", 0..20usize, move |i: usize| async move {
            ran(n, i as u32);
            Ok(n * 1000 + i as u64)
        })
        .max_in_flight(4)
        .await;
    let children = ctx
        .map(
            "children",
            (0..6).map(|i| n + i).collect::<Vec<_>>(),
            fanned_child,
        )
        .max_in_flight(3)
        .await;
    (
        steps.succeeded().copied().collect(),
        children.succeeded().copied().collect(),
    )
}

#[tokio::test]
async fn batches_lose_nothing_when_one_write_in_n_fails() {
    let clock = TestClock::new(START);
    let store = Arc::new(InstrumentedStore::new(MemoryStore::new()).with_clock(clock.clone()));
    let engine = EngineBuilder::with_store(store.clone())
        .register(fanned)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    store.fail_writes(FailWrites::OneIn(5));
    let _driver = Driver::start(&clock);
    let inputs = 700..706u64;
    let mut handles = Vec::new();
    for n in inputs.clone() {
        let handle = loop {
            match engine.start(fanned, format!("fan-{n}"), n).await {
                Ok(handle) => break handle,
                Err(Error::Store(StoreError::Backend(_))) => tokio::task::yield_now().await,
                Err(e) => panic!("start of {n}: {e}"),
            }
        };
        handles.push((n, handle));
    }
    for (n, handle) in handles {
        let (steps, children) = handle.result().await.unwrap();
        assert_eq!(steps, (0..20).map(|i| n * 1000 + i).collect::<Vec<_>>());
        assert_eq!(children, (0..6).map(|i| (n + i) * 3).collect::<Vec<_>>());
        let kids = engine
            .executions(&ListFilter::all().parent(format!("fan-{n}")))
            .await
            .unwrap();
        assert_eq!(kids.len(), 6, "one child per item");
        for i in 0..20 {
            assert!(runs(n, i) >= 1, "item {i} of {n} never ran");
        }
    }
    assert!(store.counts().failed_writes > 10);
    engine.shutdown().await;
}
