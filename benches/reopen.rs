//! Reopening a store full of history (issue 8.3): an engine opening over 1,000,000
//! finished executions and 1,000 unfinished ones must cost time and memory in proportion
//! to the unfinished ones.
//!
//! `cargo bench --bench reopen` (or `REOPEN_FINISHED=N REOPEN_UNFINISHED=M`):
//! 1. writes N completed and M running executions of `nap` (a 30-day sleep) straight into
//!    a sled store, through `Store::create` from 256 tasks (group commit);
//! 2. in a fresh child process, opens an empty store and an engine on it: the baseline;
//! 3. in another fresh child process, opens the full store and an engine on it, and
//!    reports the time until `Engine::open` returned (every running execution found and
//!    queued), the peak RSS above the process's RSS before opening, and the time until
//!    every running execution had suspended again;
//! 4. prints both, and the difference.
//!
//! Each measurement runs in its own process so that memory the writing phase allocated
//! does not hide in the figures. `REOPEN_CLEAN=1` opens and closes the full store once
//! before measuring, so that the measured open replays no log.
//!
//! `REOPEN_KEEP=<dir>` keeps the written store in `<dir>` (after `REOPEN_CLEAN`'s open
//! and close, if set) and, when `<dir>` already exists, skips the writing phase (about
//! 20 s for a million executions) and reuses it: each run measures a fresh copy of it,
//! since the measured open changes the store (its running executions suspend). The counts
//! must be those it was written with. To profile the open alone, copy `<dir>` and run the
//! bench binary with `--measure <copy>` (and `REOPEN_UNFINISHED`).

#[path = "../tests/copy_dir/mod.rs"]
mod copy_dir;
mod measure;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::{
    durable, Codec, Ctx, EngineBuilder, ExecutionRecord, ListFilter, Status, Store, TestClock,
    Timestamp, WaitError, Workflow,
};
use durable_store_sled::SledStore;
use measure::status_kb;

const DAY: Duration = Duration::from_secs(86_400);
const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

#[durable]
async fn nap(ctx: Ctx, n: u64) -> Result<u64, WaitError> {
    ctx.sleep(DAY * 30).await?;
    Ok(n)
}

fn count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .map(|n| n.replace(['_', ','], "").parse().expect("a number"))
        .unwrap_or(default)
}

async fn write(dir: &Path, finished: u64, unfinished: u64) {
    let store = Arc::new(SledStore::open(dir).expect("the store opens"));
    let input = Codec::Bincode.encode_value(&7u64).unwrap();
    let output = Codec::Bincode
        .encode_value(&Ok::<u64, WaitError>(7))
        .unwrap();
    let fingerprint = <nap::Workflow as Workflow>::FINGERPRINT;
    let started = Instant::now();
    const TASKS: u64 = 256;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (store, input, output) = (store.clone(), input.clone(), output.clone());
        tasks.spawn(async move {
            let mut n = task;
            while n < finished + unfinished {
                let mut record =
                    ExecutionRecord::new(format!("exec-{n:08}"), "nap", fingerprint, START);
                if n < finished {
                    record.status = Status::Completed;
                    record.output = Some(output.clone());
                }
                store.create(record, input.clone()).await.unwrap();
                n += TASKS;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    println!(
        "wrote {finished} completed and {unfinished} running executions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    store.close().await.unwrap();
}

/// What one measuring child prints: open time (ms), time until all suspended (ms), RSS
/// before opening (kB), peak RSS (kB).
struct Measured {
    open_ms: f64,
    settled_ms: f64,
    rss_before_kb: u64,
    peak_kb: u64,
}

async fn measure(dir: &Path, unfinished: u64) {
    let rss_before_kb = status_kb("VmRSS");
    let started = Instant::now();
    let store = Arc::new(SledStore::open(dir).expect("the store opens"));
    let store_ms = started.elapsed().as_secs_f64() * 1e3;
    let store_kb = status_kb("VmRSS");
    let engine = EngineBuilder::with_store(store.clone())
        .register(nap)
        .clock(TestClock::new(START))
        .open()
        .await
        .expect("the engine opens");
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    loop {
        let running = store
            .list(&ListFilter::all().status(Status::Running).limit(1))
            .await
            .unwrap();
        let suspended = store
            .list(&ListFilter::all().status(Status::Suspended))
            .await
            .unwrap()
            .len() as u64;
        if running.is_empty() && suspended == unfinished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let settled_ms = started.elapsed().as_secs_f64() * 1e3;
    let peak_kb = status_kb("VmHWM");
    engine.shutdown().await;
    eprintln!(
        "sled open {store_ms:.1} ms, RSS after it {store_kb} kB, engine open {:.1} ms",
        open_ms - store_ms
    );
    println!("MEASURED {open_ms:.2} {settled_ms:.2} {rss_before_kb} {peak_kb}");
}

fn child(dir: &Path, unfinished: u64) -> Measured {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("--measure")
        .arg(dir)
        .env("REOPEN_UNFINISHED", unfinished.to_string())
        .output()
        .expect("the measuring child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("MEASURED "))
        .unwrap_or_else(|| {
            panic!(
                "the child printed no figures: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let f: Vec<f64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
    Measured {
        open_ms: f[0],
        settled_ms: f[1],
        rss_before_kb: f[2] as u64,
        peak_kb: f[3] as u64,
    }
}

/// Copies the store `from` to `to` and flushes the copy, so that the measured open does
/// not write it back to the disk.
fn copy_store(from: &Path, to: &Path) {
    copy_dir::copy_dir(from, to);
    let synced = Command::new("sync").status().expect("sync runs");
    assert!(synced.success(), "sync: {synced}");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("durable-reopen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        let dir = PathBuf::from(&args[i + 1]);
        return measure(&dir, count("REOPEN_UNFINISHED", 1_000)).await;
    }
    let finished = count("REOPEN_FINISHED", 1_000_000);
    let unfinished = count("REOPEN_UNFINISHED", 1_000);
    let keep = std::env::var_os("REOPEN_KEEP").map(PathBuf::from);
    let full = temp_dir("full");
    let empty = temp_dir("empty");
    match &keep {
        Some(kept) if kept.exists() => {
            println!("measuring a copy of the store kept in {}", kept.display());
        }
        _ => {
            write(&full, finished, unfinished).await;
            // REOPEN_CLEAN: open and close the store once first, so that sled has
            // snapshotted its page table and the measured open replays no log (a store
            // closed in its steady state); by default the measured open follows the
            // writing directly (after a crash).
            if std::env::var("REOPEN_CLEAN").is_ok() {
                let t = Instant::now();
                SledStore::open(&full).unwrap().close().await.unwrap();
                println!(
                    "first open after writing: {:.1} ms",
                    t.elapsed().as_secs_f64() * 1e3
                );
            }
            if let Some(kept) = &keep {
                copy_store(&full, kept);
            }
        }
    }
    if let Some(kept) = &keep {
        let _ = std::fs::remove_dir_all(&full);
        copy_store(kept, &full);
    }
    SledStore::open(&empty).unwrap().close().await.unwrap();

    let base = child(&empty, 0);
    let big = child(&full, unfinished);
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!("engine open over an empty store: {:.1} ms, peak RSS {:.1} MB ({:.1} MB above the process before opening)",
        base.open_ms, mb(base.peak_kb), mb(base.peak_kb.saturating_sub(base.rss_before_kb)));
    println!(
        "engine open over {finished} completed + {unfinished} running: {:.1} ms to Engine::open, {:.1} ms until all {unfinished} suspended again; peak RSS {:.1} MB ({:.1} MB above the process before opening)",
        big.open_ms,
        big.settled_ms,
        mb(big.peak_kb),
        mb(big.peak_kb.saturating_sub(big.rss_before_kb))
    );
    println!(
        "above the empty-store baseline: {:.1} ms, {:.1} MB peak RSS",
        big.open_ms - base.open_ms,
        mb(big.peak_kb.saturating_sub(base.peak_kb))
    );
    let _ = std::fs::remove_dir_all(&full);
    let _ = std::fs::remove_dir_all(&empty);
}
