//! Layouts: what a workflow version's frames mean, and which versions may resume an
//! execution.
//!
//! A layout is the lowering format of the macro, the shapes of the input and output, and
//! for every durable point its id, its operation and its saved locals (names and shapes,
//! in frame order). The macro knows the points and the locals' names but not their
//! types; the types are completed at registration by entering the state machine with
//! [`Entry::Layout`] for each point and tracing the saved locals' serde impls (see
//! [`Shape`]).
//!
//! Invariants:
//! - The layout fingerprint ([`Layout::fingerprint`]) is a stable hash (FNV-1a over a
//!   tagged encoding), the same in every build and on every platform; it is written into
//!   every frame (see `codec`), so it costs 8 bytes per stored execution.
//! - An execution whose frame names layout `L` resumes only on a registered version whose
//!   layout is `L` (the version with the execution's own code fingerprint first, if it is
//!   one of them). A frame written before layouts, or an execution before its first
//!   point, resumes only on its own code fingerprint.
//! - Each layout's description is stored once per store (not per execution), so a parked
//!   execution's message names the point, the local and what differs even after the code
//!   that wrote it is gone.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::{Codec, FrameReader};
use crate::error::StoreError;
use crate::execution::{Ctx, Entry, Interrupt, Limits, Runtime, Workflow};
use crate::record::ExecutionRecord;
use crate::shape::{Shape, StableHasher};
use crate::store::{MemoryStore, Store};
use crate::time::{Clock, SleepFuture, SystemClock, Timestamp};

/// The layout of one workflow version: what its frames mean.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Layout {
    /// The workflow's registered name.
    pub workflow: String,
    /// The version of the macro's lowering that generated the state machine.
    pub lowering_format: u32,
    /// The shape of the input.
    pub input: Shape,
    /// The shape of the output.
    pub output: Shape,
    /// The durable points, by id.
    pub points: Vec<PointLayout>,
}

/// One durable point of a [`Layout`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PointLayout {
    /// The point id.
    pub id: u32,
    /// The operation awaited there (`step`, `sleep`, ...).
    pub operation: String,
    /// The awaited expression's text (for messages; not part of the fingerprint).
    pub label: String,
    /// Its source line (for messages; not part of the fingerprint).
    pub line: u32,
    /// The locals saved in its frame, in frame order: name and shape.
    pub locals: Vec<(String, Shape)>,
    /// The shape of its operation's outcome (what the `.await` returns, recorded when the
    /// operation completes). `None` in a description stored before outcomes were part of
    /// layouts (layout format 1), whose fingerprint never matches a current one.
    #[serde(default)]
    pub outcome: Option<Shape>,
}

impl Layout {
    /// The layout of workflow `W`, traced now.
    pub fn of<W: Workflow>() -> Layout {
        let human_readable = W::CODEC == Codec::Json;
        let mut shapes: HashMap<TypeId, Shape> = HashMap::new();
        let mut traced = |type_id: TypeId, shape: fn(bool) -> Shape| {
            shapes
                .entry(type_id)
                .or_insert_with(|| shape(human_readable))
                .clone()
        };
        let points = W::POINTS
            .iter()
            .map(|info| {
                let (locals, outcome) = match saved_point::<W>(info.id) {
                    Ok(saved) => (
                        saved
                            .locals
                            .into_iter()
                            .map(|local| {
                                (local.name.to_owned(), traced(local.type_id, local.shape))
                            })
                            .collect(),
                        saved.outcome.map(|ty| traced(ty.type_id, ty.shape)),
                    ),
                    // Never for generated code; kept in the layout (so it differs from
                    // any real one) rather than hidden.
                    Err(why) => (
                        vec![(
                            format!("<{why}>"),
                            Shape::Opaque {
                                type_name: String::new(),
                                reason: why,
                            },
                        )],
                        None,
                    ),
                };
                PointLayout {
                    id: info.id,
                    operation: operation(info.label),
                    label: info.label.to_owned(),
                    line: info.line,
                    locals,
                    outcome,
                }
            })
            .collect();
        Layout {
            workflow: W::NAME.to_owned(),
            lowering_format: W::LOWERING_FORMAT,
            input: Shape::of::<W::Input>(human_readable),
            output: Shape::of::<W::Output>(human_readable),
            points,
        }
    }

    /// The layout fingerprint: a stable hash of everything but labels and lines.
    pub fn fingerprint(&self) -> u64 {
        let mut h = StableHasher::default();
        // Format 2 added the points' outcomes.
        h.str("durable layout 2");
        h.str(&self.workflow);
        h.u64(u64::from(self.lowering_format));
        self.input.hash_into(&mut h);
        self.output.hash_into(&mut h);
        h.u64(self.points.len() as u64);
        for point in &self.points {
            h.u64(u64::from(point.id));
            h.str(&point.operation);
            h.u64(point.locals.len() as u64);
            for (name, shape) in &point.locals {
                h.str(name);
                shape.hash_into(&mut h);
            }
            match &point.outcome {
                Some(shape) => {
                    h.u64(1);
                    shape.hash_into(&mut h);
                }
                None => h.u64(0),
            }
        }
        h.finish()
    }

    /// What differs from `self` (stored) to `new` (registered), as sentences, those of
    /// point `first` (where an execution stands) first.
    pub fn differences(&self, new: &Layout, first: Option<u32>) -> Vec<String> {
        const LIMIT: usize = 8;
        let mut out = Vec::new();
        if self.lowering_format != new.lowering_format {
            out.push(format!(
                "the macro's lowering format: was {}, now {}",
                self.lowering_format, new.lowering_format
            ));
        }
        let mut order: Vec<&PointLayout> = self.points.iter().collect();
        order.sort_by_key(|p| (Some(p.id) != first, p.id));
        for old in order {
            let Some(now) = new.points.iter().find(|p| p.id == old.id) else {
                out.push(format!("{}: no longer exists", point_name(old)));
                continue;
            };
            if old.operation != now.operation {
                out.push(format!(
                    "{}: was a `{}`, now a `{}` ({})",
                    point_name(old),
                    old.operation,
                    now.operation,
                    now.label
                ));
                continue;
            }
            for (i, (name, shape)) in old.locals.iter().enumerate() {
                let here = format!("{}: local `{name}`", point_name(old));
                match now.locals.iter().position(|(n, _)| n == name) {
                    None => out.push(format!(
                        "{here}: no longer saved there (removed or renamed)"
                    )),
                    Some(j) if j != i => {
                        out.push(format!("{here}: was saved at position {i}, now at {j}"))
                    }
                    Some(j) => {
                        for d in shape.differences(&now.locals[j].1, LIMIT) {
                            out.push(format!("{here}: {}", whole(&d)));
                        }
                    }
                }
            }
            match (&old.outcome, &now.outcome) {
                (Some(was), Some(is)) => {
                    for d in was.differences(is, LIMIT) {
                        out.push(format!("{}: outcome: {}", point_name(old), whole(&d)));
                    }
                }
                (None, Some(_)) => out.push(format!(
                    "{}: outcome: not in the old layout's description (written by a release \
                     before outcome types were part of layouts)",
                    point_name(old)
                )),
                (_, None) => {}
            }
            for (name, _) in &now.locals {
                if !old.locals.iter().any(|(n, _)| n == name) {
                    out.push(format!(
                        "{}: local `{name}` is new (saved there now)",
                        point_name(old)
                    ));
                }
            }
        }
        for now in &new.points {
            if !self.points.iter().any(|p| p.id == now.id) {
                out.push(format!("{}: is new", point_name(now)));
            }
        }
        for d in self.input.differences(&new.input, LIMIT) {
            out.push(format!("the input: {d}"));
        }
        for d in self.output.differences(&new.output, LIMIT) {
            out.push(format!("the output: {d}"));
        }
        out.truncate(LIMIT);
        out
    }

    /// The description as stored.
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a layout is plain data and always encodes")
    }

    /// Reads a stored description.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Layout, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// A shape difference after the thing it is of: "was u32, now u64" rather than "the
/// value: was u32, now u64" when the whole value differs.
fn whole(difference: &str) -> &str {
    difference.strip_prefix("the value: ").unwrap_or(difference)
}

fn point_name(point: &PointLayout) -> String {
    format!(
        "point {} (`{}`, line {})",
        point.id, point.label, point.line
    )
}

/// The operation of a point from its label: `ctx.step("charge", ..).retry(..)` → `step`.
fn operation(label: &str) -> String {
    let after_root = label.split_once('.').map_or(label, |(_, rest)| rest);
    after_root
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The locals `W` saves at `point` and its outcome type, from its state machine entered
/// with [`Entry::Layout`] (which runs and decodes nothing and completes on its first poll).
fn saved_point<W: Workflow>(point: u32) -> Result<crate::execution::SavedPoint, String> {
    let ctx = Ctx::new(
        detached(),
        ExecutionRecord::new("layout", W::NAME, W::FINGERPRINT, Timestamp::EPOCH),
        W::CODEC,
        0,
        Timestamp::EPOCH,
    );
    let mut machine = W::__machine(ctx, Entry::Layout { point });
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match machine.as_mut().poll(&mut cx) {
        Poll::Ready(Err(Interrupt::Layout(Some(saved)))) => Ok(saved),
        Poll::Ready(Err(Interrupt::Layout(None))) => {
            Err(format!("the state machine has no point {point}"))
        }
        _ => Err(format!(
            "the state machine did not report the locals of point {point}"
        )),
    }
}

/// The runtime of the contexts that layout queries enter machines with: they never
/// reach a durable point, so nothing here is ever used; it is a real (empty, in-memory)
/// one all the same rather than a stand-in that panics.
fn detached() -> Arc<dyn Runtime> {
    static DETACHED: OnceLock<Arc<Detached>> = OnceLock::new();
    DETACHED
        .get_or_init(|| {
            Arc::new(Detached {
                store: Arc::new(MemoryStore::new()),
                clock: Arc::new(SystemClock),
                limits: Limits {
                    max_value_bytes: 0,
                    history_limit: 0,
                    lease_ttl: Duration::ZERO,
                },
            })
        })
        .clone()
}

struct Detached {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

impl Runtime for Detached {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn owner(&self) -> u128 {
        0
    }

    fn committed(&self, _: &str, _: Option<Timestamp>, _: &[String]) {}

    // Never called: a detached machine is always shutting down, so a failed commit is
    // returned, not retried.
    fn write_failed(&self, _: &ExecutionRecord, _: &StoreError) -> SleepFuture {
        Box::pin(std::future::ready(()))
    }

    fn write_succeeded(&self, _: &str) {}

    fn should_yield(&self) -> bool {
        true
    }

    fn is_shutting_down(&self) -> bool {
        true
    }

    // A detached machine starts no children.
    fn runs(&self, _: &str, _: u64) -> bool {
        false
    }

    fn created(&self, _: &str) {}

    fn finished(&self, _: &str) {}
}

/// The layout fingerprint an execution's state depends on: its frame's, or `None`
/// before its first point or for a frame written before layouts.
pub(crate) fn stored_layout(record: &ExecutionRecord) -> Option<u64> {
    let position = record.position.as_ref()?;
    FrameReader::new(&position.frame).ok()?.layout()
}

/// Why no registered version may resume an execution, in words: what differs between the
/// layout that wrote it and the newest registered version's, read from the store's
/// description of the old layout.
pub(crate) async fn mismatch(
    store: &dyn Store,
    registry: &super::registry::Registry,
    record: &ExecutionRecord,
) -> Result<String, StoreError> {
    let workflow = &record.workflow;
    let Some(newest) = registry.newest(workflow) else {
        return Ok(format!(
            "workflow {workflow:?} is not registered with this engine (execution code fingerprint {:016x})",
            record.fingerprint
        ));
    };
    let Some(layout) = stored_layout(record) else {
        let versions: Vec<String> = registry
            .fingerprints(workflow)
            .iter()
            .map(|f| format!("{f:016x}"))
            .collect();
        let what = if record.position.is_some() {
            "its frame was written before layouts, so it resumes only on the same code"
        } else {
            "it has not reached its first durable point, so it resumes only on the same code"
        };
        return Ok(format!(
            "no registered version of workflow {workflow:?} matches the code that wrote this execution ({what}): stored code fingerprint {:016x}, registered {}",
            record.fingerprint,
            versions.join(", ")
        ));
    };
    let mut message = format!(
        "no registered version of workflow {workflow:?} has the layout of this execution (layout {layout:016x}, code {:016x}); the newest registered version (code {:016x}, layout {:016x}) differs",
        record.fingerprint, newest.fingerprint, newest.layout_fingerprint
    );
    let point = record.position.as_ref().map(|p| p.point);
    match store.layout(layout).await? {
        None => message.push_str(": the store has no description of the old layout"),
        Some(bytes) => match Layout::decode(&bytes) {
            Err(e) => {
                let _ = write!(
                    message,
                    ": the old layout's description cannot be read ({e})"
                );
            }
            Ok(old) => {
                let differences = old.differences(&newest.layout, point);
                if differences.is_empty() {
                    message.push_str(" (in nothing this build can name)");
                } else {
                    message.push_str(": ");
                    message.push_str(&differences.join("; "));
                }
            }
        },
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(outcome: Option<Shape>) -> Layout {
        Layout {
            workflow: "w".to_owned(),
            lowering_format: 1,
            input: Shape::U32,
            output: Shape::U64,
            points: vec![PointLayout {
                id: 0,
                operation: "step".to_owned(),
                label: "ctx.step(\"s\", ..)".to_owned(),
                line: 3,
                locals: vec![("n".to_owned(), Shape::U32)],
                outcome,
            }],
        }
    }

    #[test]
    fn a_description_stored_before_outcomes_decodes_and_names_the_missing_outcome() {
        let mut old = serde_json::to_value(layout(None)).unwrap();
        old["points"][0].as_object_mut().unwrap().remove("outcome");
        let old = Layout::decode(&serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(old, layout(None));
        let now = layout(Some(Shape::U32));
        assert_ne!(old.fingerprint(), now.fingerprint());
        assert_eq!(
            old.differences(&now, Some(0)),
            [
                "point 0 (`ctx.step(\"s\", ..)`, line 3): outcome: not in the old layout's \
              description (written by a release before outcome types were part of layouts)"
            ]
        );
    }

    #[test]
    fn an_outcome_type_is_part_of_the_fingerprint_and_named_when_it_differs() {
        let (old, now) = (layout(Some(Shape::U32)), layout(Some(Shape::U64)));
        assert_ne!(old.fingerprint(), now.fingerprint());
        assert_eq!(old.fingerprint(), layout(Some(Shape::U32)).fingerprint());
        assert_eq!(
            old.differences(&now, None),
            ["point 0 (`ctx.step(\"s\", ..)`, line 3): outcome: was u32, now u64"]
        );
    }
}
