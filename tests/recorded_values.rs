//! The workflow sees the recorded value of every operation: what a resume would decode
//! from the store, not the value the body returned in memory.
//!
//! The values here do not survive serialization unchanged (a `#[serde(skip)]` field and a
//! `Serialize` that normalises), so the value right after a point and the same local after
//! a restart only agree if the workflow was handed the recorded one. Each run compares
//! the two inside the workflow, on the memory store without `suspend_after_every_point`
//! and on the sled store across a real restart (engine shut down, directory reopened).

mod common;

use std::sync::Arc;
use std::time::Duration;

use durable_core::{
    durable, ConditionError, Ctx, EngineBuilder, MemoryStore, RetryPolicy, Status, StepError,
    Store, TestClock, Timestamp,
};
use durable_store_sled::SledStore;
use serde::{Deserialize, Serialize, Serializer};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const NAP: Duration = Duration::from_secs(3_600);

/// Loses its cache and the case of its email when serialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Lossy {
    #[serde(serialize_with = "lowercase")]
    email: String,
    #[serde(skip)]
    cache: Option<u32>,
}

fn lowercase<S: Serializer>(email: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&email.to_lowercase())
}

fn fresh() -> Lossy {
    Lossy {
        email: "Ada@Example.ORG".into(),
        cache: Some(7),
    }
}

fn recorded() -> Lossy {
    Lossy {
        email: "ada@example.org".into(),
        cache: None,
    }
}

/// A condition's state that remembers the unsaved cache each check was handed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Polls {
    seen: Vec<Option<u32>>,
    #[serde(skip)]
    cache: Option<u32>,
}

/// What the workflow saw: each operation's value right after its point, and the same
/// locals read back after a durable sleep (from the stored frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Seen {
    before: String,
    after: String,
}

type Observed = (
    Result<Lossy, StepError<Lossy>>,
    Result<Lossy, StepError<Lossy>>,
    Lossy,
    Result<Lossy, ConditionError<Lossy>>,
    Result<Lossy, ConditionError<Lossy>>,
    Result<Polls, ConditionError<Polls>>,
);

#[durable]
async fn observe(ctx: Ctx, _unit: ()) -> Seen {
    let ok = ctx
        .typed_step("ok", || async { Ok::<Lossy, Lossy>(fresh()) })
        .await;
    let err = ctx
        .typed_step("err", || async { Err::<Lossy, Lossy>(fresh()) })
        .await;
    let plain = ctx.step_infallible("plain", || async { fresh() }).await;
    let held = ctx
        .wait_for_condition("held", fresh(), |state: Lossy| async move { state })
        .until(|_: &Lossy| true)
        .await;
    let exhausted = ctx
        .wait_for_condition("exhausted", fresh(), |state: Lossy| async move { state })
        .backoff(RetryPolicy::none())
        .await;
    let polls = ctx
        .wait_for_condition(
            "polls",
            Polls {
                seen: Vec::new(),
                cache: None,
            },
            |state: Polls| async move {
                let mut seen = state.seen;
                seen.push(state.cache);
                Polls {
                    seen,
                    cache: Some(99),
                }
            },
        )
        .until(|state: &Polls| state.seen.len() >= 3)
        .backoff(RetryPolicy::fixed(Duration::ZERO).max_attempts(10))
        .await;
    let observed: Observed = (ok, err, plain, held, exhausted, polls);
    let before = format!("{observed:?}");
    ctx.sleep(NAP).name("nap").await.ok();
    let after = format!("{observed:?}");
    Seen { before, after }
}

/// What every run must see: the recorded values, before and after the sleep alike.
fn expected() -> String {
    let observed: Observed = (
        Ok(recorded()),
        Err(StepError::Failed {
            error: recorded(),
            attempts: 1,
        }),
        recorded(),
        Ok(recorded()),
        Err(ConditionError::Exhausted {
            state: recorded(),
            attempts: 1,
        }),
        // The first check gets the initial state the workflow passed; each later one
        // gets the state as committed, whose cache is gone.
        Ok(Polls {
            seen: vec![None, None, None],
            cache: None,
        }),
    );
    format!("{observed:?}")
}

fn check(seen: &Seen) {
    assert_eq!(
        seen.before, seen.after,
        "the value changed across the sleep"
    );
    assert_eq!(seen.before, expected());
}

#[tokio::test]
async fn operations_return_the_recorded_value_on_the_memory_store() {
    let engine = EngineBuilder::new(MemoryStore::new())
        .register(observe)
        .clock(TestClock::new(START).auto_advance(true))
        .open()
        .await
        .unwrap();
    let seen = engine
        .start(observe, "memory", ())
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    check(&seen);
    engine.shutdown().await;
}

#[tokio::test]
async fn operations_return_the_recorded_value_across_a_real_restart_on_sled() {
    let dir = std::env::temp_dir().join(format!("durable-recorded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clock = TestClock::new(START);
    {
        let store = Arc::new(SledStore::open(&dir).unwrap());
        let engine = EngineBuilder::with_store(store.clone())
            .register(observe)
            .clock(clock.clone())
            .open()
            .await
            .unwrap();
        engine.start(observe, "sled", ()).await.unwrap();
        common::until_status(&*store, "sled", Status::Suspended).await;
        engine.shutdown().await;
    }
    clock.advance(NAP);
    let store = SledStore::open(&dir).unwrap();
    let engine = EngineBuilder::new(store)
        .register(observe)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let seen = engine.handle(observe, "sled").result().await.unwrap();
    check(&seen);
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn suspending_after_every_point_sees_the_same_values() {
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(observe)
        .clock(TestClock::new(START).auto_advance(true))
        .suspend_after_every_point(true)
        .open()
        .await
        .unwrap();
    let seen = engine
        .start(observe, "suspending", ())
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    check(&seen);
    assert!(store.load("suspending").await.unwrap().is_some());
    engine.shutdown().await;
}
