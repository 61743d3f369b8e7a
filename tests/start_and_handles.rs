//! Idempotent starts with inputs whose serialization order varies, handles typed for the
//! wrong workflow, and handles used after the engine shut down.

use std::collections::{BTreeMap, HashMap, HashSet};

use durable_core::{durable, Ctx, Engine, Error, MemoryStore, Status};
use durable_store_sled::SledStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Basket {
    quantities: HashMap<String, u32>,
    tags: HashSet<String>,
    lines: Vec<String>,
    by_shelf: BTreeMap<u32, HashSet<u64>>,
    coupons: Option<HashSet<String>>,
    nested: Vec<HashMap<u8, Vec<u8>>>,
}

/// A basket with many entries, built afresh each time: every `HashMap` and `HashSet`
/// gets its own random seed, so two equal baskets almost never iterate alike.
fn basket() -> Basket {
    Basket {
        quantities: (0..40).map(|i| (format!("sku-{i}"), i)).collect(),
        tags: (0..40).map(|i| format!("tag-{i}")).collect(),
        lines: vec!["first".into(), "second".into(), "third".into()],
        by_shelf: (0..5)
            .map(|s| (s, (0..30).map(|i| i * 7 + s as u64).collect()))
            .collect(),
        coupons: Some((0..30).map(|i| format!("c{i}")).collect()),
        nested: vec![(0..30).map(|i| (i, vec![i, i + 1])).collect()],
    }
}

#[durable]
async fn checkout(ctx: Ctx, basket: Basket) -> usize {
    let items = ctx
        .step_infallible("count", || async {
            basket.quantities.len() + basket.tags.len()
        })
        .await;
    items
}

#[durable]
async fn tag_set(ctx: Ctx, tags: HashSet<u32>) -> u32 {
    let total = ctx
        .step_infallible("sum", || async { tags.iter().sum::<u32>() })
        .await;
    total
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::IdConflict { reason, .. }) => {
            assert!(reason.contains("different input"), "{what}: {reason}")
        }
        other => panic!("{what}: expected IdConflict, got {other:?}"),
    }
}

#[tokio::test]
async fn equal_inputs_with_maps_and_sets_start_the_same_execution() {
    let engine = Engine::builder(MemoryStore::new())
        .register(checkout)
        .register(tag_set)
        .open()
        .await
        .unwrap();
    let first = engine.start(checkout, "basket", basket()).await.unwrap();
    assert_eq!(first.result().await.unwrap(), 80);
    for _ in 0..5 {
        let again = engine.start(checkout, "basket", basket()).await.unwrap();
        assert_eq!(again.result().await.unwrap(), 80);
    }
    let tags: HashSet<u32> = (0..50).collect();
    engine.start(tag_set, "tags", tags.clone()).await.unwrap();
    let rebuilt: HashSet<u32> = (0..50).rev().collect();
    let again = engine.start(tag_set, "tags", rebuilt).await.unwrap();
    assert_eq!(again.result().await.unwrap(), (0..50).sum::<u32>());
    engine.shutdown().await;
}

#[tokio::test]
async fn inputs_that_differ_in_content_or_sequence_order_still_conflict() {
    let engine = Engine::builder(MemoryStore::new())
        .register(checkout)
        .register(tag_set)
        .open()
        .await
        .unwrap();
    engine.start(checkout, "basket", basket()).await.unwrap();

    let mut reordered = basket();
    reordered.lines.reverse();
    assert_conflict(
        engine.start(checkout, "basket", reordered).await,
        "a list in another order",
    );
    let mut more = basket();
    more.tags.insert("extra".into());
    assert_conflict(engine.start(checkout, "basket", more).await, "a larger set");
    let mut changed = basket();
    changed.quantities.insert("sku-3".into(), 4);
    assert_conflict(
        engine.start(checkout, "basket", changed).await,
        "a map value",
    );
    let mut renamed = basket();
    renamed.quantities.remove("sku-3");
    renamed.quantities.insert("sku-x".into(), 3);
    assert_conflict(engine.start(checkout, "basket", renamed).await, "a map key");
    let mut nested = basket();
    nested.by_shelf.get_mut(&2).unwrap().remove(&9);
    assert_conflict(
        engine.start(checkout, "basket", nested).await,
        "a set in a map",
    );
    let mut inner_order = basket();
    inner_order.nested[0].insert(3, vec![4, 3]);
    assert_conflict(
        engine.start(checkout, "basket", inner_order).await,
        "a list inside a map",
    );
    let mut none = basket();
    none.coupons = None;
    assert_conflict(engine.start(checkout, "basket", none).await, "an option");

    engine
        .start(tag_set, "tags", (0..50).collect())
        .await
        .unwrap();
    assert_conflict(
        engine.start(tag_set, "tags", (1..51).collect()).await,
        "another set",
    );
    engine.shutdown().await;
}

#[durable]
async fn word(ctx: Ctx, text: String) -> String {
    let upper = ctx
        .step_infallible("upper", || async { text.to_uppercase() })
        .await;
    upper
}

#[durable]
async fn number(ctx: Ctx, n: u64) -> u64 {
    let double = ctx.step_infallible("double", || async { n * 2 }).await;
    double
}

#[tokio::test]
async fn a_handle_for_another_workflow_is_a_typed_error_naming_both() {
    let engine = Engine::builder(MemoryStore::new())
        .register(word)
        .register(number)
        .open()
        .await
        .unwrap();
    let right = engine.start(word, "w", "hi".into()).await.unwrap();
    assert_eq!(right.result().await.unwrap(), "HI");
    let wrong = engine.handle(number, "w");
    for result in [
        wrong.result().await.map(drop),
        wrong.status().await.map(drop),
    ] {
        match result {
            Err(Error::WrongWorkflow {
                id,
                expected,
                found,
            }) => {
                assert_eq!(id, "w");
                assert_eq!(expected, "number");
                assert_eq!(found, "word");
            }
            other => panic!("expected WrongWorkflow, got {other:?}"),
        }
    }
    let message = wrong.result().await.unwrap_err().to_string();
    assert!(
        message.contains("`word`") && message.contains("`number`"),
        "{message}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn result_after_shutdown_is_shut_down_not_a_store_error() {
    let dir = std::env::temp_dir().join(format!("durable-handles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Engine::builder(SledStore::open(&dir).unwrap())
        .register(word)
        .open()
        .await
        .unwrap();
    let done = engine.start(word, "done", "x".into()).await.unwrap();
    assert_eq!(done.result().await.unwrap(), "X");
    assert_eq!(done.status().await.unwrap(), Status::Completed);
    engine.shutdown().await;
    for result in [done.result().await.map(drop), done.status().await.map(drop)] {
        assert!(
            matches!(result, Err(Error::ShutDown)),
            "expected ShutDown, got {result:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
