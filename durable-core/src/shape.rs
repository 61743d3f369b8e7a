//! Shapes of types, traced from their serde impls: what a stored value's bytes mean.
//!
//! A proc macro cannot see types, so the layout of a workflow's frames is completed at
//! registration: every saved local, the input and the output are traced by driving
//! their `Deserialize` impl with a [`Deserializer`](serde::Deserializer) that hands out
//! placeholder values and records what was asked for (field names and order, variant
//! names, element types, recursively).
//!
//! Invariants:
//! - Tracing is deterministic: the same type gives the same [`Shape`] in every process
//!   and on every platform; [`Shape::hash_into`] feeds a stable hash (FNV-1a, never
//!   `DefaultHasher`).
//! - Every variant of every enum is traced: the type is traced again, steering each
//!   enum towards a variant not seen yet, until none is left.
//! - A type that cannot be traced (one that asks for `deserialize_any`, such as
//!   `#[serde(untagged)]`, `#[serde(tag = "..")]` or `#[serde(flatten)]` types and
//!   `serde_json::Value`; or one that refuses the placeholder values, such as a string
//!   that must parse) becomes [`Shape::Opaque`], compared by its Rust type name only.
//! - A type that contains itself is traced down to its second occurrence, which becomes
//!   [`Shape::Recursive`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::{Deserialize, Serialize};

/// The shape of a type as its serde impls see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Shape {
    /// `bool`.
    Bool,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `i128`.
    I128,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `u128`.
    U128,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `char`.
    Char,
    /// A string.
    Str,
    /// A byte string.
    Bytes,
    /// `()`.
    Unit,
    /// `Option<T>`.
    Option(Box<Shape>),
    /// A sequence (`Vec<T>`, sets, ...).
    Seq(Box<Shape>),
    /// A map.
    Map(Box<Shape>, Box<Shape>),
    /// A tuple or fixed-size array.
    Tuple(Vec<Shape>),
    /// A unit struct.
    UnitStruct(String),
    /// A newtype struct.
    Newtype(String, Box<Shape>),
    /// A tuple struct.
    TupleStruct(String, Vec<Shape>),
    /// A struct: its name and its fields in order.
    Struct(String, Vec<(String, Shape)>),
    /// An enum: its name and its variants in order.
    Enum(String, Vec<(String, VariantShape)>),
    /// A type met again inside itself (a recursive type), by name.
    Recursive(String),
    /// A type whose serde impls cannot be traced, compared by its Rust type name.
    Opaque {
        /// `std::any::type_name` of the type.
        type_name: String,
        /// Why it could not be traced.
        reason: String,
    },
}

/// The shape of one enum variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VariantShape {
    /// A unit variant.
    Unit,
    /// A newtype variant.
    Newtype(Box<Shape>),
    /// A tuple variant.
    Tuple(Vec<Shape>),
    /// A struct variant.
    Struct(Vec<(String, Shape)>),
    /// A variant the tracer could not reach (a recursive enum's variant below its first
    /// occurrence).
    Unknown,
}

/// FNV-1a, 64 bits: a hash that is the same in every build and on every platform, for
/// fingerprints that are stored.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHasher {
    /// Adds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Adds a string, delimited so that `("ab", "c")` and `("a", "bc")` differ.
    pub fn str(&mut self, s: &str) {
        self.write(&(s.len() as u64).to_le_bytes());
        self.write(s.as_bytes());
    }

    /// Adds a number.
    pub fn u64(&mut self, n: u64) {
        self.write(&n.to_le_bytes());
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Shape {
    /// Traces `T` as a codec that is (`human_readable`) or is not self-describing text
    /// sees it: serde impls may differ between the two (e.g. `std::net::IpAddr`).
    pub fn of<T: DeserializeOwned>(human_readable: bool) -> Shape {
        let mut tracer = Tracer {
            human_readable,
            enums: HashMap::new(),
            stack: Vec::new(),
            below: Vec::new(),
            depth: 0,
        };
        let name = std::any::type_name::<T>();
        let mut passes = 0;
        loop {
            passes += 1;
            let mut out = None;
            let traced = T::deserialize(Trace {
                tracer: &mut tracer,
                ctx: Here {
                    type_name: name,
                    minimal: false,
                },
                out: &mut out,
            });
            if let Err(e) = traced {
                return Shape::opaque(name, e.0);
            }
            let Some(shape) = out else {
                return Shape::opaque(name, "its `Deserialize` impl asked for nothing".into());
            };
            if !tracer.pending() {
                return tracer.resolve(shape, &mut Vec::new());
            }
            if passes >= MAX_PASSES {
                return Shape::opaque(name, "too many enum variants to trace".into());
            }
        }
    }

    fn opaque(type_name: &str, reason: String) -> Shape {
        Shape::Opaque {
            type_name: type_name.to_owned(),
            reason,
        }
    }

    /// Feeds the shape to a stable hash.
    pub(crate) fn hash_into(&self, h: &mut StableHasher) {
        let tag = |h: &mut StableHasher, t: &str| h.str(t);
        match self {
            Shape::Bool => tag(h, "bool"),
            Shape::I8 => tag(h, "i8"),
            Shape::I16 => tag(h, "i16"),
            Shape::I32 => tag(h, "i32"),
            Shape::I64 => tag(h, "i64"),
            Shape::I128 => tag(h, "i128"),
            Shape::U8 => tag(h, "u8"),
            Shape::U16 => tag(h, "u16"),
            Shape::U32 => tag(h, "u32"),
            Shape::U64 => tag(h, "u64"),
            Shape::U128 => tag(h, "u128"),
            Shape::F32 => tag(h, "f32"),
            Shape::F64 => tag(h, "f64"),
            Shape::Char => tag(h, "char"),
            Shape::Str => tag(h, "str"),
            Shape::Bytes => tag(h, "bytes"),
            Shape::Unit => tag(h, "unit"),
            Shape::Option(inner) => {
                tag(h, "option");
                inner.hash_into(h);
            }
            Shape::Seq(inner) => {
                tag(h, "seq");
                inner.hash_into(h);
            }
            Shape::Map(k, v) => {
                tag(h, "map");
                k.hash_into(h);
                v.hash_into(h);
            }
            Shape::Tuple(items) => {
                tag(h, "tuple");
                hash_list(h, items);
            }
            Shape::UnitStruct(name) => {
                tag(h, "unit_struct");
                h.str(name);
            }
            Shape::Newtype(name, inner) => {
                tag(h, "newtype");
                h.str(name);
                inner.hash_into(h);
            }
            Shape::TupleStruct(name, items) => {
                tag(h, "tuple_struct");
                h.str(name);
                hash_list(h, items);
            }
            Shape::Struct(name, fields) => {
                tag(h, "struct");
                h.str(name);
                hash_fields(h, fields);
            }
            Shape::Enum(name, variants) => {
                tag(h, "enum");
                h.str(name);
                h.u64(variants.len() as u64);
                for (variant, shape) in variants {
                    h.str(variant);
                    match shape {
                        VariantShape::Unit => tag(h, "unit"),
                        VariantShape::Newtype(inner) => {
                            tag(h, "newtype");
                            inner.hash_into(h);
                        }
                        VariantShape::Tuple(items) => {
                            tag(h, "tuple");
                            hash_list(h, items);
                        }
                        VariantShape::Struct(fields) => {
                            tag(h, "struct");
                            hash_fields(h, fields);
                        }
                        VariantShape::Unknown => tag(h, "unknown"),
                    }
                }
            }
            Shape::Recursive(name) => {
                tag(h, "recursive");
                h.str(name);
            }
            Shape::Opaque { type_name, .. } => {
                tag(h, "opaque");
                h.str(type_name);
            }
        }
    }

    /// The differences between `self` (the stored shape) and `new`, each as a sentence
    /// ("field `b` of `Pair`: was u32 at position 1, now at 0"); at most `limit`.
    pub(crate) fn differences(&self, new: &Shape, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        diff(self, new, "", &mut out, limit);
        out
    }
}

fn hash_list(h: &mut StableHasher, items: &[Shape]) {
    h.u64(items.len() as u64);
    for item in items {
        item.hash_into(h);
    }
}

fn hash_fields(h: &mut StableHasher, fields: &[(String, Shape)]) {
    h.u64(fields.len() as u64);
    for (name, shape) in fields {
        h.str(name);
        shape.hash_into(h);
    }
}

impl fmt::Display for Shape {
    /// A short, one-line name of the shape (`u32`, `Vec<String>`, `struct Pair`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Bool => f.write_str("bool"),
            Shape::I8 => f.write_str("i8"),
            Shape::I16 => f.write_str("i16"),
            Shape::I32 => f.write_str("i32"),
            Shape::I64 => f.write_str("i64"),
            Shape::I128 => f.write_str("i128"),
            Shape::U8 => f.write_str("u8"),
            Shape::U16 => f.write_str("u16"),
            Shape::U32 => f.write_str("u32"),
            Shape::U64 => f.write_str("u64"),
            Shape::U128 => f.write_str("u128"),
            Shape::F32 => f.write_str("f32"),
            Shape::F64 => f.write_str("f64"),
            Shape::Char => f.write_str("char"),
            Shape::Str => f.write_str("String"),
            Shape::Bytes => f.write_str("bytes"),
            Shape::Unit => f.write_str("()"),
            Shape::Option(inner) => write!(f, "Option<{inner}>"),
            Shape::Seq(inner) => write!(f, "Vec<{inner}>"),
            Shape::Map(k, v) => write!(f, "Map<{k}, {v}>"),
            Shape::Tuple(items) => {
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
            Shape::UnitStruct(name)
            | Shape::Newtype(name, _)
            | Shape::TupleStruct(name, _)
            | Shape::Struct(name, _) => write!(f, "struct {name}"),
            Shape::Enum(name, _) => write!(f, "enum {name}"),
            Shape::Recursive(name) => write!(f, "{name} (recursive)"),
            Shape::Opaque { type_name, .. } => write!(f, "{type_name} (untraced)"),
        }
    }
}

/// Where in the type a difference is, as words: "field `b` of `Pair`".
fn at(path: &str) -> String {
    if path.is_empty() {
        "the value".to_owned()
    } else {
        path.to_owned()
    }
}

fn diff(old: &Shape, new: &Shape, path: &str, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || old == new {
        return;
    }
    match (old, new) {
        (Shape::Option(a), Shape::Option(b)) | (Shape::Seq(a), Shape::Seq(b)) => {
            diff(a, b, path, out, limit)
        }
        (Shape::Map(ak, av), Shape::Map(bk, bv)) => {
            diff(ak, bk, &format!("{} (key)", at(path)), out, limit);
            diff(av, bv, &format!("{} (value)", at(path)), out, limit);
        }
        (Shape::Newtype(a, ai), Shape::Newtype(b, bi)) if a == b => {
            diff(ai, bi, &format!("the inside of `{a}`"), out, limit)
        }
        (Shape::Tuple(a), Shape::Tuple(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(x, y, &format!("element {i} of {}", at(path)), out, limit);
            }
        }
        (Shape::TupleStruct(a, ai), Shape::TupleStruct(b, bi))
            if a == b && ai.len() == bi.len() =>
        {
            for (i, (x, y)) in ai.iter().zip(bi).enumerate() {
                diff(x, y, &format!("field {i} of `{a}`"), out, limit);
            }
        }
        (Shape::Struct(a, af), Shape::Struct(b, bf)) if a == b => {
            diff_fields(a, af, bf, out, limit)
        }
        (Shape::Enum(a, av), Shape::Enum(b, bv)) if a == b => {
            for (i, (name, shape)) in av.iter().enumerate() {
                match bv.iter().position(|(n, _)| n == name) {
                    None => out.push(format!(
                        "variant `{name}` of `{a}`: was at position {i}, now removed"
                    )),
                    Some(j) if j != i => out.push(format!(
                        "variant `{name}` of `{a}`: was at position {i}, now at {j}"
                    )),
                    Some(j) => diff_variant(a, name, shape, &bv[j].1, out, limit),
                }
            }
            for (j, (name, _)) in bv.iter().enumerate() {
                if !av.iter().any(|(n, _)| n == name) {
                    out.push(format!("variant `{name}` of `{a}`: new, at position {j}"));
                }
            }
        }
        _ => out.push(format!("{}: was {old}, now {new}", at(path))),
    }
    out.truncate(limit);
}

fn diff_variant(
    owner: &str,
    name: &str,
    old: &VariantShape,
    new: &VariantShape,
    out: &mut Vec<String>,
    limit: usize,
) {
    let path = format!("variant `{name}` of `{owner}`");
    match (old, new) {
        (VariantShape::Newtype(a), VariantShape::Newtype(b)) => diff(a, b, &path, out, limit),
        (VariantShape::Tuple(a), VariantShape::Tuple(b)) => diff(
            &Shape::Tuple(a.clone()),
            &Shape::Tuple(b.clone()),
            &path,
            out,
            limit,
        ),
        (VariantShape::Struct(a), VariantShape::Struct(b)) => {
            diff_fields(&format!("{owner}::{name}"), a, b, out, limit)
        }
        (a, b) if a == b => {}
        _ => out.push(format!("{path}: its fields changed")),
    }
}

fn diff_fields(
    owner: &str,
    old: &[(String, Shape)],
    new: &[(String, Shape)],
    out: &mut Vec<String>,
    limit: usize,
) {
    for (i, (name, shape)) in old.iter().enumerate() {
        match new.iter().position(|(n, _)| n == name) {
            None => out.push(format!(
                "field `{name}` of `{owner}`: was {shape} at position {i}, now removed"
            )),
            Some(j) if j != i => out.push(format!(
                "field `{name}` of `{owner}`: was {shape} at position {i}, now at {j}"
            )),
            Some(j) => diff(
                shape,
                &new[j].1,
                &format!("field `{name}` of `{owner}`"),
                out,
                limit,
            ),
        }
    }
    for (j, (name, shape)) in new.iter().enumerate() {
        if !old.iter().any(|(n, _)| n == name) {
            out.push(format!(
                "field `{name}` of `{owner}`: new, {shape} at position {j}"
            ));
        }
    }
}

/// At most this many passes over a type (each traces at least one new enum variant).
const MAX_PASSES: usize = 4096;
/// Deeper than this, tracing gives up (a recursive type whose first enum variant
/// recurses, for instance).
const MAX_DEPTH: usize = 256;

/// An enum occurrence's identity: the Rust type being deserialized where the enum was
/// met (the nearest `DeserializeSeed`'s value type or the traced type itself), and the
/// enum's serde name. Generic enums instantiated differently differ by the first.
type EnumKey = (&'static str, &'static str);

#[derive(Debug)]
struct EnumState {
    variants: &'static [&'static str],
    /// Each variant's shape, once traced.
    traced: Vec<Option<VariantShape>>,
    /// The enums met below each variant (transitively), to steer later passes to those
    /// with variants left to trace.
    below: Vec<BTreeSet<EnumKey>>,
}

#[derive(Debug)]
struct Tracer {
    human_readable: bool,
    enums: HashMap<EnumKey, EnumState>,
    /// The containers (by [`EnumKey`]-like identity) being traced, outermost first.
    stack: Vec<EnumKey>,
    /// One set per enum variant being traced: the enums met below it.
    below: Vec<BTreeSet<EnumKey>>,
    depth: usize,
}

impl Tracer {
    fn pending(&self) -> bool {
        self.enums
            .values()
            .any(|e| e.traced.iter().any(Option::is_none))
    }

    fn has_pending(&self, keys: &BTreeSet<EnumKey>) -> bool {
        keys.iter().any(|k| {
            self.enums
                .get(k)
                .is_some_and(|e| e.traced.iter().any(Option::is_none))
        })
    }

    /// Replaces enum references by the enums' traced variants.
    fn resolve(&self, shape: Shape, path: &mut Vec<EnumKey>) -> Shape {
        match shape {
            Shape::Option(inner) => Shape::Option(Box::new(self.resolve(*inner, path))),
            Shape::Seq(inner) => Shape::Seq(Box::new(self.resolve(*inner, path))),
            Shape::Map(k, v) => Shape::Map(
                Box::new(self.resolve(*k, path)),
                Box::new(self.resolve(*v, path)),
            ),
            Shape::Tuple(items) => Shape::Tuple(self.resolve_list(items, path)),
            Shape::Newtype(name, inner) => {
                Shape::Newtype(name, Box::new(self.resolve(*inner, path)))
            }
            Shape::TupleStruct(name, items) => {
                Shape::TupleStruct(name, self.resolve_list(items, path))
            }
            Shape::Struct(name, fields) => Shape::Struct(name, self.resolve_fields(fields, path)),
            // An enum is traced as a reference `Enum(name, [(type name, Unknown)])`.
            Shape::Enum(name, mut key) if key.len() == 1 && key[0].1 == VariantShape::Unknown => {
                let type_name = std::mem::take(&mut key[0].0);
                let Some((&k, state)) = self
                    .enums
                    .iter()
                    .find(|((t, n), _)| *t == type_name && *n == name)
                else {
                    return Shape::Enum(name, Vec::new());
                };
                if path.contains(&k) {
                    return Shape::Recursive(name);
                }
                path.push(k);
                let variants = state
                    .variants
                    .iter()
                    .zip(&state.traced)
                    .map(|(v, shape)| {
                        let shape = match shape.clone() {
                            None | Some(VariantShape::Unknown) => VariantShape::Unknown,
                            Some(VariantShape::Unit) => VariantShape::Unit,
                            Some(VariantShape::Newtype(inner)) => {
                                VariantShape::Newtype(Box::new(self.resolve(*inner, path)))
                            }
                            Some(VariantShape::Tuple(items)) => {
                                VariantShape::Tuple(self.resolve_list(items, path))
                            }
                            Some(VariantShape::Struct(fields)) => {
                                VariantShape::Struct(self.resolve_fields(fields, path))
                            }
                        };
                        ((*v).to_owned(), shape)
                    })
                    .collect();
                path.pop();
                Shape::Enum(name, variants)
            }
            other => other,
        }
    }

    fn resolve_list(&self, items: Vec<Shape>, path: &mut Vec<EnumKey>) -> Vec<Shape> {
        items.into_iter().map(|s| self.resolve(s, path)).collect()
    }

    fn resolve_fields(
        &self,
        fields: Vec<(String, Shape)>,
        path: &mut Vec<EnumKey>,
    ) -> Vec<(String, Shape)> {
        fields
            .into_iter()
            .map(|(n, s)| (n, self.resolve(s, path)))
            .collect()
    }
}

/// Why tracing stopped.
#[derive(Debug)]
struct TraceError(String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TraceError(format!(
            "its `Deserialize` impl refused a placeholder value: {msg}"
        ))
    }
}

/// Where the tracer stands: the Rust type being deserialized, and whether it only needs
/// a value (below a recursion: no shape is recorded, options are `None`, sequences empty).
#[derive(Clone, Copy, Debug)]
struct Here {
    type_name: &'static str,
    minimal: bool,
}

/// The deserializer of one value: records its shape in `out`.
struct Trace<'t> {
    tracer: &'t mut Tracer,
    ctx: Here,
    out: &'t mut Option<Shape>,
}

impl Trace<'_> {
    fn leaf(self, shape: Shape) {
        *self.out = Some(shape);
    }

    fn enter(&mut self, key: EnumKey) -> Result<bool, TraceError> {
        self.tracer.depth += 1;
        if self.tracer.depth > MAX_DEPTH {
            return Err(TraceError(format!(
                "it nests more than {MAX_DEPTH} levels deep (a recursive type whose first variant recurses?)"
            )));
        }
        let recursive = self.tracer.stack.contains(&key);
        self.tracer.stack.push(key);
        Ok(recursive)
    }

    fn leave(&mut self) {
        self.tracer.depth -= 1;
        self.tracer.stack.pop();
    }

    /// Traces the `len` elements of a tuple-like value.
    fn elements<'de, V: Visitor<'de>>(
        &mut self,
        len: usize,
        minimal: bool,
        visitor: V,
    ) -> Result<(V::Value, Vec<Shape>), TraceError> {
        let mut seq = Elements {
            tracer: self.tracer,
            minimal,
            left: len,
            shapes: Vec::with_capacity(len),
        };
        let value = visitor.visit_seq(&mut seq)?;
        Ok((value, seq.shapes))
    }

    fn container<'de, V: Visitor<'de>>(
        mut self,
        name: &'static str,
        len: usize,
        visitor: V,
        make: impl FnOnce(Vec<Shape>) -> Shape,
    ) -> Result<V::Value, TraceError> {
        let recursive = self.enter((self.ctx.type_name, name))?;
        let minimal = self.ctx.minimal || recursive;
        let result = self.elements(len, minimal, visitor);
        self.leave();
        let (value, shapes) = result?;
        *self.out = Some(if recursive {
            Shape::Recursive(name.to_owned())
        } else {
            make(shapes)
        });
        Ok(value)
    }
}

macro_rules! leaves {
    ($($method:ident => $shape:expr, $visit:ident($($value:expr)?);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
                self.leaf($shape);
                visitor.$visit($($value)?)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Trace<'_> {
    type Error = TraceError;

    fn is_human_readable(&self) -> bool {
        self.tracer.human_readable
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, TraceError> {
        Err(TraceError(
            "its `Deserialize` impl asks for a self-describing format (`deserialize_any`)".into(),
        ))
    }

    // Non-zero numbers, so that `NonZero*` types accept them.
    leaves! {
        deserialize_bool => Shape::Bool, visit_bool(false);
        deserialize_i8 => Shape::I8, visit_i8(1);
        deserialize_i16 => Shape::I16, visit_i16(1);
        deserialize_i32 => Shape::I32, visit_i32(1);
        deserialize_i64 => Shape::I64, visit_i64(1);
        deserialize_i128 => Shape::I128, visit_i128(1);
        deserialize_u8 => Shape::U8, visit_u8(1);
        deserialize_u16 => Shape::U16, visit_u16(1);
        deserialize_u32 => Shape::U32, visit_u32(1);
        deserialize_u64 => Shape::U64, visit_u64(1);
        deserialize_u128 => Shape::U128, visit_u128(1);
        deserialize_f32 => Shape::F32, visit_f32(0.0);
        deserialize_f64 => Shape::F64, visit_f64(0.0);
        deserialize_char => Shape::Char, visit_char('a');
        deserialize_str => Shape::Str, visit_str("");
        deserialize_string => Shape::Str, visit_string(String::new());
        deserialize_bytes => Shape::Bytes, visit_bytes(&[]);
        deserialize_byte_buf => Shape::Bytes, visit_byte_buf(Vec::new());
        deserialize_unit => Shape::Unit, visit_unit();
        deserialize_identifier => Shape::Str, visit_str("");
        deserialize_ignored_any => Shape::Unit, visit_unit();
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        if self.ctx.minimal {
            self.leaf(Shape::Unit);
            return visitor.visit_none();
        }
        let mut inner = None;
        let value = visitor.visit_some(Trace {
            tracer: self.tracer,
            ctx: self.ctx,
            out: &mut inner,
        })?;
        self.leaf(Shape::Option(Box::new(inner.unwrap_or(Shape::Unit))));
        Ok(value)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.leaf(Shape::UnitStruct(name.to_owned()));
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let recursive = self.enter((self.ctx.type_name, name))?;
        let mut inner = None;
        let value = visitor.visit_newtype_struct(Trace {
            tracer: self.tracer,
            ctx: Here {
                minimal: self.ctx.minimal || recursive,
                ..self.ctx
            },
            out: &mut inner,
        });
        self.leave();
        let value = value?;
        *self.out = Some(if recursive {
            Shape::Recursive(name.to_owned())
        } else {
            Shape::Newtype(name.to_owned(), Box::new(inner.unwrap_or(Shape::Unit)))
        });
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        let len = usize::from(!self.ctx.minimal);
        let minimal = self.ctx.minimal;
        let (value, shapes) = self.elements(len, minimal, visitor)?;
        let item = shapes.into_iter().next().unwrap_or(Shape::Unit);
        self.leaf(Shape::Seq(Box::new(item)));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        mut self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let minimal = self.ctx.minimal;
        let (value, shapes) = self.elements(len, minimal, visitor)?;
        self.leaf(Shape::Tuple(shapes));
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.container(name, len, visitor, |items| {
            Shape::TupleStruct(name.to_owned(), items)
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let mut map = Entries {
            tracer: self.tracer,
            minimal: self.ctx.minimal,
            left: !self.ctx.minimal,
            key: None,
            value: None,
        };
        let value = visitor.visit_map(&mut map)?;
        let shape = Shape::Map(
            Box::new(map.key.unwrap_or(Shape::Unit)),
            Box::new(map.value.unwrap_or(Shape::Unit)),
        );
        *self.out = Some(shape);
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.container(name, fields.len(), visitor, |shapes| {
            Shape::Struct(
                name.to_owned(),
                fields.iter().map(|f| (*f).to_owned()).zip(shapes).collect(),
            )
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        if variants.is_empty() {
            return Err(TraceError(format!("enum `{name}` has no variants")));
        }
        let key = (self.ctx.type_name, name);
        for set in &mut self.tracer.below {
            set.insert(key);
        }
        let recursive = self.enter(key)?;
        let minimal = self.ctx.minimal || recursive;
        let index = if minimal {
            0
        } else {
            let state = self.tracer.enums.entry(key).or_insert_with(|| EnumState {
                variants,
                traced: vec![None; variants.len()],
                below: vec![BTreeSet::new(); variants.len()],
            });
            match state.traced.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    let below = &self.tracer.enums[&key].below;
                    below
                        .iter()
                        .position(|keys| self.tracer.has_pending(keys))
                        .unwrap_or(0)
                }
            }
        };
        self.tracer.below.push(BTreeSet::new());
        let mut variant = None;
        let value = visitor.visit_enum(Variant {
            tracer: self.tracer,
            minimal,
            index,
            out: &mut variant,
        });
        let below = self.tracer.below.pop().unwrap_or_default();
        self.leave();
        let value = value?;
        if !minimal {
            let state = self.tracer.enums.get_mut(&key).expect("entered above");
            if state.traced[index].is_none() {
                state.traced[index] = Some(variant.unwrap_or(VariantShape::Unit));
            }
            state.below[index].extend(below);
        }
        // A reference, resolved once every variant is traced.
        *self.out = Some(if recursive {
            Shape::Recursive(name.to_owned())
        } else {
            Shape::Enum(
                name.to_owned(),
                vec![(self.ctx.type_name.to_owned(), VariantShape::Unknown)],
            )
        });
        Ok(value)
    }
}

/// The elements of a tuple, tuple struct, struct or sequence.
struct Elements<'t> {
    tracer: &'t mut Tracer,
    minimal: bool,
    left: usize,
    shapes: Vec<Shape>,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TraceError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut out = None;
        let value = seed.deserialize(Trace {
            tracer: self.tracer,
            ctx: Here {
                type_name: std::any::type_name::<T::Value>(),
                minimal: self.minimal,
            },
            out: &mut out,
        })?;
        self.shapes.push(out.unwrap_or(Shape::Unit));
        Ok(Some(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The one entry of a traced map (none below a recursion).
struct Entries<'t> {
    tracer: &'t mut Tracer,
    minimal: bool,
    left: bool,
    key: Option<Shape>,
    value: Option<Shape>,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        if !self.left {
            return Ok(None);
        }
        self.left = false;
        let key = seed.deserialize(Trace {
            tracer: self.tracer,
            ctx: Here {
                type_name: std::any::type_name::<K::Value>(),
                minimal: self.minimal,
            },
            out: &mut self.key,
        })?;
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TraceError> {
        seed.deserialize(Trace {
            tracer: self.tracer,
            ctx: Here {
                type_name: std::any::type_name::<V::Value>(),
                minimal: self.minimal,
            },
            out: &mut self.value,
        })
    }
}

/// The variant chosen for one enum occurrence.
struct Variant<'t> {
    tracer: &'t mut Tracer,
    minimal: bool,
    index: usize,
    out: &'t mut Option<VariantShape>,
}

impl<'de, 't> EnumAccess<'de> for Variant<'t> {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), TraceError> {
        let index =
            u32::try_from(self.index).map_err(|_| TraceError("too many variants".into()))?;
        let de: de::value::U32Deserializer<TraceError> = index.into_deserializer();
        let value = seed.deserialize(de)?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = TraceError;

    fn unit_variant(self) -> Result<(), TraceError> {
        *self.out = Some(VariantShape::Unit);
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, TraceError> {
        let mut inner = None;
        let value = seed.deserialize(Trace {
            tracer: self.tracer,
            ctx: Here {
                type_name: std::any::type_name::<T::Value>(),
                minimal: self.minimal,
            },
            out: &mut inner,
        })?;
        *self.out = Some(VariantShape::Newtype(Box::new(
            inner.unwrap_or(Shape::Unit),
        )));
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let mut seq = Elements {
            tracer: self.tracer,
            minimal: self.minimal,
            left: len,
            shapes: Vec::with_capacity(len),
        };
        let value = visitor.visit_seq(&mut seq)?;
        *self.out = Some(VariantShape::Tuple(seq.shapes));
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let mut seq = Elements {
            tracer: self.tracer,
            minimal: self.minimal,
            left: fields.len(),
            shapes: Vec::with_capacity(fields.len()),
        };
        let value = visitor.visit_seq(&mut seq)?;
        *self.out = Some(VariantShape::Struct(
            fields
                .iter()
                .map(|f| (*f).to_owned())
                .zip(seq.shapes)
                .collect(),
        ));
        Ok(value)
    }
}

#[cfg(test)]
mod tests;
