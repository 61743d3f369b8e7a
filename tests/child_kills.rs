//! A child's result reaches its parent across a SIGKILL right after the child's last
//! commit (issue 13): the `child-worker` binary completes the callback a child waits for
//! and kills itself as soon as it sees the child's completion in the store. The child's last
//! commit settles the parent's operation and wakes the parent in the same atomic write, so
//! the store never holds a finished child beside a parent still suspended on it, and a
//! later process finishes the parent.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("durable-child-kills-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn worker(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_child-worker"))
        .arg(dir.join("data"))
        .args(args)
        .output()
        .expect("worker runs")
}

fn line<'a>(output: &'a Output, prefix: &str) -> Option<&'a str> {
    std::str::from_utf8(&output.stdout)
        .expect("utf-8 output")
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
}

fn describe(output: &Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_childs_result_reaches_its_parent_across_a_sigkill() {
    const ROUNDS: usize = 3;
    for round in 0..ROUNDS {
        let dir = TempDir::new(&round.to_string());
        let started = worker(&dir.0, &["start"]);
        assert!(started.status.success(), "start: {}", describe(&started));
        let id = line(&started, "ID ")
            .expect("the worker prints the id")
            .to_owned();

        let completed = worker(&dir.0, &["complete", &id]);
        assert_eq!(
            completed.status.signal(),
            Some(libc::SIGKILL),
            "complete: {}",
            describe(&completed)
        );
        assert!(
            line(&completed, "CHILD DONE").is_some(),
            "killed before the child finished: {}",
            describe(&completed)
        );

        // The worker saw the child's last commit in the store, but a read can see a
        // commit whose flush has not finished: the kill may have undone it. What must
        // hold either way is that a completed child never stands beside a parent still
        // suspended on it.
        let checked = worker(&dir.0, &["check"]);
        assert!(checked.status.success(), "check: {}", describe(&checked));
        let child = line(&checked, "CHILD ").expect("the worker prints the child");
        let parent = line(&checked, "PARENT ").expect("the worker prints the parent");
        if child == "completed" {
            assert!(
                parent == "running" || parent == "completed",
                "round {round}: the child finished but the parent is {parent}"
            );
        } else {
            assert_ne!(parent, "completed", "round {round}: the child is {child}");
        }

        let finished = worker(&dir.0, &["result"]);
        assert!(finished.status.success(), "result: {}", describe(&finished));
        assert_eq!(
            line(&finished, "RESULT "),
            Some(r#"{"Ok":"250: approved"}"#),
            "round {round}: {}",
            describe(&finished)
        );
    }
}
