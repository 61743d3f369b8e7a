//! What a batch costs on the sled store (default durability): `ctx.map` over no-op step
//! items, beside the same number of sequential no-op steps in one execution, measured in
//! the same run.
//!
//! `cargo bench --bench fan_out` prints:
//! - one execution running 10,000 no-op steps in a loop (each step its own commit);
//! - one execution mapping 10,000 items, one no-op step each, at most 100 in flight (the
//!   items' outcomes are committed in groups);
//!   both as the median of 3 interleaved rounds, with the peak RSS of the map;
//! - one map of 100,000 items (`FAN_OUT_BIG=N` for another count): time, items/s and
//!   peak RSS of the process during it.
//!
//! `FAN_OUT_ITEMS=N` changes the 10,000.

mod measure;

use std::time::Instant;

use durable_core::{durable, BatchResult, Ctx, Engine};
use durable_store_sled::SledStore;
use measure::{mb, reset_peak_rss, scratch, status_kb};

#[durable]
async fn steps(ctx: Ctx, count: u64) -> u64 {
    let mut done = 0;
    for _ in 0..count {
        done += ctx.step_infallible("noop", || async { 1 }).await;
    }
    done
}

#[durable]
async fn fan_out(ctx: Ctx, count: u64) -> BatchResult<u64> {
    ctx.map(
        "noop",
        0..count as usize,
        |i: usize| async move { Ok(i as u64) },
    )
    .max_in_flight(100)
    .await
}

async fn engine(name: &str) -> (Engine, std::path::PathBuf) {
    let dir = scratch(name);
    let engine = Engine::builder(SledStore::open(&dir).expect("store opens"))
        .register(steps)
        .register(fan_out)
        .open()
        .await
        .expect("engine opens");
    (engine, dir)
}

/// Seconds for `count` sequential steps in one execution.
async fn sequential(count: u64) -> f64 {
    let (engine, dir) = engine("fan-steps").await;
    let started = Instant::now();
    let done = engine
        .start(steps, "steps", count)
        .await
        .expect("starts")
        .result()
        .await
        .expect("finishes");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(done, count);
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    secs
}

/// Seconds for a map of `count` items, and the peak RSS (kB) while it ran.
async fn mapped(count: u64) -> (f64, u64) {
    let (engine, dir) = engine("fan-map").await;
    reset_peak_rss();
    let started = Instant::now();
    let batch = engine
        .start(fan_out, "map", count)
        .await
        .expect("starts")
        .result()
        .await
        .expect("finishes");
    let secs = started.elapsed().as_secs_f64();
    let peak = status_kb("VmHWM");
    assert_eq!(batch.len() as u64, count);
    assert_eq!(batch.succeeded().count() as u64, count);
    drop(batch);
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    (secs, peak)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let count = env_or("FAN_OUT_ITEMS", 10_000);
    let big = env_or("FAN_OUT_BIG", 100_000);
    let mut sequential_secs = Vec::new();
    let mut map_secs = Vec::new();
    let mut map_peaks = Vec::new();
    for _ in 0..3 {
        sequential_secs.push(sequential(count).await);
        let (secs, peak) = mapped(count).await;
        map_secs.push(secs);
        map_peaks.push(peak);
    }
    let seq = median(sequential_secs);
    let map = median(map_secs);
    let peak = map_peaks.iter().copied().max().unwrap_or(0);
    println!("sled store, default durability; medians of 3 interleaved rounds");
    println!(
        "{count} sequential no-op steps, one execution: {seq:>7.2} s  {:>9.0} steps/s",
        count as f64 / seq
    );
    println!(
        "map of {count} no-op step items, 100 in flight: {map:>7.2} s  {:>9.0} items/s  (peak RSS {:.1} MB)",
        count as f64 / map,
        mb(peak)
    );
    let rss_before = status_kb("VmRSS");
    let (secs, peak) = mapped(big).await;
    println!(
        "map of {big} no-op step items, 100 in flight: {secs:>7.2} s  {:>9.0} items/s  (peak RSS {:.1} MB, {:.1} MB before)",
        big as f64 / secs,
        mb(peak),
        mb(rss_before)
    );
}
