//! A million sleeping executions on the sled store: how long it takes to get them all
//! suspended, what they cost in memory and on disk, and how fast due timers wake and
//! complete them.
//!
//! ```sh
//! cargo bench --bench sleepers                    # 1,000,000 executions, about a minute
//! SLEEPERS=100000 cargo bench --bench sleepers    # or any other number
//! SLEEPERS_RESTART=1 cargo bench --bench sleepers # wake them on a new engine instead
//! ```
//!
//! One run, one process:
//! 1. an engine on `SledStore::open(dir)` (default durability: every commit is flushed and
//!    fdatasynced before it returns; default cache) with a manual [`TestClock`];
//! 2. `STARTERS` tokio tasks start the executions concurrently, as a server's request
//!    handlers would; each execution of `trial` commits a 30-day sleep and suspends;
//! 3. when the store has acknowledged every suspension: the time that took, the process's
//!    peak RSS (`VmHWM` in `/proc/self/status`), and the sled directory's size on disk
//!    (allocated blocks, as `du` counts them) divided by the number of executions; every
//!    acknowledged commit is already flushed, so this is what a crash would leave;
//! 4. two seconds of real time with nothing due: how many times the engine read the
//!    timer index (none expected) and how much CPU the process used;
//! 5. the clock moves 31 days forward at once; every timer is then overdue, and the
//!    timer service must wake them all: the time until every execution has completed
//!    gives the wake-up rate (with `SLEEPERS_RESTART`, the engine is shut down and a new
//!    one opened on the same directory first: overdue timers after a restart);
//! 6. the peak RSS of the whole run.
//!
//! Suspensions and completions are counted by a thin wrapper around the store that
//! counts acknowledged commits by the status they write: a counter, not a poll.
//! The bench holds no handles, only the count. `SLEEPERS_CACHE_MB` sets sled's cache,
//! `SLEEPERS_KEEP` keeps the directory, `SLEEPERS_SUSPEND_ONLY` stops after step 4.
//!
//! The machine's other load shows in the times: on a shared machine, run it twice.

mod support;

mod measure;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_core::{durable, Ctx, Engine, TestClock, Timestamp};
use durable_store_sled::{Options, SledStore};
use measure::{mb, status_kb};
use support::{Counted, Counts};

const DAY: Duration = Duration::from_secs(86_400);

/// How many tasks start executions at the same time.
const STARTERS: u64 = 256;

#[durable]
async fn trial(ctx: Ctx, user: u64) -> u64 {
    ctx.sleep(30 * DAY).await.expect("30 days is a valid wait");
    user
}

/// Bytes a directory takes on disk (allocated blocks, as `du` counts them) and its
/// files' apparent size.
fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut blocks, mut apparent) = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let (b, a) = disk_usage(&entry.path());
            blocks += b;
            apparent += a;
        } else {
            blocks += meta.blocks() * 512;
            apparent += meta.len();
        }
    }
    (blocks, apparent)
}

fn executions() -> u64 {
    let from_env = std::env::var("SLEEPERS").ok();
    // `cargo bench` passes `--bench`; a bare number on the command line also counts.
    let from_args = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    from_env
        .or(from_args)
        .map(|n| {
            n.replace(['_', ','], "")
                .parse()
                .expect("SLEEPERS is a number")
        })
        .unwrap_or(1_000_000)
}

/// CPU time (user + system) the process has used.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn open_store(dir: &Path) -> SledStore {
    // SLEEPERS_CACHE_MB: sled's page cache, to try sizes other than the default.
    let store = match std::env::var("SLEEPERS_CACHE_MB") {
        Ok(mb) => {
            let bytes = mb.parse::<u64>().expect("SLEEPERS_CACHE_MB is a number") << 20;
            SledStore::open_with(dir, Options::default().cache_capacity(bytes))
        }
        Err(_) => SledStore::open(dir),
    };
    store.expect("store opens")
}

async fn open_engine(store: Counted, clock: &TestClock) -> Engine {
    Engine::builder(store)
        .register(trial)
        .clock(clock.clone())
        .open()
        .await
        .expect("engine opens")
}

fn rate(n: u64, took: Duration) -> String {
    format!(
        "{:>8.2} s  {:>7.0} executions/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    )
}

#[tokio::main]
async fn main() {
    let n = executions();
    let restart = std::env::var_os("SLEEPERS_RESTART").is_some();
    let dir = std::env::temp_dir().join(format!("durable-bench-sleepers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let counts = Arc::new(Counts::default());
    let counted = |store| Counted {
        every: 4096,
        store,
        counts: counts.clone(),
        target: n,
    };
    let clock = TestClock::new(Timestamp::from_millis(1_700_000_000_000));
    let mut engine = open_engine(counted(open_store(&dir)), &clock).await;
    println!("{n} executions of `trial` (ctx.sleep of 30 days), SledStore::open (default durability and cache), manual TestClock, {STARTERS} tasks starting them");
    println!(
        "RSS before starting:            {:>8.1} MB",
        mb(status_kb("VmRSS"))
    );

    let start = Instant::now();
    let starters: Vec<_> = (0..STARTERS.min(n))
        .map(|k| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for user in (k..n).step_by(STARTERS as usize) {
                    engine
                        .start(trial, format!("trial-{user}"), user)
                        .await
                        .expect("starts");
                }
            })
        })
        .collect();
    for starter in starters {
        starter.await.expect("starter task");
    }
    let started = start.elapsed();
    counts.reach(&counts.suspended, n).await;
    let suspended = start.elapsed();
    let (disk, apparent) = disk_usage(&dir);
    println!("all started (start returned):  {}", rate(n, started));
    println!("all suspended:                  {}", rate(n, suspended));
    println!(
        "peak RSS so far (VmHWM):        {:>8.1} MB",
        mb(status_kb("VmHWM"))
    );
    println!(
        "on disk (every commit flushed): {:>8.1} MB, {:.0} bytes per execution ({:.0} apparent)",
        disk as f64 / 1e6,
        disk as f64 / n as f64,
        apparent as f64 / n as f64
    );

    // Idle: nothing is due for 30 days. Real time passes; the engine must not poll.
    let reads = counts.timer_reads.load(Ordering::SeqCst);
    let (cpu, wall) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "idle for {:.1} s: {} timer-index reads, {:.1} ms of CPU (sled's own log maintenance)",
        wall.elapsed().as_secs_f64(),
        counts.timer_reads.load(Ordering::SeqCst) - reads,
        (cpu_time() - cpu).as_secs_f64() * 1000.0
    );

    if std::env::var_os("SLEEPERS_SUSPEND_ONLY").is_some() {
        engine.shutdown().await;
        println!("kept {}", dir.display());
        return;
    }
    if restart {
        engine.shutdown().await;
        let (disk, _) = disk_usage(&dir);
        println!(
            "on disk after close:            {:>8.1} MB, {:.0} bytes per execution",
            disk as f64 / 1e6,
            disk as f64 / n as f64
        );
        let reopen = Instant::now();
        engine = open_engine(counted(open_store(&dir)), &clock).await;
        println!(
            "store and engine reopened in    {:>8.2} s",
            reopen.elapsed().as_secs_f64()
        );
    }
    let wake = Instant::now();
    clock.advance(31 * DAY);
    counts.reach(&counts.completed, n).await;
    let woken = wake.elapsed();
    let woken_label = if restart {
        "woken, completed (new engine): "
    } else {
        "all woken and completed:        "
    };
    println!("{woken_label}{}", rate(n, woken));
    engine.shutdown().await;
    let (disk, _) = disk_usage(&dir);
    println!(
        "peak RSS of the run (VmHWM):    {:>8.1} MB",
        mb(status_kb("VmHWM"))
    );
    println!(
        "on disk after completion:       {:>8.1} MB, {:.0} bytes per execution",
        disk as f64 / 1e6,
        disk as f64 / n as f64
    );
    if std::env::var_os("SLEEPERS_KEEP").is_some() {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
