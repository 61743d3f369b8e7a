//! Shapes at the edges of the transform that must compile without warnings.
#![deny(warnings)]

use std::time::Duration;

use durable_core::{durable, Ctx};

/// An endless loop is just a state.
#[durable]
pub async fn forever(ctx: Ctx) {
    loop {
        let _ = ctx.sleep(Duration::from_secs(60)).await;
    }
}

/// An endless loop as the tail of a fn with a value.
#[durable]
pub async fn forever_with_output(ctx: Ctx, n: u32) -> u32 {
    let mut i = n;
    loop {
        let _ = ctx.sleep(Duration::from_secs(1)).await;
        i += 1;
        if i > 10 {
            return i;
        }
    }
}

/// `mut ctx`, raw identifiers, a nested workflow, labeled blocks.
#[durable]
pub async fn odd(mut ctx: Ctx, r#type: u8) -> u8 {
    #[durable]
    async fn inner(ctx: Ctx) -> u8 {
        ctx.step_infallible("inner", || async { 1u8 }).await
    }
    let _ = inner;
    ctx = ctx.clone();
    let r#match = ctx.step_infallible("a", || async { 2u8 }).await;
    let v = 'b: {
        if r#type > 3 {
            break 'b ctx.step_infallible("b", || async { 3u8 }).await;
        }
        r#match
    };
    let w = match r#type {
        0 => return 1,
        1 => ctx.step_infallible("c", || async { 4u8 }).await,
        n => n,
    };
    v + w
}

/// `if` without `else` as the unit tail; `while let` over a local.
#[durable]
pub async fn unit_tail(ctx: Ctx, mut items: Vec<u8>) {
    while let Some(x) = items.pop() {
        ctx.step_infallible("x", move || async move { x }).await;
    }
    if items.is_empty() {
        ctx.step_infallible("done", || async {}).await;
    }
}

/// Parameters without a name or with patterns that read alike, and a pattern parameter
/// whose bindings cross a point.
#[durable]
pub async fn patterns(ctx: Ctx, _: u32, (a, b): (u32, u32), _: (u8, u8), r#in: u8) -> u32 {
    let sum = ctx.step_infallible("sum", move || async move { a + b }).await;
    sum + a + b + u32::from(r#in)
}

#[derive(serde::Serialize, serde::Deserialize)]
pub enum Shape {
    Dot,
    Rect { w: u32, h: u32 },
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Pair {
    pub left: u32,
    pub right: Vec<u8>,
}

/// Shorthand field patterns (`Rect { w, mut h }`, `Pair { left, right }`) whose
/// bindings cross a point, in a `match`, an `if let`, a `let` and a `while let`: the
/// expansion must not make them `w: w` (`non_shorthand_field_patterns`).
#[durable]
pub async fn shorthand_fields(ctx: Ctx, shape: Shape, pairs: Vec<Pair>) -> u32 {
    let area = match shape {
        Shape::Rect { w, mut h } => {
            h += ctx.step_infallible("grow", || async { 1u32 }).await;
            w * h
        }
        Shape::Dot => 0,
    };
    let mut total = area;
    let mut pairs = pairs;
    let Pair { left: first, right } = Pair { left: 1, right: vec![2] };
    let Pair { left, mut right } = Pair { left: first, right };
    right.push(ctx.step_infallible("push", || async { 3u8 }).await);
    total += left + right.len() as u32;
    if let Some(Pair { left, right }) = pairs.pop() {
        let extra = ctx.step_infallible("last", || async { 2u32 }).await;
        total += left + extra + right.len() as u32;
    }
    while let Some(Pair { left, right }) = pairs.pop() {
        ctx.step_infallible("pair", || async {}).await;
        total += left + right.len() as u32;
    }
    total
}

fn main() {}
