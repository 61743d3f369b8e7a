//! Workflows compiled in a crate that knows `durable-core` only as `renamed`, next to
//! local `core`, `std` and `durable_core` modules and shadowed prelude names: any path
//! in the generated code that is not absolute or not `crate = renamed` fails here.
#![deny(warnings)]
#![allow(dead_code)]

mod core {}
mod std {}
mod durable_core {}

struct Result;
struct Option;
struct Ok;
struct Some;
struct Box;
struct Vec;

use renamed::{durable, Ctx, StepError};
use serde::{Deserialize, Serialize};

/// An order line, stored with the execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Units.
    pub units: u32,
    /// Price of one unit, in cents.
    pub cents: u32,
}

/// Sums an order line by line, one step per line, with a retried fallible step and a
/// `match` with points in its arms.
#[renamed::durable(crate = renamed)]
pub async fn total(
    ctx: Ctx,
    lines: ::std::vec::Vec<Line>,
) -> ::core::result::Result<u64, StepError<::std::string::String>> {
    let mut sum = 0u64;
    for line in lines {
        sum += ctx
            .typed_step("line", move || async move {
                ::core::result::Result::Ok::<u64, ::std::string::String>(
                    u64::from(line.units) * u64::from(line.cents),
                )
            })
            .await?;
    }
    let discounted = match sum {
        0 => 0,
        s if s > 10_000 => {
            ctx.step_infallible("discount", move || async move { s - s / 10 })
                .await
        }
        s => ctx.step_infallible("full", move || async move { s }).await,
    };
    ::core::result::Result::Ok(discounted)
}

/// The macro through a `use`d name, with the crate path as a string.
#[durable(crate = "renamed", name = "count-to")]
pub async fn count_to(ctx: Ctx, n: u32) -> u32 {
    let mut i = 0;
    while i < n {
        i = ctx
            .step_infallible("next", move || async move { i + 1 })
            .await;
    }
    i
}
