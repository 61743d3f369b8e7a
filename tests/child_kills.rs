//! A child's result reaches its parent across a SIGKILL right after the child's last
//! commit (issue 13): the `child-worker` binary completes the callback a child waits for
//! and kills itself as soon as the child's completion is in the store. The child's last
//! commit settles the parent's operation and wakes the parent in the same atomic write, so
//! the store never holds a finished child beside a parent still suspended on it, and a
//! later process finishes the parent.

mod worker_runs;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;

use worker_runs::{describe, line, TempDir};

fn worker(dir: &Path, args: &[&str]) -> Output {
    worker_runs::run(env!("CARGO_BIN_EXE_child-worker"), dir, args)
}

#[test]
fn a_childs_result_reaches_its_parent_across_a_sigkill() {
    const ROUNDS: usize = 3;
    for round in 0..ROUNDS {
        let dir = TempDir::new("child-kills", &round.to_string());
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

        let checked = worker(&dir.0, &["check"]);
        assert!(checked.status.success(), "check: {}", describe(&checked));
        assert_eq!(line(&checked, "CHILD "), Some("completed"));
        let parent = line(&checked, "PARENT ").expect("the worker prints the parent");
        assert!(
            parent == "running" || parent == "completed",
            "round {round}: the child finished but the parent is {parent}"
        );

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
