//! Built-in checks: the telemetry pipeline, process memory, an operation's error rate, and a TCP
//! connection to a dependency.

mod error_rate;
mod memory;
#[cfg(feature = "pipeline")]
mod pipeline;
mod tcp;

pub use error_rate::ErrorRate;
pub use memory::Memory;
#[cfg(feature = "pipeline")]
pub use pipeline::Pipeline;
pub use tcp::Tcp;
