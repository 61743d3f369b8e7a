//! A process the crash tests kill: runs one multi-step workflow on a sled store and
//! SIGKILLs itself at the label named by `CRASH_AT`.
//!
//! Usage: `crash-worker <data-dir> <trace-file>`; prints `RESULT <json>` when the
//! workflow finishes. Every side effect and every stretch of code between steps appends
//! one line to the trace file (`effect <step>#<attempt>`, `mark <segment>`,
//! `point <label>`), which survives the kill because it is written with `O_APPEND`
//! before the process can die. Each step body also traces the idempotency key and the
//! recorded request id it would send (`key <step> <key>`, `request <step> <id>`).

use std::io::Write;
use std::time::Duration;

use durable_core::{durable, Ctx, Engine, RetryPolicy, StepContext, StepError};
use durable_store_sled::SledStore;

fn trace(line: &str) {
    let path = std::env::var("CRASH_TRACE").expect("CRASH_TRACE is set by main");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("trace file opens");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("trace line written");
}

/// A crash label: traced, and the process dies here if `CRASH_AT` names it.
fn point(label: &str) {
    trace(&format!("point {label}"));
    if std::env::var("CRASH_AT").is_ok_and(|at| at == label) {
        // SAFETY: plain libc calls with no memory arguments.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

fn mark(segment: &str) {
    trace(&format!("mark {segment}"));
}

fn effect(step: &str, attempt: u32) {
    trace(&format!("effect {step}#{attempt}"));
}

/// What a body would hand to an external system: its step's idempotency key and the
/// request id recorded at the start of the workflow.
fn call(step: &str, s: &StepContext, request: &str) {
    trace(&format!("key {step} {}", s.idempotency_key()));
    trace(&format!("request {step} {request}"));
}

fn text(e: StepError<String>) -> String {
    format!("{e:?}")
}

#[durable]
async fn pipeline(ctx: Ctx, n: u64) -> Result<u64, String> {
    mark("start");
    let request = ctx.uuid().await;
    point("after-uuid");
    mark("between-uuid-a");
    let a = ctx
        .typed_step("a", |s: StepContext| {
            let request = request.clone();
            async move {
                effect("a", s.attempt());
                call("a", &s, &request);
                point("in-a");
                Ok::<u64, String>(n * 2)
            }
        })
        .await
        .map_err(text)?;
    point("after-a");
    mark("between-a-b");
    let b = ctx
        .typed_step("b", |s: StepContext| {
            let request = request.clone();
            async move {
                effect("b", s.attempt());
                call("b", &s, &request);
                point("in-b");
                Ok::<u64, String>(a + 1)
            }
        })
        .at_most_once()
        .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(3))
        .await
        .map_err(text)?;
    point("after-b");
    mark("between-b-loop");
    let mut total = a + b;
    for i in 0..3u64 {
        let label = format!("loop-{i}");
        total += ctx
            .typed_step(label.clone(), |s: StepContext| {
                let request = request.clone();
                async move {
                    effect(&label, s.attempt());
                    call(&label, &s, &request);
                    point(&format!("in-{label}"));
                    Ok::<u64, String>(i * 10)
                }
            })
            .await
            .map_err(text)?;
        point(&format!("after-loop-{i}"));
        mark(&format!("after-loop-{i}"));
    }
    let last = ctx
        .step_infallible("last", || async move {
            effect("last", 1);
            point("in-last");
            total + 1
        })
        .await;
    point("after-last");
    mark("end");
    Ok(last)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(trace_file)) = (args.next(), args.next()) else {
        eprintln!("usage: crash-worker <data-dir> <trace-file>");
        std::process::exit(2);
    };
    std::env::set_var("CRASH_TRACE", trace_file);
    let store = SledStore::open(&dir).expect("store opens");
    let engine = Engine::builder(store)
        .register(pipeline)
        .open()
        .await
        .expect("engine opens");
    let handle = engine
        .start(pipeline, "job", 5)
        .await
        .expect("execution starts");
    let result = handle.result().await.expect("execution finishes");
    println!(
        "RESULT {}",
        serde_json::to_string(&result).expect("result serializes")
    );
    engine.shutdown().await;
}
