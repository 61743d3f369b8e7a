//! Runs the workflows of a crate that depends on `durable-core` as `renamed`, straight
//! through and resuming from the stored frame after every point.

use durable_hygiene_renamed::{count_to, total, Line};
use renamed::{Engine, MemoryStore, Workflow};

async fn engine(suspend: bool) -> Engine {
    Engine::builder(MemoryStore::new())
        .register(total)
        .register(count_to)
        .suspend_after_every_point(suspend)
        .open()
        .await
        .unwrap()
}

#[tokio::test]
async fn workflows_in_a_crate_that_renames_the_runtime_run() {
    assert_eq!(<count_to::Workflow as Workflow>::NAME, "count-to");
    for suspend in [false, true] {
        let engine = engine(suspend).await;
        let lines = vec![
            Line {
                units: 2,
                cents: 500,
            },
            Line {
                units: 1,
                cents: 250,
            },
        ];
        let out = engine
            .start(total, "small", lines)
            .await
            .unwrap()
            .result()
            .await
            .unwrap();
        assert_eq!(out, Ok(1250));
        let big = vec![Line {
            units: 100,
            cents: 200,
        }];
        let out = engine
            .start(total, "big", big)
            .await
            .unwrap()
            .result()
            .await
            .unwrap();
        assert_eq!(out, Ok(18_000));
        let out = engine
            .start(count_to, "count", 3)
            .await
            .unwrap()
            .result()
            .await
            .unwrap();
        assert_eq!(out, 3);
        engine.shutdown().await;
    }
}
