//! A process the child crash test runs and kills: one phase of a parent workflow whose
//! child waits for a callback, on a sled store, per run.
//!
//! Usage: `child-worker <data-dir> start|complete <id>|check|result`.
//! - `start` starts the parent, waits until it is suspended on its child and the child
//!   on its callback, prints `ID <callback id>` and shuts down cleanly;
//! - `complete <id>` completes the child's callback, waits until it reads the child's
//!   last commit in the store (reads see only durable writes), prints `CHILD DONE` and SIGKILLs itself at once: whether the
//!   engine had run the woken parent by then is up to the scheduler;
//! - `check` opens the store without an engine and prints `PARENT <status>` and
//!   `CHILD <status>`;
//! - `result` waits for the parent's result and prints `RESULT <json>`.

use std::io::Write;

use durable_core::{durable, CallbackError, ChildError, Ctx, Engine, ListFilter, Status, Store};
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

#[durable]
async fn expense(ctx: Ctx, amount: u64) -> Result<String, ChildError> {
    let decided = ctx.call(approval, amount).await?;
    Ok(decided.unwrap_or_else(|e| format!("no decision: {e}")))
}

const PARENT: &str = "expense-7";

async fn child_of(store: &dyn Store) -> Option<durable_core::ExecutionRecord> {
    let mut children = store
        .list(&ListFilter::all().parent(PARENT))
        .await
        .expect("store lists");
    assert!(children.len() <= 1, "more than one child: {children:?}");
    children.pop()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, mode) = match &args[..] {
        [dir, mode, ..] => (dir, mode.as_str()),
        _ => {
            eprintln!("usage: child-worker <data-dir> start|complete <id>|check|result");
            std::process::exit(2);
        }
    };
    let store = SledStore::open(dir).expect("store opens");
    if mode == "check" {
        let parent = store.load(PARENT).await.expect("reads").expect("parent");
        let child = child_of(&store).await.expect("child");
        println!("PARENT {}", parent.status.as_str());
        println!("CHILD {}", child.status.as_str());
        return;
    }
    let engine = Engine::builder(store)
        .register(expense)
        .open()
        .await
        .expect("engine opens");
    match (mode, args.get(2)) {
        ("start", _) => {
            engine
                .start(expense, PARENT, 250)
                .await
                .expect("execution starts");
            let id = loop {
                let parent = engine.execution(PARENT).await.expect("reads");
                let child = engine
                    .executions(&ListFilter::all().parent(PARENT))
                    .await
                    .expect("lists");
                if let (Some(parent), [child]) = (parent, &child[..]) {
                    if parent.status == Status::Suspended && child.status == Status::Suspended {
                        let description = engine.describe(&child.id).await.expect("describes");
                        break description.callbacks[0].id.clone();
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
            loop {
                let children = engine
                    .executions(&ListFilter::all().parent(PARENT))
                    .await
                    .expect("lists");
                if children.iter().any(|c| c.status == Status::Completed) {
                    break;
                }
                tokio::task::yield_now().await;
            }
            // The store shows a reader only writes that are durable, so the child's
            // completion seen here survives the kill.
            let mut stdout = std::io::stdout();
            writeln!(stdout, "CHILD DONE").expect("stdout");
            stdout.flush().expect("stdout");
            // SAFETY: plain libc calls with no memory arguments.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        ("result", _) => {
            let result = engine
                .handle(expense, PARENT)
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
