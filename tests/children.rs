//! Child workflows (issue 13): `ctx.call(workflow, input)` runs a `#[durable]` fn as a
//! child execution and awaits its output. Every test runs on the memory store and on the
//! sled store (through real restarts where it restarts). No test sleeps in real time.

mod backing;

use backing::{on_both_stores, Backing};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable_core::test_support::{FailWrites, InstrumentedStore};
use durable_core::{
    durable, CallbackError, ChildError, Ctx, Engine, EngineBuilder, ListFilter, MemoryStore,
    Status, Store, TestClock, Timestamp, Until, Waiting,
};
use durable_store_sled::SledStore;

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const MINUTE: Duration = Duration::from_secs(60);

/// How many times each tag's step body ran, to show that no child runs twice.
static RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn runs(tag: &str) -> usize {
    RUNS.lock().unwrap().iter().filter(|t| *t == tag).count()
}

/// Doubles `n` in a step; 13 makes it return an error of its own.
#[durable]
async fn double(ctx: Ctx, tag: String, n: u64) -> Result<u64, String> {
    let doubled = ctx
        .step_infallible("double", || async move {
            RUNS.lock().unwrap().push(format!("{tag}/{n}"));
            n * 2
        })
        .await;
    if n == 13 {
        return Err(format!("{n} is unlucky"));
    }
    Ok(doubled)
}

/// Calls `double` once per number and adds up what the children return, matching on a
/// failed child.
#[durable]
async fn sum_doubles(ctx: Ctx, tag: String, numbers: Vec<u64>) -> Result<u64, String> {
    let mut total = 0;
    for n in numbers {
        match ctx.call(double, (tag.clone(), n)).await {
            Ok(Ok(doubled)) => total += doubled,
            Ok(Err(own)) => return Err(format!("child said: {own}")),
            Err(e) => return Err(format!("child gave nothing: {e}")),
        }
    }
    Ok(total)
}

/// A child that panics in a step: it fails without an output.
#[durable]
async fn explode(ctx: Ctx) -> u64 {
    ctx.step_infallible("explode", || async { panic!("the fuse was short") })
        .await
}

#[durable]
async fn call_explode(ctx: Ctx) -> Result<u64, ChildError> {
    ctx.call(explode, ()).await
}

/// A child that sleeps durably.
#[durable]
async fn nap(ctx: Ctx, minutes: u64) -> u64 {
    ctx.sleep(MINUTE * minutes as u32)
        .name("nap")
        .await
        .expect("the nap is short");
    minutes
}

#[durable]
async fn napper(ctx: Ctx, minutes: u64) -> Result<u64, ChildError> {
    let slept = ctx.call(nap, minutes).await?;
    Ok(slept + 1)
}

/// A child that waits for a callback.
#[durable]
async fn approval(ctx: Ctx) -> Result<bool, CallbackError> {
    let cb = ctx.create_callback::<bool>("approval").await?;
    ctx.wait_callback(&cb).await
}

#[durable]
async fn ask(ctx: Ctx) -> Result<String, ChildError> {
    let answer = ctx.call(approval, ()).await?;
    Ok(match answer {
        Ok(true) => "approved".into(),
        Ok(false) => "rejected".into(),
        Err(e) => format!("no answer: {e}"),
    })
}

/// A child that calls a child.
#[durable]
async fn grandparent(ctx: Ctx, tag: String) -> Result<u64, ChildError> {
    let sum = ctx.call(sum_doubles, (tag, vec![1, 2])).await?;
    Ok(sum.unwrap_or(0) + 1000)
}

/// Invokes `nap` under a chosen id.
#[durable]
async fn nap_by_id(ctx: Ctx, id: String, minutes: u64) -> Result<u64, ChildError> {
    ctx.invoke(nap, id, minutes).await
}

/// Invokes `double` under a chosen id.
#[durable]
async fn double_by_id(ctx: Ctx, id: String, n: u64) -> Result<u64, ChildError> {
    let tag = format!("invoked-{id}");
    let doubled = ctx.invoke(double, id, (tag, n)).await?;
    Ok(doubled.unwrap_or(0))
}

/// An engine that registers only the callers: `#[durable]` registers what they call.
async fn open_over(store: Arc<dyn Store>, clock: &TestClock, every_point: bool) -> Engine {
    EngineBuilder::with_store(store)
        .register(sum_doubles)
        .register(call_explode)
        .register(napper)
        .register(ask)
        .register(grandparent)
        .register(nap_by_id)
        .register(double_by_id)
        .clock(clock.clone())
        .suspend_after_every_point(every_point)
        .open()
        .await
        .expect("engine opens")
}

async fn open(backing: &Backing, clock: &TestClock) -> (Engine, Arc<dyn Store>) {
    let store = backing.store();
    (open_over(store.clone(), clock, false).await, store)
}

async fn children(engine: &Engine, parent: &str) -> Vec<durable_core::ExecutionRecord> {
    engine
        .executions(&ListFilter::all().parent(parent))
        .await
        .expect("lists")
}

/// Waits until `parent` has a child with `status`; returns its id.
async fn until_child(store: &dyn Store, parent: &str, status: Status) -> String {
    loop {
        let page = store
            .list(&ListFilter::all().parent(parent))
            .await
            .expect("lists");
        if let Some(child) = page.iter().find(|c| c.status == status) {
            return child.id.clone();
        }
        tokio::task::yield_now().await;
    }
}

on_both_stores!(
    a_parent_gets_its_childrens_outputs_and_shows_them,
    a_child_that_returns_err_is_matched_on_by_the_parent,
    a_child_that_fails_without_output_is_a_typed_error,
    a_child_sleeps_while_the_parent_restarts,
    a_child_waits_for_a_callback_across_a_restart,
    suspending_after_every_point_starts_one_child_per_call,
    a_child_that_finishes_before_the_parent_suspends_still_wakes_it,
    a_failed_creation_of_the_child_is_retried_and_starts_one_child,
    children_call_children,
    invoke_starts_an_execution_under_the_given_id,
    invoke_attaches_to_an_execution_started_elsewhere,
    invoke_refuses_an_id_held_by_another_start,
    two_executions_invoking_one_id_share_one_run,
);

async fn a_parent_gets_its_childrens_outputs_and_shows_them(backing: Backing) {
    let clock = TestClock::new(START);
    let (engine, _store) = open(&backing, &clock).await;
    let tag = format!("outputs-{}", fastrand::u64(..));
    let handle = engine
        .start(sum_doubles, "sum", (tag.clone(), vec![1, 2, 3]))
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), Ok(12));

    let kids = children(&engine, "sum").await;
    assert_eq!(kids.len(), 3, "{kids:?}");
    for kid in &kids {
        assert_eq!(kid.status, Status::Completed);
        assert_eq!(kid.workflow, "double");
        assert!(kid.id.starts_with("sum/w"), "{}", kid.id);
    }
    for n in [1, 2, 3] {
        assert_eq!(runs(&format!("{tag}/{n}")), 1);
    }
    let history: Vec<String> = engine
        .history("sum")
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.summary())
        .filter(|s| s.starts_with("child"))
        .collect();
    assert_eq!(
        history,
        [
            "child double: started",
            "child double: finished, completed",
            "child double: started",
            "child double: finished, completed",
            "child double: started",
            "child double: finished, completed",
        ]
    );
    let description = engine.describe("sum").await.unwrap();
    let shown: Vec<(&str, &str)> = description
        .children
        .iter()
        .map(|c| (c.id.as_str(), c.state))
        .collect();
    let ids: Vec<&str> = kids.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(
        shown,
        ids.iter().map(|id| (*id, "succeeded")).collect::<Vec<_>>()
    );
    // The child's own description and history are there too.
    let child = engine.describe(&kids[0].id).await.unwrap();
    assert_eq!(child.output, Some(serde_json::json!({ "Ok": 2 })));
    let link = child.parent.expect("a child names its parent");
    assert_eq!(link.execution, "sum");
    assert_eq!(
        Some(link.operation.as_str()),
        kids[0].id.strip_prefix("sum/")
    );
    engine.shutdown().await;
}

async fn a_child_that_returns_err_is_matched_on_by_the_parent(backing: Backing) {
    let clock = TestClock::new(START);
    let (engine, _store) = open(&backing, &clock).await;
    let handle = engine
        .start(sum_doubles, "unlucky", ("unlucky".into(), vec![1, 13, 5]))
        .await
        .unwrap();
    assert_eq!(
        handle.result().await.unwrap(),
        Err("child said: 13 is unlucky".to_owned())
    );
    let kids = children(&engine, "unlucky").await;
    let statuses: Vec<Status> = kids.iter().map(|k| k.status).collect();
    assert_eq!(statuses, [Status::Completed, Status::Failed]);
    let last = engine.history("unlucky").await.unwrap();
    assert!(last
        .iter()
        .any(|e| e.event.summary() == "child double: finished, failed"));
    engine.shutdown().await;
}

async fn a_child_that_fails_without_output_is_a_typed_error(backing: Backing) {
    let clock = TestClock::new(START);
    let (engine, _store) = open(&backing, &clock).await;
    let handle = engine.start(call_explode, "fuse", ()).await.unwrap();
    let result = handle.result().await.unwrap();
    let kids = children(&engine, "fuse").await;
    assert_eq!(kids.len(), 1);
    match result {
        Err(ChildError::Failed {
            workflow,
            id,
            message,
        }) => {
            assert_eq!(workflow, "explode");
            assert_eq!(id, kids[0].id);
            assert!(message.contains("the fuse was short"), "{message}");
        }
        other => panic!("expected a failed child, got {other:?}"),
    }
    engine.shutdown().await;
}

async fn a_child_sleeps_while_the_parent_restarts(backing: Backing) {
    let clock = TestClock::new(START);
    let (engine, store) = open(&backing, &clock).await;
    engine.start(napper, "napper", 30).await.unwrap();
    let child = until_child(&*store, "napper", Status::Suspended).await;
    engine
        .wait_until("napper", Until::suspended())
        .await
        .unwrap();
    let description = engine.describe("napper").await.unwrap();
    match description.waiting_for {
        Some(Waiting::Child { workflow, id }) => {
            assert_eq!(workflow, "nap");
            assert_eq!(id, child);
        }
        other => panic!("expected the parent to wait for its child, got {other:?}"),
    }
    assert_eq!(description.children[0].status, Some(Status::Suspended));
    engine.shutdown().await;
    drop((engine, store));

    let (engine, store) = open(&backing, &clock).await;
    clock.advance(MINUTE * 30);
    let handle = engine.handle(napper, "napper");
    assert_eq!(handle.result().await.unwrap(), Ok(31));
    assert_eq!(children(&engine, "napper").await.len(), 1);
    let child_record = store.load(&child).await.unwrap().unwrap();
    assert_eq!(child_record.status, Status::Completed);
    engine.shutdown().await;
}

async fn a_child_waits_for_a_callback_across_a_restart(backing: Backing) {
    let clock = TestClock::new(START);
    let (engine, store) = open(&backing, &clock).await;
    engine.start(ask, "ask", ()).await.unwrap();
    let child = until_child(&*store, "ask", Status::Suspended).await;
    engine.wait_until("ask", Until::suspended()).await.unwrap();
    let callback = engine.describe(&child).await.unwrap().callbacks[0]
        .id
        .clone();
    engine.shutdown().await;
    drop((engine, store));

    let (engine, _store) = open(&backing, &clock).await;
    engine.complete_callback(&callback, &true).await.unwrap();
    let handle = engine.handle(ask, "ask");
    assert_eq!(handle.result().await.unwrap(), Ok("approved".to_owned()));
    assert_eq!(children(&engine, "ask").await.len(), 1);
    engine.shutdown().await;
}

async fn suspending_after_every_point_starts_one_child_per_call(backing: Backing) {
    let clock = TestClock::new(START);
    let store = backing.store();
    let engine = open_over(store, &clock, true).await;
    let tag = format!("every-point-{}", fastrand::u64(..));
    let handle = engine
        .start(sum_doubles, "every", (tag.clone(), vec![4, 5]))
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), Ok(18));
    assert_eq!(children(&engine, "every").await.len(), 2);
    assert_eq!(runs(&format!("{tag}/4")), 1);
    assert_eq!(runs(&format!("{tag}/5")), 1);
    engine.shutdown().await;
}

/// The child's last commit lands while the parent's commit of its wait is held back: the
/// parent's commit is refused (the operation is no longer pending), the parent runs the
/// point again and takes the result, rather than suspending forever.
async fn a_child_that_finishes_before_the_parent_suspends_still_wakes_it(backing: Backing) {
    match &backing {
        Backing::Memory(_) => race(MemoryStore::new()).await,
        Backing::Sled(dir) => race(SledStore::open(dir.path()).expect("sled opens")).await,
    }
}

async fn race<S: Store>(inner: S) {
    let clock = TestClock::new(START);
    let store = Arc::new(InstrumentedStore::new(inner));
    let held = store.hold_commit(|commit| {
        commit.record.id == "race" && commit.record.status == Status::Suspended
    });
    let engine = open_over(store.clone(), &clock, false).await;
    let handle = engine
        .start(sum_doubles, "race", ("race".into(), vec![7]))
        .await
        .unwrap();
    held.reached.await.unwrap();
    let child = until_child(&*store, "race", Status::Completed).await;
    held.release.send(()).unwrap();
    assert_eq!(handle.result().await.unwrap(), Ok(14));
    assert_eq!(children(&engine, "race").await.len(), 1);
    assert_eq!(
        store.load(&child).await.unwrap().unwrap().status,
        Status::Completed
    );
    engine.shutdown().await;
}

async fn children_call_children(backing: Backing) {
    let clock = TestClock::new(START);
    let (engine, _store) = open(&backing, &clock).await;
    let handle = engine
        .start(grandparent, "elder", "nested".into())
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), Ok(1006));
    let kids = children(&engine, "elder").await;
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].workflow, "sum_doubles");
    let grandkids = children(&engine, &kids[0].id).await;
    assert_eq!(grandkids.len(), 2);
    engine.shutdown().await;
}

async fn invoke_starts_an_execution_under_the_given_id(backing: Backing) {
    let clock = TestClock::new(START);
    let (engine, store) = open(&backing, &clock).await;
    engine
        .start(nap_by_id, "invoker", ("the-nap".into(), 5))
        .await
        .unwrap();
    until_child(&*store, "invoker", Status::Suspended).await;
    engine
        .wait_until("invoker", Until::suspended())
        .await
        .unwrap();
    // Started by the invoke, it reports to the invoker: no timer of the invoker's.
    assert_eq!(store.load("invoker").await.unwrap().unwrap().wake_at, None);
    engine.shutdown().await;
    drop((engine, store));

    let (engine, store) = open(&backing, &clock).await;
    clock.advance(MINUTE * 5);
    assert_eq!(
        engine.handle(nap_by_id, "invoker").result().await.unwrap(),
        Ok(5)
    );
    let nap_record = store.load("the-nap").await.unwrap().unwrap();
    assert_eq!(nap_record.status, Status::Completed);
    assert_eq!(nap_record.parent.unwrap().execution, "invoker");
    engine.shutdown().await;
}

async fn invoke_attaches_to_an_execution_started_elsewhere(backing: Backing) {
    let clock = TestClock::new(START);
    let (engine, store) = open(&backing, &clock).await;
    engine.start(nap, "shared-nap", 10).await.unwrap();
    engine
        .wait_until("shared-nap", Until::suspended())
        .await
        .unwrap();
    engine
        .start(nap_by_id, "watcher", ("shared-nap".into(), 10))
        .await
        .unwrap();
    engine
        .wait_until("watcher", Until::suspended())
        .await
        .unwrap();
    // Not started by it: the watcher looks again on a timer.
    let watcher = store.load("watcher").await.unwrap().unwrap();
    assert_eq!(
        watcher.wake_at,
        Some(START.saturating_add(Duration::from_secs(1)))
    );
    engine.shutdown().await;
    drop((engine, store));

    let (engine, store) = open(&backing, &clock).await;
    clock.advance(MINUTE * 10);
    engine
        .wait_until("shared-nap", Until::status(Status::Completed))
        .await
        .unwrap();
    // The watcher looked (its overdue timer fired) before or after the nap ended: it has
    // the result, or it has set its next look, at most a minute away.
    let first_look = START.saturating_add(Duration::from_secs(1));
    let settled = Until::matching("finished or watching again", move |record, _| {
        record.status == Status::Completed
            || (record.status == Status::Suspended
                && record.wake_at.is_some_and(|at| at > first_look))
    });
    let watcher = engine.wait_until("watcher", settled).await.unwrap();
    if let Some(at) = watcher.wake_at {
        assert!(at <= clock.now().saturating_add(MINUTE), "{at:?}");
        clock.advance(at.saturating_duration_since(clock.now()));
    }
    assert_eq!(
        engine.handle(nap_by_id, "watcher").result().await.unwrap(),
        Ok(10)
    );
    assert_eq!(
        store.load("shared-nap").await.unwrap().unwrap().parent,
        None
    );
    assert!(engine
        .history("watcher")
        .await
        .unwrap()
        .iter()
        .any(|e| e.event.summary() == "child nap: finished, completed"));
    engine.shutdown().await;
}

async fn invoke_refuses_an_id_held_by_another_start(backing: Backing) {
    let clock = TestClock::new(START);
    let (engine, _store) = open(&backing, &clock).await;
    engine.start(nap, "taken", 3).await.unwrap();
    let other_input = engine
        .start(nap_by_id, "other-input", ("taken".into(), 4))
        .await
        .unwrap();
    match other_input.result().await.unwrap() {
        Err(ChildError::IdConflict { id, reason }) => {
            assert_eq!(id, "taken");
            assert!(reason.contains("different input"), "{reason}");
        }
        other => panic!("expected an id conflict, got {other:?}"),
    }
    let other_workflow = engine
        .start(double_by_id, "other-workflow", ("taken".into(), 3))
        .await
        .unwrap();
    match other_workflow.result().await.unwrap() {
        Err(ChildError::IdConflict { reason, .. }) => {
            assert!(reason.contains("\"nap\""), "{reason}");
        }
        other => panic!("expected an id conflict, got {other:?}"),
    }
    engine.shutdown().await;
}

async fn two_executions_invoking_one_id_share_one_run(backing: Backing) {
    let clock = TestClock::new(START);
    let (engine, store) = open(&backing, &clock).await;
    let id = format!("once-{}", fastrand::u64(..));
    let first = engine
        .start(double_by_id, "first", (id.clone(), 21))
        .await
        .unwrap();
    let second = engine
        .start(double_by_id, "second", (id.clone(), 21))
        .await
        .unwrap();
    while store.load(&id).await.unwrap().is_none() {
        tokio::task::yield_now().await;
    }
    engine
        .wait_until(&id, Until::status(Status::Completed))
        .await
        .unwrap();
    // The one that started it is woken by it; the other one may be watching, and looks
    // again a second after it began.
    for parent in ["first", "second"] {
        let settled = Until::matching("finished or watching", |record, _| {
            record.status == Status::Completed
                || (record.status == Status::Suspended && record.wake_at.is_some())
        });
        engine.wait_until(parent, settled).await.unwrap();
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(first.result().await.unwrap(), Ok(42));
    assert_eq!(second.result().await.unwrap(), Ok(42));
    assert_eq!(runs(&format!("invoked-{id}/21")), 1);
    engine.shutdown().await;
}

/// The store fails the child's creation, right after the parent committed the operation
/// the child reports to (as a crash between the two would leave it): the engine runs the
/// parent again from that commit, which creates the child once and goes on.
async fn a_failed_creation_of_the_child_is_retried_and_starts_one_child(backing: Backing) {
    match &backing {
        Backing::Memory(_) => failed_creation(MemoryStore::new()).await,
        Backing::Sled(dir) => {
            failed_creation(SledStore::open(dir.path()).expect("sled opens")).await
        }
    }
}

async fn failed_creation<S: Store>(inner: S) {
    // Auto-advancing: after a failed write the engine runs the execution again after
    // the healer's backoff on this clock (see `Engine::health`).
    let clock = TestClock::new(START).auto_advance(true);
    let store = Arc::new(InstrumentedStore::new(inner));
    // The parent's first commit at the call: the operation, still running.
    let held =
        store.hold_commit(|commit| commit.record.id == "flaky" && !commit.operations.is_empty());
    let engine = open_over(store.clone(), &clock, false).await;
    let tag = format!("flaky-{}", fastrand::u64(..));
    let handle = engine
        .start(sum_doubles, "flaky", (tag.clone(), vec![8]))
        .await
        .unwrap();
    held.reached.await.unwrap();
    // The write after the held commit is the child's creation.
    store.fail_writes(FailWrites::Next(1));
    held.release.send(()).unwrap();
    engine
        .wait_until(
            "flaky",
            Until::matching("the creation failed", {
                let store = store.clone();
                move |_, _| store.counts().failed_writes > 0
            }),
        )
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), Ok(16));
    assert_eq!(children(&engine, "flaky").await.len(), 1);
    assert_eq!(runs(&format!("{tag}/8")), 1);
    engine.shutdown().await;
}
