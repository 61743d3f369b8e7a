//! Running a test worker binary (`tests/bin`) to completion or to its SIGKILL, and
//! reading what it printed: shared by the kill tests that drive a worker phase by phase.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory named after the test (`test`), this process and `name`.
    pub fn new(test: &str, name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("durable-{test}-{}-{name}", std::process::id()));
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

/// Runs `binary` on the data directory under `dir` with `args`, to its end.
pub fn run(binary: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(binary)
        .arg(dir.join("data"))
        .args(args)
        .output()
        .expect("worker runs")
}

/// The rest of the first line of the worker's output that starts with `prefix`.
pub fn line<'a>(output: &'a Output, prefix: &str) -> Option<&'a str> {
    std::str::from_utf8(&output.stdout)
        .expect("utf-8 output")
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
}

/// How the worker ended and all it printed, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
