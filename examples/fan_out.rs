//! Fan-out: make thumbnails of a batch of images, one step per image, at most 16 at a
//! time, tolerating up to 5 % failed images, and report the failed ones.
//!
//! Runs on the embedded sled store in `./durable-data/fan_out`. Each image's thumbnail
//! is recorded as soon as it is made: kill the program (Ctrl-C) halfway and run it again,
//! and it makes only the thumbnails that were missing. Run it once more after it
//! finished, and it prints the same report without making any.
//!
//! ```text
//! cargo run --example fan_out            # batch "batch-1" of 200 images
//! cargo run --example fan_out -- 2 1000  # batch "batch-2" of 1,000 images
//! ```

use std::time::Duration;

use durable_core::{
    durable, BatchError, Completion, CompletionReason, Ctx, Engine, ItemStatus, RetryPolicy,
};
use durable_store_sled::SledStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Image {
    url: String,
    bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    thumbnails: usize,
    failed: Vec<(String, String)>,
    reason: String,
}

/// A simulated image service: slow, and unable to read one image in forty.
mod images {
    use std::time::Duration;

    use durable_core::Failure;

    use super::Image;

    pub async fn thumbnail(image: &Image) -> Result<String, Failure> {
        tokio::time::sleep(Duration::from_millis(20 + image.bytes % 30)).await;
        if image.bytes % 40 == 7 {
            // Retrying cannot repair a corrupt file.
            return Err(Failure::terminal(format!("{} is not a JPEG", image.url)));
        }
        Ok(format!("{}?w=200", image.url))
    }
}

#[durable]
async fn make_thumbnails(ctx: Ctx, images: Vec<Image>) -> Result<Report, BatchError> {
    let batch = ctx
        .map("thumbnail", images.clone(), |image: Image| async move {
            println!("  resizing {}", image.url);
            images::thumbnail(&image).await
        })
        .max_in_flight(16)
        .retry(
            RetryPolicy::exponential()
                .max_attempts(3)
                .initial_delay(Duration::from_millis(200)),
        )
        .completion(Completion::tolerate_failure_percent(5.0))
        .await;
    if batch.completion_reason() == CompletionReason::FailureToleranceExceeded {
        // More than 5 % failed: the whole batch fails, listing why.
        return Err(batch
            .into_result()
            .expect_err("failures exceeded the tolerance"));
    }
    let failed = batch
        .failures()
        .map(|(index, error)| (images[index].url.clone(), error.to_string()))
        .collect();
    Ok(Report {
        thumbnails: batch.count(ItemStatus::Succeeded),
        failed,
        reason: batch.completion_reason().as_str().to_owned(),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let number = args.next().unwrap_or_else(|| "1".into());
    let count: u64 = args.next().map_or(Ok(200), |n| n.parse())?;
    let engine = Engine::builder(SledStore::open("durable-data/fan_out")?)
        .register(make_thumbnails)
        .open()
        .await?;

    let images: Vec<Image> = (0..count)
        .map(|i| Image {
            url: format!("https://images.example/{number}/{i}.jpg"),
            bytes: 1_000 + i * 37,
        })
        .collect();
    let id = format!("batch-{number}");
    println!("making {count} thumbnails in execution {id:?}");
    let handle = engine.start(make_thumbnails, &id, images).await?;
    match handle.result().await? {
        Ok(report) => {
            println!(
                "{} thumbnails made ({}); {} images failed:",
                report.thumbnails,
                report.reason,
                report.failed.len()
            );
            for (url, error) in &report.failed {
                println!("  {url}: {error}");
            }
        }
        Err(error) => println!("the batch failed: {error}"),
    }
    engine.shutdown().await;
    Ok(())
}
