//! Retry policies for steps, and the decision a retry strategy makes.
//!
//! A policy only computes: how many attempts, and how long to wait after a failed one.
//! The wait itself is durable: the engine commits the wake-up time and the execution
//! leaves memory until then.

use std::time::Duration;

/// What a step's retry strategy ([`Step::retry_strategy`](crate::Step::retry_strategy))
/// decides after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Run another attempt after this delay (zero: at once). While it waits, the
    /// execution is suspended and out of memory.
    RetryAfter(Duration),
    /// Give up: the step returns the attempt's error.
    Stop,
}

/// How often and how patiently a step retries.
///
/// The default ([`RetryPolicy::none`]) runs a step once. Delays grow as
/// `initial_delay × factor^(attempt − 1)`, are capped at `max_delay`, and are then
/// reduced by a random fraction of up to `jitter` so that many executions failing
/// together do not retry in lockstep.
///
/// ```
/// use std::time::Duration;
/// use durable_core::RetryPolicy;
///
/// let policy = RetryPolicy::exponential()
///     .max_attempts(5)
///     .initial_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(10))
///     .jitter(0.0);
/// assert_eq!(policy.delay_after(1), Duration::from_millis(200));
/// assert_eq!(policy.delay_after(3), Duration::from_millis(800));
/// assert_eq!(policy.delay_after(20), Duration::from_secs(10));
/// ```
/// A policy is a value like any other: a workflow may keep one in a local across durable
/// points, so it implements `Serialize` and `Deserialize`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    factor: f64,
    max_delay: Duration,
    jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::none()
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            initial_delay: Duration::ZERO,
            factor: 1.0,
            max_delay: Duration::ZERO,
            jitter: 0.0,
        }
    }

    /// Exponential backoff: 3 attempts, first delay 1 s, factor 2, at most 60 s between
    /// attempts, jitter 0.2. Adjust with the builder methods.
    pub fn exponential() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_secs(1),
            factor: 2.0,
            max_delay: Duration::from_secs(60),
            jitter: 0.2,
        }
    }

    /// The same `delay` between attempts, 3 attempts, no jitter.
    pub fn fixed(delay: Duration) -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: delay,
            factor: 1.0,
            max_delay: delay,
            jitter: 0.0,
        }
    }

    /// At most `attempts` attempts in all (at least 1; `u32::MAX` for "forever").
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The delay after the first failed attempt.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        if self.max_delay < delay {
            self.max_delay = delay;
        }
        self
    }

    /// How much each delay grows over the previous one (at least 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The longest delay between two attempts.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The largest fraction (0 to 1) by which a delay is randomly shortened.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The configured number of attempts.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether another attempt may follow attempt `failed_attempt` (counting from 1).
    pub fn allows_another(&self, failed_attempt: u32) -> bool {
        failed_attempt < self.max_attempts
    }

    /// The delay after attempt `failed_attempt` failed, before jitter.
    pub fn delay_after(&self, failed_attempt: u32) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(1024) as i32;
        let scaled = self.initial_delay.as_secs_f64() * self.factor.powi(exponent);
        let capped = scaled.min(self.max_delay.as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.max_delay)
    }

    /// The delay after attempt `failed_attempt` failed, with jitter applied.
    pub fn jittered_delay_after(&self, failed_attempt: u32) -> Duration {
        let base = self.delay_after(failed_attempt);
        if self.jitter == 0.0 {
            return base;
        }
        base.mul_f64(1.0 - self.jitter * fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_allows_a_single_attempt() {
        let p = RetryPolicy::none();
        assert!(!p.allows_another(1));
        assert_eq!(p.delay_after(1), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RetryPolicy::fixed(Duration::from_secs(10)).jitter(0.5);
        for _ in 0..1000 {
            let d = p.jittered_delay_after(1);
            assert!(
                d <= Duration::from_secs(10) && d >= Duration::from_secs(5),
                "{d:?}"
            );
        }
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = RetryPolicy::exponential().max_attempts(u32::MAX);
        assert_eq!(p.delay_after(u32::MAX), Duration::from_secs(60));
        assert!(p.allows_another(u32::MAX - 1));
        assert!(!p.allows_another(u32::MAX));
    }
}
