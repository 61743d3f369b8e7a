//! Batches (issue 13): `ctx.map` and `ctx.parallel` over step closures and `#[durable]`
//! children, with a concurrency limit and completion policies. Every test runs on the
//! memory store and on the sled store (through real restarts where it restarts). No test
//! sleeps in real time: waits are on the engine's test clock.

mod backing;

use backing::{on_both_stores, Backing};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use durable_core::{
    durable, BatchResult, Branch, ChildError, Completion, CompletionReason, Ctx, Engine,
    EngineBuilder, Error, Failure, ItemError, ItemStatus, ListFilter, RetryPolicy, Status,
    TestClock, Timestamp, Until,
};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const MINUTE: Duration = Duration::from_secs(60);

/// Step bodies' runs, by tag: how often each item's body ran.
static RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn ran(tag: &str) {
    RUNS.lock().unwrap().push(tag.to_owned());
}

fn runs_of(prefix: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for tag in RUNS
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.starts_with(prefix))
    {
        *counts.entry(tag.clone()).or_insert(0) += 1;
    }
    counts
}

/// The items in flight and the most seen at once, by test tag.
static IN_FLIGHT: Mutex<Vec<(String, usize, usize)>> = Mutex::new(Vec::new());

fn enter(tag: &str) {
    let mut all = IN_FLIGHT.lock().unwrap();
    match all.iter_mut().find(|(t, _, _)| t == tag) {
        Some((_, now, max)) => {
            *now += 1;
            *max = (*max).max(*now);
        }
        None => all.push((tag.to_owned(), 1, 1)),
    }
}

fn leave(tag: &str) {
    let mut all = IN_FLIGHT.lock().unwrap();
    if let Some((_, now, _)) = all.iter_mut().find(|(t, _, _)| t == tag) {
        *now -= 1;
    }
}

fn max_in_flight(tag: &str) -> usize {
    let all = IN_FLIGHT.lock().unwrap();
    all.iter()
        .find(|(t, _, _)| t == tag)
        .map_or(0, |(_, _, max)| *max)
}

/// Squares numbers in step items; a number in `fail` fails (terminally, no retry).
#[durable]
async fn squares(
    ctx: Ctx,
    tag: String,
    numbers: Vec<u64>,
    fail: Vec<u64>,
    policy: Policy,
) -> BatchResult<u64> {
    ctx.map("square", numbers, |n: u64| {
        let (tag, fail) = (tag.clone(), fail.clone());
        async move {
            ran(&format!("{tag}/{n}"));
            enter(&tag);
            // Let the other items in flight start before this one ends.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            leave(&tag);
            if fail.contains(&n) {
                return Err(Failure::terminal(format!("{n} is not welcome")));
            }
            Ok(n * n)
        }
    })
    .max_in_flight(policy.max_in_flight)
    .completion(policy.completion())
    .await
}

/// A completion policy, as a workflow input.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Policy {
    max_in_flight: usize,
    min_successful: Option<u64>,
    tolerated_failures: Option<u64>,
    tolerated_percent: Option<f64>,
}

impl Policy {
    fn sequential() -> Self {
        Policy {
            max_in_flight: 1,
            min_successful: None,
            tolerated_failures: None,
            tolerated_percent: None,
        }
    }

    fn completion(self) -> Completion {
        let mut c = Completion::all();
        if let Some(n) = self.min_successful {
            c = c.and_min_successful(n);
        }
        if let Some(n) = self.tolerated_failures {
            c = c.and_tolerate_failures(n);
        }
        if let Some(p) = self.tolerated_percent {
            c = c.and_tolerate_failure_percent(p);
        }
        c
    }
}

/// Doubles `n` in a child; 13 returns an error of its own; sleeps `n` minutes first when
/// `n` is a multiple of 10.
#[durable]
async fn double(ctx: Ctx, n: u64) -> Result<u64, String> {
    if n.is_multiple_of(10) && n > 0 {
        ctx.sleep(MINUTE * n as u32).await.expect("short sleep");
    }
    let doubled = ctx.step_infallible("double", || async move { n * 2 }).await;
    if n == 13 {
        return Err(format!("{n} is unlucky"));
    }
    Ok(doubled)
}

/// One child per number.
#[durable]
async fn doubles(
    ctx: Ctx,
    numbers: Vec<u64>,
    max: usize,
    first_success: bool,
) -> BatchResult<Result<u64, String>> {
    let policy = if first_success {
        Completion::first_success()
    } else {
        Completion::all()
    };
    ctx.map("double", numbers, double)
        .max_in_flight(max)
        .completion(policy)
        .await
}

/// One child per number, through a closure giving `ctx.call`.
#[durable]
async fn doubles_by_call(ctx: Ctx, numbers: Vec<u64>) -> Vec<u64> {
    let batch = ctx
        .map("double", numbers, |n: u64| ctx.call(double, n))
        .await;
    batch.succeeded().map(|r| r.clone().unwrap_or(0)).collect()
}

/// Sums squares of `0..n` in a batch of steps: a batch inside a branch.
#[durable]
async fn sum_squares(ctx: Ctx, n: u64) -> u64 {
    let batch = ctx
        .map("squares", 0..n as usize, |i: usize| async move {
            Ok((i * i) as u64)
        })
        .max_in_flight(3)
        .await;
    batch.succeeded().sum()
}

/// A child whose body runs a parallel whose branch is a child with a map.
#[durable]
async fn nested(ctx: Ctx, n: u64) -> Vec<u64> {
    let batch = ctx
        .parallel(
            "branches",
            vec![
                Branch::call(sum_squares, n),
                Branch::step(|| async { Ok(7) }),
                Branch::call(sum_squares, n + 1),
            ],
        )
        .await;
    batch
        .into_items()
        .into_iter()
        .map(|i| i.value.unwrap_or(0))
        .collect()
}

#[durable]
async fn outer(ctx: Ctx, n: u64) -> Result<Vec<u64>, ChildError> {
    ctx.call(nested, n).await
}

/// Items that fail once and retry after a minute.
#[durable]
async fn flaky(ctx: Ctx, tag: String, numbers: Vec<u64>) -> BatchResult<u64> {
    ctx.map("flaky", numbers, |n: u64| {
        let tag = tag.clone();
        async move {
            let attempt = durable_core::StepContext::current()
                .expect("in a step")
                .attempt();
            ran(&format!("{tag}/{n}/{attempt}"));
            if attempt == 1 && n.is_multiple_of(2) {
                return Err(Failure::new("not yet"));
            }
            Ok(n + 100)
        }
    })
    .retry(RetryPolicy::fixed(MINUTE).max_attempts(3))
    .await
}

/// A plain async fn, run as a step per item.
async fn halve(n: u64) -> Result<u64, Failure> {
    if !n.is_multiple_of(2) {
        return Err(Failure::terminal(format!("{n} is odd")));
    }
    Ok(n / 2)
}

#[durable]
async fn halves(ctx: Ctx, numbers: Vec<u64>) -> BatchResult<u64> {
    ctx.map("halve", numbers, halve).await
}

/// Items that panic.
#[durable]
async fn panicky(ctx: Ctx, numbers: Vec<u64>) -> BatchResult<u64> {
    ctx.map("panicky", numbers, |n: u64| async move {
        if n == 2 {
            panic!("two is too many");
        }
        Ok(n)
    })
    .await
}

async fn open_with(backing: &Backing, clock: &TestClock, every_point: bool) -> Engine {
    EngineBuilder::with_store(backing.store())
        .register(squares)
        .register(doubles)
        .register(doubles_by_call)
        .register(outer)
        .register(flaky)
        .register(panicky)
        .register(halves)
        .clock(clock.clone())
        .suspend_after_every_point(every_point)
        .open()
        .await
        .expect("engine opens")
}

async fn open(backing: &Backing, clock: &TestClock) -> Engine {
    open_with(backing, clock, false).await
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", fastrand::u64(..))
}

/// Waits until `parent` has `n` children with `status`.
async fn until_children(engine: &Engine, parent: &str, status: Status, n: usize) {
    loop {
        let page = engine
            .executions(&ListFilter::all().parent(parent))
            .await
            .expect("lists");
        if page.iter().filter(|c| c.status == status).count() >= n {
            return;
        }
        tokio::task::yield_now().await;
    }
}

on_both_stores!(
    a_map_of_steps_gives_every_value_in_input_order,
    every_completion_policy_completes_where_it_should,
    the_concurrency_limit_is_honoured,
    a_map_of_children_gives_their_outputs_and_lists_them_under_the_parent,
    children_sleep_while_the_parent_restarts_and_none_starts_twice,
    first_success_cancels_the_children_still_running,
    a_map_in_a_parallel_branch_in_a_child,
    step_items_retry_after_a_delay_out_of_memory,
    a_panicking_item_fails_alone,
    suspending_after_every_point_gives_the_same_batch,
    engine_cancel_stops_an_execution_and_its_children,
    a_closure_giving_calls_runs_children,
    a_plain_async_fn_is_a_step_body,
    the_history_tells_the_batch_and_bad_input_is_a_typed_error,
);

async fn a_map_of_steps_gives_every_value_in_input_order(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    let tag = unique("order");
    let numbers: Vec<u64> = (0..250).collect();
    let policy = Policy {
        max_in_flight: 16,
        ..Policy::sequential()
    };
    let handle = engine
        .start(
            squares,
            &tag,
            (tag.clone(), numbers.clone(), vec![], policy),
        )
        .await
        .unwrap();
    let batch = handle.result().await.unwrap();
    assert_eq!(batch.completion_reason(), CompletionReason::AllCompleted);
    assert_eq!(batch.len(), 250);
    for (i, item) in batch.items().iter().enumerate() {
        assert_eq!(item.index, i);
        assert_eq!(item.status, ItemStatus::Succeeded);
        assert_eq!(item.value, Some((i * i) as u64));
    }
    // Every item's place in the completion order, each place once.
    let mut order = batch.completion_order();
    order.sort_unstable();
    assert_eq!(order, (0..250).collect::<Vec<_>>());
    // Each body ran once (no crash here).
    let runs = runs_of(&format!("{tag}/"));
    assert_eq!(runs.len(), 250);
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
    assert_eq!(batch.clone().values().unwrap()[3], 9);
    engine.shutdown().await;
}

async fn every_completion_policy_completes_where_it_should(backing: Backing) {
    use CompletionReason::*;
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    let seq = Policy::sequential();
    // (policy, failing items, reason, succeeded, failed, not started)
    let cases: Vec<(Policy, Vec<u64>, CompletionReason, usize, usize, usize)> = vec![
        (seq, vec![2, 4], AllCompleted, 8, 2, 0),
        (
            Policy {
                tolerated_failures: Some(0),
                ..seq
            },
            vec![2, 4],
            FailureToleranceExceeded,
            2,
            1,
            7,
        ),
        (
            Policy {
                min_successful: Some(1),
                ..seq
            },
            vec![0, 1],
            MinSuccessful,
            1,
            2,
            7,
        ),
        (
            Policy {
                min_successful: Some(4),
                ..seq
            },
            vec![1],
            MinSuccessful,
            4,
            1,
            5,
        ),
        (
            Policy {
                tolerated_failures: Some(1),
                ..seq
            },
            vec![1, 3, 5],
            FailureToleranceExceeded,
            2,
            2,
            6,
        ),
        (
            Policy {
                tolerated_failures: Some(5),
                ..seq
            },
            vec![1, 3, 5],
            AllCompleted,
            7,
            3,
            0,
        ),
        (
            Policy {
                tolerated_percent: Some(20.0),
                ..seq
            },
            vec![1, 3, 5],
            FailureToleranceExceeded,
            3,
            3,
            4,
        ),
        (
            Policy {
                tolerated_percent: Some(30.0),
                ..seq
            },
            vec![1, 3, 5],
            AllCompleted,
            7,
            3,
            0,
        ),
        (
            Policy {
                min_successful: Some(3),
                tolerated_failures: Some(0),
                ..seq
            },
            vec![5],
            MinSuccessful,
            3,
            0,
            7,
        ),
        (
            Policy {
                min_successful: Some(3),
                tolerated_failures: Some(0),
                ..seq
            },
            vec![1],
            FailureToleranceExceeded,
            1,
            1,
            8,
        ),
    ];
    for (i, (policy, fail, reason, succeeded, failed, not_started)) in cases.into_iter().enumerate()
    {
        let tag = unique(&format!("policy{i}"));
        let handle = engine
            .start(
                squares,
                &tag,
                (tag.clone(), (0..10).collect(), fail.clone(), policy),
            )
            .await
            .unwrap();
        let batch = handle.result().await.unwrap();
        let case = format!("case {i}: {policy:?} failing {fail:?}");
        assert_eq!(batch.completion_reason(), reason, "{case}");
        assert_eq!(batch.count(ItemStatus::Succeeded), succeeded, "{case}");
        assert_eq!(batch.count(ItemStatus::Failed), failed, "{case}");
        assert_eq!(batch.count(ItemStatus::NotStarted), not_started, "{case}");
        assert_eq!(
            batch.count(ItemStatus::Cancelled),
            0,
            "{case}: one in flight, settled"
        );
        for (index, error) in batch.failures() {
            assert!(fail.contains(&(index as u64)), "{case}");
            assert!(
                error.to_string().contains("is not welcome"),
                "{case}: {error}"
            );
        }
        // The helper that turns failures into an error.
        match batch.clone().into_result() {
            Ok(_) => assert_eq!(failed, 0, "{case}"),
            Err(e) => {
                assert_eq!(e.failures.len(), failed, "{case}");
                assert_eq!(e.reason, reason);
            }
        }
        // Items that did not start never ran.
        let runs = runs_of(&format!("{tag}/"));
        assert_eq!(runs.len(), 10 - not_started, "{case}");
    }
    engine.shutdown().await;
}

async fn the_concurrency_limit_is_honoured(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    for limit in [1, 4, 9] {
        let tag = unique(&format!("limit{limit}"));
        let policy = Policy {
            max_in_flight: limit,
            ..Policy::sequential()
        };
        let handle = engine
            .start(
                squares,
                &tag,
                (tag.clone(), (0..40).collect(), vec![], policy),
            )
            .await
            .unwrap();
        let batch = handle.result().await.unwrap();
        assert_eq!(batch.count(ItemStatus::Succeeded), 40);
        // Never more than the limit, and the limit reached (items yield before ending).
        assert_eq!(max_in_flight(&tag), limit, "limit {limit}");
    }
    // Children: at most 3 exist at once while the first ones sleep.
    let handle = engine
        .start(
            doubles,
            "kids-limit",
            (vec![10, 20, 30, 1, 2, 3, 4], 3, false),
        )
        .await
        .unwrap();
    until_children(&engine, "kids-limit", Status::Suspended, 3).await;
    engine
        .wait_until("kids-limit", Until::suspended())
        .await
        .unwrap();
    let described = engine.describe("kids-limit").await.unwrap();
    assert!(
        matches!(
            described.waiting_for,
            Some(durable_core::Waiting::Batch {
                total: 7,
                settled: 0,
                in_flight: 3,
                until: None
            })
        ),
        "{:?}",
        described.waiting_for
    );
    let listed = engine
        .executions(&ListFilter::all().parent("kids-limit"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3, "only 3 children started");
    clock.advance(MINUTE * 30);
    let batch = handle.result().await.unwrap();
    let values: Vec<u64> = batch.succeeded().map(|v| v.clone().unwrap()).collect();
    assert_eq!(values, vec![20, 40, 60, 2, 4, 6, 8]);
    engine.shutdown().await;
}

async fn a_map_of_children_gives_their_outputs_and_lists_them_under_the_parent(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    let handle = engine
        .start(doubles, "kids", (vec![1, 2, 13, 4], 2, false))
        .await
        .unwrap();
    let batch = handle.result().await.unwrap();
    assert_eq!(batch.completion_reason(), CompletionReason::AllCompleted);
    let items = batch.items();
    assert_eq!(items[0].value, Some(Ok(2)));
    assert_eq!(items[1].value, Some(Ok(4)));
    assert_eq!(items[3].value, Some(Ok(8)));
    // A child that returned `Err` failed: its output is kept, its error says why.
    assert_eq!(items[2].status, ItemStatus::Failed);
    assert_eq!(items[2].value, Some(Err("13 is unlucky".into())));
    assert!(matches!(
        &items[2].error,
        Some(ItemError::Child(ChildError::Failed { .. }))
    ));
    let children = engine
        .executions(&ListFilter::all().parent("kids"))
        .await
        .unwrap();
    assert_eq!(children.len(), 4);
    for item in items {
        let id = item
            .execution
            .clone()
            .expect("a child item names its child");
        assert!(id.starts_with("kids/"), "{id}");
        assert!(children.iter().any(|c| c.id == id));
    }
    let described = engine.describe("kids").await.unwrap();
    assert_eq!(described.children.len(), 4);
    engine.shutdown().await;
}

async fn children_sleep_while_the_parent_restarts_and_none_starts_twice(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    engine
        .start(doubles, "restart", (vec![10, 20, 3, 4], 2, false))
        .await
        .unwrap();
    until_children(&engine, "restart", Status::Suspended, 2).await;
    engine.shutdown().await;
    // A new process: the parent and its children resume from the store.
    let engine = open(&backing, &clock).await;
    clock.advance(MINUTE * 20);
    let batch = engine.handle(doubles, "restart").result().await.unwrap();
    let values: Vec<u64> = batch.succeeded().map(|v| v.clone().unwrap()).collect();
    assert_eq!(values, vec![20, 40, 6, 8]);
    let children = engine
        .executions(&ListFilter::all().parent("restart"))
        .await
        .unwrap();
    assert_eq!(children.len(), 4, "one child per item, none twice");
    engine.shutdown().await;
}

async fn first_success_cancels_the_children_still_running(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    let handle = engine
        .start(doubles, "race", (vec![10, 20, 1, 30], 4, true))
        .await
        .unwrap();
    let batch = handle.result().await.unwrap();
    assert_eq!(batch.completion_reason(), CompletionReason::MinSuccessful);
    let items = batch.items();
    assert_eq!(items[2].status, ItemStatus::Succeeded);
    assert_eq!(items[2].value, Some(Ok(2)));
    for i in [0, 1, 3] {
        assert_eq!(items[i].status, ItemStatus::Cancelled, "item {i}");
        let child = engine
            .describe(items[i].execution.as_ref().unwrap())
            .await
            .unwrap();
        assert_eq!(child.status, Status::Cancelled, "child of item {i}");
        assert!(child.message.unwrap().contains("completed early"));
    }
    // A cancelled child runs no further: time passing wakes nothing.
    clock.advance(MINUTE * 60);
    for i in [0, 1, 3] {
        let id = items[i].execution.clone().unwrap();
        let err = engine.handle(double, &id).result().await.unwrap_err();
        assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
    }
    engine.shutdown().await;
}

async fn a_map_in_a_parallel_branch_in_a_child(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    let handle = engine.start(outer, "nested", 4).await.unwrap();
    // 0+1+4+9 = 14, then 7, then 0+1+4+9+16 = 30.
    assert_eq!(handle.result().await.unwrap(), Ok(vec![14, 7, 30]));
    let children = engine
        .executions(&ListFilter::all().parent("nested"))
        .await
        .unwrap();
    assert_eq!(children.len(), 1);
    let grandchildren = engine
        .executions(&ListFilter::all().parent(&children[0].id))
        .await
        .unwrap();
    assert_eq!(grandchildren.len(), 2, "two branches are children");
    engine.shutdown().await;
}

async fn step_items_retry_after_a_delay_out_of_memory(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    let tag = unique("flaky");
    engine
        .start(flaky, &tag, (tag.clone(), vec![1, 2, 3, 4]))
        .await
        .unwrap();
    engine.wait_until(&tag, Until::suspended()).await.unwrap();
    // Items 2 and 4 wait for their retry, out of memory; 1 and 3 are done.
    let runs = runs_of(&format!("{tag}/"));
    assert_eq!(runs.len(), 4, "{runs:?}");
    engine.shutdown().await;
    let engine = open(&backing, &clock).await;
    clock.advance(MINUTE);
    let batch = engine.handle(flaky, &tag).result().await.unwrap();
    let values: Vec<u64> = batch.succeeded().copied().collect();
    assert_eq!(values, vec![101, 102, 103, 104]);
    let history: Vec<String> = engine
        .history(&tag)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.summary())
        .collect();
    assert!(
        history
            .iter()
            .any(|s| s == "step flaky[1]: failed #1, retrying"),
        "{history:?}"
    );
    let runs = runs_of(&format!("{tag}/"));
    assert_eq!(runs.get(&format!("{tag}/2/2")), Some(&1));
    assert_eq!(runs.get(&format!("{tag}/4/2")), Some(&1));
    assert_eq!(runs.get(&format!("{tag}/1/2")), None);
    engine.shutdown().await;
}

async fn a_panicking_item_fails_alone(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    let batch = engine
        .start(panicky, "panicky", vec![1, 2, 3])
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(batch.count(ItemStatus::Succeeded), 2);
    let (index, error) = batch.failures().next().unwrap();
    assert_eq!(index, 1);
    assert!(error.to_string().contains("two is too many"), "{error}");
    engine.shutdown().await;
}

async fn suspending_after_every_point_gives_the_same_batch(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open_with(&backing, &clock, true).await;
    let tag = unique("every");
    let policy = Policy {
        max_in_flight: 5,
        tolerated_failures: Some(3),
        ..Policy::sequential()
    };
    let batch = engine
        .start(
            squares,
            &tag,
            (tag.clone(), (0..30).collect(), vec![7], policy),
        )
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(batch.count(ItemStatus::Succeeded), 29);
    assert_eq!(batch.items()[7].status, ItemStatus::Failed);
    assert_eq!(batch.items()[29].value, Some(29 * 29));
    let kids = engine
        .start(doubles, &format!("{tag}-kids"), (vec![1, 2, 3], 2, false))
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(
        kids.succeeded().cloned().collect::<Vec<_>>(),
        vec![Ok(2), Ok(4), Ok(6)]
    );
    let children = engine
        .executions(&ListFilter::all().parent(format!("{tag}-kids")))
        .await
        .unwrap();
    assert_eq!(children.len(), 3, "one child per item");
    engine.shutdown().await;
}

async fn engine_cancel_stops_an_execution_and_its_children(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    let handle = engine
        .start(doubles, "stop-me", (vec![10, 20], 2, false))
        .await
        .unwrap();
    until_children(&engine, "stop-me", Status::Suspended, 2).await;
    assert!(engine.cancel("stop-me", "changed my mind").await.unwrap());
    let err = handle.result().await.unwrap_err();
    assert!(
        matches!(&err, Error::Cancelled { message, .. } if message == "changed my mind"),
        "{err:?}"
    );
    let children = engine
        .executions(&ListFilter::all().parent("stop-me"))
        .await
        .unwrap();
    assert_eq!(children.len(), 2);
    assert!(children.iter().all(|c| c.status == Status::Cancelled));
    // Finished already: nothing to do.
    assert!(!engine.cancel("stop-me", "again").await.unwrap());
    assert!(matches!(
        engine.cancel("nobody", "x").await,
        Err(Error::NotFound { .. })
    ));
    clock.advance(MINUTE * 30);
    let described = engine.describe("stop-me").await.unwrap();
    assert_eq!(described.status, Status::Cancelled);
    engine.shutdown().await;
}

async fn a_closure_giving_calls_runs_children(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    let values = engine
        .start(doubles_by_call, "by-call", vec![5, 6])
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(values, vec![10, 12]);
    engine.shutdown().await;
}

/// A child that waits for an approval callback.
#[durable]
async fn approve(ctx: Ctx, n: u64) -> Result<u64, durable_core::CallbackError> {
    let approved = ctx.create_callback::<bool>("approve").await?;
    let yes = ctx.wait_callback(&approved).await?;
    Ok(if yes { n } else { 0 })
}

#[durable]
async fn approvals(
    ctx: Ctx,
    numbers: Vec<u64>,
) -> BatchResult<Result<u64, durable_core::CallbackError>> {
    ctx.map("approve", numbers, approve).max_in_flight(2).await
}

mod callbacks {
    use super::*;

    async fn children_waiting_for_callbacks_are_woken_by_their_completion(backing: Backing) {
        let clock = TestClock::new(START);
        let engine = EngineBuilder::with_store(backing.store())
            .register(approvals)
            .clock(clock.clone())
            .open()
            .await
            .unwrap();
        let handle = engine
            .start(approvals, "approvals", vec![1, 2, 3])
            .await
            .unwrap();
        let mut completed = 0;
        while completed < 3 {
            let kids = engine
                .executions(
                    &ListFilter::all()
                        .parent("approvals")
                        .status(Status::Suspended),
                )
                .await
                .unwrap();
            let mut any = false;
            for kid in kids {
                let described = engine.describe(&kid.id).await.unwrap();
                if let Some(cb) = described
                    .callbacks
                    .iter()
                    .find(|c| matches!(c.state, durable_core::CallbackState::Pending))
                {
                    engine.complete_callback(&cb.id, &true).await.unwrap();
                    completed += 1;
                    any = true;
                }
            }
            if !any {
                tokio::task::yield_now().await;
            }
        }
        let batch = handle.result().await.unwrap();
        let values: Vec<u64> = batch.succeeded().map(|r| r.clone().unwrap()).collect();
        assert_eq!(values, vec![1, 2, 3]);
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_memory() {
        children_waiting_for_callbacks_are_woken_by_their_completion(Backing::memory()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sled() {
        children_waiting_for_callbacks_are_woken_by_their_completion(Backing::sled(
            "batch-callbacks",
        ))
        .await;
    }
}

async fn a_plain_async_fn_is_a_step_body(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = open(&backing, &clock).await;
    let batch = engine
        .start(halves, "halves", vec![4, 7, 10])
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(batch.succeeded().copied().collect::<Vec<_>>(), vec![2, 5]);
    assert_eq!(
        batch.failures().map(|(i, _)| i).collect::<Vec<_>>(),
        vec![1]
    );
    // No child executions: the items were steps.
    let children = engine
        .executions(&ListFilter::all().parent("halves"))
        .await
        .unwrap();
    assert!(children.is_empty());
    engine.shutdown().await;
}

/// Calls `double` through a local, which `#[durable]` cannot name to register it.
#[durable]
async fn through_a_local(ctx: Ctx, numbers: Vec<u64>) -> BatchResult<Result<u64, String>> {
    ctx.map("double", numbers, |n: u64| {
        let workflow = double;
        ctx.call(workflow, n)
    })
    .await
}

/// How many items the file at `path` says (read whenever the batch is resumed: a batch's
/// arguments are evaluated again then).
fn size_of(path: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Maps over `0..n` where `n` comes from a file, so that it can change under a resume.
#[durable]
async fn sized(ctx: Ctx, path: String) -> BatchResult<u64> {
    ctx.map("sized", 0..size_of(&path), |i: usize| async move {
        if i == 0 {
            // Fail once with a delay, so the batch suspends before it completes.
            if durable_core::StepContext::current().unwrap().attempt() == 1 {
                return Err(Failure::new("later"));
            }
        }
        Ok(i as u64)
    })
    .retry(RetryPolicy::fixed(MINUTE).max_attempts(2))
    .await
}

async fn the_history_tells_the_batch_and_bad_input_is_a_typed_error(backing: Backing) {
    let clock = TestClock::new(START);
    let engine = EngineBuilder::with_store(backing.store())
        .register(squares)
        .register(through_a_local)
        .register(sized)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let tag = unique("history");
    let policy = Policy {
        tolerated_failures: Some(0),
        ..Policy::sequential()
    };
    engine
        .start(
            squares,
            &tag,
            (tag.clone(), (0..4).collect(), vec![2], policy),
        )
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    let summaries: Vec<String> = engine
        .history(&tag)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.summary())
        .collect();
    for expected in [
        "batch square: started, 4 items",
        "batch square: item 2 failed",
        "batch square: finished, failure tolerance exceeded",
    ] {
        assert!(
            summaries.iter().any(|s| s == expected),
            "{expected}: {summaries:?}"
        );
    }

    // A workflow the body names only through a local is not registered: a typed error
    // per item, nothing started.
    let batch = engine
        .start(through_a_local, "local", vec![1, 2])
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    for item in batch.items() {
        assert!(
            matches!(&item.error, Some(ItemError::Child(ChildError::NotRegistered { workflow })) if workflow == "double"),
            "{item:?}"
        );
    }

    // Items that change under a resume: the execution fails, saying so.
    let file = std::env::temp_dir().join(format!("{}.size", unique("durable-batch")));
    std::fs::write(&file, "3").unwrap();
    let path = file.to_string_lossy().into_owned();
    let handle = engine.start(sized, "sized", path.clone()).await.unwrap();
    engine
        .wait_until("sized", Until::suspended())
        .await
        .unwrap();
    // The batch resumes on other items: it fails, saying why, rather than mix them up.
    std::fs::write(&file, "5").unwrap();
    clock.advance(MINUTE);
    let err = handle.result().await.unwrap_err();
    assert!(
        matches!(&err, Error::Failed { message, .. } if message.contains("has 5 items now, 3 when it began")),
        "{err:?}"
    );
    let _ = std::fs::remove_file(&file);
    engine.shutdown().await;
}
