//! The PostgreSQL store against a real server (issue 14): the store conformance suite;
//! schema migration from an empty database and refusal of a newer schema; two engines
//! racing for the same due timers; a commit after a lost lease refused and its execution
//! dropped; commits made at once (grouped) each answered and stored on their own; and
//! three engine processes sharing 1,000 executions while one of them is SIGKILLed.
//!
//! The server is `DURABLE_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Every test works in a schema of its
//! own and drops it, so tests run in parallel and leave nothing behind. Without a server
//! the tests are skipped, saying so in one line, unless `DURABLE_POSTGRES_REQUIRED` is set
//! (`.ci/run` sets it), which makes them fail instead.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use durable_core::test_support::InstrumentedStore;
use durable_core::{
    durable, Clock, Ctx, Engine, Status, Store, StoreError, SystemClock, Timestamp,
};
use durable_store_postgres::{Options, PostgresStore};
use tokio::sync::Notify;

mod pg {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::Duration;

    use durable_store_postgres::{Options, PostgresStore};

    pub fn url() -> String {
        std::env::var("DURABLE_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    /// Whether a server answers at [`url`]; the first time one does not, says so in one
    /// line (or fails, when a server is required).
    pub fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            let probe = std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async {
                    let mut config: tokio_postgres::Config =
                        url().parse().map_err(|e| format!("{e}"))?;
                    config.connect_timeout(Duration::from_secs(5));
                    let (client, connection) = config
                        .connect(tokio_postgres::NoTls)
                        .await
                        .map_err(|e| e.to_string())?;
                    tokio::spawn(connection);
                    client
                        .simple_query("SELECT 1")
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<(), String>(())
                })
            });
            match probe.join().expect("the probe does not panic") {
                Ok(()) => true,
                Err(e) if std::env::var_os("DURABLE_POSTGRES_REQUIRED").is_some() => {
                    panic!("DURABLE_POSTGRES_REQUIRED is set but PostgreSQL at {} does not answer: {e}", url())
                }
                Err(e) => {
                    // Written past the test harness's capture, so that it is seen once.
                    let _ = writeln!(
                        std::io::stderr(),
                        "skipping the PostgreSQL tests: no server at {} ({e}); set DURABLE_POSTGRES_URL",
                        url()
                    );
                    false
                }
            }
        })
    }

    /// A temporary store (its schema is dropped when it closes), `None` to skip.
    pub async fn temporary() -> Option<PostgresStore> {
        if !available() {
            return None;
        }
        Some(
            PostgresStore::temporary(&url())
                .await
                .expect("a temporary PostgreSQL store opens"),
        )
    }

    /// A schema name no other test uses, dropped with everything in it when dropped.
    pub struct Schema(pub String);

    impl Schema {
        pub fn new(tag: &str) -> Schema {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            Schema(format!(
                "durable_test_{tag}_{}_{n}_{:08x}",
                std::process::id(),
                fastrand::u32(..)
            ))
        }

        pub fn options(&self) -> Options {
            Options::new(&url())
                .expect("the url parses")
                .schema(self.0.clone())
                .pool_size(4)
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let name = self.0.clone();
            // Its own thread and runtime: this may run inside (or outside) a runtime.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime builds");
                runtime.block_on(async {
                    let c = client().await;
                    c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                        .await
                        .expect("the test schema drops");
                });
            })
            .join();
        }
    }

    /// A plain connection, to look at or prepare a schema.
    pub async fn client() -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL answers");
        tokio::spawn(connection);
        client
    }
}

durable_core::store_conformance!(
    conformance,
    match pg::temporary().await {
        Some(store) => store,
        None => return,
    }
);

/// A new execution is announced to the engines of other processes (here, another store
/// on the same schema): its creation is followed by a `Ready` signal there, sent after
/// the creation committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_execution_is_announced_to_the_other_stores() {
    use durable_core::{ExecutionRecord, StoreSignal};

    if !pg::available() {
        return;
    }
    let schema = pg::Schema::new("announce");
    let creator = PostgresStore::open(schema.options()).await.expect("opens");
    let other = PostgresStore::open(schema.options()).await.expect("opens");
    let mut signals = other.signals().expect("a shared store signals");
    let now = Timestamp::from_millis(1_700_000_000_000);
    let record = ExecutionRecord::new("new", "w", 1, now);
    creator.create(record, vec![]).await.expect("created");
    // A guard against a hang, not a measure: the signal comes within milliseconds.
    let signal = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match signals.recv().await {
                Ok(StoreSignal::Ready) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    assert_eq!(
        signal,
        Ok(true),
        "the other store heard of the new execution"
    );
    let found = other.load("new").await.expect("loads");
    assert!(found.is_some(), "announced after it committed");
    creator.close().await.expect("closes");
    other.close().await.expect("closes");
}

/// Commits of many executions made at once, while one writer is busy, so that they wait
/// and go to the database together: each is answered on its own (a lost lease and a
/// stale sequence number refuse only their own commit), and exactly what was answered
/// `Ok` is stored, with its history (pruned as asked) and nothing of the refused ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_made_at_once_are_each_answered_and_stored_on_their_own() {
    use durable_core::{Commit, Event, ExecutionRecord, HistoryEntry};

    if !pg::available() {
        return;
    }
    let schema = pg::Schema::new("group");
    let store = Arc::new(
        PostgresStore::open(schema.options().writers(1))
            .await
            .expect("the store opens"),
    );
    let now = Timestamp::from_millis(1_700_000_000_000);
    let until = Timestamp::from_millis(1_900_000_000_000);
    let entry = |number: u64| HistoryEntry {
        number,
        at: now,
        point: Some(1),
        event: Event::StepSucceeded {
            name: format!("step-{number}"),
            attempt: 1,
        },
    };
    const N: usize = 60;
    const TAKEN: usize = 5;
    const STALE: usize = 7;
    const PRUNED: usize = 9;
    let mut commits = Vec::new();
    for i in 0..N {
        let id = format!("e-{i}");
        let record = ExecutionRecord::new(&id, "w", 1, now);
        store.create(record.clone(), vec![]).await.expect("created");
        let owner = if i == TAKEN { 2 } else { 1 };
        assert!(store.claim(&id, owner, now, until).await.expect("claimed"));
        let mut next = record.clone();
        next.seq = 1;
        if i % 4 == 3 {
            next.status = Status::Completed;
        }
        let history = if i == PRUNED {
            vec![entry(0), entry(1), entry(2)]
        } else {
            vec![entry(0)]
        };
        next.history_next = history.len() as u64;
        commits.push(Commit {
            history,
            prune_history_below: if i == PRUNED { 2 } else { 0 },
            ..Commit::new(next, if i == STALE { 5 } else { 0 })
        });
    }
    let tasks: Vec<_> = commits
        .into_iter()
        .map(|commit| {
            let store = store.clone();
            tokio::spawn(async move { store.commit_leased(commit, 1).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let id = format!("e-{i}");
        let answer = task.await.expect("the commit task ends");
        match i {
            TAKEN => assert!(
                matches!(&answer, Err(StoreError::LeaseLost { id: lost }) if *lost == id),
                "{id}: {answer:?}"
            ),
            STALE => assert!(
                matches!(
                    &answer,
                    Err(StoreError::Conflict {
                        expected: 5,
                        found: Some(0),
                        ..
                    })
                ),
                "{id}: {answer:?}"
            ),
            _ => assert!(answer.is_ok(), "{id}: {answer:?}"),
        }
        let stored = store.load(&id).await.expect("loads").expect("exists");
        let history: Vec<u64> = store
            .history(&id)
            .await
            .expect("history reads")
            .iter()
            .map(|e| e.number)
            .collect();
        match i {
            TAKEN | STALE => {
                assert_eq!((stored.seq, stored.status), (0, Status::Running), "{id}");
                assert!(history.is_empty(), "{id}: {history:?}");
            }
            _ => {
                let status = if i % 4 == 3 {
                    Status::Completed
                } else {
                    Status::Running
                };
                assert_eq!((stored.seq, stored.status), (1, status), "{id}");
                let kept = if i == PRUNED { vec![2] } else { vec![0] };
                assert_eq!(history, kept, "{id}");
            }
        }
    }
    store.close().await.expect("the store closes");
}

/// A step's commit (one history entry) whose entry number is taken already, which the
/// engine never makes but a store must take as any store does: the commit applies and
/// its entry replaces the stored one (the statement a step uses inserts without
/// `ON CONFLICT`, fails on the taken number, and the commit runs as one that replaces).
/// A refused one writes no entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_commit_replaces_a_history_entry_with_its_number() {
    use durable_core::{Commit, Event, ExecutionRecord, HistoryEntry};

    let Some(store) = pg::temporary().await else {
        return;
    };
    let now = Timestamp::from_millis(1_700_000_000_000);
    let entry = |number: u64, name: &str| HistoryEntry {
        number,
        at: now,
        point: Some(1),
        event: Event::StepSucceeded {
            name: name.to_owned(),
            attempt: 1,
        },
    };
    let record = ExecutionRecord::new("x", "w", 1, now);
    store.create(record.clone(), vec![]).await.expect("created");
    let mut first = record.clone();
    first.seq = 1;
    first.history_next = 1;
    let commit = Commit {
        history: vec![entry(0, "first")],
        ..Commit::new(first.clone(), 0)
    };
    store
        .commit_leased(commit, 1)
        .await
        .expect("the first commits");
    let mut second = first.clone();
    second.seq = 2;
    let commit = Commit {
        history: vec![entry(0, "second")],
        ..Commit::new(second, 1)
    };
    store
        .commit_leased(commit, 1)
        .await
        .expect("the second commits");
    let mut stale = first.clone();
    stale.seq = 3;
    let commit = Commit {
        history: vec![entry(1, "stale")],
        ..Commit::new(stale, 1)
    };
    let refused = store.commit_leased(commit, 1).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { found: Some(2), .. })),
        "{refused:?}"
    );
    let stored = store.load("x").await.expect("loads").expect("exists");
    assert_eq!(stored.seq, 2);
    let history = store.history("x").await.expect("history reads");
    assert_eq!(history, vec![entry(0, "second")]);
    store.close().await.expect("the store closes");
}

async fn tables(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_opening_an_empty_database_at_once_create_the_schema_once() {
    if !pg::available() {
        return;
    }
    let schema = pg::Schema::new("migrate");
    let client = pg::client().await;
    assert_eq!(tables(&client, &schema.0).await, Vec::<String>::new());
    let (a, b, c) = tokio::join!(
        PostgresStore::open(schema.options()),
        PostgresStore::open(schema.options()),
        PostgresStore::open(schema.options()),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(
        tables(&client, &schema.0).await,
        [
            "executions",
            "history",
            "inputs",
            "layouts",
            "operations",
            "schema_version"
        ]
    );
    let versions: Vec<i64> = client
        .query(
            &format!("SELECT version FROM \"{}\".schema_version", schema.0),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [2]);
    // One store's writes are the others' reads.
    let record = durable_core::ExecutionRecord::new("x", "w", 1, Timestamp::from_millis(5));
    a.create(record.clone(), b"in".to_vec()).await.unwrap();
    assert_eq!(b.load("x").await.unwrap(), Some(record.clone()));
    assert_eq!(c.load_input("x").await.unwrap(), Some(b"in".to_vec()));
    for store in [a, b, c] {
        store.close().await.unwrap();
    }
    // Opening a schema that is up to date changes nothing.
    let again = PostgresStore::open(schema.options()).await.unwrap();
    assert_eq!(again.load("x").await.unwrap(), Some(record));
    again.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_code_is_refused_and_left_unchanged() {
    if !pg::available() {
        return;
    }
    let schema = pg::Schema::new("newer");
    let client = pg::client().await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{s}\";
             CREATE TABLE \"{s}\".schema_version (version bigint NOT NULL);
             INSERT INTO \"{s}\".schema_version VALUES (3);
             CREATE TABLE \"{s}\".from_the_future (x int);",
            s = schema.0
        ))
        .await
        .unwrap();
    match PostgresStore::open(schema.options()).await {
        Err(StoreError::UnsupportedFormat {
            what,
            found,
            supported,
        }) => {
            assert_eq!((found, supported), (3, 2));
            assert!(what.contains(&schema.0), "{what}");
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    assert_eq!(
        tables(&client, &schema.0).await,
        ["from_the_future", "schema_version"]
    );
    let version: i64 = client
        .query_one(
            &format!("SELECT version FROM \"{}\".schema_version", schema.0),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_of_version_1_gains_the_layouts_table_and_keeps_its_data() {
    if !pg::available() {
        return;
    }
    let schema = pg::Schema::new("v1");
    let store = PostgresStore::open(schema.options()).await.unwrap();
    let record = durable_core::ExecutionRecord::new("old", "w", 1, Timestamp::from_millis(5));
    store.create(record.clone(), b"in".to_vec()).await.unwrap();
    store.close().await.unwrap();
    // Back to what version 1 was: no `layouts` table.
    let client = pg::client().await;
    client
        .batch_execute(&format!(
            "DROP TABLE \"{s}\".layouts; UPDATE \"{s}\".schema_version SET version = 1;",
            s = schema.0
        ))
        .await
        .unwrap();
    assert!(!tables(&client, &schema.0)
        .await
        .contains(&"layouts".to_owned()));
    let store = PostgresStore::open(schema.options()).await.unwrap();
    assert!(tables(&client, &schema.0)
        .await
        .contains(&"layouts".to_owned()));
    assert_eq!(store.load("old").await.unwrap(), Some(record));
    store.save_layout(u64::MAX, b"d".to_vec()).await.unwrap();
    assert_eq!(store.layout(u64::MAX).await.unwrap(), Some(b"d".to_vec()));
    store.close().await.unwrap();
}

/// The thread names of the engines that ran each racer's step after its timer.
static WAKES: LazyLock<Mutex<BTreeMap<String, Vec<String>>>> = LazyLock::new(Mutex::default);

#[durable]
async fn racer(ctx: Ctx, wake_at: u64) -> Result<String, String> {
    ctx.sleep_until(Timestamp::from_millis(wake_at))
        .await
        .map_err(|e| e.to_string())?;
    let id = ctx.execution_id().to_owned();
    let engine = ctx
        .step_infallible("after-wake", || async move {
            let engine = std::thread::current().name().unwrap_or("?").to_owned();
            WAKES
                .lock()
                .unwrap()
                .entry(id)
                .or_default()
                .push(engine.clone());
            engine
        })
        .await;
    Ok(engine)
}

/// What the engine that starts the racers does: how many, due when, and where their
/// results (execution id, engine) go.
type Starter = (usize, u64, std::sync::mpsc::Sender<Vec<(String, String)>>);

/// Runs an engine over `schema` on a thread of its own named `name` (so that a step body
/// can tell which engine runs it) until `stop` fires; the starter starts `racers`
/// executions due at `wake_at` and sends back their results.
fn racing_engine(
    name: &'static str,
    options: Options,
    start: Option<Starter>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let store = PostgresStore::open(options).await.unwrap();
                let engine = Engine::builder(store)
                    .register(racer)
                    .max_concurrent(8)
                    .poll_interval(Duration::from_millis(200))
                    .open()
                    .await
                    .unwrap();
                if let Some((racers, wake_at, results)) = start {
                    let mut handles = Vec::new();
                    for n in 0..racers {
                        handles.push(
                            engine
                                .start(racer, format!("racer-{n:03}"), wake_at)
                                .await
                                .unwrap(),
                        );
                    }
                    let mut out = Vec::new();
                    for handle in handles {
                        let engine = handle.result().await.unwrap().unwrap();
                        out.push((handle.id().to_owned(), engine));
                    }
                    results.send(out).unwrap();
                }
                let _ = stop.await;
                engine.shutdown().await;
            });
        })
        .unwrap()
}

#[test]
fn two_engines_racing_for_the_same_due_timers_wake_each_execution_once() {
    if !pg::available() {
        return;
    }
    const RACERS: usize = 60;
    let schema = pg::Schema::new("race");
    let wake_at = SystemClock.now().as_millis() + 3_000;
    let (results, received) = std::sync::mpsc::channel();
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel();
    let (stop_b, stopped_b) = tokio::sync::oneshot::channel();
    let b = racing_engine("engine-b", schema.options(), None, stopped_b);
    let a = racing_engine(
        "engine-a",
        schema.options(),
        Some((RACERS, wake_at, results)),
        stopped_a,
    );
    let results = received
        .recv_timeout(Duration::from_secs(120))
        .expect("every racer finishes");
    let _ = (stop_a.send(()), stop_b.send(()));
    a.join().unwrap();
    b.join().unwrap();

    let wakes = WAKES.lock().unwrap().clone();
    assert_eq!(wakes.len(), RACERS);
    for (id, engine) in &results {
        assert_eq!(
            wakes[id],
            std::slice::from_ref(engine),
            "{id} woke more than once"
        );
    }
    let mut per_engine: HashMap<&str, usize> = HashMap::new();
    for (_, engine) in &results {
        *per_engine.entry(engine).or_default() += 1;
    }
    assert!(
        per_engine.len() == 2,
        "both engines took due timers: {per_engine:?}"
    );
}

static SLOW_STARTED: LazyLock<Notify> = LazyLock::new(Notify::new);
static SLOW_FINISH: LazyLock<Notify> = LazyLock::new(Notify::new);
static AFTER_RAN: AtomicUsize = AtomicUsize::new(0);

#[durable]
async fn long_step(ctx: Ctx, _input: ()) -> u32 {
    let first = ctx
        .step_infallible("slow", || async {
            SLOW_STARTED.notify_one();
            SLOW_FINISH.notified().await;
            1u32
        })
        .await;
    let second = ctx
        .step_infallible("after", || async {
            AFTER_RAN.fetch_add(1, Ordering::SeqCst);
            2u32
        })
        .await;
    first + second
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_after_the_lease_was_taken_over_is_refused_and_the_execution_dropped() {
    if !pg::available() {
        return;
    }
    let schema = pg::Schema::new("lease");
    let store = Arc::new(InstrumentedStore::new(
        PostgresStore::open(schema.options()).await.unwrap(),
    ));
    let engine = durable_core::EngineBuilder::with_store(store.clone())
        .register(long_step)
        .lease_ttl(Duration::from_secs(60))
        .open()
        .await
        .unwrap();
    let started = SLOW_STARTED.notified();
    engine.start(long_step, "victim", ()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .expect("the slow step starts");
    let before = store.inner().load("victim").await.unwrap().unwrap();
    let commits = store.counts().commits;

    // Another engine takes the lease over, as it would once this engine's had expired.
    let other = PostgresStore::open(schema.options()).await.unwrap();
    let later = SystemClock.now().saturating_add(Duration::from_secs(3_600));
    assert!(other
        .claim(
            "victim",
            42,
            later,
            later.saturating_add(Duration::from_secs(3_600))
        )
        .await
        .unwrap());

    SLOW_FINISH.notify_one();
    // Shutting down waits for the activation to end: its commit has been answered.
    engine.shutdown().await;
    assert_eq!(
        store.counts().commits,
        commits + 1,
        "one commit was tried, once"
    );
    assert_eq!(
        other.load("victim").await.unwrap(),
        Some(before),
        "the refused commit wrote nothing"
    );
    assert_eq!(
        AFTER_RAN.load(Ordering::SeqCst),
        0,
        "the execution was dropped"
    );
    assert!(
        !other
            .claim(
                "victim",
                43,
                later,
                later.saturating_add(Duration::from_secs(1))
            )
            .await
            .unwrap(),
        "the lease stays with the engine that took it over"
    );
    other.close().await.unwrap();
}

/// A `pg-worker` process and the lines it printed so far.
struct Worker {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Worker {
    fn spawn(schema: &str, trace: &std::path::Path, count: usize) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pg-worker"))
            .arg(pg::url())
            .arg(schema)
            .arg(trace)
            .arg(count.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the worker starts");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Worker {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads lines until one equals `line`; panics if the worker ends or `deadline`
    /// passes first.
    fn wait_for(&mut self, line: &str, deadline: Instant) {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(next) => {
                    let done = next == line;
                    self.seen.push(next);
                    if done {
                        return;
                    }
                }
                Err(e) => panic!(
                    "worker {} did not print {line:?} ({e}); last lines: {:?}",
                    self.pid(),
                    self.seen.iter().rev().take(3).collect::<Vec<_>>()
                ),
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The trace's effects: `(execution, step, attempt, pid)`.
fn effects(trace: &std::path::Path) -> Vec<(String, String, u32, u32)> {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.strip_prefix("effect ")?.split(' ');
            let id = parts.next()?.to_owned();
            let step = parts.next()?.to_owned();
            let attempt = parts.next()?.parse().ok()?;
            let pid = parts.next()?.parse().ok()?;
            Some((id, step, attempt, pid))
        })
        .collect()
}

#[test]
fn three_engine_processes_finish_every_execution_when_one_is_killed() {
    if !pg::available() {
        return;
    }
    const EXECUTIONS: usize = 1_000;
    let schema = pg::Schema::new("kill");
    let dir = std::env::temp_dir().join(format!("durable-pg-kill-{}", schema.0));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("trace");
    let mut workers: Vec<Worker> = (0..3)
        .map(|_| Worker::spawn(&schema.0, &trace, EXECUTIONS))
        .collect();
    let began = Instant::now();
    let deadline = began + Duration::from_secs(240);

    // Kill one worker in the middle: once it has run a share of the steps.
    let victim = workers[1].pid();
    loop {
        let all = effects(&trace);
        let by_victim = all.iter().filter(|e| e.3 == victim).count();
        if all.len() >= EXECUTIONS && by_victim >= 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workers made no progress: {} effects",
            all.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    eprintln!("killing worker {victim} after {:?}", began.elapsed());
    let mut killed = workers.remove(1);
    killed.child.kill().unwrap();
    let status = killed.child.wait().unwrap();
    assert!(!status.success(), "the victim was killed, not finished");

    let mut results: Vec<BTreeMap<String, u64>> = Vec::new();
    for worker in &mut workers {
        worker.wait_for("done", deadline);
        eprintln!("a survivor done {:?} after the kill", started.elapsed());
        let mut values = BTreeMap::new();
        for line in &worker.seen {
            if let Some(rest) = line.strip_prefix("result ") {
                let (id, value) = rest.split_once(' ').unwrap();
                values.insert(id.to_owned(), value.parse::<u64>().unwrap());
            }
        }
        results.push(values);
    }
    let expected: BTreeMap<String, u64> = (0..EXECUTIONS as u64)
        .map(|n| (format!("job-{n}"), (n * 2 + 1) * 3 + n))
        .collect();
    for values in &results {
        assert_eq!(
            *values, expected,
            "every execution has the crash-free result"
        );
    }

    // Step effects within their semantics: a step body ran again only after the killed
    // worker ran it and died before committing; an at-most-once attempt never twice.
    let all = effects(&trace);
    let mut runs: BTreeMap<(String, String), Vec<(u32, u32)>> = BTreeMap::new();
    for (id, step, attempt, pid) in &all {
        runs.entry((id.clone(), step.clone()))
            .or_default()
            .push((*attempt, *pid));
    }
    let mut rerun = 0;
    let mut taken_over = 0;
    for n in 0..EXECUTIONS {
        for step in ["a", "b", "c"] {
            let key = (format!("job-{n}"), step.to_owned());
            let runs = runs
                .get(&key)
                .unwrap_or_else(|| panic!("{key:?} never ran"));
            let (_, last) = runs.last().unwrap();
            assert!(
                runs[..runs.len() - 1].iter().all(|(_, pid)| *pid == victim),
                "{key:?} ran again though no run was interrupted: {runs:?}"
            );
            assert!(*last != victim || runs.len() == 1, "{key:?}: {runs:?}");
            if step == "b" {
                let mut attempts: Vec<u32> = runs.iter().map(|(a, _)| *a).collect();
                attempts.dedup();
                assert_eq!(
                    attempts.len(),
                    runs.len(),
                    "{key:?}: an at-most-once attempt ran twice: {runs:?}"
                );
            }
            rerun += runs.len() - 1;
        }
        let pids: Vec<u32> = ["a", "b", "c"]
            .iter()
            .flat_map(|step| &runs[&(format!("job-{n}"), step.to_string())])
            .map(|(_, pid)| *pid)
            .collect();
        if pids.contains(&victim) && pids.iter().any(|pid| *pid != victim) {
            taken_over += 1;
        }
    }
    assert!(
        taken_over > 0,
        "no execution the killed worker ran was finished by another"
    );
    eprintln!(
        "{} effects, {} by the killed worker, {taken_over} of its executions finished by others, {rerun} steps run again after the kill",
        all.len(),
        all.iter().filter(|e| e.3 == victim).count()
    );

    // Nothing is left running, and every execution completed.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = PostgresStore::open(schema.options()).await.unwrap();
        let completed = store
            .list(&durable_core::ListFilter::all().status(Status::Completed))
            .await
            .unwrap();
        assert_eq!(completed.len(), EXECUTIONS);
        store.close().await.unwrap();
    });
    drop(workers);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A child workflow of [`pg_parent`] (issue 13).
#[durable]
async fn pg_child(ctx: Ctx, n: u64) -> u64 {
    ctx.step_infallible("square", move || async move { n * n })
        .await
}

#[durable]
async fn pg_parent(ctx: Ctx, n: u64) -> Result<u64, durable_core::ChildError> {
    let a = ctx.call(pg_child, n).await?;
    let b = ctx.call(pg_child, n + 1).await?;
    Ok(a + b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_run_under_their_parent_and_wake_it() {
    let Some(store) = pg::temporary().await else {
        return;
    };
    let engine = Engine::builder(store)
        .register(pg_parent)
        .open()
        .await
        .unwrap();
    let handle = engine.start(pg_parent, "pg-parent", 3).await.unwrap();
    assert_eq!(handle.result().await.unwrap(), Ok(9 + 16));
    let children = engine
        .executions(&durable_core::ListFilter::all().parent("pg-parent"))
        .await
        .unwrap();
    assert_eq!(children.len(), 2);
    assert!(children.iter().all(|c| c.status == Status::Completed));
    let description = engine.describe("pg-parent").await.unwrap();
    assert_eq!(description.children.len(), 2);
    engine.shutdown().await;
}

/// A child of [`pg_batches`] that sleeps `minutes` (on the system clock) first.
#[durable]
async fn pg_nap(ctx: Ctx, minutes: u64) -> u64 {
    if minutes > 0 {
        ctx.sleep(std::time::Duration::from_secs(60 * minutes))
            .await
            .expect("a short sleep");
    }
    minutes
}

/// Batches on PostgreSQL (issue 13): a map of steps, then a race of children that the
/// first success ends, cancelling the children still asleep.
#[durable]
async fn pg_batches(ctx: Ctx, n: u64) -> (Vec<u64>, Vec<String>) {
    let squares = ctx
        .map("squares", 0..n as usize, |i: usize| async move {
            Ok((i * i) as u64)
        })
        .max_in_flight(4)
        .await;
    let race = ctx
        .map("race", vec![30, 0, 30], pg_nap)
        .completion(durable_core::Completion::first_success())
        .await;
    let statuses = race
        .items()
        .iter()
        .map(|item| format!("{:?}", item.status))
        .collect();
    (squares.succeeded().copied().collect(), statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_run_steps_and_children_and_cancel_the_rest() {
    let Some(store) = pg::temporary().await else {
        return;
    };
    let engine = Engine::builder(store)
        .register(pg_batches)
        .open()
        .await
        .unwrap();
    let (squares, race) = engine
        .start(pg_batches, "pg-batches", 10)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(squares, (0..10).map(|i| i * i).collect::<Vec<u64>>());
    assert_eq!(race, ["Cancelled", "Succeeded", "Cancelled"]);
    let children = engine
        .executions(&durable_core::ListFilter::all().parent("pg-batches"))
        .await
        .unwrap();
    assert_eq!(children.len(), 3);
    let cancelled = children
        .iter()
        .filter(|c| c.status == Status::Cancelled)
        .count();
    assert_eq!(cancelled, 2);
    engine.shutdown().await;
}
