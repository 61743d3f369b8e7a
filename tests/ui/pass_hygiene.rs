//! Generated code names everything by absolute path and hygienic identifiers: a renamed
//! runtime, local `core` and `durable_core` modules (a stray relative path would resolve
//! to them), shadowed prelude names and user locals named like the machine's own do not
//! disturb it; and it adds no warnings of its own.
#![deny(warnings)]

extern crate durable_core as renamed;

#[allow(dead_code)]
mod durable_core {}
#[allow(dead_code)]
mod core {}

use renamed::{durable, Ctx};

#[allow(dead_code)]
struct Some;
#[allow(dead_code)]
struct None;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Err;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct Clone;
#[allow(dead_code)]
struct Iterator;

/// Documented, so `missing_docs` would be satisfied.
#[durable(crate = ::renamed)]
pub async fn hygienic(ctx: Ctx, n: u32) -> u32 {
    let __durable_v = n;
    let __durable_block = 2u32;
    let __durable_s0 = 1u32;
    let mut total = ctx
        .step_infallible("a", move || async move { __durable_v })
        .await;
    for i in 0..n {
        total += ctx
            .step_infallible("b", move || async move { i + __durable_block })
            .await;
        if total > 100 {
            break;
        }
    }
    let label = 'done: {
        if total > 5 {
            break 'done ctx.step_infallible("c", || async { 7u32 }).await;
        }
        0
    };
    total + label + __durable_s0
}

fn main() {}
