//! Smoke tests of `#[durable]`'s lowering: shapes beyond the differential suite (value
//! positions, shadowing across points, jumps out of verbatim code, `?` in macros,
//! hoisted items, attribute arguments), each run straight through and with a suspend
//! and resume (frame encoded, dropped, decoded) at every point.

use std::fmt::Debug;

use durable_core::{durable, Ctx, Engine, MemoryStore, StepError, Workflow, WorkflowFn};
use serde::{Deserialize, Serialize};

async fn run<F: WorkflowFn>(
    wf: F,
    input: <F::Workflow as Workflow>::Input,
) -> <F::Workflow as Workflow>::Output
where
    <F::Workflow as Workflow>::Input: Clone,
    <F::Workflow as Workflow>::Output: PartialEq + Debug,
{
    let mut outputs = Vec::new();
    for (i, suspend) in [false, true].into_iter().enumerate() {
        let engine = Engine::builder(MemoryStore::new())
            .register(wf)
            .suspend_after_every_point(suspend)
            .open()
            .await
            .unwrap();
        let out = engine
            .start(wf, format!("run-{i}"), input.clone())
            .await
            .unwrap()
            .result()
            .await
            .unwrap();
        engine.shutdown().await;
        outputs.push(out);
    }
    let last = outputs.pop().unwrap();
    assert_eq!(
        outputs[0], last,
        "suspending at every point changed the result"
    );
    last
}

fn ok<T>(v: T) -> std::future::Ready<Result<T, String>> {
    std::future::ready(Ok(v))
}

#[durable]
async fn shadowing_changes_type(ctx: Ctx, n: u32) -> String {
    let x = n + 1;
    let y = ctx.step_infallible("a", || async move { x * 2 }).await;
    let x = format!("<{x}>");
    let z = ctx.step_infallible("b", || async move { y + 1 }).await;
    format!("{x}{y}{z}")
}

#[tokio::test]
async fn shadowed_locals_get_separate_slots() {
    assert_eq!(run(shadowing_changes_type, 4).await, "<5>1011");
}

#[durable]
async fn values_of_control_flow(ctx: Ctx, n: u32) -> Result<u32, StepError<String>> {
    let a = if n > 2 {
        ctx.typed_step("big", || ok(n * 10)).await?
    } else if n == 2 {
        let t = ctx.step_infallible("two", || async { 2u32 }).await;
        t + 1
    } else {
        0
    };
    let b = match ctx.step_infallible("m", move || async move { n % 3 }).await {
        0 => ctx.typed_step("zero", || ok(100u32)).await?,
        r if r == 1 => r,
        _ => {
            let q = ctx.step_infallible("q", || async { 7u32 }).await;
            q * 2
        }
    } + 1;
    let c = {
        let inner = ctx.step_infallible("block", || async { 5u32 }).await;
        inner * 3
    };
    let mut i = 0u32;
    let d = loop {
        i += ctx.step_infallible("loop", || async { 1u32 }).await;
        if i == 3 {
            break i * 1000;
        }
    };
    let e = 'found: {
        for k in 0..n {
            if ctx
                .step_infallible("search", move || async move { k == 1 })
                .await
            {
                break 'found k + 500;
            }
        }
        9
    };
    Ok(a + b + c + d + e)
}

#[tokio::test]
async fn if_match_block_loop_and_labeled_block_as_values() {
    // n = 3: a = 30, m = 0 → b = 101, c = 15, d = 3000, e = 501.
    assert_eq!(
        run(values_of_control_flow, 3).await,
        Ok(30 + 101 + 15 + 3000 + 501)
    );
    // n = 2: a = 3, m = 2 → b = 15, e = 501.
    assert_eq!(
        run(values_of_control_flow, 2).await,
        Ok(3 + 15 + 15 + 3000 + 501)
    );
    // n = 1: a = 0, m = 1 → b = 2, e = 9.
    assert_eq!(run(values_of_control_flow, 1).await, Ok(2 + 15 + 3000 + 9));
}

#[durable]
async fn jumps_from_verbatim_code(ctx: Ctx, limit: u32) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    'outer: loop {
        i += 1;
        let v = ctx.step_infallible("v", move || async move { i * 3 }).await;
        // Verbatim code (no point) that leaves the lowered loops.
        for j in 0..3 {
            if j == 1 && v % 2 == 0 {
                continue 'outer;
            }
            if v > limit {
                break 'outer;
            }
        }
        match v {
            9 => continue,
            15 => return Ok(out),
            _ => {}
        }
        let parsed: u32 = format!("{v}").parse().map_err(|_| "bad".to_string())?;
        out.push(parsed);
    }
    let total: u32 = out.iter().sum();
    out.push(total);
    Ok(out)
}

#[tokio::test]
async fn break_continue_return_and_question_mark_in_verbatim_code() {
    // v = 3, 6 (skipped), 9 (continue), 12 (skipped), 15 → return.
    assert_eq!(run(jumps_from_verbatim_code, 100).await, Ok(vec![3]));
    // v = 3, then 6 > 5 → break 'outer.
    assert_eq!(run(jumps_from_verbatim_code, 5).await, Ok(vec![3, 3]));
}

#[durable]
async fn question_marks_in_macros(ctx: Ctx, text: String) -> Result<String, String> {
    let prefix = ctx
        .step_infallible("prefix", || async { "n=".to_string() })
        .await;
    let message = format!(
        "{prefix}{}",
        text.parse::<u32>().map_err(|e| e.to_string())?
    );
    let again = ctx.step_infallible("again", || async { 1u8 }).await;
    assert!(again == 1, "{}", text.len());
    Ok(message)
}

#[tokio::test]
async fn question_mark_inside_macro_arguments() {
    assert_eq!(
        run(question_marks_in_macros, "42".into()).await,
        Ok("n=42".into())
    );
    assert!(run(question_marks_in_macros, "x".into()).await.is_err());
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    left: u32,
    right: u32,
}

#[durable(name = "renamed-workflow", codec = json)]
/// Several parameters, patterns, postfix chains, hoisted items, `let ... else`.
// The `let ... else` under test is what clippy would rather see as a `?`.
#[allow(clippy::question_mark)]
pub async fn many_shapes(
    ctx: Ctx,
    (a, b): (u32, u32),
    Pair { left, right }: Pair,
    words: Vec<String>,
) -> Option<(u32, usize, bool, u64, String)> {
    fn helper(x: u32) -> u32 {
        x + HELPER_OFFSET
    }
    const HELPER_OFFSET: u32 = 1000;

    let sum = ctx
        .step_infallible("sum", move || async move { a + b })
        .await;
    let sum = helper(sum);
    let len = ctx
        .step_infallible("words", || async {
            vec!["x".to_string(), "yy".to_string()]
        })
        .await
        .iter()
        .map(String::len)
        .sum::<usize>();
    let negated = !ctx.step_infallible("flag", || async { false }).await;
    let widened = ctx
        .step_infallible("cast", move || async move { left * right })
        .await as u64;
    let Some(first) = ctx
        .step_infallible("first", || async move { words.first().cloned() })
        .await
    else {
        return None;
    };
    let checked = ctx.step_infallible("opt", || async { Some(3u32) }).await?;
    Some((sum + checked, len, negated, widened, first))
}

#[tokio::test]
async fn parameters_postfix_operators_items_and_let_else() {
    assert_eq!(
        <many_shapes::Workflow as Workflow>::NAME,
        "renamed-workflow"
    );
    assert_eq!(
        <many_shapes::Workflow as Workflow>::CODEC,
        durable_core::Codec::Json
    );
    let input = ((1, 2), Pair { left: 3, right: 4 }, vec!["w".to_string()]);
    assert_eq!(
        run(many_shapes, input).await,
        Some((1003 + 3, 3, true, 12, "w".to_string()))
    );
    let empty = ((1, 2), Pair { left: 3, right: 4 }, Vec::new());
    assert_eq!(run(many_shapes, empty).await, None);
}

#[durable]
async fn while_let_on_a_point(ctx: Ctx, n: u32) -> Vec<u32> {
    let mut seen = Vec::new();
    let mut k = 0;
    while let Some(v) = ctx
        .step_infallible("next", move || async move { (k < n).then_some(k * k) })
        .await
    {
        k += 1;
        if v == 4 {
            continue;
        }
        seen.push(v);
    }
    let mut count = 0;
    while ctx
        .step_infallible("cond", move || async move { count < 2 })
        .await
    {
        count += 1;
    }
    seen.push(count);
    seen
}

#[tokio::test]
async fn point_in_a_loop_condition_runs_every_iteration() {
    assert_eq!(run(while_let_on_a_point, 4).await, vec![0, 1, 9, 2]);
}

#[durable]
async fn no_points(_ctx: Ctx) -> u8 {
    7
}

#[durable]
async fn unit_output(ctx: Ctx, n: u32) {
    if n == 0 {
        return;
    }
    ctx.step_infallible("side", || async {}).await;
}

#[tokio::test]
async fn no_points_and_unit_output() {
    assert_eq!(run(no_points, ()).await, 7);
    run(unit_output, 0).await;
    run(unit_output, 1).await;
}

#[durable]
async fn format_strings_keep_locals_alive(ctx: Ctx, n: u32) -> String {
    let named = n * 2;
    let width = 6;
    ctx.step_infallible("p", || async {}).await;
    format!("[{named:>width$}]")
}

#[tokio::test]
async fn locals_used_only_in_format_strings_are_saved() {
    assert_eq!(run(format_strings_keep_locals_alive, 21).await, "[    42]");
}

#[durable]
async fn for_loops_with_patterns(ctx: Ctx, pairs: Vec<(String, u32)>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (name, score)) in pairs.into_iter().enumerate() {
        let bonus = ctx
            .step_infallible("bonus", move || async move { score * 2 })
            .await;
        out.push(format!("{i}:{name}:{bonus}"));
    }
    for k in (0..3u8).rev() {
        if k == 1 {
            continue;
        }
        let v = ctx.step_infallible("k", move || async move { k }).await;
        out.push(v.to_string());
    }
    out
}

#[tokio::test]
async fn for_loops_over_collected_items_and_ranges() {
    let input = vec![("a".to_string(), 1), ("b".to_string(), 5)];
    assert_eq!(
        run(for_loops_with_patterns, input).await,
        vec!["0:a:2", "1:b:10", "2", "0"]
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    id: u32,
    name: String,
    tags: Vec<String>,
}

#[durable]
async fn shadowing_and_moves_at_the_edges(ctx: Ctx, user: User) -> (u32, u32, Vec<u32>, String) {
    // A `Copy` field read out of a local saved whole afterwards.
    let id = user.id;
    let bumped = ctx
        .step_infallible("id", move || async move { id + 1 })
        .await;
    // A `mut` arm binding that hides a local still needed.
    let n = bumped * 2;
    let got = match Some(n) {
        Some(mut n) => {
            n += 1;
            ctx.step_infallible("arm", move || async move { n }).await
        }
        None => 0,
    };
    // `while let` whose binding hides a local still needed, and temporaries in a loop.
    let x = 100u32;
    let mut stack = vec![1u32, 2, 3];
    let mut seen = Vec::new();
    while let Some(x) = stack.pop() {
        seen.push(x * 10 + ctx.step_infallible("pop", move || async move { x }).await);
    }
    seen.push(x);
    // Declared without a value inside a loop, assigned from a point.
    for i in 0..2u32 {
        let v;
        v = ctx
            .step_infallible("v", move || async move { i + 40 })
            .await;
        seen.push(v);
    }
    // A `let ... else` whose else block awaits and breaks out of a loop.
    let mut k = 0;
    loop {
        k += 1;
        let Some(half) = (k % 3 != 0).then_some(k) else {
            ctx.step_infallible("stop", || async {}).await;
            break;
        };
        seen.push(half);
    }
    // A struct literal with a point in a field and the rest from a local.
    let renamed = User {
        name: ctx
            .step_infallible("name", || async { "ada".to_string() })
            .await,
        ..user
    };
    (id + got, renamed.id, seen, renamed.name)
}

#[tokio::test]
async fn shadowing_and_field_moves_at_the_edges_resume_everywhere() {
    let user = User {
        id: 7,
        name: "x".into(),
        tags: vec![],
    };
    // bumped = 8, n = 16, got = 17; pops 3, 2, 1; then 100, 40, 41, 1, 2.
    assert_eq!(
        run(shadowing_and_moves_at_the_edges, user).await,
        (7 + 17, 7, vec![33, 22, 11, 100, 40, 41, 1, 2], "ada".into())
    );
}

#[derive(Clone, Serialize, Deserialize)]
pub enum Shape {
    Dot,
    Rect { w: u32, h: u32 },
}

#[durable]
async fn shorthand_field_patterns(ctx: Ctx, shape: Shape) -> (u32, u32, u32) {
    // `w` is still needed after the match, and the arm's shorthand `w` hides it: the arm's
    // binding is emitted under a fresh name, so the field's name must be written.
    let w = 1000u32;
    let area = match shape.clone() {
        Shape::Rect { w, mut h } => {
            h += ctx.step_infallible("grow", move || async move { h }).await;
            w * h
        }
        Shape::Dot => 0,
    };
    // Nothing hidden here: the pattern stays shorthand.
    let width = if let Shape::Rect { w: _, h } = shape {
        ctx.step_infallible("h", move || async move { h + 1 }).await
    } else {
        0
    };
    (area, width, w)
}

#[tokio::test]
async fn shorthand_field_patterns_bind_their_fields_and_keep_hidden_locals() {
    // h = 3 + 3 = 6, area = 2 * 6; width = 3 + 1; the outer `w` is untouched.
    assert_eq!(
        run(shorthand_field_patterns, Shape::Rect { w: 2, h: 3 }).await,
        (12, 4, 1000)
    );
    assert_eq!(
        run(shorthand_field_patterns, Shape::Dot).await,
        (0, 0, 1000)
    );
}

#[durable]
async fn parked_and_taken_back_in_one_block(ctx: Ctx, n: u32) -> (u32, String) {
    let x = n;
    let label = {
        // Hides `x`, which is read again after this block, before any point.
        let x = format!("inner {x}");
        x
    };
    let doubled = x * 2;
    let after = ctx
        .step_infallible("after", move || async move { doubled + 1 })
        .await;
    (x + after, label)
}

#[tokio::test]
async fn a_hidden_local_read_again_in_the_same_block() {
    assert_eq!(
        run(parked_and_taken_back_in_one_block, 5).await,
        (5 + 11, "inner 5".to_string())
    );
}
