//! Step throughput on the PostgreSQL store, beside the raw limits of the same server
//! measured in the same run.
//!
//! `cargo bench --bench postgres` (PostgreSQL at `DURABLE_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, with its own durability settings)
//! prints:
//! - raw limits: single-row `UPDATE` transactions per second from one connection, and
//!   from 16 concurrent connections;
//! - one execution of 1,000 sequential no-op steps on one engine;
//! - 200 concurrent executions of 10 no-op steps, on one engine and on three engine
//!   processes sharing the database (this binary run again as a worker).
//!
//! `ROUNDS=N` runs each measurement N times (default 3, interleaved with the raw limits)
//! and reports the medians; `WRITERS=N` and `MAX_BATCH=N` set the store's
//! [`Options::writers`] and [`Options::max_batch`].

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use durable_core::{durable, Ctx, Engine};
use durable_store_postgres::{Options, PostgresStore};

#[durable]
async fn noop_steps(ctx: Ctx, steps: u32) -> u32 {
    let mut done = 0;
    for _ in 0..steps {
        ctx.step_infallible("noop", || async {}).await;
        done += 1;
    }
    done
}

const WORKER: &str = "DURABLE_PG_BENCH_WORKER";

fn url() -> String {
    std::env::var("DURABLE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn options(schema: &str) -> Options {
    let options = Options::new(&url()).expect("the url parses").schema(schema);
    let options = match std::env::var("MAX_BATCH").ok().and_then(|w| w.parse().ok()) {
        Some(n) => options.max_batch(n),
        None => options,
    };
    match std::env::var("WRITERS").ok().and_then(|w| w.parse().ok()) {
        Some(writers) => options.writers(writers),
        None => options,
    }
}

async fn client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL answers");
    tokio::spawn(connection);
    client
}

async fn drop_schema(schema: &str) {
    client()
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("the schema drops");
}

/// Single-row `UPDATE` transactions per second over `connections` connections, each
/// updating its own row `per_connection` times.
async fn raw_updates(schema: &str, connections: usize, per_connection: usize) -> f64 {
    let setup = client().await;
    setup
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             DROP TABLE IF EXISTS \"{schema}\".raw;
             CREATE TABLE \"{schema}\".raw (id int PRIMARY KEY, v bigint NOT NULL);
             INSERT INTO \"{schema}\".raw SELECT g, 0 FROM generate_series(0, {connections}) g;"
        ))
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(Arc::new(client().await));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (n, client) in clients.into_iter().enumerate() {
        let sql = format!("UPDATE \"{schema}\".raw SET v = v + 1 WHERE id = $1");
        tasks.push(tokio::spawn(async move {
            let statement = client.prepare(&sql).await.unwrap();
            let id = n as i32;
            for _ in 0..per_connection {
                client.execute(&statement, &[&id]).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (connections * per_connection) as f64 / started.elapsed().as_secs_f64()
}

/// Starts the executions `e-<n>` for every `n` of `numbers` at once (as concurrent
/// callers would) and waits for their results.
async fn run(engine: &Engine, numbers: Vec<u32>, steps: u32) {
    let mut tasks = Vec::new();
    for n in numbers {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let handle = engine
                .start(noop_steps, format!("e-{n}"), steps)
                .await
                .unwrap();
            handle.result().await.unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), steps);
    }
}

/// Steps per second of `executions` concurrent executions of `steps` steps on one engine.
async fn one_engine(schema: &str, executions: u32, steps: u32) -> f64 {
    let store = PostgresStore::open(options(schema)).await.unwrap();
    let engine = Engine::builder(store)
        .register(noop_steps)
        .open()
        .await
        .unwrap();
    let started = Instant::now();
    run(&engine, (0..executions).collect(), steps).await;
    let rate = f64::from(executions * steps) / started.elapsed().as_secs_f64();
    engine.shutdown().await;
    rate
}

/// Steps per second of 200 × 10 steps on three engine processes, each starting a third.
fn three_engines(schema: &str, executions: u32, steps: u32) -> f64 {
    let mut workers: Vec<_> = (0..3)
        .map(|k| {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .env(WORKER, format!("{schema} {k} {executions} {steps}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("a worker starts");
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            assert_eq!(lines.next().unwrap().unwrap(), "ready");
            (child, lines)
        })
        .collect();
    let started = Instant::now();
    for (child, _) in &mut workers {
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    }
    for (child, lines) in &mut workers {
        assert_eq!(lines.next().unwrap().unwrap(), "done");
        child.wait().unwrap();
    }
    f64::from(executions * steps) / started.elapsed().as_secs_f64()
}

/// A worker of [`three_engines`]: starts executions `k`, `k + 3`, ... on "go".
fn worker(spec: &str) {
    let parts: Vec<&str> = spec.split(' ').collect();
    let [schema, k, executions, steps] = parts[..] else {
        panic!("bad worker spec {spec:?}");
    };
    let (k, executions, steps): (u32, u32, u32) = (
        k.parse().unwrap(),
        executions.parse().unwrap(),
        steps.parse().unwrap(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = PostgresStore::open(options(schema)).await.unwrap();
        let engine = Engine::builder(store)
            .register(noop_steps)
            .open()
            .await
            .unwrap();
        println!("ready");
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).unwrap();
        run(&engine, (k..executions).step_by(3).collect(), steps).await;
        println!("done");
        engine.shutdown().await;
    });
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if let Ok(spec) = std::env::var(WORKER) {
        return worker(&spec);
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let schema = format!("durable_bench_{}", std::process::id());
    let (mut raw1, mut raw16, mut one, mut many, mut three) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let s = format!("{schema}_{round}");
        runtime.block_on(async {
            raw1.push(raw_updates(&format!("{s}_raw"), 1, 2_000).await);
            raw16.push(raw_updates(&format!("{s}_raw"), 16, 500).await);
            drop_schema(&format!("{s}_raw")).await;
            one.push(one_engine(&format!("{s}_one"), 1, 1_000).await);
            drop_schema(&format!("{s}_one")).await;
            many.push(one_engine(&format!("{s}_many"), 200, 10).await);
            drop_schema(&format!("{s}_many")).await;
        });
        three.push(three_engines(&format!("{s}_three"), 200, 10));
        runtime.block_on(drop_schema(&format!("{s}_three")));
    }
    let (raw1, raw16) = (median(raw1), median(raw16));
    let (one, many, three) = (median(one), median(many), median(three));
    println!("PostgreSQL store, medians of {rounds} rounds:");
    println!("  raw: single-row UPDATE transactions, 1 connection:    {raw1:>9.0}/s");
    println!("  raw: single-row UPDATE transactions, 16 connections:  {raw16:>9.0}/s");
    println!(
        "  1 execution x 1,000 steps, one engine:               {one:>9.0} steps/s ({:.0} % of 1 connection)",
        100.0 * one / raw1
    );
    println!(
        "  200 executions x 10 steps, one engine:               {many:>9.0} steps/s ({:.0} % of 16 connections)",
        100.0 * many / raw16
    );
    println!(
        "  200 executions x 10 steps, three engine processes:   {three:>9.0} steps/s ({:.0} % of 16 connections)",
        100.0 * three / raw16
    );
    std::io::stdout().flush().unwrap();
}
