//! The engine end to end through `#[durable]` workflows: starts, results, restarts,
//! retries, the concurrency bound, shutdown, failures and version parking.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::{
    durable, Ctx, Engine, EngineBuilder, Error, Event, MemoryStore, RetryPolicy, Status, StepError,
    Store, TestClock, Timestamp,
};
use durable_store_sled::SledStore;
use serde::{Deserialize, Serialize};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("durable-engine-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Body runs by name: tests running in parallel greet different names.
static GREET_RUNS: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());

fn greet_runs(name: &str) -> u32 {
    GREET_RUNS.lock().unwrap().get(name).copied().unwrap_or(0)
}

#[durable]
async fn greet(ctx: Ctx, name: String) -> String {
    let greeting = ctx
        .step_infallible("compose", || async {
            *GREET_RUNS.lock().unwrap().entry(name.clone()).or_default() += 1;
            format!("hello, {name}")
        })
        .await;
    greeting
}

#[tokio::test]
async fn start_is_idempotent_and_conflicting_inputs_are_refused() {
    let engine = Engine::builder(MemoryStore::new())
        .register(greet)
        .open()
        .await
        .unwrap();
    let first = engine.start(greet, "g-1", "ada".into()).await.unwrap();
    assert_eq!(first.result().await.unwrap(), "hello, ada");
    let again = engine.start(greet, "g-1", "ada".into()).await.unwrap();
    assert_eq!(again.result().await.unwrap(), "hello, ada");
    assert_eq!(greet_runs("ada"), 1);
    match engine.start(greet, "g-1", "bob".into()).await {
        Err(Error::IdConflict { id, reason }) => {
            assert_eq!(id, "g-1");
            assert!(reason.contains("different input"), "{reason}");
        }
        other => panic!("expected IdConflict, got {other:?}"),
    }
    assert!(matches!(
        engine.start(greet, "", "x".into()).await,
        Err(Error::Invalid { .. })
    ));
    engine.shutdown().await;
}

#[tokio::test]
async fn unregistered_workflows_and_unknown_ids_are_typed_errors() {
    let engine = Engine::builder(MemoryStore::new()).open().await.unwrap();
    assert!(matches!(
        engine.start(greet, "x", "ada".into()).await,
        Err(Error::NotRegistered { workflow }) if workflow == "greet"
    ));
    assert!(matches!(
        engine.handle(greet, "nope").result().await,
        Err(Error::NotFound { .. })
    ));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_result_can_be_awaited_after_a_restart_on_sled() {
    let dir = scratch("restart");
    {
        let engine = Engine::builder(SledStore::open(&dir).unwrap())
            .register(greet)
            .open()
            .await
            .unwrap();
        let h = engine.start(greet, "r-1", "eve".into()).await.unwrap();
        h.result().await.unwrap();
        engine.shutdown().await;
    }
    let engine = Engine::builder(SledStore::open(&dir).unwrap())
        .register(greet)
        .open()
        .await
        .unwrap();
    let h = engine.handle(greet, "r-1");
    assert_eq!(h.result().await.unwrap(), "hello, eve");
    assert_eq!(h.status().await.unwrap(), Status::Completed);
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_second_engine_on_an_open_directory_gets_a_clear_error() {
    let dir = scratch("locked");
    let _store = SledStore::open(&dir).unwrap();
    let err = SledStore::open(&dir).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("already in use"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PayError {
    Transient(u32),
    Permanent,
}

static PAY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Fails with a transient error until `succeed_on`, or permanently if `succeed_on` is 0.
#[durable]
async fn pay(ctx: Ctx, succeed_on: u32) -> Result<u32, StepError<PayError>> {
    let attempt = ctx
        .step_with_attempt("charge", |attempt| async move {
            PAY_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
            if succeed_on == 0 {
                Err(PayError::Permanent)
            } else if attempt < succeed_on {
                Err(PayError::Transient(attempt))
            } else {
                Ok(attempt)
            }
        })
        .retry(
            RetryPolicy::exponential()
                .max_attempts(4)
                .initial_delay(Duration::from_secs(60))
                .max_delay(Duration::from_secs(3600))
                .jitter(0.0),
        )
        .retry_if(|e: &PayError| matches!(e, PayError::Transient(_)))
        .await?;
    Ok(attempt)
}

/// Drives `clock` past every wake-up until `handle` finishes.
async fn finish_with_clock<W: durable_core::Workflow>(
    engine: &Engine,
    clock: &TestClock,
    handle: &durable_core::Handle<W>,
) -> Result<W::Output, Error> {
    loop {
        let record = engine.execution(handle.id()).await?.expect("exists");
        match record.status {
            Status::Suspended => {
                if let Some(at) = record.wake_at {
                    clock.set(at);
                }
            }
            Status::Running => {}
            _ => return handle.result().await,
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn retries_back_off_exponentially_on_the_engine_clock() {
    let clock = TestClock::new(Timestamp::from_millis(0));
    let engine = EngineBuilder::new(MemoryStore::new())
        .register(pay)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let h = engine.start(pay, "p-3", 3).await.unwrap();
    assert_eq!(finish_with_clock(&engine, &clock, &h).await.unwrap(), Ok(3));
    // 60 s after attempt 1, 120 s after attempt 2.
    assert_eq!(clock.now(), Timestamp::from_millis(180_000));
    let history = engine.history("p-3").await.unwrap();
    let retry_times: Vec<_> = history
        .iter()
        .filter_map(|h| match &h.event {
            Event::StepFailed { retry_at, .. } => *retry_at,
            _ => None,
        })
        .collect();
    assert_eq!(
        retry_times,
        vec![
            Timestamp::from_millis(60_000),
            Timestamp::from_millis(180_000)
        ]
    );

    // Exhausted: a typed error the workflow returns.
    let h = engine.start(pay, "p-never", 99).await.unwrap();
    match finish_with_clock(&engine, &clock, &h).await.unwrap() {
        Err(StepError::Failed { error, attempts }) => {
            assert_eq!(attempts, 4);
            assert_eq!(error, PayError::Transient(4));
        }
        other => panic!("expected an exhausted step, got {other:?}"),
    }

    // A permanent error is not retried.
    let before = PAY_ATTEMPTS.load(Ordering::SeqCst);
    let h = engine.start(pay, "p-permanent", 0).await.unwrap();
    let out = finish_with_clock(&engine, &clock, &h).await.unwrap();
    assert_eq!(
        out,
        Err(StepError::Failed {
            error: PayError::Permanent,
            attempts: 1
        })
    );
    assert_eq!(PAY_ATTEMPTS.load(Ordering::SeqCst) - before, 1);
    engine.shutdown().await;
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[durable]
async fn occupy(ctx: Ctx, gate: u32) -> u32 {
    ctx.step_infallible("occupy", || async {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        // Yield a few times so that other executions get the chance to overlap.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    })
    .await;
    gate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_concurrent_executions_run_at_once() {
    let engine = Engine::builder(MemoryStore::new())
        .register(occupy)
        .max_concurrent(3)
        .open()
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..30 {
        handles.push(engine.start(occupy, format!("o-{i}"), i).await.unwrap());
    }
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(h.result().await.unwrap(), i as u32);
    }
    let peak = PEAK.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "peak concurrency {peak}");
    engine.shutdown().await;
}

#[durable]
async fn explode(ctx: Ctx, when: u32) -> u32 {
    let first = ctx.step_infallible("first", || async { 1u32 }).await;
    if when == 0 {
        panic!("boom between steps");
    }
    let second = ctx
        .step_infallible("second", || async move {
            if when == 1 {
                panic!("boom in a step");
            }
            2u32
        })
        .await;
    first + second
}

#[tokio::test]
async fn panics_fail_the_execution_with_their_message() {
    let engine = Engine::builder(MemoryStore::new())
        .register(explode)
        .open()
        .await
        .unwrap();
    for (when, needle) in [(0, "boom between steps"), (1, "boom in a step")] {
        let h = engine
            .start(explode, format!("x-{when}"), when)
            .await
            .unwrap();
        match h.result().await {
            Err(Error::Failed { message, .. }) => assert!(message.contains(needle), "{message}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_eq!(h.status().await.unwrap(), Status::Failed);
    }
    let ok = engine.start(explode, "x-ok", 2).await.unwrap();
    assert_eq!(ok.result().await.unwrap(), 3);
    engine.shutdown().await;
}

mod v1 {
    use super::*;
    /// Version 1 of a workflow that later changes.
    #[durable(name = "evolving")]
    pub async fn evolving(ctx: Ctx, n: u32) -> String {
        let a = ctx
            .step_with_attempt("wait", |attempt| async move {
                if attempt == 1 {
                    Err(())
                } else {
                    Ok(n)
                }
            })
            .retry(RetryPolicy::fixed(Duration::from_secs(10)).max_attempts(2))
            .await
            .unwrap_or(0);
        format!("v1:{a}")
    }
}

mod v2 {
    use super::*;
    /// Version 2: a different body, same name.
    #[durable(name = "evolving")]
    pub async fn evolving(ctx: Ctx, n: u32) -> String {
        let a = ctx.step_infallible("double", || async move { n * 2 }).await;
        format!("v2:{a}")
    }
}

#[tokio::test]
async fn executions_resume_only_on_the_version_that_wrote_them() {
    let store = Arc::new(MemoryStore::new());
    let clock = TestClock::new(Timestamp::from_millis(0));
    let engine = EngineBuilder::with_store(store.clone())
        .register(v1::evolving)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let old = engine.start(v1::evolving, "old", 5).await.unwrap();
    common::until_status(&*store, "old", Status::Suspended).await;
    engine.shutdown().await;

    // Deploy v2 only: the v1 execution parks, data intact; v2 executions run.
    let engine = EngineBuilder::with_store(store.clone())
        .register(v2::evolving)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    clock.advance(Duration::from_secs(10));
    let parked = engine.handle(v2::evolving, "old");
    match parked.result().await {
        Err(Error::Parked { message, .. }) => {
            assert!(message.contains("evolving"), "{message}")
        }
        other => panic!("expected parked, got {other:?}"),
    }
    let record = store.load("old").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Parked);
    assert!(record.position.is_some(), "the frame is kept");
    let new = engine.start(v2::evolving, "new", 5).await.unwrap();
    assert_eq!(new.result().await.unwrap(), "v2:10");
    engine.shutdown().await;

    // Register both: the parked execution drains on v1.
    let engine = EngineBuilder::with_store(store)
        .register(v1::evolving)
        .register(v2::evolving)
        .clock(clock)
        .open()
        .await
        .unwrap();
    assert_eq!(old.id(), "old");
    assert_eq!(
        engine.handle(v1::evolving, "old").result().await.unwrap(),
        "v1:5"
    );
    engine.shutdown().await;
}

static BETWEEN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

#[durable]
async fn counted(ctx: Ctx, _n: u32) -> u32 {
    BETWEEN.lock().unwrap().push("before-1");
    let a = ctx.step_infallible("one", || async { 1u32 }).await;
    BETWEEN.lock().unwrap().push("between-1-2");
    let b = ctx.step_infallible("two", || async { 2u32 }).await;
    BETWEEN.lock().unwrap().push("between-2-3");
    let c = ctx.step_infallible("three", || async { 3u32 }).await;
    BETWEEN.lock().unwrap().push("after-3");
    a + b + c
}

#[tokio::test]
async fn resuming_at_every_point_never_reruns_code_before_it() {
    let engine = Engine::builder(MemoryStore::new())
        .register(counted)
        .suspend_after_every_point(true)
        .open()
        .await
        .unwrap();
    let h = engine.start(counted, "n", 0).await.unwrap();
    assert_eq!(h.result().await.unwrap(), 6);
    assert_eq!(
        *BETWEEN.lock().unwrap(),
        vec!["before-1", "between-1-2", "between-2-3", "after-3"]
    );
    engine.shutdown().await;
}

static SLOW_STARTED: AtomicU32 = AtomicU32::new(0);

#[durable]
async fn slow(ctx: Ctx, steps: u32) -> u32 {
    let mut done = 0;
    for _ in 0..steps {
        ctx.step_infallible("tick", || async {
            SLOW_STARTED.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
        })
        .await;
        done += 1;
    }
    done
}

#[tokio::test]
async fn shutdown_stops_at_a_commit_and_a_new_engine_finishes() {
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(slow)
        .open()
        .await
        .unwrap();
    engine.start(slow, "s", 1_000).await.unwrap();
    while SLOW_STARTED.load(Ordering::SeqCst) < 5 {
        tokio::task::yield_now().await;
    }
    engine.shutdown().await;
    let record = store.load("s").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Running, "stopped between commits");
    assert!(record.position.is_some());
    assert!(matches!(
        engine.start(slow, "other", 1).await,
        Err(Error::ShutDown)
    ));
    let engine = EngineBuilder::with_store(store)
        .register(slow)
        .open()
        .await
        .unwrap();
    assert_eq!(engine.handle(slow, "s").result().await.unwrap(), 1_000);
    engine.shutdown().await;
}

#[durable]
async fn hoarder(ctx: Ctx, size: usize) -> usize {
    let blob = vec![7u8; size];
    ctx.step_infallible("touch", || async {}).await;
    blob.len()
}

#[tokio::test]
async fn oversized_inputs_and_frames_are_refused_with_a_clear_error() {
    let engine = Engine::builder(MemoryStore::new())
        .register(greet)
        .register(hoarder)
        .max_value_bytes(1024)
        .open()
        .await
        .unwrap();
    match engine.start(greet, "big", "x".repeat(4096)).await {
        Err(Error::Invalid { message }) => assert!(message.contains("limit"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(
        engine.execution("big").await.unwrap().is_none(),
        "nothing written"
    );
    assert_eq!(
        engine
            .start(hoarder, "small", 10)
            .await
            .unwrap()
            .result()
            .await
            .unwrap(),
        10
    );
    match engine
        .start(hoarder, "huge", 10_000)
        .await
        .unwrap()
        .result()
        .await
    {
        Err(Error::Failed { message, .. }) => {
            assert!(message.contains("frame"), "{message}");
            assert!(message.contains("limit"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    engine.shutdown().await;
}

/// A parameter and a local may share the workflow's name.
#[durable]
async fn order(ctx: Ctx, order: u32) -> u32 {
    let order = ctx
        .step_infallible("double", || async move { order * 2 })
        .await;
    order + 1
}

#[tokio::test]
async fn locals_may_share_the_workflow_name_and_the_type_is_nameable() {
    let engine = Engine::builder(MemoryStore::new())
        .register(order)
        .open()
        .await
        .unwrap();
    let handle: durable_core::Handle<order::Workflow> = engine.start(order, "o", 20).await.unwrap();
    assert_eq!(handle.result().await.unwrap(), 41);
    engine.shutdown().await;
}

#[tokio::test]
async fn dropping_the_last_engine_stops_it_and_releases_the_store() {
    let dir = scratch("drop");
    let store = SledStore::open(&dir).unwrap();
    let engine = Engine::builder(store).register(greet).open().await.unwrap();
    let handle = engine.start(greet, "d-1", "dee".into()).await.unwrap();
    assert_eq!(handle.result().await.unwrap(), "hello, dee");
    drop(engine);
    // A handle still reads the store, but does not keep the engine running.
    assert_eq!(handle.status().await.unwrap(), Status::Completed);
    drop(handle);
    // Once the engine's tasks have wound down, the directory can be opened again.
    let reopened = loop {
        match SledStore::open(&dir) {
            Ok(store) => break store,
            Err(durable_core::StoreError::Locked { .. }) => tokio::task::yield_now().await,
            Err(e) => panic!("{e}"),
        }
    };
    let engine = Engine::builder(reopened)
        .register(greet)
        .open()
        .await
        .unwrap();
    assert_eq!(
        engine.handle(greet, "d-1").result().await.unwrap(),
        "hello, dee"
    );
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
