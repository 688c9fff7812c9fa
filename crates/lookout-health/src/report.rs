//! The result of evaluating a group: its aggregate status and each check's part.

use std::time::Duration;

use crate::status::{CheckResult, Status};

/// A group's health at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub(crate) group: String,
    pub(crate) status: Status,
    pub(crate) checks: Vec<CheckReport>,
    pub(crate) max_age: Option<Duration>,
}

impl Report {
    /// The group evaluated (`""` for all checks).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The aggregate status: the most severe contribution of its checks (`Up` when empty).
    pub fn status(&self) -> Status {
        self.status
    }

    /// Each check of the group, by name.
    pub fn checks(&self) -> &[CheckReport] {
        &self.checks
    }

    /// The check named `name`.
    pub fn check(&self, name: &str) -> Option<&CheckReport> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// How long a prober may reuse this answer: the shortest TTL (or background period) among
    /// its checks.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }
}

/// One check's part in a [`Report`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub(crate) name: String,
    pub(crate) critical: bool,
    pub(crate) result: CheckResult,
    pub(crate) duration: Option<Duration>,
    pub(crate) counted: bool,
}

impl CheckReport {
    /// The check's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether its failure makes the group Down (otherwise Degraded).
    pub fn critical(&self) -> bool {
        self.critical
    }

    /// The reported result (Unknown before the first one).
    pub fn result(&self) -> &CheckResult {
        &self.result
    }

    /// The reported status.
    pub fn status(&self) -> Status {
        self.result.status
    }

    /// How long the run behind the result took.
    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    /// Whether it counted towards the aggregate (liveness ignores checks with no result yet).
    pub fn counted(&self) -> bool {
        self.counted
    }
}
