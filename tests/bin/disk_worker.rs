//! A process that fills its disk: the real disk-full test (`tests/disk_full.rs`) runs it
//! in a private mount namespace with a 1 MiB tmpfs mounted at `<dir>`.
//!
//! Usage: `disk-worker <dir>`. Opens a sled store in `<dir>/store`, starts executions of
//! a 20-step workflow until the disk is full, checks what an operator sees while it is
//! (degraded health with the cause, executions waiting for the store, `start` refused
//! with the store's error), grows the filesystem to 30 MiB with `mount -o remount`, and
//! checks that every execution then completes with its crash-free result and the health
//! is ok again, all without restarting. Prints one line per phase; a failed check panics
//! (exit status 101).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use durable_core::{durable, Ctx, Engine, Error, ListFilter, Status, Store, StoreError, Waiting};
use durable_store_sled::SledStore;

const STEPS: u32 = 20;
/// Bytes each step returns, so that a few hundred executions fill a megabyte.
const PAYLOAD: usize = 512;
/// How long any phase may take: a hang fails the test instead of blocking it.
const PHASE: Duration = Duration::from_secs(60);

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout is writable");
    out.flush().expect("stdout is writable");
}

#[durable]
async fn fill(ctx: Ctx, n: u64) -> u64 {
    let mut total = 0u64;
    let mut i = 0u32;
    while i < STEPS {
        let chunk = ctx
            .step_infallible("chunk", move || async move {
                format!("{n}:{i}:").repeat(PAYLOAD / 8)
            })
            .await;
        total += chunk.len() as u64 + u64::from(i);
        i += 1;
    }
    total
}

fn expected(n: u64) -> u64 {
    (0..STEPS)
        .map(|i| (format!("{n}:{i}:").len() * (PAYLOAD / 8)) as u64 + u64::from(i))
        .sum()
}

/// Checks `check` every few milliseconds until it holds; panics after [`PHASE`], with
/// the engine's health. The state it waits for comes from the disk and the writer
/// thread, which nothing signals.
async fn poll<F, Fut>(engine: &Engine, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PHASE;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}; health: {:?}",
            engine.health()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).expect("usage: disk-worker <dir>");
    let store_dir = std::path::Path::new(&dir).join("store");
    let store = SledStore::open(&store_dir).expect("the store opens in the small filesystem");
    let engine = Engine::builder(store)
        .register(fill)
        .max_concurrent(32)
        .open()
        .await
        .expect("the engine opens");
    say("opened");

    // Start executions until the disk refuses: at `start` or in a running one.
    let mut started = 0u64;
    while started < 5_000 && engine.health().is_ok() {
        match engine.start(fill, format!("f-{started}"), started).await {
            Ok(_) => started += 1,
            Err(Error::Store(StoreError::Backend(e))) => {
                say(&format!("start refused: {e}"));
                break;
            }
            Err(e) => panic!("unexpected start error: {e}"),
        }
        tokio::task::yield_now().await;
    }
    say(&format!("started {started}"));
    poll(&engine, "the health is degraded", || async {
        !engine.health().is_ok()
    })
    .await;
    let degraded = engine.health().degraded.expect("degraded");
    say(&format!("degraded: {}", degraded.cause));
    assert!(
        degraded.cause.contains("No space left on device"),
        "the cause names the full disk: {}",
        degraded.cause
    );

    // While full: running executions wait for the store, and a start is refused.
    poll(&engine, "an execution waits for the store", || async {
        for n in 0..started {
            let description = match engine.describe(&format!("f-{n}")).await {
                Ok(description) => description,
                Err(e) => {
                    say(&format!("describe f-{n}: {e}"));
                    continue;
                }
            };
            if let Some(Waiting::Store { cause, .. }) = description.waiting_for {
                say(&format!("f-{n} waits for the store: {cause}"));
                return true;
            }
        }
        false
    })
    .await;
    poll(&engine, "a start is refused", || async {
        match engine.start(fill, "while-full", 0).await {
            Err(Error::Store(StoreError::Backend(e))) => {
                say(&format!("start while full: {e}"));
                true
            }
            Ok(_) => false,
            Err(e) => panic!("unexpected start error: {e}"),
        }
    })
    .await;
    assert!(!engine.health().is_ok());
    let waiting = engine.health().degraded.map_or(0, |d| d.waiting_executions);
    say(&format!("waiting executions {waiting}"));

    let grown = Command::new("mount")
        .args(["-o", "remount,size=30m", &dir])
        .status()
        .expect("mount runs");
    assert!(grown.success(), "remount failed: {grown}");
    say("grown");

    let results = async {
        for n in 0..started {
            let result = engine.handle(fill, format!("f-{n}")).result().await;
            assert_eq!(result.expect("a result"), expected(n), "execution {n}");
        }
    };
    tokio::time::timeout(PHASE, results)
        .await
        .expect("every execution completes once the disk has room");
    let failed = engine
        .executions(&ListFilter::default().status(Status::Failed))
        .await
        .expect("the store reads");
    assert!(failed.is_empty(), "failed executions: {failed:?}");
    say(&format!("completed {started}"));
    poll(&engine, "the health is ok", || async {
        engine.health().is_ok()
    })
    .await;
    say(&format!(
        "healthy after {} failed writes",
        engine.health().failed_writes
    ));
    engine.shutdown().await;
    // The store closed cleanly: it opens again with everything.
    let store = SledStore::open(&store_dir).expect("the store opens again");
    let done = store
        .list(&ListFilter::default().status(Status::Completed))
        .await
        .expect("the store reads");
    assert!(done.len() as u64 >= started, "{} completed", done.len());
    store.close().await.expect("the store closes");
    say("closed");
}
