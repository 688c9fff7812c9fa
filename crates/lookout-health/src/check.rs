//! The check trait, closures as checks, and a check's registration settings.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::group;
use crate::status::CheckResult;

/// A health check: an async function that reports how one thing is doing.
///
/// Implement it with `async fn`:
///
/// ```
/// use lookout_health::{CheckResult, HealthCheck};
///
/// struct Disk;
/// impl HealthCheck for Disk {
///     async fn check(&self) -> CheckResult {
///         CheckResult::up().with_observed(0.42, "1")
///     }
/// }
/// ```
///
/// A check does not need its own timeout or panic handling: each run is bounded by the check's
/// [`timeout`](Check::timeout) (the future is dropped when it expires) and a panic is reported as
/// `Down` with its message.
pub trait HealthCheck: Send + Sync + 'static {
    /// Runs the check once.
    fn check(&self) -> impl Future<Output = CheckResult> + Send;
}

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Object-safe form of [`HealthCheck`], so that a registry holds checks of different types.
pub(crate) trait DynCheck: Send + Sync + 'static {
    fn run(self: Arc<Self>) -> BoxFuture<CheckResult>;
}

impl<T: HealthCheck> DynCheck for T {
    fn run(self: Arc<Self>) -> BoxFuture<CheckResult> {
        Box::pin(async move { self.check().await })
    }
}

/// A check made from a closure returning a future; see [`check_fn`].
pub struct FnCheck<F>(F);

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnCheck")
    }
}

/// Makes a check from a closure. The future's output can be a [`CheckResult`], a
/// [`Status`](crate::Status), or a `Result<(), E: Display>` (`Err` is Down with its message).
///
/// ```
/// let check = lookout_health::check_fn(|| async { Ok::<(), std::io::Error>(()) });
/// # let _ = check;
/// ```
pub fn check_fn<F, Fut, R>(f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Into<CheckResult>,
{
    FnCheck(f)
}

impl<F, Fut, R> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Into<CheckResult>,
{
    fn check(&self) -> impl Future<Output = CheckResult> + Send {
        let fut = (self.0)();
        async move { fut.await.into() }
    }
}

/// A check with its name and settings, ready to register.
///
/// Defaults: in the readiness group, critical, not external, timeout 800 ms (below the kubelet's
/// 1 s probe timeout), results cached for 1 s, one failure makes it Down and one success makes it
/// Up again, no start-up grace, run on request (not in the background), slow above 400 ms.
///
/// ```
/// use std::time::Duration;
/// use lookout_health::{Check, check_fn};
///
/// let db = Check::new("db", check_fn(|| async { Ok::<(), String>(()) }))
///     .external()
///     .groups(["readiness", "startup"])
///     .timeout(Duration::from_millis(300))
///     .failures_before_down(3);
/// # let _ = db;
/// ```
#[derive(Clone)]
#[must_use = "a check does nothing until it is added to a Health builder"]
pub struct Check {
    pub(crate) name: String,
    pub(crate) check: Arc<dyn DynCheck>,
    pub(crate) groups: Vec<String>,
    pub(crate) critical: bool,
    pub(crate) external: bool,
    pub(crate) timeout: Duration,
    pub(crate) ttl: Duration,
    pub(crate) failures_before_down: u32,
    pub(crate) successes_before_up: u32,
    pub(crate) startup_grace: Duration,
    pub(crate) period: Option<Duration>,
    pub(crate) initial_delay: Duration,
    pub(crate) jitter: Duration,
    pub(crate) slow_after: Duration,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("groups", &self.groups)
            .field("critical", &self.critical)
            .field("external", &self.external)
            .field("timeout", &self.timeout)
            .field("ttl", &self.ttl)
            .field("failures_before_down", &self.failures_before_down)
            .field("successes_before_up", &self.successes_before_up)
            .field("startup_grace", &self.startup_grace)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// The default per-run timeout, below the kubelet's default probe timeout of 1 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(800);
/// The default time a result is reused before the check runs again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

impl Check {
    /// A check named `name` (unique in its registry) with the default settings.
    pub fn new(name: impl Into<String>, check: impl HealthCheck) -> Check {
        Check {
            name: name.into(),
            check: Arc::new(check),
            groups: vec![group::READINESS.to_owned()],
            critical: true,
            external: false,
            timeout: DEFAULT_TIMEOUT,
            ttl: DEFAULT_TTL,
            failures_before_down: 1,
            successes_before_up: 1,
            startup_grace: Duration::ZERO,
            period: None,
            initial_delay: Duration::ZERO,
            jitter: Duration::ZERO,
            slow_after: DEFAULT_TIMEOUT / 2,
        }
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Puts the check in these groups (replacing the default, readiness). Group names are
    /// `liveness`, `readiness`, `startup`, or custom groups declared on the builder.
    pub fn groups<I, S>(mut self, groups: I) -> Check
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Failure makes its groups Degraded rather than Down.
    pub fn optional(mut self) -> Check {
        self.critical = false;
        self
    }

    /// Marks the check as depending on an external system (database, another service). Such a
    /// check cannot be in the liveness group: restarting this process does not fix the other one.
    pub fn external(mut self) -> Check {
        self.external = true;
        self
    }

    /// The longest one run may take; then it is cancelled and reported Down (`error.type`
    /// `timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Check {
        self.timeout = timeout;
        self.slow_after = self.slow_after.min(timeout);
        self
    }

    /// How long a result is reused; concurrent requests after it expires share one run. Zero
    /// runs the check for every request (still one run at a time).
    pub fn ttl(mut self, ttl: Duration) -> Check {
        self.ttl = ttl;
        self
    }

    /// Consecutive failures before the check is reported Down (default 1).
    pub fn failures_before_down(mut self, n: u32) -> Check {
        self.failures_before_down = n;
        self
    }

    /// Consecutive successes before a Down check is reported Up again (default 1).
    pub fn successes_before_up(mut self, n: u32) -> Check {
        self.successes_before_up = n;
        self
    }

    /// For this long after registration, failures before the first success report Unknown
    /// (starting) rather than Down.
    pub fn startup_grace(mut self, grace: Duration) -> Check {
        self.startup_grace = grace;
        self
    }

    /// Runs the check every `period` in the background; requests read the last result and never
    /// run it. Needs a Tokio runtime when the registry is built.
    pub fn background(mut self, period: Duration) -> Check {
        self.period = Some(period);
        self
    }

    /// In background mode, waits this long before the first run.
    pub fn initial_delay(mut self, delay: Duration) -> Check {
        self.initial_delay = delay;
        self
    }

    /// In background mode, adds a random delay up to `jitter` before each run, so that many
    /// instances do not hit a shared dependency at once.
    pub fn jitter(mut self, jitter: Duration) -> Check {
        self.jitter = jitter;
        self
    }

    /// Runs slower than this are reported with a warning (default: half the timeout).
    pub fn slow_after(mut self, threshold: Duration) -> Check {
        self.slow_after = threshold;
        self
    }

    /// How long a response that includes this check may be cached by the prober.
    pub(crate) fn max_age(&self) -> Duration {
        self.period.unwrap_or(self.ttl)
    }
}
