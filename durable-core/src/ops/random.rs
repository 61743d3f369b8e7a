//! Values made once and recorded: [`Ctx::uuid`] and [`Ctx::random`].
//!
//! Code between durable points runs again after a crash before the next commit, so a
//! random value made there may be made twice: an id sent to another system under one
//! value may then be recorded under another. Made at a durable point, the value is
//! committed with the point and every later read of it, after any restart, is that value.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::step::uuid_text;
use crate::execution::{AwaitedInDurableFn, Ctx, Interrupt, Operation, PointRun};
use crate::record::Event;

impl Ctx {
    /// A random UUID (version 4, as text), made once and recorded: `.await` gives the
    /// same value on every resume. A durable point like any other (a step named
    /// `uuid (line N)` in the history).
    ///
    /// The randomness is `fastrand`'s, seeded per thread from the operating system: good
    /// for ids, not for secrets. For another kind of value, or a UUID type of your own,
    /// record it with [`step_infallible`](Ctx::step_infallible):
    /// `ctx.step_infallible("order-id", || async { Uuid::new_v4() }).await`.
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, Failure};
    /// # async fn submit(order: u64, request_id: &str) -> Result<(), Failure> { Ok(()) }
    /// #[durable]
    /// async fn place(ctx: Ctx, order: u64) -> Result<String, Failure> {
    ///     let request_id = ctx.uuid().await; // the same after any crash from here on
    ///     ctx.step("submit", || submit(order, &request_id)).await?;
    ///     Ok(request_id)
    /// }
    /// ```
    #[track_caller]
    pub fn uuid(&self) -> Generated<String> {
        Generated::new("uuid", || uuid_text(fastrand::u128(..), 4))
    }

    /// A random `u64`, made once and recorded, like [`uuid`](Ctx::uuid).
    #[track_caller]
    pub fn random(&self) -> Generated<u64> {
        Generated::new("random", || fastrand::u64(..))
    }
}

/// A value made once at a durable point and recorded, built by [`Ctx::uuid`] and
/// [`Ctx::random`].
#[must_use = "a value is made only when it is awaited in a `#[durable]` fn"]
pub struct Generated<T> {
    name: String,
    make: fn() -> T,
}

impl<T> Generated<T> {
    #[track_caller]
    fn new(kind: &str, make: fn() -> T) -> Self {
        let line = std::panic::Location::caller().line();
        Generated {
            name: format!("{kind} (line {line})"),
            make,
        }
    }
}

impl<T> fmt::Debug for Generated<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generated")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// See the `IntoFuture` impl of [`Step`](crate::Step).
impl<T> std::future::IntoFuture for Generated<T>
where
    // Only a durable point can await this: directly in the body of a `#[durable]` fn.
    Self: AwaitedInDurableFn,
{
    type Output = ();
    type IntoFuture = std::future::Pending<()>;
    fn into_future(self) -> Self::IntoFuture {
        std::future::pending()
    }
}

impl<T> Operation for Generated<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = T;

    async fn run(self, run: PointRun) -> Result<T, Interrupt> {
        let value = (self.make)();
        let event = Event::StepSucceeded {
            name: self.name,
            attempt: 1,
        };
        run.complete(&value, vec![event]).await
    }
}
