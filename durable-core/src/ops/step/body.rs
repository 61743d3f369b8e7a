//! What a step body is ([`StepBody`]) and what it may ask for ([`StepContext`]).

use std::future::Future;

use crate::time::Timestamp;

/// What a step body gets when it asks for it: `|s: StepContext| async move { .. }`.
///
/// It says which attempt this is, gives a key for the external call the body makes that
/// is the same for every attempt of this step, also after a crash, and tells the
/// attempt's deadline when the step has a [`timeout`](crate::Step::timeout). It offers no
/// durable operations: those belong to the workflow, between steps.
///
/// ```
/// # use durable_core::{durable, Ctx, Failure, StepContext};
/// # async fn charge(amount: u64, idempotency_key: &str) -> Result<String, Failure> {
/// #     Ok(format!("{amount}/{idempotency_key}"))
/// # }
/// #[durable]
/// async fn pay(ctx: Ctx, amount: u64) -> Result<String, Failure> {
///     let receipt = ctx
///         .step("charge", |s: StepContext| async move {
///             // The payment provider sees one key however often this runs.
///             charge(amount, s.idempotency_key()).await
///         })
///         .await?;
///     Ok(receipt)
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepContext {
    execution_id: String,
    name: String,
    attempt: u32,
    idempotency_key: String,
    deadline: Option<Timestamp>,
}

tokio::task_local! {
    /// The context of the step attempt running on this task.
    static CURRENT: StepContext;
}

impl StepContext {
    /// The context of the step attempt running on this task: `Some` inside a step body
    /// (in the closure and in the future it returns), `None` elsewhere, including in tasks
    /// the body spawns.
    ///
    /// For a body that borrows what it needs instead of moving it, which a body that takes
    /// a `StepContext` parameter cannot do (its `async move` block must own the parameter,
    /// and with it everything else it uses):
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, Failure, StepContext};
    /// # async fn reserve(items: &[String], key: &str) -> Result<u32, Failure> { Ok(1) }
    /// #[durable]
    /// async fn order(ctx: Ctx, items: Vec<String>) -> Result<usize, Failure> {
    ///     ctx.step("reserve", || async {
    ///         let key = StepContext::current().expect("in a step body");
    ///         reserve(&items, key.idempotency_key()).await
    ///     })
    ///     .await?;
    ///     Ok(items.len()) // still here: the body only borrowed it
    /// }
    /// ```
    pub fn current() -> Option<StepContext> {
        CURRENT.try_with(StepContext::clone).ok()
    }

    /// Runs `call` with this context as the current one.
    pub(crate) fn enter<R>(self, call: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, call)
    }

    /// `future`, polled with this context as the current one.
    pub(crate) fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }

    pub(crate) fn new(
        execution_id: &str,
        name: &str,
        point: u32,
        key_seq: u64,
        attempt: u32,
        deadline: Option<Timestamp>,
    ) -> Self {
        StepContext {
            execution_id: execution_id.to_owned(),
            name: name.to_owned(),
            attempt,
            idempotency_key: idempotency_key(execution_id, point, key_seq),
            deadline,
        }
    }

    /// The context of attempt `attempt` of the batch item with operation key `item_key`.
    pub(crate) fn for_item(
        execution_id: &str,
        name: &str,
        item_key: &str,
        attempt: u32,
        deadline: Option<Timestamp>,
    ) -> Self {
        StepContext {
            execution_id: execution_id.to_owned(),
            name: name.to_owned(),
            attempt,
            idempotency_key: item_idempotency_key(execution_id, item_key),
            deadline,
        }
    }

    /// The attempt running, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A key for the external call this step makes, to pass as its idempotency key.
    ///
    /// It is the same for every attempt of this step in this execution, including an
    /// attempt run again after a crash, and differs between steps, between the runs of
    /// one step in a loop, and between executions. It is derived from the execution id,
    /// the durable point and the execution's sequence number when the step was entered,
    /// all of which are stored, so it needs no storage of its own. Its form is a UUID
    /// (version 8, 36 characters), which most APIs accept as an idempotency key.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }

    /// The id of the execution running the step.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When this attempt times out (engine clock), if the step has a timeout: pass it on
    /// to the calls the body makes so they give up in time.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.deadline
    }
}

/// The idempotency key of the step entered at `point` when the execution's sequence
/// number was `key_seq`: FNV-1a (128 bits) over the three, in the layout of a version-8
/// UUID. The hash is written out here, not taken from `std`, because the key must stay
/// the same across builds and Rust versions.
fn idempotency_key(execution_id: &str, point: u32, key_seq: u64) -> String {
    let id_len = u64::try_from(execution_id.len())
        .unwrap_or(u64::MAX)
        .to_le_bytes();
    let (point, key_seq) = (point.to_le_bytes(), key_seq.to_le_bytes());
    let input = b"durable/step-key/v1\0"
        .iter()
        .chain(&id_len)
        .chain(execution_id.as_bytes())
        .chain(&point)
        .chain(&key_seq);
    fnv_uuid(input)
}

/// The idempotency key of the item with operation key `item_key` of a batch of execution
/// `execution_id`: the same for every attempt of the item, after any restart, and
/// different from every step's (another domain tag).
fn item_idempotency_key(execution_id: &str, item_key: &str) -> String {
    let id_len = u64::try_from(execution_id.len())
        .unwrap_or(u64::MAX)
        .to_le_bytes();
    let input = b"durable/item-key/v1\0"
        .iter()
        .chain(&id_len)
        .chain(execution_id.as_bytes())
        .chain(item_key.as_bytes());
    fnv_uuid(input)
}

/// FNV-1a (128 bits) over `input`, in the layout of a version-8 UUID.
fn fnv_uuid<'a>(input: impl Iterator<Item = &'a u8>) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for byte in input {
        hash ^= u128::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    uuid_text(hash, 8)
}

/// `bits` as a UUID of `version` (RFC 9562 layout: version nibble, variant `10`).
pub(crate) fn uuid_text(bits: u128, version: u8) -> String {
    let bits =
        (bits & !(0xf << 76) & !(0x3 << 62)) | (u128::from(version & 0xf) << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

mod sealed {
    pub trait Sealed<Args> {}
}

/// A step body: a closure that returns a future, called once per attempt. Either
/// `|| async { .. }` or `|s: StepContext| async move { .. }` (the parameter's type must be
/// written: both forms are accepted, so Rust cannot infer it).
///
/// Implemented for those closures only (`Args` is `()` or [`StepContext`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a step body",
    label = "expected a closure `|| async {{ .. }}` or `|s: StepContext| async move {{ .. }}`",
    note = "a step body is a closure returning a future; write the type of its parameter if it takes one: `|s: StepContext|`"
)]
pub trait StepBody<Args>: Send + sealed::Sealed<Args> {
    /// What the body's future gives.
    type Output;
    /// The body's future.
    type Future: Future<Output = Self::Output> + Send;
    /// Calls the body for one attempt.
    fn call(self, cx: StepContext) -> Self::Future;
}

impl<F, Fut> sealed::Sealed<()> for F
where
    F: FnOnce() -> Fut + Send,
    Fut: Future + Send,
{
}

impl<F, Fut> StepBody<()> for F
where
    F: FnOnce() -> Fut + Send,
    Fut: Future + Send,
{
    type Output = Fut::Output;
    type Future = Fut;
    fn call(self, _: StepContext) -> Fut {
        self()
    }
}

impl<F, Fut> sealed::Sealed<StepContext> for F
where
    F: FnOnce(StepContext) -> Fut + Send,
    Fut: Future + Send,
{
}

impl<F, Fut> StepBody<StepContext> for F
where
    F: FnOnce(StepContext) -> Fut + Send,
    Fut: Future + Send,
{
    type Output = Fut::Output;
    type Future = Fut;
    fn call(self, cx: StepContext) -> Fut {
        self(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_execution_point_and_entry() {
        let base = idempotency_key("order-1", 3, 7);
        assert_eq!(base, idempotency_key("order-1", 3, 7));
        for other in [
            idempotency_key("order-2", 3, 7),
            idempotency_key("order-1", 4, 7),
            idempotency_key("order-1", 3, 8),
            // The length prefix keeps the id from running into the point.
            idempotency_key("order-1\u{3}", 0, 7),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn item_keys_differ_by_item_and_from_step_keys() {
        let base = item_idempotency_key("order-1", "m05.00");
        assert_eq!(base, item_idempotency_key("order-1", "m05.00"));
        assert_ne!(base, item_idempotency_key("order-1", "m05.01"));
        assert_ne!(base, item_idempotency_key("order-2", "m05.00"));
        assert_ne!(base, idempotency_key("order-1", 0, 0));
    }

    #[test]
    fn keys_are_stable_version_8_uuids() {
        // A changed key would make an external system see a new call for an old one.
        // Computed independently (FNV-1a 128 in Python) when the format was fixed.
        assert_eq!(
            idempotency_key("order-1", 3, 7),
            "0666a57c-4a41-8637-8f69-419384640e34"
        );
        let key = idempotency_key("x", 0, 0);
        assert_eq!(key.len(), 36);
        assert_eq!(&key[14..15], "8");
        assert!(matches!(&key[19..20], "8" | "9" | "a" | "b"));
    }
}
