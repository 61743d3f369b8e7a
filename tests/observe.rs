//! Test helpers (issue 10, item 5): `Engine::wait_until` observes intermediate states
//! without polling on a timer, and `Engine::compact_history` gives the history as lines
//! to assert on. On the test clock; no test sleeps in real time.

use std::time::Duration;

use durable_core::{
    durable, Ctx, Engine, Error, Failure, MemoryStore, RetryPolicy, Status, StepContext, TestClock,
    Timestamp, Until,
};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const HOUR: Duration = Duration::from_secs(3600);

/// A step that fails once and retries an hour later, then a day-long sleep.
#[durable]
async fn onboarding(ctx: Ctx, user: String) -> Result<String, Failure> {
    let account = ctx
        .step("create-account", |s: StepContext| async move {
            if s.attempt() == 1 {
                return Err(Failure::new("directory unavailable"));
            }
            Ok(format!("acct-{user}"))
        })
        .retry(RetryPolicy::fixed(HOUR).max_attempts(2))
        .await?;
    ctx.sleep(24 * HOUR).name("cooling-off").await?;
    Ok(account)
}

async fn open(clock: &TestClock) -> Engine {
    Engine::builder(MemoryStore::new())
        .clock(clock.clone())
        .register(onboarding)
        .open()
        .await
        .unwrap()
}

#[tokio::test]
async fn wait_until_follows_an_execution_through_its_suspensions() {
    let clock = TestClock::new(START);
    let engine = open(&clock).await;
    let handle = engine
        .start(onboarding, "ada", "ada".to_string())
        .await
        .unwrap();

    let retrying = engine
        .wait_until("ada", Until::suspended_at("create-account"))
        .await
        .unwrap();
    assert_eq!(retrying.status, Status::Suspended);
    assert_eq!(retrying.wake_at, Some(START.saturating_add(HOUR)));
    // Not there yet: the execution is suspended at the step, not at the sleep.
    assert!(engine
        .compact_history("ada")
        .await
        .unwrap()
        .iter()
        .all(|line| !line.contains("cooling-off")));

    clock.advance(HOUR);
    let sleeping = engine
        .wait_until("ada", Until::suspended_at("cooling-off"))
        .await
        .unwrap();
    assert_eq!(
        sleeping.wake_at,
        Some(START.saturating_add(HOUR + 24 * HOUR))
    );
    engine
        .wait_until("ada", Until::reached("create-account"))
        .await
        .unwrap();
    engine.wait_until("ada", Until::suspended()).await.unwrap();

    clock.advance(24 * HOUR);
    let done = engine.wait_until("ada", Until::finished()).await.unwrap();
    assert_eq!(done.status, Status::Completed);
    assert_eq!(handle.result().await.unwrap(), Ok("acct-ada".to_string()));
    assert_eq!(
        engine.compact_history("ada").await.unwrap(),
        [
            "step create-account: failed #1, retrying",
            "step create-account: succeeded #2",
            "wait cooling-off: started",
            "wait cooling-off: finished",
            "completed"
        ]
    );
    // A state already reached is returned at once.
    engine
        .wait_until("ada", Until::status(Status::Completed))
        .await
        .unwrap();
    engine.shutdown().await;
}

#[tokio::test]
async fn a_state_the_execution_can_no_longer_reach_is_an_error_not_a_hang() {
    let clock = TestClock::new(START).auto_advance(true);
    let engine = open(&clock).await;
    engine
        .start(onboarding, "grace", "grace".to_string())
        .await
        .unwrap();
    engine.wait_until("grace", Until::finished()).await.unwrap();
    let never = engine
        .wait_until("grace", Until::suspended_at("no-such-step"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &never,
            Error::NotReached { id, status: Status::Completed, wanted }
                if id == "grace" && wanted == "suspended at `no-such-step`"
        ),
        "{never:?}"
    );
    assert_eq!(
        never.to_string(),
        "execution \"grace\" is completed and will not reach the awaited state (suspended at `no-such-step`)"
    );
    let missing = engine
        .wait_until("nobody", Until::finished())
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_waiter_is_released_when_the_engine_shuts_down() {
    let clock = TestClock::new(START);
    let engine = open(&clock).await;
    engine
        .start(onboarding, "lin", "lin".to_string())
        .await
        .unwrap();
    engine
        .wait_until("lin", Until::suspended_at("create-account"))
        .await
        .unwrap();
    // It will not finish without the clock moving: the waiter is still waiting when the
    // engine shuts down, and gets `ShutDown` rather than hanging.
    let waiter = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.wait_until("lin", Until::finished()).await })
    };
    tokio::task::yield_now().await;
    engine.shutdown().await;
    let outcome = waiter.await.unwrap();
    assert!(matches!(outcome, Err(Error::ShutDown)), "{outcome:?}");
}
