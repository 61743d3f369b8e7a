//! A sled store opens again after its process is killed at any instant, including while
//! it opens and while it closes (issue 7, item 7): real SIGKILLs of the `store-worker`
//! binary, and the files such kills leave behind planted by hand.
//!
//! `DURABLE_SLED_OPEN_KILLS` and `DURABLE_SLED_CLOSE_KILLS` set how many kills must land
//! during an open and during a close (defaults 60 and 30), `DURABLE_SLED_KILL_SEED` the
//! seed of the kills' timing (default 7); the test prints the counts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use durable_core::{Commit, ExecutionRecord, Status, Store, StoreError, Timestamp};
use durable_store_sled::SledStore;

/// A fresh directory, removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("durable-sled-kills-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn count_from_env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a count, got {value:?}")),
        Err(_) => default,
    }
}

/// The worker's phases, by the line that starts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    Close,
}

impl Phase {
    fn starts(self) -> &'static str {
        match self {
            Phase::Open => "opening",
            Phase::Close => "closing",
        }
    }

    fn ends(self) -> &'static str {
        match self {
            Phase::Open => "opened",
            Phase::Close => "closed",
        }
    }
}

/// A running worker and the lines it printed so far.
struct Worker {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl Worker {
    fn spawn(dir: &Path) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_store-worker"))
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the worker starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Worker {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines up to and including `line`; panics if the worker ends first.
    fn wait_for(&mut self, line: &str) -> Instant {
        for next in &mut self.lines {
            let next = next.expect("the worker's output reads");
            assert!(!next.starts_with("open-failed"), "the worker: {next}");
            let done = next == line;
            self.seen.push(next);
            if done {
                return Instant::now();
            }
        }
        panic!("the worker ended before printing {line:?}: {:?}", self.seen);
    }

    /// Kills the worker and returns every line it printed.
    fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("the worker can be killed");
        self.child.wait().expect("the worker is reaped");
        for line in self.lines {
            self.seen.push(line.expect("the worker's output reads"));
        }
        assert!(
            !self.seen.iter().any(|l| l.starts_with("open-failed")),
            "the worker could not open the store: {:?}",
            self.seen
        );
        self.seen
    }
}

/// The highest `seq` the worker's output says was acknowledged.
fn acked(lines: &[String]) -> Option<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("acked "))
        .map(|seq| seq.parse().expect("a seq"))
        .max()
}

fn counter(seq: u64) -> ExecutionRecord {
    ExecutionRecord {
        id: "counter".to_owned(),
        workflow: "count".to_owned(),
        fingerprint: 1,
        seq,
        status: Status::Running,
        position: None,
        wake_at: None,
        output: None,
        message: Some(format!("seq {seq}")),
        history_next: seq,
        created_at: Timestamp::from_millis(1),
        updated_at: Timestamp::from_millis(seq),
        parent: None,
        awaiting: Vec::new(),
    }
}

/// Opens the store, checks that the counter holds every acknowledged commit (and at
/// most the one in flight), commits once more, and closes it; returns the new `seq`.
async fn reopen_and_advance(dir: &Path, acked: u64) -> Result<u64, String> {
    let store = SledStore::open(dir).map_err(|e| format!("the store does not open: {e}"))?;
    let found = store
        .load("counter")
        .await
        .map_err(|e| format!("the counter does not read: {e}"))?
        .map_or(0, |r| r.seq);
    if !(acked..=acked + 1).contains(&found) {
        return Err(format!(
            "the counter is at {found}, but {acked} was acknowledged"
        ));
    }
    if found == 0 {
        store
            .create(counter(0), b"input".to_vec())
            .await
            .map_err(|e| e.to_string())?;
    }
    store
        .commit(Commit {
            record: counter(found + 1),
            expected_seq: found,
            history: Vec::new(),
            prune_history_below: 0,
            operations: Vec::new(),
            deliveries: Vec::new(),
        })
        .await
        .map_err(|e| e.to_string())?;
    store.close().await.map_err(|e| e.to_string())?;
    Ok(found + 1)
}

/// How long the worker's open and close take here: the longest of a few uninterrupted
/// ones, so that a kill delayed by a random part of it lands inside; and the last
/// acknowledged `seq`.
fn calibrate(dir: &Path) -> (Duration, Duration, u64) {
    let mut worker = Worker::spawn(dir);
    let (mut open, mut close) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..5 {
        let opening = worker.wait_for("opening");
        open = open.max(worker.wait_for("opened") - opening);
        let closing = worker.wait_for("closing");
        close = close.max(worker.wait_for("closed") - closing);
    }
    let lines = worker.kill();
    (open, close, acked(&lines).expect("the worker committed"))
}

#[test]
fn a_store_killed_at_any_instant_of_open_or_close_opens_again() {
    let want_open = count_from_env("DURABLE_SLED_OPEN_KILLS", 60);
    let want_close = count_from_env("DURABLE_SLED_CLOSE_KILLS", 30);
    let dir = TempDir::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (open_time, close_time, acked_seq) = calibrate(dir.path());
    let mut acked_seq = runtime
        .block_on(reopen_and_advance(dir.path(), acked_seq))
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(count_from_env("DURABLE_SLED_KILL_SEED", 7) as u64);
    let (mut during_open, mut during_close, mut outside) = (0, 0, 0);
    let budget = 3 * (want_open + want_close) + 100;
    for kill in 0..budget {
        if during_open >= want_open && during_close >= want_close {
            break;
        }
        let aim = if during_open * want_close.max(1) <= during_close * want_open.max(1) {
            Phase::Open
        } else {
            Phase::Close
        };
        let window = match aim {
            Phase::Open => open_time,
            Phase::Close => close_time,
        };
        let mut worker = Worker::spawn(dir.path());
        worker.wait_for(aim.starts());
        // The kill's instant, at random inside the phase (not a synchronisation).
        std::thread::sleep(window.mul_f64(rng.f64()));
        let lines = worker.kill();
        let last_phase_line = lines
            .iter()
            .rev()
            .find(|l| !l.starts_with("acked"))
            .expect("the worker printed");
        // Where it landed, whatever the aim: a late kill may catch the next phase.
        match last_phase_line.as_str() {
            line if line == Phase::Open.starts() => during_open += 1,
            line if line == Phase::Close.starts() => during_close += 1,
            line if line == Phase::Open.ends() || line == Phase::Close.ends() => outside += 1,
            line => panic!("kill {kill}: unexpected last line {line:?}"),
        }
        acked_seq = acked_seq.max(acked(&lines).unwrap_or(0));
        acked_seq = runtime
            .block_on(reopen_and_advance(dir.path(), acked_seq))
            .unwrap_or_else(|e| {
                panic!("after kill {kill} ({aim:?}, last line {last_phase_line:?}): {e}")
            });
    }
    println!(
        "SIGKILLs: {during_open} during open, {during_close} during close, {outside} after \
         the phase ended (open {open_time:?}, close {close_time:?}); every reopen found \
         every acknowledged commit"
    );
    assert!(
        during_open >= want_open && during_close >= want_close,
        "too few kills landed in the phases: {during_open} during open, {during_close} \
         during close, {outside} outside"
    );
}

/// A store with one committed execution, closed; returns its sled directory.
fn closed_store(dir: &Path) -> PathBuf {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Twice, so that sled has written a snapshot (it does so when it opens a log that
    // grew since its last one).
    runtime.block_on(reopen_and_advance(dir, 0)).unwrap();
    runtime.block_on(reopen_and_advance(dir, 1)).unwrap();
    dir.join("sled")
}

fn snapshots(sled: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(sled)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snap.")
        })
        .collect();
    found.sort();
    found
}

fn assert_reopens(dir: &Path, acked: u64, planted: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    if let Err(e) = runtime.block_on(reopen_and_advance(dir, acked)) {
        panic!("with {planted}: {e}");
    }
}

/// What a kill while sled writes a snapshot leaves: `snap.<lsn>.generating`, empty or cut
/// short, sorted after the last complete snapshot (sled reads the last one).
#[test]
fn a_snapshot_cut_short_by_a_kill_does_not_stop_the_open() {
    for (planted, cut) in [
        ("an empty snapshot being generated", Some(0)),
        ("a snapshot being generated, cut short", Some(7)),
        ("a snapshot being generated, complete", None),
    ] {
        let dir = TempDir::new();
        let sled = closed_store(dir.path());
        let complete = snapshots(&sled).pop().expect("sled wrote a snapshot");
        let mut bytes = std::fs::read(&complete).unwrap();
        if let Some(cut) = cut {
            bytes.truncate(cut);
        }
        // The highest log position sorts last; a later open writes its own.
        std::fs::write(sled.join("snap.7FFFFFFFFFFFFFFF.generating"), &bytes).unwrap();
        assert_reopens(dir.path(), 2, planted);
    }
}

/// A complete snapshot damaged after it was written: sled rebuilds what it held from
/// its log (the older snapshot, or none).
#[test]
fn a_damaged_last_snapshot_does_not_stop_the_open() {
    for (planted, damage) in [
        ("an empty last snapshot", 0),
        ("a last snapshot cut short", 1),
        ("a last snapshot with a flipped byte", 2),
    ] {
        let dir = TempDir::new();
        let sled = closed_store(dir.path());
        let last = snapshots(&sled).pop().expect("sled wrote a snapshot");
        let mut bytes = std::fs::read(&last).unwrap();
        match damage {
            0 => bytes.clear(),
            1 => bytes.truncate(bytes.len() / 2),
            _ => bytes[0] ^= 0x40,
        }
        std::fs::write(&last, &bytes).unwrap();
        assert_reopens(dir.path(), 2, planted);
    }
}

/// A kill between sled's two writes of its new `conf` file (the settings, then their
/// checksum) on the first open leaves settings without a checksum and no data yet.
#[test]
fn a_half_written_settings_file_of_a_new_store_does_not_stop_the_open() {
    let dir = TempDir::new();
    let sled = dir.path().join("sled");
    std::fs::create_dir_all(&sled).unwrap();
    std::fs::write(
        sled.join("conf"),
        "segment_size: 524288\nuse_compression: false\nversion: 0.34\n",
    )
    .unwrap();
    assert_reopens(dir.path(), 0, "settings without their checksum");
}

/// The settings file of a store that holds data is never rewritten: damage to it is
/// reported, not papered over.
#[test]
fn a_damaged_settings_file_of_a_store_with_data_is_an_error() {
    let dir = TempDir::new();
    let sled = closed_store(dir.path());
    std::fs::write(sled.join("conf"), "segment_size: 1\n").unwrap();
    match SledStore::open(dir.path()) {
        Err(error @ StoreError::Corrupt { .. }) => {
            let message = error.to_string();
            assert!(message.contains("conf"), "{message}");
        }
        other => panic!("expected StoreError::Corrupt naming `conf`, got {other:?}"),
    }
}

/// `n`'s record after `seq` commits: its message is 1 KiB, so the log fills segments.
fn bulky(n: usize, seq: u64) -> ExecutionRecord {
    ExecutionRecord {
        id: format!("bulky-{n:03}"),
        message: Some(format!("{seq:04}").repeat(256)),
        ..counter(seq)
    }
}

/// Commits every execution of `0..count` from `from` to `to` commits, concurrently (so
/// commits share syncs).
async fn advance_all(store: &std::sync::Arc<SledStore>, count: usize, from: u64, to: u64) {
    for seq in from..to {
        let mut commits = tokio::task::JoinSet::new();
        for n in 0..count {
            let store = store.clone();
            commits.spawn(async move {
                store
                    .commit(Commit {
                        record: bulky(n, seq + 1),
                        expected_seq: seq,
                        history: Vec::new(),
                        prune_history_below: 0,
                        operations: Vec::new(),
                        deliveries: Vec::new(),
                    })
                    .await
            });
        }
        while let Some(done) = commits.join_next().await {
            done.unwrap().unwrap();
        }
    }
}

/// What `repair` relies on, checked: without any snapshot, sled rebuilds every record
/// from its log, also after it has reused log segments.
#[test]
fn without_a_snapshot_sled_rebuilds_every_record_from_its_log() {
    // Sessions of 15 rounds each until sled has reused log segments: when sled frees a
    // segment depends on its background flushes, so a fixed number of rounds would test
    // reuse only by chance.
    const SESSION: u64 = 15;
    const MAX_SESSIONS: u64 = 12;
    let dir = TempDir::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let count = 200;
    let input = |n: usize| vec![n as u8; 2048];
    let sled = dir.path().join("sled");
    let mut rounds = 0;
    runtime.block_on(async {
        let store = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
        for n in 0..count {
            store.create(bulky(n, 0), input(n)).await.unwrap();
        }
        store.close().await.unwrap();
        // Every session after the first starts from the snapshot sled writes as it opens.
        for session in 0..MAX_SESSIONS {
            let store = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
            advance_all(&store, count, rounds, rounds + SESSION).await;
            rounds += SESSION;
            store.close().await.unwrap();
            let written = count as u64 * rounds * 1024;
            let log = std::fs::metadata(sled.join("db")).unwrap().len();
            if session >= 2 && log < written {
                return;
            }
        }
        panic!("sled reused no log segment in {rounds} rounds of writes");
    });
    let removed = snapshots(&sled);
    assert!(!removed.is_empty(), "sled wrote no snapshot");
    for snapshot in removed {
        std::fs::remove_file(snapshot).unwrap();
    }
    runtime.block_on(async {
        let store = SledStore::open(dir.path()).unwrap();
        for n in 0..count {
            let id = bulky(n, rounds).id;
            assert_eq!(
                store.load(&id).await.unwrap(),
                Some(bulky(n, rounds)),
                "{id}"
            );
            assert_eq!(store.load_input(&id).await.unwrap(), Some(input(n)), "{id}");
        }
        let listed = store.list(&Default::default()).await.unwrap();
        assert_eq!(listed.len(), count);
        store.close().await.unwrap();
    });
}
