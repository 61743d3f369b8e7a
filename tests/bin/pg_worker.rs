//! One of several engine processes that share a PostgreSQL store, for the tests that
//! SIGKILL one of them (`tests/postgres.rs`).
//!
//! Usage: `pg-worker <url> <schema> <trace-file> <count>`. Opens an engine on the store,
//! starts the executions `job-0` .. `job-<count - 1>` of the `chain` workflow (every
//! worker starts all of them: starting is idempotent across engines), prints `started`,
//! waits for every result (most run on other engines), prints `result <id> <value>` for
//! each and `done`, and shuts down. Every step body appends
//! `effect <id> <step> <attempt> <pid>` to the trace file (with `O_APPEND`, so lines of
//! several processes do not mix) before it returns.

use std::io::Write;
use std::time::Duration;

use durable_core::{durable, Ctx, Engine, RetryPolicy, StepError};
use durable_store_postgres::{Options, PostgresStore};

fn effect(id: &str, step: &str, attempt: u32) {
    let path = std::env::var("PG_WORKER_TRACE").expect("PG_WORKER_TRACE is set by main");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("trace file opens");
    let line = format!("effect {id} {step} {attempt} {}\n", std::process::id());
    file.write_all(line.as_bytes()).expect("trace line written");
}

/// The work a step body does after its effect: long enough that a kill lands inside
/// some step bodies.
async fn work() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout is writable");
    out.flush().expect("stdout is writable");
}

/// Milliseconds to sleep between steps: from 10 to 90, by the input.
fn pause(n: u64) -> Duration {
    Duration::from_millis(10 + (n * 37) % 81)
}

#[durable]
async fn chain(ctx: Ctx, n: u64) -> Result<u64, String> {
    let id = ctx.execution_id().to_owned();
    let a = ctx
        .step_with_attempt("a", |attempt| {
            let id = id.clone();
            async move {
                effect(&id, "a", attempt);
                work().await;
                Ok::<u64, String>(n * 2)
            }
        })
        .await
        .map_err(|e: StepError<String>| e.to_string())?;
    ctx.sleep(pause(n)).await.map_err(|e| e.to_string())?;
    let b = ctx
        .step_with_attempt("b", |attempt| {
            let id = id.clone();
            async move {
                effect(&id, "b", attempt);
                work().await;
                Ok::<u64, String>(a + 1)
            }
        })
        .at_most_once()
        .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(3))
        .await
        .map_err(|e: StepError<String>| e.to_string())?;
    ctx.sleep(pause(n + 1)).await.map_err(|e| e.to_string())?;
    let c = ctx
        .step_with_attempt("c", |attempt| {
            let id = id.clone();
            async move {
                effect(&id, "c", attempt);
                work().await;
                Ok::<u64, String>(b * 3)
            }
        })
        .await
        .map_err(|e: StepError<String>| e.to_string())?;
    Ok(c + n)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, schema, trace, count] = &args[..] else {
        eprintln!("usage: pg-worker <url> <schema> <trace-file> <count>");
        std::process::exit(2);
    };
    std::env::set_var("PG_WORKER_TRACE", trace);
    let count: u64 = count.parse().expect("count is a number");
    let options = Options::new(url)
        .expect("the url parses")
        .schema(schema.clone())
        .pool_size(6);
    let store = PostgresStore::open(options).await.expect("store opens");
    let engine = Engine::builder(store)
        .register(chain)
        .lease_ttl(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(300))
        .max_concurrent(64)
        .open()
        .await
        .expect("engine opens");
    let mut handles = Vec::new();
    for n in 0..count {
        let handle = engine
            .start(chain, format!("job-{n}"), n)
            .await
            .expect("execution starts");
        handles.push(handle);
    }
    say("started");
    for handle in handles {
        let result = handle.result().await.expect("execution finishes");
        let value = result.expect("the workflow succeeds");
        say(&format!("result {} {value}", handle.id()));
    }
    say("done");
    engine.shutdown().await;
}
