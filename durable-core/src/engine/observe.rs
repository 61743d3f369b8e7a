//! Watching an execution from outside, for tests and tools: [`Engine::wait_until`] waits
//! for a state without polling on a timer (every commit of the engine wakes the waiters,
//! which read the store again), and [`Engine::compact_history`] gives the history as short
//! lines to assert on.

use std::fmt;

use super::Engine;
use crate::error::{Error, StoreError};
use crate::record::{ExecutionRecord, HistoryEntry, Status};

/// A state of an execution to wait for with [`Engine::wait_until`].
///
/// Operations are named as in the history: a step by its name, a wait by its name
/// (`sleep (line N)` unless named), a condition wait by its name.
pub struct Until {
    kind: Kind,
}

type Predicate = Box<dyn Fn(&ExecutionRecord, &[HistoryEntry]) -> bool + Send + Sync>;

enum Kind {
    Status(Status),
    Suspended,
    SuspendedAt(String),
    Reached(String),
    Finished,
    Matching(String, Predicate),
}

impl Until {
    /// The execution has `status`.
    pub fn status(status: Status) -> Self {
        Until {
            kind: Kind::Status(status),
        }
    }

    /// The execution is suspended, at any point: waiting for a time or an event, out of
    /// memory.
    pub fn suspended() -> Self {
        Until {
            kind: Kind::Suspended,
        }
    }

    /// The execution is suspended at the operation named `name`: a step waiting for its
    /// next attempt, a wait, a condition wait between checks.
    pub fn suspended_at(name: impl Into<String>) -> Self {
        Until {
            kind: Kind::SuspendedAt(name.into()),
        }
    }

    /// The execution has committed something at the operation named `name` (its history
    /// names it): a step attempt, a wait started, a check.
    pub fn reached(name: impl Into<String>) -> Self {
        Until {
            kind: Kind::Reached(name.into()),
        }
    }

    /// The execution has finished: completed or failed.
    pub fn finished() -> Self {
        Until {
            kind: Kind::Finished,
        }
    }

    /// Anything `predicate` says of the record and the retained history; `description`
    /// names it in errors.
    pub fn matching(
        description: impl Into<String>,
        predicate: impl Fn(&ExecutionRecord, &[HistoryEntry]) -> bool + Send + Sync + 'static,
    ) -> Self {
        Until {
            kind: Kind::Matching(description.into(), Box::new(predicate)),
        }
    }

    fn needs_history(&self) -> bool {
        matches!(
            self.kind,
            Kind::SuspendedAt(_) | Kind::Reached(_) | Kind::Matching(..)
        )
    }

    fn holds(&self, record: &ExecutionRecord, history: &[HistoryEntry]) -> bool {
        match &self.kind {
            Kind::Status(status) => record.status == *status,
            Kind::Suspended => record.status == Status::Suspended,
            Kind::SuspendedAt(name) => {
                let point = record.position.as_ref().map(|p| p.point);
                record.status == Status::Suspended
                    && history
                        .iter()
                        .rev()
                        .find(|entry| entry.point.is_some() && entry.point == point)
                        .and_then(|entry| entry.event.name())
                        == Some(name.as_str())
            }
            Kind::Reached(name) => history
                .iter()
                .any(|entry| entry.event.name() == Some(name.as_str())),
            Kind::Finished => record.status.is_terminal(),
            Kind::Matching(_, predicate) => predicate(record, history),
        }
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Until>();
};

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Status(status) => write!(f, "status {}", status.as_str()),
            Kind::Suspended => f.write_str("suspended"),
            Kind::SuspendedAt(name) => write!(f, "suspended at `{name}`"),
            Kind::Reached(name) => write!(f, "reached `{name}`"),
            Kind::Finished => f.write_str("finished"),
            Kind::Matching(description, _) => f.write_str(description),
        }
    }
}

impl fmt::Debug for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Until({self})")
    }
}

impl Engine {
    /// Waits until the execution `id` is in the state `until` describes, and returns its
    /// record as it was then. For tests: observe an intermediate state (suspended at a
    /// given step, waiting for a callback) without polling on a timer, also on a
    /// [`TestClock`](crate::TestClock).
    ///
    /// It reads the stored record (and, if `until` needs it, the history) again after
    /// every commit this engine makes, so it sees every state the execution commits in
    /// this engine; a state that only lasts between two commits may be missed only by a
    /// caller that is not waiting yet. If the execution stops (finishes or is parked) in
    /// a state that does not satisfy `until`, it gives up with [`Error::NotReached`];
    /// [`Error::NotFound`] if there is no such execution, [`Error::ShutDown`] when the
    /// engine shuts down. It waits as long as that takes: wrap it in a timeout in a test
    /// that might otherwise hang. On an auto-advancing [`TestClock`](crate::TestClock) an
    /// execution may run through a wait before the waiter looks: observe intermediate
    /// states on a clock moved by hand.
    ///
    /// ```
    /// # use durable_core::{durable, Ctx, Engine, MemoryStore, TestClock, Timestamp, Until, WaitError};
    /// # use std::time::Duration;
    /// #[durable]
    /// async fn reminder(ctx: Ctx, _: ()) -> Result<(), WaitError> {
    ///     ctx.sleep(Duration::from_secs(3600)).name("an-hour").await?;
    ///     Ok(())
    /// }
    /// # #[tokio::main] async fn main() -> Result<(), durable_core::Error> {
    /// let clock = TestClock::new(Timestamp::from_millis(0));
    /// let engine = Engine::builder(MemoryStore::new())
    ///     .clock(clock.clone())
    ///     .register(reminder)
    ///     .open()
    ///     .await?;
    /// engine.start(reminder, "r-1", ()).await?;
    /// engine.wait_until("r-1", Until::suspended_at("an-hour")).await?;
    /// clock.advance(Duration::from_secs(3600));
    /// engine.wait_until("r-1", Until::finished()).await?;
    /// assert_eq!(
    ///     engine.compact_history("r-1").await?,
    ///     ["wait an-hour: started", "wait an-hour: finished", "completed"]
    /// );
    /// # engine.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_until(&self, id: &str, until: Until) -> Result<ExecutionRecord, Error> {
        let shared = &self.shared;
        let mut changes = shared.changes.subscribe();
        loop {
            // Marked seen before the read, so a commit after the read wakes the wait.
            changes.borrow_and_update();
            if shared.is_shutting_down() {
                return Err(Error::ShutDown);
            }
            let record = match shared.store.load(id).await {
                Ok(Some(record)) => record,
                Ok(None) => return Err(Error::NotFound { id: id.to_owned() }),
                Err(StoreError::Closed) => return Err(Error::ShutDown),
                Err(e) => return Err(e.into()),
            };
            let history = if until.needs_history() {
                shared.store.history(id).await?
            } else {
                Vec::new()
            };
            if until.holds(&record, &history) {
                return Ok(record);
            }
            if record.status.is_terminal() || record.status == Status::Parked {
                return Err(Error::NotReached {
                    id: id.to_owned(),
                    wanted: until.to_string(),
                    status: record.status,
                });
            }
            if changes.changed().await.is_err() {
                return Err(Error::ShutDown);
            }
        }
    }

    /// The execution's retained history as short lines without times, for assertions:
    /// `["step charge: failed #1, retrying", "step charge: succeeded #2", "completed"]` (see [`Event::summary`](crate::Event::summary)).
    pub async fn compact_history(&self, id: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .history(id)
            .await?
            .iter()
            .map(|entry| entry.event.summary())
            .collect())
    }
}
