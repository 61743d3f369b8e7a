//! A 1,000-item map with one step per item survives SIGKILLs at random instants (issue 13):
//! the `batch-worker` binary runs the batch on a sled store and is killed again and again
//! until a run finishes it. Checked after every kill and at the end:
//! - an item's place in the completion order, once committed, never changes;
//! - a step whose outcome is committed never runs again (steps run at least once: an item
//!   in flight at a kill may run again, one already recorded may not);
//! - the final batch result is the crash-free one: every item's status and value, every
//!   item settled exactly once in the completion order, and that order is the one the
//!   store had committed.
//!
//! `DURABLE_BATCH_KILLS` sets how many runs are killed (default 20), `DURABLE_BATCH_SEED`
//! the seed of the kills' instants (default 13).

// Shared by the kill tests; this one reads its worker's output as it comes.
#[allow(dead_code)]
mod worker_runs;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use worker_runs::{describe, TempDir};

const ITEMS: usize = 1_000;

fn worker(dir: &Path, run: usize, mode: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_batch-worker"));
    command
        .arg(dir.join("data"))
        .arg(mode)
        .env("BATCH_WORKER_RUN", run.to_string());
    command
}

/// The committed completion order, item by item, as the store holds it.
fn committed_orders(dir: &Path) -> BTreeMap<usize, u64> {
    let output = worker(dir, 0, "orders").output().expect("worker runs");
    assert!(output.status.success(), "orders: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("ORDER "))
        .map(|l| {
            let (index, order) = l.split_once(' ').expect("two numbers");
            (index.parse().unwrap(), order.parse().unwrap())
        })
        .collect()
}

/// Every step run, as `(item, run)`.
fn effects(dir: &Path) -> Vec<(usize, usize)> {
    let path = dir.join("data.effects");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        // A kill may cut the last line short.
        .filter_map(|l| {
            let (item, run) = l.split_once(' ')?;
            Some((item.parse().ok()?, run.parse().ok()?))
        })
        .collect()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn a_thousand_item_map_survives_sigkills_at_random_instants() {
    let kills = env_or("DURABLE_BATCH_KILLS", 20) as usize;
    let mut rng = fastrand::Rng::with_seed(env_or("DURABLE_BATCH_SEED", 13));
    let dir = TempDir::new("batch-kills", "map");
    // After run r: the orders committed, and the run that saw each first.
    let mut orders: BTreeMap<usize, u64> = BTreeMap::new();
    let mut recorded_by: BTreeMap<usize, usize> = BTreeMap::new();
    let mut landed = 0;
    let mut result = None;
    for run in 1..=kills + 1 {
        let mut child = worker(&dir.0, run, "run")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("worker starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).expect("reads the worker");
        assert_eq!(first.trim(), "STARTED", "run {run}");
        if run <= kills {
            // The kill's instant, at random while the batch runs (not a synchronisation).
            let started = Instant::now();
            let aim = Duration::from_micros(rng.u64(0..25_000));
            while started.elapsed() < aim {
                std::thread::yield_now();
            }
            child.kill().expect("the worker can be killed");
        }
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).expect("reads the worker");
        let status = child.wait().expect("worker ends");
        if let Some(json) = rest.lines().find_map(|l| l.strip_prefix("RESULT ")) {
            result = Some(json.to_owned());
        } else {
            assert!(
                run <= kills,
                "the last run ended without a result: {status:?}"
            );
            landed += 1;
        }
        // Committed orders never change; each item is recorded once.
        let now = committed_orders(&dir.0);
        for (item, order) in &orders {
            assert_eq!(
                now.get(item),
                Some(order),
                "run {run}: item {item}'s order changed"
            );
        }
        for item in now.keys() {
            recorded_by.entry(*item).or_insert(run);
        }
        orders = now;
        if result.is_some() {
            break;
        }
    }
    let result = result.expect("a run finished the batch");
    println!("{landed} kills landed while the batch ran");
    assert!(landed >= 1, "no kill landed inside the batch");

    // The crash-free result.
    let items: Vec<(usize, String, Option<u64>, Option<u64>)> =
        serde_json::from_str(&result).expect("result parses");
    assert_eq!(items.len(), ITEMS);
    let mut seen_orders: Vec<u64> = Vec::new();
    for (i, (index, status, value, order)) in items.iter().enumerate() {
        assert_eq!(*index, i);
        if i % 97 == 5 {
            assert_eq!(status, "failed", "item {i}");
            assert_eq!(*value, None);
        } else {
            assert_eq!(status, "succeeded", "item {i}");
            assert_eq!(*value, Some(i as u64 * 3 + 1), "item {i}");
        }
        let order = order.expect("every item settled");
        assert_eq!(
            orders.get(&i),
            Some(&order),
            "item {i}: the result's order is the committed one"
        );
        seen_orders.push(order);
    }
    seen_orders.sort_unstable();
    assert_eq!(seen_orders, (0..ITEMS as u64).collect::<Vec<_>>());

    // Step semantics: every item ran; none ran in a run after the one that recorded it.
    let runs = effects(&dir.0);
    for item in 0..ITEMS {
        assert!(
            runs.iter().any(|(i, _)| *i == item),
            "item {item} never ran"
        );
    }
    for (item, run) in &runs {
        let recorded = *recorded_by.get(item).unwrap_or_else(|| {
            panic!("an effect of item {item} (run {run}), which the batch never recorded")
        });
        assert!(
            run <= &recorded,
            "item {item} ran in run {run}, after its outcome was recorded by run {recorded}"
        );
    }
    let extra = runs.len() - ITEMS;
    println!("{extra} step runs repeated after kills (at least once)");
}
