//! Crash tests with real process kills: the `crash-worker` binary runs a multi-step
//! workflow on a sled store and SIGKILLs itself at a chosen label (inside every step
//! body and right after every step's commit); a second run on the same directory must
//! finish with the crash-free result, with side effects exactly-once for completed
//! steps, at-least-once for an interrupted at-least-once attempt, at most once per
//! attempt for the at-most-once step, and no code before the resume point run again.
//! Every attempt of a step hands out the same idempotency key, also after the kill, and
//! the request id recorded with `ctx.uuid()` is the one of the first run.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    result: Option<String>,
    killed: bool,
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("durable-crash-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_worker(dir: &Path, crash_at: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crash-worker"));
    cmd.arg(dir.join("data")).arg(dir.join("trace"));
    match crash_at {
        Some(label) => cmd.env("CRASH_AT", label),
        None => cmd.env_remove("CRASH_AT"),
    };
    let out = cmd.output().expect("worker runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(str::to_owned);
    if result.is_none() && out.status.signal() != Some(libc::SIGKILL) {
        panic!(
            "worker neither finished nor was killed: {:?}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Run {
        result,
        killed: out.status.signal() == Some(libc::SIGKILL),
    }
}

fn trace(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("trace"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The values traced as `<what> <step> <value>`, by step.
fn values<'a>(lines: &'a [String], what: &str) -> HashMap<&'a str, Vec<&'a str>> {
    let mut values: HashMap<&str, Vec<&str>> = HashMap::new();
    for line in lines {
        let mut words = line.split(' ');
        if words.next() == Some(what) {
            if let (Some(step), Some(value)) = (words.next(), words.next()) {
                values.entry(step).or_default().push(value);
            }
        }
    }
    values
}

fn counts(lines: &[String]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for line in lines {
        *counts.entry(line.as_str()).or_default() += 1;
    }
    counts
}

/// Where the last commit before trace line `crash` happened: just before an
/// `point after-*` line (a step's outcome), or just before the at-most-once step's
/// body (its "started" marker).
fn last_boundary(clean: &[String], crash: usize) -> usize {
    (0..=crash)
        .rev()
        .find(|&i| clean[i].starts_with("point after-") || clean[i] == "effect b#1")
        .unwrap_or(0)
}

#[test]
fn sigkill_at_every_label_recovers_the_crash_free_result() {
    let clean_dir = scratch("clean");
    let clean = run_worker(&clean_dir, None);
    let expected = clean.result.expect("crash-free run finishes");
    let clean_trace = trace(&clean_dir);
    let labels: Vec<(usize, String)> = clean_trace
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.strip_prefix("point ").map(|p| (i, p.to_owned())))
        .collect();
    assert!(labels.len() >= 12, "labels: {labels:?}");
    std::fs::remove_dir_all(&clean_dir).unwrap();

    for (crash_index, label) in &labels {
        let dir = scratch(label);
        let first = run_worker(&dir, Some(label));
        assert!(first.killed, "{label}: the worker was not killed");
        let second = run_worker(&dir, None);
        assert_eq!(
            second.result.as_deref(),
            Some(expected.as_str()),
            "{label}: result after recovery"
        );
        let lines = trace(&dir);
        let seen = counts(&lines);
        let count = |line: &str| seen.get(line).copied().unwrap_or(0);

        // Steps: exactly once when completed, twice only for the interrupted
        // at-least-once attempt; at-most-once attempts never run twice.
        for step in ["a", "loop-0", "loop-1", "loop-2", "last"] {
            let expected = if *label == format!("in-{step}") { 2 } else { 1 };
            assert_eq!(
                count(&format!("effect {step}#1")),
                expected,
                "{label}: {step}"
            );
            assert_eq!(count(&format!("effect {step}#2")), 0, "{label}: {step}");
        }
        assert_eq!(count("effect b#1"), 1, "{label}: at-most-once attempt 1");
        let second_attempt = usize::from(label == "in-b");
        assert_eq!(count("effect b#2"), second_attempt, "{label}: b#2");

        // One key per step, whichever attempt and run sent it; distinct between steps.
        let keys = values(&lines, "key");
        assert_eq!(keys.len(), 5, "{label}: keys {keys:?}");
        let mut distinct: Vec<&str> = Vec::new();
        for (step, sent) in &keys {
            assert!(
                sent.iter().all(|k| k == &sent[0]),
                "{label}: {step} sent {sent:?}"
            );
            distinct.push(sent[0]);
        }
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 5, "{label}: a key is shared: {keys:?}");
        // The request id was made once, before any step: every call carries it.
        let requests: Vec<&str> = values(&lines, "request").into_values().flatten().collect();
        assert!(
            requests.iter().all(|r| *r == requests[0]) && requests[0].len() == 36,
            "{label}: request ids {requests:?}"
        );

        // Code between steps: once before the resume point, twice between it and the
        // crash (the interrupted transition re-runs), once after.
        let boundary = last_boundary(&clean_trace, *crash_index);
        for (i, line) in clean_trace.iter().enumerate() {
            if !line.starts_with("mark ") {
                continue;
            }
            let expected = if (boundary..*crash_index).contains(&i) {
                2
            } else {
                1
            };
            assert_eq!(count(line), expected, "{label}: {line}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_second_run_finds_the_finished_execution() {
    let dir = scratch("twice");
    let first = run_worker(&dir, None);
    let effects_after_first = trace(&dir).len();
    let second = run_worker(&dir, None);
    assert_eq!(first.result, second.result);
    assert!(first.result.is_some());
    assert_eq!(
        trace(&dir).len(),
        effects_after_first,
        "the second run executed workflow code"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
