//! Run with: `cargo run -p example-tonic-service`
//!
//! A tonic server on `LISTEN_ADDR` (default 127.0.0.1:50051) serving `grpc.health.v1.Health`
//! (Check, Watch, List) from a lookout-health registry, and the same registry's HTTP routes on
//! `LOOKOUT_ADMIN_ADDR` (default 127.0.0.1:9464). Checks: process memory (liveness, readiness),
//! lookout's telemetry pipeline (optional), and, when `UPSTREAM_ADDR` is set, a TCP connection to
//! that dependency (readiness).
//!
//! Ask it: `cargo run -p example-tonic-service -- check [service]` prints the status of a service
//! (`""`, `readiness`, a check name) of the server at `LISTEN_ADDR`. Both sides carry
//! lookout-tower's gRPC layers, so the call is one trace across the hop, from service `tonic-check`
//! to service `tonic-service` (`rpc.*` attributes,
//! `rpc.server.duration` and `rpc.client.duration`).
//!
//! On SIGINT/SIGTERM every service but `liveness` turns NOT_SERVING, the server keeps answering for
//! `SHUTDOWN_DRAIN` (default `5s`), then stops (requests in progress get 5 s more; connections
//! still open then are closed) and flushes its telemetry.

use std::net::SocketAddr;
use std::time::Duration;

use lookout_health::grpc::pb::HealthCheckRequest;
use lookout_health::grpc::pb::health_client::HealthClient;
use lookout_health::{Check, Health, checks};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = std::env::var("LISTEN_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:50051".into())
        .trim()
        .parse()
        .map_err(|e| format!("LISTEN_ADDR is not host:port: {e}"))?;
    let mut args = std::env::args().skip(1);
    let checking = args.next().as_deref() == Some("check");
    // The `check` client is a program of its own in the traces: `tonic-check` calling
    // `tonic-service`, one trace across both.
    let telemetry = lookout::Telemetry::builder()
        .service_name(if checking {
            "tonic-check"
        } else {
            "tonic-service"
        })
        .service_version(env!("CARGO_PKG_VERSION"))
        .init()?;
    if checking {
        let result = check(listen, args.next().unwrap_or_default()).await;
        let _ = telemetry.shutdown().await;
        return result;
    }

    let admin = lookout::admin_addr()?;
    let drain =
        humantime::parse_duration(&std::env::var("SHUTDOWN_DRAIN").unwrap_or_else(|_| "5s".into()))
            .map_err(|e| format!("SHUTDOWN_DRAIN: {e}: use a duration such as 5s or 500ms"))?;

    let mut builder = Health::builder()
        .check(Check::new("memory", checks::Memory::new()).groups(["liveness", "readiness"]))
        .check(Check::new("telemetry", checks::Pipeline::new()).optional())
        .drain_delay(drain);
    if let Ok(upstream) = std::env::var("UPSTREAM_ADDR") {
        builder = builder.check(
            checks::Tcp::check("upstream", upstream)
                .timeout(Duration::from_millis(300))
                .failures_before_down(2),
        );
    }
    let health = builder.build()?;

    // On SIGINT/SIGTERM: every service but liveness NOT_SERVING for the drain delay, the servers
    // stopped (requests in progress get 5 s), telemetry flushed last.
    let mut service = lookout_admin::Lifecycle::new(telemetry).health(health.clone());
    let grpc = tonic::transport::Server::builder()
        .layer(lookout_tower::GrpcServerLayer::new())
        .add_service(health.grpc_service())
        .serve_with_shutdown(listen, service.stopping());
    service.spawn(async move {
        if let Err(e) = grpc.await {
            tracing::error!("the gRPC server failed: {e}");
        }
    });
    service.serve(admin, health.router()).await?;
    tracing::info!(%listen, %admin, "serving gRPC health and the HTTP health routes");
    if let Err(e) = service.run().await {
        eprintln!("{e}");
    }
    Ok(())
}

/// The `check` subcommand: one Check call, the answer printed.
#[tracing::instrument]
async fn check(server: SocketAddr, service: String) -> Result<(), Box<dyn std::error::Error>> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{server}"))?
        .connect()
        .await?;
    // The client layer injects the trace context: the server's span is this call's child.
    let channel = tower::ServiceBuilder::new()
        .layer(lookout_tower::GrpcClientLayer::new())
        .service(channel);
    let mut client = HealthClient::new(channel);
    let status = client
        .check(HealthCheckRequest {
            service: service.clone(),
        })
        .await?
        .into_inner()
        .status();
    println!("{service:?}: {}", status.as_str_name());
    Ok(())
}
