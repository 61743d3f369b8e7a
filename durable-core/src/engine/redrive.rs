//! Re-drive: an operator resumes a `Failed` execution from its last committed point on a
//! registered version that can read it ([`Engine::redrive`](super::Engine::redrive)).
//!
//! Nothing before that point runs again: the frame and the point's recorded state are
//! kept when an execution fails (see `activation::fail`), so resuming decodes them and
//! runs the code after the point, which is the registered version's, fixed or not. If
//! that point is a step that gave up (retries exhausted, a terminal error:
//! `PointState::StepGaveUp`), the step itself runs again with a fresh attempt budget;
//! its error, which the workflow failed on, is not handed to it again. A step that
//! succeeded stays recorded: a workflow that returned `Err` after it runs on from there.

use std::sync::Arc;

use super::{layouts, Shared};
use crate::error::{Error, StoreError};
use crate::execution::{Change, Ctx, Interrupt, Runtime};
use crate::record::{Event, PointState, Status};

pub(super) async fn redrive(shared: &Arc<Shared>, id: &str) -> Result<(), Error> {
    let record = shared.existing(id).await?;
    if record.status != Status::Failed {
        return Err(Error::NotFailed {
            id: id.to_owned(),
            status: record.status,
        });
    }
    let layout = layouts::stored_layout(&record);
    let Some(version) = shared
        .registry
        .resumer(&record.workflow, record.fingerprint, layout)
        .cloned()
    else {
        let message = layouts::mismatch(&*shared.store, &shared.registry, &record).await?;
        return Err(Error::NoCompatibleVersion {
            id: id.to_owned(),
            message,
        });
    };
    let now = shared.clock.now();
    let until = now.saturating_add(shared.config.lease_ttl);
    if !shared.store.claim(id, shared.owner, now, until).await? {
        return Err(StoreError::LeaseLost { id: id.to_owned() }.into());
    }
    let position = record.position.clone().map(|mut position| {
        if matches!(position.state, PointState::StepGaveUp { .. }) {
            // The step that gave up runs again, from attempt 1 with a fresh retry budget
            // and its own idempotency key: the record's sequence number now, which no
            // entry of a point has read (every entry follows a commit; this one follows
            // the failure).
            position.state = PointState::StepRetrying {
                attempt: 1,
                key_seq: record.seq,
                since: now,
            };
        }
        position
    });
    let ctx = Ctx::new(
        shared.clone() as Arc<dyn Runtime>,
        record,
        version.codec,
        version.layout_fingerprint,
        until,
    );
    // Running again from the last committed point: the failure's message and any output
    // of a `Result` workflow that returned `Err` go; the frame and point state stay.
    let change = Change {
        position,
        events: vec![Event::Redriven {
            fingerprint: version.fingerprint,
        }],
        ..Change::to(Status::Running)
    };
    let committed = ctx.commit(change).await;
    if let Err(e) = shared.store.release(id, shared.owner).await {
        tracing::warn!(execution = id, error = %e, "could not release lease");
    }
    match committed {
        Ok(()) => {
            tracing::info!(execution = id, "execution re-driven");
            shared.enqueue(id);
            Ok(())
        }
        Err(Interrupt::Store(e)) => Err(e.into()),
        Err(other) => Err(Error::Invalid {
            message: format!("execution {id:?} could not be re-driven: {other:?}"),
        }),
    }
}
