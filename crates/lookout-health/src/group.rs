//! The built-in group names.

/// Whether the process is alive; a failure makes Kubernetes restart it. Never put checks of
/// external systems here.
pub const LIVENESS: &str = "liveness";
/// Whether the process should receive traffic.
pub const READINESS: &str = "readiness";
/// Whether the process has finished starting; holds the other probes off until it has.
pub const STARTUP: &str = "startup";

/// The built-in groups, always present.
pub const BUILT_IN: [&str; 3] = [LIVENESS, READINESS, STARTUP];
