//! The order workflow: reserve inventory, charge the payment (which fails now and then
//! and is retried with backoff), create the shipment.
//!
//! Runs on the embedded sled store in `./durable-data/order`. Run it twice: the second
//! run finds the finished execution and prints its receipt without running any step.
//! Kill it (Ctrl-C) while it waits between payment attempts and run it again: it resumes
//! where it stopped.
//!
//! ```text
//! cargo run --example order            # order "order-1001"
//! cargo run --example order -- 1002    # another order id
//! ```

use std::time::Duration;

use durable_core::{durable, Ctx, Engine, RetryPolicy, StepError};
use durable_store_sled::SledStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: String,
    items: Vec<String>,
    amount_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Receipt {
    order_id: String,
    reservation: String,
    payment: String,
    shipment: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum OrderError {
    OutOfStock(String),
    PaymentDeclined(String),
    ShippingUnavailable(String),
    Interrupted(String),
}

/// Lets `?` turn an exhausted step into the workflow's own error.
impl From<StepError<OrderError>> for OrderError {
    fn from(e: StepError<OrderError>) -> Self {
        match e {
            StepError::Failed { error, .. } => error,
            other => OrderError::Interrupted(format!("{other:?}")),
        }
    }
}

/// Simulated services with the latency and failures of real ones.
mod services {
    use super::OrderError;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    static PAYMENT_CALLS: AtomicU32 = AtomicU32::new(0);

    pub async fn reserve(items: &[String]) -> Result<String, OrderError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if items.is_empty() {
            return Err(OrderError::OutOfStock("no items".into()));
        }
        Ok(format!("reservation-{}", items.join("+")))
    }

    /// Declines the first two calls in each process, like a flaky payment provider.
    pub async fn charge(amount_cents: u64, attempt: u32) -> Result<String, OrderError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let call = PAYMENT_CALLS.fetch_add(1, Ordering::SeqCst);
        if call < 2 {
            return Err(OrderError::PaymentDeclined(format!(
                "gateway timeout on attempt {attempt}"
            )));
        }
        Ok(format!("payment-{amount_cents}-attempt-{attempt}"))
    }

    pub async fn ship(order_id: &str, reservation: &str) -> Result<String, OrderError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(format!("shipment-{order_id}-{}", reservation.len()))
    }
}

#[durable]
async fn process_order(ctx: Ctx, order: Order) -> Result<Receipt, OrderError> {
    println!("[{}] reserving inventory", order.id);
    let reservation = ctx
        .step("reserve-inventory", || services::reserve(&order.items))
        .await?;

    println!("[{}] charging {} cents", order.id, order.amount_cents);
    let payment = ctx
        .step_with_attempt("process-payment", |attempt| {
            println!("[{}]   payment attempt {attempt}", order.id);
            services::charge(order.amount_cents, attempt)
        })
        .retry(
            RetryPolicy::exponential()
                .max_attempts(5)
                .initial_delay(Duration::from_millis(500))
                .max_delay(Duration::from_secs(5)),
        )
        .retry_if(|e: &OrderError| matches!(e, OrderError::PaymentDeclined(_)))
        .await?;

    println!("[{}] creating the shipment", order.id);
    let shipment = ctx
        .step("create-shipment", || {
            services::ship(&order.id, &reservation)
        })
        .await?;

    Ok(Receipt {
        order_id: order.id,
        reservation,
        payment,
        shipment,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let number = std::env::args().nth(1).unwrap_or_else(|| "1001".into());
    let store = SledStore::open("durable-data/order")?;
    let engine = Engine::builder(store)
        .register(process_order)
        .open()
        .await?;

    let order = Order {
        id: format!("order-{number}"),
        items: vec!["book".into(), "lamp".into()],
        amount_cents: 4_250,
    };
    let id = order.id.clone();
    if let Some(existing) = engine.execution(&id).await? {
        println!(
            "found execution {id} ({}), not starting it again",
            existing.status.as_str()
        );
    }
    let handle = engine.start(process_order, id.clone(), order).await?;
    match handle.result().await? {
        Ok(receipt) => println!("result: {receipt:?}"),
        Err(error) => println!("the order failed: {error:?}"),
    }
    for entry in engine.history(&id).await? {
        println!("  history #{}: {:?}", entry.number, entry.event);
    }
    engine.shutdown().await;
    Ok(())
}
