//! A process the callback crash test runs and kills: one phase of an approval workflow
//! on a sled store per run.
//!
//! Usage: `callback-worker <data-dir> start|complete <id>|result`.
//! - `start` starts the workflow, waits until it is suspended on its callback, prints
//!   `ID <callback id>` and shuts down cleanly;
//! - `complete <id>` completes the callback and, as soon as the call returns `Ok`, prints
//!   `COMPLETED` and SIGKILLs itself: nothing after the `Ok` (no shutdown, no flush of
//!   its own) runs;
//! - `result` waits for the workflow's result and prints `RESULT <json>`, or exits with
//!   an error at once if the execution is still suspended on its callback (the
//!   completion was lost).

use std::io::Write;

use durable_core::{durable, CallbackError, Ctx, Engine, Status};
use durable_store_sled::SledStore;

#[durable]
async fn approval(ctx: Ctx, amount: u64) -> Result<String, CallbackError> {
    let cb = ctx.create_callback::<bool>("approval").await?;
    let approved = ctx.wait_callback(&cb).await?;
    Ok(format!(
        "{amount}: {}",
        if approved { "approved" } else { "rejected" }
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, mode) = match &args[..] {
        [dir, mode, ..] => (dir, mode.as_str()),
        _ => {
            eprintln!("usage: callback-worker <data-dir> start|complete <id>|result");
            std::process::exit(2);
        }
    };
    let store = SledStore::open(dir).expect("store opens");
    let engine = Engine::builder(store)
        .register(approval)
        .open()
        .await
        .expect("engine opens");
    match (mode, args.get(2)) {
        ("start", _) => {
            engine
                .start(approval, "expense", 250)
                .await
                .expect("execution starts");
            let id = loop {
                let description = engine.describe("expense").await.expect("describes");
                if description.status == Status::Suspended {
                    if let Some(callback) = description.callbacks.first() {
                        break callback.id.clone();
                    }
                }
                tokio::task::yield_now().await;
            };
            println!("ID {id}");
            engine.shutdown().await;
        }
        ("complete", Some(id)) => {
            engine
                .complete_callback(id, &true)
                .await
                .expect("completion accepted");
            let mut stdout = std::io::stdout();
            writeln!(stdout, "COMPLETED").expect("stdout");
            stdout.flush().expect("stdout");
            // SAFETY: plain libc calls with no memory arguments.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        ("result", _) => {
            let record = engine
                .execution("expense")
                .await
                .expect("store reads")
                .expect("the execution exists");
            if record.status == Status::Suspended {
                // Still waiting on its callback: the completion was lost. Waiting for the
                // result would hang.
                println!("LOST the execution is still suspended");
                std::process::exit(1);
            }
            let result = engine
                .handle(approval, "expense")
                .result()
                .await
                .expect("execution finishes");
            println!(
                "RESULT {}",
                serde_json::to_string(&result).expect("result serializes")
            );
            engine.shutdown().await;
        }
        _ => {
            eprintln!("unknown mode {mode:?}");
            std::process::exit(2);
        }
    }
}
