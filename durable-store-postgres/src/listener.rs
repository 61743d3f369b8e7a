//! The connection that listens for the store's notifications (`LISTEN`) and turns them
//! into [`StoreSignal`]s for the engines of this process.
//!
//! Notifications are sent inside the transactions that make the change (`pg_notify`),
//! so PostgreSQL delivers them only once the change is committed. When the connection
//! drops, the listener reconnects and sends [`StoreSignal::Missed`]: anything may have
//! happened meanwhile.

use std::time::Duration;

use durable_core::StoreSignal;
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::convert::{parse_finished, READY_PAYLOAD};

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Listens on `channel` until the task is aborted.
pub(crate) fn spawn(
    config: tokio_postgres::Config,
    channel: String,
    signals: broadcast::Sender<StoreSignal>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut first = true;
        loop {
            if let Err(e) = listen(&config, &channel, &signals, first).await {
                tracing::warn!(error = %e, "the PostgreSQL store's listener lost its connection");
            }
            // Signals lost meanwhile are reported once listening again, not while the
            // database cannot be reached (waiters would only read errors).
            first = false;
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    })
}

async fn listen(
    config: &tokio_postgres::Config,
    channel: &str,
    signals: &broadcast::Sender<StoreSignal>,
    first: bool,
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
    if !first {
        let _ = signals.send(StoreSignal::Missed);
    }
    while let Some(notification) = received.recv().await {
        let payload = notification.payload();
        let signal = if payload == READY_PAYLOAD {
            StoreSignal::Ready
        } else if let Some(id) = parse_finished(payload) {
            StoreSignal::Finished(id)
        } else {
            continue;
        };
        // No receiver is fine: no engine listens yet.
        let _ = signals.send(signal);
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
