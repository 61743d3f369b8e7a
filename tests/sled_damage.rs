//! Damage to sled's log `sled/db` is never silent (issue 7, item 8): a store whose data
//! is behind what it acknowledged is refused with `StoreError::Corrupt`, unless the
//! caller accepts the rollback; damage that sled notices surfaces as an error, never as
//! a panic or as wrong data.
//!
//! The random test flips single bytes at random offsets and cuts the file at random
//! lengths, then sorts each outcome: opened with every record as acknowledged, refused
//! (at open, or when the damaged record is read) with an error, or silently rolled back
//! (which must never happen). `DURABLE_SLED_FLIPS`, `DURABLE_SLED_TRUNCATIONS` and
//! `DURABLE_SLED_DAMAGE_SEED` set the number of each kind of damage (defaults 24 and 8)
//! and the seed (default 11), `DURABLE_SLED_DAMAGE_EXECUTIONS` the size of the store
//! (default 150 executions of 15 commits); the test prints the counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use durable_core::{
    Commit, Event, ExecutionRecord, HistoryEntry, ListFilter, Status, Store, StoreError, Timestamp,
};
use durable_store_sled::{Options, SledStore};

mod copy_dir;
use copy_dir::copy_dir;

/// A fresh directory, removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("durable-sled-damage-{}-{n}", std::process::id()));
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

/// What the store acknowledged about one execution.
#[derive(Clone, Debug, PartialEq)]
struct Acked {
    record: ExecutionRecord,
    input: Vec<u8>,
    history: Vec<HistoryEntry>,
}

/// Everything the store acknowledged, by id.
type Ledger = BTreeMap<String, Acked>;

fn input_of(n: usize) -> Vec<u8> {
    // Every fifth input is too large to live in the execution's value.
    let len = if n.is_multiple_of(5) { 2048 } else { 24 };
    vec![n as u8; len]
}

fn first_record(id: &str) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_owned(),
        workflow: "order".into(),
        fingerprint: 1,
        seq: 0,
        status: Status::Running,
        position: None,
        wake_at: None,
        output: None,
        message: None,
        history_next: 0,
        created_at: Timestamp::from_millis(1),
        updated_at: Timestamp::from_millis(1),
        parent: None,
        awaiting: Vec::new(),
    }
}

/// The next transition of `acked`: two history entries, a timer on every third seq, a
/// pruned history now and then, completion at `last`.
fn next(acked: &Acked, last: u64) -> (Commit, Acked) {
    let old = &acked.record;
    let seq = old.seq + 1;
    let done = seq == last;
    let record = ExecutionRecord {
        seq,
        status: if done {
            Status::Completed
        } else if seq.is_multiple_of(3) {
            Status::Suspended
        } else {
            Status::Running
        },
        wake_at: (!done && seq.is_multiple_of(3)).then(|| Timestamp::from_millis(10_000 + seq * 7)),
        output: done.then(|| vec![seq as u8; 16]),
        message: Some(format!("at {seq}")),
        history_next: old.history_next + 2,
        updated_at: Timestamp::from_millis(seq),
        ..old.clone()
    };
    let entries: Vec<HistoryEntry> = (old.history_next..old.history_next + 2)
        .map(|number| HistoryEntry {
            number,
            at: Timestamp::from_millis(number),
            point: Some(number as u32),
            event: Event::Created,
        })
        .collect();
    let prune = if seq.is_multiple_of(5) {
        old.history_next
    } else {
        0
    };
    let mut history = acked.history.clone();
    history.extend(entries.iter().cloned());
    history.retain(|e| e.number >= prune);
    let commit = Commit {
        record: record.clone(),
        expected_seq: old.seq,
        history: entries,
        prune_history_below: prune,
        operations: Vec::new(),
        deliveries: Vec::new(),
    };
    (
        commit,
        Acked {
            record,
            input: acked.input.clone(),
            history,
        },
    )
}

/// Commits every execution of `ledger` `rounds` times, concurrently, so that commits
/// share syncs as they do under load; records what was acknowledged.
async fn advance(store: &Arc<SledStore>, ledger: &mut Ledger, rounds: u64, last: u64) {
    for _ in 0..rounds {
        let mut commits = tokio::task::JoinSet::new();
        for acked in ledger.values() {
            if acked.record.status == Status::Completed {
                continue;
            }
            let (commit, after) = next(acked, last);
            let store = store.clone();
            commits.spawn(async move { store.commit(commit).await.map(|_| after) });
        }
        while let Some(done) = commits.join_next().await {
            let after = done.unwrap().expect("the commit lands");
            ledger.insert(after.record.id.clone(), after);
        }
    }
}

/// A store of `count` executions written in two sessions (so that sled's log has a part
/// its snapshot covers and a part it reads again on opening), closed; and its ledger.
fn build_store(dir: &Path, count: usize) -> Ledger {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut ledger = Ledger::new();
        let store = Arc::new(SledStore::open(dir).unwrap());
        for n in 0..count {
            let id = format!("order-{n:04}");
            store.create(first_record(&id), input_of(n)).await.unwrap();
            let acked = Acked {
                record: first_record(&id),
                input: input_of(n),
                history: Vec::new(),
            };
            ledger.insert(id, acked);
        }
        advance(&store, &mut ledger, 6, 14).await;
        store.close().await.unwrap();
        let store = Arc::new(SledStore::open(dir).unwrap());
        advance(&store, &mut ledger, 8, 14).await;
        store.close().await.unwrap();
        ledger
    })
}

/// How an open of a damaged store went.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Outcome {
    /// Opened, and every record reads as acknowledged.
    Intact,
    /// `open` returned `StoreError::Corrupt`.
    RefusedAtOpen,
    /// `open` returned another error.
    OtherErrorAtOpen,
    /// Opened, and reading a damaged record returned an error.
    ErrorOnRead,
    /// Opened, and some record differs from what was acknowledged, without an error.
    SilentRollback,
}

/// Reads everything back and compares it with the ledger; `Err` if a read failed,
/// `Ok(differences)` otherwise.
async fn compare(store: &SledStore, ledger: &Ledger) -> Result<Vec<String>, StoreError> {
    let mut differences = Vec::new();
    for (id, acked) in ledger {
        let record = store.load(id).await?;
        if record.as_ref() != Some(&acked.record) {
            differences.push(format!("{id}: record {:?}", record.map(|r| r.seq)));
        }
        if store.load_input(id).await?.as_ref() != Some(&acked.input) {
            differences.push(format!("{id}: input"));
        }
        if store.history(id).await? != acked.history {
            differences.push(format!("{id}: history"));
        }
    }
    let listed = store.list(&ListFilter::default()).await?;
    let acked: Vec<&ExecutionRecord> = ledger.values().map(|a| &a.record).collect();
    if listed.iter().collect::<Vec<_>>() != acked {
        differences.push(format!("list: {} records", listed.len()));
    }
    let timers = store
        .due(Timestamp::from_millis(u64::MAX), usize::MAX)
        .await?;
    let mut acked_timers: Vec<(Timestamp, String)> = ledger
        .values()
        .filter_map(|a| a.record.wake_at.map(|at| (at, a.record.id.clone())))
        .collect();
    acked_timers.sort();
    if timers != acked_timers {
        differences.push(format!("timers: {} entries", timers.len()));
    }
    Ok(differences)
}

fn open_and_compare(dir: &Path, ledger: &Ledger) -> (Outcome, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = match SledStore::open(dir) {
        Ok(store) => store,
        Err(error @ StoreError::Corrupt { .. }) => {
            return (Outcome::RefusedAtOpen, error.to_string())
        }
        Err(error) => return (Outcome::OtherErrorAtOpen, error.to_string()),
    };
    let compared = runtime.block_on(compare(&store, ledger));
    runtime.block_on(async { drop(store.close().await) });
    match compared {
        Err(error) => (Outcome::ErrorOnRead, error.to_string()),
        Ok(differences) if differences.is_empty() => (Outcome::Intact, String::new()),
        Ok(differences) => (
            Outcome::SilentRollback,
            format!(
                "{} differences, first {:?}",
                differences.len(),
                &differences[..differences.len().min(3)]
            ),
        ),
    }
}

/// What an error says was wrong, in a few words, for the counts.
fn reason(error: &str) -> &'static str {
    if error.is_empty() {
        ""
    } else if error.contains("digest") {
        "contents differ from their digest"
    } else if error.contains("was acknowledged") {
        "behind the high-water mark"
    } else if error.contains("sled panicked") {
        "sled panicked reading it"
    } else if error.contains("sled found damaged data") {
        "sled found damaged data"
    } else {
        "other"
    }
}

#[test]
fn damage_to_sleds_log_is_refused_or_harmless_never_silent() {
    let flips = count_from_env("DURABLE_SLED_FLIPS", 24);
    let truncations = count_from_env("DURABLE_SLED_TRUNCATIONS", 8);
    let mut rng = fastrand::Rng::with_seed(count_from_env("DURABLE_SLED_DAMAGE_SEED", 11) as u64);
    let pristine = TempDir::new();
    let ledger = build_store(
        pristine.path(),
        count_from_env("DURABLE_SLED_DAMAGE_EXECUTIONS", 150),
    );
    let log_len = std::fs::metadata(pristine.path().join("sled/db"))
        .unwrap()
        .len() as usize;
    let mut outcomes: BTreeMap<(&str, Outcome, &str), usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for trial in 0..flips + truncations {
        let dir = TempDir::new();
        copy_dir(pristine.path(), dir.path());
        let log = dir.path().join("sled/db");
        let mut bytes = std::fs::read(&log).unwrap();
        let (kind, damage) = if trial < flips {
            let at = rng.usize(0..bytes.len());
            let mask = rng.u8(1..=255);
            bytes[at] ^= mask;
            ("flip", format!("byte {at} of {log_len} xor {mask:#04x}"))
        } else {
            let at = rng.usize(0..bytes.len());
            bytes.truncate(at);
            ("truncation", format!("cut to {at} of {log_len} bytes"))
        };
        std::fs::write(&log, &bytes).unwrap();
        let opened = std::panic::catch_unwind(|| open_and_compare(dir.path(), &ledger));
        let (outcome, detail) = match opened {
            Ok(result) => result,
            Err(_) => {
                failures.push(format!("{kind} {damage}: the store panicked"));
                continue;
            }
        };
        if outcome == Outcome::SilentRollback {
            failures.push(format!("{kind} {damage}: silent rollback: {detail}"));
        }
        *outcomes
            .entry((kind, outcome, reason(&detail)))
            .or_default() += 1;
    }
    println!("damage to sled/db ({log_len} bytes), outcomes:");
    for ((kind, outcome, reason), count) in &outcomes {
        println!("  {kind:>10}: {outcome:?} {reason}: {count}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} damaged stores: {failures:#?}",
        failures.len(),
        flips + truncations
    );
}

/// The clearest rollback there is: sled's directory restored from an older copy.
#[test]
fn a_store_behind_what_it_acknowledged_is_refused_unless_accepted() {
    let dir = TempDir::new();
    let old = TempDir::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut ledger = Ledger::new();
    runtime.block_on(async {
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        for n in 0..20 {
            let id = format!("order-{n:04}");
            store.create(first_record(&id), input_of(n)).await.unwrap();
            let acked = Acked {
                record: first_record(&id),
                input: input_of(n),
                history: Vec::new(),
            };
            ledger.insert(id, acked);
        }
        store.close().await.unwrap();
    });
    copy_dir(&dir.path().join("sled"), old.path());
    runtime.block_on(async {
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        advance(&store, &mut ledger, 3, 14).await;
        store.close().await.unwrap();
    });
    std::fs::remove_dir_all(dir.path().join("sled")).unwrap();
    copy_dir(old.path(), &dir.path().join("sled"));

    for _ in 0..2 {
        match SledStore::open(dir.path()) {
            Err(error @ StoreError::Corrupt { .. }) => {
                let message = error.to_string();
                assert!(message.contains("acknowledged"), "{message}");
                assert!(message.contains("accept_rollback"), "{message}");
            }
            other => panic!("expected StoreError::Corrupt, got {other:?}"),
        }
    }
    runtime.block_on(async {
        let store = SledStore::open_with(dir.path(), Options::default().accept_rollback(true))
            .expect("an accepted rollback opens");
        let record = store.load("order-0000").await.unwrap().unwrap();
        assert_eq!(record.seq, 0, "the store went on from what was left");
        store.close().await.unwrap();
        let store = SledStore::open(dir.path()).expect("the rollback was accepted once for all");
        store.close().await.unwrap();
    });
}

/// A store with a few committed executions, closed.
fn small_store(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Arc::new(SledStore::open(dir).unwrap());
        let mut ledger = Ledger::new();
        for n in 0..5 {
            let id = format!("order-{n:04}");
            store.create(first_record(&id), input_of(n)).await.unwrap();
            let acked = Acked {
                record: first_record(&id),
                input: input_of(n),
                history: Vec::new(),
            };
            ledger.insert(id, acked);
        }
        advance(&store, &mut ledger, 2, 14).await;
        store.close().await.unwrap();
    });
}

/// Without its high-water mark (`durable.mark`), whether the log lost acknowledged
/// writes cannot be told: the open is refused, and accepting it writes a new mark.
#[test]
fn a_missing_or_damaged_mark_is_refused_unless_accepted() {
    for damage in ["missing", "damaged"] {
        let dir = TempDir::new();
        small_store(dir.path());
        let mark = dir.path().join("durable.mark");
        assert_eq!(std::fs::metadata(&mark).unwrap().len(), 24);
        match damage {
            "missing" => std::fs::remove_file(&mark).unwrap(),
            _ => {
                let mut bytes = std::fs::read(&mark).unwrap();
                bytes[6] ^= 0x10;
                std::fs::write(&mark, bytes).unwrap();
            }
        }
        match SledStore::open(dir.path()) {
            Err(error @ StoreError::Corrupt { .. }) => {
                let message = error.to_string();
                assert!(message.contains("durable.mark"), "{damage}: {message}");
                assert!(message.contains(damage), "{damage}: {message}");
            }
            other => panic!("{damage}: expected StoreError::Corrupt, got {other:?}"),
        }
        let accepted = SledStore::open_with(dir.path(), Options::default().accept_rollback(true))
            .unwrap_or_else(|e| panic!("{damage}: {e}"));
        drop(accepted);
        SledStore::open(dir.path()).unwrap_or_else(|e| panic!("{damage}, accepted: {e}"));
    }
}
