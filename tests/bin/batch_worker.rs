//! A process the batch crash test runs and kills: a 1,000-item map with one step per item
//! on a sled store.
//!
//! Usage: `batch-worker <data-dir> run|orders`.
//! - `run <n>` opens the engine (which resumes the batch), starts the batch if it does not
//!   exist (`Engine::start` is idempotent), prints `STARTED`, waits for its result and
//!   prints `RESULT <json>`: one `[index, status, value, completion order]` per item. Each
//!   step appends `<index> <n>` to `<data-dir>.effects` before it returns: the items'
//!   side effects, with the run they happened in;
//! - `orders` opens the store without an engine and prints `ORDER <index> <order>` for
//!   every item whose settlement the store holds.

use std::io::Write;

use durable_core::{
    durable, BatchResult, Completion, Ctx, Engine, Failure, ItemStatus, OperationKind, Store,
};
use durable_store_sled::SledStore;

const ID: &str = "fan-1";
const ITEMS: u64 = 1_000;

/// What the step of item `i` gives: every 97th item (from 5) fails for good.
fn value(i: u64) -> Result<u64, Failure> {
    if i % 97 == 5 {
        Err(Failure::terminal(format!("item {i} is refused")))
    } else {
        Ok(i * 3 + 1)
    }
}

#[durable]
async fn fan(ctx: Ctx, effects: String) -> BatchResult<u64> {
    ctx.map("fan", 0..ITEMS as usize, |i: usize| {
        let effects = effects.clone();
        async move {
            // A little I/O-like waiting, so that many items are in flight at once.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&effects)
                .map_err(Failure::new)?;
            // One `write` of the whole line (O_APPEND): `writeln!` on a `File` makes several,
            // and a kill between them would leave half a line that the next run completes.
            let line = format!("{i} {}\n", current_run());
            file.write_all(line.as_bytes()).map_err(Failure::new)?;
            value(i as u64)
        }
    })
    .max_in_flight(50)
    .completion(Completion::all())
    .await
}

/// The run number this process was given (the workflow's own input stays the same across
/// runs, so that `start` attaches to the existing execution).
fn current_run() -> u64 {
    std::env::var("BATCH_WORKER_RUN")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, mode) = match &args[..] {
        [dir, mode, ..] => (dir.clone(), mode.as_str()),
        _ => {
            eprintln!("usage: batch-worker <data-dir> run|orders");
            std::process::exit(2);
        }
    };
    let store = SledStore::open(&dir).expect("store opens");
    if mode == "orders" {
        let mut after: Option<String> = None;
        loop {
            let page = store
                .operations(ID, after.as_deref(), 500)
                .await
                .expect("reads");
            for op in &page {
                if let OperationKind::Item {
                    index,
                    order: Some(order),
                    ..
                } = op.kind
                {
                    println!("ORDER {index} {order}");
                }
            }
            match page.last() {
                Some(last) if page.len() == 500 => after = Some(last.key.clone()),
                _ => break,
            }
        }
        return;
    }
    let engine = Engine::builder(store)
        .register(fan)
        .open()
        .await
        .expect("engine opens");
    let effects = format!("{dir}.effects");
    let handle = engine
        .start(fan, ID, effects)
        .await
        .expect("execution starts");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "STARTED").expect("stdout");
    stdout.flush().expect("stdout");
    let batch = handle.result().await.expect("execution finishes");
    let summary: Vec<(usize, &str, Option<u64>, Option<u64>)> = batch
        .items()
        .iter()
        .map(|item| {
            let status = match item.status {
                ItemStatus::Succeeded => "succeeded",
                ItemStatus::Failed => "failed",
                ItemStatus::Cancelled => "cancelled",
                _ => "not started",
            };
            (item.index, status, item.value, item.completion_order)
        })
        .collect();
    println!(
        "RESULT {}",
        serde_json::to_string(&summary).expect("result serializes")
    );
    engine.shutdown().await;
}
