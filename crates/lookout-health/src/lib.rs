#![doc = include_str!("../README.md")]

mod check;
pub mod checks;
mod entry;
mod error;
pub mod group;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
mod registry;
mod report;
mod status;
pub mod telemetry;

pub use check::{Check, DEFAULT_TIMEOUT, DEFAULT_TTL, FnCheck, HealthCheck, check_fn};
pub use error::{BuildError, Problem};
pub use registry::{DEFAULT_DRAIN_DELAY, Health, HealthBuilder, TRANSITIONS_KEPT, Transition};
pub use report::{CheckReport, Report};
pub use status::{CheckResult, Status};
