//! Whether a workflow's output is a `Result::Err`, told from its `Serialize` alone: the
//! `Workflow` trait asks only `Serialize` of the output, and that is all the engine needs
//! to mark an execution that returned `Err` as failed.
//!
//! serde serializes `Result` as the newtype variant `Err` (index 1) of an enum named
//! `Result`, and that first call is all the probe looks at: any other first call ends the
//! probe at once, so no other output is walked. A user enum that is also named `Result`
//! with an `Err` variant at index 1 reads as one too, which is what it means.

use std::fmt;

use serde::ser::{self, Impossible, Serialize};

/// The error of an output that is a `Result::Err`, as text: the error itself when it
/// serializes as a string, its JSON otherwise. `None` for any other output.
pub(crate) fn returned_err<T: Serialize + ?Sized>(output: &T) -> Option<String> {
    output.serialize(Probe).ok().flatten()
}

/// The error as text: a string as is, a [`Failure`](crate::Failure) as it displays,
/// anything else as JSON.
fn error_text<T: Serialize + ?Sized>(error: &T) -> String {
    match serde_json::to_value(error) {
        Ok(serde_json::Value::String(text)) => text,
        // Only the shape is known here: a value with exactly a failure's fields reads as
        // one, which at worst shows another such value as a failure would show.
        Ok(value) => match serde_json::from_value::<crate::Failure>(value.clone()) {
            Ok(failure) => failure.to_string(),
            Err(_) => value.to_string(),
        },
        Err(e) => format!("<error not representable as JSON: {e}>"),
    }
}

/// Looks at the first serializer call only.
struct Probe;

/// Ends the probe: the value is not a `Result`.
#[derive(Debug, thiserror::Error)]
#[error("not a `Result::Err`")]
struct NotErr;

impl ser::Error for NotErr {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotErr
    }
}

type Probed = Result<Option<String>, NotErr>;

impl ser::Serializer for Probe {
    type Ok = Option<String>;
    type Error = NotErr;
    type SerializeSeq = Impossible<Option<String>, NotErr>;
    type SerializeTuple = Impossible<Option<String>, NotErr>;
    type SerializeTupleStruct = Impossible<Option<String>, NotErr>;
    type SerializeTupleVariant = Impossible<Option<String>, NotErr>;
    type SerializeMap = Impossible<Option<String>, NotErr>;
    type SerializeStruct = Impossible<Option<String>, NotErr>;
    type SerializeStructVariant = Impossible<Option<String>, NotErr>;

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Probed {
        Ok((name == "Result" && index == 1 && variant == "Err").then(|| error_text(value)))
    }

    fn serialize_bool(self, _: bool) -> Probed {
        Ok(None)
    }
    fn serialize_i8(self, _: i8) -> Probed {
        Ok(None)
    }
    fn serialize_i16(self, _: i16) -> Probed {
        Ok(None)
    }
    fn serialize_i32(self, _: i32) -> Probed {
        Ok(None)
    }
    fn serialize_i64(self, _: i64) -> Probed {
        Ok(None)
    }
    fn serialize_i128(self, _: i128) -> Probed {
        Ok(None)
    }
    fn serialize_u8(self, _: u8) -> Probed {
        Ok(None)
    }
    fn serialize_u16(self, _: u16) -> Probed {
        Ok(None)
    }
    fn serialize_u32(self, _: u32) -> Probed {
        Ok(None)
    }
    fn serialize_u64(self, _: u64) -> Probed {
        Ok(None)
    }
    fn serialize_u128(self, _: u128) -> Probed {
        Ok(None)
    }
    fn serialize_f32(self, _: f32) -> Probed {
        Ok(None)
    }
    fn serialize_f64(self, _: f64) -> Probed {
        Ok(None)
    }
    fn serialize_char(self, _: char) -> Probed {
        Ok(None)
    }
    fn serialize_str(self, _: &str) -> Probed {
        Ok(None)
    }
    fn serialize_bytes(self, _: &[u8]) -> Probed {
        Ok(None)
    }
    fn serialize_none(self) -> Probed {
        Ok(None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Probed {
        Ok(None)
    }
    fn serialize_unit(self) -> Probed {
        Ok(None)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Probed {
        Ok(None)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Probed {
        Ok(None)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Probed {
        Ok(None)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotErr> {
        Err(NotErr)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotErr> {
        Err(NotErr)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotErr> {
        Err(NotErr)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotErr> {
        Err(NotErr)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotErr> {
        Err(NotErr)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotErr> {
        Err(NotErr)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotErr> {
        Err(NotErr)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn only_a_result_err_is_reported() {
        assert_eq!(
            returned_err(&Err::<u8, _>("card declined".to_string())),
            Some("card declined".into())
        );
        assert_eq!(
            returned_err(&Err::<u8, _>(BTreeMap::from([("code", 7)]))),
            Some(r#"{"code":7}"#.into())
        );
        let failure = crate::Failure::new("card declined").context("payment failed");
        assert_eq!(
            returned_err(&Err::<u8, _>(failure)),
            Some("payment failed: card declined".into())
        );
        assert_eq!(returned_err(&Ok::<u8, String>(1)), None);
        assert_eq!(returned_err(&Some(Err::<u8, u8>(1))), None);
        assert_eq!(returned_err(&vec![Err::<u8, u8>(1)]), None);
        assert_eq!(returned_err(&(Err::<u8, u8>(1), 2)), None);
        assert_eq!(returned_err("Err"), None);
        assert_eq!(returned_err(&()), None);
    }
}
