//! A canonical form of a serializable value, to tell whether two values of one type are
//! equal by content when their encodings may differ: an idempotent start compares the
//! stored input with the new one through it.
//!
//! A `HashMap` or `HashSet` iterates in an order that depends on a per-instance random
//! seed, so two equal inputs rarely encode to the same bytes. The canonical form is a tree
//! of what the value's `Serialize` emits, where:
//! - the entries of every map (anything serialized with `serialize_map`) are sorted, by
//!   key and then by value: no map type's equality depends on its order;
//! - the elements of a sequence are sorted only when the value is an unordered set:
//!   `std::collections::HashSet`, hashbrown's `HashSet` or indexmap's `IndexSet` (whose
//!   equality ignores order). Serde gives no sign that a sequence is a set, so the set is
//!   recognised by the Rust type of the value being serialized, which the serializer sees
//!   for the root value and for every field, element, key, map value, `Some` and newtype
//!   payload. Any other sequence keeps its order: two lists in another order differ.
//! - everything else is kept as emitted, with its struct, variant and field names.
//!
//! A set the serializer cannot see as one (serialized by a custom `Serialize` or through
//! `#[serde(transparent)]`) is compared in order: equal inputs may then be reported as
//! different, never the other way round.

use std::fmt;

use serde::ser::{self, Serialize};

/// A value's canonical form: equal forms mean equal values of one type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Canon {
    Unit,
    Bool(bool),
    Int(i128),
    Uint(u128),
    /// An `f32` by its bits (total order; `-0.0` and `0.0` differ, equal NaNs agree).
    F32(u32),
    /// An `f64` by its bits.
    F64(u64),
    Char(char),
    Str(String),
    Bytes(Vec<u8>),
    None,
    Some(Box<Canon>),
    UnitStruct(&'static str),
    UnitVariant(&'static str, u32),
    Newtype(&'static str, Box<Canon>),
    NewtypeVariant(&'static str, u32, Box<Canon>),
    Seq(Vec<Canon>),
    Tuple(Vec<Canon>),
    TupleStruct(&'static str, Vec<Canon>),
    TupleVariant(&'static str, u32, Vec<Canon>),
    Map(Vec<(Canon, Canon)>),
    Struct(&'static str, Vec<(&'static str, Canon)>),
    StructVariant(&'static str, u32, Vec<(&'static str, Canon)>),
}

/// Whether the stored `stored` (value envelope) holds a value equal to `value`, whose
/// encoding is `encoded`: equal bytes, or equal canonical forms of the decoded stored value
/// and `value` (the stored bytes may use another codec, and maps and sets encode in an
/// order that differs between equal values). `Err` says why they cannot be compared.
pub(crate) fn same_value<T>(stored: &[u8], encoded: &[u8], value: &T) -> Result<bool, String>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    if stored == encoded {
        return Ok(true);
    }
    let stored: T = crate::codec::decode_value(stored)
        .map_err(|e| format!("the stored value cannot be read as this type: {e}"))?;
    let same = canonical(&stored).and_then(|stored| Ok(stored == canonical(value)?));
    same.map_err(|e| format!("the values cannot be compared: {e}"))
}

/// The canonical form of `value`; fails only if its `Serialize` fails.
pub(crate) fn canonical<T: Serialize + ?Sized>(value: &T) -> Result<Canon, CanonError> {
    value.serialize(Canonicalizer {
        unordered: is_unordered_set(std::any::type_name::<T>()),
    })
}

/// Whether a value of the type named `name` is a set whose order means nothing.
fn is_unordered_set(name: &str) -> bool {
    const SETS: [&str; 3] = [
        "std::collections::hash::set::HashSet<",
        "hashbrown::set::HashSet<",
        "indexmap::set::IndexSet<",
    ];
    // References and smart pointers serialize as what they point to, through the same
    // serializer, so look through them.
    const WRAPPERS: [&str; 4] = [
        "alloc::boxed::Box<",
        "alloc::rc::Rc<",
        "alloc::sync::Arc<",
        "alloc::borrow::Cow<",
    ];
    let mut name = name;
    loop {
        if let Some(rest) = name
            .strip_prefix("&mut ")
            .or_else(|| name.strip_prefix('&'))
        {
            name = rest;
        } else if let Some(rest) = WRAPPERS.iter().find_map(|w| name.strip_prefix(w)) {
            name = rest;
        } else {
            return SETS.iter().any(|set| name.starts_with(set));
        }
    }
}

/// Why a value has no canonical form: its `Serialize` failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CanonError(String);

impl ser::Error for CanonError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        CanonError(msg.to_string())
    }
}

/// Serializes one value into its [`Canon`]; `unordered` says the value is a set.
struct Canonicalizer {
    unordered: bool,
}

impl ser::Serializer for Canonicalizer {
    type Ok = Canon;
    type Error = CanonError;
    type SerializeSeq = Elements;
    type SerializeTuple = Elements;
    type SerializeTupleStruct = Elements;
    type SerializeTupleVariant = Elements;
    type SerializeMap = Entries;
    type SerializeStruct = Fields;
    type SerializeStructVariant = Fields;

    fn serialize_bool(self, v: bool) -> Result<Canon, CanonError> {
        Ok(Canon::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Canon, CanonError> {
        Ok(Canon::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Canon, CanonError> {
        Ok(Canon::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Canon, CanonError> {
        Ok(Canon::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Canon, CanonError> {
        Ok(Canon::Int(v.into()))
    }
    fn serialize_i128(self, v: i128) -> Result<Canon, CanonError> {
        Ok(Canon::Int(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Canon, CanonError> {
        Ok(Canon::Uint(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Canon, CanonError> {
        Ok(Canon::Uint(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Canon, CanonError> {
        Ok(Canon::Uint(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Canon, CanonError> {
        Ok(Canon::Uint(v.into()))
    }
    fn serialize_u128(self, v: u128) -> Result<Canon, CanonError> {
        Ok(Canon::Uint(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Canon, CanonError> {
        Ok(Canon::F32(v.to_bits()))
    }
    fn serialize_f64(self, v: f64) -> Result<Canon, CanonError> {
        Ok(Canon::F64(v.to_bits()))
    }
    fn serialize_char(self, v: char) -> Result<Canon, CanonError> {
        Ok(Canon::Char(v))
    }
    fn serialize_str(self, v: &str) -> Result<Canon, CanonError> {
        Ok(Canon::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Canon, CanonError> {
        Ok(Canon::Bytes(v.to_owned()))
    }
    fn serialize_none(self) -> Result<Canon, CanonError> {
        Ok(Canon::None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Canon, CanonError> {
        Ok(Canon::Some(Box::new(canonical(value)?)))
    }
    fn serialize_unit(self) -> Result<Canon, CanonError> {
        Ok(Canon::Unit)
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<Canon, CanonError> {
        Ok(Canon::UnitStruct(name))
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<Canon, CanonError> {
        Ok(Canon::UnitVariant(name, index))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Canon, CanonError> {
        Ok(Canon::Newtype(name, Box::new(canonical(value)?)))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<Canon, CanonError> {
        Ok(Canon::NewtypeVariant(
            name,
            index,
            Box::new(canonical(value)?),
        ))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Elements, CanonError> {
        Ok(Elements::new(
            Shape::Seq {
                unordered: self.unordered,
            },
            len,
        ))
    }
    fn serialize_tuple(self, len: usize) -> Result<Elements, CanonError> {
        Ok(Elements::new(Shape::Tuple, Some(len)))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Elements, CanonError> {
        Ok(Elements::new(Shape::TupleStruct(name), Some(len)))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<Elements, CanonError> {
        Ok(Elements::new(Shape::TupleVariant(name, index), Some(len)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Entries, CanonError> {
        Ok(Entries {
            entries: Vec::with_capacity(len.unwrap_or(0).min(PREALLOCATE)),
            key: None,
        })
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Fields, CanonError> {
        Ok(Fields::new(name, None, len))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<Fields, CanonError> {
        Ok(Fields::new(name, Some(index), len))
    }
}

/// Most elements reserved up front from a length hint.
const PREALLOCATE: usize = 4096;

enum Shape {
    Seq { unordered: bool },
    Tuple,
    TupleStruct(&'static str),
    TupleVariant(&'static str, u32),
}

struct Elements {
    shape: Shape,
    items: Vec<Canon>,
}

impl Elements {
    fn new(shape: Shape, len: Option<usize>) -> Self {
        Elements {
            shape,
            items: Vec::with_capacity(len.unwrap_or(0).min(PREALLOCATE)),
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.items.push(canonical(value)?);
        Ok(())
    }

    fn finish(self) -> Canon {
        let Elements { shape, mut items } = self;
        match shape {
            Shape::Seq { unordered } => {
                if unordered {
                    items.sort_unstable();
                }
                Canon::Seq(items)
            }
            Shape::Tuple => Canon::Tuple(items),
            Shape::TupleStruct(name) => Canon::TupleStruct(name, items),
            Shape::TupleVariant(name, index) => Canon::TupleVariant(name, index, items),
        }
    }
}

impl ser::SerializeSeq for Elements {
    type Ok = Canon;
    type Error = CanonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.push(value)
    }
    fn end(self) -> Result<Canon, CanonError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for Elements {
    type Ok = Canon;
    type Error = CanonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.push(value)
    }
    fn end(self) -> Result<Canon, CanonError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for Elements {
    type Ok = Canon;
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.push(value)
    }
    fn end(self) -> Result<Canon, CanonError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for Elements {
    type Ok = Canon;
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.push(value)
    }
    fn end(self) -> Result<Canon, CanonError> {
        Ok(self.finish())
    }
}

struct Entries {
    entries: Vec<(Canon, Canon)>,
    key: Option<Canon>,
}

impl ser::SerializeMap for Entries {
    type Ok = Canon;
    type Error = CanonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CanonError> {
        self.key = Some(canonical(key)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| CanonError("a map value was serialized before its key".into()))?;
        self.entries.push((key, canonical(value)?));
        Ok(())
    }
    fn end(mut self) -> Result<Canon, CanonError> {
        if self.key.is_some() {
            return Err(CanonError(
                "a map key was serialized without a value".into(),
            ));
        }
        self.entries.sort_unstable();
        Ok(Canon::Map(self.entries))
    }
}

struct Fields {
    name: &'static str,
    variant: Option<u32>,
    fields: Vec<(&'static str, Canon)>,
}

impl Fields {
    fn new(name: &'static str, variant: Option<u32>, len: usize) -> Self {
        Fields {
            name,
            variant,
            fields: Vec::with_capacity(len.min(PREALLOCATE)),
        }
    }

    fn push<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.fields.push((key, canonical(value)?));
        Ok(())
    }

    fn finish(self) -> Canon {
        match self.variant {
            None => Canon::Struct(self.name, self.fields),
            Some(index) => Canon::StructVariant(self.name, index, self.fields),
        }
    }
}

impl ser::SerializeStruct for Fields {
    type Ok = Canon;
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.push(key, value)
    }
    fn end(self) -> Result<Canon, CanonError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for Fields {
    type Ok = Canon;
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.push(key, value)
    }
    fn end(self) -> Result<Canon, CanonError> {
        Ok(self.finish())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap, HashSet};
    use std::rc::Rc;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn hash_sets_are_recognised_through_references_and_pointers() {
        fn name_of<T: ?Sized>(_: &T) -> &'static str {
            std::any::type_name::<T>()
        }
        let set: HashSet<u8> = HashSet::new();
        assert!(is_unordered_set(name_of(&set)));
        assert!(is_unordered_set(name_of(&&set)));
        assert!(is_unordered_set(name_of(&Box::new(set.clone()))));
        assert!(is_unordered_set(name_of(&Arc::new(set.clone()))));
        assert!(is_unordered_set(name_of(&Rc::new(&set))));
        assert!(!is_unordered_set(name_of(&vec![1u8])));
        assert!(!is_unordered_set(name_of(&BTreeSet::<u8>::new())));
        assert!(!is_unordered_set(name_of(&Some(set))));
        assert!(!is_unordered_set(name_of(&[1u8, 2])));
    }

    #[test]
    fn equal_maps_and_sets_agree_whatever_their_order() {
        let a: HashMap<String, HashSet<u32>> = (0..50)
            .map(|i| (format!("k{i}"), (0..i).collect()))
            .collect();
        let b: HashMap<String, HashSet<u32>> = (0..50)
            .rev()
            .map(|i| (format!("k{i}"), (0..i).rev().collect()))
            .collect();
        assert_eq!(canonical(&a).unwrap(), canonical(&b).unwrap());
        let mut c = b.clone();
        c.get_mut("k7").unwrap().remove(&3);
        assert_ne!(canonical(&a).unwrap(), canonical(&c).unwrap());
    }

    #[test]
    fn sequences_keep_their_order() {
        assert_ne!(
            canonical(&vec![1, 2]).unwrap(),
            canonical(&vec![2, 1]).unwrap()
        );
        assert_ne!(canonical(&(1, 2)).unwrap(), canonical(&(2, 1)).unwrap());
        let set: HashSet<Vec<u8>> = [vec![1, 2], vec![3]].into_iter().collect();
        let other: HashSet<Vec<u8>> = [vec![2, 1], vec![3]].into_iter().collect();
        assert_ne!(canonical(&set).unwrap(), canonical(&other).unwrap());
    }

    #[test]
    fn scalars_keep_their_kind_and_names() {
        assert_ne!(canonical(&1u32).unwrap(), canonical(&1i32).unwrap());
        assert_ne!(canonical(&0.0f64).unwrap(), canonical(&-0.0f64).unwrap());
        assert_ne!(
            canonical(&Some(())).unwrap(),
            canonical(&None::<()>).unwrap()
        );
        assert_ne!(
            canonical(&Ok::<u8, u8>(1)).unwrap(),
            canonical(&Err::<u8, u8>(1)).unwrap()
        );
    }
}
