//! The engine driven by a hand-written state machine, exactly as `#[durable]` lowers one:
//! this pins the contract in `__private_v1` independently of the macro.
//!
//! The workflow, as a user would write it:
//! ```ignore
//! async fn count(ctx: Ctx, n: u32) -> Result<u64, StepError<String>> {
//!     let mut total = 0u64;
//!     for i in 0..n {
//!         total += ctx.typed_step("add", || async move { Ok::<u64, String>(i as u64) }).await?;
//!     }
//!     Ok(total)
//! }
//! ```

// `(&ForSource::new(..)).durable_iter()`: the borrow is what selects the trait.
#![allow(clippy::needless_borrow)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use durable_core::__private_v1::{self as p, Entry, Machine, PointInfo, Slot};
use durable_core::{
    Codec, Ctx, Engine, Event, MemoryStore, RetryPolicy, Status, StepError, Store, TestClock,
    Timestamp, Workflow,
};

static BODY_RUNS: AtomicU32 = AtomicU32::new(0);
static FLAKY_FAILURES: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy, Debug, Default)]
struct Count;

/// What `#[durable]` defines beside the type: the function item that stands for it.
fn count(_: p::Select) -> Count {
    Count
}

impl Workflow for Count {
    type Input = u32;
    type Output = Result<u64, StepError<String>>;
    const NAME: &'static str = "count";
    const FINGERPRINT: u64 = 1;
    const LOWERING_FORMAT: u32 = 1;
    const CODEC: Codec = Codec::Bincode;
    const POINTS: &'static [PointInfo] = &[PointInfo {
        id: 0,
        label: "ctx.typed_step(\"add\", ..)",
        line: 1,
        locals: &["n", "total", "i", "iter"],
    }];

    fn __machine(ctx: Ctx, entry: Entry) -> Machine<Self::Output> {
        p::machine(move |stop| async move {
            let __ctx = ctx;
            let mut s_n = Slot::new();
            let mut s_total = Slot::new();
            let mut s_iter = Slot::new();
            let mut s_i = Slot::new();
            let o_add = p::OutcomeType::new();
            let (mut block, mut bytes, inspect) = p::start(entry);
            p::output::<Result<u64, StepError<String>>>('machine: loop {
                match block {
                    0 => {
                        let n = match p::input::<Count>(&mut bytes) {
                            Ok(n) => n,
                            Err(interrupt) => match p::halt(&stop, interrupt).await {},
                        };
                        let total = 0u64;
                        s_iter.put({
                            // Which trait applies depends on the type.
                            #[allow(unused_imports)]
                            use p::{ViaCollect as _, ViaRange as _};
                            (&p::ForSource::new(0..n)).durable_iter()
                        });
                        s_n.put(n);
                        s_total.put(total);
                        block = 1;
                    }
                    1 => {
                        let mut it = s_iter.take();
                        let next = Iterator::next(&mut it);
                        s_iter.put(it);
                        match next {
                            Some(i) => {
                                s_i.put(i);
                                block = 2;
                            }
                            None => block = 3,
                        }
                    }
                    2 => {
                        let entered = p::enter(&stop, &__ctx, 0, |w| {
                            w.local(p::SlotCodec::new(), &s_n, "n");
                            w.local(p::SlotCodec::new(), &s_total, "total");
                            w.local(p::SlotCodec::new(), &s_i, "i");
                            w.local(p::SlotCodec::new(), &s_iter, "iter");
                        })
                        .await;
                        let i = s_i.take();
                        let mut total = s_total.take();
                        // The workflow's own `?`: the machine's body returns its output.
                        total += p::outcome(&stop, o_add, entered, |r| {
                            p::run(
                                __ctx.typed_step("add", || async move {
                                    BODY_RUNS.fetch_add(1, Ordering::SeqCst);
                                    Ok::<u64, String>(i as u64)
                                }),
                                r,
                            )
                        })
                        .await?;
                        s_total.put(total);
                        block = 1;
                    }
                    3 => {
                        let total = s_total.take();
                        break 'machine Ok(total);
                    }
                    u32::MAX => {
                        block = p::resume(&stop, &mut bytes, inspect, |r| match r.point() {
                            0 => {
                                r.outcome(o_add);
                                r.local(p::SlotCodec::new(), &mut s_n, "n");
                                r.local(p::SlotCodec::new(), &mut s_total, "total");
                                r.local(p::SlotCodec::new(), &mut s_i, "i");
                                r.local(p::SlotCodec::new(), &mut s_iter, "iter");
                                2
                            }
                            _ => r.unknown_point(),
                        })
                        .await;
                    }
                    _ => unreachable!("no such block"),
                }
            })
        })
    }
}

/// A workflow whose single step fails twice before it succeeds, with a one-hour delay.
#[derive(Clone, Copy, Debug, Default)]
struct Flaky;

fn flaky(_: p::Select) -> Flaky {
    Flaky
}

impl Workflow for Flaky {
    type Input = ();
    type Output = Result<u32, StepError<String>>;
    const NAME: &'static str = "flaky";
    const FINGERPRINT: u64 = 7;
    const LOWERING_FORMAT: u32 = 1;
    const CODEC: Codec = Codec::Json;
    const POINTS: &'static [PointInfo] = &[];

    fn __machine(ctx: Ctx, entry: Entry) -> Machine<Self::Output> {
        p::machine(move |stop| async move {
            // Start, resume and inspect all enter the single point.
            let _ = p::start(entry);
            let entered = p::enter(&stop, &ctx, 0, |_| {}).await;
            p::outcome(&stop, p::OutcomeType::new(), entered, |r| {
                p::run(
                    ctx.step_with_attempt("flaky", |attempt| async move {
                        if attempt < 3 {
                            FLAKY_FAILURES.fetch_add(1, Ordering::SeqCst);
                            Err(format!("attempt {attempt} failed"))
                        } else {
                            Ok(attempt)
                        }
                    })
                    .retry(
                        RetryPolicy::fixed(Duration::from_secs(3600))
                            .max_attempts(5)
                            .jitter(0.0),
                    ),
                    r,
                )
            })
            .await
        })
    }
}

#[tokio::test]
async fn hand_lowered_loop_runs_and_resumes_at_every_point() {
    for suspend in [false, true] {
        BODY_RUNS.store(0, Ordering::SeqCst);
        let engine = Engine::builder(MemoryStore::new())
            .register(count)
            .suspend_after_every_point(suspend)
            .open()
            .await
            .unwrap();
        let handle = engine.start(count, "c", 5).await.unwrap();
        assert_eq!(handle.result().await.unwrap(), Ok(10));
        assert_eq!(BODY_RUNS.load(Ordering::SeqCst), 5, "suspend={suspend}");
        // Idempotent start: same id and input finds the finished execution.
        let again = engine.start(count, "c", 5).await.unwrap();
        assert_eq!(again.result().await.unwrap(), Ok(10));
        assert_eq!(BODY_RUNS.load(Ordering::SeqCst), 5);
        // Same id, different input: a clear error.
        let err = engine.start(count, "c", 6).await.unwrap_err();
        assert!(err.to_string().contains("different input"), "{err}");
        engine.shutdown().await;
    }
}

#[tokio::test]
async fn retries_suspend_until_the_clock_reaches_the_wake_up_time() {
    let clock = TestClock::new(Timestamp::from_millis(1_000_000));
    let store = Arc::new(MemoryStore::new());
    let engine = durable_core::EngineBuilder::with_store(store.clone())
        .register(flaky)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let handle = engine.start(flaky, "f", ()).await.unwrap();
    // Wait until the first failure is committed and the execution has left memory.
    loop {
        let record = store.load("f").await.unwrap().unwrap();
        if record.status == Status::Suspended {
            assert_eq!(
                record.wake_at,
                Some(Timestamp::from_millis(1_000_000 + 3_600_000))
            );
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(FLAKY_FAILURES.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(3600));
    loop {
        if clock.next_deadline().is_some()
            && store.load("f").await.unwrap().unwrap().history_next >= 2
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    clock.advance(Duration::from_secs(3600));
    assert_eq!(handle.result().await.unwrap(), Ok(3));
    let history = engine.history("f").await.unwrap();
    let failed = history
        .iter()
        .filter(|h| matches!(h.event, Event::StepFailed { .. }))
        .count();
    assert_eq!(failed, 2);
    assert!(matches!(history.last().unwrap().event, Event::Completed));
    engine.shutdown().await;
}
