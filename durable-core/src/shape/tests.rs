use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Serialize, Deserialize)]
struct Pair {
    a: u32,
    b: u32,
}

mod swapped {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Pair {
        pub b: u32,
        pub a: u32,
    }
}

#[derive(Serialize, Deserialize)]
enum Payment {
    Card { last4: String },
    Cash,
    Voucher(u64, Option<String>),
}

#[derive(Serialize, Deserialize)]
struct Wrapper<T> {
    inner: T,
}

#[derive(Serialize, Deserialize)]
struct Node {
    value: u8,
    next: Option<Box<Node>>,
    children: Vec<Node>,
}

#[derive(Serialize, Deserialize)]
enum Expr {
    Lit(i64),
    Add(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
}

#[derive(Serialize, Deserialize)]
enum Outer {
    A(Inner),
    B(Inner),
}

#[derive(Serialize, Deserialize)]
enum Inner {
    X,
    Y(u8),
    Z { z: bool },
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    N(u32),
    S(String),
}

fn hash(shape: &Shape) -> u64 {
    let mut h = StableHasher::default();
    shape.hash_into(&mut h);
    h.finish()
}

#[test]
fn structs_keep_field_names_and_order() {
    let shape = Shape::of::<Pair>(false);
    assert_eq!(
        shape,
        Shape::Struct(
            "Pair".into(),
            vec![("a".into(), Shape::U32), ("b".into(), Shape::U32)]
        )
    );
    let swapped = Shape::of::<swapped::Pair>(false);
    assert_ne!(hash(&shape), hash(&swapped));
    let diffs = shape.differences(&swapped, 10);
    assert_eq!(
        diffs,
        vec![
            "field `a` of `Pair`: was u32 at position 0, now at 1".to_owned(),
            "field `b` of `Pair`: was u32 at position 1, now at 0".to_owned(),
        ]
    );
}

#[test]
fn every_enum_variant_is_traced() {
    let shape = Shape::of::<Payment>(false);
    assert_eq!(
        shape,
        Shape::Enum(
            "Payment".into(),
            vec![
                (
                    "Card".into(),
                    VariantShape::Struct(vec![("last4".into(), Shape::Str)])
                ),
                ("Cash".into(), VariantShape::Unit),
                (
                    "Voucher".into(),
                    VariantShape::Tuple(vec![Shape::U64, Shape::Option(Box::new(Shape::Str))])
                ),
            ]
        )
    );
}

#[test]
fn nested_enums_are_traced_below_every_variant() {
    let shape = Shape::of::<Outer>(false);
    let Shape::Enum(_, variants) = &shape else {
        panic!("{shape:?}")
    };
    for (_, v) in variants {
        let VariantShape::Newtype(inner) = v else {
            panic!("{v:?}")
        };
        let Shape::Enum(_, inner) = &**inner else {
            panic!("{inner:?}")
        };
        assert!(
            inner.iter().all(|(_, v)| *v != VariantShape::Unknown),
            "{inner:?}"
        );
    }
}

#[test]
fn generics_are_told_apart() {
    let a = Shape::of::<Wrapper<Wrapper<u32>>>(false);
    let b = Shape::of::<Wrapper<Wrapper<String>>>(false);
    assert_ne!(a, b);
    assert_eq!(
        a,
        Shape::Struct(
            "Wrapper".into(),
            vec![(
                "inner".into(),
                Shape::Struct("Wrapper".into(), vec![("inner".into(), Shape::U32)])
            )]
        )
    );
}

#[test]
fn std_containers() {
    let shape = Shape::of::<(Vec<u8>, BTreeMap<String, Option<i16>>, [bool; 2])>(false);
    assert_eq!(
        shape,
        Shape::Tuple(vec![
            Shape::Seq(Box::new(Shape::U8)),
            Shape::Map(
                Box::new(Shape::Str),
                Box::new(Shape::Option(Box::new(Shape::I16)))
            ),
            Shape::Tuple(vec![Shape::Bool, Shape::Bool]),
        ])
    );
}

#[test]
fn recursive_types_end() {
    let node = Shape::of::<Node>(false);
    assert!(matches!(node, Shape::Struct(..)), "{node:?}");
    let expr = Shape::of::<Expr>(false);
    let Shape::Enum(_, variants) = &expr else {
        panic!("{expr:?}")
    };
    assert_eq!(variants.len(), 3);
    assert_eq!(hash(&expr), hash(&Shape::of::<Expr>(false)));
}

#[test]
fn untraceable_types_fall_back_to_their_name() {
    let shape = Shape::of::<Untagged>(false);
    let Shape::Opaque { type_name, reason } = &shape else {
        panic!("{shape:?}")
    };
    assert!(type_name.ends_with("Untagged"), "{type_name}");
    assert!(reason.contains("deserialize_any"), "{reason}");
    assert!(matches!(
        Shape::of::<serde_json::Value>(true),
        Shape::Opaque { .. }
    ));
}

const PAIR_HASH: u64 = 5271683325031377071;

#[test]
fn hashes_are_stable() {
    // A stored fingerprint must not change between builds: this value is fixed.
    assert_eq!(hash(&Shape::of::<Pair>(false)), PAIR_HASH);
    let mut h = StableHasher::default();
    h.str("pair");
    assert_eq!(h.finish(), 7027777963392314845);
}
