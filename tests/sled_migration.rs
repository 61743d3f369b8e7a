//! A store written by the record format before operations (commit 5c9a776, kept as the
//! fixture `tests/fixtures/sled-format2`) opens with today's code: every record, input and
//! history entry reads back as written, the unfinished executions are found through the
//! unfinished index built when it opens, and an engine resumes them to their results.
//! A store of format 3 (commit d1ffaaa, `tests/fixtures/sled-format3`), whose running
//! executions had an index entry each, lists the same executions by status in format 4,
//! whose running lists index the executions that run from then on beside those entries,
//! and goes on listing them as they change.

use std::path::{Path, PathBuf};
use std::time::Duration;

use durable_core::{
    durable, Ctx, Engine, ListFilter, PointState, RetryPolicy, Status, StepError, Store, TestClock,
    Timestamp, Workflow,
};
use durable_store_sled::SledStore;
use serde::{Deserialize, Serialize};

mod copy_dir;
use copy_dir::copy_dir;

// The workflow as the fixture's generator wrote it, but for `step` being called
// `typed_step` since the step API's `Failure` errors.

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FixtureInput {
    steps: u32,
    sleep_secs: u64,
    fail_check: bool,
    panic: bool,
    hang: bool,
    at_most_once: bool,
    poll: bool,
    pad: String,
}

async fn hang_if(hang: bool) {
    if hang {
        std::future::pending::<()>().await;
    }
}

#[durable]
async fn fixture_flow(ctx: Ctx, input: FixtureInput) -> Result<u64, StepError<String>> {
    let mut total = 0u64;
    for i in 0..input.steps {
        let v = ctx
            .typed_step(
                "add",
                move || async move { Ok::<u64, String>(u64::from(i)) },
            )
            .await?;
        total += v;
    }
    if input.panic {
        panic!("fixture panic after {total}");
    }
    if input.poll {
        let polls = ctx
            .wait_for_condition("poll", 0u32, |n: u32| async move { n + 1 })
            .until(|n: &u32| *n >= 3)
            .backoff(RetryPolicy::fixed(Duration::from_secs(3600)).max_attempts(10))
            .await;
        total += u64::from(polls.unwrap_or(0));
    }
    let _ = ctx
        .sleep(Duration::from_secs(input.sleep_secs))
        .name("nap")
        .await;
    let fail = input.fail_check;
    let hang = input.hang;
    let checked = if input.at_most_once {
        ctx.typed_step("check", || async move {
            hang_if(hang).await;
            Ok::<u64, String>(7)
        })
        .at_most_once()
        .await?
    } else {
        ctx.typed_step("check", || async move {
            hang_if(hang).await;
            if fail {
                Err("check failed".to_string())
            } else {
                Ok::<u64, String>(7)
            }
        })
        .retry(RetryPolicy::fixed(Duration::from_secs(3600)).max_attempts(3))
        .await?
    };
    Ok(total + checked + input.pad.len() as u64)
}

/// The fingerprint the generator printed for `fixture_flow`.
const FIXTURE_FLOW_FINGERPRINT: u64 = 0x6ad5_bb23_f6ad_5f43;

/// The fixture's clock when it was written.
const WRITTEN_AT: u64 = 1_700_000_000_000;

/// A copy of fixture `name` in a fresh directory (the fixture itself is never written).
fn fixture_copy(name: &str) -> (tempdir::Dir, PathBuf) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempdir::Dir::new("durable-migration");
    copy_dir(&from, dir.path());
    let path = dir.path().to_path_buf();
    (dir, path)
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A directory removed when dropped.
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(prefix: &str) -> Self {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn ids(records: Vec<durable_core::ExecutionRecord>) -> Vec<String> {
    records.into_iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn every_record_of_a_format_2_store_reads_back_as_written() {
    let (_dir, path) = fixture_copy("sled-format2");
    let store = SledStore::open(&path).expect("a format-2 store opens");
    let at = |ms: u64| Some(Timestamp::from_millis(WRITTEN_AT + ms));
    // (id, status, seq, point, wake_at, history_next), as the generator printed them.
    let expected = [
        ("done-1", Status::Completed, 6, None, None, 6),
        ("long-history", Status::Completed, 33, None, None, 33),
        ("failed-1", Status::Failed, 3, Some(0), None, 3),
        (
            "sleeping-1",
            Status::Suspended,
            3,
            Some(2),
            at(3_600_000),
            3,
        ),
        ("big-input", Status::Suspended, 2, Some(2), at(7_200_000), 2),
        (
            "retrying-1",
            Status::Suspended,
            3,
            Some(4),
            at(3_600_000),
            3,
        ),
        ("polling-1", Status::Suspended, 2, Some(1), at(3_600_000), 2),
        ("started-1", Status::Completed, 5, None, None, 5),
        ("running-1", Status::Running, 3, Some(2), None, 3),
        ("parked-1", Status::Parked, 2, Some(0), None, 2),
    ];
    for (id, status, seq, point, wake_at, history_next) in expected {
        let record = store
            .load(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id}"));
        assert_eq!(
            (
                record.status,
                record.seq,
                record.position.as_ref().map(|p| p.point),
                record.wake_at,
                record.history_next
            ),
            (status, seq, point, wake_at, history_next),
            "{id}"
        );
        assert_eq!(
            record.created_at,
            Timestamp::from_millis(WRITTEN_AT),
            "{id}"
        );
        assert_eq!((record.parent, record.awaiting.len()), (None, 0), "{id}");
        let history = store.history(id).await.unwrap();
        assert_eq!(history.len() as u64, history_next, "{id}: every entry kept");
        assert!(
            history.iter().zip(0..).all(|(e, n)| e.number == n),
            "{id}: entries numbered from 0 without gaps"
        );
        assert!(store.load_input(id).await.unwrap().is_some(), "{id}");
    }
    let done = store.load("done-1").await.unwrap().unwrap();
    assert_eq!(done.output, Some(vec![118, 1, 1, 0, 10]));
    let failed = store.load("failed-1").await.unwrap().unwrap();
    assert_eq!(
        failed.message.as_deref(),
        Some("the workflow panicked: fixture panic after 1")
    );
    let polling = store.load("polling-1").await.unwrap().unwrap();
    assert!(matches!(
        polling.position.unwrap().state,
        PointState::Polling { attempt: 2, .. }
    ));
    let big: FixtureInput =
        durable_core::decode_value(&store.load_input("big-input").await.unwrap().unwrap()).unwrap();
    assert_eq!(big.pad, "x".repeat(1000), "a large input under its own key");

    let list = |status| {
        let store = &store;
        async move { ids(store.list(&ListFilter::all().status(status)).await.unwrap()) }
    };
    assert_eq!(list(Status::Running).await, ["running-1"]);
    assert_eq!(
        list(Status::Suspended).await,
        ["big-input", "polling-1", "retrying-1", "sleeping-1"]
    );
    assert_eq!(list(Status::Parked).await, ["parked-1"]);
    assert_eq!(ids(store.list(&ListFilter::all()).await.unwrap()).len(), 10);
    store.close().await.unwrap();

    // The migration happened once: a second open finds the index as it left it.
    let store = SledStore::open(&path).unwrap();
    assert_eq!(
        ids(store
            .list(&ListFilter::all().status(Status::Suspended))
            .await
            .unwrap())
        .len(),
        4
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn an_engine_over_a_format_2_store_keeps_every_execution_it_cannot_resume() {
    // The macro's lowering changed since the fixture was written, so the code fingerprint
    // of the same source differs and no execution may resume on it: they park, their data
    // intact, until the code that wrote them is registered.
    assert_ne!(
        <fixture_flow::Workflow as Workflow>::FINGERPRINT,
        FIXTURE_FLOW_FINGERPRINT,
        "the same fingerprint would let the fixture's executions resume: test that instead"
    );
    let (_dir, path) = fixture_copy("sled-format2");
    let clock = TestClock::new(Timestamp::from_millis(WRITTEN_AT));
    let engine = Engine::builder(SledStore::open(&path).unwrap())
        .register(fixture_flow)
        .clock(clock.clone())
        .shutdown_timeout(Duration::from_millis(100))
        .open()
        .await
        .unwrap();
    // Finished executions read as they were.
    let result = |id: &str| {
        let handle = engine.handle(fixture_flow, id);
        async move { handle.result().await }
    };
    assert_eq!(result("done-1").await.unwrap(), Ok(10));
    assert_eq!(result("long-history").await.unwrap(), Ok(435 + 7));
    // The running one parks at once; the sleeping ones when their timers fire.
    clock.advance(Duration::from_secs(24 * 3600));
    for id in [
        "running-1",
        "sleeping-1",
        "big-input",
        "polling-1",
        "retrying-1",
    ] {
        match result(id).await {
            // Frames written before layouts resume only on the same code fingerprint.
            Err(durable_core::Error::Parked { message, .. }) => {
                assert!(message.contains("fingerprint"), "{id}: {message}");
                assert!(
                    message.contains("written before layouts"),
                    "{id}: {message}"
                );
            }
            other => panic!("{id}: expected it parked, got {other:?}"),
        }
        let parked = engine.describe(id).await.unwrap();
        assert_eq!(parked.status, Status::Parked, "{id}");
        assert!(parked.point.is_some(), "{id}: its frame is kept");
    }
    engine.shutdown().await;
}

/// The executions of the format-3 fixture, as its generator wrote them: id, status, seq.
const FORMAT_3: &[(&str, Status, u64)] = &[
    ("running-created", Status::Running, 0),
    ("running-stepped", Status::Running, 3),
    ("running-ü\u{0}nul", Status::Running, 1),
    ("suspended", Status::Suspended, 2),
    ("parked", Status::Parked, 1),
    ("completed", Status::Completed, 2),
    ("failed", Status::Failed, 1),
    ("running-again", Status::Running, 2),
];

/// The ids `store` lists with `status`, a page of `page` at a time.
async fn listed(store: &SledStore, status: Status, page: usize) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let mut filter = ListFilter::default().status(status).limit(page);
        filter.after = ids.last().cloned();
        let records = store.list(&filter).await.expect("lists");
        assert!(records.iter().all(|r| r.status == status));
        let done = records.len() < page;
        ids.extend(records.into_iter().map(|r| r.id));
        if done {
            return ids;
        }
    }
}

/// The ids of the fixture's executions with `status`, in id order, after `changed`.
fn expected(status: Status, changed: &[(&str, Status)]) -> Vec<String> {
    let mut ids: Vec<String> = FORMAT_3
        .iter()
        .map(|&(id, status, _)| {
            let now = changed
                .iter()
                .find(|(c, _)| *c == id)
                .map_or(status, |c| c.1);
            (id, now)
        })
        .filter(|(_, now)| *now == status)
        .map(|(id, _)| id.to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_format_3_store_lists_its_executions_by_status_in_format_4() {
    let (_dir, path) = fixture_copy("sled-format3");
    let store = SledStore::open(&path).expect("a format-3 store opens");
    for &(id, status, seq) in FORMAT_3 {
        let record = store
            .load(id)
            .await
            .unwrap()
            .expect("every record is there");
        assert_eq!((record.status, record.seq), (status, seq), "{id:?}");
    }
    let n = FORMAT_3.iter().position(|e| e.0 == "suspended").unwrap();
    assert_eq!(
        store.load_input("suspended").await.unwrap(),
        Some(format!("input {n}").into_bytes())
    );
    let unfinished = [Status::Running, Status::Suspended, Status::Parked];
    for status in unfinished {
        for page in [1, 2, 100] {
            assert_eq!(
                listed(&store, status, page).await,
                expected(status, &[]),
                "{status:?}, pages of {page}"
            );
        }
    }
    assert_eq!(
        store.list(&ListFilter::all()).await.unwrap().len(),
        FORMAT_3.len()
    );

    // Changes after the migration: one running execution completes, the suspended one
    // wakes, a new one starts; listed so at once and after a reopen.
    let changed = [
        ("running-created", Status::Completed),
        ("suspended", Status::Running),
        ("new", Status::Running),
    ];
    for (id, status) in &changed[..2] {
        let old = store.load(id).await.unwrap().unwrap();
        let mut next = old.clone();
        next.seq += 1;
        next.status = *status;
        next.wake_at = None;
        store
            .commit(durable_core::Commit::new(next, old.seq))
            .await
            .expect("commits");
    }
    let new = durable_core::ExecutionRecord::new("new", "fixture_flow", 0xF1C5, Timestamp::EPOCH);
    store.create(new, Vec::new()).await.expect("creates");
    let with_new = |status| {
        let mut ids = expected(status, &changed);
        if status == Status::Running {
            ids.push("new".to_owned());
            ids.sort();
        }
        ids
    };
    let mut store = store;
    for reopened in [false, true] {
        if reopened {
            store.close().await.expect("closes");
            store = SledStore::open(&path).expect("reopens");
        }
        for status in unfinished {
            let listed = listed(&store, status, 2).await;
            assert_eq!(listed, with_new(status), "{status:?}, reopened: {reopened}");
        }
    }
    store.close().await.expect("closes");
}
