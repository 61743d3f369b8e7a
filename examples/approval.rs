//! An expense-approval flow with callbacks: the workflow asks the manager to approve an
//! expense by printing the `curl` command they would run (in real life: an email with two
//! links), waits for the answer with a timeout, escalates to the director if the manager
//! does not answer in time, and pays or rejects the expense accordingly.
//!
//! The callbacks are served over HTTP by `durable-http` on 127.0.0.1:8787. While the
//! workflow waits it is not in memory: it is a record in the sled store plus a timer.
//! Stop the program with Ctrl-C while it waits and run it again: it resumes the wait, and
//! the printed commands still work.
//!
//! ```text
//! cargo run --example approval                  # expense 1, 120 s for each approver
//! cargo run --example approval -- 7 30          # expense id, seconds per approver
//! ```

use std::time::Duration;

use durable_core::{durable, CallbackError, Ctx, Engine};
use durable_store_sled::SledStore;
use serde::{Deserialize, Serialize};

const ADDR: &str = "127.0.0.1:8787";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Expense {
    id: u64,
    employee: String,
    amount_cents: u64,
    /// How long each approver has to answer.
    deadline: Duration,
}

/// What an approver sends: `{"approved": true}` or
/// `{"approved": false, "reason": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Decision {
    approved: bool,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Outcome {
    Paid { approved_by: String },
    Rejected { by: String, reason: String },
}

/// Simulated notification and payment services.
mod services {
    use super::{Expense, ADDR};

    /// What an email to `approver` would say: the commands behind its two buttons.
    pub async fn ask(approver: &str, expense: &Expense, callback_id: &str) {
        let url = format!("http://{ADDR}/callbacks/{callback_id}/complete");
        println!(
            "\n  -> to {approver}: {} asks for {:.2} (expense {}). Within {} s, run one of:\n\
             \n     curl -X POST -H 'Content-Type: application/json' -d '{{\"approved\": true}}' {url}\
             \n     curl -X POST -H 'Content-Type: application/json' -d '{{\"approved\": false, \"reason\": \"too much\"}}' {url}\n",
            expense.employee,
            expense.amount_cents as f64 / 100.0,
            expense.id,
            expense.deadline.as_secs(),
        );
    }

    pub async fn pay(expense: &Expense) {
        println!(
            "  -> paid {:.2} to {}",
            expense.amount_cents as f64 / 100.0,
            expense.employee
        );
    }
}

/// The approval flow: the manager first, the director if the manager does not answer.
#[durable]
async fn expense_approval(ctx: Ctx, expense: Expense) -> Result<Outcome, CallbackError> {
    let manager = ctx
        .create_callback::<Decision>("manager-approval")
        .timeout(expense.deadline)
        .await?;
    ctx.step_infallible("ask-manager", || {
        services::ask("manager", &expense, manager.id())
    })
    .await;
    let (approver, decision) = match ctx.wait_callback(&manager).await {
        Ok(decision) => ("manager".to_owned(), decision),
        Err(CallbackError::TimedOut { .. }) => {
            println!("  (the manager did not answer in time: escalating to the director)");
            let director = ctx
                .create_callback::<Decision>("director-approval")
                .timeout(expense.deadline)
                .await?;
            ctx.step_infallible("ask-director", || {
                services::ask("director", &expense, director.id())
            })
            .await;
            match ctx.wait_callback(&director).await {
                Ok(decision) => ("director".to_owned(), decision),
                Err(CallbackError::TimedOut { .. }) => (
                    "nobody".to_owned(),
                    Decision {
                        approved: false,
                        reason: Some("no approver answered in time".into()),
                    },
                ),
                Err(other) => return Err(other),
            }
        }
        Err(other) => return Err(other),
    };
    if decision.approved {
        ctx.step_infallible("pay", || services::pay(&expense)).await;
        Ok(Outcome::Paid {
            approved_by: approver,
        })
    } else {
        Ok(Outcome::Rejected {
            by: approver,
            reason: decision.reason.unwrap_or_default(),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let expense_id: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(120);

    let engine = Engine::builder(SledStore::open("durable-data/approval")?)
        .register(expense_approval)
        .open()
        .await?;

    // The callback endpoints, on the loopback interface only.
    let listener = tokio::net::TcpListener::bind(ADDR).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(durable_http::Api::new(engine.clone()).serve_until(
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    let expense = Expense {
        id: expense_id,
        employee: "ada".into(),
        amount_cents: 12_999,
        deadline: Duration::from_secs(seconds),
    };
    let id = format!("expense-{expense_id}");
    println!("{id}: waiting for an approval (Ctrl-C to stop; run again to resume)");
    let handle = engine.start(expense_approval, id.clone(), expense).await?;
    let outcome = handle.result().await?;
    println!("{id}: {outcome:?}");

    let _ = stop.send(());
    server.await??;
    engine.shutdown().await;
    Ok(())
}
