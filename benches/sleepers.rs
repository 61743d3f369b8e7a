//! A million sleeping executions on the sled store: how long it takes to get them all
//! suspended, what they cost in memory and on disk, and how fast due timers wake and
//! complete them.
//!
//! ```sh
//! cargo bench --bench sleepers                    # 1,000,000 executions
//! SLEEPERS=100000 cargo bench --bench sleepers    # or any other number
//! ```
//!
//! One run, one process:
//! 1. an engine on `SledStore::open(dir)` (default durability: every commit is flushed and
//!    fdatasynced before it returns) with a manual [`TestClock`];
//! 2. `STARTERS` tokio tasks start the executions concurrently, as a server's request
//!    handlers would; each execution of `trial` commits a 30-day sleep and suspends;
//! 3. when the store has acknowledged every suspension: the time that took, the process's
//!    peak RSS (`VmHWM`), and the sled directory's size on disk divided by the number of
//!    executions (every acknowledged commit is already flushed, so this is what a crash
//!    would leave);
//! 4. the clock moves 31 days forward at once; every timer is then overdue, and the
//!    timer service must wake them all: the time until every execution has completed
//!    gives the wake-up rate;
//! 5. the peak RSS of the whole run.
//!
//! Suspensions and completions are counted by a thin wrapper around the store that
//! counts acknowledged commits by the status they write: a counter, not a poll.
//! The bench holds no handles, only the count.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use durable_core::{
    durable, Commit, Created, Ctx, Engine, ExecutionRecord, HistoryEntry, ListFilter, Status,
    Store, StoreError, TestClock, Timestamp,
};
use durable_store_sled::{Options, SledStore};
use tokio::sync::Notify;

const DAY: Duration = Duration::from_secs(86_400);

/// How many tasks start executions at the same time.
const STARTERS: u64 = 256;

#[durable]
async fn trial(ctx: Ctx, user: u64) -> u64 {
    ctx.sleep(30 * DAY).await.expect("30 days is a valid wait");
    user
}

/// Acknowledged commits by the status they wrote.
#[derive(Default)]
struct Counts {
    suspended: AtomicU64,
    completed: AtomicU64,
    changed: Notify,
}

impl Counts {
    /// Waits until `counter` reaches `target`.
    async fn reach(&self, counter: &AtomicU64, target: u64) {
        loop {
            let changed = self.changed.notified();
            if counter.load(Ordering::Acquire) >= target {
                return;
            }
            changed.await;
        }
    }
}

/// The sled store, with commits counted.
struct Counted {
    store: SledStore,
    counts: Arc<Counts>,
    /// Notify the bench only every this many commits, and at the target.
    target: u64,
}

impl Counted {
    fn count(&self, counter: &AtomicU64) {
        let n = counter.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.target || n.is_multiple_of(4096) {
            self.counts.changed.notify_waiters();
        }
    }
}

#[async_trait]
impl Store for Counted {
    async fn create(&self, record: ExecutionRecord, input: Vec<u8>) -> Result<Created, StoreError> {
        self.store.create(record, input).await
    }
    async fn load(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.store.load(id).await
    }
    async fn load_input(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.load_input(id).await
    }
    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let status = commit.record.status;
        self.store.commit(commit).await?;
        match status {
            Status::Suspended => self.count(&self.counts.suspended),
            Status::Completed => self.count(&self.counts.completed),
            _ => {}
        }
        Ok(())
    }
    async fn claim(
        &self,
        id: &str,
        owner: u128,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.store.claim(id, owner, now, until).await
    }
    async fn release(&self, id: &str, owner: u128) -> Result<(), StoreError> {
        self.store.release(id, owner).await
    }
    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.store.due(now, limit).await
    }
    async fn next_wake(&self) -> Result<Option<Timestamp>, StoreError> {
        self.store.next_wake().await
    }
    async fn timers_after(
        &self,
        after: Option<(Timestamp, &str)>,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, String)>, StoreError> {
        self.store.timers_after(after, until, limit).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.store.list(filter).await
    }
    async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.store.history(id).await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.store.close().await
    }
}

/// A line of `/proc/self/status`, in kB.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
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

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let n = executions();
    let dir = std::env::temp_dir().join(format!("durable-bench-sleepers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let counts = Arc::new(Counts::default());
    // SLEEPERS_CACHE_MB: sled's page cache, for trying other sizes than the default.
    let store = match std::env::var("SLEEPERS_CACHE_MB") {
        Ok(mb) => {
            let bytes = mb.parse::<u64>().expect("SLEEPERS_CACHE_MB is a number") << 20;
            SledStore::open_with(&dir, Options::default().cache_capacity(bytes))
        }
        Err(_) => SledStore::open(&dir),
    };
    let store = Counted {
        store: store.expect("store opens"),
        counts: counts.clone(),
        target: n,
    };
    let clock = TestClock::new(Timestamp::from_millis(1_700_000_000_000));
    let engine = Engine::builder(store)
        .register(trial)
        .history_limit(
            std::env::var("XH")
                .ok()
                .map(|v| v.parse().unwrap())
                .unwrap_or(1000),
        )
        .clock(clock.clone())
        .open()
        .await
        .expect("engine opens");
    println!(
        "{n} executions of `trial` (a 30-day ctx.sleep) on SledStore::open, default durability"
    );
    println!("before starting: RSS {:.1} MB", mb(status_kb("VmRSS")));

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
    let rss_suspended = status_kb("VmRSS");
    let hwm_suspended = status_kb("VmHWM");
    let (disk, apparent) = disk_usage(&dir);
    println!(
        "all started (start returned):  {:>9.2} s  {:>9.0} executions/s",
        started.as_secs_f64(),
        n as f64 / started.as_secs_f64()
    );
    println!(
        "all suspended:                 {:>9.2} s  {:>9.0} executions/s",
        suspended.as_secs_f64(),
        n as f64 / suspended.as_secs_f64()
    );
    println!(
        "RSS now {:.1} MB, peak so far (VmHWM) {:.1} MB",
        mb(rss_suspended),
        mb(hwm_suspended)
    );
    println!(
        "on disk: {:.1} MB allocated, {:.1} MB apparent: {:.0} bytes per execution ({:.0} apparent)",
        disk as f64 / 1e6,
        apparent as f64 / 1e6,
        disk as f64 / n as f64,
        apparent as f64 / n as f64
    );

    if std::env::var_os("SLEEPERS_SUSPEND_ONLY").is_some() {
        engine.shutdown().await;
        println!("kept {}", dir.display());
        return;
    }
    let wake = Instant::now();
    clock.advance(31 * DAY);
    counts.reach(&counts.completed, n).await;
    let woken = wake.elapsed();
    println!(
        "all woken and completed:       {:>9.2} s  {:>9.0} executions/s",
        woken.as_secs_f64(),
        n as f64 / woken.as_secs_f64()
    );
    engine.shutdown().await;
    let (disk, _) = disk_usage(&dir);
    println!(
        "peak RSS of the run (VmHWM): {:.1} MB; on disk after completion and close: {:.1} MB",
        mb(status_kb("VmHWM")),
        disk as f64 / 1e6
    );
    if std::env::var_os("SLEEPERS_KEEP").is_some() {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
