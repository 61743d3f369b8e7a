//! Expansion snapshots: each `tests/snapshots/<name>.rs` (one `#[durable] async fn`) is
//! expanded and formatted, and must equal `tests/snapshots/<name>.expanded.rs`, so a
//! change to the generated state machine shows up as a diff in review.
//!
//! `DURABLE_SNAPSHOTS=overwrite cargo test -p durable-macros snapshots` rewrites them;
//! read the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::tests::expansion_of_source;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// The workflow sources, by file name.
fn sources() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir())
        .expect("tests/snapshots exists")
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".rs") && !name.ends_with(".expanded.rs")
        })
        .collect();
    paths.sort();
    paths
}

/// The first line where `expected` and `actual` differ, with a little context.
fn first_difference(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let at = (0..e.len().max(a.len()))
        .find(|&i| e.get(i) != a.get(i))
        .unwrap_or(0);
    let show = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(at.saturating_sub(3))
            .take(7)
            .map(|(i, l)| format!("{:>5} | {l}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "first difference at line {}\n--- snapshot\n{}\n--- expansion\n{}",
        at + 1,
        show(&e),
        show(&a)
    )
}

#[test]
fn expansions_match_their_snapshots() {
    let overwrite = std::env::var("DURABLE_SNAPSHOTS").is_ok_and(|v| v == "overwrite");
    let sources = sources();
    assert!(sources.len() >= 3, "the snapshot workflows are missing");
    let mut stale = Vec::new();
    for source in sources {
        let src = fs::read_to_string(&source).expect("a readable snapshot source");
        let actual = expansion_of_source(&src);
        let snapshot = source.with_extension("expanded.rs");
        let expected = fs::read_to_string(&snapshot).unwrap_or_default();
        if actual == expected {
            continue;
        }
        if overwrite {
            fs::write(&snapshot, &actual).expect("a writable snapshot");
            continue;
        }
        let shown = snapshot
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(&snapshot);
        stale.push(format!(
            "{}: {}",
            shown.display(),
            first_difference(&expected, &actual)
        ));
    }
    assert!(
        stale.is_empty(),
        "the expansion changed; if that is intended, run \
         `DURABLE_SNAPSHOTS=overwrite cargo test -p durable-macros snapshots` and review \
         the diff\n\n{}",
        stale.join("\n\n")
    );
}
