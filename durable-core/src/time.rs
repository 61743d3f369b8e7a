//! Time as the engine sees it: [`Timestamp`]s in the store, a [`Clock`] to read and wait on.
//!
//! Every wake-up time the engine persists (retry delays, and later sleeps) is a
//! [`Timestamp`] read from the engine's clock, so a test can swap in a [`TestClock`] and
//! move time by hand: nothing in the engine reads the system time directly.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// A point in time: milliseconds since the Unix epoch (UTC).
///
/// Stored in every record that waits for something, so it is a plain integer with a
/// fixed meaning across processes and machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The timestamp of a [`SystemTime`]; times before the epoch clamp to it.
    pub fn from_system_time(time: SystemTime) -> Self {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Timestamp(millis)
    }

    /// This timestamp as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// `self + duration`, or `None` if the result does not fit.
    pub fn checked_add(self, duration: Duration) -> Option<Self> {
        let millis = u64::try_from(duration.as_millis()).ok()?;
        self.0.checked_add(millis).map(Timestamp)
    }

    /// `self + duration`, saturating at the largest timestamp.
    pub fn saturating_add(self, duration: Duration) -> Self {
        self.checked_add(duration).unwrap_or(Timestamp(u64::MAX))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A boxed future that a [`Clock`] returns from [`Clock::sleep_until`].
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The engine's source of time.
///
/// The engine reads `now` to stamp records and compute wake-ups, and waits with
/// `sleep_until` in its timer service. [`SystemClock`] is the default;
/// [`TestClock`] lets a test move time by hand.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// A future that completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: Timestamp) -> SleepFuture;

    /// Called by the engine when it has nothing to do until `deadline`, its earliest
    /// timer. A test clock in auto-advance mode jumps there and returns `true`; real
    /// clocks return `false` (the default) and the engine simply waits.
    fn skip_idle_to(&self, deadline: Timestamp) -> bool {
        let _ = deadline;
        false
    }
}

/// The wall clock, with waits on the tokio timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    fn sleep_until(&self, deadline: Timestamp) -> SleepFuture {
        let wait = deadline.saturating_duration_since(self.now());
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that only moves when told to, for tests.
///
/// Clones share one time. [`advance`](TestClock::advance) and
/// [`set`](TestClock::set) wake every waiter whose deadline has been reached, so a test
/// of a workflow that retries after an hour finishes as soon as it advances the clock by
/// an hour, without waiting in real time.
///
/// In auto-advance mode ([`TestClock::auto_advance`]) the clock also jumps by itself to
/// the engine's next timer whenever the engine is idle, so a workflow that sleeps for a
/// year runs to its end in milliseconds while every recorded time is the virtual one.
#[derive(Clone, Debug)]
pub struct TestClock {
    inner: Arc<Mutex<TestClockState>>,
}

#[derive(Debug)]
struct TestClockState {
    now: Timestamp,
    next_waiter: u64,
    waiters: BTreeMap<(Timestamp, u64), oneshot::Sender<()>>,
    /// How many waiters there were after the last sweep of dropped ones.
    swept: usize,
    auto_advance: bool,
}

impl TestClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        TestClock {
            inner: Arc::new(Mutex::new(TestClockState {
                now: start,
                next_waiter: 0,
                waiters: BTreeMap::new(),
                swept: 0,
                auto_advance: false,
            })),
        }
    }

    /// Turns auto-advance on or off (for every clone): when on, the engine moves the
    /// clock to its next timer whenever it has nothing else to do.
    pub fn auto_advance(self, on: bool) -> Self {
        self.lock().auto_advance = on;
        self
    }

    /// A clock standing at the current wall-clock time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// The clock's current time (the same as [`Clock::now`], without importing the trait).
    pub fn now(&self) -> Timestamp {
        self.lock().now
    }

    /// Moves the clock forward by `by` and wakes every waiter that is now due.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        let to = state.now.saturating_add(by);
        Self::move_to(&mut state, to);
    }

    /// Moves the clock to `to` (never backwards) and wakes every waiter that is now due.
    pub fn set(&self, to: Timestamp) {
        let mut state = self.lock();
        let to = to.max(state.now);
        Self::move_to(&mut state, to);
    }

    /// The earliest deadline anyone is waiting for, if any.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let mut state = self.lock();
        state.waiters.retain(|_, tx| !tx.is_closed());
        state.waiters.keys().next().map(|(at, _)| *at)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TestClockState> {
        // The state is plain data that stays consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn move_to(state: &mut TestClockState, to: Timestamp) {
        state.now = to;
        let later = state
            .waiters
            .split_off(&(Timestamp(to.0.saturating_add(1)), 0));
        let due = std::mem::replace(&mut state.waiters, later);
        for (_, tx) in due {
            let _ = tx.send(());
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        TestClock::now(self)
    }

    fn skip_idle_to(&self, deadline: Timestamp) -> bool {
        let mut state = self.lock();
        if !state.auto_advance || deadline <= state.now {
            return false;
        }
        Self::move_to(&mut state, deadline);
        true
    }

    fn sleep_until(&self, deadline: Timestamp) -> SleepFuture {
        let mut state = self.lock();
        if deadline <= state.now {
            return Box::pin(std::future::ready(()));
        }
        // A sleep dropped before its deadline leaves a closed sender behind; sweep them
        // whenever the map has doubled since the last sweep, so a long run that keeps
        // replacing its sleeps stays bounded (amortised O(1) per call).
        if state.waiters.len() >= 2 * state.swept.max(32) {
            state.waiters.retain(|_, tx| !tx.is_closed());
            state.swept = state.waiters.len();
        }
        let (tx, rx) = oneshot::channel();
        let key = (deadline, state.next_waiter);
        state.next_waiter += 1;
        state.waiters.insert(key, tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_clock_wakes_only_due_sleepers() {
        let clock = TestClock::new(Timestamp::from_millis(1_000));
        let early = clock.sleep_until(Timestamp::from_millis(1_500));
        let late = tokio::spawn(clock.sleep_until(Timestamp::from_millis(5_000)));
        clock.advance(Duration::from_millis(500));
        early.await;
        assert_eq!(clock.now(), Timestamp::from_millis(1_500));
        assert_eq!(clock.next_deadline(), Some(Timestamp::from_millis(5_000)));
        assert!(!late.is_finished());
        clock.set(Timestamp::from_millis(5_000));
        late.await.unwrap();
    }

    #[test]
    fn dropped_sleeps_do_not_accumulate() {
        let clock = TestClock::new(Timestamp::EPOCH);
        for i in 0..10_000 {
            drop(clock.sleep_until(Timestamp::from_millis(1_000 + i)));
        }
        assert!(clock.lock().waiters.len() <= 64);
    }

    #[test]
    fn only_an_auto_advancing_clock_skips() {
        let manual = TestClock::new(Timestamp::EPOCH);
        assert!(!manual.skip_idle_to(Timestamp::from_millis(10)));
        assert_eq!(manual.now(), Timestamp::EPOCH);
        let auto = TestClock::new(Timestamp::EPOCH).auto_advance(true);
        assert!(auto.skip_idle_to(Timestamp::from_millis(10)));
        assert_eq!(auto.now(), Timestamp::from_millis(10));
        assert!(
            !auto.skip_idle_to(Timestamp::from_millis(5)),
            "never backwards"
        );
        assert!(!SystemClock.skip_idle_to(Timestamp::EPOCH));
    }

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp::from_millis(u64::MAX - 1);
        assert_eq!(t.checked_add(Duration::from_millis(5)), None);
        assert_eq!(
            t.saturating_add(Duration::from_secs(1)).as_millis(),
            u64::MAX
        );
        assert_eq!(
            Timestamp::from_millis(10).saturating_duration_since(Timestamp::from_millis(20)),
            Duration::ZERO
        );
    }
}
