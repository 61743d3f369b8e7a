//! Durable points wherever a plain `async fn` may `.await`, with no warnings: call and
//! method arguments, tuples, arrays, struct fields, operands, `Ok(..?)`, `Some(..)`, a
//! `match` on a tuple, two points in one expression, format macros, after `&&`/`||`, in
//! `let ... else` blocks, a parenthesised operation, a context under a type alias.
#![deny(warnings)]

use durable_core::{durable, Ctx, StepError};
use serde::{Deserialize, Serialize};

type Context = Ctx;

#[derive(Debug, Serialize, Deserialize)]
pub struct Pair {
    left: u32,
    right: u32,
}

fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[durable]
pub async fn positions(ctx: Context, n: u32) -> Result<(u32, Pair, String), StepError> {
    let sum = add(n, ctx.step("a", move || async move { Ok(n) }).await?);
    let mut items = vec![1u32];
    items.push(ctx.step_infallible("b", || async { 2u32 }).await);
    let pair = Pair {
        left: ctx.step_infallible("l", || async { 3u32 }).await,
        right: ctx.step_infallible("r", || async { 4u32 }).await,
    };
    let both = (ctx.step_infallible("p", || async { 5u32 })).await
        * ctx.step_infallible("q", || async { 6u32 }).await;
    let checked: Result<u32, StepError> = Ok(ctx.step("c", || async { Ok(7u32) }).await?);
    let maybe = Some(ctx.step_infallible("m", || async { 8u32 }).await);
    let label = match (n % 2, ctx.step_infallible("t", || async { true }).await) {
        (0, true) => String::from("even"),
        _ => String::from("odd"),
    };
    let text = format!("{label}-{}", ctx.step_infallible("f", || async { 9u32 }).await);
    let flag = n > 1 && ctx.step_infallible("and", || async { true }).await;
    let Some(first) = items.first().copied() else {
        ctx.step_infallible("empty", || async {}).await;
        return Ok((0, pair, text));
    };
    let total = sum + both + checked? + maybe.unwrap_or(0) + first + u32::from(flag);
    Ok((total, pair, text))
}

fn main() {}
