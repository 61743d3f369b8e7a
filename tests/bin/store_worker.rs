//! A process the sled store's kill tests SIGKILL: opens the store, commits once, closes
//! it, and again, until it is killed.
//!
//! Usage: `store-worker <data-dir>`. Prints one line as each phase begins or ends, with
//! no buffering, so that the parent knows where a kill landed by the last line it got:
//! `opening`, `opened`, `acked <seq>` (a commit of execution `counter` to `seq` was
//! acknowledged), `closing`, `closed`. An open that fails prints `open-failed <error>`
//! and exits with status 3.

use std::io::Write;

use durable_core::{Commit, ExecutionRecord, HistoryEntry, Store, Timestamp};
use durable_store_sled::SledStore;

/// The one execution the worker advances.
const ID: &str = "counter";

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout is writable");
    out.flush().expect("stdout is writable");
}

fn record(seq: u64) -> ExecutionRecord {
    ExecutionRecord {
        seq,
        message: Some(format!("seq {seq}")),
        history_next: seq,
        updated_at: Timestamp::from_millis(seq),
        ..ExecutionRecord::new(ID, "count", 1, Timestamp::from_millis(1))
    }
}

/// Advances the counter by one commit (creating it first) and returns its new `seq`.
async fn advance(store: &SledStore) -> u64 {
    let seq = match store.load(ID).await.expect("the counter reads") {
        Some(record) => record.seq,
        None => {
            store
                .create(record(0), b"input".to_vec())
                .await
                .expect("the counter is created");
            0
        }
    };
    let entry = HistoryEntry {
        number: seq,
        at: Timestamp::from_millis(seq),
        point: None,
        event: durable_core::Event::Created,
    };
    store
        .commit(Commit {
            history: vec![entry],
            // A bounded history, so the store stays small however long the test runs.
            prune_history_below: seq.saturating_sub(16),
            ..Commit::new(record(seq + 1), seq)
        })
        .await
        .expect("the commit lands");
    seq + 1
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: store-worker <data-dir>");
        std::process::exit(2);
    };
    loop {
        say("opening");
        let store = match SledStore::open(&dir) {
            Ok(store) => store,
            Err(e) => {
                say(&format!("open-failed {e}"));
                std::process::exit(3);
            }
        };
        say("opened");
        let seq = advance(&store).await;
        say(&format!("acked {seq}"));
        say("closing");
        store.close().await.expect("the store closes");
        say("closed");
    }
}
