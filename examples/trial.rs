//! A trial-expiry flow with durable waits on the real clock: welcome the user, sleep
//! until a reminder is due, remind them, sleep until the trial ends, then convert or
//! downgrade the account.
//!
//! While the execution sleeps it is not in memory: it is a record in the sled store plus
//! a timer. The example prints what `engine.describe` shows of it meanwhile (the point
//! it waits at, until when, and its live locals). Stop it with Ctrl-C during a wait and
//! run it again: it resumes the wait instead of starting over.
//!
//! ```text
//! cargo run --example trial                 # a 6 s trial with a reminder 2 s before the end
//! cargo run --example trial -- ada 30 10    # user, trial seconds, reminder seconds before
//! ```

use std::time::Duration;

use durable_core::{durable, Ctx, Engine, Failure, Status, Until};
use durable_store_sled::SledStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Signup {
    user: String,
    trial: Duration,
    remind_before: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Outcome {
    Converted { plan: String },
    Downgraded,
}

/// Simulated email and billing services.
mod services {
    use durable_core::Failure;

    pub async fn email(user: &str, text: &str) -> Result<(), Failure> {
        println!("  -> email to {user}: {text}");
        Ok(())
    }

    pub async fn subscribed_plan(user: &str) -> Option<String> {
        // Users whose name starts with a vowel bought a plan during the trial.
        user.starts_with(['a', 'e', 'i', 'o', 'u'])
            .then(|| "pro".to_string())
    }
}

#[durable]
async fn trial(ctx: Ctx, signup: Signup) -> Result<Outcome, Failure> {
    let Signup {
        user,
        trial: length,
        remind_before,
    } = signup;
    ctx.step("send-welcome", || {
        services::email(&user, "welcome! your trial has started")
    })
    .await?;

    let until_reminder = length.saturating_sub(remind_before);
    ctx.sleep(until_reminder).name("until-reminder").await?;
    ctx.step("send-reminder", || {
        services::email(&user, "your trial ends soon")
    })
    .await?;

    ctx.sleep(remind_before).name("until-expiry").await?;
    let plan = ctx
        .step_infallible("check-subscription", || services::subscribed_plan(&user))
        .await;
    match plan {
        Some(plan) => {
            ctx.step("send-thanks", || {
                services::email(&user, "thanks for subscribing")
            })
            .await?;
            Ok(Outcome::Converted { plan })
        }
        None => {
            ctx.step("downgrade-account", || {
                services::email(&user, "your account is now on the free plan")
            })
            .await?;
            Ok(Outcome::Downgraded)
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let user = args.next().unwrap_or_else(|| "ada".into());
    let seconds =
        |s: Option<String>, default: u64| s.and_then(|s| s.parse().ok()).unwrap_or(default);
    let trial_secs = seconds(args.next(), 6);
    let remind_secs = seconds(args.next(), 2).min(trial_secs);

    let engine = Engine::builder(SledStore::open("durable-data/trial")?)
        .register(trial)
        .open()
        .await?;
    let id = format!("trial-{user}");
    let signup = Signup {
        user,
        trial: Duration::from_secs(trial_secs),
        remind_before: Duration::from_secs(remind_secs),
    };
    let handle = engine.start(trial, id.clone(), signup).await?;

    // Show the execution at each wait, like a paused debugger.
    let mut shown = None;
    loop {
        let new_wait = Until::matching("suspended at a new point, or finished", move |r, _| {
            let point = r.position.as_ref().map(|p| p.point);
            r.status.is_terminal() || (r.status == Status::Suspended && point != shown)
        });
        let record = engine.wait_until(&id, new_wait).await?;
        if record.status.is_terminal() {
            break;
        }
        shown = record.position.map(|p| p.point);
        let d = engine.describe(&id).await?;
        let locals: Vec<String> = d
            .locals
            .iter()
            .map(|l| format!("{} = {}", l.name, l.value))
            .collect();
        if let (Some(point), Some(waiting)) = (&d.point, &d.waiting_for) {
            println!(
                "  [describe] {} (line {}) is {}, waiting for {waiting:?}; locals: {}",
                point.label,
                point.line,
                d.status.as_str(),
                locals.join(", ")
            );
        }
    }

    let outcome = handle.result().await?;
    println!("{id}: {outcome:?}");
    engine.shutdown().await;
    Ok(())
}
