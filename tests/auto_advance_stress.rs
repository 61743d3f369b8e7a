//! Stress test of the handshake between the timer service and the activations that lets
//! an auto-advancing `TestClock` jump to the next timer once the engine is idle.
//!
//! A three-sleep workflow runs thousands of times, one execution after another, with
//! `suspend_after_every_point(true)` so that every point goes through the queue. Each
//! execution must finish; a lost wake-up leaves one suspended forever with the clock
//! standing still, which the test reports after a generous real-time bound.
//!
//! `DURABLE_STRESS_RUNS=N` runs N executions instead of the default.

use std::time::Duration;

use durable_core::{durable, Ctx, EngineBuilder, MemoryStore, Status, TestClock, Timestamp};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const DEFAULT_RUNS: u32 = 10_000;
/// Far longer than any execution takes: reaching it means a wake-up was lost.
const HANG: Duration = Duration::from_secs(30);

#[durable]
async fn three_naps(ctx: Ctx, n: u32) -> u32 {
    ctx.sleep(Duration::from_secs(60)).name("first").await.ok();
    ctx.sleep(Duration::from_secs(3_600))
        .name("second")
        .await
        .ok();
    ctx.sleep(Duration::from_secs(86_400))
        .name("third")
        .await
        .ok();
    n
}

fn runs() -> u32 {
    match std::env::var("DURABLE_STRESS_RUNS") {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("DURABLE_STRESS_RUNS must be a number, got {n:?}")),
        Err(_) => DEFAULT_RUNS,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_advance_never_strands_a_sleeping_execution() {
    let clock = TestClock::new(START).auto_advance(true);
    let engine = EngineBuilder::new(MemoryStore::new())
        .register(three_naps)
        .clock(clock.clone())
        .suspend_after_every_point(true)
        .open()
        .await
        .unwrap();
    let runs = runs();
    for i in 0..runs {
        let id = format!("naps-{i}");
        let handle = engine.start(three_naps, id.as_str(), i).await.unwrap();
        match tokio::time::timeout(HANG, handle.result()).await {
            Ok(result) => assert_eq!(result.unwrap(), i),
            Err(_) => {
                let record = engine.execution(&id).await.unwrap().unwrap();
                panic!(
                    "execution {i} of {runs} hung: status {:?}, wake_at {:?}, clock at {}, \
                     next clock deadline {:?}",
                    record.status,
                    record.wake_at,
                    clock.now(),
                    clock.next_deadline()
                );
            }
        }
    }
    let done = engine
        .executions(&durable_core::ListFilter::all().status(Status::Completed))
        .await
        .unwrap();
    assert_eq!(done.len(), runs as usize);
    engine.shutdown().await;
}
