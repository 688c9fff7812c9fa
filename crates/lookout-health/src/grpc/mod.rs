//! The `grpc.health.v1.Health` service (tonic), answering from the same registry as HTTP.
//!
//! Service names: `""` is the whole server (every check, like `/health`); a group name
//! (`liveness`, `readiness`, `startup`, custom) is that group; a check's name is that check.
//! Up and Degraded are `SERVING`, Down and OutOfService `NOT_SERVING`, Unknown (no result yet)
//! `UNKNOWN`.
//!
//! Written here rather than using tonic-health (0.14.9): tonic-health serves statuses the
//! application sets by hand, not checks, and where it differs from the protocol this follows the
//! protocol:
//!
//! - `Check` on an unknown service is `NOT_FOUND` (as in tonic-health);
//! - `Watch` on an unknown service sends `SERVICE_UNKNOWN` and stays open, and sends the real
//!   status if a check or group of that name appears later (tonic-health answers `NOT_FOUND`);
//! - `List` returns every service (at most 100; more is `RESOURCE_EXHAUSTED`; tonic-health does
//!   not implement it);
//! - once shutdown has begun, every service but `liveness` is `NOT_SERVING`, and when
//!   [`Health::shutdown`] has waited its drain delay, open `Watch` streams end so that the
//!   server's graceful shutdown can finish.
//!
//! ```no_run
//! # async fn serve(health: lookout_health::Health) -> Result<(), Box<dyn std::error::Error>> {
//! tonic::transport::Server::builder()
//!     .add_service(health.grpc_service())
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use tonic::{Request, Response};

use crate::group;
use crate::registry::Health;
use crate::status::Status;

/// The generated protobuf types, server and client of `grpc/health/v1/health.proto`
/// (regenerate with tonic-prost-build from `proto/health.proto`).
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]
pub mod pb {
    include!("generated.rs");
}

use pb::health_check_response::ServingStatus;
use pb::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};

/// The most services `List` returns, per the protocol.
pub const LIST_LIMIT: usize = 100;

/// How often a `Watch` re-evaluates at most; also the floor when checks have a zero TTL.
const MIN_WATCH_PERIOD: Duration = Duration::from_millis(200);

/// The gRPC health service over a [`Health`] registry.
#[derive(Debug, Clone)]
pub struct HealthService {
    health: Health,
}

impl Health {
    /// The `grpc.health.v1.Health` service, ready for `tonic::transport::Server::add_service`.
    pub fn grpc_service(&self) -> pb::health_server::HealthServer<HealthService> {
        pb::health_server::HealthServer::new(HealthService {
            health: self.clone(),
        })
    }
}

fn serving(status: Status) -> ServingStatus {
    match status {
        Status::Up | Status::Degraded => ServingStatus::Serving,
        Status::Down | Status::OutOfService => ServingStatus::NotServing,
        Status::Unknown => ServingStatus::Unknown,
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

impl HealthService {
    /// The service's status, or `None` if no group or check has that name.
    async fn status(&self, service: &str) -> Option<ServingStatus> {
        let known = service.is_empty()
            || self.health.groups().iter().any(|g| g == service)
            || self.health.check_names().iter().any(|c| c == service);
        if !known {
            return None;
        }
        if self.health.is_shutting_down() && service != group::LIVENESS {
            return Some(ServingStatus::NotServing);
        }
        let status = match self.health.report(service).await {
            Some(report) => report.status(),
            None => self.health.report_check(service).await?.status(),
        };
        Some(serving(status))
    }

    fn services(&self) -> Vec<String> {
        let mut names = vec![String::new()];
        names.extend(self.health.groups().iter().cloned());
        for c in self.health.check_names() {
            if !names.contains(&c) {
                names.push(c);
            }
        }
        names
    }

    fn watch_period(&self) -> Duration {
        self.health
            .shortest_max_age()
            .unwrap_or(Duration::from_secs(1))
            .max(MIN_WATCH_PERIOD)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl pb::health_server::Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, tonic::Status> {
        let service = request.into_inner().service;
        match self.status(&service).await {
            Some(s) => Ok(Response::new(response(s))),
            None => Err(tonic::Status::not_found(format!(
                "unknown service '{service}': use \"\" for the whole server, a group ({}) or a check name",
                self.health.groups().join(", ")
            ))),
        }
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, tonic::Status> {
        let services = self.services();
        if services.len() > LIST_LIMIT {
            return Err(tonic::Status::resource_exhausted(format!(
                "{} services exceed the limit of {LIST_LIMIT}: use Check or Watch per service",
                services.len()
            )));
        }
        let statuses =
            futures_util::future::join_all(services.iter().map(|s| self.status(s))).await;
        let statuses = services
            .into_iter()
            .zip(statuses)
            .filter_map(|(name, s)| Some((name, response(s?))))
            .collect();
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, tonic::Status> {
        let service = request.into_inner().service;
        let this = self.clone();
        let changes = self.health.changes();
        let stream = futures_util::stream::unfold(
            (this, service, changes, None::<ServingStatus>),
            |(this, service, mut changes, last)| async move {
                loop {
                    changes.borrow_and_update();
                    let now = this
                        .status(&service)
                        .await
                        .unwrap_or(ServingStatus::ServiceUnknown);
                    if Some(now) != last {
                        return Some((Ok(response(now)), (this, service, changes, Some(now))));
                    }
                    if this.health.is_drained() {
                        return None;
                    }
                    // Wake on a change of any status, or to re-run checks whose TTL expired.
                    tokio::select! {
                        r = changes.changed() => if r.is_err() { return None },
                        () = tokio::time::sleep(this.watch_period()) => {}
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
