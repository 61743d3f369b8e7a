//! Differential tests of the transform: every control-flow shape is compiled twice, once
//! with `#[durable]` and once as a plain `async fn` over an in-memory context with the
//! same API, and run on several inputs. The durable version, run uninterrupted and with a
//! forced suspend/resume at every point (frame encoded, dropped, decoded), must give the
//! same result and the same side-effect trace as the plain one.

use std::time::Duration;

use durable_core::{durable, Ctx, Engine, MemoryStore, RetryPolicy, StepError};
use serde::{Deserialize, Serialize};

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

            fn take_trace() -> Vec<String> {
                std::mem::take(&mut *TRACE.lock().unwrap())
            }

            #[durable]
            pub async fn durable_wf($ctx: Ctx, $input: $ity) -> $oty $body

            #[allow(unused_mut, unused_variables)]
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
