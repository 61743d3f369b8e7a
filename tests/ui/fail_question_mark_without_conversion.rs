//! Each `?` whose conversion is missing is reported on that `?`, as in a plain `async fn`.
use durable_core::{durable, Ctx};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct ChargeError;

#[durable]
async fn charge(ctx: Ctx, cents: u32) -> Result<u32, ChargeError> {
    let receipt = ctx
        .typed_step("charge", move || async move { Ok::<u32, String>(cents) })
        .await?;
    let first = Some(receipt).filter(|r| *r > 0)?;
    let parsed: u32 = "12".parse()?;
    Ok(first + parsed)
}

fn main() {}
