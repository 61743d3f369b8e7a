//! What a child workflow costs on the sled store (default durability), beside the same
//! work done as steps in one execution, measured in the same run.
//!
//! `cargo bench --bench children` prints, as medians of interleaved rounds:
//! - one execution running 200 no-op steps in a loop;
//! - one execution calling, 200 times in a loop, a child workflow of one no-op step
//!   (`ctx.call`): each call is three commits of the parent, one creation and the child's
//!   own two commits;
//! - 20 parents at once, each calling 10 such children (the commits share flushes).

mod measure;

use std::time::Instant;

use durable_core::{durable, ChildError, Ctx, Engine};
use durable_store_sled::SledStore;
use measure::scratch;

#[durable]
async fn one_step(ctx: Ctx) -> u32 {
    ctx.step_infallible("noop", || async { 1 }).await
}

#[durable]
async fn steps(ctx: Ctx, count: u32) -> u32 {
    let mut done = 0;
    for _ in 0..count {
        done += ctx.step_infallible("noop", || async { 1 }).await;
    }
    done
}

#[durable]
async fn calls(ctx: Ctx, count: u32) -> Result<u32, ChildError> {
    let mut done = 0;
    for _ in 0..count {
        done += ctx.call(one_step, ()).await?;
    }
    Ok(done)
}

async fn engine(name: &str) -> (Engine, std::path::PathBuf) {
    let dir = scratch(name);
    let engine = Engine::builder(SledStore::open(&dir).expect("store opens"))
        .register(steps)
        .register(calls)
        .open()
        .await
        .expect("engine opens");
    (engine, dir)
}

/// Units of work per second: `count` steps in one execution.
async fn in_steps(count: u32) -> f64 {
    let (engine, dir) = engine("child-steps").await;
    let started = Instant::now();
    let done = engine
        .start(steps, "steps", count)
        .await
        .expect("starts")
        .result()
        .await
        .expect("finishes");
    let rate = f64::from(done) / started.elapsed().as_secs_f64();
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    rate
}

/// Calls per second: `parents` executions at once, each calling `count` children.
async fn in_children(parents: u32, count: u32) -> f64 {
    let (engine, dir) = engine(&format!("child-calls-{parents}")).await;
    let started = Instant::now();
    let mut handles = Vec::new();
    for p in 0..parents {
        handles.push(
            engine
                .start(calls, format!("parent-{p}"), count)
                .await
                .expect("starts"),
        );
    }
    let mut done = 0;
    for handle in handles {
        done += handle
            .result()
            .await
            .expect("finishes")
            .expect("children finish");
    }
    let rate = f64::from(done) / started.elapsed().as_secs_f64();
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    rate
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Rounds of each measurement, interleaved so that disk noise hits both sides alike.
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() {
    let (mut step_rates, mut call_rates, mut parallel_rates) = (vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        step_rates.push(in_steps(200).await);
        call_rates.push(in_children(1, 200).await);
        parallel_rates.push(in_children(20, 10).await);
    }
    let (step_rate, call_rate) = (median(step_rates), median(call_rates));
    let parallel_rate = median(parallel_rates);
    println!("medians of {ROUNDS} interleaved rounds, sled, default durability:");
    println!("one execution, 200 no-op steps:              {step_rate:>8.0} steps/s");
    println!(
        "one execution, 200 calls of a one-step child: {call_rate:>8.0} calls/s  ({:.1} steps' time per call)",
        step_rate / call_rate
    );
    println!("20 parents x 10 calls at once:               {parallel_rate:>8.0} calls/s");
}
