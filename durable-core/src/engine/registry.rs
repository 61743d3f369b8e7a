//! Registered workflow versions, by name, code fingerprint and layout.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::layouts::Layout;
use crate::codec::{decode_value, Codec};
use crate::error::CodecError;
use crate::execution::{Called, Ctx, Entry, Interrupt, PointInfo, Workflow, WorkflowFn};
use crate::returned_err::returned_err;

/// A type-erased state machine: runs to the encoded output.
pub(crate) type RunFn =
    fn(Ctx, Entry) -> Pin<Box<dyn Future<Output = Result<Returned, Interrupt>> + Send>>;

/// What a workflow returned.
pub(crate) struct Returned {
    /// The encoded output (value envelope).
    pub output: Vec<u8>,
    /// The error as text, if the output is a `Result::Err`: the execution failed.
    pub error: Option<String>,
}

/// One registered version of a workflow.
#[derive(Clone, Debug)]
pub(crate) struct Version {
    /// The code fingerprint.
    pub fingerprint: u64,
    /// What its frames mean, and the layout's fingerprint.
    pub layout: Arc<Layout>,
    pub layout_fingerprint: u64,
    pub codec: Codec,
    pub run: RunFn,
    /// Decodes a stored output (value envelope) to JSON.
    pub output_json: fn(&[u8]) -> Result<serde_json::Value, CodecError>,
    pub points: &'static [PointInfo],
}

#[derive(Default, Debug)]
pub(crate) struct Registry {
    versions: HashMap<&'static str, Vec<Version>>,
}

fn run_erased<W: Workflow>(
    ctx: Ctx,
    entry: Entry,
) -> Pin<Box<dyn Future<Output = Result<Returned, Interrupt>> + Send>> {
    Box::pin(async move {
        let output = W::__machine(ctx, entry).await?;
        let error = returned_err(&output);
        let output = W::CODEC
            .encode_value(&output)
            .map_err(|e| Interrupt::codec("cannot encode the workflow's output", e))?;
        Ok(Returned { output, error })
    })
}

fn output_json<W: Workflow>(bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
    let output: W::Output = decode_value(bytes)?;
    serde_json::to_value(&output).map_err(|e| CodecError::Encode {
        message: e.to_string(),
    })
}

impl Registry {
    /// Registers `W`, tracing its layout.
    pub fn register<W: Workflow>(&mut self) {
        let layout = Layout::of::<W>();
        let layout_fingerprint = layout.fingerprint();
        let versions = self.versions.entry(W::NAME).or_default();
        // Two versions with the same tokens differ when a type they save changed outside
        // the function: both are kept, told apart by layout.
        if versions
            .iter()
            .any(|v| v.fingerprint == W::FINGERPRINT && v.layout_fingerprint == layout_fingerprint)
        {
            return;
        }
        versions.push(Version {
            fingerprint: W::FINGERPRINT,
            layout_fingerprint,
            layout: Arc::new(layout),
            codec: W::CODEC,
            run: run_erased::<W>,
            output_json: output_json::<W>,
            points: W::POINTS,
        });
        // After the push, so that a workflow that calls itself ends the recursion.
        for called in W::__calls() {
            called.register(self);
        }
    }

    /// The version with code fingerprint `fingerprint`: the last registered one, if
    /// several share it (the same tokens, with a type they save changed elsewhere).
    pub fn find(&self, workflow: &str, fingerprint: u64) -> Option<&Version> {
        self.versions
            .get(workflow)?
            .iter()
            .rev()
            .find(|v| v.fingerprint == fingerprint)
    }

    /// The version that may resume state written by code `fingerprint` with layout
    /// `layout`: the same code if it has that layout, else the last registered version
    /// with that layout. Without a layout (state written before layouts, or no frame yet)
    /// only the same code.
    pub fn resumer(
        &self,
        workflow: &str,
        fingerprint: u64,
        layout: Option<u64>,
    ) -> Option<&Version> {
        let Some(layout) = layout else {
            return self.find(workflow, fingerprint);
        };
        let versions = self.versions.get(workflow)?;
        versions
            .iter()
            .find(|v| v.fingerprint == fingerprint && v.layout_fingerprint == layout)
            .or_else(|| {
                versions
                    .iter()
                    .rev()
                    .find(|v| v.layout_fingerprint == layout)
            })
    }

    /// The last registered version of `workflow`.
    pub fn newest(&self, workflow: &str) -> Option<&Version> {
        self.versions.get(workflow)?.last()
    }

    /// Every registered version.
    pub fn all(&self) -> impl Iterator<Item = &Version> {
        self.versions.values().flatten()
    }

    /// The fingerprints registered for `workflow`.
    pub fn fingerprints(&self, workflow: &str) -> Vec<u64> {
        self.versions
            .get(workflow)
            .map(|vs| vs.iter().map(|v| v.fingerprint).collect())
            .unwrap_or_default()
    }
}

/// What a workflow's [`Workflow::__calls`] gives for each workflow its body calls or
/// invokes by path: registering the caller registers `workflow` too.
pub const fn called<F: WorkflowFn>(_workflow: F) -> Called {
    Called::new(register_any::<F::Workflow>)
}

fn register_any<W: Workflow>(registry: &mut dyn std::any::Any) {
    if let Some(registry) = registry.downcast_mut::<Registry>() {
        registry.register::<W>();
    }
}
