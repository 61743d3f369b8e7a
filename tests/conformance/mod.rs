//! The store conformance suite: what every [`Store`] must do, written once and run against
//! each store by [`store_conformance!`].
//!
//! Each check takes a fresh, empty store and panics on the first difference from the
//! contract in `durable_core::Store` (whose reference is `MemoryStore`). A new check is a
//! `pub async fn` here plus its name in the macro's list; an unlisted check is dead code,
//! which the lints refuse.

use std::sync::Arc;

use durable_core::{
    Commit, Created, Event, ExecutionRecord, HistoryEntry, ListFilter, PointState, Position,
    Status, Store, StoreError, Timestamp,
};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// A store as the checks receive it: shared, so that checks can spawn tasks on it.
pub type SharedStore = Arc<dyn Store>;

/// Runs every check against the store that `$make` builds, one `#[tokio::test]` each, in
/// a module named `$store`.
macro_rules! store_conformance {
    ($store:ident, $make:expr) => {
        $crate::conformance::store_conformance!(@checks $store, $make,
            create_then_load_round_trips_every_field,
            create_of_an_existing_id_returns_it_and_writes_nothing,
            unknown_ids_are_none_everywhere,
            a_commit_with_a_stale_seq_conflicts_and_writes_nothing,
            a_commit_on_a_missing_execution_conflicts_with_found_none,
            history_is_appended_in_order_and_pruned,
            due_returns_past_timers_earliest_first_within_the_limit,
            a_commit_moves_or_clears_the_timer,
            next_wake_is_the_earliest_timer,
            timers_after_reads_the_index_from_a_cursor,
            list_filters_by_status_and_workflow_in_id_order,
            claims_exclude_other_owners_until_expiry_or_release,
            ids_with_slashes_and_nuls_do_not_collide,
            concurrent_commits_of_many_executions_all_land,
            concurrent_commits_on_one_seq_let_exactly_one_win,
        );
    };
    (@checks $store:ident, $make:expr, $($check:ident),* $(,)?) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let store: $crate::conformance::SharedStore = ::std::sync::Arc::new($make);
                    $crate::conformance::$check(store).await;
                }
            )*
        }
    };
}
pub(crate) use store_conformance;

const T0: u64 = 1_000;

/// A fresh execution as an engine creates it.
fn record(id: &str) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_owned(),
        workflow: "order".into(),
        fingerprint: 0xfeed,
        seq: 0,
        status: Status::Running,
        position: None,
        wake_at: None,
        output: None,
        message: None,
        history_next: 0,
        created_at: Timestamp::from_millis(T0),
        updated_at: Timestamp::from_millis(T0),
    }
}

fn waking(id: &str, at: u64) -> ExecutionRecord {
    ExecutionRecord {
        wake_at: Some(Timestamp::from_millis(at)),
        ..record(id)
    }
}

/// `previous` after one more commit.
fn advanced(previous: &ExecutionRecord) -> ExecutionRecord {
    ExecutionRecord {
        seq: previous.seq + 1,
        updated_at: Timestamp::from_millis(T0 + previous.seq + 1),
        ..previous.clone()
    }
}

fn entry(number: u64) -> HistoryEntry {
    HistoryEntry {
        number,
        at: Timestamp::from_millis(T0 + number),
        point: Some(number as u32),
        event: Event::StepSucceeded {
            name: format!("step-{number}"),
            attempt: 1,
        },
    }
}

fn entries(numbers: impl IntoIterator<Item = u64>) -> Vec<HistoryEntry> {
    numbers.into_iter().map(entry).collect()
}

/// The commit that stores `record`, based on the seq before it.
fn commit(record: &ExecutionRecord, history: Vec<HistoryEntry>, prune: u64) -> Commit {
    Commit {
        expected_seq: record.seq - 1,
        record: record.clone(),
        history,
        prune_history_below: prune,
    }
}

fn at(millis: u64) -> Timestamp {
    Timestamp::from_millis(millis)
}

fn timers(pairs: &[(u64, &str)]) -> Vec<(Timestamp, String)> {
    pairs
        .iter()
        .map(|&(t, id)| (at(t), id.to_owned()))
        .collect()
}

async fn create_new(store: &SharedStore, record: ExecutionRecord, input: &[u8]) {
    let id = record.id.clone();
    match store.create(record, input.to_vec()).await {
        Ok(Created::New) => {}
        other => panic!("creating {id:?}: expected Created::New, got {other:?}"),
    }
}

fn ids(records: &[ExecutionRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

pub async fn create_then_load_round_trips_every_field(store: SharedStore) {
    let full = ExecutionRecord {
        id: "full".into(),
        workflow: "shipping".into(),
        fingerprint: u64::MAX - 3,
        seq: 0,
        status: Status::Suspended,
        position: Some(Position {
            point: 3,
            frame: vec![b'f', 1, 1, 0, 0xff, 7],
            state: PointState::Retrying { attempt: 2 },
        }),
        wake_at: Some(at(5_000)),
        output: Some(vec![1, 2, 3]),
        message: Some("waiting for the carrier".into()),
        history_next: 9,
        created_at: at(17),
        updated_at: at(u64::MAX),
    };
    let completed = ExecutionRecord {
        id: "completed".into(),
        status: Status::Completed,
        position: Some(Position {
            point: 0,
            frame: Vec::new(),
            state: PointState::Completed {
                outcome: vec![0; 300],
            },
        }),
        ..record("completed")
    };
    let started = ExecutionRecord {
        status: Status::Parked,
        position: Some(Position {
            point: u32::MAX,
            frame: vec![9; 70_000],
            state: PointState::Started { attempt: 1 },
        }),
        ..record("started")
    };
    for (r, input) in [
        (&full, b"full input".to_vec()),
        (&completed, Vec::new()),
        (&started, vec![0; 100_000]),
    ] {
        create_new(&store, r.clone(), &input).await;
        assert_eq!(store.load(&r.id).await.unwrap().as_ref(), Some(r));
        assert_eq!(store.load_input(&r.id).await.unwrap(), Some(input));
    }
}

pub async fn create_of_an_existing_id_returns_it_and_writes_nothing(store: SharedStore) {
    let original = record("x");
    create_new(&store, original.clone(), b"first").await;
    let second = ExecutionRecord {
        workflow: "other".into(),
        ..waking("x", 10)
    };
    let created = store.create(second, b"second".to_vec()).await.unwrap();
    assert_eq!(created, Created::Existing(Box::new(original.clone())));
    assert_eq!(store.load("x").await.unwrap(), Some(original));
    assert_eq!(
        store.load_input("x").await.unwrap(),
        Some(b"first".to_vec())
    );
    assert_eq!(store.due(at(u64::MAX), 10).await.unwrap(), []);
}

pub async fn unknown_ids_are_none_everywhere(store: SharedStore) {
    create_new(&store, record("known"), b"in").await;
    assert_eq!(store.load("unknown").await.unwrap(), None);
    assert_eq!(store.load_input("unknown").await.unwrap(), None);
    assert_eq!(store.history("unknown").await.unwrap(), []);
    assert_eq!(
        store.load("know").await.unwrap(),
        None,
        "no prefix matching"
    );
}

pub async fn a_commit_with_a_stale_seq_conflicts_and_writes_nothing(store: SharedStore) {
    create_new(&store, waking("x", 10), b"in").await;
    let first = ExecutionRecord {
        wake_at: Some(at(20)),
        ..advanced(&waking("x", 10))
    };
    store.commit(commit(&first, entries([0]), 0)).await.unwrap();

    let stale = Commit {
        record: ExecutionRecord {
            status: Status::Failed,
            wake_at: Some(at(5)),
            message: Some("should not be written".into()),
            ..advanced(&waking("x", 10))
        },
        expected_seq: 0,
        history: entries([1]),
        prune_history_below: 1,
    };
    match store.commit(stale).await {
        Err(StoreError::Conflict {
            id,
            expected,
            found,
        }) => {
            assert_eq!((id.as_str(), expected, found), ("x", 0, Some(1)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.load("x").await.unwrap(), Some(first));
    assert_eq!(store.history("x").await.unwrap(), entries([0]));
    assert_eq!(
        store.due(at(u64::MAX), 10).await.unwrap(),
        timers(&[(20, "x")])
    );
}

pub async fn a_commit_on_a_missing_execution_conflicts_with_found_none(store: SharedStore) {
    let ghost = ExecutionRecord {
        seq: 4,
        ..waking("ghost", 10)
    };
    match store.commit(commit(&ghost, entries([0]), 0)).await {
        Err(StoreError::Conflict {
            id,
            expected,
            found,
        }) => assert_eq!((id.as_str(), expected, found), ("ghost", 3, None)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.load("ghost").await.unwrap(), None);
    assert_eq!(store.history("ghost").await.unwrap(), []);
    assert_eq!(store.due(at(u64::MAX), 10).await.unwrap(), []);
    assert_eq!(store.next_wake().await.unwrap(), None);
}

pub async fn history_is_appended_in_order_and_pruned(store: SharedStore) {
    create_new(&store, record("x"), b"").await;
    create_new(&store, record("y"), b"").await;
    let mut x = record("x");
    let mut y = record("y");

    x = advanced(&x);
    store.commit(commit(&x, entries([0, 1]), 0)).await.unwrap();
    y = advanced(&y);
    store.commit(commit(&y, entries([0]), 0)).await.unwrap();
    x = advanced(&x);
    store.commit(commit(&x, entries([2]), 0)).await.unwrap();
    assert_eq!(store.history("x").await.unwrap(), entries(0..3));

    x = advanced(&x);
    store.commit(commit(&x, entries([3, 4]), 2)).await.unwrap();
    assert_eq!(store.history("x").await.unwrap(), entries(2..5));
    x = advanced(&x);
    store.commit(commit(&x, Vec::new(), 4)).await.unwrap();
    assert_eq!(store.history("x").await.unwrap(), entries([4]));
    x = advanced(&x);
    store.commit(commit(&x, entries([5, 6]), 6)).await.unwrap();
    assert_eq!(
        store.history("x").await.unwrap(),
        entries([6]),
        "entries below the prune line are dropped even when the same commit adds them"
    );
    assert_eq!(store.history("y").await.unwrap(), entries([0]));
}

pub async fn due_returns_past_timers_earliest_first_within_the_limit(store: SharedStore) {
    for r in [
        waking("a", 30),
        waking("d", 20),
        waking("b", 10),
        waking("c", 20),
        waking("late", 31),
        record("never"),
    ] {
        create_new(&store, r, b"").await;
    }
    let expected = timers(&[(10, "b"), (20, "c"), (20, "d"), (30, "a")]);
    assert_eq!(store.due(at(30), 10).await.unwrap(), expected);
    assert_eq!(store.due(at(30), 2).await.unwrap(), expected[..2]);
    assert_eq!(store.due(at(30), 0).await.unwrap(), []);
    assert_eq!(store.due(at(9), 10).await.unwrap(), []);
    assert_eq!(store.due(at(10), 10).await.unwrap(), expected[..1]);
    assert_eq!(store.due(at(u64::MAX), 100).await.unwrap().len(), 5);
}

pub async fn a_commit_moves_or_clears_the_timer(store: SharedStore) {
    create_new(&store, waking("x", 10), b"").await;
    create_new(&store, waking("other", 15), b"").await;
    let moved = ExecutionRecord {
        wake_at: Some(at(50)),
        ..advanced(&waking("x", 10))
    };
    store.commit(commit(&moved, Vec::new(), 0)).await.unwrap();
    assert_eq!(
        store.due(at(20), 10).await.unwrap(),
        timers(&[(15, "other")])
    );
    assert_eq!(
        store.due(at(50), 10).await.unwrap(),
        timers(&[(15, "other"), (50, "x")])
    );

    let kept = advanced(&moved);
    store.commit(commit(&kept, Vec::new(), 0)).await.unwrap();
    assert_eq!(
        store.due(at(50), 10).await.unwrap(),
        timers(&[(15, "other"), (50, "x")]),
        "an unchanged wake_at stays indexed"
    );

    let cleared = ExecutionRecord {
        wake_at: None,
        status: Status::Completed,
        ..advanced(&kept)
    };
    store.commit(commit(&cleared, Vec::new(), 0)).await.unwrap();
    assert_eq!(
        store.due(at(u64::MAX), 10).await.unwrap(),
        timers(&[(15, "other")])
    );

    let set_again = ExecutionRecord {
        wake_at: Some(at(5)),
        ..advanced(&cleared)
    };
    store
        .commit(commit(&set_again, Vec::new(), 0))
        .await
        .unwrap();
    assert_eq!(
        store.due(at(u64::MAX), 10).await.unwrap(),
        timers(&[(5, "x"), (15, "other")])
    );
}

pub async fn next_wake_is_the_earliest_timer(store: SharedStore) {
    assert_eq!(store.next_wake().await.unwrap(), None);
    create_new(&store, record("none"), b"").await;
    assert_eq!(store.next_wake().await.unwrap(), None);
    create_new(&store, waking("a", 30), b"").await;
    create_new(&store, waking("b", 10), b"").await;
    assert_eq!(store.next_wake().await.unwrap(), Some(at(10)));
    let later = ExecutionRecord {
        wake_at: Some(at(100)),
        ..advanced(&waking("b", 10))
    };
    store.commit(commit(&later, Vec::new(), 0)).await.unwrap();
    assert_eq!(store.next_wake().await.unwrap(), Some(at(30)));
}

pub async fn timers_after_reads_the_index_from_a_cursor(store: SharedStore) {
    for (id, at) in [("b", 10), ("a", 10), ("a\0", 10), ("c", 20), ("d", 30)] {
        store.create(waking(id, at), Vec::new()).await.unwrap();
    }
    let t = Timestamp::from_millis;
    let entry = |at: u64, id: &str| (t(at), id.to_owned());
    let all = store.timers_after(None, t(u64::MAX), 100).await.unwrap();
    assert_eq!(
        all,
        [
            entry(10, "a"),
            entry(10, "a\0"),
            entry(10, "b"),
            entry(20, "c"),
            entry(30, "d")
        ]
    );
    assert_eq!(store.timers_after(None, t(10), 2).await.unwrap(), all[..2]);
    let after = Some((t(10), "a"));
    assert_eq!(
        store.timers_after(after, t(20), 100).await.unwrap(),
        all[1..4]
    );
    let after = Some((t(10), "b"));
    assert_eq!(store.timers_after(after, t(19), 100).await.unwrap(), []);
    let after = Some((t(15), "zzz"));
    assert_eq!(
        store.timers_after(after, t(99), 1).await.unwrap(),
        all[3..4]
    );
    let after = Some((t(30), "d"));
    assert_eq!(store.timers_after(after, t(u64::MAX), 9).await.unwrap(), []);
    assert_eq!(store.timers_after(None, t(99), 0).await.unwrap(), []);
}

pub async fn list_filters_by_status_and_workflow_in_id_order(store: SharedStore) {
    let make = |id: &str, workflow: &str, status| ExecutionRecord {
        workflow: workflow.into(),
        status,
        ..record(id)
    };
    for r in [
        make("d", "w1", Status::Running),
        make("b", "w2", Status::Completed),
        make("a", "w1", Status::Running),
        make("c", "w1", Status::Completed),
        make("e", "w2", Status::Failed),
    ] {
        create_new(&store, r, b"").await;
    }
    let list = |status, workflow: Option<&str>, limit| {
        let filter = ListFilter {
            status,
            workflow: workflow.map(str::to_owned),
            limit,
        };
        let store = store.clone();
        async move { store.list(&filter).await.unwrap() }
    };
    let all = list(None, None, None).await;
    assert_eq!(ids(&all), ["a", "b", "c", "d", "e"]);
    assert_eq!(all[1], make("b", "w2", Status::Completed));
    assert_eq!(
        ids(&list(Some(Status::Completed), None, None).await),
        ["b", "c"]
    );
    assert_eq!(ids(&list(None, Some("w1"), None).await), ["a", "c", "d"]);
    assert_eq!(
        ids(&list(Some(Status::Running), Some("w1"), None).await),
        ["a", "d"]
    );
    assert_eq!(ids(&list(None, None, Some(2)).await), ["a", "b"]);
    assert_eq!(
        ids(&list(None, Some("w2"), Some(1)).await),
        ["b"],
        "the limit counts matches, not scanned records"
    );
    assert_eq!(ids(&list(None, None, Some(0)).await), Vec::<&str>::new());
    assert_eq!(
        ids(&list(Some(Status::Parked), None, None).await),
        Vec::<&str>::new()
    );

    let done = ExecutionRecord {
        status: Status::Completed,
        ..advanced(&make("a", "w1", Status::Running))
    };
    store.commit(commit(&done, Vec::new(), 0)).await.unwrap();
    assert_eq!(
        ids(&list(Some(Status::Completed), None, None).await),
        ["a", "b", "c"]
    );
}

pub async fn claims_exclude_other_owners_until_expiry_or_release(store: SharedStore) {
    create_new(&store, record("a"), b"").await;
    create_new(&store, record("b"), b"").await;
    assert!(store.claim("a", 1, at(0), at(100)).await.unwrap());
    assert!(
        store.claim("b", 2, at(0), at(100)).await.unwrap(),
        "leases are per execution"
    );
    assert!(!store.claim("a", 2, at(50), at(150)).await.unwrap());
    assert!(
        store.claim("a", 1, at(60), at(160)).await.unwrap(),
        "the holder renews"
    );
    assert!(!store.claim("a", 2, at(159), at(200)).await.unwrap());
    assert!(
        store.claim("a", 2, at(161), at(200)).await.unwrap(),
        "an expired lease is taken over"
    );
    store.release("a", 1).await.unwrap();
    assert!(
        !store.claim("a", 3, at(170), at(300)).await.unwrap(),
        "release by a non-holder does nothing"
    );
    store.release("a", 2).await.unwrap();
    assert!(store.claim("a", 3, at(170), at(300)).await.unwrap());
    store.release("never-claimed", 9).await.unwrap();
}

pub async fn ids_with_slashes_and_nuls_do_not_collide(store: SharedStore) {
    let tricky = [
        "a", "a/", "a/b", "a\0", "a\0b", "a\0\u{1}", "a\u{1}", "/", "\0", "\0\0", "h/a", "é",
    ];
    for (i, id) in tricky.iter().enumerate() {
        let i = i as u64;
        create_new(&store, waking(id, 100 + i), id.as_bytes()).await;
        let next = ExecutionRecord {
            message: Some(format!("{id:?}")),
            ..advanced(&waking(id, 100 + i))
        };
        store
            .commit(commit(&next, entries(0..=i), 0))
            .await
            .unwrap();
    }
    for (i, id) in tricky.iter().enumerate() {
        let loaded = store.load(id).await.unwrap().unwrap();
        assert_eq!((loaded.id.as_str(), loaded.seq), (*id, 1));
        assert_eq!(loaded.message, Some(format!("{id:?}")));
        assert_eq!(
            store.load_input(id).await.unwrap(),
            Some(id.as_bytes().to_vec())
        );
        assert_eq!(
            store.history(id).await.unwrap(),
            entries(0..=i as u64),
            "history of {id:?}"
        );
    }
    let mut sorted = tricky.to_vec();
    sorted.sort();
    assert_eq!(
        ids(&store.list(&ListFilter::default()).await.unwrap()),
        sorted
    );
    let due = store.due(at(u64::MAX), 100).await.unwrap();
    let expected: Vec<_> = tricky
        .iter()
        .enumerate()
        .map(|(i, id)| (at(100 + i as u64), id.to_string()))
        .collect();
    assert_eq!(due, expected);

    // Pruning all of one id's history must leave its neighbours' alone.
    let pruned = advanced(&ExecutionRecord {
        message: Some(format!("{:?}", "a")),
        ..advanced(&waking("a", 100))
    });
    store
        .commit(commit(&pruned, Vec::new(), 1000))
        .await
        .unwrap();
    assert_eq!(store.history("a").await.unwrap(), []);
    for (i, id) in tricky.iter().enumerate().skip(1) {
        assert_eq!(store.history(id).await.unwrap().len(), i + 1, "{id:?}");
    }
}

pub async fn concurrent_commits_of_many_executions_all_land(store: SharedStore) {
    const EXECUTIONS: u64 = 50;
    const COMMITS: u64 = 3;
    let start = Arc::new(Barrier::new(EXECUTIONS as usize));
    let mut tasks = JoinSet::new();
    for n in 0..EXECUTIONS {
        let (store, start) = (store.clone(), start.clone());
        tasks.spawn(async move {
            let id = format!("exec-{n:02}");
            create_new(&store, waking(&id, n), b"in").await;
            start.wait().await;
            let mut current = waking(&id, n);
            for c in 0..COMMITS {
                current = ExecutionRecord {
                    wake_at: Some(at(1_000 + n * 10 + c)),
                    history_next: c + 1,
                    ..advanced(&current)
                };
                store.commit(commit(&current, entries([c]), 0)).await?;
            }
            Ok::<_, StoreError>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task panicked").expect("commit failed");
    }
    for n in 0..EXECUTIONS {
        let id = format!("exec-{n:02}");
        let loaded = store.load(&id).await.unwrap().unwrap();
        assert_eq!(
            (loaded.seq, loaded.history_next),
            (COMMITS, COMMITS),
            "{id}"
        );
        assert_eq!(store.history(&id).await.unwrap(), entries(0..COMMITS));
    }
    let due = store.due(at(u64::MAX), 1000).await.unwrap();
    assert_eq!(due.len(), EXECUTIONS as usize, "one timer per execution");
    assert!(due.iter().all(
        |(t, id)| id[5..].parse::<u64>().unwrap() * 10 + 1_000 + COMMITS - 1 == t.as_millis()
    ));
}

pub async fn concurrent_commits_on_one_seq_let_exactly_one_win(store: SharedStore) {
    const EXECUTIONS: usize = 20;
    const RIVALS: usize = 2;
    for n in 0..EXECUTIONS {
        create_new(&store, record(&format!("race-{n}")), b"").await;
    }
    let start = Arc::new(Barrier::new(EXECUTIONS * RIVALS));
    let mut tasks = JoinSet::new();
    for n in 0..EXECUTIONS {
        for rival in 0..RIVALS {
            let (store, start) = (store.clone(), start.clone());
            tasks.spawn(async move {
                let id = format!("race-{n}");
                let mine = ExecutionRecord {
                    message: Some(format!("rival {rival}")),
                    wake_at: Some(at(10 + rival as u64)),
                    ..advanced(&record(&id))
                };
                start.wait().await;
                let result = store
                    .commit(commit(&mine, entries([rival as u64]), 0))
                    .await;
                (id, rival, result)
            });
        }
    }
    let mut winners = vec![Vec::new(); EXECUTIONS];
    while let Some(joined) = tasks.join_next().await {
        let (id, rival, result) = joined.expect("task panicked");
        let n: usize = id[5..].parse().unwrap();
        match result {
            Ok(()) => winners[n].push(rival),
            Err(StoreError::Conflict {
                expected: 0,
                found: Some(1),
                ..
            }) => {}
            Err(other) => panic!("{id}: unexpected error {other}"),
        }
    }
    for (n, won) in winners.iter().enumerate() {
        let id = format!("race-{n}");
        assert_eq!(won.len(), 1, "{id}: winners {won:?}");
        let winner = won[0] as u64;
        let loaded = store.load(&id).await.unwrap().unwrap();
        assert_eq!(loaded.message, Some(format!("rival {winner}")), "{id}");
        assert_eq!(store.history(&id).await.unwrap(), entries([winner]), "{id}");
        assert_eq!(
            store
                .due(at(u64::MAX), 1000)
                .await
                .unwrap()
                .iter()
                .filter(|(_, due)| *due == id)
                .map(|(t, _)| t.as_millis())
                .collect::<Vec<_>>(),
            [10 + winner],
            "{id}: only the winner's timer"
        );
    }
}
