//! Step and wait options (issue 10, item 4): a timeout per attempt, a retry strategy
//! closure, a total retry budget, fallible condition checks, and waits named after their
//! source line. All on the test clock: no test sleeps in real time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use durable_core::{
    durable, ConditionError, Ctx, Engine, Failure, MemoryStore, RetryDecision, RetryPolicy,
    StepContext, StepError, TestClock, Timestamp, Until, WaitError,
};
use tokio::sync::Notify;

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const SECOND: Duration = Duration::from_secs(1);

async fn engine<W: durable_core::WorkflowFn>(workflow: W, clock: &TestClock) -> Engine {
    Engine::builder(MemoryStore::new())
        .clock(clock.clone())
        .register(workflow)
        .open()
        .await
        .unwrap()
}

/// Signals from hanging bodies that they have started, one per test.
static STARTED: [Notify; 3] = [
    Notify::const_new(),
    Notify::const_new(),
    Notify::const_new(),
];

/// Hangs (until its timeout) on the attempts before `answer_on`, then answers.
#[durable]
async fn hangs(ctx: Ctx, (answer_on, test): (u32, usize)) -> Result<u32, StepError> {
    ctx.step("hang", |s: StepContext| async move {
        if s.attempt() < answer_on {
            STARTED[test].notify_one();
            std::future::pending::<()>().await;
        }
        Ok(s.attempt())
    })
    .timeout(10 * SECOND)
    .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(3))
    .await
}

#[tokio::test]
async fn an_attempt_that_outlives_its_timeout_fails_and_is_retried() {
    let clock = TestClock::new(START);
    let engine = engine(hangs, &clock).await;
    let handle = engine.start(hangs, "slow", (3, 0)).await.unwrap();
    for _ in 0..2 {
        STARTED[0].notified().await;
        clock.advance(10 * SECOND);
    }
    assert_eq!(handle.result().await.unwrap(), Ok(3));
    assert_eq!(
        engine.compact_history("slow").await.unwrap(),
        [
            "step hang: timed out #1, retrying",
            "step hang: timed out #2, retrying",
            "step hang: succeeded #3",
            "completed"
        ]
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_step_whose_last_attempt_times_out_gives_up_with_timed_out() {
    let clock = TestClock::new(START);
    let engine = engine(hangs, &clock).await;
    let handle = engine.start(hangs, "never", (99, 1)).await.unwrap();
    for _ in 0..3 {
        STARTED[1].notified().await;
        clock.advance(10 * SECOND);
    }
    assert_eq!(
        handle.result().await.unwrap(),
        Err(StepError::TimedOut {
            attempts: 3,
            timeout_ms: 10_000
        })
    );
    engine.shutdown().await;
}

/// What the strategy was asked, in order.
static ASKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Fails in a different way on each attempt: an error, a panic, a timeout; then succeeds.
#[durable]
async fn varied(ctx: Ctx, _: ()) -> Result<u32, StepError> {
    ctx.step("varied", |s: StepContext| async move {
        match s.attempt() {
            1 => Err(Failure::new("plain error")),
            2 => panic!("broken"),
            3 => {
                STARTED[2].notify_one();
                std::future::pending::<Result<u32, Failure>>().await
            }
            n => Ok(n),
        }
    })
    .timeout(5 * SECOND)
    .retry_strategy(|error: &StepError, attempt| {
        let kind = match error {
            StepError::Failed { error, .. } => format!("failed: {error}"),
            StepError::Panicked { message, .. } => format!("panicked: {message}"),
            StepError::TimedOut { .. } => "timed out".to_owned(),
            other => format!("{other:?}"),
        };
        ASKED.lock().unwrap().push(format!("{attempt} {kind}"));
        // An hour after the error, at once after the rest.
        RetryDecision::RetryAfter(if attempt == 1 {
            3600 * SECOND
        } else {
            Duration::ZERO
        })
    })
    .await
}

#[tokio::test]
async fn the_strategy_decides_after_every_kind_of_failure() {
    let clock = TestClock::new(START);
    let engine = engine(varied, &clock).await;
    let handle = engine.start(varied, "varied", ()).await.unwrap();
    // After the first failure the strategy asked for an hour: the execution sleeps until then.
    let record = engine
        .wait_until("varied", Until::suspended_at("varied"))
        .await
        .unwrap();
    assert_eq!(record.wake_at, Some(START.saturating_add(3600 * SECOND)));
    clock.advance(3600 * SECOND);
    STARTED[2].notified().await;
    clock.advance(5 * SECOND);
    assert_eq!(handle.result().await.unwrap(), Ok(4));
    assert_eq!(
        *ASKED.lock().unwrap(),
        ["1 failed: plain error", "2 panicked: broken", "3 timed out"]
    );
    engine.shutdown().await;
}

static STOPPED_AFTER: AtomicU32 = AtomicU32::new(0);

#[durable]
async fn stops(ctx: Ctx, limit: u32) -> Result<u32, StepError> {
    ctx.step("stops", |s: StepContext| async move {
        STOPPED_AFTER.store(s.attempt(), Ordering::SeqCst);
        Err::<u32, _>(Failure::new("always"))
    })
    // A policy the strategy overrides: it would allow 100 attempts.
    .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(100))
    .retry_strategy(move |_: &StepError, attempt| {
        if attempt < limit {
            RetryDecision::RetryAfter(Duration::ZERO)
        } else {
            RetryDecision::Stop
        }
    })
    .await
}

#[tokio::test]
async fn a_strategy_that_stops_ends_the_step_with_the_last_error() {
    let clock = TestClock::new(START);
    let engine = engine(stops, &clock).await;
    let result = engine
        .start(stops, "stops", 4)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(STOPPED_AFTER.load(Ordering::SeqCst), 4);
    assert!(
        matches!(&result, Err(StepError::Failed { attempts: 4, error }) if error.message() == "always"),
        "{result:?}"
    );
    engine.shutdown().await;
}

static BUDGET_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Retries every 10 s without a limit on attempts, within a 25 s budget.
#[durable]
async fn budgeted(ctx: Ctx, _: ()) -> Result<u32, StepError> {
    ctx.step("budgeted", || async {
        BUDGET_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
        Err::<u32, _>(Failure::new("still down"))
    })
    .retry(RetryPolicy::fixed(10 * SECOND).max_attempts(u32::MAX))
    .max_retry_duration(25 * SECOND)
    .await
}

#[tokio::test]
async fn no_retry_starts_after_the_budget_is_spent() {
    let clock = TestClock::new(START).auto_advance(true);
    let engine = engine(budgeted, &clock).await;
    let result = engine
        .start(budgeted, "budget", ())
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    // Attempts at 0 s, 10 s and 20 s; the one at 30 s would start after the 25 s budget.
    assert_eq!(BUDGET_ATTEMPTS.load(Ordering::SeqCst), 3);
    assert!(
        matches!(result, Err(StepError::Failed { attempts: 3, .. })),
        "{result:?}"
    );
    assert_eq!(clock.now(), START.saturating_add(20 * SECOND));
    engine.shutdown().await;
}

/// Checks fail on odd checks; the state only moves on good ones.
#[durable]
async fn flaky_condition(ctx: Ctx, fail_from: u32) -> Result<u32, ConditionError<u32>> {
    ctx.wait_for_condition("flaky", 0u32, move |n: u32| async move {
        if n >= fail_from {
            return Err(Failure::terminal(format!("gave up at {n}")));
        }
        let calls = CHECKS.fetch_add(1, Ordering::SeqCst) + 1;
        if calls % 2 == 1 {
            Err(Failure::new(format!("check {calls} failed")))
        } else {
            Ok(n + 1)
        }
    })
    .until(|n: &u32| *n >= 3)
    .backoff(RetryPolicy::fixed(SECOND).max_attempts(8))
    .await
}

static CHECKS: AtomicU32 = AtomicU32::new(0);

#[tokio::test]
async fn a_failed_check_follows_the_backoff_and_keeps_the_last_good_state() {
    let clock = TestClock::new(START).auto_advance(true);
    let engine = engine(flaky_condition, &clock).await;
    CHECKS.store(0, Ordering::SeqCst);
    let ok = engine
        .start(flaky_condition, "ok", 100)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(ok, Ok(3));
    assert_eq!(CHECKS.load(Ordering::SeqCst), 6);
    let history = engine.compact_history("ok").await.unwrap();
    assert_eq!(
        history,
        [
            "condition flaky: check failed #1, retrying",
            "condition flaky: checked #2, waiting",
            "condition flaky: check failed #3, retrying",
            "condition flaky: checked #4, waiting",
            "condition flaky: check failed #5, retrying",
            "condition flaky: checked #6, done",
            "completed"
        ]
    );

    // A terminal failure ends the wait at once, with the last good state.
    CHECKS.store(0, Ordering::SeqCst);
    let stopped = engine
        .start(flaky_condition, "terminal", 1)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    match stopped {
        Err(ConditionError::Failed {
            error,
            state,
            attempts,
        }) => {
            assert_eq!((state, attempts), (1, 3));
            assert!(error.is_terminal());
            assert_eq!(error.to_string(), "gave up at 1");
        }
        other => panic!("expected a failed condition, got {other:?}"),
    }
    engine.shutdown().await;
}

/// Two unnamed sleeps and a named one.
#[durable]
async fn naps(ctx: Ctx, _: ()) -> Result<(), WaitError> {
    ctx.sleep(SECOND).await?;
    ctx.sleep_until(ctx.now().saturating_add(SECOND)).await?;
    ctx.sleep(SECOND).name("named").await?;
    Ok(())
}

#[tokio::test]
async fn unnamed_waits_are_named_after_their_line() {
    let clock = TestClock::new(START);
    let engine = engine(naps, &clock).await;
    let handle = engine.start(naps, "naps", ()).await.unwrap();
    let mut names = Vec::new();
    for _ in 0..3 {
        let record = engine
            .wait_until(
                "naps",
                Until::matching("suspended at the next nap", {
                    let seen = names.len();
                    move |r, h| {
                        r.status == durable_core::Status::Suspended
                            && h.iter()
                                .filter(|e| e.event.summary().ends_with("started"))
                                .count()
                                > seen
                    }
                }),
            )
            .await
            .unwrap();
        // The macro records the `.await`'s line; the wait's default name has the line of
        // the `ctx.sleep(..)` call, the same line here.
        let line = engine.describe("naps").await.unwrap().point.unwrap().line;
        let name = engine
            .history("naps")
            .await
            .unwrap()
            .last()
            .and_then(|e| e.event.name().map(str::to_owned))
            .unwrap();
        names.push((name, line));
        assert_eq!(record.wake_at, Some(clock.now().saturating_add(SECOND)));
        clock.advance(SECOND);
    }
    handle.result().await.unwrap().unwrap();
    assert_eq!(names[0].0, format!("sleep (line {})", names[0].1));
    assert_eq!(names[1].0, format!("sleep (line {})", names[1].1));
    assert_ne!(names[0].0, names[1].0);
    assert_eq!(names[2].0, "named");
    engine.shutdown().await;
}
