//! Starting an execution: [`Engine::start`], idempotent by execution id.

use super::{Engine, Handle, MAX_ID_LEN};
use crate::canonical::same_value;
use crate::error::Error;
use crate::execution::{Workflow, WorkflowFn};
use crate::record::{Created, ExecutionRecord, Status};

impl Engine {
    /// Starts an execution of `workflow` with id `id`, or finds the one already started
    /// with that id.
    ///
    /// The id is an idempotency key: starting the same id with the same input returns a
    /// handle to the existing execution (running or finished) and runs nothing twice;
    /// the same id with another input or workflow is [`Error::IdConflict`]. Inputs are
    /// compared by value, not by their bytes: map entries in any order are equal, and so
    /// are the elements of a `HashSet`; other sequences are compared in order.
    ///
    /// Durable: when this returns `Ok`, the execution survives a crash and will run to
    /// its end on this or a later engine.
    pub async fn start<F: WorkflowFn>(
        &self,
        workflow: F,
        id: impl Into<String>,
        input: <F::Workflow as Workflow>::Input,
    ) -> Result<Handle<F::Workflow>, Error> {
        let id = id.into();
        self.start_typed::<F::Workflow>(&id, input).await?;
        Ok(self.handle(workflow, id))
    }

    async fn start_typed<W: Workflow>(&self, id: &str, input: W::Input) -> Result<(), Error> {
        let shared = &self.shared;
        if shared.is_shutting_down() {
            return Err(Error::ShutDown);
        }
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(Error::Invalid {
                message: format!(
                    "an execution id must be 1 to {MAX_ID_LEN} bytes long, got {}",
                    id.len()
                ),
            });
        }
        if shared.registry.find(W::NAME, W::FINGERPRINT).is_none() {
            return Err(Error::NotRegistered {
                workflow: W::NAME.to_owned(),
            });
        }
        let encoded = W::CODEC.encode_value(&input)?;
        if encoded.len() > shared.config.max_value_bytes {
            return Err(Error::Invalid {
                message: format!(
                    "the input of execution {id:?} is {} bytes, over the limit of {} (EngineBuilder::max_value_bytes)",
                    encoded.len(),
                    shared.config.max_value_bytes
                ),
            });
        }
        let record = ExecutionRecord::new(id, W::NAME, W::FINGERPRINT, shared.clock.now());
        let created = shared.store.create(record, encoded.clone()).await;
        shared.health.observe(shared.clock.now(), &created);
        match created? {
            Created::New => shared.enqueue(id),
            Created::Existing(existing) => {
                self.check_same_start::<W>(&existing, &input, &encoded)
                    .await?;
                if existing.status == Status::Running {
                    shared.enqueue(id);
                }
            }
        }
        Ok(())
    }

    async fn check_same_start<W: Workflow>(
        &self,
        existing: &ExecutionRecord,
        input: &W::Input,
        encoded: &[u8],
    ) -> Result<(), Error> {
        let conflict = |reason: String| Error::IdConflict {
            id: existing.id.clone(),
            reason,
        };
        if existing.workflow != W::NAME {
            return Err(conflict(format!(
                "it runs workflow {:?}, not {:?}",
                existing.workflow,
                W::NAME
            )));
        }
        let stored = self
            .shared
            .store
            .load_input(&existing.id)
            .await?
            .ok_or_else(|| Error::NotFound {
                id: existing.id.clone(),
            })?;
        match same_value(&stored, encoded, input) {
            Ok(true) => Ok(()),
            Ok(false) => Err(conflict("it was started with a different input".into())),
            Err(reason) => Err(conflict(format!("its input: {reason}"))),
        }
    }
}
