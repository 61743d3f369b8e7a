//! A real full disk: the sled store in a 1 MiB tmpfs, filled by running executions, then
//! grown to 30 MiB while the process runs (see `tests/bin/disk_worker.rs`, which makes
//! the checks). The filesystem is mounted in a private mount namespace
//! (`unshare --user --map-root-user --mount`), which needs no root on most kernels; where
//! it cannot be created the test prints one line and passes.

use std::process::Command;

/// The exit status of the shell when the filesystem cannot be created.
const NO_FILESYSTEM: i32 = 77;

/// How to enter a private mount namespace: as any user where user namespaces are
/// allowed, else as root (a container may refuse user namespaces to root too).
const UNSHARE: [&[&str]; 2] = [&["--user", "--map-root-user", "--mount"], &["--mount"]];

#[test]
fn a_full_disk_is_reported_and_healed_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("durable-diskfull-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs \"$1\" 2>&1 || exit {NO_FILESYSTEM}; exec \"$2\" \"$1\""
    );
    let mut refusals = Vec::new();
    let mut ran = None;
    for args in UNSHARE {
        let output = Command::new("unshare")
            .args(args)
            .args(["sh", "-c", &script, "sh"])
            .arg(&dir)
            .arg(env!("CARGO_BIN_EXE_disk-worker"))
            .output();
        match output {
            Ok(output) => {
                let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
                // `unshare` fails with status 1 where it may not create the namespace.
                let refused = output.status.code() == Some(NO_FILESYSTEM)
                    || (output.status.code() == Some(1) && !stdout.contains("opened"));
                if refused {
                    let why = stdout.lines().chain(stderr.lines()).last().unwrap_or("");
                    refusals.push(format!("unshare {}: {why}", args.join(" ")));
                    continue;
                }
                ran = Some((output.status, stdout, stderr));
                break;
            }
            Err(e) => refusals.push(format!("cannot run unshare: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let Some((status, stdout, stderr)) = ran else {
        println!(
            "skipped: cannot create a small filesystem ({})",
            refusals.join("; ")
        );
        return;
    };
    assert!(
        status.success(),
        "the worker failed ({status}):\n{stdout}\n{stderr}"
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
