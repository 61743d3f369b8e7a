//! The order workflow: reserve inventory, charge the payment (which fails now and then
//! and is retried with backoff), create the shipment.
//!
//! Runs on the embedded sled store in `./durable-data/order`. Run it twice: the second
//! run finds the finished execution and prints its receipt without running any step.
//! Kill it (Ctrl-C) while it waits between payment attempts and run it again: it resumes
//! where it stopped, and the payment provider sees the same idempotency key.
//!
//! ```text
//! cargo run --example order            # order "order-1001"
//! cargo run --example order -- 1002    # another order id
//! ```

use std::time::Duration;

use durable_core::{durable, Ctx, Engine, Failure, RetryPolicy, StepContext};
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

/// Simulated services with the latency and failures of real ones: their errors are
/// whatever their clients return, here `std::io::Error` and `Failure`.
mod services {
    use std::io;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use durable_core::Failure;

    static PAYMENT_CALLS: AtomicU32 = AtomicU32::new(0);

    pub async fn reserve(items: &[String]) -> Result<String, Failure> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if items.is_empty() {
            // No retry can make stock appear.
            return Err(Failure::terminal("out of stock: the order has no items"));
        }
        Ok(format!("reservation-{}", items.join("+")))
    }

    /// Times out on the first two calls in each process, like a flaky payment gateway.
    pub async fn charge(amount_cents: u64, idempotency_key: &str) -> io::Result<String> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if PAYMENT_CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "gateway timeout"));
        }
        Ok(format!("payment-{amount_cents}-{}", &idempotency_key[..8]))
    }

    pub async fn ship(order_id: &str, reservation: &str) -> Result<String, Failure> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(format!("shipment-{order_id}-{}", reservation.len()))
    }
}

#[durable]
async fn process_order(ctx: Ctx, order: Order) -> Result<Receipt, Failure> {
    let reservation = ctx
        .step("reserve-inventory", || services::reserve(&order.items))
        .await?;

    let payment = ctx
        .step("process-payment", |s: StepContext| async move {
            println!(
                "  payment attempt {} (key {})",
                s.attempt(),
                s.idempotency_key()
            );
            Ok(services::charge(order.amount_cents, s.idempotency_key()).await?)
        })
        .retry(
            RetryPolicy::exponential()
                .max_attempts(5)
                .initial_delay(Duration::from_millis(500))
                .max_delay(Duration::from_secs(5)),
        )
        .timeout(Duration::from_secs(10))
        .await?;

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
    let engine = Engine::builder(SledStore::open("durable-data/order")?)
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
            "found {id} ({}), not starting it again",
            existing.status.as_str()
        );
    }
    let handle = engine.start(process_order, id.clone(), order).await?;
    match handle.result().await? {
        Ok(receipt) => println!("result: {receipt:?}"),
        Err(failure) => println!("the order failed: {failure}"),
    }
    for line in engine.compact_history(&id).await? {
        println!("  {line}");
    }
    engine.shutdown().await;
    Ok(())
}
