//! [`Engine::cancel`](super::Engine::cancel): an operator stops an execution and what it
//! started (see `ops::cancel` for how).

use std::sync::Arc;

use super::Shared;
use crate::error::Error;
use crate::execution::Runtime;
use crate::ops::cancel::{cancel_tree, Cancelled};

pub(super) async fn cancel(shared: &Arc<Shared>, id: &str, reason: &str) -> Result<bool, Error> {
    let record = shared.existing(id).await?;
    if record.status.is_terminal() {
        return Ok(false);
    }
    let mut done = Cancelled::default();
    cancel_tree(&shared.store, id, reason, shared.clock.now(), &mut done).await?;
    for cancelled in &done.cancelled {
        shared.notify_done(cancelled);
    }
    shared.committed(id, None, &done.woken);
    Ok(done.cancelled.first().is_some_and(|first| first == id))
}
