//! When a batch completes: [`Completion`], the policy, and its verdict on the counters.

use crate::record::{BatchState, CompletionReason};

/// When a batch ([`Ctx::map`](crate::Ctx::map), [`Ctx::parallel`](crate::Ctx::parallel))
/// completes, short of every item settling.
///
/// The default waits for every item ([`Completion::all`]). The conditions combine: the
/// batch completes as soon as any condition set is met, or when every item has settled.
/// Items still in flight then are cancelled (a child execution is stopped and says
/// `cancelled` in its status); items not started yet are never started.
///
/// | Policy | Built with |
/// |---|---|
/// | all complete (the default) | [`Completion::all`] |
/// | all must succeed, fail fast | [`Completion::all_succeed`] (tolerates no failure) |
/// | first success | [`Completion::first_success`] (`min_successful(1)`) |
/// | at least N successes | [`Completion::min_successful`] |
/// | tolerate N failures | [`Completion::tolerate_failures`] |
/// | tolerate a percentage of failures | [`Completion::tolerate_failure_percent`] |
///
/// ```
/// use durable_core::Completion;
/// // Done at 10 successes, or as soon as more than 2 items failed.
/// let policy = Completion::min_successful(10).and_tolerate_failures(2);
/// # let _ = policy;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Completion {
    min_successful: Option<u64>,
    tolerated_failures: Option<u64>,
    tolerated_failure_percent: Option<f64>,
}

impl Completion {
    /// Waits for every item to settle, whatever fails (the default).
    pub fn all() -> Self {
        Self::default()
    }

    /// Completes at the first failure (fail fast): every item must succeed.
    pub fn all_succeed() -> Self {
        Self::tolerate_failures(0)
    }

    /// Completes at the first success.
    pub fn first_success() -> Self {
        Self::min_successful(1)
    }

    /// Completes once `n` items have succeeded.
    pub fn min_successful(n: u64) -> Self {
        Self::default().and_min_successful(n)
    }

    /// Completes as soon as more than `n` items have failed.
    pub fn tolerate_failures(n: u64) -> Self {
        Self::default().and_tolerate_failures(n)
    }

    /// Completes as soon as the failed items are more than `percent` % of all items.
    pub fn tolerate_failure_percent(percent: f64) -> Self {
        Self::default().and_tolerate_failure_percent(percent)
    }

    /// This policy, also completing once `n` items have succeeded.
    pub fn and_min_successful(mut self, n: u64) -> Self {
        self.min_successful = Some(n);
        self
    }

    /// This policy, also completing as soon as more than `n` items have failed.
    pub fn and_tolerate_failures(mut self, n: u64) -> Self {
        self.tolerated_failures = Some(n);
        self
    }

    /// This policy, also completing as soon as the failed items are more than `percent` %
    /// of all items (`percent` is taken between 0 and 100; one that is not a number
    /// tolerates nothing).
    pub fn and_tolerate_failure_percent(mut self, percent: f64) -> Self {
        let percent = if percent.is_nan() {
            0.0
        } else {
            percent.clamp(0.0, 100.0)
        };
        self.tolerated_failure_percent = Some(percent);
        self
    }

    /// Whether the batch is complete, and why. Too many failures is checked before enough
    /// successes, and both before every item having settled.
    pub(crate) fn verdict(&self, state: &BatchState) -> Option<CompletionReason> {
        let failed_too_many = self.tolerated_failures.is_some_and(|n| state.failed > n)
            || self.tolerated_failure_percent.is_some_and(|percent| {
                // Integer-exact for the whole numbers people write (5 %, not 5.000001 %).
                state.failed as f64 * 100.0 > percent * state.total as f64
            });
        if failed_too_many {
            return Some(CompletionReason::FailureToleranceExceeded);
        }
        if self.min_successful.is_some_and(|n| state.succeeded >= n) {
            return Some(CompletionReason::MinSuccessful);
        }
        (state.settled() == state.total).then_some(CompletionReason::AllCompleted)
    }
}

#[cfg(test)]
mod tests {
    use super::Completion;
    use crate::record::{BatchState, CompletionReason};

    fn state(total: u64, succeeded: u64, failed: u64) -> BatchState {
        BatchState {
            key: "m".into(),
            total,
            next: succeeded + failed,
            in_flight: Vec::new(),
            succeeded,
            failed,
            done: None,
        }
    }

    #[test]
    fn every_policy_decides_on_the_counters() {
        use CompletionReason::*;
        let cases = [
            (Completion::all(), state(3, 1, 1), None),
            (Completion::all(), state(3, 1, 2), Some(AllCompleted)),
            (Completion::all_succeed(), state(3, 1, 0), None),
            (
                Completion::all_succeed(),
                state(3, 1, 1),
                Some(FailureToleranceExceeded),
            ),
            (Completion::first_success(), state(3, 0, 2), None),
            (
                Completion::first_success(),
                state(3, 1, 2),
                Some(MinSuccessful),
            ),
            (Completion::min_successful(2), state(4, 1, 1), None),
            (
                Completion::min_successful(2),
                state(4, 2, 1),
                Some(MinSuccessful),
            ),
            (Completion::tolerate_failures(1), state(4, 0, 1), None),
            (
                Completion::tolerate_failures(1),
                state(4, 0, 2),
                Some(FailureToleranceExceeded),
            ),
            (
                Completion::tolerate_failure_percent(5.0),
                state(100, 50, 5),
                None,
            ),
            (
                Completion::tolerate_failure_percent(5.0),
                state(100, 50, 6),
                Some(FailureToleranceExceeded),
            ),
            (
                Completion::tolerate_failure_percent(5.0),
                state(100, 95, 5),
                Some(AllCompleted),
            ),
            // Combined: whichever comes first.
            (
                Completion::min_successful(3).and_tolerate_failures(0),
                state(5, 2, 0),
                None,
            ),
            (
                Completion::min_successful(3).and_tolerate_failures(0),
                state(5, 3, 0),
                Some(MinSuccessful),
            ),
            (
                Completion::min_successful(3).and_tolerate_failures(0),
                state(5, 2, 1),
                Some(FailureToleranceExceeded),
            ),
            // Out-of-range percentages are clamped: below 0 tolerates no failure (but needs
            // one to complete early), above 100 tolerates all.
            (
                Completion::tolerate_failure_percent(-5.0),
                state(4, 0, 0),
                None,
            ),
            (
                Completion::tolerate_failure_percent(-5.0),
                state(4, 0, 1),
                Some(FailureToleranceExceeded),
            ),
            (
                Completion::tolerate_failure_percent(f64::NAN),
                state(4, 1, 0),
                None,
            ),
            (
                Completion::tolerate_failure_percent(500.0),
                state(4, 0, 4),
                Some(AllCompleted),
            ),
            // An empty batch is complete at once.
            (
                Completion::all_succeed(),
                state(0, 0, 0),
                Some(AllCompleted),
            ),
        ];
        for (policy, state, expected) in cases {
            assert_eq!(policy.verdict(&state), expected, "{policy:?} on {state:?}");
        }
    }
}
