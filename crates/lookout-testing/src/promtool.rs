//! `promtool check metrics`: Prometheus's own linter, on an exposition a test scraped.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `exposition` (Prometheus text format). `Ok` only when it
/// exits 0 and prints nothing: a warning (a counter without `_total`, no HELP, a non-base unit)
/// is an `Err` with what it said.
///
/// Needs `promtool` on `PATH` (Debian: `apt-get install -y prometheus`; lookout's
/// `scripts/test` installs it); its absence is an `Err` that says so.
pub fn promtool_check_metrics(exposition: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run promtool ({e}): install it with `apt-get install -y prometheus`")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(exposition.as_bytes())
            .map_err(|e| format!("cannot write to promtool: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("promtool did not finish: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool ({}): {}", out.status, said.trim()))
    }
}
