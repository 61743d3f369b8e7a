//! Changing code under running executions: every test runs an execution on one version of
//! a workflow over a sled store, closes the engine, reopens the store with an engine that
//! registers another version (a module of the same `#[durable(name = "..")]`), and checks
//! what happens: edits that keep the layout resume on the new code; edits that change it
//! (or state that does not decode) park the execution with a message naming the point,
//! the local and what differs, and registering a compatible version resumes it; a failed
//! execution is re-driven on fixed code without re-running what it did before.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use durable_core::{
    durable, Ctx, Engine, EngineBuilder, Error, Status, TestClock, Timestamp, Until, Workflow,
    WorkflowFn,
};
use durable_store_sled::SledStore;
use serde::{Deserialize, Serialize};

/// A directory removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("durable-versioning-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Dir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A builder over the sled store in `dir` (opened now) with the test clock.
fn builder(dir: &Dir, clock: &TestClock) -> EngineBuilder {
    Engine::builder(SledStore::open(dir.path()).expect("the store opens")).clock(clock.clone())
}

/// How long every workflow below sleeps.
const NAP: Duration = Duration::from_secs(60);

/// Starts `id` on an engine with only `old` registered, waits until it sleeps, and closes
/// the engine (and the store).
async fn sleeping_on<F: WorkflowFn>(
    dir: &Dir,
    clock: &TestClock,
    old: F,
    id: &str,
    input: <F::Workflow as Workflow>::Input,
) {
    let engine = builder(dir, clock).register(old).open().await.unwrap();
    engine.start(old, id, input).await.unwrap();
    engine.wait_until(id, Until::suspended()).await.unwrap();
    engine.shutdown().await;
}

/// Runs `id` (started on `old` and sleeping) on an engine with only `new` registered:
/// expects the deploy check to flag it and the execution to park; returns the message.
/// Then reopens with `old` and expects it to complete with `old_output`.
async fn parks_on_new_code<Old, New>(
    old: Old,
    new: New,
    input: <Old::Workflow as Workflow>::Input,
    old_output: <Old::Workflow as Workflow>::Output,
) -> String
where
    Old: WorkflowFn,
    New: WorkflowFn,
    <Old::Workflow as Workflow>::Output: PartialEq + std::fmt::Debug,
    <New::Workflow as Workflow>::Output: std::fmt::Debug,
{
    let dir = Dir::new();
    let clock = TestClock::new(Timestamp::from_millis(1_000_000));
    sleeping_on(&dir, &clock, old, "x", input).await;

    // The deploy check sees it before anything runs.
    let check = builder(&dir, &clock).register(new);
    let stranded = check.check_layouts().await.unwrap();
    assert_eq!(stranded.len(), 1, "{stranded:#?}");
    assert_eq!(
        (stranded[0].id.as_str(), stranded[0].status),
        ("x", Status::Suspended)
    );
    let engine = check.open().await.unwrap();
    clock.advance(NAP);
    let message = match engine.handle(new, "x").result().await {
        Err(Error::Parked { message, .. }) => message,
        other => panic!("expected it parked, got {other:?}"),
    };
    assert_eq!(
        message, stranded[0].reason,
        "the check says what parking says"
    );
    let described = engine.describe("x").await.unwrap();
    assert_eq!(described.status, Status::Parked);
    assert_eq!(described.message.as_deref(), Some(message.as_str()));
    // No registered version reads the frame, so none decodes it (into the wrong fields).
    assert!(described.locals.is_empty(), "{:?}", described.locals);
    assert!(described.locals_unavailable.is_some());
    engine.shutdown().await;

    // Registering the version that wrote it resumes it, its data intact.
    let check = builder(&dir, &clock).register(old);
    assert!(check.check_layouts().await.unwrap().is_empty());
    let engine = check.open().await.unwrap();
    assert_eq!(engine.handle(old, "x").result().await.unwrap(), old_output);
    engine.shutdown().await;
    message
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
}

// ---- the swapped `u32` fields ---------------------------------------------------------

mod swap_v1 {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Pair {
        pub a: u32,
        pub b: u32,
    }

    #[durable(name = "swap")]
    pub async fn swap(ctx: Ctx, n: u32) -> String {
        let pair = Pair { a: n, b: n + 1 };
        ctx.sleep(NAP).await.unwrap();
        format!("a={} b={}", pair.a, pair.b)
    }
}

mod swap_v2 {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Pair {
        pub b: u32,
        pub a: u32,
    }

    #[durable(name = "swap")]
    pub async fn swap(ctx: Ctx, n: u32) -> String {
        let pair = Pair { a: n, b: n + 1 };
        ctx.sleep(NAP).await.unwrap();
        format!("a={} b={}", pair.a, pair.b)
    }
}

#[tokio::test]
async fn swapped_fields_of_a_saved_struct_park_instead_of_resuming_exchanged() {
    // Same tokens in the function: only the struct changed.
    let message = parks_on_new_code(swap_v1::swap, swap_v2::swap, 1, "a=1 b=2".into()).await;
    assert_mentions(
        &message,
        &[
            "workflow \"swap\"",
            "point 0 (`ctx.sleep(..)`",
            "local `pair`",
            "field `b` of `Pair`: was u32 at position 1, now at 0",
        ],
    );
}

// ---- a changed enum -------------------------------------------------------------------

mod tier_v1 {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Tier {
        Gold,
        Silver,
    }

    #[durable(name = "tier")]
    pub async fn tier(ctx: Ctx, gold: bool) -> String {
        let tier = if gold { Tier::Gold } else { Tier::Silver };
        ctx.sleep(NAP).await.unwrap();
        format!("{tier:?}")
    }
}

mod tier_v2 {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Tier {
        Silver,
        Gold,
    }

    #[durable(name = "tier")]
    pub async fn tier(ctx: Ctx, gold: bool) -> String {
        let tier = if gold { Tier::Gold } else { Tier::Silver };
        ctx.sleep(NAP).await.unwrap();
        format!("{tier:?}")
    }
}

#[tokio::test]
async fn reordered_enum_variants_park() {
    let message = parks_on_new_code(tier_v1::tier, tier_v2::tier, true, "Gold".into()).await;
    assert_mentions(
        &message,
        &[
            "local `tier`",
            "variant `Gold` of `Tier`: was at position 0, now at 1",
        ],
    );
}

// ---- a changed step outcome type ------------------------------------------------------

mod fetch_v1 {
    use super::*;

    #[durable(name = "fetch")]
    pub async fn fetch(ctx: Ctx, n: u32) -> u64 {
        let got = ctx
            .step_infallible("fetch", move || async move { n * 7 })
            .await;
        ctx.sleep(NAP).await.unwrap();
        u64::from(got)
    }
}

mod fetch_v2 {
    use super::*;

    #[durable(name = "fetch")]
    pub async fn fetch(ctx: Ctx, n: u32) -> u64 {
        let got = ctx
            .step_infallible("fetch", move || async move { u64::from(n) * 7 })
            .await;
        ctx.sleep(NAP).await.unwrap();
        got
    }
}

#[tokio::test]
async fn a_changed_step_outcome_type_parks() {
    let message = parks_on_new_code(fetch_v1::fetch, fetch_v2::fetch, 3, 21).await;
    assert_mentions(
        &message,
        &[
            "point 1 (`ctx.sleep(..)`",
            "local `got`",
            "was u32, now u64",
        ],
    );
}

// ---- a changed step outcome type with no saved local of it ---------------------------

mod count_v1 {
    use super::*;

    #[durable(name = "count")]
    pub async fn count(ctx: Ctx, n: u32) -> u64 {
        // The outcome is converted at once: the saved local is a `u64` in both versions.
        let total = u64::from(
            ctx.step_infallible("count", move || async move { n * 3 })
                .await,
        );
        ctx.sleep(NAP).await.unwrap();
        total
    }
}

mod count_v2 {
    use super::*;

    #[durable(name = "count")]
    pub async fn count(ctx: Ctx, n: u32) -> u64 {
        let total = ctx
            .step_infallible("count", move || async move { u64::from(n) * 3 })
            .await;
        ctx.sleep(NAP).await.unwrap();
        total
    }
}

#[tokio::test]
async fn a_changed_step_outcome_type_alone_parks() {
    // Only the outcome differs: an execution past the step would resume, but one that
    // stopped between the step's commit and the next point's would decode a `u32`
    // outcome as a `u64`, so the layout covers each point's outcome.
    let message = parks_on_new_code(count_v1::count, count_v2::count, 4, 12).await;
    assert_mentions(
        &message,
        &[
            "point 0 (`ctx.step_infallible(\"count\", ..)`, line ",
            "): outcome: was u32, now u64",
        ],
    );
    assert!(!message.contains("local `total`"), "{message}");
}

// ---- a renamed local ------------------------------------------------------------------

mod rename_v1 {
    use super::*;

    #[durable(name = "rename")]
    pub async fn rename(ctx: Ctx, n: u32) -> u32 {
        let total = n + 1;
        ctx.sleep(NAP).await.unwrap();
        total
    }
}

mod rename_v2 {
    use super::*;

    #[durable(name = "rename")]
    pub async fn rename(ctx: Ctx, n: u32) -> u32 {
        let sum = n + 1;
        ctx.sleep(NAP).await.unwrap();
        sum
    }
}

#[tokio::test]
async fn a_renamed_local_parks() {
    let message = parks_on_new_code(rename_v1::rename, rename_v2::rename, 4, 5).await;
    assert_mentions(
        &message,
        &["local `total`: no longer saved there", "local `sum` is new"],
    );
}

// ---- an added point -------------------------------------------------------------------

mod added_v1 {
    use super::*;

    #[durable(name = "added")]
    pub async fn added(ctx: Ctx, n: u32) -> u32 {
        ctx.sleep(NAP).await.unwrap();
        n
    }
}

mod added_v2 {
    use super::*;

    #[durable(name = "added")]
    pub async fn added(ctx: Ctx, n: u32) -> u32 {
        ctx.sleep(NAP).await.unwrap();
        ctx.sleep(NAP).await.unwrap();
        n
    }
}

#[tokio::test]
async fn an_added_point_parks() {
    let message = parks_on_new_code(added_v1::added, added_v2::added, 9, 9).await;
    assert_mentions(&message, &["point 1 (`ctx.sleep(..)`", "is new"]);
}

// ---- edits that keep the layout -------------------------------------------------------

static BASE_RUNS: AtomicU32 = AtomicU32::new(0);

mod fix_v1 {
    use super::*;

    #[durable(name = "fix")]
    pub async fn fix(ctx: Ctx, n: u32) -> String {
        let base = ctx
            .step_infallible("base", move || async move {
                BASE_RUNS.fetch_add(1, Ordering::SeqCst);
                n * 10
            })
            .await;
        ctx.sleep(NAP).await.unwrap();
        let extra = ctx.step_infallible("extra", || async { 1u32 }).await;
        println!("old log line: {base}");
        // The bug: subtracts.
        format!("{}", base - extra)
    }
}

mod fix_v2 {
    use super::*;

    #[durable(name = "fix")]
    pub async fn fix(ctx: Ctx, n: u32) -> String {
        let base = ctx
            .step_infallible("base", move || async move {
                BASE_RUNS.fetch_add(1, Ordering::SeqCst);
                n * 10
            })
            .await;
        ctx.sleep(NAP).await.unwrap();
        // A changed step body.
        let extra = ctx.step_infallible("extra", || async { 2u32 }).await;
        println!("a reworded log line, base {base}");
        // The fix, between points.
        format!("{}", base + extra)
    }
}

#[tokio::test]
async fn a_fix_between_points_a_step_body_and_a_log_line_reach_a_sleeping_execution() {
    let dir = Dir::new();
    let clock = TestClock::new(Timestamp::from_millis(1_000_000));
    sleeping_on(&dir, &clock, fix_v1::fix, "x", 10).await;
    let old = <fix_v1::fix::Workflow as Workflow>::FINGERPRINT;
    let new = <fix_v2::fix::Workflow as Workflow>::FINGERPRINT;
    assert_ne!(old, new, "the code fingerprints differ");

    let check = builder(&dir, &clock).register(fix_v2::fix);
    assert!(check.check_layouts().await.unwrap().is_empty());
    let engine = check.open().await.unwrap();
    let before = engine.describe("x").await.unwrap();
    assert_eq!(before.fingerprint, old);
    assert_eq!(before.locals.len(), 1);
    assert_eq!(before.locals[0].name, "base");
    assert_eq!(before.locals[0].value, serde_json::json!(100));
    clock.advance(NAP);
    assert_eq!(
        engine.handle(fix_v2::fix, "x").result().await.unwrap(),
        "102",
        "the new step body and the fix ran"
    );
    assert_eq!(BASE_RUNS.load(Ordering::SeqCst), 1, "no step ran twice");
    let after = engine.describe("x").await.unwrap();
    assert_eq!(
        after.fingerprint, new,
        "the record names the code that finished it"
    );
    engine.shutdown().await;
}

// ---- state that does not decode -------------------------------------------------------

mod pct_v1 {
    use super::*;

    /// A percentage; this version accepts any value.
    #[derive(Debug, Clone, Copy, Serialize, Deserialize)]
    #[serde(try_from = "u32", into = "u32")]
    pub struct Percent(pub u32);

    impl TryFrom<u32> for Percent {
        type Error = String;
        fn try_from(v: u32) -> Result<Self, String> {
            Ok(Percent(v))
        }
    }

    impl From<Percent> for u32 {
        fn from(p: Percent) -> u32 {
            p.0
        }
    }

    #[durable(name = "pct")]
    pub async fn pct(ctx: Ctx, v: u32) -> String {
        let p = Percent(v);
        let label = "discount".to_string();
        ctx.sleep(NAP).await.unwrap();
        format!("{label}: {}", u32::from(p))
    }
}

mod pct_v2 {
    use super::*;

    /// A percentage; this version refuses values over 100, with the same layout.
    #[derive(Debug, Clone, Copy, Serialize, Deserialize)]
    #[serde(try_from = "u32", into = "u32")]
    pub struct Percent(pub u32);

    impl TryFrom<u32> for Percent {
        type Error = String;
        fn try_from(v: u32) -> Result<Self, String> {
            if v > 100 {
                Err(format!("{v} is over 100"))
            } else {
                Ok(Percent(v))
            }
        }
    }

    impl From<Percent> for u32 {
        fn from(p: Percent) -> u32 {
            p.0
        }
    }

    #[durable(name = "pct")]
    pub async fn pct(ctx: Ctx, v: u32) -> String {
        let p = Percent(v.min(100));
        let label = "discount".to_string();
        ctx.sleep(NAP).await.unwrap();
        format!("{label}: {}", u32::from(p))
    }
}

#[tokio::test]
async fn a_frame_that_does_not_decode_parks_and_describe_shows_the_readable_locals() {
    let dir = Dir::new();
    let clock = TestClock::new(Timestamp::from_millis(1_000_000));
    sleeping_on(&dir, &clock, pct_v1::pct, "x", 150).await;

    let engine = builder(&dir, &clock)
        .register(pct_v2::pct)
        .open()
        .await
        .unwrap();
    clock.advance(NAP);
    let message = match engine.handle(pct_v2::pct, "x").result().await {
        Err(Error::Parked { message, .. }) => message,
        other => panic!("expected it parked, got {other:?}"),
    };
    assert_mentions(
        &message,
        &[
            "workflow \"pct\"",
            "at point 0 (`ctx.sleep(..)`",
            "does not decode",
            "local `p`",
            "150 is over 100",
        ],
    );
    let described = engine.describe("x").await.unwrap();
    assert_eq!(described.status, Status::Parked);
    let local = |name: &str| {
        described
            .locals
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("{name} in {:?}", described.locals))
    };
    let p = local("p").unreadable.as_deref().unwrap_or_default();
    assert!(p.contains("150 is over 100"), "{p}");
    assert_eq!(local("label").value, serde_json::json!("discount"));
    assert_eq!(local("label").unreadable, None);
    engine.shutdown().await;

    // The code that reads it, registered again, resumes it.
    let engine = builder(&dir, &clock)
        .register(pct_v1::pct)
        .open()
        .await
        .unwrap();
    assert_eq!(
        engine.handle(pct_v1::pct, "x").result().await.unwrap(),
        "discount: 150"
    );
    engine.shutdown().await;
}

// ---- two versions side by side --------------------------------------------------------

mod order_v1 {
    use super::*;

    #[durable(name = "order")]
    pub async fn order(ctx: Ctx, n: u32) -> String {
        let a = n;
        ctx.sleep(NAP).await.unwrap();
        format!("v1 {a}")
    }
}

mod order_v2 {
    use super::*;

    #[durable(name = "order")]
    pub async fn order(ctx: Ctx, n: u32) -> String {
        let a = n;
        let b = n * 2;
        ctx.sleep(NAP).await.unwrap();
        format!("v2 {a} {b}")
    }
}

#[tokio::test]
async fn two_versions_side_by_side_drain_old_executions_on_the_old_one() {
    let dir = Dir::new();
    let clock = TestClock::new(Timestamp::from_millis(1_000_000));
    sleeping_on(&dir, &clock, order_v1::order, "old", 1).await;

    let engine = builder(&dir, &clock)
        .register(order_v1::order)
        .register(order_v2::order)
        .open()
        .await
        .unwrap();
    engine.start(order_v2::order, "new", 5).await.unwrap();
    engine.wait_until("new", Until::suspended()).await.unwrap();
    clock.advance(NAP);
    assert_eq!(
        engine
            .handle(order_v1::order, "old")
            .result()
            .await
            .unwrap(),
        "v1 1"
    );
    assert_eq!(
        engine
            .handle(order_v2::order, "new")
            .result()
            .await
            .unwrap(),
        "v2 5 10"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn versions_with_the_same_tokens_and_different_types_are_both_kept() {
    assert_eq!(
        <swap_v1::swap::Workflow as Workflow>::FINGERPRINT,
        <swap_v2::swap::Workflow as Workflow>::FINGERPRINT,
        "only the struct differs"
    );
    let dir = Dir::new();
    let clock = TestClock::new(Timestamp::from_millis(1_000_000));
    sleeping_on(&dir, &clock, swap_v1::swap, "old", 1).await;
    let engine = builder(&dir, &clock)
        .register(swap_v1::swap)
        .register(swap_v2::swap)
        .open()
        .await
        .unwrap();
    engine.start(swap_v2::swap, "new", 5).await.unwrap();
    engine.wait_until("new", Until::suspended()).await.unwrap();
    let v2 = durable_core::Layout::of::<swap_v2::swap::Workflow>().fingerprint();
    assert_eq!(
        engine.describe("new").await.unwrap().layout,
        Some(v2),
        "the new execution runs on the new types"
    );
    clock.advance(NAP);
    assert_eq!(
        engine.handle(swap_v1::swap, "old").result().await.unwrap(),
        "a=1 b=2"
    );
    assert_eq!(
        engine.handle(swap_v2::swap, "new").result().await.unwrap(),
        "a=5 b=6"
    );
    engine.shutdown().await;
}

// ---- re-drive -------------------------------------------------------------------------

static A_RUNS: AtomicU32 = AtomicU32::new(0);
static B_RUNS: AtomicU32 = AtomicU32::new(0);
static C_RUNS: AtomicU32 = AtomicU32::new(0);

mod redrive_v1 {
    use super::*;

    #[durable(name = "redrive")]
    pub async fn job(ctx: Ctx, n: u32) -> u32 {
        let a = ctx
            .step_infallible("a", move || async move {
                A_RUNS.fetch_add(1, Ordering::SeqCst);
                n + 1
            })
            .await;
        let b = ctx
            .step_infallible("b", move || async move {
                B_RUNS.fetch_add(1, Ordering::SeqCst);
                a * 2
            })
            .await;
        if b > 10 {
            panic!("bug: cannot handle {b}");
        }
        ctx.step_infallible("c", move || async move {
            C_RUNS.fetch_add(1, Ordering::SeqCst);
            b + 1
        })
        .await
    }
}

mod redrive_v2 {
    use super::*;

    #[durable(name = "redrive")]
    pub async fn job(ctx: Ctx, n: u32) -> u32 {
        let a = ctx
            .step_infallible("a", move || async move {
                A_RUNS.fetch_add(1, Ordering::SeqCst);
                n + 1
            })
            .await;
        let b = ctx
            .step_infallible("b", move || async move {
                B_RUNS.fetch_add(1, Ordering::SeqCst);
                a * 2
            })
            .await;
        if b > 1000 {
            panic!("bug: cannot handle {b}");
        }
        ctx.step_infallible("c", move || async move {
            C_RUNS.fetch_add(1, Ordering::SeqCst);
            b + 1
        })
        .await
    }
}

#[tokio::test]
async fn a_failed_execution_is_redriven_on_fixed_code_without_rerunning_its_steps() {
    let dir = Dir::new();
    let clock = TestClock::new(Timestamp::from_millis(1_000_000));
    let engine = builder(&dir, &clock)
        .register(redrive_v1::job)
        .open()
        .await
        .unwrap();
    engine.start(redrive_v1::job, "x", 10).await.unwrap();
    match engine.handle(redrive_v1::job, "x").result().await {
        Err(Error::Failed { message, .. }) => assert_mentions(&message, &["cannot handle 22"]),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(
        [&A_RUNS, &B_RUNS, &C_RUNS].map(|c| c.load(Ordering::SeqCst)),
        [1, 1, 0]
    );
    engine.shutdown().await;

    // An engine without a version that reads it refuses, naming why.
    let engine = builder(&dir, &clock)
        .register(order_v1::order)
        .open()
        .await
        .unwrap();
    match engine.redrive("x").await {
        Err(Error::NoCompatibleVersion { id, message }) => {
            assert_eq!(id, "x");
            assert_mentions(&message, &["\"redrive\" is not registered"]);
        }
        other => panic!("expected NoCompatibleVersion, got {other:?}"),
    }
    engine.shutdown().await;

    // The fixed code, deployed: a real restart on the same store.
    let engine = builder(&dir, &clock)
        .register(redrive_v2::job)
        .open()
        .await
        .unwrap();
    assert!(matches!(
        engine.redrive("nobody").await,
        Err(Error::NotFound { .. })
    ));
    engine.start(redrive_v2::job, "small", 1).await.unwrap();
    assert_eq!(
        engine
            .handle(redrive_v2::job, "small")
            .result()
            .await
            .unwrap(),
        5
    );
    match engine.redrive("small").await {
        Err(Error::NotFailed { status, .. }) => assert_eq!(status, Status::Completed),
        other => panic!("expected NotFailed, got {other:?}"),
    }
    let runs = || [&A_RUNS, &B_RUNS, &C_RUNS].map(|c| c.load(Ordering::SeqCst));
    assert_eq!(runs(), [2, 2, 1], "\"small\" ran each step once");

    engine.redrive("x").await.unwrap();
    assert_eq!(
        engine.handle(redrive_v2::job, "x").result().await.unwrap(),
        23
    );
    assert_eq!(
        runs(),
        [2, 2, 2],
        "re-driving \"x\" ran only the step after its last committed point"
    );
    let history = engine.history("x").await.unwrap();
    let summary: Vec<String> = history.iter().map(|e| e.event.summary()).collect();
    assert!(summary.contains(&"redriven".to_owned()), "{summary:?}");
    engine.shutdown().await;
}

static LOOKUPS: AtomicU32 = AtomicU32::new(0);

mod refund_v1 {
    use super::*;

    #[durable(name = "refund")]
    pub async fn refund(ctx: Ctx, amount: u32) -> Result<u32, String> {
        let fee = ctx
            .step_infallible("lookup", move || async move {
                LOOKUPS.fetch_add(1, Ordering::SeqCst);
                amount / 10
            })
            .await;
        // The bug: refuses large refunds it should allow.
        if amount > 100 {
            return Err(format!("refund of {amount} refused"));
        }
        Ok(amount - fee)
    }
}

mod refund_v2 {
    use super::*;

    #[durable(name = "refund")]
    pub async fn refund(ctx: Ctx, amount: u32) -> Result<u32, String> {
        let fee = ctx
            .step_infallible("lookup", move || async move {
                LOOKUPS.fetch_add(1, Ordering::SeqCst);
                amount / 10
            })
            .await;
        if amount > 100_000 {
            return Err(format!("refund of {amount} refused"));
        }
        Ok(amount - fee)
    }
}

#[tokio::test]
async fn a_workflow_that_returned_err_keeps_its_frame_and_is_redriven() {
    let dir = Dir::new();
    let clock = TestClock::new(Timestamp::from_millis(1_000_000));
    let engine = builder(&dir, &clock)
        .register(refund_v1::refund)
        .open()
        .await
        .unwrap();
    engine.start(refund_v1::refund, "r", 500).await.unwrap();
    assert_eq!(
        engine
            .handle(refund_v1::refund, "r")
            .result()
            .await
            .unwrap(),
        Err("refund of 500 refused".to_owned())
    );
    let failed = engine.execution("r").await.unwrap().unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert!(failed.position.is_some(), "the last frame is kept");
    engine.shutdown().await;

    let engine = builder(&dir, &clock)
        .register(refund_v2::refund)
        .open()
        .await
        .unwrap();
    engine.redrive("r").await.unwrap();
    assert_eq!(
        engine
            .handle(refund_v2::refund, "r")
            .result()
            .await
            .unwrap(),
        Ok(450)
    );
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 1, "the step ran once");
    let done = engine.execution("r").await.unwrap().unwrap();
    assert_eq!((done.status, done.message), (Status::Completed, None));
    engine.shutdown().await;
}

// ---- a recorded outcome that does not decode ------------------------------------------

mod outcome_v1 {
    use super::*;

    #[durable(name = "outcome")]
    pub async fn outcome(ctx: Ctx, v: u32) -> u32 {
        let p = ctx
            .step_infallible("read", move || async move { pct_v1::Percent(v) })
            .await;
        ctx.sleep(NAP).await.unwrap();
        u32::from(p)
    }
}

mod outcome_v2 {
    use super::*;

    #[durable(name = "outcome")]
    pub async fn outcome(ctx: Ctx, v: u32) -> u32 {
        let p = ctx
            .step_infallible("read", move || async move { pct_v2::Percent(v.min(100)) })
            .await;
        ctx.sleep(NAP).await.unwrap();
        u32::from(p)
    }
}

#[tokio::test]
async fn a_recorded_outcome_that_does_not_decode_parks() {
    use durable_core::test_support::{Held, InstrumentedStore};
    use durable_core::{MemoryStore, Store};
    use std::sync::Arc;

    // The process stops after the step's outcome is committed and before the next point
    // is: the commit of the sleep fails, and the engine is closed.
    let store = Arc::new(InstrumentedStore::new(MemoryStore::new()));
    let clock = TestClock::new(Timestamp::from_millis(1_000_000));
    let engine = EngineBuilder::with_store(store.clone())
        .register(outcome_v1::outcome)
        .clock(clock.clone())
        .shutdown_timeout(Duration::from_millis(100))
        .open()
        .await
        .unwrap();
    let mut held = store.hold_commit(|c| c.record.position.as_ref().is_some_and(|p| p.point == 1));
    engine.start(outcome_v1::outcome, "x", 150).await.unwrap();
    let Held { reached, .. } = &mut held;
    reached.await.unwrap();
    held.release_failing();
    engine.shutdown().await;
    let stored = store.load("x").await.unwrap().unwrap();
    assert_eq!(stored.position.as_ref().map(|p| p.point), Some(0));

    // The new code has the same layout, but its `Percent` refuses the recorded 150.
    let engine = EngineBuilder::with_store(store.clone())
        .register(outcome_v2::outcome)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let message = match engine.handle(outcome_v2::outcome, "x").result().await {
        Err(Error::Parked { message, .. }) => message,
        other => panic!("expected it parked, got {other:?}"),
    };
    assert_mentions(
        &message,
        &[
            "at point 0 (`ctx.step_infallible(\"read\", ..)`",
            "recorded outcome",
            "150 is over 100",
        ],
    );
    engine.shutdown().await;
}

// ---- re-drive after a step gave up ----------------------------------------------------

static PREPARED: AtomicU32 = AtomicU32::new(0);
static CHARGES: AtomicU32 = AtomicU32::new(0);
/// The fault, fixed between the failure and the re-drive (the service came back).
static SERVICE_UP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[durable(name = "charge")]
async fn charge(ctx: Ctx, amount: u32) -> Result<u32, String> {
    let cents = ctx
        .step_infallible("prepare", move || async move {
            PREPARED.fetch_add(1, Ordering::SeqCst);
            amount * 100
        })
        .await;
    let receipt = ctx
        .typed_step("charge", move || async move {
            let charge = CHARGES.fetch_add(1, Ordering::SeqCst) + 1;
            // Once fixed, the service still refuses the first charge after the fix: the
            // re-driven step needs a second attempt, which only a fresh budget gives it.
            if SERVICE_UP.load(Ordering::SeqCst) && charge >= 5 {
                Ok(cents + 1)
            } else {
                Err("the payment service is down".to_owned())
            }
        })
        .retry(durable_core::RetryPolicy::fixed(Duration::ZERO).max_attempts(3))
        .await
        .map_err(|e| format!("charge gave up: {e}"))?;
    Ok(receipt)
}

#[tokio::test]
async fn a_step_that_gave_up_runs_again_with_a_fresh_budget_when_redriven() {
    let dir = Dir::new();
    let clock = TestClock::new(Timestamp::from_millis(1_000_000));
    let engine = builder(&dir, &clock).register(charge).open().await.unwrap();
    engine.start(charge, "c", 7).await.unwrap();
    let failed = engine.handle(charge, "c").result().await.unwrap();
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.contains("payment service is down")),
        "{failed:?}"
    );
    let record = engine.execution("c").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Failed);
    let runs = || [&PREPARED, &CHARGES].map(|c| c.load(Ordering::SeqCst));
    assert_eq!(runs(), [1, 3], "the step used its three attempts");
    let described = engine.describe("c").await.unwrap();
    assert_eq!(
        described.point.as_ref().map(|p| (p.id, p.state.as_str())),
        Some((1, "gave up"))
    );
    engine.shutdown().await;

    // The service is back; a real restart on the same store, then the re-drive.
    SERVICE_UP.store(true, Ordering::SeqCst);
    let engine = builder(&dir, &clock).register(charge).open().await.unwrap();
    engine.redrive("c").await.unwrap();
    assert_eq!(engine.handle(charge, "c").result().await.unwrap(), Ok(701));
    assert_eq!(
        runs(),
        [1, 5],
        "the step that gave up ran again (two attempts of a fresh budget), the one before it did not"
    );
    let done = engine.execution("c").await.unwrap().unwrap();
    assert_eq!((done.status, done.message), (Status::Completed, None));
    engine.shutdown().await;
}
