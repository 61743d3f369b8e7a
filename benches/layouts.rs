//! The cost of versioning by layout (issue 11): tracing the layout of a workflow with 50
//! durable points whose frames hold nested types (structs, enums with data, maps,
//! options, vectors, arrays, tuples, a recursive enum), as registration does, and what
//! layouts add to storage.
//!
//! `cargo bench --bench layouts` prints:
//! - the median and worst time of `Layout::of` + `Layout::fingerprint` over many rounds
//!   (the work `EngineBuilder::register` adds per workflow version), and of a whole
//!   `EngineBuilder::register` call;
//! - the bytes the layout adds to each stored execution (the fingerprint in its frame's
//!   header), read from a real frame, and the size of the layout's description that the
//!   store keeps once per layout.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use durable_core::{
    durable, Ctx, EngineBuilder, FrameReader, Layout, MemoryStore, Status, Store, TestClock,
    Timestamp, Until, Workflow,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    id: u64,
    customer: Customer,
    lines: Vec<Line>,
    status: OrderStatus,
    notes: BTreeMap<String, Option<Vec<(u32, String)>>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Customer {
    name: String,
    email: Option<String>,
    address: Address,
    tier: Tier,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Address {
    street: String,
    city: String,
    zip: String,
    country: [u8; 2],
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Tier {
    Free,
    Paid { since: u64, seats: u32 },
    Enterprise(Box<Customer>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Line {
    sku: String,
    quantity: u32,
    price: Money,
    discount: Option<Discount>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Money {
    cents: i64,
    currency: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Discount {
    Percent(u8),
    Amount(Money),
    Code { code: String, uses: u32 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum OrderStatus {
    New,
    Paid(Money),
    Shipped {
        carrier: String,
        tracking: Vec<String>,
    },
    Cancelled(Option<String>),
    Refunded {
        amount: Money,
        reason: String,
    },
}

fn order() -> Order {
    Order {
        id: 7,
        customer: Customer {
            name: "Ada".into(),
            email: Some("ada@example.com".into()),
            address: Address {
                street: "1 Loop Road".into(),
                city: "Turing".into(),
                zip: "01010".into(),
                country: *b"GB",
            },
            tier: Tier::Paid {
                since: 2020,
                seats: 3,
            },
        },
        lines: vec![Line {
            sku: "lamp".into(),
            quantity: 2,
            price: Money {
                cents: 4250,
                currency: "EUR".into(),
            },
            discount: Some(Discount::Percent(10)),
        }],
        status: OrderStatus::New,
        notes: BTreeMap::new(),
    }
}

/// 50 durable points (40 steps, 10 sleeps); `order` and `total` are saved at every one.
#[durable]
async fn fifty(ctx: Ctx, order: Order) -> (Order, u64) {
    let mut total = 0u64;
    let s0 = ctx.step_infallible("s0", || async { 0u64 }).await;
    total += s0;
    let s1 = ctx.step_infallible("s1", || async { 1u64 }).await;
    total += s1;
    let s2 = ctx.step_infallible("s2", || async { 2u64 }).await;
    total += s2;
    let s3 = ctx.step_infallible("s3", || async { 3u64 }).await;
    total += s3;
    ctx.sleep(Duration::from_secs(5)).await.unwrap();
    let s5 = ctx.step_infallible("s5", || async { 5u64 }).await;
    total += s5;
    let s6 = ctx.step_infallible("s6", || async { 6u64 }).await;
    total += s6;
    let s7 = ctx.step_infallible("s7", || async { 7u64 }).await;
    total += s7;
    let s8 = ctx.step_infallible("s8", || async { 8u64 }).await;
    total += s8;
    ctx.sleep(Duration::from_secs(10)).await.unwrap();
    let s10 = ctx.step_infallible("s10", || async { 10u64 }).await;
    total += s10;
    let s11 = ctx.step_infallible("s11", || async { 11u64 }).await;
    total += s11;
    let s12 = ctx.step_infallible("s12", || async { 12u64 }).await;
    total += s12;
    let s13 = ctx.step_infallible("s13", || async { 13u64 }).await;
    total += s13;
    ctx.sleep(Duration::from_secs(15)).await.unwrap();
    let s15 = ctx.step_infallible("s15", || async { 15u64 }).await;
    total += s15;
    let s16 = ctx.step_infallible("s16", || async { 16u64 }).await;
    total += s16;
    let s17 = ctx.step_infallible("s17", || async { 17u64 }).await;
    total += s17;
    let s18 = ctx.step_infallible("s18", || async { 18u64 }).await;
    total += s18;
    ctx.sleep(Duration::from_secs(20)).await.unwrap();
    let s20 = ctx.step_infallible("s20", || async { 20u64 }).await;
    total += s20;
    let s21 = ctx.step_infallible("s21", || async { 21u64 }).await;
    total += s21;
    let s22 = ctx.step_infallible("s22", || async { 22u64 }).await;
    total += s22;
    let s23 = ctx.step_infallible("s23", || async { 23u64 }).await;
    total += s23;
    ctx.sleep(Duration::from_secs(25)).await.unwrap();
    let s25 = ctx.step_infallible("s25", || async { 25u64 }).await;
    total += s25;
    let s26 = ctx.step_infallible("s26", || async { 26u64 }).await;
    total += s26;
    let s27 = ctx.step_infallible("s27", || async { 27u64 }).await;
    total += s27;
    let s28 = ctx.step_infallible("s28", || async { 28u64 }).await;
    total += s28;
    ctx.sleep(Duration::from_secs(30)).await.unwrap();
    let s30 = ctx.step_infallible("s30", || async { 30u64 }).await;
    total += s30;
    let s31 = ctx.step_infallible("s31", || async { 31u64 }).await;
    total += s31;
    let s32 = ctx.step_infallible("s32", || async { 32u64 }).await;
    total += s32;
    let s33 = ctx.step_infallible("s33", || async { 33u64 }).await;
    total += s33;
    ctx.sleep(Duration::from_secs(35)).await.unwrap();
    let s35 = ctx.step_infallible("s35", || async { 35u64 }).await;
    total += s35;
    let s36 = ctx.step_infallible("s36", || async { 36u64 }).await;
    total += s36;
    let s37 = ctx.step_infallible("s37", || async { 37u64 }).await;
    total += s37;
    let s38 = ctx.step_infallible("s38", || async { 38u64 }).await;
    total += s38;
    ctx.sleep(Duration::from_secs(40)).await.unwrap();
    let s40 = ctx.step_infallible("s40", || async { 40u64 }).await;
    total += s40;
    let s41 = ctx.step_infallible("s41", || async { 41u64 }).await;
    total += s41;
    let s42 = ctx.step_infallible("s42", || async { 42u64 }).await;
    total += s42;
    let s43 = ctx.step_infallible("s43", || async { 43u64 }).await;
    total += s43;
    ctx.sleep(Duration::from_secs(45)).await.unwrap();
    let s45 = ctx.step_infallible("s45", || async { 45u64 }).await;
    total += s45;
    let s46 = ctx.step_infallible("s46", || async { 46u64 }).await;
    total += s46;
    let s47 = ctx.step_infallible("s47", || async { 47u64 }).await;
    total += s47;
    let s48 = ctx.step_infallible("s48", || async { 48u64 }).await;
    total += s48;
    ctx.sleep(Duration::from_secs(50)).await.unwrap();
    (order, total)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    assert_eq!(<fifty::Workflow as Workflow>::POINTS.len(), 50);
    let rounds = 200;
    let mut layout = Vec::with_capacity(rounds);
    let mut register = Vec::with_capacity(rounds);
    let mut fingerprint = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        let traced = Layout::of::<fifty::Workflow>();
        fingerprint = traced.fingerprint();
        layout.push(start.elapsed());
        let builder = EngineBuilder::new(MemoryStore::new());
        let start = Instant::now();
        let builder = builder.register(fifty);
        register.push(start.elapsed());
        drop(builder);
    }
    let worst = layout.iter().max().copied().unwrap_or_default();
    println!("layout of a 50-point workflow with nested types ({rounds} rounds):");
    println!(
        "  Layout::of + fingerprint: median {:.3} ms, worst {:.3} ms (fingerprint {fingerprint:016x})",
        ms(median(layout)),
        ms(worst),
    );
    println!(
        "  EngineBuilder::register:  median {:.3} ms",
        ms(median(register))
    );

    // What a stored execution carries: run one to its first sleep and read its frame.
    let store = std::sync::Arc::new(MemoryStore::new());
    let engine = EngineBuilder::with_store(store.clone())
        .register(fifty)
        .clock(TestClock::new(Timestamp::from_millis(0)))
        .open()
        .await
        .unwrap();
    engine.start(fifty, "one", order()).await.unwrap();
    let record = engine.wait_until("one", Until::suspended()).await.unwrap();
    assert_eq!(record.status, Status::Suspended);
    let frame = record.position.expect("a frame").frame;
    let stored = FrameReader::new(&frame)
        .unwrap()
        .layout()
        .expect("the frame names its layout");
    assert_eq!(stored, fingerprint);
    let description = store.layout(stored).await.unwrap().expect("kept at open");
    println!("storage:");
    println!(
        "  added per stored execution: {} bytes (the layout fingerprint in the frame header; this frame is {} bytes)",
        std::mem::size_of_val(&stored),
        frame.len()
    );
    println!(
        "  kept once per layout: a description of {} bytes (JSON)",
        description.len()
    );
    engine.shutdown().await;
}
