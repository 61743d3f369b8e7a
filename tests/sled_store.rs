//! What the sled store does beyond the shared conformance suite: its data outlives the
//! process's handle on it, its directory is exclusive, and bad bytes on disk are errors.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use durable_core::{
    Commit, Created, Event, ExecutionRecord, HistoryEntry, ListFilter, Status, Store, StoreError,
    Timestamp,
};
use durable_store_sled::SledStore;

/// A fresh directory, removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("durable-sled-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
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

fn record(id: &str) -> ExecutionRecord {
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

fn entry(number: u64) -> HistoryEntry {
    HistoryEntry {
        number,
        at: Timestamp::from_millis(number),
        point: None,
        event: Event::Created,
    }
}

/// Creates `id` and commits once, with a timer and two history entries.
async fn create_and_commit(store: &SledStore, id: &str) -> ExecutionRecord {
    let created = store.create(record(id), b"input".to_vec()).await.unwrap();
    assert_eq!(created, Created::New);
    let next = ExecutionRecord {
        seq: 1,
        status: Status::Suspended,
        wake_at: Some(Timestamp::from_millis(500)),
        history_next: 2,
        ..record(id)
    };
    store
        .commit(Commit {
            record: next.clone(),
            expected_seq: 0,
            history: vec![entry(0), entry(1)],
            prune_history_below: 0,
            operations: Vec::new(),
            deliveries: Vec::new(),
        })
        .await
        .unwrap();
    next
}

async fn assert_contains(store: &SledStore, committed: &ExecutionRecord) {
    let id = committed.id.as_str();
    assert_eq!(store.load(id).await.unwrap().as_ref(), Some(committed));
    assert_eq!(store.load_input(id).await.unwrap(), Some(b"input".to_vec()));
    assert_eq!(store.history(id).await.unwrap(), [entry(0), entry(1)]);
    assert_eq!(
        store.due(Timestamp::from_millis(500), 10).await.unwrap(),
        [(Timestamp::from_millis(500), id.to_owned())]
    );
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = TempDir::new();
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.path(), dir.path());
    let committed = create_and_commit(&store, "kept").await;
    store.close().await.unwrap();

    let store = SledStore::open(dir.path()).unwrap();
    assert_contains(&store, &committed).await;
}

#[tokio::test]
async fn data_survives_drop_and_reopen() {
    let dir = TempDir::new();
    let store = SledStore::open(dir.path()).unwrap();
    let committed = create_and_commit(&store, "kept").await;
    drop(store);

    let store = SledStore::open(dir.path()).unwrap();
    assert_contains(&store, &committed).await;
}

#[tokio::test]
async fn a_directory_opens_once_at_a_time() {
    let dir = TempDir::new();
    let store = SledStore::open(dir.path()).unwrap();
    match SledStore::open(dir.path()) {
        Err(error @ StoreError::Locked { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{message}"
            );
        }
        other => panic!("expected StoreError::Locked, got {other:?}"),
    }
    store.close().await.unwrap();
    let reopened = SledStore::open(dir.path()).expect("closing releases the directory");
    drop(reopened);
    SledStore::open(dir.path()).expect("dropping releases the directory");
}

/// Set in the child process of `another_process_cannot_open_an_open_directory`.
const CHILD_DIR: &str = "DURABLE_SLED_TEST_LOCKED_DIR";

#[tokio::test]
async fn another_process_cannot_open_an_open_directory() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        match SledStore::open(&dir) {
            Err(StoreError::Locked { .. }) => return,
            other => panic!("child: expected StoreError::Locked, got {other:?}"),
        }
    }
    let dir = TempDir::new();
    let store = SledStore::open(dir.path()).unwrap();
    // Runs this same test in a child process, which then takes the branch above.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "another_process_cannot_open_an_open_directory",
            "--nocapture",
        ])
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stdout)
    );
    let ran = String::from_utf8_lossy(&child.stdout);
    assert!(ran.contains("1 passed"), "the child ran no test: {ran}");
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_closed_store_refuses_every_call() {
    let store = SledStore::temporary().unwrap();
    let committed = create_and_commit(&store, "x").await;
    store.close().await.unwrap();
    store.close().await.expect("closing twice does nothing");

    let t = Timestamp::from_millis(0);
    assert!(matches!(store.load("x").await, Err(StoreError::Closed)));
    assert!(matches!(
        store.load_input("x").await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.history("x").await, Err(StoreError::Closed)));
    assert!(matches!(store.due(t, 1).await, Err(StoreError::Closed)));
    assert!(matches!(store.next_wake().await, Err(StoreError::Closed)));
    assert!(matches!(
        store.list(&ListFilter::default()).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        store.claim("x", 1, t, t).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        store.release("x", 1).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        store.create(record("y"), Vec::new()).await,
        Err(StoreError::Closed)
    ));
    let next = ExecutionRecord {
        seq: 2,
        ..committed
    };
    let commit = Commit {
        record: next,
        expected_seq: 1,
        history: Vec::new(),
        prune_history_below: 0,
        operations: Vec::new(),
        deliveries: Vec::new(),
    };
    assert!(matches!(
        store.commit(commit).await,
        Err(StoreError::Closed)
    ));
}

#[tokio::test]
async fn a_corrupt_record_is_an_error_not_a_panic() {
    let dir = TempDir::new();
    let store = SledStore::open(dir.path()).unwrap();
    create_and_commit(&store, "good").await;
    create_and_commit(&store, "bad").await;
    store.close().await.unwrap();

    // The layout is documented in durable-store-sled's `keys` module: sled's files live
    // in `<dir>/sled`, records under `e/<id>`.
    let raw = sled::open(dir.path().join("sled")).unwrap();
    raw.insert(b"e/bad", b"not an envelope".as_slice()).unwrap();
    raw.flush().unwrap();
    drop(raw);

    // Written behind the store's back, the record no longer matches the digest of the
    // store's contents: the open refuses it, unless told to take the store as it is.
    match SledStore::open(dir.path()) {
        Err(error @ StoreError::Corrupt { .. }) => {
            assert!(error.to_string().contains("digest"), "{error}")
        }
        other => panic!("expected StoreError::Corrupt, got {other:?}"),
    }
    let store = SledStore::open_with(
        dir.path(),
        durable_store_sled::Options::default().accept_rollback(true),
    )
    .unwrap();
    let is_corrupt_bad = |result: Result<_, StoreError>| match result {
        Err(StoreError::Corrupt { key, .. }) => key == "e/bad",
        _ => false,
    };
    assert!(is_corrupt_bad(store.load("bad").await.map(drop)));
    assert!(is_corrupt_bad(
        store.list(&ListFilter::default()).await.map(drop)
    ));
    let retry = Commit {
        record: ExecutionRecord {
            seq: 2,
            ..record("bad")
        },
        expected_seq: 1,
        history: Vec::new(),
        prune_history_below: 0,
        operations: Vec::new(),
        deliveries: Vec::new(),
    };
    assert!(is_corrupt_bad(store.commit(retry).await.map(drop)));
    assert!(is_corrupt_bad(
        store.create(record("bad"), Vec::new()).await.map(drop)
    ));
    assert_eq!(store.load("good").await.unwrap().unwrap().seq, 1);
}

/// Set in the child process of `an_empty_path_is_refused_and_creates_nothing`.
const CHILD_EMPTY_PATH: &str = "DURABLE_SLED_TEST_EMPTY_PATH";

#[test]
fn an_empty_path_is_refused_and_creates_nothing() {
    if std::env::var_os(CHILD_EMPTY_PATH).is_some() {
        // The child runs in an empty directory of its own, so whatever the open creates
        // shows up there.
        for result in [
            SledStore::open(""),
            SledStore::open_with("", durable_store_sled::Durability::ProcessCrash),
        ] {
            match result {
                Err(StoreError::Backend(error)) => {
                    let io = error
                        .downcast_ref::<std::io::Error>()
                        .expect("an io::Error");
                    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput, "{io}");
                    assert!(io.to_string().contains("empty path"), "{io}");
                }
                other => panic!("child: expected an invalid-input error, got {other:?}"),
            }
        }
        let created: Vec<_> = std::fs::read_dir(".").unwrap().collect();
        assert!(created.is_empty(), "the open created {created:?}");
        return;
    }
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path()).unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_empty_path_is_refused_and_creates_nothing",
            "--nocapture",
        ])
        .current_dir(dir.path())
        .env(CHILD_EMPTY_PATH, "1")
        .output()
        .unwrap();
    let ran = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "{ran}{}",
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(ran.contains("1 passed"), "the child ran no test: {ran}");
}

/// Issue 7, item 11: a child process forked by another thread holds a copy of the lock
/// file's open file description until it execs, so the lock must be released explicitly
/// rather than by closing the file.
#[test]
fn a_closed_store_reopens_while_another_thread_spawns_processes() {
    let dir = TempDir::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawner = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut spawned = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let status = std::process::Command::new("true").status().unwrap();
                assert!(status.success());
                spawned += 1;
            }
            spawned
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut failures = Vec::new();
    runtime.block_on(async {
        for attempt in 0..300 {
            match SledStore::open(dir.path()) {
                Ok(store) => store.close().await.unwrap(),
                Err(error) => failures.push(format!("{attempt}: {error}")),
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    let spawned = spawner.join().unwrap();
    assert!(spawned > 0, "no child process ran during the reopens");
    assert!(
        failures.is_empty(),
        "{} of 300 reopens failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// A current-thread runtime whose only blocking thread is kept busy until the returned
/// sender is used or dropped: work handed to `spawn_blocking` waits, work done on the
/// runtime's thread does not.
async fn occupy_the_blocking_pool() -> std::sync::mpsc::Sender<()> {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        started.send(()).unwrap();
        let _ = released.recv();
    });
    running.await.unwrap();
    release
}

fn runtime_with_one_blocking_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .unwrap()
}

/// Polls `future` once.
async fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx)))
        .await
}

/// Issue 7, item 10: sled reads block, so they run off the runtime's threads. (The
/// store is reopened first, so that nothing it reads was written since it opened: see
/// the next test.)
#[test]
fn reads_run_off_the_runtime_thread() {
    runtime_with_one_blocking_thread().block_on(async {
        let dir = TempDir::new();
        let store = SledStore::open(dir.path()).unwrap();
        let committed = create_and_commit(&store, "x").await;
        store.close().await.unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let release = occupy_the_blocking_pool().await;
        let mut load = Box::pin(store.load("x"));
        let mut input = Box::pin(store.load_input("x"));
        let filter = ListFilter::default();
        let mut list = Box::pin(store.list(&filter));
        let mut due = Box::pin(store.due(Timestamp::from_millis(500), 10));
        assert!(
            poll_once(&mut load).await.is_pending(),
            "load read on the runtime thread"
        );
        assert!(
            poll_once(&mut input).await.is_pending(),
            "load_input read on the runtime thread"
        );
        assert!(
            poll_once(&mut list).await.is_pending(),
            "list read on the runtime thread"
        );
        assert!(
            poll_once(&mut due).await.is_pending(),
            "due read on the runtime thread"
        );
        release.send(()).unwrap();
        assert_eq!(load.await.unwrap(), Some(committed.clone()));
        assert_eq!(input.await.unwrap().unwrap(), b"input");
        assert_eq!(list.await.unwrap(), [committed]);
        assert_eq!(due.await.unwrap().len(), 1);
        store.close().await.unwrap();
    });
}

/// An execution written since the store opened is read from the store's memory, without
/// a trip to a blocking thread: the same answer, at once.
#[test]
fn a_recently_written_execution_is_read_from_memory() {
    runtime_with_one_blocking_thread().block_on(async {
        let store = SledStore::temporary().unwrap();
        let committed = create_and_commit(&store, "x").await;
        let release = occupy_the_blocking_pool().await;
        let mut load = Box::pin(store.load("x"));
        let mut input = Box::pin(store.load_input("x"));
        assert_eq!(
            poll_once(&mut load).await.map(Result::unwrap),
            std::task::Poll::Ready(Some(committed))
        );
        assert_eq!(
            poll_once(&mut input).await.map(Result::unwrap),
            std::task::Poll::Ready(Some(b"input".to_vec()))
        );
        release.send(()).unwrap();
        store.close().await.unwrap();
    });
}

/// Whether another open file description can take `dir`'s lock right now.
fn lock_is_free(dir: &Path) -> bool {
    let file = std::fs::File::open(dir.join("durable.lock")).unwrap();
    let free = file.try_lock().is_ok();
    if free {
        file.unlock().unwrap();
    }
    free
}

/// Issue 7, item 10: dropping a store finishes its writes and closes sled, which blocks,
/// so inside a runtime that happens off the runtime's threads; an open of the same
/// directory in this process waits for it.
#[test]
fn dropping_a_store_in_a_runtime_does_not_block_the_runtime_thread() {
    let dir = TempDir::new();
    runtime_with_one_blocking_thread().block_on(async {
        let store = SledStore::open(dir.path()).unwrap();
        let committed = create_and_commit(&store, "kept").await;
        let release = occupy_the_blocking_pool().await;
        drop(store);
        assert!(
            !lock_is_free(dir.path()),
            "the store was closed on the runtime thread"
        );
        release.send(()).unwrap();
        let store = SledStore::open(dir.path()).expect("the open waits for the drop");
        assert_contains(&store, &committed).await;
        store.close().await.unwrap();
    });
}

#[durable_core::durable]
async fn nap(ctx: durable_core::Ctx, days: u64) -> u64 {
    ctx.sleep(std::time::Duration::from_secs(86_400 * days))
        .await
        .unwrap();
    days
}

/// Issue 7, item 12: `result` promises `ShutDown` when the engine shuts down first, also
/// once the store is closed.
#[tokio::test]
async fn result_after_shutdown_is_shut_down() {
    let dir = TempDir::new();
    let clock = durable_core::TestClock::new(Timestamp::from_millis(0));
    let store = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
    let engine = durable_core::EngineBuilder::with_store(store.clone())
        .register(nap)
        .clock(clock)
        .open()
        .await
        .unwrap();
    let handle = engine.start(nap, "napping", 3).await.unwrap();
    while store.load("napping").await.unwrap().unwrap().status != Status::Suspended {
        tokio::task::yield_now().await;
    }
    engine.shutdown().await;
    assert!(matches!(
        store.load("napping").await,
        Err(StoreError::Closed)
    ));
    match handle.result().await {
        Err(durable_core::Error::ShutDown) => {}
        other => panic!("expected Error::ShutDown, got {other:?}"),
    }
}
