//! Codecs per workflow, round-trip checks at the point that writes, and corrupt state.

mod common;

use std::sync::Arc;
use std::time::Duration;

use durable_core::{
    durable, Codec, Commit, Ctx, EngineBuilder, Error, FrameReader, MemoryStore, Status, Store,
    TestClock, Timestamp,
};

/// Holds a `serde_json::Value` across a point: bincode cannot decode it.
#[durable]
async fn value_in_bincode(ctx: Ctx, n: u32) -> String {
    let v = serde_json::json!({ "n": n });
    ctx.step_infallible("touch", || async {}).await;
    v.to_string()
}

/// The same under the JSON codec.
#[durable(codec = json)]
async fn value_in_json(ctx: Ctx, n: u32) -> String {
    let v = serde_json::json!({ "n": n });
    ctx.sleep(Duration::from_secs(60)).await.unwrap();
    v.to_string()
}

/// A step whose outcome is a `serde_json::Value`.
#[durable]
async fn outcome_in_bincode(ctx: Ctx, n: u32) -> u32 {
    let v = ctx
        .step_infallible("value", || async move { serde_json::json!(n) })
        .await;
    v.as_u64().unwrap_or_default() as u32
}

#[tokio::test]
async fn a_local_that_cannot_round_trip_fails_at_the_point_that_wrote_it() {
    let engine = EngineBuilder::new(MemoryStore::new())
        .register(value_in_bincode)
        .register(outcome_in_bincode)
        .open()
        .await
        .unwrap();
    match engine
        .start(value_in_bincode, "b", 1)
        .await
        .unwrap()
        .result()
        .await
    {
        Err(Error::Failed { message, .. }) => {
            assert!(message.contains("local `v`"), "{message}");
            assert!(message.contains("codec = json"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    match engine
        .start(outcome_in_bincode, "o", 1)
        .await
        .unwrap()
        .result()
        .await
    {
        Err(Error::Failed { message, .. }) => {
            assert!(message.contains("outcome"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn the_json_codec_is_selectable_per_workflow() {
    let clock = TestClock::new(Timestamp::from_millis(0));
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(value_in_json)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let h = engine.start(value_in_json, "j", 7).await.unwrap();
    common::until_status(&*store, "j", Status::Suspended).await;
    let record = store.load("j").await.unwrap().unwrap();
    let frame = &record.position.as_ref().unwrap().frame;
    assert_eq!(FrameReader::new(frame).unwrap().codec(), Codec::Json);
    let described = engine.describe("j").await.unwrap();
    let v = described.locals.iter().find(|l| l.name == "v").unwrap();
    assert_eq!(v.value, serde_json::json!({ "n": 7 }));
    clock.advance(Duration::from_secs(60));
    assert_eq!(h.result().await.unwrap(), r#"{"n":7}"#);
    engine.shutdown().await;
}

#[durable]
async fn napper(ctx: Ctx, name: String) -> String {
    ctx.sleep(Duration::from_secs(10)).await.unwrap();
    name
}

/// Replaces the stored frame of `id` with `frame`, through the store's own API.
async fn replace_frame(store: &MemoryStore, id: &str, frame: Vec<u8>) {
    let mut record = store.load(id).await.unwrap().unwrap();
    let expected_seq = record.seq;
    record.seq += 1;
    record.position.as_mut().unwrap().frame = frame;
    store
        .commit(Commit {
            record,
            expected_seq,
            history: Vec::new(),
            prune_history_below: 0,
            operations: Vec::new(),
            deliveries: Vec::new(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn corrupt_truncated_and_foreign_frames_park_with_typed_errors_never_panics() {
    let clock = TestClock::new(Timestamp::from_millis(0));
    let store = Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(napper)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let good = {
        engine.start(napper, "probe", "x".into()).await.unwrap();
        common::until_status(&*store, "probe", Status::Suspended).await;
        store
            .load("probe")
            .await
            .unwrap()
            .unwrap()
            .position
            .unwrap()
            .frame
    };
    let mut wrong_value = good.clone();
    let last = wrong_value.len() - 1;
    wrong_value[last] = 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() - 2].to_vec()),
        ("foreign", b"GET / HTTP/1.1\r\n".to_vec()),
        ("empty", Vec::new()),
        ("future-version", {
            let mut f = good.clone();
            f[1] = 200;
            f
        }),
        ("unknown-point", {
            let mut f = good.clone();
            f[3] = 99;
            f
        }),
        ("wrong-value", wrong_value),
    ];
    for (id, frame) in &cases {
        engine.start(napper, *id, id.to_string()).await.unwrap();
        common::until_status(&*store, id, Status::Suspended).await;
        replace_frame(&store, id, frame.clone()).await;
        match engine.describe(id).await {
            // A frame whose envelope reads but one of whose locals does not decode is
            // described, that local marked unreadable.
            Ok(d) if *id == "wrong-value" => {
                assert_eq!(d.locals.len(), 1, "{d:?}");
                let why = d.locals[0].unreadable.as_deref().unwrap_or_default();
                assert!(why.contains("local `name`"), "{why}");
            }
            Err(Error::Corrupt { id: got, .. }) => assert_eq!(got, *id),
            Ok(d) => panic!("{id}: described corrupt state: {d:?}"),
            Err(other) => panic!("{id}: {other}"),
        }
    }
    clock.advance(Duration::from_secs(10));
    for (id, frame) in &cases {
        // Parked, never failed: its data is kept until code that reads it is registered.
        match engine.handle(napper, *id).result().await {
            Err(Error::Parked { message, .. }) => {
                assert!(message.contains("does not decode"), "{id}: {message}");
                assert!(!message.contains("panicked"), "{id}: {message}");
            }
            other => panic!("{id}: expected it parked, got {other:?}"),
        }
        let record = store.load(id).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Parked, "{id}");
        assert_eq!(
            record.position.map(|p| p.frame).as_ref(),
            Some(frame),
            "{id}: the frame is kept as it was"
        );
    }
    assert_eq!(
        engine.handle(napper, "probe").result().await.unwrap(),
        "x",
        "a sound execution is unaffected"
    );
    engine.shutdown().await;
}
