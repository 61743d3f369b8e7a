//! The attempts of step items: the body's work, one attempt's future, the retry decision.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};

use futures_util::future::{select, Either};
use futures_util::FutureExt;

use super::{Finished, Running, Setup, Value};
use crate::error::StepError;
use crate::execution::{Interrupt, PointRun};
use crate::failure::Failure;
use crate::ops::batch::{ItemBody, ItemWork, MapBody};
use crate::ops::step::StepContext;
use crate::panic::panic_message;
use crate::record::{BatchState, InFlight};
use crate::retry::RetryPolicy;
use crate::time::Timestamp;

/// The body's work for `item`, or the message of its panic.
pub(super) fn work<'w, I, B>(
    setup: &Setup<'_, B>,
    item: I,
) -> Result<ItemWork<'w, Value<B, I>>, String>
where
    B: MapBody<I>,
    B::Item: 'w,
{
    std::panic::catch_unwind(AssertUnwindSafe(|| setup.body.call(item).into_work()))
        .map_err(|panic| panic_message(&*panic))
}

/// Starts attempt `slot.attempt` of step item `slot.index`.
pub(super) fn start_attempt<'w, I, B>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &BatchState,
    running: &mut Running<'w, Value<B, I>>,
    item: I,
    slot: &InFlight,
) -> Result<(), Interrupt>
where
    B: MapBody<I>,
    B::Item: 'w,
{
    match work(setup, item) {
        Ok(ItemWork::Step(future)) => {
            running.push(attempt_future(run, setup, state, future, slot));
            Ok(())
        }
        Ok(ItemWork::Child(_)) => Err(Interrupt::Failed(format!(
            "batch `{}`: item {} was a step and its body now gives a child workflow",
            setup.name, slot.index
        ))),
        Err(message) => {
            let (index, attempts) = (slot.index, slot.attempt);
            running.push(Box::pin(std::future::ready(Finished {
                index,
                result: Err(StepError::Panicked { message, attempts }),
            })));
            Ok(())
        }
    }
}

/// One attempt of a step item: its future run with the item's step context, a panic
/// caught, the timeout applied.
pub(super) fn attempt_future<'w, T: Send + 'w, B>(
    run: &PointRun,
    setup: &Setup<'_, B>,
    state: &BatchState,
    future: Pin<Box<dyn Future<Output = Result<T, Failure>> + Send + 'w>>,
    slot: &InFlight,
) -> Pin<Box<dyn Future<Output = Finished<T>> + Send + 'w>> {
    let (index, attempts) = (slot.index, slot.attempt);
    let deadline = setup.timeout.map(|t| run.now().saturating_add(t));
    let timeout_ms = setup
        .timeout
        .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
    let cx = StepContext::for_item(
        run.execution_id(),
        &setup.name,
        &state.item_key(index),
        attempts,
        deadline,
    );
    let timer = deadline.map(|at| run.sleep_until(at));
    Box::pin(async move {
        let caught = AssertUnwindSafe(cx.scope(future)).catch_unwind();
        let outcome = match timer {
            None => Some(caught.await),
            Some(timer) => match select(pin!(caught), timer).await {
                Either::Left((outcome, _)) => Some(outcome),
                Either::Right(((), _)) => None,
            },
        };
        let result = match outcome {
            Some(Ok(Ok(value))) => Ok(value),
            Some(Ok(Err(error))) => Err(StepError::Failed { error, attempts }),
            Some(Err(panic)) => Err(StepError::Panicked {
                message: panic_message(&*panic),
                attempts,
            }),
            None => Err(StepError::TimedOut {
                attempts,
                timeout_ms,
            }),
        };
        Finished { index, result }
    })
}

/// When the attempt after the one that failed with `error` runs, `None` if none does.
pub(super) fn retry_at(
    policy: &RetryPolicy,
    error: &StepError,
    attempt: u32,
    now: Timestamp,
) -> Option<Timestamp> {
    if let StepError::Failed { error, .. } = error {
        if error.is_terminal() {
            return None;
        }
    }
    policy
        .allows_another(attempt)
        .then(|| now.saturating_add(policy.jittered_delay_after(attempt)))
}
