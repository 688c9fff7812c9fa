#![doc = include_str!("../README.md")]

pub mod grpc;
pub mod http;
mod metrics;

pub use crate::grpc::{GrpcClientLayer, GrpcServerLayer};
pub use crate::http::{HttpClientLayer, HttpServerLayer};
