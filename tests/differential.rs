//! Differential tests of the transform: every control-flow shape is compiled twice, once
//! with `#[durable]` and once as a plain `async fn` over an in-memory context with the
//! same API, and run on several inputs. The durable version must give the same result
//! and the same side-effect trace as the plain one, run three ways: uninterrupted; with a
//! forced suspend/resume at every point (frame encoded, dropped, decoded); and on the
//! sled store with the engine shut down and a new one opened on the same directory after
//! every commit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use durable_core::test_support::InstrumentedStore;
use durable_core::{
    durable, Ctx, Engine, EngineBuilder, MemoryStore, RetryPolicy, Status, StepError, Workflow,
    WorkflowFn,
};
use durable_store_sled::{Durability, SledStore};
use serde::{Deserialize, Serialize};

/// A fresh directory, removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("durable-differential-{}-{n}", std::process::id()));
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

/// Runs `wf` on the sled store, restarting after every commit: each engine may claim the
/// execution once (an activation commits once with `suspend_after_every_point`), is shut
/// down after that commit, and a new engine opened on the same directory resumes the
/// execution from the stored frame, until it completes.
async fn run_with_restarts<F: WorkflowFn>(
    wf: F,
    input: <F::Workflow as Workflow>::Input,
) -> <F::Workflow as Workflow>::Output {
    let dir = TempDir::new();
    let mut input = Some(input);
    let mut seen = 0;
    let mut opens = 0u64;
    loop {
        opens += 1;
        let store = Arc::new(InstrumentedStore::new(
            SledStore::open_with(dir.path(), Durability::ProcessCrash).unwrap(),
        ));
        store.limit_claims(Some(1));
        let engine = EngineBuilder::with_store(store)
            .register(wf)
            .suspend_after_every_point(true)
            .open()
            .await
            .unwrap();
        if let Some(input) = input.take() {
            engine.start(wf, "restarted", input).await.unwrap();
        }
        loop {
            let record = engine.execution("restarted").await.unwrap().unwrap();
            match record.status {
                // A workflow that returned `Err` ends `Failed` with its output kept.
                Status::Completed | Status::Failed if record.output.is_some() => {
                    let output = engine.handle(wf, "restarted").result().await.unwrap();
                    engine.shutdown().await;
                    // Every engine ran one activation: a point's commit, or a few when a
                    // step retries at once or marks an attempt started.
                    assert!(
                        opens > 1 || record.seq <= 1,
                        "one engine ran all {} commits: nothing was restarted",
                        record.seq
                    );
                    assert!(opens <= record.seq, "an engine that committed nothing");
                    return output;
                }
                Status::Failed | Status::Parked => panic!("execution ended {record:?}"),
                _ if record.seq > seen => {
                    seen = record.seq;
                    break;
                }
                _ => tokio::task::yield_now().await,
            }
        }
        engine.shutdown().await;
    }
}

/// The same builder API as `durable_core::Ctx`, run directly in memory.
mod plain {
    use std::future::{Future, IntoFuture};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use durable_core::{RetryPolicy, StepError};

    pub struct Ctx;

    pub struct Step<F, P> {
        body: F,
        policy: RetryPolicy,
        retry_if: P,
    }

    pub struct InfallibleStep<F>(F);

    fn always<E>(_: &E) -> bool {
        true
    }

    impl Ctx {
        pub fn typed_step<F, Fut, T, E>(
            &self,
            _name: impl Into<String>,
            body: F,
        ) -> Step<impl Fn(u32) -> Fut, fn(&E) -> bool>
        where
            F: Fn() -> Fut,
            Fut: Future<Output = Result<T, E>>,
        {
            self.step_with_attempt(_name, move |_| body())
        }

        pub fn step_with_attempt<F, Fut, T, E>(
            &self,
            _name: impl Into<String>,
            body: F,
        ) -> Step<F, fn(&E) -> bool>
        where
            F: Fn(u32) -> Fut,
            Fut: Future<Output = Result<T, E>>,
        {
            Step {
                body,
                policy: RetryPolicy::none(),
                retry_if: always,
            }
        }

        pub fn step_infallible<F, Fut, T>(
            &self,
            _name: impl Into<String>,
            body: F,
        ) -> InfallibleStep<F>
        where
            F: FnOnce() -> Fut,
            Fut: Future<Output = T>,
        {
            InfallibleStep(body)
        }
    }

    impl<F, P> Step<F, P> {
        pub fn retry(mut self, policy: RetryPolicy) -> Self {
            self.policy = policy;
            self
        }

        pub fn retry_if<E, Q: Fn(&E) -> bool>(self, retry_if: Q) -> Step<F, Q> {
            Step {
                body: self.body,
                policy: self.policy,
                retry_if,
            }
        }

        pub fn at_most_once(self) -> Self {
            self
        }
    }

    impl<F, P, Fut, T, E> IntoFuture for Step<F, P>
    where
        F: Fn(u32) -> Fut + Unpin,
        P: Fn(&E) -> bool + Unpin,
        Fut: Future<Output = Result<T, E>>,
    {
        type Output = Result<T, StepError<E>>;
        type IntoFuture = StepFuture<F, P, Fut>;

        fn into_future(self) -> Self::IntoFuture {
            StepFuture {
                step: self,
                attempt: 1,
                current: None,
            }
        }
    }

    /// Runs attempts one after another, in memory, with no delay.
    pub struct StepFuture<F, P, Fut> {
        step: Step<F, P>,
        attempt: u32,
        current: Option<Pin<Box<Fut>>>,
    }

    impl<F, P, Fut, T, E> Future for StepFuture<F, P, Fut>
    where
        F: Fn(u32) -> Fut + Unpin,
        P: Fn(&E) -> bool + Unpin,
        Fut: Future<Output = Result<T, E>>,
    {
        type Output = Result<T, StepError<E>>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = &mut *self;
            loop {
                let attempt = this.attempt;
                let body = &this.step.body;
                let fut = this.current.get_or_insert_with(|| Box::pin(body(attempt)));
                let error = match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(v)) => return Poll::Ready(Ok(v)),
                    Poll::Ready(Err(e)) => e,
                };
                this.current = None;
                if this.step.policy.allows_another(attempt) && (this.step.retry_if)(&error) {
                    this.attempt += 1;
                    continue;
                }
                return Poll::Ready(Err(StepError::Failed {
                    error,
                    attempts: attempt,
                }));
            }
        }
    }

    impl<F, Fut, T> IntoFuture for InfallibleStep<F>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        type Output = T;
        type IntoFuture = Pin<Box<Fut>>;

        fn into_future(self) -> Self::IntoFuture {
            Box::pin((self.0)())
        }
    }
}

/// Defines `durable_wf` (with `#[durable]`) and `plain_wf` from one body, plus a test that
/// runs both on every input and compares results and traces.
macro_rules! differential {
    (
        $name:ident, inputs = $inputs:expr,
        |$ctx:ident, $input:ident : $ity:ty| -> $oty:ty $body:block
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use std::sync::Mutex;

            static TRACE: Mutex<Vec<String>> = Mutex::new(Vec::new());

            #[allow(dead_code)]
            fn note(line: impl Into<String>) {
                TRACE.lock().unwrap().push(line.into());
            }

            /// `value`, noted with `tag`: the trace shows the order operands are evaluated in.
            #[allow(dead_code)]
            fn seen<T: std::fmt::Debug>(tag: &str, value: T) -> T {
                note(format!("{tag}={value:?}"));
                value
            }

            fn take_trace() -> Vec<String> {
                std::mem::take(&mut *TRACE.lock().unwrap())
            }

            // The bodies exercise deferred initialization on purpose.
            #[durable]
            #[allow(clippy::needless_late_init)]
            pub async fn durable_wf($ctx: Ctx, $input: $ity) -> $oty $body

            #[allow(unused_mut, unused_variables, clippy::needless_late_init)]
            pub async fn plain_wf($ctx: super::plain::Ctx, $input: $ity) -> $oty $body

            #[tokio::test]
            async fn same_result_and_trace_as_plain_async_fn() {
                for (i, input) in ($inputs).into_iter().enumerate() {
                    let input: $ity = input;
                    take_trace();
                    let expected = plain_wf(super::plain::Ctx, input.clone()).await;
                    let expected_trace = take_trace();
                    for suspend in [false, true] {
                        let engine = Engine::builder(MemoryStore::new())
                            .register(durable_wf)
                            .suspend_after_every_point(suspend)
                            .open()
                            .await
                            .unwrap();
                        let got = engine
                            .start(durable_wf, format!("run-{i}"), input.clone())
                            .await
                            .unwrap()
                            .result()
                            .await
                            .unwrap();
                        let trace = take_trace();
                        assert_eq!(got, expected, "result, input {input:?}, suspend={suspend}");
                        assert_eq!(
                            trace, expected_trace,
                            "trace, input {input:?}, suspend={suspend}"
                        );
                        engine.shutdown().await;
                    }
                    let got = super::run_with_restarts(durable_wf, input.clone()).await;
                    let trace = take_trace();
                    assert_eq!(got, expected, "result, input {input:?}, restarted on sled");
                    assert_eq!(trace, expected_trace, "trace, input {input:?}, restarted on sled");
                }
            }
        }
    };
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    x: i64,
    y: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AppError {
    Step(String),
    Invalid(u32),
}

impl From<StepError<String>> for AppError {
    fn from(e: StepError<String>) -> Self {
        AppError::Step(format!("{e:?}"))
    }
}

fn ok<T>(v: T) -> std::future::Ready<Result<T, String>> {
    std::future::ready(Ok(v))
}

differential!(
    let_patterns_and_shadowing,
    inputs = [0u32, 7],
    |ctx, n: u32| -> Result<String, AppError> {
        let (a, b) = ctx.typed_step("pair", || ok((n, n + 1))).await?;
        note(format!("a={a} b={b}"));
        let a = a + b;
        let a = ctx.typed_step("shadow", || ok(format!("s{a}"))).await?;
        note(a.clone());
        let Point { x, y: mut why } = ctx
            .step_infallible("struct", || async { Point { x: 3, y: 4 } })
            .await;
        why += x;
        let [first, .., last] = ctx
            .step_infallible("array", || async move { [n, 1, 2, 3] })
            .await;
        note(format!("{first} {last} {why}"));
        let Some(q) = ctx
            .step_infallible("maybe", || async move { n.checked_sub(1) })
            .await
        else {
            note("let-else");
            return Ok(format!("{a}-{x}-{why}-none"));
        };
        Ok(format!("{a}-{x}-{why}-{q}"))
    }
);

differential!(
    nested_blocks_and_tail_values,
    inputs = [1u32, 2],
    |ctx, n: u32| -> u32 {
        let outer = {
            let inner = ctx.step_infallible("inner", || async move { n * 5 }).await;
            note(format!("inner={inner}"));
            {
                let deeper = ctx
                    .step_infallible("deeper", || async move { inner + 1 })
                    .await;
                note(format!("deeper={deeper}"));
            }
            inner * 2
        };
        note(format!("outer={outer}"));
        let value = {
            ctx.step_infallible("tail", || async move { outer + 3 })
                .await
        };
        ctx.step_infallible("last", || async move { value * 10 })
            .await
    }
);

differential!(if_and_if_let, inputs = [0u32, 1, 2, 3], |ctx,
                                                        n: u32|
 -> Result<
    i64,
    AppError,
> {
    let mut acc = 0i64;
    if ctx
        .step_infallible("cond", || async move { n.is_multiple_of(2) })
        .await
    {
        acc += ctx.typed_step("even", || ok(10i64)).await?;
        note("even");
    } else if let Some(v) = ctx.typed_step("odd", || ok((n > 1).then_some(n))).await? {
        acc += i64::from(v);
        note(format!("odd {v}"));
    } else {
        note("neither");
    }
    let chosen = if n > 1 {
        ctx.step_infallible("big", || async { 100i64 }).await
    } else {
        note("small");
        1
    };
    if acc > 5 {
        note("acc large");
    }
    Ok(acc + chosen)
});

differential!(
    match_with_guards_and_bindings,
    inputs = [0u32, 2, 5, 9],
    |ctx, n: u32| -> String {
        let picked = ctx
            .step_infallible("pick", || async move {
                if n == 0 {
                    None
                } else {
                    Some(n)
                }
            })
            .await;
        let described = match picked {
            Some(k) if k > 4 => {
                let doubled = ctx.step_infallible("double", || async move { k * 2 }).await;
                note(format!("big {k}"));
                format!("big:{doubled}")
            }
            Some(k @ 1..=3) => {
                note("small");
                format!("small:{k}")
            }
            Some(other) => format!("other:{other}"),
            None => {
                ctx.step_infallible("none", || async { "none".to_string() })
                    .await
            }
        };
        match ctx
            .step_infallible("scrutinee", || async move { n % 3 })
            .await
        {
            0 => note("zero"),
            r => {
                let extra = ctx.step_infallible("rest", || async move { r + 100 }).await;
                note(format!("rest {extra}"));
            }
        }
        described
    }
);

differential!(loops_of_every_kind, inputs = [0u32, 3], |ctx,
                                                        n: u32|
 -> Vec<u64> {
    let mut out = Vec::new();
    let mut i = 0u64;
    let found = loop {
        i = ctx.step_infallible("loop", || async move { i + 1 }).await;
        if i > u64::from(n) + 1 {
            break i * 100;
        }
        note(format!("loop {i}"));
    };
    out.push(found);
    let mut w = 0u32;
    while w < n {
        w += ctx.step_infallible("while", || async { 1u32 }).await;
    }
    out.push(u64::from(w));
    let mut stack = vec![1u64, 2, 3];
    while let Some(top) = stack.pop() {
        let t = ctx
            .step_infallible("while-let", || async move { top * 3 })
            .await;
        out.push(t);
    }
    for word in vec!["a".to_string(), "bb".to_string()] {
        let len = ctx
            .step_infallible("for-vec", || async { word.len() as u64 })
            .await;
        note(format!("{word}:{len}"));
        out.push(len);
    }
    for k in 0..n {
        out.push(
            ctx.step_infallible("for-range", || async move { u64::from(k) })
                .await,
        );
    }
    for k in (1..=2u64).rev() {
        out.push(ctx.step_infallible("for-rev", || async move { k }).await);
    }
    out
});

differential!(labels_break_continue, inputs = [2u32, 5], |ctx,
                                                          n: u32|
 -> (
    u32,
    Vec<String>
) {
    let mut seen = Vec::new();
    let mut total = 0;
    'outer: for a in 0..n {
        let mut b = 0;
        'inner: loop {
            b += 1;
            let v = ctx
                .step_infallible("cell", || async move { a * 10 + b })
                .await;
            if v % 3 == 0 {
                seen.push(format!("skip {v}"));
                continue 'outer;
            }
            if b > 2 {
                break 'inner;
            }
            if v > 40 {
                seen.push(format!("stop {v}"));
                break 'outer;
            }
            total += v;
        }
        note(format!("row {a}"));
    }
    let value = 'search: {
        for x in 0..3u32 {
            let hit = ctx
                .step_infallible("search", || async move { x == 1 })
                .await;
            if hit {
                break 'search x + 1000;
            }
        }
        0
    };
    (total + value, seen)
});

differential!(
    return_and_question_mark,
    inputs = [0u32, 1, 2, 3],
    |ctx, n: u32| -> Result<u32, AppError> {
        let first = ctx
            .typed_step("maybe-fail", || async move {
                if n == 1 {
                    Err("no".to_string())
                } else {
                    Ok(n)
                }
            })
            .await?;
        note("after first");
        for i in 0..5 {
            let v = ctx.step_infallible("scan", || async move { i * n }).await;
            if v > 4 {
                note("early");
                return Ok(v);
            }
        }
        if n == 3 {
            return Err(AppError::Invalid(n));
        }
        let parsed: u32 = ctx
            .step_infallible("parse", || async { "12".to_string() })
            .await
            .parse()
            .map_err(|_| AppError::Invalid(0))?;
        Ok(first + parsed)
    }
);

differential!(
    assignments_and_statements,
    inputs = [1u32, 4],
    |ctx, n: u32| -> Result<(u32, usize, bool), AppError> {
        let mut x = 1;
        note(format!("x starts at {x}"));
        x = ctx.typed_step("assign", || ok(n)).await?;
        x += ctx.typed_step("add-assign", || ok(2u32)).await?;
        ctx.typed_step("statement", || ok(())).await?;
        ctx.step_infallible("ignored", || async { 5u8 }).await;
        let len = ctx
            .typed_step("postfix", || ok("abc".to_string()))
            .await?
            .len();
        let plus = ctx.typed_step("binary", || ok(10u32)).await? + x;
        let negated = !ctx.step_infallible("unary", || async { false }).await;
        note(format!("{x} {len} {plus} {negated}"));
        Ok((plus, len, negated))
    }
);

differential!(
    retries_in_memory_and_exhaustion,
    inputs = [1u32, 3, 9],
    |ctx, n: u32| -> Result<u32, AppError> {
        let got = ctx
            .step_with_attempt("flaky", |attempt| async move {
                if attempt < n {
                    Err(format!("attempt {attempt}"))
                } else {
                    Ok(attempt)
                }
            })
            .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(4))
            .await;
        let value = match got {
            Ok(v) => v,
            Err(StepError::Failed { error, attempts }) => {
                note(format!("gave up after {attempts}: {error}"));
                0
            }
            Err(other) => return Err(AppError::Step(format!("{other:?}"))),
        };
        let guarded = ctx
            .typed_step("guarded", || async move {
                if n > 5 {
                    Err("permanent".to_string())
                } else {
                    Ok(1u32)
                }
            })
            .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(3))
            .retry_if(|e: &String| e != "permanent")
            .at_most_once()
            .await?;
        Ok(value + guarded)
    }
);

fn add3(a: u32, b: u32, c: u32) -> u32 {
    a * 100 + b * 10 + c
}

impl Point {
    fn shifted(&self, by: i64) -> Point {
        Point {
            x: self.x + by,
            y: self.y + by,
        }
    }
}

differential!(
    points_inside_expressions,
    inputs = [1u32, 4],
    |ctx, n: u32| -> Result<(u32, Vec<u32>, String, Option<u32>, i64), AppError> {
        // Call arguments, left to right: the operand before the point is evaluated (and
        // noted) before the step, the one after it after.
        let sum = add3(
            seen("a", n),
            ctx.typed_step("b", move || ok(n * 2)).await?,
            seen("c", 3),
        );
        // A method's receiver and arguments; an array with two points.
        let mut v = vec![seen("v0", 1)];
        v.push(
            ctx.step_infallible("push", move || async move { n + 1 })
                .await,
        );
        v.extend([
            seen("e0", 7),
            ctx.step_infallible("e1", || async { 8u32 }).await,
            ctx.step_infallible("e2", || async { 9u32 }).await,
        ]);
        // Struct fields; binary operands with a point on each side.
        let p = Point {
            x: i64::from(seen("x", n)),
            y: ctx.step_infallible("y", || async { -1i64 }).await,
        };
        let both = ctx.step_infallible("l", || async { 10u32 }).await * seen("mid", 2)
            + ctx.step_infallible("r", || async { 5u32 }).await;
        // `Ok(ctx.typed_step(..).await?)` and `Some(..)`.
        let wrapped: Result<u32, AppError> = Ok(ctx.typed_step("w", move || ok(n)).await?);
        let maybe = Some(ctx.step_infallible("s", move || async move { n * 3 }).await);
        // A `match` on a tuple holding a point's outcome.
        let state = seen("state", n % 2);
        let label = match (
            state,
            ctx.step_infallible("m", move || async move { n > 2 }).await,
        ) {
            (0, true) => "even-big".to_string(),
            (0, false) => "even-small".to_string(),
            (_, true) => "odd-big".to_string(),
            _ => "odd-small".to_string(),
        };
        // A point in a format macro's arguments and in a method call's receiver chain.
        let text = format!(
            "{label}:{}:{}",
            seen("f", p.x),
            ctx.step_infallible("fmt", || async { "z".to_string() })
                .await
        );
        let moved = p
            .shifted(ctx.step_infallible("by", || async { 2i64 }).await)
            .y;
        Ok((sum + both + wrapped?, v, text, maybe, moved))
    }
);

differential!(
    short_circuits_and_let_else_blocks,
    inputs = [0u32, 1, 3, 5],
    |ctx, n: u32| -> (bool, bool, u32, u32) {
        // The point after `&&`/`||` runs only when the left operand allows it.
        let and = seen("and-left", n > 0)
            && ctx
                .step_infallible("and", move || async move { n > 2 })
                .await;
        let or = seen("or-left", n == 0)
            || ctx
                .step_infallible("or", move || async move { n == 5 })
                .await;
        let mut skipped = 0;
        for i in 0..n {
            let Some(half) = (i % 2 == 0).then_some(i / 2) else {
                skipped += ctx.step_infallible("skip", move || async move { i }).await;
                note(format!("skipped {i}"));
                continue;
            };
            note(format!("half {half}"));
        }
        let Some(k) = seen("k", n.checked_sub(1)) else {
            let fallback = ctx.step_infallible("else", || async { 100u32 }).await;
            note(format!("else {fallback}"));
            return (and, or, fallback, skipped);
        };
        (and, or, k, skipped)
    }
);

differential!(shadowing_across_points, inputs = [2u32, 3], |ctx,
                                                            n: u32|
 -> (
    u32,
    u32,
    u32,
    String,
    u32
) {
    let a = n;
    let mut total = 0;
    for _ in 0..2 {
        // Rebinds `a` while the outer `a` is still needed by the next iteration.
        let a = a * 10;
        total += ctx.step_infallible("inner", move || async move { a }).await;
    }
    let v = n + 1;
    let hit = match ctx
        .step_infallible("opt", move || async move { (n > 2).then_some(n * 7) })
        .await
    {
        // An arm binding `v` over the outer `v`, which is needed after the `match`.
        Some(v) => {
            ctx.step_infallible("arm", move || async move { v + 1 })
                .await
        }
        None => 0,
    };
    let word = String::from("outer");
    if let Some(word) = ctx
        .step_infallible("iflet", || async { Some("inner".to_string()) })
        .await
    {
        let len = ctx
            .step_infallible("len", move || async move { word.len() })
            .await;
        note(format!("len {len}"));
    }
    {
        let v = format!("block {v}");
        note(ctx.step_infallible("blk", move || async move { v }).await);
    }
    let mut w = 1;
    for w in [5u32, 6] {
        note(format!("loop w {w}"));
        ctx.step_infallible("w", move || async move { w }).await;
    }
    w += 1;
    (a + total, v, hit, word, w)
});

differential!(assignments_define_locals, inputs = [1u32, 3], |ctx,
                                                              n: u32|
 -> (
    Vec<u32>,
    u32,
    String,
    Vec<u32>
) {
    let mut acc = vec![n];
    let mut history = Vec::new();
    for i in 0..n {
        // `acc` is moved out, then assigned from a point: its old value is not saved.
        let prev = acc;
        acc = ctx
            .step_infallible("next", move || async move { vec![i, i + 1] })
            .await;
        history.push(prev.len() as u32);
    }
    let chosen;
    if n > 2 {
        chosen = ctx.step_infallible("big", || async { 10u32 }).await;
    } else {
        chosen = ctx.step_infallible("small", || async { 1u32 }).await;
    }
    let late;
    ctx.step_infallible("between", || async {}).await;
    late = format!("late {chosen}");
    acc.extend(history);
    // A `RetryPolicy` kept across a point (it is a value like any other).
    let policy = RetryPolicy::fixed(Duration::ZERO).max_attempts(3);
    let mut log = Vec::new();
    log.push(ctx.step_infallible("log", || async { 1u32 }).await);
    let tries = ctx
        .step_with_attempt("flaky", move |attempt| async move {
            if attempt < 2 {
                Err(format!("attempt {attempt}"))
            } else {
                Ok(attempt)
            }
        })
        .retry(policy)
        .await
        .unwrap_or(0);
    log.push(tries);
    (acc, chosen, late, log)
});
