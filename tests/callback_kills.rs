//! A completion whose `Ok` has returned survives a SIGKILL of the process right after it
//! (issue 12): the `callback-worker` binary completes a callback on a sled store and kills
//! itself as soon as `complete_callback` returns; a later process finds the completion and
//! the workflow finishes with it.

mod worker_runs;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;

use worker_runs::{describe, line, TempDir};

fn worker(dir: &Path, args: &[&str]) -> Output {
    worker_runs::run(env!("CARGO_BIN_EXE_callback-worker"), dir, args)
}

#[test]
fn a_completion_survives_a_sigkill_right_after_its_ok() {
    const ROUNDS: usize = 3;
    for round in 0..ROUNDS {
        let dir = TempDir::new("callback-kills", &round.to_string());
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
            line(&completed, "COMPLETED").is_some(),
            "killed before the completion returned: {}",
            describe(&completed)
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
