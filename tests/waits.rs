//! Durable waits: `ctx.sleep`, `ctx.sleep_until`, `ctx.wait_for_condition`, on the test
//! clock (manual and auto-advancing). No test sleeps in real time.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable_core::{
    durable, ConditionError, Ctx, Engine, EngineBuilder, Event, MemoryStore, RetryPolicy, Status,
    TestClock, Timestamp, WaitError, Waiting, MAX_WAIT,
};

const DAY: Duration = Duration::from_secs(86_400);
const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

#[durable]
async fn trial(ctx: Ctx, days: u64) -> Result<Timestamp, WaitError> {
    let started = ctx.now();
    ctx.sleep(DAY * days as u32).name("trial-period").await?;
    let ended = ctx.now();
    assert!(ended.saturating_duration_since(started) >= DAY * days as u32);
    Ok(ended)
}

#[tokio::test]
async fn a_year_long_sleep_finishes_in_milliseconds_on_an_auto_advancing_clock() {
    let clock = TestClock::new(START).auto_advance(true);
    let engine = EngineBuilder::new(MemoryStore::new())
        .register(trial)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let real = Instant::now();
    let ended = engine
        .start(trial, "year", 365)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    assert!(real.elapsed() < Duration::from_secs(10));
    assert_eq!(ended, START.saturating_add(DAY * 365));
    // The history records the virtual durations.
    let history = engine.history("year").await.unwrap();
    let started = history
        .iter()
        .find_map(|h| match &h.event {
            Event::WaitStarted { name, until } => Some((h.at, name.clone(), *until)),
            _ => None,
        })
        .expect("wait recorded");
    assert_eq!(started.1, "trial-period");
    assert_eq!(started.2.saturating_duration_since(started.0), DAY * 365);
    assert!(history
        .iter()
        .any(|h| matches!(&h.event, Event::WaitFinished { name } if name == "trial-period")));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_sleeping_execution_is_suspended_described_and_woken_on_time() {
    let clock = TestClock::new(START);
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(trial)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let handle = engine.start(trial, "month", 30).await.unwrap();
    let wake = START.saturating_add(DAY * 30);
    common::until_status(&*store, "month", Status::Suspended).await;
    let description = engine.describe("month").await.unwrap();
    assert_eq!(description.status, Status::Suspended);
    assert!(
        matches!(description.waiting_for, Some(Waiting::Sleep { until }) if until == wake),
        "{:?}",
        description.waiting_for
    );
    let point = description.point.expect("at a point");
    assert!(point.label.contains("sleep"), "{}", point.label);
    assert_eq!(point.state, "waiting");
    assert!(description.locals.iter().any(|l| l.name == "started"));

    // One millisecond early: still asleep.
    clock.set(Timestamp::from_millis(wake.as_millis() - 1));
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(handle.status().await.unwrap(), Status::Suspended);
    clock.set(wake);
    assert_eq!(handle.result().await.unwrap(), Ok(wake));
    engine.shutdown().await;
}

#[tokio::test]
async fn overdue_timers_fire_at_once_after_a_restart() {
    let clock = TestClock::new(START);
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(trial)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    engine.start(trial, "short", 1).await.unwrap();
    engine.start(trial, "long", 10).await.unwrap();
    for id in ["short", "long"] {
        common::until_status(&*store, id, Status::Suspended).await;
    }
    engine.shutdown().await;
    // Time passes while no engine runs.
    clock.advance(DAY * 2);
    let engine = EngineBuilder::with_store(store.clone())
        .register(trial)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let short = engine.handle(trial, "short").result().await.unwrap();
    assert_eq!(short, Ok(START.saturating_add(DAY * 2)));
    assert_eq!(
        engine.handle(trial, "long").status().await.unwrap(),
        Status::Suspended
    );
    clock.set(START.saturating_add(DAY * 10));
    assert_eq!(
        engine.handle(trial, "long").result().await.unwrap(),
        Ok(START.saturating_add(DAY * 10))
    );
    engine.shutdown().await;
}

#[durable]
async fn absurd(ctx: Ctx, until: Option<Timestamp>) -> Result<(), WaitError> {
    match until {
        Some(at) => ctx.sleep_until(at).await?,
        None => ctx.sleep(MAX_WAIT + DAY).await?,
    }
    Ok(())
}

#[tokio::test]
async fn absurd_waits_are_typed_errors_and_past_deadlines_complete_at_once() {
    let clock = TestClock::new(START);
    let engine = EngineBuilder::new(MemoryStore::new())
        .register(absurd)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let too_long = engine.start(absurd, "long", None).await.unwrap();
    assert!(matches!(
        too_long.result().await.unwrap(),
        Err(WaitError::TooFar { .. })
    ));
    let too_far = engine
        .start(absurd, "far", Some(Timestamp::from_millis(u64::MAX)))
        .await
        .unwrap();
    assert!(matches!(
        too_far.result().await.unwrap(),
        Err(WaitError::TooFar { .. })
    ));
    let past = engine
        .start(absurd, "past", Some(Timestamp::from_millis(5)))
        .await
        .unwrap();
    assert_eq!(past.result().await.unwrap(), Ok(()));
    engine.shutdown().await;
}

/// Checks run, by target: each test uses its own target, so tests running in parallel do
/// not count each other's checks.
static CHECKS: Mutex<BTreeMap<u32, u32>> = Mutex::new(BTreeMap::new());

fn checks(target: u32) -> u32 {
    CHECKS.lock().unwrap().get(&target).copied().unwrap_or(0)
}

/// Polls until the counter in the state reaches `target`, at most `max` checks.
#[durable]
async fn poll_until(ctx: Ctx, target: u32, max: u32) -> Result<u32, ConditionError<u32>> {
    let reached = ctx
        .wait_for_condition("counter", 0u32, |n: u32| async move {
            *CHECKS.lock().unwrap().entry(target).or_default() += 1;
            n + 1
        })
        .until(move |n: &u32| *n >= target)
        .backoff(
            RetryPolicy::exponential()
                .initial_delay(Duration::from_secs(10))
                .max_delay(Duration::from_secs(60))
                .jitter(0.0)
                .max_attempts(max),
        )
        .await?;
    Ok(reached)
}

#[tokio::test]
async fn wait_for_condition_persists_its_state_between_polls() {
    let clock = TestClock::new(START).auto_advance(true);
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(poll_until)
        .clock(clock.clone())
        .suspend_after_every_point(true)
        .open()
        .await
        .unwrap();
    let done = engine.start(poll_until, "ok", (5, 10)).await.unwrap();
    assert_eq!(done.result().await.unwrap(), Ok(5));
    assert_eq!(checks(5), 5);
    // Delays 10, 20, 40, 60 s between the five checks.
    assert_eq!(clock.now(), START.saturating_add(Duration::from_secs(130)));
    let history = engine.history("ok").await.unwrap();
    let checks: Vec<_> = history
        .iter()
        .filter_map(|h| match &h.event {
            Event::ConditionChecked { attempt, state, .. } => Some((*attempt, state.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        checks,
        (1..=5).map(|i| (i, i.to_string())).collect::<Vec<_>>()
    );

    let exhausted = engine.start(poll_until, "no", (100, 3)).await.unwrap();
    assert_eq!(
        exhausted.result().await.unwrap(),
        Err(ConditionError::Exhausted {
            state: 3,
            attempts: 3
        })
    );
    engine.shutdown().await;
}

/// Waits until `id` is suspended before condition check `attempt`; returns its wake-up.
async fn wait_for_check(engine: &Engine, id: &str, attempt: u32) -> Timestamp {
    loop {
        let d = engine.describe(id).await.unwrap();
        if let (Status::Suspended, Some(Waiting::Condition { attempt: a, at })) =
            (d.status, d.waiting_for)
        {
            if a == attempt {
                return at;
            }
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn condition_state_survives_an_engine_restart() {
    let clock = TestClock::new(START);
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(poll_until)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    engine.start(poll_until, "restart", (4, 10)).await.unwrap();
    // Let two checks run, then stop the engine while it waits for the third.
    let wake = wait_for_check(&engine, "restart", 2).await;
    clock.set(wake);
    wait_for_check(&engine, "restart", 3).await;
    engine.shutdown().await;
    let engine = EngineBuilder::with_store(store)
        .register(poll_until)
        .clock(clock.clone().auto_advance(true))
        .open()
        .await
        .unwrap();
    assert_eq!(checks(4), 2);
    assert_eq!(
        engine.handle(poll_until, "restart").result().await.unwrap(),
        Ok(4)
    );
    assert_eq!(
        checks(4),
        4,
        "checks 3 and 4 ran after the restart, not from scratch"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn the_engine_works_with_the_default_system_clock_too() {
    let engine = Engine::builder(MemoryStore::new())
        .register(trial)
        .open()
        .await
        .unwrap();
    let h = engine.start(trial, "zero", 0).await.unwrap();
    assert!(h.result().await.unwrap().is_ok());
    engine.shutdown().await;
}
