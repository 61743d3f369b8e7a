//! The store conformance suite: what every [`Store`] must do,
//! written once and run against each store by [`store_conformance!`].
//!
//! Each check takes a fresh, empty store and panics on the first difference from the
//! contract in [`Store`] (whose reference is [`MemoryStore`](crate::MemoryStore)). A new
//! check is a `pub async fn` here plus its name in the macro's list; an unlisted check is
//! dead code, which the lints refuse.
//!
//! A store crate runs the suite from one integration test file; its dev-dependencies
//! need `durable-core` with the `test-support` feature and `tokio` with the `macros` and
//! `rt-multi-thread` features:
//!
//! ```ignore
//! durable_core::store_conformance!(my_store, my_crate::MyStore::open_temporary().await?);
//! ```

use std::sync::Arc;

use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::{
    Acquired, Commit, Created, Delivered, Delivery, Event, ExecutionRecord, Expect, HistoryEntry,
    ListFilter, OperationAction, OperationChange, OperationKind, OperationRecord, OperationRef,
    OperationState, ParentLink, PointState, Position, Settlement, Status, Store, StoreError,
    Timestamp,
};

/// A store as the checks receive it: shared, so that checks can spawn tasks on it.
pub type SharedStore = Arc<dyn Store>;

/// Runs every check of the store conformance suite against the store that `$make`
/// builds (an expression evaluated in an `async` test, so it may `.await`), one
/// `#[tokio::test]` each, in a module named `$store`. Each check gets a fresh store and
/// closes it at the end.
#[macro_export]
macro_rules! store_conformance {
    ($store:ident, $make:expr) => {
        $crate::store_conformance!(@checks $store, $make,
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
            list_pages_with_after_and_limit,
            unfinished_statuses_list_exactly_the_matching_executions,
            delete_removes_everything_of_one_execution,
            operations_are_written_only_when_their_conditions_hold,
            tokens_are_unique_and_follow_their_operation,
            deliveries_settle_a_pending_operation_once,
            a_delivery_wakes_an_execution_suspended_awaiting_it,
            a_delivery_to_a_finished_execution_is_refused,
            a_delivery_at_or_past_the_deadline_is_refused,
            a_settled_operation_of_a_finished_execution_says_how_it_was_settled,
            a_commit_that_awaits_a_settled_operation_conflicts,
            commit_deliveries_reach_other_executions_and_report_woken,
            concurrent_deliveries_to_one_operation_let_exactly_one_settle,
            a_delivery_racing_a_suspending_commit_never_strands_the_execution,
            a_commit_after_a_lost_lease_is_refused,
            acquire_claims_ready_executions_for_one_owner,
            concurrent_acquires_never_hand_out_an_execution_twice,
            renew_keeps_held_leases_and_reports_lost_ones,
            recover_on_a_working_store_changes_nothing,
            layouts_are_kept_once_per_fingerprint,
        );
    };
    (@checks $store:ident, $make:expr, $($check:ident),* $(,)?) => {
        mod $store {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let store: $crate::test_support::conformance::SharedStore = ::std::sync::Arc::new($make);
                    $crate::test_support::conformance::$check(store.clone()).await;
                    $crate::test_support::conformance::close(store).await;
                }
            )*
        }
    };
}

/// Closes a store after a check.
pub async fn close(store: SharedStore) {
    store.close().await.expect("the store closes");
}

const T0: u64 = 1_000;

/// A fresh execution as an engine creates it.
fn record(id: &str) -> ExecutionRecord {
    ExecutionRecord::new(id, "order", 0xfeed, Timestamp::from_millis(T0))
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
        operations: Vec::new(),
        deliveries: Vec::new(),
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
        parent: Some(ParentLink {
            execution: "the-parent".into(),
            operation: "p3/7".into(),
        }),
        awaiting: vec!["cb-1".into(), "child/2".into()],
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

/// A layout's first description stays; fingerprints at both ends of `u64` are distinct
/// keys; concurrent saves of one layout leave one description.
pub async fn layouts_are_kept_once_per_fingerprint(store: SharedStore) {
    assert_eq!(store.layout(7).await.unwrap(), None);
    store.save_layout(7, b"first".to_vec()).await.unwrap();
    store.save_layout(7, b"second".to_vec()).await.unwrap();
    assert_eq!(store.layout(7).await.unwrap(), Some(b"first".to_vec()));
    for (layout, description) in [(0, &b"zero"[..]), (u64::MAX, b"max"), (1 << 63, b"top")] {
        store
            .save_layout(layout, description.to_vec())
            .await
            .unwrap();
    }
    assert_eq!(store.layout(0).await.unwrap(), Some(b"zero".to_vec()));
    assert_eq!(store.layout(u64::MAX).await.unwrap(), Some(b"max".to_vec()));
    assert_eq!(store.layout(1 << 63).await.unwrap(), Some(b"top".to_vec()));
    let saves = (0..8u8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.save_layout(99, vec![i; 3]).await })
    });
    for save in saves {
        save.await.unwrap().unwrap();
    }
    let kept = store.layout(99).await.unwrap().expect("one description");
    assert!(
        kept.len() == 3 && kept.iter().all(|b| *b == kept[0]),
        "{kept:?}"
    );
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
        operations: Vec::new(),
        deliveries: Vec::new(),
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
        let mut filter = ListFilter::all();
        if let Some(status) = status {
            filter = filter.status(status);
        }
        if let Some(workflow) = workflow {
            filter = filter.workflow(workflow);
        }
        if let Some(limit) = limit {
            filter = filter.limit(limit);
        }
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
            Ok(_) => winners[n].push(rival),
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

fn list_ids(records: Vec<ExecutionRecord>) -> Vec<String> {
    records.into_iter().map(|r| r.id).collect()
}

pub async fn list_pages_with_after_and_limit(store: SharedStore) {
    for id in ["e", "a", "c", "b", "d"] {
        let status = if id == "c" {
            Status::Completed
        } else {
            Status::Running
        };
        create_new(
            &store,
            ExecutionRecord {
                status,
                ..record(id)
            },
            b"",
        )
        .await;
    }
    let page = |filter: ListFilter| {
        let store = store.clone();
        async move { list_ids(store.list(&filter).await.unwrap()) }
    };
    assert_eq!(page(ListFilter::all().limit(2)).await, ["a", "b"]);
    assert_eq!(
        page(ListFilter::all().after("b").limit(2)).await,
        ["c", "d"]
    );
    assert_eq!(page(ListFilter::all().after("d").limit(2)).await, ["e"]);
    assert_eq!(
        page(ListFilter::all().after("e")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        page(ListFilter::all().after("bb")).await,
        ["c", "d", "e"],
        "the cursor need not be an existing id"
    );
    let running = ListFilter::all().status(Status::Running);
    assert_eq!(page(running.clone().limit(2)).await, ["a", "b"]);
    assert_eq!(page(running.clone().after("b").limit(2)).await, ["d", "e"]);
    assert_eq!(page(running.after("e")).await, Vec::<String>::new());
}

pub async fn unfinished_statuses_list_exactly_the_matching_executions(store: SharedStore) {
    let statuses = [
        Status::Running,
        Status::Suspended,
        Status::Completed,
        Status::Failed,
        Status::Parked,
        Status::Cancelled,
    ];
    // Every execution goes through a different walk of statuses, so each unfinished
    // status is entered and left by commits.
    let walks: [&[Status]; 7] = [
        &[Status::Running],
        &[Status::Running, Status::Suspended],
        &[Status::Running, Status::Suspended, Status::Running],
        &[Status::Running, Status::Suspended, Status::Completed],
        &[Status::Running, Status::Failed],
        // Cancelled while it waits: it leaves the timer and unfinished indexes.
        &[Status::Running, Status::Suspended, Status::Cancelled],
        &[
            Status::Running,
            Status::Parked,
            Status::Running,
            Status::Parked,
        ],
    ];
    let mut last = Vec::new();
    for (n, walk) in walks.iter().enumerate() {
        for copy in 0..3 {
            let id = format!("w{n}-{copy}");
            create_new(&store, record(&id), b"").await;
            let mut current = record(&id);
            for status in &walk[1..] {
                current = ExecutionRecord {
                    status: *status,
                    wake_at: (*status == Status::Suspended).then(|| at(100)),
                    ..advanced(&current)
                };
                store.commit(commit(&current, Vec::new(), 0)).await.unwrap();
            }
            last.push(current);
        }
    }
    for status in statuses {
        let mut expected: Vec<String> = last
            .iter()
            .filter(|r| r.status == status)
            .map(|r| r.id.clone())
            .collect();
        expected.sort();
        let listed = store.list(&ListFilter::all().status(status)).await.unwrap();
        assert!(listed.iter().all(|r| r.status == status));
        assert_eq!(list_ids(listed), expected, "{status:?}");
    }
    store.delete("w1-0").await.unwrap();
    let suspended = list_ids(
        store
            .list(&ListFilter::all().status(Status::Suspended))
            .await
            .unwrap(),
    );
    assert_eq!(
        suspended,
        ["w1-1", "w1-2"],
        "a deleted execution leaves the index"
    );
}

fn operation(execution: &str, key: &str, token: Option<&str>) -> OperationRecord {
    OperationRecord {
        execution: execution.into(),
        key: key.into(),
        kind: OperationKind::Callback {
            timeout_at: Some(at(9_000)),
            heartbeat_timeout_ms: None,
        },
        name: format!("callback {key}"),
        token: token.map(str::to_owned),
        state: OperationState::Pending,
        heartbeat_at: None,
        created_at: at(T0),
        updated_at: at(T0),
    }
}

fn put(expect: Expect, op: &OperationRecord) -> OperationChange {
    OperationChange {
        key: op.key.clone(),
        expect,
        action: OperationAction::Put(Box::new(op.clone())),
    }
}

fn change(key: &str, expect: Expect, action: OperationAction) -> OperationChange {
    OperationChange {
        key: key.into(),
        expect,
        action,
    }
}

/// The commit that stores `record` with operation changes.
fn commit_ops(record: &ExecutionRecord, operations: Vec<OperationChange>) -> Commit {
    Commit {
        operations,
        ..commit(record, Vec::new(), 0)
    }
}

fn settle(to: OperationRef, state: OperationState, when: u64) -> Delivery {
    Delivery {
        to,
        settlement: Settlement::Settle(state),
        at: at(when),
    }
}

fn token(token: &str) -> OperationRef {
    OperationRef::Token(token.into())
}

fn succeeded(payload: &[u8]) -> OperationState {
    OperationState::Succeeded {
        payload: payload.to_vec(),
    }
}

fn expect_operation_conflict(result: Result<crate::Committed, StoreError>, key: &str) {
    match result {
        Err(StoreError::OperationConflict { key: k, .. }) => assert_eq!(k, key),
        other => panic!("expected an operation conflict on {key:?}, got {other:?}"),
    }
}

/// Creates `id` and commits operations `ops` (all absent before); returns the record.
async fn with_operations(
    store: &SharedStore,
    id: &str,
    ops: &[OperationRecord],
) -> ExecutionRecord {
    create_new(store, record(id), b"").await;
    let next = advanced(&record(id));
    let changes = ops.iter().map(|op| put(Expect::Absent, op)).collect();
    store.commit(commit_ops(&next, changes)).await.unwrap();
    next
}

pub async fn delete_removes_everything_of_one_execution(store: SharedStore) {
    for id in ["x", "x/", "x\0"] {
        create_new(&store, waking(id, 50), id.as_bytes()).await;
        let next = ExecutionRecord {
            wake_at: Some(at(60)),
            history_next: 3,
            ..advanced(&waking(id, 50))
        };
        let ops = vec![
            put(
                Expect::Absent,
                &operation(id, "a", Some(&format!("tok-{id}"))),
            ),
            put(Expect::Absent, &operation(id, "b", None)),
        ];
        store
            .commit(Commit {
                operations: ops,
                ..commit(&next, entries(0..3), 0)
            })
            .await
            .unwrap();
    }
    assert!(store.delete("x").await.unwrap());
    assert_eq!(store.load("x").await.unwrap(), None);
    assert_eq!(store.load_input("x").await.unwrap(), None);
    assert_eq!(store.history("x").await.unwrap(), []);
    assert_eq!(store.operations("x", None, 100).await.unwrap(), []);
    assert_eq!(store.operation("x", "a").await.unwrap(), None);
    assert_eq!(store.operation_by_token("tok-x").await.unwrap(), None);
    assert_eq!(
        store
            .deliver(settle(token("tok-x"), succeeded(b"late"), 70))
            .await
            .unwrap(),
        Delivered::Unknown
    );
    assert_eq!(
        store.due(at(u64::MAX), 10).await.unwrap(),
        timers(&[(60, "x\0"), (60, "x/")])
    );
    assert_eq!(
        list_ids(store.list(&ListFilter::all()).await.unwrap()),
        ["x\0", "x/"]
    );
    for id in ["x/", "x\0"] {
        assert_eq!(store.history(id).await.unwrap(), entries(0..3), "{id:?}");
        assert_eq!(
            store.operations(id, None, 100).await.unwrap().len(),
            2,
            "{id:?}"
        );
        assert!(store
            .operation_by_token(&format!("tok-{id}"))
            .await
            .unwrap()
            .is_some());
    }
    assert!(
        !store.delete("x").await.unwrap(),
        "deleting twice finds nothing"
    );
    create_new(&store, record("x"), b"again").await;
    assert_eq!(
        store.history("x").await.unwrap(),
        [],
        "a new execution starts clean"
    );
    assert_eq!(store.operations("x", None, 100).await.unwrap(), []);
}

pub async fn operations_are_written_only_when_their_conditions_hold(store: SharedStore) {
    let a = operation("x", "a", Some("tok-a"));
    let b = operation("x", "b", None);
    let c = operation("x", "c", None);
    let current = with_operations(&store, "x", &[b.clone(), a.clone(), c.clone()]).await;
    assert_eq!(store.operation("x", "a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.operation("x", "zz").await.unwrap(), None);
    assert_eq!(store.operation("y", "a").await.unwrap(), None);
    let all = store.operations("x", None, 10).await.unwrap();
    assert_eq!(all, [a.clone(), b.clone(), c.clone()], "in key order");
    assert_eq!(store.operations("x", None, 2).await.unwrap(), all[..2]);
    assert_eq!(
        store.operations("x", Some("a"), 10).await.unwrap(),
        all[1..]
    );
    assert_eq!(store.operations("x", Some("c"), 10).await.unwrap(), []);

    // A failed condition refuses the whole commit: nothing of it is written.
    let refused = ExecutionRecord {
        message: Some("refused".into()),
        ..advanced(&current)
    };
    let settled_b = OperationRecord {
        state: succeeded(b"b"),
        ..b.clone()
    };
    let result = store
        .commit(commit_ops(
            &refused,
            vec![
                put(Expect::Pending, &settled_b),
                change("c", Expect::Any, OperationAction::Delete),
                put(Expect::Absent, &a),
            ],
        ))
        .await;
    expect_operation_conflict(result, "a");
    assert_eq!(store.load("x").await.unwrap(), Some(current.clone()));
    assert_eq!(store.operations("x", None, 10).await.unwrap(), all);

    // Conditions see the earlier changes of the same commit.
    let next = advanced(&current);
    store
        .commit(commit_ops(
            &next,
            vec![
                put(Expect::Pending, &settled_b),
                change("b", Expect::Settled, OperationAction::Keep),
                change("c", Expect::Pending, OperationAction::Delete),
                change("c", Expect::Absent, OperationAction::Keep),
                put(Expect::Absent, &operation("x", "d", None)),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(store.load("x").await.unwrap(), Some(next.clone()));
    assert_eq!(
        store.operations("x", None, 10).await.unwrap(),
        [a.clone(), settled_b.clone(), operation("x", "d", None)]
    );
    let again = advanced(&next);
    expect_operation_conflict(
        store
            .commit(commit_ops(
                &again,
                vec![change("b", Expect::Pending, OperationAction::Keep)],
            ))
            .await,
        "b",
    );
    expect_operation_conflict(
        store
            .commit(commit_ops(
                &again,
                vec![change("c", Expect::Settled, OperationAction::Keep)],
            ))
            .await,
        "c",
    );
    // A `Put` must write an operation of the committing execution under its own key.
    let foreign = operation("y", "e", None);
    match store
        .commit(commit_ops(&again, vec![put(Expect::Absent, &foreign)]))
        .await
    {
        Err(StoreError::Invalid { .. }) => {}
        other => panic!("expected an invalid request, got {other:?}"),
    }
    assert_eq!(store.load("x").await.unwrap(), Some(next));
}

pub async fn tokens_are_unique_and_follow_their_operation(store: SharedStore) {
    let a = operation("x", "a", Some("shared-token"));
    let current = with_operations(&store, "x", std::slice::from_ref(&a)).await;
    create_new(&store, record("y"), b"").await;
    let y = advanced(&record("y"));
    expect_operation_conflict(
        store
            .commit(commit_ops(
                &y,
                vec![put(
                    Expect::Absent,
                    &operation("y", "b", Some("shared-token")),
                )],
            ))
            .await,
        "b",
    );
    assert_eq!(store.operation("y", "b").await.unwrap(), None);
    assert_eq!(
        store.operation_by_token("shared-token").await.unwrap(),
        Some(a.clone())
    );
    // A new token replaces the old one; a deleted operation frees its token.
    let renamed = OperationRecord {
        token: Some("renamed".into()),
        ..a.clone()
    };
    let next = advanced(&current);
    store
        .commit(commit_ops(&next, vec![put(Expect::Pending, &renamed)]))
        .await
        .unwrap();
    assert_eq!(
        store.operation_by_token("shared-token").await.unwrap(),
        None
    );
    assert_eq!(
        store.operation_by_token("renamed").await.unwrap(),
        Some(renamed.clone())
    );
    store
        .commit(commit_ops(
            &y,
            vec![put(
                Expect::Absent,
                &operation("y", "b", Some("shared-token")),
            )],
        ))
        .await
        .unwrap();
    let last = advanced(&next);
    store
        .commit(commit_ops(
            &last,
            vec![change("a", Expect::Any, OperationAction::Delete)],
        ))
        .await
        .unwrap();
    assert_eq!(store.operation_by_token("renamed").await.unwrap(), None);
    assert_eq!(
        store.operation_by_token("shared-token").await.unwrap(),
        Some(operation("y", "b", Some("shared-token")))
    );
}

pub async fn deliveries_settle_a_pending_operation_once(store: SharedStore) {
    let a = operation("x", "a", Some("tok"));
    let current = with_operations(&store, "x", std::slice::from_ref(&a)).await;
    assert_eq!(
        store
            .deliver(settle(token("nope"), succeeded(b"1"), 10))
            .await
            .unwrap(),
        Delivered::Unknown
    );
    let by_key = |execution: &str, key: &str| OperationRef::Key {
        execution: execution.into(),
        key: key.into(),
    };
    assert_eq!(
        store
            .deliver(settle(by_key("x", "zz"), succeeded(b"1"), 10))
            .await
            .unwrap(),
        Delivered::Unknown
    );
    assert_eq!(
        store
            .deliver(settle(by_key("nobody", "a"), succeeded(b"1"), 10))
            .await
            .unwrap(),
        Delivered::Unknown
    );
    let heartbeat = Delivery {
        to: token("tok"),
        settlement: Settlement::Heartbeat,
        at: at(20),
    };
    assert_eq!(
        store.deliver(heartbeat.clone()).await.unwrap(),
        Delivered::Applied {
            execution: "x".into(),
            key: "a".into(),
            woke: false
        }
    );
    let beaten = OperationRecord {
        heartbeat_at: Some(at(20)),
        updated_at: at(20),
        ..a.clone()
    };
    assert_eq!(
        store.operation("x", "a").await.unwrap(),
        Some(beaten.clone())
    );
    match store
        .deliver(settle(token("tok"), OperationState::Pending, 25))
        .await
    {
        Err(StoreError::Invalid { .. }) => {}
        other => panic!("a delivery cannot make an operation pending, got {other:?}"),
    }
    assert_eq!(
        store
            .deliver(settle(by_key("x", "a"), succeeded(b"first"), 30))
            .await
            .unwrap(),
        Delivered::Applied {
            execution: "x".into(),
            key: "a".into(),
            woke: false
        }
    );
    let settled = OperationRecord {
        state: succeeded(b"first"),
        updated_at: at(30),
        ..beaten
    };
    assert_eq!(
        store.operation("x", "a").await.unwrap(),
        Some(settled.clone())
    );
    for late in [
        settle(token("tok"), succeeded(b"second"), 40),
        settle(
            token("tok"),
            OperationState::Failed {
                error: b"no".to_vec(),
            },
            40,
        ),
        Delivery {
            at: at(40),
            ..heartbeat
        },
    ] {
        assert_eq!(
            store.deliver(late).await.unwrap(),
            Delivered::AlreadySettled(Box::new(settled.clone()))
        );
    }
    assert_eq!(store.operation("x", "a").await.unwrap(), Some(settled));
    assert_eq!(
        store.load("x").await.unwrap(),
        Some(current),
        "a running execution is not touched by a delivery"
    );
}

pub async fn a_delivery_wakes_an_execution_suspended_awaiting_it(store: SharedStore) {
    let ops = [
        operation("x", "awaited", Some("t1")),
        operation("x", "other", Some("t2")),
    ];
    let current = with_operations(&store, "x", &ops).await;
    let suspended = ExecutionRecord {
        status: Status::Suspended,
        wake_at: Some(at(5_000)),
        awaiting: vec!["awaited".into()],
        ..advanced(&current)
    };
    store
        .commit(commit_ops(
            &suspended,
            vec![change("awaited", Expect::Pending, OperationAction::Keep)],
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .deliver(settle(token("t2"), succeeded(b"x"), 100))
            .await
            .unwrap(),
        Delivered::Applied {
            execution: "x".into(),
            key: "other".into(),
            woke: false
        },
        "an operation it does not await does not wake it"
    );
    assert_eq!(store.load("x").await.unwrap(), Some(suspended.clone()));
    assert_eq!(
        store
            .deliver(settle(token("t1"), succeeded(b"y"), 200))
            .await
            .unwrap(),
        Delivered::Applied {
            execution: "x".into(),
            key: "awaited".into(),
            woke: true
        }
    );
    let woken = ExecutionRecord {
        status: Status::Running,
        wake_at: None,
        awaiting: Vec::new(),
        seq: suspended.seq + 1,
        updated_at: at(200),
        ..suspended.clone()
    };
    assert_eq!(store.load("x").await.unwrap(), Some(woken.clone()));
    assert_eq!(
        store.due(at(u64::MAX), 10).await.unwrap(),
        [],
        "its timer is gone"
    );
    assert_eq!(
        list_ids(
            store
                .list(&ListFilter::all().status(Status::Running))
                .await
                .unwrap()
        ),
        ["x"]
    );
    assert_eq!(
        store
            .list(&ListFilter::all().status(Status::Suspended))
            .await
            .unwrap(),
        []
    );
    // The engine's next commit is based on the woken record.
    let stale = advanced(&suspended);
    match store.commit(commit(&stale, Vec::new(), 0)).await {
        Err(StoreError::Conflict { found, .. }) => assert_eq!(found, Some(woken.seq)),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

pub async fn a_delivery_to_a_finished_execution_is_refused(store: SharedStore) {
    let current = with_operations(&store, "x", &[operation("x", "a", Some("t"))]).await;
    let done = ExecutionRecord {
        status: Status::Completed,
        ..advanced(&current)
    };
    store.commit(commit(&done, Vec::new(), 0)).await.unwrap();
    assert_eq!(
        store
            .deliver(settle(token("t"), succeeded(b"late"), 10))
            .await
            .unwrap(),
        Delivered::ExecutionFinished {
            execution: "x".into(),
            status: Status::Completed
        }
    );
    assert_eq!(
        store.operation("x", "a").await.unwrap(),
        Some(operation("x", "a", Some("t")))
    );
}

/// A callback's deadline (here its timeout, at 9,000) is checked against the delivery's
/// time: at or after it, nothing is written, heartbeats included, whether or not the
/// execution has noticed; just before it, the delivery applies.
pub async fn a_delivery_at_or_past_the_deadline_is_refused(store: SharedStore) {
    let pending = operation("x", "a", Some("t"));
    let current = with_operations(&store, "x", std::slice::from_ref(&pending)).await;
    for late in [
        settle(token("t"), succeeded(b"late"), 9_000),
        settle(token("t"), succeeded(b"later"), 12_000),
        Delivery {
            to: token("t"),
            settlement: Settlement::Heartbeat,
            at: at(9_000),
        },
    ] {
        assert_eq!(
            store.deliver(late).await.unwrap(),
            Delivered::DeadlinePassed(Box::new(pending.clone()))
        );
    }
    assert_eq!(
        store.operation("x", "a").await.unwrap(),
        Some(pending.clone())
    );
    assert_eq!(store.load("x").await.unwrap(), Some(current));
    assert!(matches!(
        store
            .deliver(settle(token("t"), succeeded(b"in time"), 8_999))
            .await
            .unwrap(),
        Delivered::Applied { .. }
    ));
}

/// Of the refusals, a settled operation comes first: a late sender learns how it was
/// settled, also once the execution has finished (and past the deadline).
pub async fn a_settled_operation_of_a_finished_execution_says_how_it_was_settled(
    store: SharedStore,
) {
    let current = with_operations(&store, "x", &[operation("x", "a", Some("t"))]).await;
    store
        .deliver(settle(token("t"), succeeded(b"first"), 10))
        .await
        .unwrap();
    let settled = store.operation("x", "a").await.unwrap().unwrap();
    let done = ExecutionRecord {
        status: Status::Completed,
        ..advanced(&current)
    };
    store.commit(commit(&done, Vec::new(), 0)).await.unwrap();
    for late in [
        settle(token("t"), succeeded(b"second"), 20),
        settle(token("t"), succeeded(b"second"), 12_000),
    ] {
        assert_eq!(
            store.deliver(late).await.unwrap(),
            Delivered::AlreadySettled(Box::new(settled.clone()))
        );
    }
}

pub async fn a_commit_that_awaits_a_settled_operation_conflicts(store: SharedStore) {
    let current = with_operations(&store, "x", &[operation("x", "a", Some("t"))]).await;
    store
        .deliver(settle(token("t"), succeeded(b"early"), 10))
        .await
        .unwrap();
    let suspend = ExecutionRecord {
        status: Status::Suspended,
        awaiting: vec!["a".into()],
        ..advanced(&current)
    };
    expect_operation_conflict(
        store
            .commit(commit_ops(
                &suspend,
                vec![change("a", Expect::Pending, OperationAction::Keep)],
            ))
            .await,
        "a",
    );
    assert_eq!(store.load("x").await.unwrap(), Some(current));
}

pub async fn commit_deliveries_reach_other_executions_and_report_woken(store: SharedStore) {
    let parent = with_operations(&store, "parent", &[operation("parent", "child-1", None)]).await;
    let waiting = ExecutionRecord {
        status: Status::Suspended,
        awaiting: vec!["child-1".into()],
        ..advanced(&parent)
    };
    store
        .commit(commit_ops(
            &waiting,
            vec![change("child-1", Expect::Pending, OperationAction::Keep)],
        ))
        .await
        .unwrap();
    create_new(&store, record("child"), b"").await;
    let done = ExecutionRecord {
        status: Status::Completed,
        output: Some(b"out".to_vec()),
        ..advanced(&record("child"))
    };
    let key = |execution: &str, key: &str| OperationRef::Key {
        execution: execution.into(),
        key: key.into(),
    };
    let committed = store
        .commit(Commit {
            deliveries: vec![
                settle(key("parent", "child-1"), succeeded(b"out"), 50),
                // Deliveries that cannot apply are skipped, never a reason to refuse.
                settle(key("parent", "no-such-op"), succeeded(b"x"), 50),
                settle(key("nobody", "x"), succeeded(b"x"), 50),
            ],
            ..commit(&done, Vec::new(), 0)
        })
        .await
        .unwrap();
    assert_eq!(committed.woken, ["parent"]);
    assert_eq!(store.load("child").await.unwrap(), Some(done));
    let parent_now = store.load("parent").await.unwrap().unwrap();
    assert_eq!(
        (parent_now.status, parent_now.seq),
        (Status::Running, waiting.seq + 1)
    );
    assert_eq!(
        store
            .operation("parent", "child-1")
            .await
            .unwrap()
            .unwrap()
            .state,
        succeeded(b"out")
    );
}

pub async fn concurrent_deliveries_to_one_operation_let_exactly_one_settle(store: SharedStore) {
    const OPERATIONS: usize = 10;
    const RIVALS: usize = 10;
    for n in 0..OPERATIONS {
        let id = format!("x{n}");
        with_operations(&store, &id, &[operation(&id, "cb", Some(&format!("t{n}")))]).await;
    }
    let start = Arc::new(Barrier::new(OPERATIONS * RIVALS));
    let mut tasks = JoinSet::new();
    for n in 0..OPERATIONS {
        for rival in 0..RIVALS {
            let (store, start) = (store.clone(), start.clone());
            tasks.spawn(async move {
                start.wait().await;
                let payload = format!("rival {rival}").into_bytes();
                let delivered = store
                    .deliver(settle(token(&format!("t{n}")), succeeded(&payload), 10))
                    .await
                    .unwrap();
                (n, rival, delivered)
            });
        }
    }
    let mut winners = vec![Vec::new(); OPERATIONS];
    let mut losers = vec![Vec::new(); OPERATIONS];
    while let Some(joined) = tasks.join_next().await {
        let (n, rival, delivered) = joined.expect("task panicked");
        match delivered {
            Delivered::Applied { .. } => winners[n].push(rival),
            Delivered::AlreadySettled(op) => losers[n].push(op.state),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    for n in 0..OPERATIONS {
        assert_eq!(winners[n].len(), 1, "x{n}: winners {:?}", winners[n]);
        let won = succeeded(format!("rival {}", winners[n][0]).as_bytes());
        assert!(losers[n].iter().all(|state| *state == won), "x{n}");
        let stored = store
            .operation(&format!("x{n}"), "cb")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.state, won);
    }
}

pub async fn a_delivery_racing_a_suspending_commit_never_strands_the_execution(store: SharedStore) {
    const ROUNDS: usize = 50;
    for round in 0..ROUNDS {
        let id = format!("race-{round}");
        let current = with_operations(&store, &id, &[operation(&id, "cb", Some(&id))]).await;
        let suspend = ExecutionRecord {
            status: Status::Suspended,
            awaiting: vec!["cb".into()],
            ..advanced(&current)
        };
        let start = Arc::new(Barrier::new(2));
        let committing = {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store
                    .commit(commit_ops(
                        &suspend,
                        vec![change("cb", Expect::Pending, OperationAction::Keep)],
                    ))
                    .await
            })
        };
        let delivering = {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.deliver(settle(token(&id), succeeded(b"v"), 10)).await
            })
        };
        let committed = committing.await.unwrap();
        let delivered = delivering.await.unwrap().unwrap();
        let now = store.load(&id).await.unwrap().unwrap();
        match (committed, delivered) {
            // The commit came first: the delivery woke the execution.
            (Ok(_), Delivered::Applied { woke: true, .. }) => {
                assert_eq!((now.status, now.seq), (Status::Running, current.seq + 2));
            }
            // The delivery came first: the commit was refused and wrote nothing.
            (Err(StoreError::OperationConflict { .. }), Delivered::Applied { woke: false, .. }) => {
                assert_eq!(now, current);
            }
            other => panic!("round {round}: impossible outcome {other:?}"),
        }
        assert_eq!(
            store.operation(&id, "cb").await.unwrap().unwrap().state,
            succeeded(b"v")
        );
    }
}

pub async fn a_commit_after_a_lost_lease_is_refused(store: SharedStore) {
    create_new(&store, record("x"), b"").await;
    assert!(store.claim("x", 1, at(0), at(100)).await.unwrap());
    let first = advanced(&record("x"));
    store
        .commit_leased(commit(&first, entries([0]), 0), 1)
        .await
        .unwrap();
    assert!(
        store.claim("x", 2, at(150), at(300)).await.unwrap(),
        "the expired lease is taken over"
    );
    let late = ExecutionRecord {
        message: Some("from the engine that lost its lease".into()),
        ..advanced(&first)
    };
    for stale_too in [false, true] {
        let mut refused = commit(&late, entries([1]), 0);
        if stale_too {
            refused.expected_seq = 0;
        }
        match store.commit_leased(refused, 1).await {
            Err(StoreError::LeaseLost { id }) => assert_eq!(id, "x"),
            other => panic!("expected LeaseLost (stale seq too: {stale_too}), got {other:?}"),
        }
    }
    assert_eq!(store.load("x").await.unwrap(), Some(first.clone()));
    assert_eq!(store.history("x").await.unwrap(), entries([0]));
    let taken_over = ExecutionRecord {
        message: Some("from the new holder".into()),
        ..advanced(&first)
    };
    store
        .commit_leased(commit(&taken_over, entries([1]), 0), 2)
        .await
        .unwrap();
    store.release("x", 2).await.unwrap();
    let unleased = advanced(&taken_over);
    store
        .commit_leased(commit(&unleased, Vec::new(), 0), 1)
        .await
        .expect("nobody holds the lease: the sequence number decides");
    assert_eq!(store.load("x").await.unwrap(), Some(unleased));
}

async fn acquired_ids(acquired: &Acquired) -> Vec<String> {
    let mut ids = acquired.ids.clone();
    ids.sort();
    ids
}

pub async fn acquire_claims_ready_executions_for_one_owner(store: SharedStore) {
    let with = |id: &str, status| ExecutionRecord {
        status,
        ..record(id)
    };
    for r in [
        ExecutionRecord {
            status: Status::Suspended,
            ..waking("due", 50)
        },
        ExecutionRecord {
            status: Status::Suspended,
            ..waking("later", 500)
        },
        ExecutionRecord {
            status: Status::Suspended,
            awaiting: vec!["cb".into()],
            ..record("awaiting")
        },
        with("new", Status::Running),
        with("held", Status::Running),
        with("abandoned", Status::Running),
        with("done", Status::Completed),
        with("failed", Status::Failed),
        with("parked", Status::Parked),
    ] {
        create_new(&store, r, b"").await;
    }
    assert!(store.claim("held", 9, at(0), at(1_000)).await.unwrap());
    assert!(store.claim("abandoned", 9, at(0), at(80)).await.unwrap());

    let first = store.acquire(1, at(100), at(200), 10).await.unwrap();
    assert_eq!(
        acquired_ids(&first).await,
        ["abandoned", "due", "new"],
        "due timers, unleased running executions and expired leases"
    );
    assert_eq!(first.next_wake, Some(at(500)));
    for id in ["abandoned", "due", "new"] {
        assert!(
            !store.claim(id, 3, at(150), at(300)).await.unwrap(),
            "{id} is leased to the owner that acquired it"
        );
    }
    let second = store.acquire(2, at(150), at(300), 10).await.unwrap();
    assert_eq!(
        second.ids,
        Vec::<String>::new(),
        "nothing is handed out twice"
    );
    assert_eq!(second.next_wake, Some(at(500)));
    let after_expiry = store.acquire(2, at(250), at(400), 10).await.unwrap();
    assert_eq!(
        acquired_ids(&after_expiry).await,
        ["abandoned", "due", "new"],
        "leases that ran out are taken over"
    );
    let none = store
        .acquire(3, at(u64::MAX - 1), at(u64::MAX), 0)
        .await
        .unwrap();
    assert_eq!(
        none.ids,
        Vec::<String>::new(),
        "a limit of 0 claims nothing"
    );
    assert_eq!(none.next_wake, None);
}

pub async fn concurrent_acquires_never_hand_out_an_execution_twice(store: SharedStore) {
    const EXECUTIONS: usize = 60;
    const OWNERS: u128 = 4;
    for n in 0..EXECUTIONS {
        let r = if n % 2 == 0 {
            record(&format!("run-{n:02}"))
        } else {
            ExecutionRecord {
                status: Status::Suspended,
                ..waking(&format!("wake-{n:02}"), n as u64)
            }
        };
        create_new(&store, r, b"").await;
    }
    let start = Arc::new(Barrier::new(OWNERS as usize));
    let mut tasks = JoinSet::new();
    for owner in 1..=OWNERS {
        let (store, start) = (store.clone(), start.clone());
        tasks.spawn(async move {
            start.wait().await;
            let mut mine: Vec<String> = Vec::new();
            loop {
                let acquired = store.acquire(owner, at(100), at(1_000), 7).await.unwrap();
                if acquired.ids.is_empty() {
                    return mine;
                }
                mine.extend(acquired.ids);
            }
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.expect("task panicked"));
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "an execution was handed out twice");
    assert_eq!(all.len(), EXECUTIONS);
}

pub async fn renew_keeps_held_leases_and_reports_lost_ones(store: SharedStore) {
    for id in ["a", "b"] {
        create_new(&store, record(id), b"").await;
        assert!(store.claim(id, 1, at(0), at(100)).await.unwrap());
    }
    assert!(store.claim("b", 2, at(150), at(300)).await.unwrap());
    let lost = store
        .renew(1, &["a".to_owned(), "b".to_owned()], at(150), at(400))
        .await
        .unwrap();
    assert_eq!(lost, ["b"]);
    assert!(
        !store.claim("a", 3, at(350), at(500)).await.unwrap(),
        "a was renewed until 400"
    );
    assert!(
        !store.claim("b", 1, at(250), at(500)).await.unwrap(),
        "b stays with its new holder"
    );
    assert_eq!(
        store.renew(1, &[], at(150), at(400)).await.unwrap(),
        Vec::<String>::new()
    );
}

/// The engine calls [`Store::recover`] after any failure, also when the store itself is
/// fine: it must keep every write and go on accepting them.
pub async fn recover_on_a_working_store_changes_nothing(store: SharedStore) {
    create_new(&store, waking("x", 10), b"in").await;
    let first = ExecutionRecord {
        wake_at: Some(at(20)),
        ..advanced(&waking("x", 10))
    };
    store.commit(commit(&first, entries([0]), 0)).await.unwrap();
    store.recover().await.expect("a working store recovers");
    store.recover().await.expect("and again");
    assert_eq!(store.load("x").await.unwrap(), Some(first.clone()));
    assert_eq!(store.load_input("x").await.unwrap(), Some(b"in".to_vec()));
    assert_eq!(store.history("x").await.unwrap(), entries([0]));
    let second = ExecutionRecord {
        wake_at: None,
        ..advanced(&first)
    };
    store
        .commit(commit(&second, entries([1]), 0))
        .await
        .unwrap();
    assert_eq!(store.load("x").await.unwrap(), Some(second));
    assert_eq!(store.history("x").await.unwrap(), entries([0, 1]));
    assert_eq!(store.due(at(u64::MAX), 10).await.unwrap(), timers(&[]));
}
