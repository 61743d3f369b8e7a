//! Step bodies and what they get (issue 10, items 2 and 3): the closure forms people
//! write compile, a body is built again for every attempt, and a `StepContext` gives the
//! attempt, the execution id, the deadline and an idempotency key that is the same for
//! every attempt of a step and differs between steps, loop turns and executions. Values
//! made with `ctx.uuid()`/`ctx.random()` are recorded. (Stability of keys and recorded
//! values across real process kills is in `tests/crash.rs`.)

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use durable_core::{
    durable, Ctx, Engine, EngineBuilder, Failure, MemoryStore, RetryPolicy, StepContext, TestClock,
    Timestamp,
};
use serde::{Deserialize, Serialize};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// What the bodies saw, by test.
static SEEN: Mutex<Vec<(String, u32, String)>> = Mutex::new(Vec::new());

fn seen(tag: &str) -> Vec<(u32, String)> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|(t, _, _)| t == tag)
        .map(|(_, attempt, key)| (*attempt, key.clone()))
        .collect()
}

fn note(tag: &str, s: &StepContext) {
    SEEN.lock()
        .unwrap()
        .push((tag.to_owned(), s.attempt(), s.idempotency_key().to_owned()));
}

/// Neither `Clone` nor `Copy`: a body that moves it must be called once per attempt.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: String,
    cents: u64,
}

async fn charge(order: Order, execution: &str) -> Result<String, Failure> {
    Ok(format!("{}:{}:{execution}", order.id, order.cents))
}

/// The forms from the issue: `async move` bodies that move a local and the context.
#[durable]
async fn moving_bodies(ctx: Ctx, order: Order) -> Result<String, Failure> {
    let label = format!("{}-label", order.id);
    let tag = ctx
        .step("moves-a-clone", || async move { Ok(label.len()) })
        .await?;
    let receipt = ctx
        .step("moves-the-local-and-ctx", || async move {
            charge(order, ctx.execution_id()).await
        })
        .await?;
    Ok(format!("{receipt}/{tag}"))
}

#[tokio::test]
async fn bodies_may_move_what_they_capture() {
    for suspend in [false, true] {
        let engine = EngineBuilder::new(MemoryStore::new())
            .register(moving_bodies)
            .suspend_after_every_point(suspend)
            .open()
            .await
            .unwrap();
        let order = Order {
            id: "o-1".into(),
            cents: 250,
        };
        let receipt = engine
            .start(moving_bodies, "move", order)
            .await
            .unwrap()
            .result()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(receipt, "o-1:250:move/9");
        engine.shutdown().await;
    }
}

/// Fails twice at once (zero delay), then once after a delay, then succeeds; the body
/// moves a non-`Clone` local, so every attempt needs a body built again.
#[durable]
async fn flaky(ctx: Ctx, order: Order) -> Result<(u32, String), Failure> {
    let done = ctx
        .step("flaky", |s: StepContext| async move {
            note("flaky", &s);
            if s.attempt() < 4 {
                return Err(Failure::new(format!("attempt {} failed", s.attempt())));
            }
            let seen = format!(
                "{}|{}|{}|{:?}",
                order.id,
                s.execution_id(),
                s.name(),
                s.deadline()
            );
            Ok((s.attempt(), seen))
        })
        .retry_strategy(|_: &durable_core::StepError, attempt| match attempt {
            3 => durable_core::RetryDecision::RetryAfter(Duration::from_secs(3600)),
            1 | 2 => durable_core::RetryDecision::RetryAfter(Duration::ZERO),
            _ => durable_core::RetryDecision::Stop,
        })
        .await?;
    Ok(done)
}

#[tokio::test]
async fn every_attempt_gets_its_number_and_the_same_key() {
    let clock = TestClock::new(START).auto_advance(true);
    let engine = EngineBuilder::new(MemoryStore::new())
        .register(flaky)
        .clock(clock)
        .open()
        .await
        .unwrap();
    let order = Order {
        id: "o-2".into(),
        cents: 1,
    };
    let result = engine
        .start(flaky, "flaky-1", order)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(result, Ok((4, "o-2|flaky-1|flaky|None".to_string())));
    let attempts = seen("flaky");
    assert_eq!(
        attempts.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let key = &attempts[0].1;
    assert!(
        attempts.iter().all(|(_, k)| k == key),
        "keys changed between attempts: {attempts:?}"
    );
    assert_eq!(key.len(), 36, "{key}");
    engine.shutdown().await;
}

/// The same step in a loop, twice in a row with the same arguments, and another step.
#[durable]
async fn keys(ctx: Ctx, turns: u32) -> Result<Vec<String>, Failure> {
    let mut keys = Vec::new();
    for _ in 0..turns {
        let key = ctx
            .step("in-loop", |s: StepContext| async move {
                Ok(s.idempotency_key().to_owned())
            })
            .await?;
        keys.push(key);
    }
    let other = ctx
        .step("other", |s: StepContext| async move {
            Ok(s.idempotency_key().to_owned())
        })
        .await?;
    keys.push(other);
    Ok(keys)
}

#[tokio::test]
async fn keys_differ_between_steps_loop_turns_and_executions_and_survive_resumes() {
    let mut by_execution: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for suspend in [false, true] {
        let engine = EngineBuilder::new(MemoryStore::new())
            .register(keys)
            .suspend_after_every_point(suspend)
            .open()
            .await
            .unwrap();
        for id in ["a", "b"] {
            let got = engine
                .start(keys, id, 3)
                .await
                .unwrap()
                .result()
                .await
                .unwrap()
                .unwrap();
            // Resuming from the stored frame after every point changes nothing.
            let previous = by_execution.entry(id.to_owned()).or_insert(got.clone());
            assert_eq!(*previous, got, "{id}: keys depend on how the execution ran");
        }
        engine.shutdown().await;
    }
    let all: Vec<&String> = by_execution.values().flatten().collect();
    let mut distinct = all.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), all.len(), "a key repeats: {by_execution:?}");
    assert_eq!(all.len(), 8);
}

#[durable]
async fn made_once(ctx: Ctx, _: ()) -> Result<(String, u64, String), Failure> {
    let id = ctx.uuid().await;
    let n = ctx.random().await;
    let used = ctx
        .step("use", || std::future::ready(Ok(format!("{id}/{n}"))))
        .await?;
    Ok((id, n, used))
}

#[tokio::test]
async fn uuid_and_random_are_recorded_at_their_point() {
    let engine = EngineBuilder::new(MemoryStore::new())
        .register(made_once)
        .suspend_after_every_point(true)
        .open()
        .await
        .unwrap();
    let (id, n, used) = engine
        .start(made_once, "once", ())
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    // Read back after a resume from the stored frame, the values are the recorded ones.
    assert_eq!(used, format!("{id}/{n}"));
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "a version-4 UUID: {id}");
    let names: Vec<String> = engine
        .history("once")
        .await
        .unwrap()
        .iter()
        .filter_map(|e| e.event.name().map(str::to_owned))
        .collect();
    assert!(names[0].starts_with("uuid (line "), "{names:?}");
    assert!(names[1].starts_with("random (line "), "{names:?}");
    let other = engine
        .start(made_once, "twice", ())
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    assert_ne!(other.0, id, "two executions drew the same UUID");
    engine.shutdown().await;
}

#[durable]
async fn sees_its_deadline(ctx: Ctx, _: ()) -> Result<Option<Timestamp>, Failure> {
    let deadline = ctx
        .step("timed", |s: StepContext| async move { Ok(s.deadline()) })
        .timeout(Duration::from_secs(30))
        .await?;
    Ok(deadline)
}

#[tokio::test]
async fn a_timed_step_sees_its_deadline() {
    let engine = Engine::builder(MemoryStore::new())
        .clock(TestClock::new(START))
        .register(sees_its_deadline)
        .open()
        .await
        .unwrap();
    let deadline = engine
        .start(sees_its_deadline, "t", ())
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        deadline,
        Some(START.saturating_add(Duration::from_secs(30)))
    );
    engine.shutdown().await;
}

/// `RetryPolicy` still drives retries of a body that takes a context.
#[durable]
async fn policy_driven(ctx: Ctx, _: ()) -> Result<u32, Failure> {
    let n = ctx
        .step("policy", |s: StepContext| async move {
            note("policy", &s);
            if s.attempt() < 3 {
                Err(Failure::new("not yet"))
            } else {
                Ok(s.attempt())
            }
        })
        .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(3))
        .await?;
    Ok(n)
}

#[tokio::test]
async fn zero_delay_retries_run_on_a_body_built_again() {
    let engine = Engine::builder(MemoryStore::new())
        .register(policy_driven)
        .open()
        .await
        .unwrap();
    let n = engine
        .start(policy_driven, "p", ())
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(n, Ok(3));
    assert_eq!(
        seen("policy").iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        engine.compact_history("p").await.unwrap(),
        [
            "step policy: failed #1, retrying",
            "step policy: failed #2, retrying",
            "step policy: succeeded #3",
            "completed"
        ]
    );
    engine.shutdown().await;
}

/// A body that borrows a local it cannot move (it is used after the step) and reads the
/// context from the task.
#[durable]
async fn borrows(ctx: Ctx, order: Order) -> Result<(String, Order), Failure> {
    let key = ctx
        .step("borrows", || async {
            let s = StepContext::current().ok_or_else(|| Failure::new("no step context"))?;
            Ok(format!("{}#{}:{}", order.id, s.attempt(), s.name()))
        })
        .await?;
    Ok((key, order))
}

#[tokio::test]
async fn the_current_step_context_is_there_inside_a_body_only() {
    assert_eq!(StepContext::current(), None);
    let engine = Engine::builder(MemoryStore::new())
        .register(borrows)
        .open()
        .await
        .unwrap();
    let order = Order {
        id: "o-3".into(),
        cents: 5,
    };
    let (key, order) = engine
        .start(borrows, "b", order)
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key, "o-3#1:borrows");
    assert_eq!(order.cents, 5);
    engine.shutdown().await;
}
