//! Ten thousand executions waiting on callbacks on the sled store, then all completed:
//! once through the engine API and once over HTTP on loopback (issue 12's figures).
//!
//! ```sh
//! cargo bench --bench callbacks                   # 10,000 executions per phase
//! CALLBACKS=50000 cargo bench --bench callbacks   # or any other number
//! ```
//!
//! One process, two phases, each on a fresh `SledStore::open(dir)` (default durability:
//! every acknowledged write is flushed and fdatasynced; default cache):
//! 1. `COMPLETERS` tasks start the executions; each runs `ctx.wait_for_callback`, whose
//!    submitter hands the callback id to the bench (as a step would email it), and
//!    suspends. When the store has acknowledged every suspension: the time, the RSS, and
//!    the sled directory's size on disk (allocated blocks, as `du` counts them) per
//!    waiting execution;
//! 2. `COMPLETERS` tasks complete every callback: through `Engine::complete_callback` in
//!    the first phase; in the second, with a real HTTP client (reqwest, one keep-alive
//!    connection per task) posting to `durable-http`'s `/callbacks/{id}/complete` on
//!    127.0.0.1. The time from the first completion call until the store has acknowledged
//!    every execution's `Completed` commit gives completions per second end to end.
//!
//! Phase 1 also copies the directory while the executions wait, and the end of the run
//! (after the RSS figures, which the copy's reading would inflate) prints two figures
//! that say how much of the size on disk is the store's own doing: the live data (the
//! bytes of every key and value in the tree) and sled's floor for that data (the same
//! keys and values written once, in key order and batches of 1,000, into a fresh sled and
//! flushed; sled keeps a page's older versions in its log until a segment is under half
//! live, so even that copy takes a multiple of the live bytes).
//!
//! Commits are counted by a thin wrapper around the store (a counter, not a poll). The
//! machine's other load shows in the times: on a shared machine, run it twice.

mod support;

mod measure;

#[path = "../tests/copy_dir/mod.rs"]
mod copy_dir;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durable_core::{durable, CallbackError, Ctx, Engine};
use durable_store_sled::SledStore;
use measure::{mb, status_kb};
use support::{Counted, Counts};

/// How many tasks start executions, and how many complete them, at the same time.
const COMPLETERS: usize = 128;

/// The callback ids the submitters handed out, by execution number.
static IDS: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());

async fn hand_out(n: u64, id: String) -> Result<(), String> {
    IDS.lock().unwrap().push((n, id));
    Ok(())
}

#[durable]
async fn approval(ctx: Ctx, n: u64) -> Result<u64, CallbackError> {
    let approved = ctx
        .wait_for_callback::<bool, _, _, String>("approval", |id| hand_out(n, id))
        .timeout(Duration::from_secs(30 * 86_400))
        .await?;
    Ok(if approved { n } else { 0 })
}

/// What a store's tree holds, and what the same data takes when written once into a
/// fresh sled.
struct Floor {
    live_bytes: u64,
    fresh_disk: u64,
}

/// Measures [`Floor`] on `copy`, a copy of a store's sled directory, writing the fresh
/// sled beside it; removes both.
fn sled_floor(copy: &Path) -> Floor {
    let fresh = copy.with_extension("fresh");
    let _ = std::fs::remove_dir_all(&fresh);
    let source = sled::open(copy).expect("the copy opens");
    let target = sled::open(&fresh).expect("a fresh sled opens");
    let mut live_bytes = 0;
    let mut batch = sled::Batch::default();
    for (n, entry) in source.iter().enumerate() {
        let (key, value) = entry.expect("the copy reads");
        live_bytes += (key.len() + value.len()) as u64;
        batch.insert(key, value);
        if n % 1_000 == 999 {
            target
                .apply_batch(std::mem::take(&mut batch))
                .expect("writes");
        }
    }
    target.apply_batch(batch).expect("writes");
    target.flush().expect("flushes");
    drop((source, target));
    let floor = Floor {
        live_bytes,
        fresh_disk: disk_usage(&fresh),
    };
    let _ = std::fs::remove_dir_all(copy);
    let _ = std::fs::remove_dir_all(&fresh);
    floor
}

/// Bytes a directory takes on disk (allocated blocks, as `du` counts them).
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut blocks = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        blocks += if meta.is_dir() {
            disk_usage(&entry.path())
        } else {
            meta.blocks() * 512
        };
    }
    blocks
}

fn executions() -> u64 {
    let from_env = std::env::var("CALLBACKS").ok();
    // `cargo bench` passes `--bench`; a bare number on the command line also counts.
    let from_args = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    from_env
        .or(from_args)
        .map(|n| {
            n.replace(['_', ','], "")
                .parse()
                .expect("CALLBACKS is a number")
        })
        .unwrap_or(10_000)
}

/// How a phase completes its callbacks.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Api,
    Http,
}

/// One phase: start `n` waiting executions on a fresh store, then complete them all.
/// Returns the copy of the store's sled directory made while they waited, if it made one.
async fn phase(n: u64, via: Via) -> Option<PathBuf> {
    let label = match via {
        Via::Api => "engine API",
        Via::Http => "HTTP on loopback",
    };
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "durable-bench-callbacks-{}-{}",
        std::process::id(),
        via as u8
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let counts = Arc::new(Counts::default());
    let store = Counted {
        every: 1024,
        store: SledStore::open(&dir).expect("store opens"),
        counts: counts.clone(),
        target: n,
    };
    let engine = Engine::builder(store)
        .register(approval)
        .open()
        .await
        .expect("engine opens");
    IDS.lock().unwrap().clear();
    println!("-- completing through the {label} --");
    let rss_before = status_kb("VmRSS");

    let start = Instant::now();
    let starters: Vec<_> = (0..COMPLETERS as u64)
        .map(|k| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for i in (k..n).step_by(COMPLETERS) {
                    engine
                        .start(approval, format!("expense-{i}"), i)
                        .await
                        .expect("starts");
                }
            })
        })
        .collect();
    for starter in starters {
        starter.await.expect("starter task");
    }
    counts.reach(&counts.suspended, n).await;
    let waiting = start.elapsed();
    let disk = disk_usage(&dir);
    let rss_waiting = status_kb("VmRSS");
    // Once: the second phase writes the same data. Every group is durable and nothing is
    // being written, so the copy is the store as it stands.
    let copy = (via == Via::Api).then(|| {
        let copy = dir.with_extension("copy");
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir::copy_dir(&dir.join("sled"), &copy);
        copy
    });
    println!(
        "{n} waiting on a callback:     {:>8.2} s ({:.0} executions/s)",
        waiting.as_secs_f64(),
        n as f64 / waiting.as_secs_f64()
    );
    println!(
        "on disk while waiting:         {:>8.1} MB, {:.0} bytes per waiting execution",
        disk as f64 / 1e6,
        disk as f64 / n as f64
    );
    println!(
        "RSS while waiting:             {:>8.1} MB ({:+.1} MB since the engine opened)",
        mb(rss_waiting),
        mb(rss_waiting) - mb(rss_before)
    );

    // A submitter runs at least once: keep one id per execution.
    let ids: std::collections::BTreeMap<u64, String> =
        IDS.lock().unwrap().iter().cloned().collect();
    let ids: Vec<String> = ids.into_values().collect();
    assert_eq!(ids.len() as u64, n, "every submitter handed out its id");
    let ids = Arc::new(ids);
    let server = match via {
        Via::Api => None,
        Via::Http => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binds");
            let addr = listener.local_addr().expect("bound");
            let api = durable_http::Api::new(engine.clone());
            Some((addr, tokio::spawn(api.serve_on(listener))))
        }
    };
    let base = server.as_ref().map(|(addr, _)| format!("http://{addr}"));

    let completing = Instant::now();
    let completers: Vec<_> = (0..COMPLETERS)
        .map(|k| {
            let (engine, ids, base) = (engine.clone(), ids.clone(), base.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for id in ids.iter().skip(k).step_by(COMPLETERS) {
                    match &base {
                        None => engine
                            .complete_callback(id, &true)
                            .await
                            .expect("completion accepted"),
                        Some(base) => {
                            let response = client
                                .post(format!("{base}/callbacks/{id}/complete"))
                                .header("content-type", "application/json")
                                .body("true")
                                .send()
                                .await
                                .expect("request answered");
                            assert_eq!(response.status(), 200, "completion accepted");
                        }
                    }
                }
            })
        })
        .collect();
    for completer in completers {
        completer.await.expect("completer task");
    }
    let accepted = completing.elapsed();
    counts.reach(&counts.completed, n).await;
    let finished = completing.elapsed();
    println!(
        "all completions accepted:      {:>8.2} s ({:.0} completions/s)",
        accepted.as_secs_f64(),
        n as f64 / accepted.as_secs_f64()
    );
    println!(
        "all workflows finished:        {:>8.2} s ({:.0} completions/s end to end)",
        finished.as_secs_f64(),
        n as f64 / finished.as_secs_f64()
    );
    println!(
        "peak RSS so far (VmHWM):       {:>8.1} MB",
        mb(status_kb("VmHWM"))
    );
    if let Some((_, server)) = server {
        server.abort();
    }
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    copy
}

#[tokio::main]
async fn main() {
    let n = executions();
    println!(
        "{n} executions of `approval` (ctx.wait_for_callback) per phase, SledStore::open (default durability and cache), {COMPLETERS} concurrent starters and completers"
    );
    let copy = phase(n, Via::Api).await;
    phase(n, Via::Http).await;
    println!(
        "peak RSS of the run (VmHWM):   {:>8.1} MB",
        mb(status_kb("VmHWM"))
    );
    if let Some(copy) = copy {
        let floor = sled_floor(&copy);
        println!("-- the first phase's store while its executions waited --");
        println!(
            "live data in the tree:         {:>8.1} MB, {:.0} bytes per waiting execution",
            floor.live_bytes as f64 / 1e6,
            floor.live_bytes as f64 / n as f64
        );
        println!(
            "written once to a new sled:    {:>8.1} MB, {:.0} bytes per waiting execution",
            floor.fresh_disk as f64 / 1e6,
            floor.fresh_disk as f64 / n as f64
        );
    }
}
