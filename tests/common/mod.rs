//! Helpers shared by the integration tests.

use durable_core::{Status, Store};

/// Yields until the stored execution `id` has `status`.
///
/// Yielding (not sleeping) lets the engine's tasks run; each check reads the store, so the
/// wait ends as soon as the commit that sets the status is visible.
pub async fn until_status<S: Store + ?Sized>(store: &S, id: &str, status: Status) {
    loop {
        let record = store.load(id).await.expect("store reads");
        if record.is_some_and(|r| r.status == status) {
            return;
        }
        tokio::task::yield_now().await;
    }
}
