//! Errors found while building a registry or registering a check.

use std::fmt;

/// One thing wrong with the checks or groups given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// Two checks share a name.
    #[error("health check name '{0}' is used twice: give each check a unique name")]
    DuplicateCheck(String),
    /// A check's name is empty.
    #[error("a health check has an empty name: name every check")]
    EmptyName,
    /// A check names a group that was not declared.
    #[error(
        "health check '{check}' is in unknown group '{group}': declare it with HealthBuilder::group(\"{group}\") or use one of {known:?}"
    )]
    UnknownGroup {
        /// The check.
        check: String,
        /// The group it named.
        group: String,
        /// The groups that exist.
        known: Vec<String>,
    },
    /// An external check was put in liveness.
    #[error(
        "health check '{0}' depends on an external system and cannot be in the liveness group: a restart does not fix another system; put it in readiness"
    )]
    ExternalInLiveness(String),
    /// A setting has a value that cannot work.
    #[error("health check '{check}': {setting} {reason}")]
    InvalidSetting {
        /// The check.
        check: String,
        /// The setting, as the builder method is named.
        setting: &'static str,
        /// What is wrong and what to do.
        reason: &'static str,
    },
    /// A custom group clashes with a built-in group or another custom group.
    #[error(
        "health group '{0}' is declared twice or clashes with a built-in group (liveness, readiness, startup)"
    )]
    DuplicateGroup(String),
    /// A custom group name cannot be used in a URL path segment.
    #[error(
        "health group '{0}' is not a valid name: use 1-63 characters from a-z, 0-9, '-', '_', '.'"
    )]
    InvalidGroupName(String),
    /// Background checks need a Tokio runtime to run on.
    #[error(
        "health check '{0}' runs in the background but no Tokio runtime is running: build the registry inside the runtime"
    )]
    NoRuntime(String),
}

/// Everything wrong with a registry's configuration, found at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BuildError {
    problems: Vec<Problem>,
}

impl BuildError {
    pub(crate) fn new(problems: Vec<Problem>) -> BuildError {
        BuildError { problems }
    }

    /// Each problem found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid health configuration: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}
