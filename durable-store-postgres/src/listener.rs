//! The connection that listens for the store's notifications (`LISTEN`) and turns them
//! into [`StoreSignal`]s for the engines of this process.
//!
//! Notifications are sent inside the transactions that make the change (`pg_notify`),
//! so PostgreSQL delivers them only once the change is committed. When the connection
//! drops, the listener reconnects and sends [`StoreSignal::Missed`]: anything may have
//! happened meanwhile.
//!
//! [`StoreSignal::Ready`] makes every engine of the process look for work with one
//! `acquire` query; a burst of new executions (each notifies) would make it look once per
//! execution. So a `Ready` is passed on at once, and those that follow within
//! [`READY_GAP`] are merged into one passed on at the end of it: never later than
//! `READY_GAP`, and never lost.

use std::time::Duration;

use durable_core::StoreSignal;
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::convert::{parse_finished, READY_PAYLOAD};

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The least time between two [`StoreSignal::Ready`] the listener passes on.
const READY_GAP: Duration = Duration::from_millis(10);

/// Listens on `channel` until the task is aborted. The receiver answers once the first
/// connection listens (from then on no notification is missed without a
/// [`StoreSignal::Missed`]), or why it could not.
pub(crate) fn spawn(
    config: tokio_postgres::Config,
    channel: String,
    signals: broadcast::Sender<StoreSignal>,
) -> (JoinHandle<()>, oneshot::Receiver<Result<(), String>>) {
    let (listening, answer) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut listening = Some(listening);
        loop {
            if let Err(e) = listen(&config, &channel, &signals, &mut listening).await {
                if let Some(listening) = listening.take() {
                    // The store does not open.
                    let _ = listening.send(Err(e.to_string()));
                    return;
                }
                tracing::warn!(error = %e, "the PostgreSQL store's listener lost its connection");
            }
            // Signals lost meanwhile are reported once listening again, not while the
            // database cannot be reached (waiters would only read errors).
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    });
    (task, answer)
}

async fn listen(
    config: &tokio_postgres::Config,
    channel: &str,
    signals: &broadcast::Sender<StoreSignal>,
    listening: &mut Option<oneshot::Sender<Result<(), String>>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notifications, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notifications.send(n).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await?;
    match listening.take() {
        Some(listening) => {
            let _ = listening.send(Ok(()));
        }
        None => {
            let _ = signals.send(StoreSignal::Missed);
        }
    }
    let mut ready = ReadyGap::default();
    loop {
        let notification = tokio::select! {
            received = received.recv() => match received {
                Some(notification) => notification,
                None => break,
            },
            () = ready.due() => {
                ready.send(signals);
                continue;
            }
        };
        let payload = notification.payload();
        if payload == READY_PAYLOAD {
            ready.arrived(signals);
        } else if let Some(id) = parse_finished(payload) {
            // No receiver is fine: no engine listens yet.
            let _ = signals.send(StoreSignal::Finished(id));
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// Spaces the [`StoreSignal::Ready`] signals passed on by at least [`READY_GAP`].
#[derive(Default)]
struct ReadyGap {
    /// Until when a `Ready` waits, if one was passed on less than `READY_GAP` ago.
    quiet_until: Option<Instant>,
    /// Whether a `Ready` waits for `quiet_until`.
    waiting: bool,
}

impl ReadyGap {
    fn arrived(&mut self, signals: &broadcast::Sender<StoreSignal>) {
        match self.quiet_until {
            Some(until) if Instant::now() < until => self.waiting = true,
            _ => self.send(signals),
        }
    }

    fn send(&mut self, signals: &broadcast::Sender<StoreSignal>) {
        self.waiting = false;
        self.quiet_until = Some(Instant::now() + READY_GAP);
        let _ = signals.send(StoreSignal::Ready);
    }

    /// Completes when a waiting `Ready` is due; never if none waits.
    async fn due(&self) {
        match (self.waiting, self.quiet_until) {
            (true, Some(until)) => tokio::time::sleep_until(until).await,
            _ => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn readies_within_the_gap_are_merged_into_one_at_its_end() {
        let (signals, mut received) = broadcast::channel(16);
        let mut gap = ReadyGap::default();
        gap.arrived(&signals);
        assert_eq!(
            received.try_recv(),
            Ok(StoreSignal::Ready),
            "the first at once"
        );
        gap.arrived(&signals);
        gap.arrived(&signals);
        assert!(received.try_recv().is_err(), "the next ones wait");
        let started = Instant::now();
        gap.due().await;
        assert_eq!(started.elapsed(), READY_GAP, "until the end of the gap");
        gap.send(&signals);
        assert_eq!(received.try_recv(), Ok(StoreSignal::Ready), "as one");
        assert!(received.try_recv().is_err());
        let idle = tokio::time::timeout(READY_GAP * 10, gap.due()).await;
        assert!(idle.is_err(), "nothing waits, so nothing falls due");
        gap.arrived(&signals);
        assert_eq!(
            received.try_recv(),
            Ok(StoreSignal::Ready),
            "after a quiet gap, at once again"
        );
    }
}
