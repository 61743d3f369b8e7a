//! Callbacks (issue 12): creating, awaiting, completing, failing, heartbeats, timeouts on
//! the virtual clock, races, restarts. Every test runs on the memory store and on the
//! sled store (through real restarts where it restarts). No test sleeps in real time.

mod common;

mod backing;

use backing::{on_both_stores, Backing};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::{
    durable, CallbackError, CallbackState, CompletionError, Ctx, Delivered, Delivery, Engine,
    EngineBuilder, Event, MemoryStore, OperationRef, OperationState, RetryPolicy, Settlement,
    Status, Store, TestClock, Timestamp, Waiting,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Decision {
    approved: bool,
    by: String,
}

fn decision(by: &str) -> Decision {
    Decision {
        approved: true,
        by: by.to_owned(),
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Plan {
    timeout_ms: u64,
    heartbeat_ms: Option<u64>,
    /// A durable sleep between creating the callback and awaiting it.
    pause_ms: u64,
}

impl Plan {
    fn timeout(timeout: Duration) -> Self {
        Plan {
            timeout_ms: timeout.as_millis() as u64,
            heartbeat_ms: None,
            pause_ms: 0,
        }
    }
}

/// Creates a callback, hands it across a durable sleep, then awaits it.
#[durable]
async fn gate(ctx: Ctx, plan: Plan) -> Result<Decision, CallbackError> {
    let timeout = Duration::from_millis(plan.timeout_ms);
    let cb = match plan.heartbeat_ms {
        Some(ms) => {
            ctx.create_callback::<Decision>("approval")
                .timeout(timeout)
                .heartbeat_timeout(Duration::from_millis(ms))
                .await?
        }
        None => {
            ctx.create_callback::<Decision>("approval")
                .timeout(timeout)
                .await?
        }
    };
    ctx.sleep(Duration::from_millis(plan.pause_ms))
        .name("pause")
        .await
        .expect("the pause is short");
    let decision = ctx.wait_callback(&cb).await?;
    Ok(decision)
}

/// A callback with no time limits.
#[durable]
async fn untimed(ctx: Ctx) -> Result<String, CallbackError> {
    let cb = ctx.create_callback::<String>("signal").await?;
    ctx.wait_callback(&cb).await
}

/// Creates a callback and finishes without awaiting it.
#[durable]
async fn abandon(ctx: Ctx) -> Result<String, CallbackError> {
    let cb = ctx.create_callback::<String>("ignored").await?;
    Ok(cb.name().to_owned())
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Submission {
    tag: String,
    /// How many attempts the submitter fails before it succeeds.
    failures: u32,
    attempts: u32,
}

/// The ids each submitter attempt received, by tag.
static SUBMITTED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn submitted(tag: &str) -> Vec<String> {
    SUBMITTED
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t == tag)
        .map(|(_, id)| id.clone())
        .collect()
}

async fn submit(tag: String, failures: u32, id: String) -> Result<(), String> {
    let attempt = {
        let mut seen = SUBMITTED.lock().unwrap();
        seen.push((tag.clone(), id));
        seen.iter().filter(|(t, _)| *t == tag).count() as u32
    };
    if attempt <= failures {
        Err(format!("attempt {attempt} refused"))
    } else {
        Ok(())
    }
}

/// `wait_for_callback`: create, submit the id (retrying), await.
#[durable]
async fn shorthand(ctx: Ctx, plan: Submission) -> Result<Decision, CallbackError> {
    let decision = ctx
        .wait_for_callback::<Decision, _, _, String>("review", |id| {
            submit(plan.tag.clone(), plan.failures, id)
        })
        .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(plan.attempts))
        .timeout(DAY)
        .await?;
    Ok(decision)
}

/// Receives `n` callbacks one after the other, deleting each record once received.
#[durable]
async fn inbox(ctx: Ctx, n: u32) -> Result<Vec<u32>, CallbackError> {
    let mut received = Vec::new();
    while received.len() < n as usize {
        let cb = ctx.create_callback::<u32>("message").await?;
        let value = ctx.wait_callback(&cb).delete_when_received().await?;
        received.push(value);
    }
    Ok(received)
}

struct Running {
    engine: Engine,
    store: Arc<dyn Store>,
}

async fn open_with(backing: &Backing, clock: &TestClock, every_point: bool) -> Running {
    let store = backing.store();
    let engine = EngineBuilder::with_store(store.clone())
        .register(gate)
        .register(untimed)
        .register(abandon)
        .register(shorthand)
        .register(inbox)
        .clock(clock.clone())
        .suspend_after_every_point(every_point)
        .open()
        .await
        .expect("engine opens");
    Running { engine, store }
}

async fn open(backing: &Backing, clock: &TestClock) -> Running {
    open_with(backing, clock, false).await
}

/// Waits until execution `id` has a pending callback; returns its id.
async fn pending_callback(store: &dyn Store, id: &str) -> String {
    loop {
        let ops = store.operations(id, None, 100).await.unwrap();
        if let Some(op) = ops.iter().find(|op| op.state.is_pending()) {
            return op.token.clone().expect("a callback has a token");
        }
        tokio::task::yield_now().await;
    }
}

/// Waits until execution `id` is suspended awaiting a callback, with `wake_at`.
async fn until_awaiting(store: &dyn Store, id: &str, wake_at: Option<Timestamp>) {
    loop {
        let record = store.load(id).await.unwrap().expect("execution exists");
        if record.status == Status::Suspended
            && !record.awaiting.is_empty()
            && record.wake_at == wake_at
        {
            return;
        }
        tokio::task::yield_now().await;
    }
}

fn after(duration: Duration) -> Timestamp {
    START.saturating_add(duration)
}

on_both_stores!(
    a_completion_wakes_the_waiting_execution_and_later_ones_are_refused,
    a_completion_before_the_await_is_kept_and_counts,
    completions_racing_the_await_all_land,
    a_timeout_on_the_virtual_clock_ends_the_wait_and_refuses_completions,
    heartbeats_extend_the_heartbeat_deadline_until_they_stop,
    a_payload_that_does_not_decode_is_a_typed_error_with_the_raw_payload,
    a_failed_callback_gives_the_senders_error,
    unknown_and_malformed_ids_are_not_found,
    a_callback_of_a_finished_execution_is_refused,
    concurrent_completions_of_one_id_let_exactly_one_win,
    the_shorthand_submits_the_id_retries_and_waits,
    a_submitter_that_gives_up_cancels_the_callback,
    a_restart_finds_the_waiting_callback,
    completions_that_arrive_while_no_engine_runs_are_found,
    records_deleted_when_received_keep_a_loop_bounded,
    an_oversized_or_non_json_payload_is_refused,
);

async fn a_completion_wakes_the_waiting_execution_and_later_ones_are_refused(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let handle = engine
        .start(gate, "expense-1", Plan::timeout(DAY))
        .await
        .unwrap();
    let id = pending_callback(&*store, "expense-1").await;
    until_awaiting(&*store, "expense-1", Some(after(DAY))).await;

    let description = engine.describe("expense-1").await.unwrap();
    assert_eq!(description.status, Status::Suspended);
    match &description.waiting_for {
        Some(Waiting::Callback { name, until }) => {
            assert_eq!(name, "approval");
            assert_eq!(*until, Some(after(DAY)));
        }
        other => panic!("waiting for {other:?}"),
    }
    assert_eq!(description.point.as_ref().unwrap().state, "awaiting");
    let [callback] = &description.callbacks[..] else {
        panic!("callbacks: {:?}", description.callbacks);
    };
    assert_eq!(
        (callback.name.as_str(), callback.state, callback.id.as_str()),
        ("approval", CallbackState::Pending, id.as_str())
    );
    assert_eq!(callback.created_at, START);
    assert_eq!(callback.timeout_at, Some(after(DAY)));
    assert!(
        description.locals.iter().any(|l| l.name == "cb"),
        "the handle is a saved local: {:?}",
        description.locals
    );

    engine
        .complete_callback(&id, &decision("ada"))
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), Ok(decision("ada")));

    for refused in [
        engine.complete_callback(&id, &decision("bob")).await,
        engine.fail_callback(&id, "too late").await,
        engine.heartbeat_callback(&id).await,
    ] {
        match refused {
            Err(CompletionError::AlreadyCompleted { name, state }) => {
                assert_eq!(
                    (name.as_str(), state),
                    ("approval", CallbackState::Succeeded)
                )
            }
            other => panic!("expected already completed, got {other:?}"),
        }
    }
    let description = engine.describe("expense-1").await.unwrap();
    assert_eq!(description.callbacks[0].state, CallbackState::Succeeded);
    assert_eq!(
        description.callbacks[0].payload,
        Some(serde_json::json!({"approved": true, "by": "ada"}))
    );
    let events: Vec<Event> = engine
        .history("expense-1")
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.event)
        .collect();
    assert!(events.contains(&Event::CallbackCreated {
        name: "approval".into(),
        timeout_at: Some(after(DAY))
    }));
    assert!(events.contains(&Event::CallbackReceived {
        name: "approval".into(),
        outcome: "succeeded".into()
    }));
    let text = format!("{events:?}");
    assert!(!text.contains(&id), "the history never holds the id");
    engine.shutdown().await;
}

async fn a_completion_before_the_await_is_kept_and_counts(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let plan = Plan {
        pause_ms: HOUR.as_millis() as u64,
        ..Plan::timeout(DAY)
    };
    let handle = engine.start(gate, "early", plan).await.unwrap();
    let id = pending_callback(&*store, "early").await;
    // Suspended in the pause, not yet at the await.
    common::until_status(&*store, "early", Status::Suspended).await;
    let before = store.load("early").await.unwrap().unwrap();
    assert!(before.awaiting.is_empty());
    engine
        .complete_callback(&id, &decision("early bird"))
        .await
        .unwrap();
    let after_completion = store.load("early").await.unwrap().unwrap();
    assert_eq!(
        after_completion, before,
        "a completion the execution does not await yet does not wake it"
    );
    clock.advance(HOUR);
    assert_eq!(handle.result().await.unwrap(), Ok(decision("early bird")));
    engine.shutdown().await;
}

async fn completions_racing_the_await_all_land(backing: Backing) {
    const EXECUTIONS: usize = 30;
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..EXECUTIONS {
        let (engine, store) = (engine.clone(), store.clone());
        tasks.spawn(async move {
            let execution = format!("race-{n}");
            let handle = engine.start(untimed, &execution, ()).await.unwrap();
            // Complete as soon as the callback exists: before, during or after the
            // commit that suspends the execution on it.
            let id = pending_callback(&*store, &execution).await;
            engine
                .complete_callback(&id, &format!("value {n}"))
                .await
                .unwrap();
            // A completion lost to the race would strand the execution: bound the wait so
            // that shows as a failure, not a hang.
            let result = tokio::time::timeout(Duration::from_secs(60), handle.result())
                .await
                .expect("the execution was stranded");
            (n, result.unwrap())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (n, result) = joined.unwrap();
        assert_eq!(result, Ok(format!("value {n}")));
    }
    engine.shutdown().await;
}

async fn a_timeout_on_the_virtual_clock_ends_the_wait_and_refuses_completions(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let handle = engine
        .start(gate, "slow", Plan::timeout(HOUR))
        .await
        .unwrap();
    let id = pending_callback(&*store, "slow").await;
    until_awaiting(&*store, "slow", Some(after(HOUR))).await;
    clock.set(Timestamp::from_millis(after(HOUR).as_millis() - 1));
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(handle.status().await.unwrap(), Status::Suspended);
    clock.set(after(HOUR));
    // Whether or not the workflow has committed its timeout yet, the answer is the same.
    match engine.complete_callback(&id, &decision("late")).await {
        Err(CompletionError::TimedOut { name, heartbeat }) => {
            assert_eq!((name.as_str(), heartbeat), ("approval", false))
        }
        other => panic!("expected timed out, got {other:?}"),
    }
    assert_eq!(
        handle.result().await.unwrap(),
        Err(CallbackError::TimedOut {
            name: "approval".into()
        })
    );
    match engine.heartbeat_callback(&id).await {
        Err(CompletionError::TimedOut { .. }) => {}
        other => panic!("expected timed out, got {other:?}"),
    }
    let description = engine.describe("slow").await.unwrap();
    assert_eq!(description.callbacks[0].state, CallbackState::TimedOut);
    engine.shutdown().await;
}

async fn heartbeats_extend_the_heartbeat_deadline_until_they_stop(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let plan = Plan {
        heartbeat_ms: Some((10 * MINUTE).as_millis() as u64),
        ..Plan::timeout(DAY)
    };
    let handle = engine.start(gate, "job", plan).await.unwrap();
    let id = pending_callback(&*store, "job").await;
    until_awaiting(&*store, "job", Some(after(10 * MINUTE))).await;
    clock.set(after(6 * MINUTE));
    engine.heartbeat_callback(&id).await.unwrap();
    // The old deadline wakes the workflow, which finds the heartbeat and waits on.
    clock.set(after(12 * MINUTE));
    until_awaiting(&*store, "job", Some(after(16 * MINUTE))).await;
    assert_eq!(handle.status().await.unwrap(), Status::Suspended);
    clock.set(after(16 * MINUTE));
    assert_eq!(
        handle.result().await.unwrap(),
        Err(CallbackError::HeartbeatTimedOut {
            name: "approval".into()
        })
    );
    match engine.heartbeat_callback(&id).await {
        Err(CompletionError::TimedOut { heartbeat, .. }) => assert!(heartbeat),
        other => panic!("expected a heartbeat time-out, got {other:?}"),
    }
    engine.shutdown().await;
}

async fn a_payload_that_does_not_decode_is_a_typed_error_with_the_raw_payload(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let handle = engine.start(gate, "odd", Plan::timeout(DAY)).await.unwrap();
    let id = pending_callback(&*store, "odd").await;
    engine
        .complete_callback_json(&id, br#"{"approved": "maybe"}"#)
        .await
        .unwrap();
    match handle.result().await.unwrap() {
        Err(CallbackError::Undecodable {
            name,
            payload,
            message,
        }) => {
            assert_eq!(name, "approval");
            assert_eq!(payload, r#"{"approved": "maybe"}"#);
            assert!(message.contains("bool"), "{message}");
        }
        other => panic!("expected an undecodable payload, got {other:?}"),
    }
    let description = engine.describe("odd").await.unwrap();
    assert_eq!(
        description.callbacks[0].payload,
        Some(serde_json::json!({"approved": "maybe"}))
    );
    assert_eq!(description.status, Status::Failed);
    engine.shutdown().await;
}

async fn a_failed_callback_gives_the_senders_error(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let handle = engine
        .start(gate, "refused", Plan::timeout(DAY))
        .await
        .unwrap();
    let id = pending_callback(&*store, "refused").await;
    engine
        .fail_callback(&id, &serde_json::json!({"reason": "over budget"}))
        .await
        .unwrap();
    let error = handle.result().await.unwrap().unwrap_err();
    assert!(matches!(&error, CallbackError::Failed { name, .. } if name == "approval"));
    assert_eq!(
        error.sender_error::<serde_json::Value>(),
        Some(serde_json::json!({"reason": "over budget"}))
    );
    match engine.complete_callback(&id, &decision("x")).await {
        Err(CompletionError::AlreadyCompleted { state, .. }) => {
            assert_eq!(state, CallbackState::Failed)
        }
        other => panic!("expected already completed, got {other:?}"),
    }
    engine.shutdown().await;
}

async fn unknown_and_malformed_ids_are_not_found(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    engine.start(untimed, "one", ()).await.unwrap();
    let id = pending_callback(&*store, "one").await;
    let mut forged = id.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for unknown in [
        forged.as_str(),
        "",
        "cb_",
        &id[..id.len() - 1],
        &format!("{id}A"),
        "../../etc/passwd",
        &"x".repeat(10_000),
    ] {
        for result in [
            engine.complete_callback(unknown, &1).await,
            engine.fail_callback(unknown, &1).await,
            engine.heartbeat_callback(unknown).await,
        ] {
            assert!(
                matches!(result, Err(CompletionError::NotFound)),
                "{unknown:?}: {result:?}"
            );
        }
    }
    assert_eq!(
        store.operations("one", None, 10).await.unwrap()[0].state,
        OperationState::Pending
    );
    engine.shutdown().await;
}

async fn a_callback_of_a_finished_execution_is_refused(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let result = engine
        .start(abandon, "gone", ())
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(result, Ok("ignored".to_owned()));
    let op = store.operations("gone", None, 10).await.unwrap().remove(0);
    let id = op.token.unwrap();
    match engine.complete_callback(&id, "late").await {
        Err(CompletionError::ExecutionFinished { name, status }) => {
            assert_eq!((name.as_str(), status), ("ignored", Status::Completed))
        }
        other => panic!("expected execution finished, got {other:?}"),
    }
    assert!(store
        .operation("gone", &op.key)
        .await
        .unwrap()
        .unwrap()
        .state
        .is_pending());
    engine.shutdown().await;
}

async fn concurrent_completions_of_one_id_let_exactly_one_win(backing: Backing) {
    const RIVALS: usize = 100;
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let handle = engine
        .start(gate, "contested", Plan::timeout(DAY))
        .await
        .unwrap();
    let id = pending_callback(&*store, "contested").await;
    let start = Arc::new(Barrier::new(RIVALS));
    let mut tasks = tokio::task::JoinSet::new();
    for rival in 0..RIVALS {
        let (engine, id, start) = (engine.clone(), id.clone(), start.clone());
        tasks.spawn(async move {
            start.wait().await;
            let by = format!("rival {rival}");
            (
                by.clone(),
                engine.complete_callback(&id, &decision(&by)).await,
            )
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (by, Ok(())) => winners.push(by),
            (_, Err(CompletionError::AlreadyCompleted { state, .. })) => {
                assert_eq!(state, CallbackState::Succeeded)
            }
            // The winner's delivery wakes the execution, which may finish before a
            // loser's delivery is applied: the store rules then answer that it finished.
            (_, Err(CompletionError::ExecutionFinished { status, .. })) => {
                assert_eq!(status, Status::Completed)
            }
            (_, other) => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(handle.result().await.unwrap(), Ok(decision(&winners[0])));
    engine.shutdown().await;
}

async fn the_shorthand_submits_the_id_retries_and_waits(backing: Backing) {
    let clock = TestClock::new(START);
    // Every commit resumes from the stored frame: the phases survive restarts.
    let Running { engine, store } = open_with(&backing, &clock, true).await;
    let tag = format!("shorthand-{}", matches!(backing, Backing::Sled(_)));
    let plan = Submission {
        tag: tag.clone(),
        failures: 2,
        attempts: 5,
    };
    let handle = engine.start(shorthand, "review-1", plan).await.unwrap();
    until_awaiting(&*store, "review-1", Some(after(DAY))).await;
    let id = pending_callback(&*store, "review-1").await;
    assert_eq!(
        submitted(&tag),
        vec![id.clone(); 3],
        "two failures, one success"
    );
    engine
        .complete_callback(&id, &decision("reviewer"))
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), Ok(decision("reviewer")));
    let failed = engine
        .history("review-1")
        .await
        .unwrap()
        .into_iter()
        .filter(
            |h| matches!(&h.event, Event::StepFailed { name, .. } if name == "review (submitter)"),
        )
        .count();
    assert_eq!(failed, 2);
    engine.shutdown().await;
}

async fn a_submitter_that_gives_up_cancels_the_callback(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let tag = format!("give-up-{}", matches!(backing, Backing::Sled(_)));
    let plan = Submission {
        tag: tag.clone(),
        failures: u32::MAX,
        attempts: 2,
    };
    let result = engine
        .start(shorthand, "review-2", plan)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    match result {
        Err(CallbackError::SubmitFailed {
            name,
            error,
            attempts,
        }) => {
            assert_eq!((name.as_str(), attempts), ("review", 2));
            assert_eq!(error, "\"attempt 2 refused\"");
        }
        other => panic!("expected a failed submitter, got {other:?}"),
    }
    let ids = submitted(&tag);
    assert_eq!(ids.len(), 2);
    let op = store.operation_by_token(&ids[0]).await.unwrap().unwrap();
    assert_eq!(op.state, OperationState::Cancelled);
    match engine.complete_callback(&ids[0], &decision("x")).await {
        Err(CompletionError::AlreadyCompleted { name, state }) => {
            assert_eq!((name.as_str(), state), ("review", CallbackState::Cancelled))
        }
        other => panic!("expected a cancelled callback, got {other:?}"),
    }
    engine.shutdown().await;
}

async fn a_restart_finds_the_waiting_callback(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    engine
        .start(gate, "restart", Plan::timeout(DAY))
        .await
        .unwrap();
    let id = pending_callback(&*store, "restart").await;
    until_awaiting(&*store, "restart", Some(after(DAY))).await;
    engine.shutdown().await;
    drop((engine, store));

    let Running { engine, .. } = open(&backing, &clock).await;
    engine
        .complete_callback(&id, &decision("after restart"))
        .await
        .unwrap();
    let handle = engine.handle(gate, "restart");
    assert_eq!(
        handle.result().await.unwrap(),
        Ok(decision("after restart"))
    );
    engine.shutdown().await;
}

async fn completions_that_arrive_while_no_engine_runs_are_found(backing: Backing) {
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    engine
        .start(gate, "offline", Plan::timeout(DAY))
        .await
        .unwrap();
    let id = pending_callback(&*store, "offline").await;
    until_awaiting(&*store, "offline", Some(after(DAY))).await;
    engine.shutdown().await;
    drop((engine, store));

    // Another process delivers the completion straight to the store.
    let store = backing.store();
    let delivered = store
        .deliver(Delivery {
            to: OperationRef::Token(id.clone()),
            settlement: Settlement::Settle(OperationState::Succeeded {
                payload: serde_json::to_vec(&decision("offline")).unwrap(),
            }),
            at: START,
        })
        .await
        .unwrap();
    assert!(matches!(delivered, Delivered::Applied { woke: true, .. }));
    store.close().await.unwrap();
    drop(store);

    let Running { engine, .. } = open(&backing, &clock).await;
    let handle = engine.handle(gate, "offline");
    assert_eq!(handle.result().await.unwrap(), Ok(decision("offline")));
    engine.shutdown().await;
}

async fn records_deleted_when_received_keep_a_loop_bounded(backing: Backing) {
    const MESSAGES: u32 = 20;
    let clock = TestClock::new(START);
    let Running { engine, store } = open(&backing, &clock).await;
    let handle = engine.start(inbox, "inbox", MESSAGES).await.unwrap();
    let mut first = None;
    let mut previous = String::new();
    for n in 0..MESSAGES {
        let id = loop {
            let id = pending_callback(&*store, "inbox").await;
            if id != previous {
                break id;
            }
            tokio::task::yield_now().await;
        };
        let ops = store.operations("inbox", None, 100).await.unwrap();
        assert!(ops.len() <= 2, "records pile up: {}", ops.len());
        engine.complete_callback(&id, &n).await.unwrap();
        first.get_or_insert(id.clone());
        previous = id;
    }
    assert_eq!(handle.result().await.unwrap(), Ok((0..MESSAGES).collect()));
    assert_eq!(store.operations("inbox", None, 100).await.unwrap(), []);
    match engine.complete_callback(&first.unwrap(), &0).await {
        Err(CompletionError::NotFound) => {}
        other => panic!("expected not found, got {other:?}"),
    }
    engine.shutdown().await;
}

async fn an_oversized_or_non_json_payload_is_refused(backing: Backing) {
    let clock = TestClock::new(START);
    let store = backing.store();
    let engine = EngineBuilder::with_store(store.clone())
        .register(untimed)
        .clock(clock.clone())
        .max_value_bytes(1024)
        .open()
        .await
        .unwrap();
    let handle = engine.start(untimed, "strict", ()).await.unwrap();
    let id = pending_callback(&*store, "strict").await;
    match engine.complete_callback(&id, &"x".repeat(2000)).await {
        Err(CompletionError::TooLarge { size, limit }) => {
            assert_eq!((size, limit), (2002, 1024))
        }
        other => panic!("expected too large, got {other:?}"),
    }
    for not_json in [&b"{"[..], b"", b"1 2", b"\xff"] {
        match engine.complete_callback_json(&id, not_json).await {
            Err(CompletionError::InvalidPayload { .. }) => {}
            other => panic!("{not_json:?}: expected invalid, got {other:?}"),
        }
    }
    engine.complete_callback(&id, "fits").await.unwrap();
    assert_eq!(handle.result().await.unwrap(), Ok("fits".to_owned()));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_timeout_beyond_max_wait_is_refused_at_creation() {
    let clock = TestClock::new(START);
    let engine = EngineBuilder::new(MemoryStore::new())
        .register(gate)
        .clock(clock)
        .open()
        .await
        .unwrap();
    let result = engine
        .start(gate, "far", Plan::timeout(durable_core::MAX_WAIT + DAY))
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert!(
        matches!(result, Err(CallbackError::TooFar { ref name, .. }) if name == "approval"),
        "{result:?}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn ids_are_long_random_and_url_safe() {
    let clock = TestClock::new(START);
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(untimed)
        .clock(clock)
        .open()
        .await
        .unwrap();
    let mut ids = HashMap::new();
    for n in 0..50 {
        let execution = format!("id-{n}");
        engine.start(untimed, &execution, ()).await.unwrap();
        let id = pending_callback(&*store, &execution).await;
        assert!(id.len() >= 25, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
        assert!(ids.insert(id, n).is_none());
    }
    engine.shutdown().await;
}
