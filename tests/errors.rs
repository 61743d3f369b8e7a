//! Errors that compose (issue 10, item 1): a workflow returning `Result<T, Failure>` uses
//! `?` across steps, waits and conditions with no `From` impl of its own; step bodies
//! return any `std::error::Error` through `?`; a terminal failure is never retried; typed
//! errors stay available through `ctx.typed_step`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use durable_core::{
    durable, ConditionError, Ctx, Engine, Failure, FailureExt, MemoryStore, RetryPolicy, Status,
    StepError, TestClock, Timestamp, WaitError,
};
use serde::{Deserialize, Serialize};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// An I/O client's error, as a step body meets it.
async fn read_stock(sku: &str) -> std::io::Result<u32> {
    match sku {
        "missing" => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such sku",
        )),
        _ => Ok(u32::try_from(sku.len()).unwrap_or(u32::MAX)),
    }
}

/// Steps, a sleep and a condition wait, all propagated with `?` into a `Failure`.
#[durable]
async fn restock(ctx: Ctx, sku: String) -> Result<u32, Failure> {
    let stock = ctx
        .step("read-stock", || async move {
            let n = read_stock(&sku).await?; // std::io::Error -> Failure
            Ok(n)
        })
        .await?; // StepError<Failure> -> Failure
    ctx.sleep(Duration::from_secs(60)).name("settle").await?; // WaitError -> Failure
    let counted = ctx
        .wait_for_condition("count", 0u32, |n: u32| async move { n + 1 })
        .until(move |n: &u32| *n >= stock)
        .backoff(RetryPolicy::fixed(Duration::ZERO).max_attempts(3))
        .await?; // ConditionError<u32> -> Failure
    Ok(counted)
}

async fn engine_with<W: durable_core::WorkflowFn>(workflow: W) -> Engine {
    Engine::builder(MemoryStore::new())
        .clock(TestClock::new(START).auto_advance(true))
        .register(workflow)
        .open()
        .await
        .unwrap()
}

#[tokio::test]
async fn question_mark_composes_steps_waits_and_conditions_into_a_failure() {
    let engine = engine_with(restock).await;
    let ok = engine.start(restock, "ok", "ab".to_string()).await.unwrap();
    assert_eq!(ok.result().await.unwrap(), Ok(2));

    // The step's io::Error, through the step error, into the workflow's failure: its type
    // and message survive, and the execution is failed with that text.
    let missing = engine
        .start(restock, "missing", "missing".to_string())
        .await
        .unwrap();
    let failure = missing.result().await.unwrap().unwrap_err();
    assert!(failure.is::<std::io::Error>(), "{failure:?}");
    assert_eq!(
        failure.to_string(),
        "step failed after 1 attempt(s): no such sku"
    );
    let record = engine.execution("missing").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Failed);
    assert_eq!(
        record.message.as_deref(),
        Some("the workflow returned an error: step failed after 1 attempt(s): no such sku")
    );

    // A condition that runs out of checks, through `?`.
    let short = engine
        .start(restock, "short", "abcdef".to_string())
        .await
        .unwrap();
    let failure = short.result().await.unwrap().unwrap_err();
    assert!(failure.is::<ConditionError<u32>>(), "{failure:?}");
    assert!(failure.to_string().contains("after 3 checks"), "{failure}");
    engine.shutdown().await;
}

#[durable]
async fn too_long(ctx: Ctx, _: ()) -> Result<(), Failure> {
    ctx.sleep(Duration::from_secs(200 * 365 * 86_400)).await?;
    Ok(())
}

#[tokio::test]
async fn a_wait_error_converts_too() {
    let engine = engine_with(too_long).await;
    let failure = engine
        .start(too_long, "far", ())
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap_err();
    assert!(failure.is::<WaitError>(), "{failure:?}");
    engine.shutdown().await;
}

static CALLS: AtomicU32 = AtomicU32::new(0);

#[durable]
async fn parse_order(ctx: Ctx, text: String) -> Result<u32, Failure> {
    let n = ctx
        .step("parse", || async move {
            CALLS.fetch_add(1, Ordering::SeqCst);
            // Bad input will not parse better next time.
            let n: u32 = text.trim().parse().terminal()?;
            Ok(n)
        })
        .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(5))
        .await?;
    Ok(n)
}

#[tokio::test]
async fn a_terminal_failure_is_not_retried_whatever_the_policy() {
    let engine = engine_with(parse_order).await;
    CALLS.store(0, Ordering::SeqCst);
    let failure = engine
        .start(parse_order, "bad", "ten".to_string())
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        1,
        "a terminal failure was retried"
    );
    assert!(failure.is_terminal());
    assert!(failure.is::<std::num::ParseIntError>(), "{failure:?}");
    assert_eq!(
        engine.compact_history("bad").await.unwrap(),
        ["step parse: failed #1, gave up", "failed"]
    );
    let good = engine
        .start(parse_order, "good", " 7 ".to_string())
        .await
        .unwrap();
    assert_eq!(good.result().await.unwrap(), Ok(7));
    engine.shutdown().await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PayError {
    Declined { code: u16 },
    Unavailable,
}

static PAY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Typed errors: the workflow matches on the body's own error type.
#[durable]
async fn pay(ctx: Ctx, outcome: u8) -> Result<String, String> {
    let paid = ctx
        .typed_step("charge", || async move {
            PAY_CALLS.fetch_add(1, Ordering::SeqCst);
            match outcome {
                0 => Ok("paid".to_string()),
                1 => Err(PayError::Declined { code: 51 }),
                _ => Err(PayError::Unavailable),
            }
        })
        .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(3))
        .retry_if(|e: &PayError| matches!(e, PayError::Unavailable))
        .await;
    match paid {
        Ok(receipt) => Ok(receipt),
        Err(StepError::Failed {
            error: PayError::Declined { code },
            attempts,
        }) => Err(format!("declined {code} after {attempts}")),
        Err(other) => Err(format!("gave up: {other:?}")),
    }
}

#[tokio::test]
async fn typed_errors_are_recorded_as_they_are_and_can_be_matched() {
    let engine = engine_with(pay).await;
    let run = |id: &'static str, outcome: u8| {
        let engine = engine.clone();
        async move {
            PAY_CALLS.store(0, Ordering::SeqCst);
            let result = engine
                .start(pay, id, outcome)
                .await
                .unwrap()
                .result()
                .await
                .unwrap();
            (result, PAY_CALLS.load(Ordering::SeqCst))
        }
    };
    assert_eq!(run("paid", 0).await, (Ok("paid".into()), 1));
    assert_eq!(
        run("declined", 1).await,
        (Err("declined 51 after 1".into()), 1)
    );
    assert_eq!(
        run("down", 2).await,
        (
            Err("gave up: Failed { error: Unavailable, attempts: 3 }".into()),
            3
        )
    );
    engine.shutdown().await;
}

#[test]
fn a_failure_is_a_box_dyn_error_where_one_is_needed() {
    fn main_like() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err(Failure::new("inner").context("outer"))?;
        Ok(())
    }
    let error = main_like().unwrap_err();
    assert_eq!(error.to_string(), "outer");
    assert_eq!(error.source().map(|s| s.to_string()), Some("inner".into()));
}
