//! How executions fail: a workflow that returns `Err` ends `Failed` with its output kept,
//! and a panic in a step body is a failed attempt that follows the step's retry policy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::{
    durable, Ctx, EngineBuilder, Error, Event, ListFilter, MemoryStore, RetryPolicy, Status,
    StepError, TestClock, Timestamp,
};
use serde::{Deserialize, Serialize};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// Body runs by label: tests in this file run in parallel.
static RUNS: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());

fn ran(label: &str) -> u32 {
    *RUNS.lock().unwrap().entry(label.to_owned()).or_default() += 1;
    RUNS.lock().unwrap()[label]
}

fn runs(label: &str) -> u32 {
    RUNS.lock().unwrap().get(label).copied().unwrap_or(0)
}

#[durable]
async fn charge(ctx: Ctx, label: String, amount: u32) -> Result<u32, String> {
    let approved = ctx
        .step_infallible("authorise", || async {
            ran(&label);
            amount <= 100
        })
        .await;
    if approved {
        Ok(amount)
    } else {
        Err(format!("card declined for {amount}"))
    }
}

/// Not a `Result`, though shaped like one: its `Err` is a business value like any other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Verdict {
    Ok(u32),
    Err(String),
}

#[durable]
async fn judge(ctx: Ctx, n: u32) -> Verdict {
    let even = ctx.step_infallible("parity", || async { n % 2 == 0 }).await;
    if even {
        Verdict::Ok(n)
    } else {
        Verdict::Err("odd".into())
    }
}

fn engine_over(store: Arc<MemoryStore>) -> EngineBuilder {
    EngineBuilder::with_store(store)
        .register(charge)
        .register(judge)
        .clock(TestClock::new(START).auto_advance(true))
}

async fn ids(engine: &durable_core::Engine, status: Status) -> Vec<String> {
    let filter = ListFilter::all().status(status);
    let records = engine.executions(&filter).await.unwrap();
    records.into_iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn a_workflow_that_returns_err_is_failed_and_keeps_its_output() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine_over(store.clone()).open().await.unwrap();
    let paid = engine
        .start(charge, "paid", ("paid".into(), 50))
        .await
        .unwrap();
    let declined = engine
        .start(charge, "declined", ("declined".into(), 500))
        .await
        .unwrap();
    assert_eq!(paid.result().await.unwrap(), Ok(50));
    assert_eq!(
        declined.result().await.unwrap(),
        Err("card declined for 500".to_string())
    );
    assert_eq!(paid.status().await.unwrap(), Status::Completed);
    assert_eq!(declined.status().await.unwrap(), Status::Failed);
    assert_eq!(ids(&engine, Status::Failed).await, vec!["declined"]);
    assert_eq!(ids(&engine, Status::Completed).await, vec!["paid"]);

    let d = engine.describe("declined").await.unwrap();
    assert_eq!(d.status, Status::Failed);
    let message = d.message.expect("a failed execution says why");
    assert!(message.contains("card declined for 500"), "{message}");
    assert_eq!(
        d.output,
        Some(serde_json::json!({ "Err": "card declined for 500" }))
    );
    assert!(matches!(
        d.history.last().map(|h| &h.event),
        Some(Event::Failed { message }) if message.contains("card declined")
    ));

    // Starting it again finds the failed execution and runs nothing.
    let again = engine
        .start(charge, "declined", ("declined".into(), 500))
        .await
        .unwrap();
    assert_eq!(
        again.result().await.unwrap(),
        Err("card declined for 500".to_string())
    );
    engine.shutdown().await;

    // Nor does a new engine over the same store.
    let engine = engine_over(store).open().await.unwrap();
    let handle = engine.handle(charge, "declined");
    assert_eq!(
        handle.result().await.unwrap(),
        Err("card declined for 500".to_string())
    );
    assert_eq!(handle.status().await.unwrap(), Status::Failed);
    assert_eq!(runs("declined"), 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn only_a_result_err_fails_an_execution() {
    let engine = engine_over(Arc::new(MemoryStore::new()))
        .open()
        .await
        .unwrap();
    let odd = engine.start(judge, "odd", 3).await.unwrap();
    assert_eq!(odd.result().await.unwrap(), Verdict::Err("odd".into()));
    assert_eq!(odd.status().await.unwrap(), Status::Completed);
    engine.shutdown().await;
}

/// Panics on every attempt before `succeed_on` (from 1; 0 never succeeds).
async fn fragile(label: &str, attempt: u32, succeed_on: u32) -> Result<u32, String> {
    ran(label);
    if succeed_on == 0 || attempt < succeed_on {
        panic!("{label} broke on attempt {attempt}");
    }
    Ok(attempt)
}

#[durable]
async fn retried(
    ctx: Ctx,
    label: String,
    succeed_on: u32,
    max_attempts: u32,
) -> Result<u32, StepError<String>> {
    let attempt = ctx
        .step_with_attempt("fragile", |attempt| fragile(&label, attempt, succeed_on))
        .retry(RetryPolicy::fixed(Duration::from_secs(10)).max_attempts(max_attempts))
        .await?;
    Ok(attempt)
}

#[durable]
async fn judged(ctx: Ctx, label: String, retry_panics: bool) -> Result<u32, StepError<String>> {
    let attempt = ctx
        .step_with_attempt("fragile", |attempt| fragile(&label, attempt, 2))
        .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(3))
        .retry_if(|e: &String| e.contains("transient"))
        .retry_panics(retry_panics)
        .await?;
    Ok(attempt)
}

/// Panics in the closure itself, before it returns a future.
#[durable]
async fn eager(ctx: Ctx, label: String) -> Result<u32, StepError<String>> {
    let attempt = ctx
        .step_with_attempt("eager", |attempt| {
            if attempt == 1 {
                ran(&label);
                panic!("{label} broke before its future");
            }
            async move { Ok::<u32, String>(attempt) }
        })
        .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(2))
        .at_most_once()
        .await?;
    Ok(attempt)
}

fn panicking_engine(store: Arc<MemoryStore>) -> EngineBuilder {
    EngineBuilder::with_store(store)
        .register(retried)
        .register(judged)
        .register(eager)
        .clock(TestClock::new(START).auto_advance(true))
}

#[tokio::test]
async fn a_panicking_step_body_is_a_failed_attempt_that_is_retried() {
    let engine = panicking_engine(Arc::new(MemoryStore::new()))
        .open()
        .await
        .unwrap();
    let h = engine
        .start(retried, "heals", ("heals".into(), 3, 5))
        .await
        .unwrap();
    assert_eq!(h.result().await.unwrap(), Ok(3));
    assert_eq!(runs("heals"), 3);
    assert_eq!(h.status().await.unwrap(), Status::Completed);
    let panics: Vec<_> = engine
        .history("heals")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|h| match h.event {
            Event::StepPanicked {
                attempt,
                message,
                retry_at,
                ..
            } => Some((attempt, message, retry_at.is_some())),
            _ => None,
        })
        .collect();
    assert_eq!(
        panics,
        vec![
            (1, "heals broke on attempt 1".to_string(), true),
            (2, "heals broke on attempt 2".to_string(), true),
        ]
    );

    // Out of attempts: the step gives up with the last panic, which the workflow sees.
    let h = engine
        .start(retried, "broken", ("broken".into(), 0, 2))
        .await
        .unwrap();
    assert_eq!(
        h.result().await.unwrap(),
        Err(StepError::Panicked {
            message: "broken broke on attempt 2".into(),
            attempts: 2
        })
    );
    assert_eq!(runs("broken"), 2);
    engine.shutdown().await;
}

#[tokio::test]
async fn under_retry_if_a_panic_is_retried_only_when_asked() {
    let engine = panicking_engine(Arc::new(MemoryStore::new()))
        .open()
        .await
        .unwrap();
    let strict = engine
        .start(judged, "strict", ("strict".into(), false))
        .await
        .unwrap();
    match strict.result().await.unwrap() {
        Err(StepError::Panicked { message, attempts }) => {
            assert_eq!(attempts, 1);
            assert!(message.contains("strict broke on attempt 1"), "{message}");
        }
        other => panic!("expected a panicked step, got {other:?}"),
    }
    assert_eq!(runs("strict"), 1);
    let lenient = engine
        .start(judged, "lenient", ("lenient".into(), true))
        .await
        .unwrap();
    assert_eq!(lenient.result().await.unwrap(), Ok(2));
    assert_eq!(runs("lenient"), 2);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_panic_before_the_body_returns_its_future_is_a_failed_attempt_too() {
    let engine = panicking_engine(Arc::new(MemoryStore::new()))
        .open()
        .await
        .unwrap();
    let h = engine.start(eager, "eager", "eager".into()).await.unwrap();
    assert_eq!(h.result().await.unwrap(), Ok(2));
    assert_eq!(runs("eager"), 1);
    engine.shutdown().await;
}

#[durable]
async fn certain(ctx: Ctx, label: String) -> u32 {
    let n = ctx
        .step_infallible("certain", || async {
            ran(&label);
            panic!("{label} cannot fail, yet did")
        })
        .await;
    n
}

#[tokio::test]
async fn a_panic_in_an_infallible_step_fails_the_execution() {
    let engine = EngineBuilder::new(MemoryStore::new())
        .register(certain)
        .open()
        .await
        .unwrap();
    let h = engine
        .start(certain, "certain", "certain".into())
        .await
        .unwrap();
    match h.result().await {
        Err(Error::Failed { message, .. }) => {
            assert!(message.contains("cannot fail, yet did"), "{message}");
            assert!(message.contains("`certain`"), "{message}");
        }
        other => panic!("expected a failed execution, got {other:?}"),
    }
    assert_eq!(h.status().await.unwrap(), Status::Failed);
    assert_eq!(runs("certain"), 1);
    engine.shutdown().await;
}
