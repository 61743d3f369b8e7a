//! A local moved out of in part before a point, and used after it: it cannot be saved
//! whole. rustc reports the partial move, with the point's `.await` as the use (the
//! macro cannot see which fields are `Copy`); destructure the local first.
use durable_core::{durable, Ctx};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct User {
    name: String,
    emails: Vec<String>,
}

#[durable]
async fn welcome(ctx: Ctx, user: User) -> usize {
    let name = user.name;
    ctx.step_infallible("wait", || async {}).await;
    name.len() + user.emails.len()
}

fn main() {}
