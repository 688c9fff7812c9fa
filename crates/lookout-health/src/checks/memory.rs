use crate::{CheckResult, HealthCheck};

const MIB: u64 = 1024 * 1024;

/// The process's resident memory (RSS) against two thresholds: Up below `degraded_above`
/// (default 300 MiB), Degraded up to `down_above` (default 500 MiB), Down above it. The observed
/// value is the RSS in bytes. Memory is the process's own, so this check may be in liveness.
#[derive(Debug, Clone)]
#[must_use = "a check does nothing until registered in a Health registry"]
pub struct Memory {
    degraded_above: u64,
    down_above: u64,
    read: fn() -> Option<u64>,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            degraded_above: 300 * MIB,
            down_above: 500 * MIB,
            read: resident_bytes,
        }
    }
}

fn resident_bytes() -> Option<u64> {
    memory_stats::memory_stats().map(|m| m.physical_mem as u64)
}

impl Memory {
    /// The default thresholds (300 MiB, 500 MiB).
    pub fn new() -> Memory {
        Memory::default()
    }

    /// Degraded above this many bytes.
    pub fn degraded_above(mut self, bytes: u64) -> Memory {
        self.degraded_above = bytes;
        self
    }

    /// Down above this many bytes.
    pub fn down_above(mut self, bytes: u64) -> Memory {
        self.down_above = bytes;
        self
    }

    /// Reads the memory figure from `read` instead of the process's RSS.
    pub fn with_reader(mut self, read: fn() -> Option<u64>) -> Memory {
        self.read = read;
        self
    }
}

impl HealthCheck for Memory {
    async fn check(&self) -> CheckResult {
        let Some(rss) = (self.read)() else {
            return CheckResult::new(crate::Status::Unknown)
                .with_message("process memory cannot be read on this platform");
        };
        let mib = |b: u64| b as f64 / MIB as f64;
        let result = if rss > self.down_above {
            CheckResult::down(format!(
                "resident memory {:.0} MiB is above {:.0} MiB",
                mib(rss),
                mib(self.down_above)
            ))
        } else if rss > self.degraded_above {
            CheckResult::degraded(format!(
                "resident memory {:.0} MiB is above {:.0} MiB",
                mib(rss),
                mib(self.degraded_above)
            ))
        } else {
            CheckResult::up()
        };
        result
            .with_observed(rss, "By")
            .with_detail("degradedAbove", self.degraded_above)
            .with_detail("downAbove", self.down_above)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    #[tokio::test]
    async fn thresholds_against_the_real_rss() {
        let rss = resident_bytes().expect("RSS readable on this platform");
        assert!(rss > MIB, "a test process uses more than 1 MiB, got {rss}");
        let up = Memory::new().degraded_above(rss * 4).down_above(rss * 8);
        assert_eq!(up.check().await.status(), Status::Up);
        let degraded = Memory::new().degraded_above(rss / 4).down_above(rss * 8);
        assert_eq!(degraded.check().await.status(), Status::Degraded);
        let down = Memory::new().degraded_above(rss / 8).down_above(rss / 4);
        let r = down.check().await;
        assert_eq!(r.status(), Status::Down);
        assert_eq!(r.observed().map(|(_, u)| u), Some("By"));
    }

    #[tokio::test]
    async fn seeds_thresholds_are_the_defaults() {
        let at = |mib: u64| {
            Memory::new().with_reader(match mib {
                299 => || Some(299 * MIB),
                301 => || Some(301 * MIB),
                _ => || Some(501 * MIB),
            })
        };
        assert_eq!(at(299).check().await.status(), Status::Up);
        assert_eq!(at(301).check().await.status(), Status::Degraded);
        assert_eq!(at(501).check().await.status(), Status::Down);
    }
}
