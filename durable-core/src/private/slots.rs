//! Slots and frames: every local that crosses a block boundary of a state machine lives
//! in a [`Slot`], and is written to a frame by a [`FrameEncoder`] and read back by a
//! [`FrameDecoder`], each through the [`SlotCodec`] the macro's per-local check hands out.
//!
//! The encoder and decoder keep the first error and ignore what follows it, so the
//! generated code is one call per local, with no error handling of its own; the
//! protocol's [`enter`](super::enter) and [`resume`](super::resume) report the error.

use serde::de::DeserializeOwned;
use serde::Serialize;

use std::any::TypeId;

use super::{Interrupt, OutcomeType, SavedLocal, SavedPoint, SavedType};
use crate::codec::{FrameReader, FrameWriter};
use crate::error::CodecError;
use crate::shape::Shape;

/// A local that crosses a block boundary of the state machine.
///
/// `T` is inferred from the first `put`, which the macro emits textually before every
/// `take`.
#[derive(Debug)]
pub struct Slot<T>(Option<T>);

impl<T> Slot<T> {
    /// An empty slot.
    #[allow(clippy::new_without_default)] // generated code only; `Default` would add nothing
    pub const fn new() -> Self {
        Slot(None)
    }

    /// Stores `value`, dropping any previous one.
    pub fn put(&mut self, value: T) {
        self.0 = Some(value);
    }

    /// Takes the value out.
    ///
    /// # Panics
    ///
    /// If the slot is empty, which means the macro's liveness analysis is wrong: a bug in
    /// `durable`, never a consequence of input or stored data (decoding fills every slot
    /// a point needs or fails with an error).
    pub fn take(&mut self) -> T {
        match self.0.take() {
            Some(value) => value,
            None => panic!("durable: internal error: a state-machine slot was read before it was written; please report this bug"),
        }
    }
}

/// What a value needs to cross a durable point or be stored with an execution:
/// `Serialize + DeserializeOwned + Send + 'static`.
///
/// Generated code never names these bounds on a local directly: each saved local gets a
/// check trait of its own, with a `#[diagnostic::on_unimplemented]` message naming the
/// local and the point it crosses, implemented for every `Saveable` type.
pub trait Saveable: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Saveable for T {}

/// The `Self` type of the macro's per-local check traits, whose parameter is the local's
/// type: with the local's type as `Self`, rustc would replace the check's message by a
/// suggestion to dereference a borrowed local.
#[derive(Debug)]
pub struct DurableFrame;

/// How one slot's value is written to a frame, read back and shown as JSON.
///
/// Only [`SlotCodec::new`] requires `T: Saveable`; the macro calls it once per saved
/// local, through that local's check trait, so a type that cannot be saved is reported
/// once, at the local, and the frame code that uses the codec adds no error of its own.
pub struct SlotCodec<T> {
    encode: fn(&mut FrameWriter, &T) -> Result<(), CodecError>,
    decode: fn(&mut FrameReader<'_>) -> Result<T, CodecError>,
    json: fn(&T) -> Result<serde_json::Value, serde_json::Error>,
    type_id: fn() -> TypeId,
    shape: fn(bool) -> Shape,
}

impl<T> Clone for SlotCodec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SlotCodec<T> {}

impl<T: Saveable> SlotCodec<T> {
    /// The codec of a saveable type.
    #[allow(clippy::new_without_default)] // generated code only; `Default` would add nothing
    pub fn new() -> Self {
        fn encode<T: Serialize + DeserializeOwned>(
            writer: &mut FrameWriter,
            value: &T,
        ) -> Result<(), CodecError> {
            writer.push_checked(value)
        }
        fn decode<T: DeserializeOwned>(reader: &mut FrameReader<'_>) -> Result<T, CodecError> {
            reader.read()
        }
        fn json<T: Serialize>(value: &T) -> Result<serde_json::Value, serde_json::Error> {
            serde_json::to_value(value)
        }
        SlotCodec {
            encode: encode::<T>,
            decode: decode::<T>,
            json: json::<T>,
            type_id: TypeId::of::<T>,
            shape: Shape::of::<T>,
        }
    }
}

/// Writes the locals live at a durable point into its frame, in the macro's order.
pub struct FrameEncoder<'w> {
    writer: &'w mut FrameWriter,
    error: Option<CodecError>,
}

impl<'w> FrameEncoder<'w> {
    pub(super) fn new(writer: &'w mut FrameWriter) -> Self {
        FrameEncoder {
            writer,
            error: None,
        }
    }

    /// Appends local `name`'s value (after an error, does nothing).
    pub fn local<T>(&mut self, codec: SlotCodec<T>, slot: &Slot<T>, name: &str) {
        if self.error.is_some() {
            return;
        }
        let result = match &slot.0 {
            Some(value) => (codec.encode)(self.writer, value).map_err(|e| CodecError::Encode {
                message: format!("local `{name}`: {e}"),
            }),
            None => Err(CodecError::Encode {
                message: format!("local `{name}` has no value at this point"),
            }),
        };
        self.error = result.err();
    }

    pub(super) fn finish(self) -> Result<(), CodecError> {
        self.error.map_or(Ok(()), Err)
    }
}

/// Reads a frame's locals back into their slots, and, when the engine inspects an
/// execution, keeps each one as JSON (or why it cannot be read); or, with no frame,
/// reports which locals a point saves and their types ([`Entry::Layout`](super::Entry)).
pub struct FrameDecoder<'f> {
    source: Source<'f>,
    inspect: Option<Vec<(&'static str, Result<serde_json::Value, String>)>>,
    error: Option<Interrupt>,
}

enum Source<'f> {
    Frame(FrameReader<'f>),
    /// The point whose locals are listed, and what is reported of it.
    Layout(u32, SavedPoint),
}

impl<'f> FrameDecoder<'f> {
    pub(super) fn new(reader: FrameReader<'f>, inspect: bool) -> Self {
        FrameDecoder {
            source: Source::Frame(reader),
            inspect: inspect.then(Vec::new),
            error: None,
        }
    }

    pub(super) fn layout(point: u32) -> Self {
        FrameDecoder {
            source: Source::Layout(
                point,
                SavedPoint {
                    locals: Vec::new(),
                    outcome: None,
                },
            ),
            inspect: None,
            error: None,
        }
    }

    /// The frame's durable point.
    pub fn point(&self) -> u32 {
        match &self.source {
            Source::Frame(reader) => reader.point(),
            Source::Layout(point, _) => *point,
        }
    }

    /// Fills local `name`'s slot from the frame's next value (after an error, does
    /// nothing). When inspecting, a local that does not decode is reported as such and
    /// the next ones are still read: each is a length-prefixed value of its own.
    pub fn local<T>(&mut self, codec: SlotCodec<T>, slot: &mut Slot<T>, name: &'static str) {
        if self.error.is_some() {
            return;
        }
        let reader = match &mut self.source {
            Source::Frame(reader) => reader,
            Source::Layout(_, saved) => {
                saved.locals.push(SavedLocal {
                    name,
                    type_id: (codec.type_id)(),
                    shape: codec.shape,
                });
                return;
            }
        };
        let value = match (codec.decode)(reader) {
            Ok(value) => value,
            Err(e) => {
                let what = format!("cannot decode local `{name}` from the frame");
                match &mut self.inspect {
                    Some(locals) => locals.push((name, Err(format!("{what}: {e}")))),
                    None => self.error = Some(Interrupt::unreadable(&what, e)),
                }
                return;
            }
        };
        if let Some(locals) = &mut self.inspect {
            let json = (codec.json)(&value)
                .map_err(|e| format!("local `{name}` cannot be shown as JSON: {e}"));
            locals.push((name, json));
        }
        slot.put(value);
    }

    /// Reports the point's outcome type when the layout is asked for (decoding a frame,
    /// does nothing: the outcome is not in the frame).
    pub fn outcome<T: DeserializeOwned + 'static>(&mut self, _: OutcomeType<T>) {
        if let Source::Layout(_, saved) = &mut self.source {
            saved.outcome = Some(SavedType {
                type_id: TypeId::of::<T>(),
                shape: Shape::of::<T>,
            });
        }
    }

    /// For a frame whose point this workflow does not have: records the error (the
    /// block returned is never entered).
    pub fn unknown_point(&mut self) -> u32 {
        let point = self.point();
        let error = match self.source {
            Source::Frame(_) => Interrupt::Unreadable(format!(
                "the frame names durable point {point}, which this workflow does not have"
            )),
            Source::Layout(..) => Interrupt::Layout(None),
        };
        self.error.get_or_insert(error);
        u32::MAX
    }

    /// Where decoding ends: the block to resume at; or why not (an error, the locals
    /// when inspecting, the saved locals when asked for the layout).
    pub(super) fn finish(self, block: u32) -> Result<u32, Interrupt> {
        if let Some(error) = self.error {
            return Err(error);
        }
        match self.source {
            Source::Layout(_, saved) => Err(Interrupt::Layout(Some(saved))),
            Source::Frame(reader) => {
                if let Some(locals) = self.inspect {
                    return Err(Interrupt::Inspected(locals));
                }
                reader.finish().map_err(|e| {
                    Interrupt::unreadable("the frame does not match this workflow", e)
                })?;
                Ok(block)
            }
        }
    }
}
