//! What the benches read off the process and where they keep their stores: memory figures
//! from `/proc/self/status`, and scratch directories. Shared by the bench binaries
//! (`mod measure;`); each uses what it needs.
#![allow(dead_code)]

use std::path::PathBuf;

/// A field of `/proc/self/status` (`VmRSS`, `VmHWM`), in kB; 0 where there is none.
pub fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Starts a new peak: the kernel sets `VmHWM` to the current RSS.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// kB as MB.
pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// An empty scratch directory path for `name`, unique to this process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("durable-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
