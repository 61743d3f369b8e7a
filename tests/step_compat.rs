//! What earlier versions stored still means the same (issue 10): step outcomes written
//! before the step API changed decode to the same values, and a step stored mid-retry in
//! the states earlier versions wrote (`Retrying`, `Started`) resumes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use durable_core::{
    decode_value, durable, Commit, Ctx, EngineBuilder, Failure, MemoryStore, PointState,
    RetryPolicy, Status, StepContext, StepError, Store, TestClock, Timestamp, Until,
};

/// Bytes written by the code before this change (commit e888c7c), with bincode and
/// JSON, for `Result<u32, StepError<String>>` outcomes and step point states.
const BEFORE: [(&str, &str); 4] = [
    ("7601010007", r#"{"Ok":7}"#),
    (
        "7601010100086465636c696e656403",
        r#"{"Err":{"Failed":{"error":"declined","attempts":3}}}"#,
    ),
    ("760101010102", r#"{"Err":{"Interrupted":{"attempts":2}}}"#),
    (
        "760101010204626f6f6d01",
        r#"{"Err":{"Panicked":{"message":"boom","attempts":1}}}"#,
    ),
];

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The JSON codec's envelope around `json`, as the earlier code wrote it.
fn json_envelope(json: &str) -> Vec<u8> {
    let mut out = vec![b'v', 1, 2];
    out.extend_from_slice(json.as_bytes());
    out
}

#[test]
fn step_outcomes_stored_before_decode_to_the_same_values() {
    let expected: [Result<u32, StepError<String>>; 4] = [
        Ok(7),
        Err(StepError::Failed {
            error: "declined".into(),
            attempts: 3,
        }),
        Err(StepError::Interrupted { attempts: 2 }),
        Err(StepError::Panicked {
            message: "boom".into(),
            attempts: 1,
        }),
    ];
    for ((bincode, json), expected) in BEFORE.iter().zip(expected) {
        let from_bincode: Result<u32, StepError<String>> = decode_value(&bytes(bincode)).unwrap();
        assert_eq!(from_bincode, expected);
        let from_json: Result<u32, StepError<String>> = decode_value(&json_envelope(json)).unwrap();
        assert_eq!(from_json, expected);
    }
    // The point states steps wrote then.
    let retrying: PointState = decode_value(&bytes("7601010102")).unwrap();
    assert_eq!(retrying, PointState::Retrying { attempt: 2 });
    let started: PointState = decode_value(&bytes("7601010203")).unwrap();
    assert_eq!(started, PointState::Started { attempt: 3 });
}

/// Attempts run, one counter per test.
static ATTEMPTS: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];

/// Fails its first attempt, then succeeds; retried after an hour.
#[durable]
async fn upgraded(ctx: Ctx, which: usize) -> Result<u32, Failure> {
    let n = ctx
        .step("legacy", |s: StepContext| async move {
            ATTEMPTS[which].fetch_add(1, Ordering::SeqCst);
            if s.attempt() == 1 {
                return Err(Failure::new("first attempt fails"));
            }
            Ok(s.attempt())
        })
        .at_most_once()
        .retry(RetryPolicy::fixed(Duration::from_secs(3600)).max_attempts(3))
        .await?;
    Ok(n)
}

/// Runs `upgraded` until it waits for its second attempt, rewrites the step's state to
/// `legacy` as an earlier version would have stored it, and resumes it in a new engine.
async fn resume_from(
    id: &str,
    which: usize,
    legacy: PointState,
) -> (Result<u32, Failure>, Vec<String>) {
    let store = Arc::new(MemoryStore::new());
    // Stopped by hand first, so that the execution stays at its wait to be rewritten.
    let clock = TestClock::new(Timestamp::from_millis(1_700_000_000_000));
    let first = EngineBuilder::with_store(store.clone())
        .register(upgraded)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    first.start(upgraded, id, which).await.unwrap();
    let waiting = first
        .wait_until(id, Until::suspended_at("legacy"))
        .await
        .unwrap();
    first.shutdown().await;
    assert!(matches!(
        waiting.position.as_ref().map(|p| &p.state),
        Some(PointState::StepRetrying { attempt: 2, .. })
    ));

    let mut old = waiting.clone();
    old.seq += 1;
    old.status = Status::Running;
    old.wake_at = None;
    if let Some(position) = old.position.as_mut() {
        position.state = legacy;
    }
    store.commit(Commit::new(old, waiting.seq)).await.unwrap();

    let second = EngineBuilder::with_store(store)
        .register(upgraded)
        .clock(clock.auto_advance(true))
        .open()
        .await
        .unwrap();
    let result = second.handle(upgraded, id).result().await.unwrap();
    let history = second.compact_history(id).await.unwrap();
    second.shutdown().await;
    (result, history)
}

#[tokio::test]
async fn a_step_stored_as_retrying_by_an_earlier_version_resumes() {
    let (result, history) = resume_from("retrying", 0, PointState::Retrying { attempt: 2 }).await;
    assert_eq!(result, Ok(2));
    assert_eq!(ATTEMPTS[0].load(Ordering::SeqCst), 2);
    assert_eq!(
        history[history.len() - 3..],
        [
            "step legacy: started #2",
            "step legacy: succeeded #2",
            "completed"
        ]
    );
}

#[tokio::test]
async fn an_attempt_stored_as_started_by_an_earlier_version_counts_as_interrupted() {
    let (result, history) = resume_from("started", 1, PointState::Started { attempt: 2 }).await;
    // Attempt 2 was "running" when the earlier version stopped: it is not run again.
    assert_eq!(result, Ok(3));
    assert_eq!(ATTEMPTS[1].load(Ordering::SeqCst), 2);
    assert_eq!(
        history[history.len() - 4..],
        [
            "step legacy: interrupted #2, retrying",
            "step legacy: started #3",
            "step legacy: succeeded #3",
            "completed"
        ]
    );
}
