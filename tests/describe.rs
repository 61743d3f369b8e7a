//! `Engine::describe` on executions in every status.

mod common;

use std::sync::Arc;
use std::time::Duration;

use durable_core::{
    durable, Ctx, EngineBuilder, Error, Event, MemoryStore, RetryPolicy, Status, StepError, Store,
    TestClock, Timestamp, Waiting,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
    total_cents: u64,
}

/// Charges with a retry an hour later, then fails for good if told to.
#[durable]
async fn checkout(ctx: Ctx, cart: Cart, fail: bool) -> Result<String, StepError<String>> {
    let count = cart.items.len();
    let receipt = ctx
        .step_with_attempt("charge", |attempt| async move {
            if attempt == 1 {
                Err("card declined".to_string())
            } else {
                Ok(format!("paid {}", cart.total_cents))
            }
        })
        .retry(
            RetryPolicy::fixed(Duration::from_secs(3600))
                .max_attempts(2)
                .jitter(0.0),
        )
        .await?;
    if fail {
        panic!("shipping service is gone");
    }
    Ok(format!("{receipt} for {count} items"))
}

fn cart() -> Cart {
    Cart {
        items: vec!["book".into(), "lamp".into()],
        total_cents: 4250,
    }
}

#[tokio::test]
async fn describe_shows_point_locals_wait_and_history_in_every_status() {
    let start = Timestamp::from_millis(1_000_000);
    let clock = TestClock::new(start);
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(checkout)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let ok = engine.start(checkout, "ok", (cart(), false)).await.unwrap();
    let bad = engine.start(checkout, "bad", (cart(), true)).await.unwrap();
    for id in ["ok", "bad"] {
        common::until_status(&*store, id, Status::Suspended).await;
    }

    // Suspended between attempts.
    let d = engine.describe("ok").await.unwrap();
    assert_eq!(d.status, Status::Suspended);
    let point = d.point.as_ref().unwrap();
    assert!(point.label.contains("charge"), "{}", point.label);
    assert!(point.line > 0);
    assert_eq!(point.state, "retrying");
    assert_eq!(point.attempt, Some(2));
    let at = start.saturating_add(Duration::from_secs(3600));
    assert!(matches!(d.waiting_for, Some(Waiting::Retry { attempt: 2, at: a }) if a == at));
    let local = |name: &str| {
        d.locals
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.clone())
    };
    assert_eq!(local("count"), Some(serde_json::json!(2)));
    assert_eq!(
        local("cart"),
        Some(serde_json::json!({ "items": ["book", "lamp"], "total_cents": 4250 }))
    );
    assert_eq!(local("fail"), Some(serde_json::json!(false)));
    assert!(d
        .history
        .iter()
        .any(|h| matches!(&h.event, Event::StepFailed { attempt: 1, .. })));

    clock.advance(Duration::from_secs(3600));
    assert_eq!(ok.result().await.unwrap().unwrap(), "paid 4250 for 2 items");
    assert!(bad.result().await.is_err());

    // Completed: the output, no point.
    let d = engine.describe("ok").await.unwrap();
    assert_eq!(d.status, Status::Completed);
    assert!(d.point.is_none());
    assert_eq!(
        d.output,
        Some(serde_json::json!({ "Ok": "paid 4250 for 2 items" }))
    );

    // Failed: the message and the last frame's locals.
    let d = engine.describe("bad").await.unwrap();
    assert_eq!(d.status, Status::Failed);
    assert!(d.message.unwrap().contains("shipping service is gone"));
    assert_eq!(d.point.unwrap().state, "completed");
    assert!(d.locals.iter().any(|l| l.name == "count"));
    engine.shutdown().await;

    // Parked: an engine without this version cannot decode the bincode frame, and says so.
    let parked_id = "parked";
    let engine = EngineBuilder::with_store(store.clone())
        .register(checkout)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    engine
        .start(checkout, parked_id, (cart(), false))
        .await
        .unwrap();
    common::until_status(&*store, parked_id, Status::Suspended).await;
    engine.shutdown().await;
    let engine = EngineBuilder::with_store(store.clone())
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    clock.advance(Duration::from_secs(3600));
    common::until_status(&*store, parked_id, Status::Parked).await;
    let d = engine.describe(parked_id).await.unwrap();
    assert_eq!(d.status, Status::Parked);
    assert!(d.message.unwrap().contains("checkout"));
    assert!(d.locals.is_empty());
    assert!(d.locals_unavailable.is_some());
    assert_eq!(d.point.unwrap().attempt, Some(2));
    assert!(matches!(
        engine.describe("missing").await,
        Err(Error::NotFound { .. })
    ));
    engine.shutdown().await;
}

/// A running execution can be described while a step body runs.
#[durable]
async fn long_step(ctx: Ctx, tag: String) -> String {
    let prefix = format!("{tag}:");
    ctx.step_infallible("first", || async {}).await;
    let gate = ctx
        .step_infallible("blocked", || async {
            GATE.notified().await;
            7u32
        })
        .await;
    format!("{prefix}{gate}")
}

static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[tokio::test]
async fn a_running_execution_can_be_described() {
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(long_step)
        .open()
        .await
        .unwrap();
    let h = engine.start(long_step, "run", "t".into()).await.unwrap();
    // Wait for the first step's commit: the execution is then inside the blocked step.
    while store.load("run").await.unwrap().unwrap().history_next < 1 {
        tokio::task::yield_now().await;
    }
    let d = engine.describe("run").await.unwrap();
    assert_eq!(d.status, Status::Running);
    assert!(d.point.unwrap().label.contains("first"));
    assert_eq!(
        d.locals
            .iter()
            .find(|l| l.name == "prefix")
            .map(|l| l.value.clone()),
        Some(serde_json::json!("t:"))
    );
    GATE.notify_one();
    assert_eq!(h.result().await.unwrap(), "t:7");
    engine.shutdown().await;
}

/// Returns a value that JSON cannot hold.
#[durable]
async fn wide(ctx: Ctx, n: u128) -> (u128, u32) {
    let small = ctx.step_infallible("small", || async { 5u32 }).await;
    (u128::MAX - n, small)
}

#[durable]
async fn narrow(ctx: Ctx, n: u32) -> u32 {
    ctx.step_infallible("add", move || async move { n + 1 })
        .await
}

/// An output without a JSON form is shown as unreadable, with why, and the rest of the
/// description still comes: it is not damage, and the result reads back intact. Without
/// a registered version, an output in a codec that is not self-describing says so too.
#[tokio::test]
async fn an_output_without_a_json_form_is_unreadable_not_corrupt() {
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(wide)
        .register(narrow)
        .open()
        .await
        .unwrap();
    let h = engine.start(wide, "wide", 1).await.unwrap();
    assert_eq!(h.result().await.unwrap(), (u128::MAX - 1, 5));
    let d = engine.describe("wide").await.unwrap();
    assert_eq!(d.status, Status::Completed);
    assert_eq!(d.output, None);
    let why = d
        .output_unreadable
        .expect("says why the output is not shown");
    assert!(why.contains("out of range"), "{why}");
    assert!(!d.history.is_empty(), "the rest is described");

    let h = engine.start(narrow, "narrow", 1).await.unwrap();
    assert_eq!(h.result().await.unwrap(), 2);
    let d = engine.describe("narrow").await.unwrap();
    assert_eq!(d.output, Some(serde_json::json!(2)));
    assert_eq!(d.output_unreadable, None);
    engine.shutdown().await;

    // No version of `narrow` registered: its bincode output cannot be shown.
    let engine = EngineBuilder::with_store(store.clone())
        .register(wide)
        .open()
        .await
        .unwrap();
    let d = engine.describe("narrow").await.unwrap();
    assert_eq!(d.output, None);
    let why = d
        .output_unreadable
        .expect("says why the output is not shown");
    assert!(why.contains("no registered version"), "{why}");
    engine.shutdown().await;
}
