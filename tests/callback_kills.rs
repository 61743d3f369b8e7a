//! A completion whose `Ok` has returned survives a SIGKILL of the process right after it
//! (issue 12): the `callback-worker` binary completes a callback on a sled store and kills
//! itself as soon as `complete_callback` returns; a later process finds the completion and
//! the workflow finishes with it.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "durable-callback-kills-{}-{name}",
            std::process::id()
        ));
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
    Command::new(env!("CARGO_BIN_EXE_callback-worker"))
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
fn a_completion_survives_a_sigkill_right_after_its_ok() {
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
