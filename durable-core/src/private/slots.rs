//! Slots and their frame codecs: every local that crosses a block boundary of a state
//! machine lives in a [`Slot`], and is written to and read from a frame by the
//! [`SlotCodec`] the macro's per-local check hands out.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Interrupt;
use crate::codec::{FrameReader, FrameWriter};
use crate::error::CodecError;

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
        }
    }
}

impl<T> SlotCodec<T> {
    /// Appends the slot's value to a frame.
    pub fn encode(
        self,
        writer: &mut FrameWriter,
        slot: &Slot<T>,
        local: &str,
    ) -> Result<(), CodecError> {
        match &slot.0 {
            Some(value) => (self.encode)(writer, value).map_err(|e| CodecError::Encode {
                message: format!("local `{local}`: {e}"),
            }),
            None => Err(CodecError::Encode {
                message: format!("local `{local}` has no value at this point"),
            }),
        }
    }

    /// Fills the slot from the next value of a frame.
    pub fn decode(
        self,
        reader: &mut FrameReader<'_>,
        slot: &mut Slot<T>,
        local: &str,
    ) -> Result<(), Interrupt> {
        let value = (self.decode)(reader).map_err(|e| {
            Interrupt::codec(&format!("cannot decode local `{local}` from the frame"), e)
        })?;
        slot.put(value);
        Ok(())
    }

    /// The slot's value as JSON, for inspection.
    pub fn json(self, slot: &Slot<T>, local: &str) -> Result<serde_json::Value, Interrupt> {
        match &slot.0 {
            Some(value) => (self.json)(value).map_err(|e| {
                Interrupt::Failed(format!("local `{local}` cannot be shown as JSON: {e}"))
            }),
            None => Ok(serde_json::Value::Null),
        }
    }
}

/// Opens a frame for decoding.
pub fn frame_reader(frame: &[u8]) -> Result<FrameReader<'_>, Interrupt> {
    FrameReader::new(frame).map_err(|e| Interrupt::codec("cannot read the frame", e))
}

/// Checks that a frame was read to its end.
pub fn frame_done(reader: FrameReader<'_>) -> Result<(), Interrupt> {
    reader
        .finish()
        .map_err(|e| Interrupt::codec("the frame does not match this workflow", e))
}

/// The error for a frame whose point this workflow does not have.
pub fn unknown_point(point: u32) -> Interrupt {
    Interrupt::Failed(format!(
        "the frame names durable point {point}, which this workflow does not have"
    ))
}
