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

    let store = SledStore::open(dir.path()).unwrap();
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
    };
    assert!(is_corrupt_bad(store.commit(retry).await));
    assert!(is_corrupt_bad(
        store.create(record("bad"), Vec::new()).await.map(drop)
    ));
    assert_eq!(store.load("good").await.unwrap().unwrap().seq, 1);
}
