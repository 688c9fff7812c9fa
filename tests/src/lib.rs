//! Shared helpers for the end-to-end tests in `tests/`: run the `e2e-app` program with an
//! environment and read what it printed; and [`stack`], the deploy/ backends (collector, Jaeger,
//! VictoriaLogs, Prometheus, Alertmanager) and the example services as real processes.

pub mod stack;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Variables that turn every exporter off, for tests that only look at the program's own output.
pub const NO_EXPORT: [(&str, &str); 3] = [
    ("OTEL_TRACES_EXPORTER", "none"),
    ("OTEL_METRICS_EXPORTER", "none"),
    ("OTEL_LOGS_EXPORTER", "none"),
];

/// What one run of `e2e-app` printed.
#[derive(Debug)]
pub struct Run {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit code.
    pub code: Option<i32>,
}

impl Run {
    /// The word after `RESULT`: `ok`, `deadline` or `lost`.
    pub fn result(&self) -> Option<&str> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .and_then(|rest| rest.split_whitespace().next())
    }

    /// `(exported, lost)` for `signal` from the `COUNTS` lines.
    pub fn counts(&self, signal: &str) -> Option<(u64, u64)> {
        self.stdout.lines().find_map(|l| {
            let mut parts = l.strip_prefix("COUNTS ")?.split_whitespace();
            (parts.next()? == signal).then_some(())?;
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
    }

    /// `(exports ok, exports failed, last error state)` of traces from `lookout::stats()`, read
    /// before shutdown.
    pub fn trace_stats(&self) -> Option<(u64, u64, String)> {
        self.stdout.lines().find_map(|l| {
            let mut parts = l.strip_prefix("STATS traces ")?.split_whitespace();
            Some((
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
                parts.next()?.to_owned(),
            ))
        })
    }

    /// Spans dropped because the export queue was full, from `lookout::stats()` before shutdown.
    pub fn traces_dropped(&self) -> Option<u64> {
        self.stdout.lines().find_map(|l| {
            l.strip_prefix("STATS traces ")?
                .split_whitespace()
                .nth(3)?
                .parse()
                .ok()
        })
    }

    /// Log records dropped because the export queue was full, from `lookout::stats()`.
    pub fn logs_dropped(&self) -> Option<u64> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("STATS logs dropped ")?.trim().parse().ok())
    }

    /// Variables the program reported warnings for.
    pub fn warnings(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("WARNING "))
            .collect()
    }
}

/// Runs `e2e-app` with `args` and exactly the given variables (plus PATH), and waits for it.
pub fn run(app: &PathBuf, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let Output {
        stdout,
        stderr,
        status,
    } = command(app, args, vars).output().expect("e2e-app runs");
    Run {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        code: status.code(),
    }
}

/// The command `run` uses, for tests that need to start it and wait later.
pub fn command(app: &PathBuf, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(app);
    cmd.args(args).env_clear().env("LOOKOUT_CONSOLE", "off");
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}
