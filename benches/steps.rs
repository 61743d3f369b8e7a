//! Step throughput and resume time on the sled store, beside the raw sled limits
//! measured in the same run.
//!
//! `cargo bench --bench steps` prints:
//! - raw sled: insert + flush per record, and per batch of 64 records;
//! - one execution of 1,000 no-op steps, with the store's default durability (flush +
//!   fdatasync) and with `Durability::ProcessCrash` (sled's flush only), each beside the
//!   raw limit of the same durability;
//! - in memory (the engine's own cost): no-op steps, fallible no-op steps, and attempts
//!   of a step retried at once (each a commit and a new activation);
//! - 200 concurrent executions of 10 no-op steps (group commit);
//! - time to resume an execution after 10 and after 10,000 completed steps;
//! - how late timers fire on the system clock.
//!
//! `cargo bench --bench steps -- concurrent` (or `one`, `one-flush`, `resume`, `raw`,
//! `memory`, `memory-concurrent`) runs one section alone, `STEPS_ROUNDS` times (default 5),
//! and prints each round's figure. `memory-concurrent` is `concurrent` on the memory store:
//! the engine's own cost with many executions at once, without the sled store's writer
//! thread (which is what bounds `concurrent`). `STEPS_CONCURRENT=N` sets how many
//! executions the two run at once (default 200): past the store's memory of recent
//! executions (4,096), reads and contention change.

use std::time::{Duration, Instant};

use durable_core::{
    durable, Ctx, Engine, EngineBuilder, Failure, RetryPolicy, StepContext, TestClock, Timestamp,
};
use durable_store_sled::{Durability, SledStore};

#[durable]
async fn noop_steps(ctx: Ctx, steps: u32) -> u32 {
    let mut done = 0;
    for _ in 0..steps {
        ctx.step_infallible("noop", || async {}).await;
        done += 1;
    }
    done
}

#[durable]
async fn fallible_steps(ctx: Ctx, steps: u32) -> Result<u32, Failure> {
    let mut done = 0;
    for _ in 0..steps {
        ctx.step("noop", || async { Ok(()) }).await?;
        done += 1;
    }
    Ok(done)
}

/// One step whose first `attempts - 1` attempts fail and are retried at once.
#[durable]
async fn retried_at_once(ctx: Ctx, attempts: u32) -> Result<u32, Failure> {
    let last = ctx
        .step("flaky", |s: StepContext| async move {
            if s.attempt() < attempts {
                return Err(Failure::new("not yet"));
            }
            Ok(s.attempt())
        })
        .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(attempts))
        .await?;
    Ok(last)
}

/// Runs `steps` no-op steps, then a step that fails once and retries an hour later.
#[durable]
async fn steps_then_wait(ctx: Ctx, steps: u32) -> u32 {
    let mut done = 0;
    for _ in 0..steps {
        ctx.step_infallible("noop", || async {}).await;
        done += 1;
    }
    let waited = ctx
        .step_with_attempt("wait", |attempt| async move {
            if attempt == 1 {
                Err(())
            } else {
                Ok(attempt)
            }
        })
        .retry(
            RetryPolicy::fixed(Duration::from_secs(3600))
                .max_attempts(2)
                .jitter(0.0),
        )
        .await;
    done + waited.unwrap_or(0)
}

/// Sleeps until 50 ms from now and returns how late it woke, in milliseconds.
#[durable]
async fn lateness(ctx: Ctx, delay_ms: u64) -> u64 {
    let due = ctx.now().saturating_add(Duration::from_millis(delay_ms));
    ctx.sleep_until(due).await.expect("a 50 ms wait is valid");
    ctx.now().as_millis().saturating_sub(due.as_millis())
}

/// Median and worst lateness of `count` timers due 50 ms after their start, on the
/// system clock.
async fn timer_lateness(count: u32) -> (u64, u64) {
    let dir = scratch("lateness");
    let engine = Engine::builder(SledStore::open(&dir).expect("store opens"))
        .register(lateness)
        .open()
        .await
        .expect("engine opens");
    let mut handles = Vec::new();
    for i in 0..count {
        handles.push(
            engine
                .start(lateness, format!("late-{i}"), 50)
                .await
                .expect("starts"),
        );
    }
    let mut late = Vec::new();
    for h in handles {
        late.push(h.result().await.expect("finishes"));
    }
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    late.sort();
    (late[late.len() / 2], late[late.len() - 1])
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("durable-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Inserts `records` 100-byte values in batches of `batch`, flushing after each batch;
/// with `fdatasync`, also syncs sled's log file the way `SledStore` does (sled's own
/// flush ends in `sync_file_range`, which does not persist the file size).
fn raw_sled(records: usize, batch: usize, fdatasync: bool) -> f64 {
    let dir = scratch(&format!("raw-{batch}-{fdatasync}"));
    let db = sled::open(&dir).expect("sled opens");
    let log = std::fs::File::open(dir.join("db")).expect("sled log opens");
    let value = vec![7u8; 100];
    let start = Instant::now();
    let mut i = 0usize;
    while i < records {
        let mut b = sled::Batch::default();
        for _ in 0..batch {
            b.insert(&(i as u64).to_be_bytes(), value.as_slice());
            i += 1;
        }
        db.apply_batch(b).expect("batch applies");
        db.flush().expect("flush");
        if fdatasync {
            log.sync_data().expect("fdatasync");
        }
    }
    let rate = records as f64 / start.elapsed().as_secs_f64();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

/// Steps per second of one execution of `steps` no-op steps on `store`.
async fn one_execution_on(store: impl durable_core::Store, steps: u32) -> f64 {
    let engine = Engine::builder(store)
        .register(noop_steps)
        .open()
        .await
        .expect("engine opens");
    let start = Instant::now();
    let done = engine
        .start(noop_steps, "one", steps)
        .await
        .expect("starts")
        .result()
        .await
        .expect("finishes");
    let elapsed = start.elapsed();
    assert_eq!(done, steps);
    engine.shutdown().await;
    f64::from(steps) / elapsed.as_secs_f64()
}

async fn one_execution_in_memory(steps: u32) -> f64 {
    one_execution_on(durable_core::MemoryStore::new(), steps).await
}

/// Steps (or attempts) per second of one execution of `workflow` in memory.
async fn in_memory<W>(workflow: W, count: u32) -> f64
where
    W: durable_core::WorkflowFn,
    W::Workflow: durable_core::Workflow<Input = u32, Output = Result<u32, Failure>>,
{
    let engine = Engine::builder(durable_core::MemoryStore::new())
        .register(workflow)
        .open()
        .await
        .expect("engine opens");
    let start = Instant::now();
    let done = engine
        .start(workflow, "one", count)
        .await
        .expect("starts")
        .result()
        .await
        .expect("finishes");
    let elapsed = start.elapsed();
    assert_eq!(done, Ok(count));
    engine.shutdown().await;
    f64::from(count) / elapsed.as_secs_f64()
}

async fn one_execution(steps: u32, durability: Durability) -> f64 {
    let dir = scratch("one");
    let store = SledStore::open_with(&dir, durability).expect("store opens");
    let rate = one_execution_on(store, steps).await;
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

async fn concurrent(executions: u32, steps: u32) -> f64 {
    let dir = scratch("many");
    let rate = concurrent_on(
        SledStore::open(&dir).expect("store opens"),
        executions,
        steps,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

/// Steps per second of `executions` executions of `steps` no-op steps each, all started at
/// once, on `store`.
async fn concurrent_on(store: impl durable_core::Store, executions: u32, steps: u32) -> f64 {
    let engine = Engine::builder(store)
        .register(noop_steps)
        .max_concurrent(executions as usize)
        .open()
        .await
        .expect("engine opens");
    let start = Instant::now();
    let mut handles = Vec::new();
    for i in 0..executions {
        let engine = engine.clone();
        handles.push(tokio::spawn(async move {
            engine
                .start(noop_steps, format!("exec-{i}"), steps)
                .await
                .expect("starts")
                .result()
                .await
                .expect("finishes")
        }));
    }
    for h in handles {
        assert_eq!(h.await.expect("task"), steps);
    }
    let elapsed = start.elapsed();
    engine.shutdown().await;
    f64::from(executions * steps) / elapsed.as_secs_f64()
}

/// Median time from the wake-up of a suspended execution with `history` completed steps
/// to its completion.
async fn resume_time(history: u32, samples: u32) -> Duration {
    let dir = scratch(&format!("resume-{history}"));
    let clock = TestClock::new(Timestamp::from_millis(1_000_000_000));
    let engine = EngineBuilder::new(SledStore::open(&dir).expect("store opens"))
        .register(steps_then_wait)
        .clock(clock.clone())
        .open()
        .await
        .expect("engine opens");
    let mut times = Vec::new();
    for s in 0..samples {
        let id = format!("resume-{history}-{s}");
        let handle = engine
            .start(steps_then_wait, id.clone(), history)
            .await
            .expect("starts");
        // Wait until it has committed its wait.
        loop {
            let record = engine.execution(&id).await.expect("loads").expect("exists");
            if record.status == durable_core::Status::Suspended {
                break;
            }
            tokio::task::yield_now().await;
        }
        let start = Instant::now();
        clock.advance(Duration::from_secs(3600));
        let out = handle.result().await.expect("finishes");
        times.push(start.elapsed());
        assert_eq!(out, history + 2);
    }
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    times.sort();
    times[times.len() / 2]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Rounds of each measurement, interleaved so that disk noise hits both sides alike.
const ROUNDS: usize = 5;

/// The section named on the command line (`cargo bench --bench steps -- concurrent`),
/// if any: only that one runs, `STEPS_ROUNDS` times (default [`ROUNDS`]), so that it can
/// be repeated or run under a profiler alone.
fn section() -> Option<String> {
    std::env::args().skip(1).find(|a| !a.starts_with('-'))
}

/// The number in the environment variable `name`, or `default` if it is unset or not a
/// number (`STEPS_ROUNDS`, and `STEPS_CONCURRENT` for the executions the `concurrent`
/// sections run at once).
fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Runs only `section`: `one`, `one-flush`, `concurrent`, `resume`, `raw` (raw sled,
/// flush + fdatasync per record: the limit `one` is compared with), `memory` (one
/// execution on the memory store: the engine alone) or `memory-concurrent` (`concurrent`
/// on the memory store).
async fn only(section: &str) {
    let rounds = env_number("STEPS_ROUNDS", ROUNDS);
    let executions = env_number("STEPS_CONCURRENT", 200);
    let mut figures = Vec::new();
    for _ in 0..rounds {
        figures.push(match section {
            "one" => one_execution(1_000, Durability::PowerLoss).await,
            "one-flush" => one_execution(1_000, Durability::ProcessCrash).await,
            "concurrent" => concurrent(executions, 10).await,
            "resume" => resume_time(10_000, 1).await.as_secs_f64() * 1e3,
            "raw" => raw_sled(1_000, 1, true),
            "memory" => one_execution_in_memory(10_000).await,
            "memory-concurrent" => {
                concurrent_on(durable_core::MemoryStore::new(), executions, 10).await
            }
            other => {
                panic!(
                    "unknown section `{other}`: one, one-flush, concurrent, resume, raw, memory \
                     or memory-concurrent"
                )
            }
        });
    }
    let unit = match section {
        "resume" => "ms",
        "raw" => "records/s",
        _ => "steps/s",
    };
    let shown: Vec<String> = figures.iter().map(|f| format!("{f:.1}")).collect();
    println!(
        "{section}: median {:.1} {unit} of {rounds} rounds ({})",
        median(figures.clone()),
        shown.join(", ")
    );
}

#[tokio::main]
async fn main() {
    if let Some(section) = section() {
        return only(&section).await;
    }
    let (mut per_record, mut per_record_sync, mut per_batch) = (vec![], vec![], vec![]);
    let (mut one, mut one_flush, mut many) = (vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        per_record.push(raw_sled(1_000, 1, false));
        per_record_sync.push(raw_sled(1_000, 1, true));
        one.push(one_execution(1_000, Durability::PowerLoss).await);
        one_flush.push(one_execution(1_000, Durability::ProcessCrash).await);
        per_batch.push(raw_sled(64 * 200, 64, false));
        many.push(concurrent(200, 10).await);
    }
    let (per_record, per_batch) = (median(per_record), median(per_batch));
    let per_record_sync = median(per_record_sync);
    let (one, one_flush, many) = (median(one), median(one_flush), median(many));
    let in_memory_steps = one_execution_in_memory(10_000).await;
    let in_memory_fallible = in_memory(fallible_steps, 10_000).await;
    let in_memory_retries = in_memory(retried_at_once, 10_000).await;
    println!("medians of {ROUNDS} interleaved rounds:");
    println!("raw sled, insert + flush per record:      {per_record:>10.0} records/s");
    println!("raw sled, + fdatasync per record:         {per_record_sync:>10.0} records/s");
    println!("raw sled, insert + flush per batch of 64: {per_batch:>10.0} records/s");
    println!(
        "one execution, 1,000 no-op steps:        {one:>10.0} steps/s  ({:.0} % of flush + fdatasync, the same durability)",
        100.0 * one / per_record_sync
    );
    println!(
        "  same, Durability::ProcessCrash:        {one_flush:>10.0} steps/s  ({:.0} % of flush per record, the same durability)",
        100.0 * one_flush / per_record
    );
    println!("one execution, in memory (engine only):  {in_memory_steps:>10.0} steps/s");
    println!("  same, fallible steps (ctx.step):       {in_memory_fallible:>10.0} steps/s");
    println!("  one step retried at once, in memory:   {in_memory_retries:>10.0} attempts/s");
    println!("200 concurrent executions x 10 steps:    {many:>10.0} steps/s");

    let short = resume_time(10, 9).await;
    let long = resume_time(10_000, 3).await;
    println!("resume after 10 completed steps:         {short:>10.2?} (median)");
    println!("resume after 10,000 completed steps:     {long:>10.2?} (median)");
    let (median_late, worst_late) = timer_lateness(100).await;
    println!(
        "100 timers due in 50 ms, fired late by:   {median_late} ms median, {worst_late} ms worst"
    );
}
