//! Statuses, their severity order, and what a check reports.

use std::fmt;
use std::time::SystemTime;

/// The health of a check or of a group of checks.
///
/// Aggregation takes the most severe status; the order, from most to least severe, is
/// `Down`, `OutOfService`, `Unknown`, `Degraded`, `Up`. `Unknown` ranks above `Degraded` so that a
/// check which has not produced a result yet holds readiness back (liveness ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Working.
    Up,
    /// Working, with a problem worth attention (or an optional check failing).
    Degraded,
    /// No result yet.
    Unknown,
    /// Deliberately not serving, for example while shutting down.
    OutOfService,
    /// Not working.
    Down,
}

impl Status {
    /// Every status, least severe first.
    pub const ALL: [Status; 5] = [
        Status::Up,
        Status::Degraded,
        Status::Unknown,
        Status::OutOfService,
        Status::Down,
    ];

    /// The upper-case name used in JSON bodies: `UP`, `DEGRADED`, `UNKNOWN`, `OUT_OF_SERVICE`,
    /// `DOWN`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Degraded => "DEGRADED",
            Status::Unknown => "UNKNOWN",
            Status::OutOfService => "OUT_OF_SERVICE",
            Status::Down => "DOWN",
        }
    }

    /// The IETF `application/health+json` status: `pass`, `warn` or `fail`.
    pub const fn health_json(self) -> &'static str {
        match self {
            Status::Up => "pass",
            Status::Degraded => "warn",
            Status::Unknown | Status::OutOfService | Status::Down => "fail",
        }
    }

    /// Whether traffic may be sent: `Up` or `Degraded`.
    pub const fn is_serving(self) -> bool {
        matches!(self, Status::Up | Status::Degraded)
    }

    /// The most severe of `self` and `other`.
    pub fn worst(self, other: Status) -> Status {
        self.max(other)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run of a check found: a status and optional details.
///
/// ```
/// use lookout_health::{CheckResult, Status};
/// let r = CheckResult::degraded("replica lag is high").with_observed(12.5, "s");
/// assert_eq!(r.status(), Status::Degraded);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a check result does nothing until returned from a check"]
pub struct CheckResult {
    pub(crate) status: Status,
    pub(crate) message: Option<String>,
    pub(crate) observed: Option<(serde_json::Value, String)>,
    pub(crate) details: serde_json::Map<String, serde_json::Value>,
    pub(crate) error_type: Option<String>,
    pub(crate) time: SystemTime,
}

impl CheckResult {
    /// A result with this status and nothing else.
    pub fn new(status: Status) -> CheckResult {
        CheckResult {
            status,
            message: None,
            observed: None,
            details: serde_json::Map::new(),
            error_type: None,
            time: SystemTime::now(),
        }
    }

    /// Up.
    pub fn up() -> CheckResult {
        CheckResult::new(Status::Up)
    }

    /// Degraded, with a message saying why.
    pub fn degraded(message: impl Into<String>) -> CheckResult {
        CheckResult::new(Status::Degraded).with_message(message)
    }

    /// Down, with a message saying why.
    pub fn down(message: impl Into<String>) -> CheckResult {
        CheckResult::new(Status::Down).with_message(message)
    }

    /// Sets the human-readable message (`output` in `application/health+json`).
    pub fn with_message(mut self, message: impl Into<String>) -> CheckResult {
        self.message = Some(message.into());
        self
    }

    /// Sets the observed value and its unit (UCUM, e.g. `"s"`, `"By"`, `"%"`).
    pub fn with_observed(
        mut self,
        value: impl Into<serde_json::Value>,
        unit: impl Into<String>,
    ) -> CheckResult {
        self.observed = Some((value.into(), unit.into()));
        self
    }

    /// Adds a named detail, shown only where details are allowed.
    pub fn with_detail(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> CheckResult {
        self.details.insert(key.into(), value.into());
        self
    }

    /// Sets the low-cardinality error type (`error.type`), such as `timeout` or `panic`.
    pub fn with_error_type(mut self, error_type: impl Into<String>) -> CheckResult {
        self.error_type = Some(error_type.into());
        self
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The message, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The observed value and unit, if any.
    pub fn observed(&self) -> Option<(&serde_json::Value, &str)> {
        self.observed.as_ref().map(|(v, u)| (v, u.as_str()))
    }

    /// The details.
    pub fn details(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.details
    }

    /// The error type, if any.
    pub fn error_type(&self) -> Option<&str> {
        self.error_type.as_deref()
    }

    /// When the result was produced.
    pub fn time(&self) -> SystemTime {
        self.time
    }
}

impl From<Status> for CheckResult {
    fn from(status: Status) -> Self {
        CheckResult::new(status)
    }
}

/// `Ok` is Up; `Err` is Down with the error's message.
impl<E: fmt::Display> From<Result<(), E>> for CheckResult {
    fn from(result: Result<(), E>) -> Self {
        match result {
            Ok(()) => CheckResult::up(),
            Err(e) => CheckResult::down(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_order_is_documented_order() {
        let mut all = Status::ALL;
        all.reverse();
        assert_eq!(
            all,
            [
                Status::Down,
                Status::OutOfService,
                Status::Unknown,
                Status::Degraded,
                Status::Up
            ]
        );
        assert_eq!(Status::Up.worst(Status::Degraded), Status::Degraded);
        assert_eq!(Status::Unknown.worst(Status::Degraded), Status::Unknown);
        assert_eq!(Status::OutOfService.worst(Status::Down), Status::Down);
    }

    #[test]
    fn results_convert_from_results() {
        let ok: CheckResult = Ok::<(), String>(()).into();
        assert_eq!(ok.status(), Status::Up);
        let err: CheckResult = Err::<(), _>("connection refused").into();
        assert_eq!(
            (err.status(), err.message()),
            (Status::Down, Some("connection refused"))
        );
    }
}
