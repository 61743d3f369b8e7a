//! Assigning a local is a definition, not a use: locals declared without a value and
//! assigned after a point, or moved out and assigned again from a point, need no saving.
#![deny(warnings)]

use durable_core::{durable, Ctx};

#[durable]
pub async fn late(ctx: Ctx, n: u32) -> u32 {
    let x;
    ctx.step_infallible("wait", || async {}).await;
    x = n + 1;
    let chosen: u32;
    if n > 2 {
        chosen = ctx.step_infallible("big", || async { 10u32 }).await;
    } else {
        chosen = ctx.step_infallible("small", || async { 1u32 }).await;
    }
    x + chosen
}

#[durable]
pub async fn moved_then_assigned(ctx: Ctx, rounds: u32) -> Vec<u32> {
    let mut acc = vec![0];
    let mut lengths = Vec::new();
    for i in 0..rounds {
        let prev = acc;
        acc = ctx
            .step_infallible("next", move || async move { vec![i; 2] })
            .await;
        lengths.push(prev.len() as u32);
    }
    acc.extend(lengths);
    acc
}

fn main() {}
