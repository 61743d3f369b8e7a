//! Live-state inspection: [`Engine::describe`](super::Engine::describe) shows an execution
//! like a paused debugger: where it stands, its live locals by name, what it waits for,
//! and what happened so far.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;

use super::callbacks::CallbackState;
use super::Shared;
use crate::codec::{Codec, FrameReader};
use crate::error::Error;
use crate::execution::{Ctx, Entry, Interrupt, Runtime};
use crate::record::{
    ExecutionRecord, HistoryEntry, OperationKind, OperationRecord, OperationState, ParentLink,
    PointState, Status,
};
use crate::time::Timestamp;

/// A snapshot of one execution, from [`Engine::describe`](super::Engine::describe).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Description {
    /// The execution id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Fingerprint of the code that wrote its state.
    pub fingerprint: u64,
    /// Fingerprint of the layout its frame was written with; `None` before its first
    /// durable point or for a frame written before layouts.
    pub layout: Option<u64>,
    /// Where it stands.
    pub status: Status,
    /// Why it failed or is parked.
    pub message: Option<String>,
    /// The execution it is a child of (started by `ctx.call` or `ctx.invoke`), and the
    /// parent's operation it reports to.
    pub parent: Option<ParentLink>,
    /// The last committed durable point, `None` before the first one and after
    /// completion.
    pub point: Option<PointDescription>,
    /// The live locals saved at that point, by name, decoded to JSON.
    pub locals: Vec<Local>,
    /// Why `locals` is empty although there is a frame (no registered version can read
    /// it, or it cannot be decoded).
    pub locals_unavailable: Option<String>,
    /// What it waits for: if it is suspended, or while its store fails
    /// ([`Waiting::Store`]).
    pub waiting_for: Option<Waiting>,
    /// Its callbacks, oldest first: every pending one, and the latest
    /// [`SETTLED_CALLBACKS_SHOWN`] settled ones.
    pub callbacks: Vec<CallbackDescription>,
    /// How many older settled callbacks `callbacks` leaves out.
    pub callbacks_omitted: u64,
    /// Its child executions (`ctx.call`), oldest first: every pending one, and the latest
    /// [`SETTLED_CHILDREN_SHOWN`] settled ones.
    pub children: Vec<ChildDescription>,
    /// How many older settled children `children` leaves out.
    pub children_omitted: u64,
    /// The output decoded to JSON, once the workflow returned (completed, or failed by
    /// returning `Err`).
    pub output: Option<serde_json::Value>,
    /// Why `output` is `None` although the workflow returned: the registered code cannot
    /// decode it, or it has no JSON form (a `u128` above `u64::MAX`, a map with keys that
    /// are not strings or numbers). The rest is still shown, as for an unreadable local.
    pub output_unreadable: Option<String>,
    /// The retained operation history, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Why `history` and `callbacks` are empty although there may be some: the store
    /// cannot be read, as it fails (see [`Waiting::Store`]); the rest is the state this
    /// engine last committed for the execution.
    pub store_unavailable: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last committed.
    pub updated_at: Timestamp,
}

/// A durable point as the macro saw it in the source.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PointDescription {
    /// The point id.
    pub id: u32,
    /// The awaited operation, e.g. `ctx.step("charge", ..)`; empty if unknown.
    pub label: String,
    /// Source line of the `.await`, 0 if unknown.
    pub line: u32,
    /// How far the operation got: `completed`, `retrying`, `started`, `waiting`,
    /// `polling`, `awaiting` (a callback), `submitting` (a callback's submitter).
    pub state: String,
    /// The attempt (or check) that runs next or ran last, for steps and conditions.
    pub attempt: Option<u32>,
}

/// One live local.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Local {
    /// Its name in the source.
    pub name: String,
    /// Its value (`null` when it is unreadable).
    pub value: serde_json::Value,
    /// Why its value cannot be read with the registered code, if it cannot: the other
    /// locals are still shown.
    pub unreadable: Option<String>,
}

/// What an execution waits for: a suspended one for a time or an event, a running one
/// for its store to work again.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub enum Waiting {
    /// The next attempt of a step.
    Retry {
        /// The attempt that runs next.
        attempt: u32,
        /// When.
        at: Timestamp,
    },
    /// A durable sleep.
    Sleep {
        /// When it ends.
        until: Timestamp,
    },
    /// The next check of a condition wait.
    Condition {
        /// The check that runs next.
        attempt: u32,
        /// When.
        at: Timestamp,
    },
    /// A child execution's end.
    Child {
        /// The child's workflow name.
        workflow: String,
        /// The child execution's id.
        id: String,
    },
    /// A callback's completion.
    Callback {
        /// The callback's name.
        name: String,
        /// When it times out if nothing arrives (its timeout or heartbeat deadline).
        until: Option<Timestamp>,
    },
    /// The store: a write it needs failed (a full disk, a lost database), and the engine
    /// retries it with backoff until the store works again (see
    /// [`Engine::health`](super::Engine::health)). The execution has not failed, and its
    /// last committed state is intact.
    Store {
        /// When its first failure of this run happened (engine clock).
        since: Timestamp,
        /// The last failure's error, with its cause.
        cause: String,
    },
    /// A batch (`ctx.map`, `ctx.parallel`): the children it runs (listed in
    /// [`Description::children`]) and the step items waiting to retry.
    Batch {
        /// How many items it has.
        total: u64,
        /// How many have settled.
        settled: u64,
        /// How many are in flight.
        in_flight: u64,
        /// When the next step item retries, if one waits to.
        until: Option<Timestamp>,
    },
}

/// How many settled children [`Description::children`] shows at most.
pub const SETTLED_CHILDREN_SHOWN: usize = 100;

/// One child execution of an execution, as its operation record says.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ChildDescription {
    /// The child's workflow name.
    pub workflow: String,
    /// The child execution's id (describe it for its own state).
    pub id: String,
    /// Its operation key within the parent.
    pub key: String,
    /// Whether the parent has its result: `pending`, `succeeded` (it returned; a `Result`
    /// workflow may have returned `Err`) or `failed` (it ended without an output).
    pub state: &'static str,
    /// The child's own status, read for pending children only (settled ones are
    /// finished).
    pub status: Option<Status>,
    /// When the parent started it.
    pub created_at: Timestamp,
    /// When its result reached the parent, for a settled one.
    pub updated_at: Timestamp,
}

/// How many settled callbacks [`Description::callbacks`] shows at most.
pub const SETTLED_CALLBACKS_SHOWN: usize = 100;

/// One callback of an execution.
///
/// It shows the callback id: `describe` is an operator's tool (the HTTP inspection
/// endpoints require the bearer token), and an operator may need the id to complete a
/// stuck callback by hand. Do not log descriptions where ids must stay secret.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CallbackDescription {
    /// Its name.
    pub name: String,
    /// Its id: whoever knows it can complete the callback.
    pub id: String,
    /// Its operation key within the execution.
    pub key: String,
    /// Where it stands.
    pub state: CallbackState,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it times out, if ever.
    pub timeout_at: Option<Timestamp>,
    /// Its heartbeat timeout in milliseconds, if it has one.
    pub heartbeat_timeout_ms: Option<u64>,
    /// When its last heartbeat arrived.
    pub heartbeat_at: Option<Timestamp>,
    /// When it was last written (settled, for a settled one).
    pub updated_at: Timestamp,
    /// The completion's payload or the failure's error as it arrived (JSON; a string if
    /// the bytes are not JSON), kept even when it does not decode into the awaited type.
    pub payload: Option<serde_json::Value>,
}

pub(super) async fn describe(shared: &Arc<Shared>, id: &str) -> Result<Description, Error> {
    let wait = shared.health.waiting_for_store(id);
    let (record, history, (callbacks, callbacks_omitted), store_unavailable) =
        match read(shared, id).await {
            Ok((record, history, callbacks)) => (record, history, callbacks, None),
            // The store cannot be read either (sled 0.34 fails some reads once a write
            // failed): show what this engine last committed for an execution it runs.
            Err(Error::Store(e)) if e.is_failure() => {
                match wait.as_ref().and_then(|w| w.record.clone()) {
                    Some(record) => {
                        let why = format!("the store cannot be read: {e}");
                        (record, Vec::new(), (Vec::new(), 0), Some(why))
                    }
                    None => return Err(Error::Store(e)),
                }
            }
            Err(e) => return Err(e),
        };
    let layout = super::layouts::stored_layout(&record);
    // Only a version with the stored layout reads the frame: another one could decode it
    // into the wrong fields without an error.
    let version = shared
        .registry
        .resumer(&record.workflow, record.fingerprint, layout)
        .cloned();
    let point = record.position.as_ref().map(|position| {
        let info = version
            .as_ref()
            .and_then(|v| v.points.iter().find(|p| p.id == position.point));
        let (state, attempt) = match &position.state {
            PointState::Completed { .. } => ("completed", None),
            PointState::StepGaveUp { .. } => ("gave up", None),
            PointState::Retrying { attempt } | PointState::StepRetrying { attempt, .. } => {
                ("retrying", Some(*attempt))
            }
            PointState::Started { attempt } | PointState::StepStarted { attempt, .. } => {
                ("started", Some(*attempt))
            }
            PointState::Waiting { .. } => ("waiting", None),
            PointState::Polling { attempt, .. } => ("polling", Some(*attempt)),
            PointState::Awaiting { .. } => ("awaiting", None),
            PointState::Submitting { attempt, .. } => ("submitting", Some(*attempt)),
            PointState::Batch(_) => ("batch", None),
        };
        PointDescription {
            id: position.point,
            label: info.map(|i| i.label.to_owned()).unwrap_or_default(),
            line: info.map(|i| i.line).unwrap_or(0),
            state: state.to_owned(),
            attempt,
        }
    });
    let (children, children_omitted) = match store_unavailable {
        // Nothing more can be read.
        Some(_) => (Vec::new(), 0),
        None => children(shared, id).await?,
    };
    let waiting_for = match wait {
        Some(wait) => Some(Waiting::Store {
            since: wait.since,
            cause: wait.cause,
        }),
        None => waiting_for(&record, &callbacks, &children),
    };
    let (locals, locals_unavailable) = match &record.position {
        None => (Vec::new(), None),
        Some(position) => {
            check_frame(id, &position.frame)?;
            match &version {
                Some(v) => (inspect(shared, &record, v).await?, None),
                None => positional_locals(&position.frame),
            }
        }
    };
    let (output, output_unreadable) = match (&record.output, &version) {
        (Some(bytes), Some(v)) => match (v.output_json)(bytes) {
            Ok(json) => (Some(json), None),
            Err(e) => (None, Some(format!("the output cannot be shown as JSON: {e}"))),
        },
        (Some(bytes), None) => match crate::codec::value_to_json(bytes) {
            Ok(json) => (Some(json), None),
            Err(e) => (
                None,
                Some(format!(
                    "no registered version reads this output, and it cannot be shown without one: {e}"
                )),
            ),
        },
        (None, _) => (None, None),
    };
    Ok(Description {
        id: record.id,
        workflow: record.workflow,
        fingerprint: record.fingerprint,
        layout,
        status: record.status,
        message: record.message,
        parent: record.parent,
        point,
        locals,
        locals_unavailable,
        waiting_for,
        callbacks,
        callbacks_omitted,
        children,
        children_omitted,
        output,
        output_unreadable,
        history,
        store_unavailable,
        created_at: record.created_at,
        updated_at: record.updated_at,
    })
}

/// What describing `id` reads from the store: its record, history and callbacks.
async fn read(
    shared: &Shared,
    id: &str,
) -> Result<
    (
        ExecutionRecord,
        Vec<HistoryEntry>,
        (Vec<CallbackDescription>, u64),
    ),
    Error,
> {
    let record = shared
        .store
        .load(id)
        .await?
        .ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
    let history = shared.store.history(id).await?;
    let callbacks = callbacks(shared, id).await?;
    Ok((record, history, callbacks))
}

fn waiting_for(
    record: &ExecutionRecord,
    callbacks: &[CallbackDescription],
    children: &[ChildDescription],
) -> Option<Waiting> {
    if record.status != Status::Suspended {
        return None;
    }
    let state = &record.position.as_ref()?.state;
    if let PointState::Batch(batch) = state {
        return Some(Waiting::Batch {
            total: batch.total,
            settled: batch.settled(),
            in_flight: batch.in_flight.len() as u64,
            until: record.wake_at,
        });
    }
    if let PointState::Awaiting { key } = state {
        if let Some(child) = children.iter().find(|c| c.key == *key) {
            return Some(Waiting::Child {
                workflow: child.workflow.clone(),
                id: child.id.clone(),
            });
        }
        let callback = callbacks.iter().find(|c| c.key == *key);
        return Some(Waiting::Callback {
            name: callback.map(|c| c.name.clone()).unwrap_or_default(),
            until: record.wake_at,
        });
    }
    let at = record.wake_at?;
    Some(match state {
        PointState::Retrying { attempt }
        | PointState::StepRetrying { attempt, .. }
        | PointState::Submitting { attempt, .. } => Waiting::Retry {
            attempt: *attempt,
            at,
        },
        PointState::Polling { attempt, .. } => Waiting::Condition {
            attempt: *attempt,
            at,
        },
        _ => Waiting::Sleep { until: at },
    })
}

/// How many operations one store read takes.
const OPERATIONS_PAGE: usize = 256;

/// The execution's callbacks: every pending one and the latest settled ones, oldest
/// first, and how many settled ones are left out.
async fn callbacks(shared: &Shared, id: &str) -> Result<(Vec<CallbackDescription>, u64), Error> {
    let mut shown: VecDeque<CallbackDescription> = VecDeque::new();
    let mut settled = 0usize;
    let mut omitted = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = shared
            .store
            .operations(id, after.as_deref(), OPERATIONS_PAGE)
            .await?;
        for op in &page {
            let Some(callback) = describe_callback(op) else {
                continue;
            };
            if callback.state != CallbackState::Pending {
                settled += 1;
                if settled > SETTLED_CALLBACKS_SHOWN {
                    // Drop the oldest settled one shown.
                    if let Some(i) = shown.iter().position(|c| c.state != CallbackState::Pending) {
                        shown.remove(i);
                        omitted += 1;
                    }
                }
            }
            shown.push_back(callback);
        }
        match page.last() {
            Some(last) if page.len() == OPERATIONS_PAGE => after = Some(last.key.clone()),
            _ => return Ok((shown.into(), omitted)),
        }
    }
}

/// The execution's children: every pending one (with its status) and the latest settled
/// ones, oldest first, and how many settled ones are left out.
async fn children(shared: &Shared, id: &str) -> Result<(Vec<ChildDescription>, u64), Error> {
    let mut shown: VecDeque<ChildDescription> = VecDeque::new();
    let mut settled = 0usize;
    let mut omitted = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = shared
            .store
            .operations(id, after.as_deref(), OPERATIONS_PAGE)
            .await?;
        for op in &page {
            // A call's or invoke's child, or a batch item's.
            let (execution, workflow) = match &op.kind {
                OperationKind::Child {
                    execution,
                    workflow,
                } => (execution, workflow.clone()),
                OperationKind::Item {
                    execution: Some(execution),
                    workflow,
                    ..
                } => (execution, workflow.clone().unwrap_or_default()),
                _ => continue,
            };
            let state = match op.state {
                OperationState::Pending => "pending",
                OperationState::Succeeded { .. } => "succeeded",
                OperationState::Cancelled => "cancelled",
                _ => "failed",
            };
            let status = match op.state {
                OperationState::Pending => shared.store.load(execution).await?.map(|r| r.status),
                _ => None,
            };
            if !op.state.is_pending() {
                settled += 1;
                if settled > SETTLED_CHILDREN_SHOWN {
                    if let Some(i) = shown.iter().position(|c| c.state != "pending") {
                        shown.remove(i);
                        omitted += 1;
                    }
                }
            }
            shown.push_back(ChildDescription {
                workflow,
                id: execution.clone(),
                key: op.key.clone(),
                state,
                status,
                created_at: op.created_at,
                updated_at: op.updated_at,
            });
        }
        match page.last() {
            Some(last) if page.len() == OPERATIONS_PAGE => after = Some(last.key.clone()),
            _ => return Ok((shown.into(), omitted)),
        }
    }
}

fn describe_callback(op: &OperationRecord) -> Option<CallbackDescription> {
    let OperationKind::Callback {
        timeout_at,
        heartbeat_timeout_ms,
    } = op.kind
    else {
        return None;
    };
    let payload = match &op.state {
        OperationState::Succeeded { payload } => Some(payload),
        OperationState::Failed { error } => Some(error),
        _ => None,
    }
    .map(|bytes| {
        serde_json::from_slice(bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
        })
    });
    Some(CallbackDescription {
        name: op.name.clone(),
        id: op.token.clone().unwrap_or_default(),
        key: op.key.clone(),
        state: CallbackState::of(&op.state),
        created_at: op.created_at,
        timeout_at,
        heartbeat_timeout_ms,
        heartbeat_at: op.heartbeat_at,
        updated_at: op.updated_at,
        payload,
    })
}

/// Checks the frame's envelope so that corrupt, truncated or foreign bytes are a typed
/// error before any typed decoding.
fn check_frame(id: &str, frame: &[u8]) -> Result<(), Error> {
    let mut reader = FrameReader::new(frame).map_err(|e| Error::Corrupt {
        id: id.to_owned(),
        message: format!("the frame cannot be read: {e}"),
    })?;
    for _ in 0..reader.len() {
        reader.next_raw().map_err(|e| Error::Corrupt {
            id: id.to_owned(),
            message: format!("the frame cannot be read: {e}"),
        })?;
    }
    reader.finish().map_err(|e| Error::Corrupt {
        id: id.to_owned(),
        message: format!("the frame cannot be read: {e}"),
    })
}

async fn inspect(
    shared: &Arc<Shared>,
    record: &ExecutionRecord,
    version: &super::registry::Version,
) -> Result<Vec<Local>, Error> {
    let frame = record
        .position
        .as_ref()
        .map(|p| p.frame.clone())
        .unwrap_or_default();
    let ctx = Ctx::new(
        shared.clone() as Arc<dyn Runtime>,
        record.clone(),
        version.codec,
        version.layout_fingerprint,
        Timestamp::EPOCH,
    );
    match (version.run)(ctx, Entry::Inspect { frame }).await {
        Err(Interrupt::Inspected(locals)) => Ok(locals
            .into_iter()
            .map(|(name, value)| match value {
                Ok(value) => Local {
                    name: name.to_owned(),
                    value,
                    unreadable: None,
                },
                Err(why) => Local {
                    name: name.to_owned(),
                    value: serde_json::Value::Null,
                    unreadable: Some(why),
                },
            })
            .collect()),
        Err(Interrupt::Failed(message) | Interrupt::Unreadable(message)) => Err(Error::Corrupt {
            id: record.id.clone(),
            message,
        }),
        _ => Err(Error::Corrupt {
            id: record.id.clone(),
            message: "the workflow's code did not inspect the frame".into(),
        }),
    }
}

/// Without the code that wrote a frame only a self-describing frame can be shown, by
/// position.
fn positional_locals(frame: &[u8]) -> (Vec<Local>, Option<String>) {
    let unavailable = |why: String| (Vec::new(), Some(why));
    let Ok(mut reader) = FrameReader::new(frame) else {
        return unavailable("the frame cannot be read".into());
    };
    if reader.codec() != Codec::Json {
        return unavailable(format!(
            "no registered version of the workflow can decode this {} frame",
            reader.codec().name()
        ));
    }
    let mut locals = Vec::new();
    for i in 0..reader.len() {
        match reader.read::<serde_json::Value>() {
            Ok(value) => locals.push(Local {
                name: format!("#{i}"),
                value,
                unreadable: None,
            }),
            Err(e) => return unavailable(format!("the frame cannot be decoded: {e}")),
        }
    }
    (
        locals,
        Some("no registered version of the workflow: locals are shown by position".into()),
    )
}
