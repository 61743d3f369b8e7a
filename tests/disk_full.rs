//! A real full disk: the sled store in a 1 MiB tmpfs, filled by running executions, then
//! grown to 30 MiB while the process runs (see `tests/bin/disk_worker.rs`, which makes
//! the checks). The filesystem is mounted in a private mount namespace
//! (`unshare --user --map-root-user --mount`), which needs no root on most kernels; where
//! it cannot be created the test prints one line and passes.

use std::process::Command;

/// The exit status of the shell when the filesystem cannot be created.
const NO_FILESYSTEM: i32 = 77;

#[test]
fn a_full_disk_is_reported_and_healed_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("durable-diskfull-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs \"$1\" 2>&1 || exit {NO_FILESYSTEM}; exec \"$2\" \"$1\""
    );
    let output = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(&dir)
        .arg(env!("CARGO_BIN_EXE_disk-worker"))
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            println!("skipped: cannot run unshare to create a small filesystem: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `unshare` itself fails with status 1 where user namespaces are not allowed.
    let unshare_refused = output.status.code() == Some(1) && !stdout.contains("opened");
    if output.status.code() == Some(NO_FILESYSTEM) || unshare_refused {
        println!(
            "skipped: cannot create a small filesystem: {}",
            stdout
                .trim()
                .lines()
                .chain(stderr.trim().lines())
                .last()
                .unwrap_or("")
        );
        return;
    }
    assert!(
        output.status.success(),
        "the worker failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for phase in [
        "degraded: ",
        "waits for the store",
        "start while full: ",
        "grown",
        "completed ",
        "healthy",
        "closed",
    ] {
        assert!(
            stdout.contains(phase),
            "no {phase:?} in:\n{stdout}\n{stderr}"
        );
    }
}
