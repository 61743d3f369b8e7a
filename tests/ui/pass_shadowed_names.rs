//! Generated code does not depend on the user's names: this file shadows `core`, `std`
//! and `durable_core` with empty modules and the prelude's `Result`, `Option`, `Ok`,
//! `Err`, `Some`, `None`, `Box`, `Vec`, `String`, `Clone`, `Iterator`, `Into`,
//! `Default`, `Send`, `Sized` and `Drop` with unrelated items, then runs workflows with
//! every lowered shape (loops, `match`, `?`, `break` with a value) straight through and
//! resuming from the frame at every point.
#![deny(warnings)]
#![allow(dead_code, non_camel_case_types)]

extern crate durable_core as runtime;

mod core {}
mod std {}
mod durable_core {}

struct Result;
struct Option;
struct Ok;
struct Err;
struct Some;
struct None;
struct Box;
struct Vec;
struct String;
struct Clone;
struct Iterator;
struct Into;
struct Default;
struct Send;
struct Sized;
struct Drop;

use runtime::{durable, Ctx};

#[durable]
async fn shapes(ctx: Ctx, n: u32) -> ::core::option::Option<u32> {
    let mut total = 0u32;
    for i in 0..n {
        total += ctx
            .step_infallible("add", move || async move { i })
            .await;
    }
    let mut k = 0u32;
    let doubled = loop {
        k += 1;
        let v = ctx
            .step_infallible("double", move || async move { k * 2 })
            .await;
        if v >= 4 {
            break v;
        }
    };
    let found = match total {
        0 => ctx
            .step_infallible("none", || async { ::core::option::Option::None::<u32> })
            .await?,
        t => ctx
            .step_infallible("some", move || async move { ::core::option::Option::Some(t) })
            .await?,
    };
    ::core::option::Option::Some(found + doubled)
}

#[durable(codec = json)]
async fn named(ctx: Ctx, names: ::std::vec::Vec<::std::string::String>) -> usize {
    let mut lengths = 0;
    for name in names {
        lengths += ctx
            .step_infallible("len", move || async move { name.len() })
            .await;
    }
    lengths
}

async fn run_all(suspend: bool) {
    let engine = runtime::Engine::builder(runtime::MemoryStore::new())
        .register(shapes)
        .register(named)
        .suspend_after_every_point(suspend)
        .open()
        .await
        .unwrap();
    let out = engine.start(shapes, "shapes", 4).await.unwrap().result().await.unwrap();
    assert_eq!(out, ::core::option::Option::Some(6 + 4));
    let names = ::std::vec!["ab".to_owned(), "cde".to_owned()];
    let out = engine.start(named, "named", names).await.unwrap().result().await.unwrap();
    assert_eq!(out, 5);
    engine.shutdown().await;
}

fn main() {
    let rt = ::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run_all(false));
    rt.block_on(run_all(true));
}
