//! A name rebound while the outer binding is still needed across a point compiles: a
//! `let` in a loop, a `match` arm binding, an `if let` binding, a block's `let`.
#![deny(warnings)]

use durable_core::{durable, Ctx};

#[durable]
pub async fn shadows(ctx: Ctx, n: u32, o: Option<u32>) -> (u32, u32, String) {
    let a = n;
    let mut total = 0;
    for _ in 0..2 {
        let a = a * 10;
        total += ctx.step_infallible("inner", move || async move { a }).await;
    }
    let v = n + 1;
    let hit = match o {
        Some(v) => ctx.step_infallible("arm", move || async move { v }).await,
        None => 0,
    };
    let word = String::from("outer");
    if let Some(word) = o.map(|x| x.to_string()) {
        ctx.step_infallible("len", move || async move { word.len() }).await;
    }
    {
        let v = v.to_string();
        ctx.step_infallible("block", move || async move { v }).await;
    }
    (a + total + hit, v, word)
}

fn main() {}
