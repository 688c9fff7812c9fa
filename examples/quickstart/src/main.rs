//! Run with: `cargo run -p example-quickstart`
//!
//! With no collector running it shows its spans and logs on the terminal (and says once that
//! export failed). With a collector, set `OTEL_EXPORTER_OTLP_ENDPOINT` (and
//! `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` for port 4317) and the same data arrives there.

use std::time::Duration;

use lookout::opentelemetry::{KeyValue, global};
use tracing::{info, instrument, warn};

#[derive(Debug, thiserror::Error)]
enum PayError {
    #[error("card declined for order {0}")]
    Declined(u64),
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = lookout::Telemetry::builder()
        .service_name("quickstart")
        .service_version(env!("CARGO_PKG_VERSION"))
        .init()?;

    let meter = global::meter("quickstart");
    let orders = meter
        .u64_counter("orders.processed")
        .with_unit("{order}")
        .with_description("Orders handled, by outcome")
        .build();
    let latency = meter
        .f64_histogram("orders.duration")
        .with_unit("s")
        .with_description("Time to handle one order")
        .build();

    for order in 1..=3_u64 {
        let started = std::time::Instant::now();
        let outcome = match handle_order(order).await {
            Ok(()) => "ok",
            Err(e) => {
                warn!(error = %e, "order failed");
                "error"
            }
        };
        orders.add(1, &[KeyValue::new("outcome", outcome)]);
        latency.record(
            started.elapsed().as_secs_f64(),
            &[KeyValue::new("outcome", outcome)],
        );
    }

    match telemetry.shutdown().await {
        Ok(report) => info!(%report, "telemetry flushed"),
        // Telemetry problems never fail the program; say what was lost and carry on.
        Err(e) => eprintln!("quickstart: {e}"),
    }
    Ok(())
}

#[instrument]
async fn handle_order(order: u64) -> Result<(), PayError> {
    info!(order, "handling order");
    reserve_stock(order).await;
    charge(order).await
}

#[instrument]
async fn reserve_stock(order: u64) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    info!(items = order * 2, "stock reserved");
}

#[instrument(err)]
async fn charge(order: u64) -> Result<(), PayError> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    if order == 2 {
        return Err(PayError::Declined(order));
    }
    Ok(())
}
