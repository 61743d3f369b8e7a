//! How values are turned into bytes: the [`Codec`]s and the self-describing envelopes
//! around what they write.
//!
//! Every byte string the engine stores (workflow inputs and outputs, operation outcomes,
//! frames) starts with a three-byte header: a kind tag, the envelope format version and
//! the codec id. A reader therefore never guesses: bytes written by another codec, a
//! newer format, or something that is not ours at all fail with a [`CodecError`] that
//! says which, and old data keeps decoding after a workflow switches codec.
//!
//! Value envelope: `b'v' | FORMAT_VERSION | codec id | payload`.
//!
//! Frame envelope: `b'f' | FRAME_FORMAT_VERSION | codec id | point: u32 LE |
//! layout: u64 LE | count: u16 LE | count × (len: u32 LE | payload)`. Each live local is
//! one length-prefixed payload, in the order the generated state machine declares for
//! that point. `layout` is the layout fingerprint of the code that wrote the frame (see
//! `engine::layouts`): the frame means something only to code with that layout, so it
//! travels with the frame. Frames of format 1 (before layouts) have no `layout` field;
//! they are still read, and [`FrameReader::layout`] is `None` for them.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CodecError;

/// The envelope format version written by this build for values.
pub const FORMAT_VERSION: u8 = 1;
/// The envelope format version written by this build for frames: 2 since frames carry
/// their layout fingerprint.
pub const FRAME_FORMAT_VERSION: u8 = 2;

const VALUE_TAG: u8 = b'v';
const FRAME_TAG: u8 = b'f';
const HEADER_LEN: usize = 3;

/// Largest single value the bincode codec will decode, so that corrupt length fields
/// cannot make a decoder allocate without bound.
const DECODE_LIMIT: usize = 256 * 1024 * 1024;

/// A serialization format for stored values.
///
/// [`Codec::Bincode`] (bincode 2 in serde mode) is compact and fast but not
/// self-describing: it cannot decode `serde_json::Value`, untagged enums or
/// `#[serde(flatten)]`. [`Codec::Json`] handles those at the cost of size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Codec {
    /// bincode 2, serde mode, standard configuration (varint integers).
    #[default]
    Bincode,
    /// JSON through serde_json.
    Json,
}

impl Codec {
    /// The id written into every envelope.
    pub const fn id(self) -> u8 {
        match self {
            Codec::Bincode => 1,
            Codec::Json => 2,
        }
    }

    /// The codec with envelope id `id`.
    pub fn from_id(id: u8) -> Result<Self, CodecError> {
        match id {
            1 => Ok(Codec::Bincode),
            2 => Ok(Codec::Json),
            other => Err(CodecError::UnknownCodec { id: other }),
        }
    }

    /// The codec's name, as used in `#[durable(codec = ...)]` and in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Bincode => "bincode",
            Codec::Json => "json",
        }
    }

    /// Appends the raw payload of `value` to `out` (no envelope).
    pub fn encode_raw<T: Serialize + ?Sized>(
        self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match self {
            Codec::Bincode => bincode::serde::encode_into_writer(
                value,
                Appender(out),
                bincode::config::standard(),
            )
            .map_err(|e| CodecError::Encode {
                message: e.to_string(),
            }),
            Codec::Json => serde_json::to_writer(out, value).map_err(|e| CodecError::Encode {
                message: e.to_string(),
            }),
        }
    }

    /// Decodes one raw payload that must span all of `bytes`.
    pub fn decode_raw<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Codec::Bincode => {
                let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
                let (value, used) =
                    bincode::serde::decode_from_slice(bytes, config).map_err(|e| {
                        CodecError::Decode {
                            message: e.to_string(),
                        }
                    })?;
                if used != bytes.len() {
                    return Err(CodecError::Decode {
                        message: format!("{} trailing bytes after the value", bytes.len() - used),
                    });
                }
                Ok(value)
            }
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| CodecError::Decode {
                message: e.to_string(),
            }),
        }
    }

    /// Encodes `value` in a value envelope.
    pub fn encode_value<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        // Room for a typical record or outcome at once: growing from the three header
        // bytes took several reallocations per value, on every commit.
        let mut out = Vec::with_capacity(ENCODE_CAPACITY);
        out.extend_from_slice(&[VALUE_TAG, FORMAT_VERSION, self.id()]);
        self.encode_raw(value, &mut out)?;
        if out.len() < ENCODE_CAPACITY / 2 {
            // Small values (inputs, item outcomes) may be kept by the thousand: in place,
            // a shrink is cheap.
            out.shrink_to_fit();
        }
        Ok(out)
    }
}

/// The capacity [`Codec::encode_value`] starts from.
const ENCODE_CAPACITY: usize = 128;

/// bincode's writer that appends to a `Vec` directly, without `std::io::Write`'s
/// per-call error plumbing (bincode writes a value a few bytes at a time).
struct Appender<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for Appender<'_> {
    // Inlined into bincode's encoders, a write of a few bytes is a store, not a call.
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes a value envelope with whichever codec wrote it.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (codec, payload) = split_header(bytes, VALUE_TAG)?;
    codec.decode_raw(payload)
}

/// Decodes a value envelope into a JSON value, for inspection.
///
/// Works for JSON envelopes only: bincode is not self-describing, so its payloads need
/// the Rust type to be read.
pub fn value_to_json(bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
    let (codec, payload) = split_header(bytes, VALUE_TAG)?;
    match codec {
        Codec::Json => codec.decode_raw(payload),
        Codec::Bincode => Err(CodecError::NotSelfDescribing {
            codec: codec.name(),
        }),
    }
}

fn split_header(bytes: &[u8], tag: u8) -> Result<(Codec, &[u8]), CodecError> {
    split_header_of(bytes, tag, FORMAT_VERSION).map(|(codec, _, rest)| (codec, rest))
}

/// The codec, format version and body of an envelope of format `1..=supported`.
fn split_header_of(bytes: &[u8], tag: u8, supported: u8) -> Result<(Codec, u8, &[u8]), CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::Truncated {
            needed: HEADER_LEN,
            available: bytes.len(),
        });
    }
    if bytes[0] != tag {
        return Err(CodecError::Foreign {
            expected: tag as char,
            found: bytes[0],
        });
    }
    if bytes[1] == 0 || bytes[1] > supported {
        return Err(CodecError::UnsupportedVersion {
            found: bytes[1],
            supported,
        });
    }
    Ok((Codec::from_id(bytes[2])?, bytes[1], &bytes[HEADER_LEN..]))
}

/// Builds a frame envelope one live local at a time.
#[derive(Debug)]
pub struct FrameWriter {
    codec: Codec,
    buf: Vec<u8>,
    count: u16,
}

impl FrameWriter {
    /// Starts the frame of durable point `point` of code with layout fingerprint `layout`.
    pub fn new(codec: Codec, point: u32, layout: u64) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[FRAME_TAG, FRAME_FORMAT_VERSION, codec.id()]);
        buf.extend_from_slice(&point.to_le_bytes());
        buf.extend_from_slice(&layout.to_le_bytes());
        buf.extend_from_slice(&0u16.to_le_bytes());
        FrameWriter {
            codec,
            buf,
            count: 0,
        }
    }

    /// The codec this frame is written with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Appends one value.
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CodecError> {
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.codec.encode_raw(value, &mut self.buf)?;
        let len = u32::try_from(self.buf.len() - len_at - 4).map_err(|_| CodecError::TooLarge {
            limit: u32::MAX as usize,
        })?;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        self.count = self.count.checked_add(1).ok_or(CodecError::TooLarge {
            limit: u16::MAX as usize,
        })?;
        Ok(())
    }

    /// Appends one value and, in debug builds, decodes it back at once, so that a type
    /// that encodes but cannot decode with this codec (`serde_json::Value` or
    /// `#[serde(flatten)]` under bincode) fails where it was written, not at resume.
    pub fn push_checked<T: Serialize + DeserializeOwned>(
        &mut self,
        value: &T,
    ) -> Result<(), CodecError> {
        let start = self.buf.len();
        self.push(value)?;
        if cfg!(debug_assertions) {
            self.codec
                .decode_raw::<T>(&self.buf[start + 4..])
                .map_err(|e| CodecError::Decode {
                    message: format!(
                        "the value encodes but does not decode with the {} codec ({}); \
                         choose a self-describing codec with `#[durable(codec = json)]`",
                        self.codec.name(),
                        e
                    ),
                })?;
        }
        Ok(())
    }

    /// The finished frame bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let count_at = HEADER_LEN + 4 + 8;
        self.buf[count_at..count_at + 2].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// Reads a frame envelope back one value at a time.
#[derive(Debug)]
pub struct FrameReader<'a> {
    codec: Codec,
    point: u32,
    layout: Option<u64>,
    remaining: u16,
    index: u16,
    rest: &'a [u8],
}

impl<'a> FrameReader<'a> {
    /// Parses the frame header.
    pub fn new(bytes: &'a [u8]) -> Result<Self, CodecError> {
        let (codec, version, body) = split_header_of(bytes, FRAME_TAG, FRAME_FORMAT_VERSION)?;
        let fixed = if version == 1 { 6 } else { 14 };
        if body.len() < fixed {
            return Err(CodecError::Truncated {
                needed: HEADER_LEN + fixed,
                available: bytes.len(),
            });
        }
        let point = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        let (layout, body) = if version == 1 {
            (None, &body[4..])
        } else {
            let mut layout = [0; 8];
            layout.copy_from_slice(&body[4..12]);
            (Some(u64::from_le_bytes(layout)), &body[12..])
        };
        let count = u16::from_le_bytes([body[0], body[1]]);
        Ok(FrameReader {
            codec,
            point,
            layout,
            remaining: count,
            index: 0,
            rest: &body[2..],
        })
    }

    /// The layout fingerprint of the code that wrote the frame; `None` for a frame of
    /// format 1, written before layouts.
    pub fn layout(&self) -> Option<u64> {
        self.layout
    }

    /// The durable point this frame was written at.
    pub fn point(&self) -> u32 {
        self.point
    }

    /// The codec the frame was written with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// How many values the frame holds in all.
    pub fn len(&self) -> usize {
        usize::from(self.index + self.remaining)
    }

    /// Whether the frame holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next value's raw payload.
    pub fn next_raw(&mut self) -> Result<&'a [u8], CodecError> {
        if self.remaining == 0 {
            return Err(CodecError::Decode {
                message: format!("the frame holds only {} values", self.index),
            });
        }
        if self.rest.len() < 4 {
            return Err(CodecError::Truncated {
                needed: 4,
                available: self.rest.len(),
            });
        }
        let len = u32::from_le_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]]);
        let len = usize::try_from(len).map_err(|_| CodecError::TooLarge { limit: usize::MAX })?;
        let body = &self.rest[4..];
        if body.len() < len {
            return Err(CodecError::Truncated {
                needed: len,
                available: body.len(),
            });
        }
        let (value, rest) = body.split_at(len);
        self.rest = rest;
        self.remaining -= 1;
        self.index += 1;
        Ok(value)
    }

    /// Decodes the next value.
    pub fn read<T: DeserializeOwned>(&mut self) -> Result<T, CodecError> {
        let raw = self.next_raw()?;
        self.codec.decode_raw(raw)
    }

    /// Checks that every value was read and nothing follows.
    pub fn finish(self) -> Result<(), CodecError> {
        if self.remaining != 0 || !self.rest.is_empty() {
            return Err(CodecError::Decode {
                message: format!(
                    "{} values and {} bytes left unread in the frame",
                    self.remaining,
                    self.rest.len()
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_both_codecs() {
        for codec in [Codec::Bincode, Codec::Json] {
            let mut w = FrameWriter::new(codec, 7, 0xfeed);
            w.push(&42u64).unwrap();
            w.push(&"hello".to_string()).unwrap();
            w.push(&vec![1u8, 2, 3]).unwrap();
            let bytes = w.finish();
            let mut r = FrameReader::new(&bytes).unwrap();
            assert_eq!(r.point(), 7);
            assert_eq!(r.len(), 3);
            assert_eq!(r.read::<u64>().unwrap(), 42);
            assert_eq!(r.read::<String>().unwrap(), "hello");
            assert_eq!(r.read::<Vec<u8>>().unwrap(), vec![1, 2, 3]);
            r.finish().unwrap();
        }
    }

    #[test]
    fn every_truncation_of_a_frame_is_an_error() {
        let mut w = FrameWriter::new(Codec::Bincode, 1, 2);
        w.push(&"some text".to_string()).unwrap();
        w.push(&123_456u32).unwrap();
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            let result = FrameReader::new(&bytes[..cut]).and_then(|mut r| {
                r.read::<String>()?;
                r.read::<u32>()?;
                r.finish()
            });
            assert!(result.is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn foreign_and_future_envelopes_are_typed_errors() {
        let v = Codec::Json.encode_value(&5u8).unwrap();
        assert_eq!(decode_value::<u8>(&v).unwrap(), 5);
        assert!(matches!(
            decode_value::<u8>(b"xyz123"),
            Err(CodecError::Foreign { .. })
        ));
        let mut future = v.clone();
        future[1] = FORMAT_VERSION + 1;
        assert!(matches!(
            decode_value::<u8>(&future),
            Err(CodecError::UnsupportedVersion { .. })
        ));
        let mut unknown = v;
        unknown[2] = 99;
        assert!(matches!(
            decode_value::<u8>(&unknown),
            Err(CodecError::UnknownCodec { id: 99 })
        ));
    }

    #[test]
    fn frames_of_format_1_have_no_layout() {
        // `b'f' 1 codec | point | count | (len | payload)`, as written before layouts.
        let mut old = vec![FRAME_TAG, 1, Codec::Bincode.id()];
        old.extend_from_slice(&3u32.to_le_bytes());
        old.extend_from_slice(&1u16.to_le_bytes());
        old.extend_from_slice(&1u32.to_le_bytes());
        old.push(9);
        let mut reader = FrameReader::new(&old).unwrap();
        assert_eq!((reader.point(), reader.layout()), (3, None));
        assert_eq!(reader.read::<u8>().unwrap(), 9);
        reader.finish().unwrap();
        let mut new = FrameWriter::new(Codec::Bincode, 3, 77);
        new.push(&9u8).unwrap();
        let new = new.finish();
        assert_eq!(FrameReader::new(&new).unwrap().layout(), Some(77));
        let mut future = new;
        future[1] = FRAME_FORMAT_VERSION + 1;
        assert!(matches!(
            FrameReader::new(&future),
            Err(CodecError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn bincode_rejects_trailing_bytes() {
        let mut v = Codec::Bincode.encode_value(&1u8).unwrap();
        v.push(0);
        assert!(decode_value::<u8>(&v).is_err());
    }
}
