//! The registry: checks by name, groups, aggregation, run-time changes and shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::Meter;
use tokio::sync::watch;

use crate::check::Check;
use crate::entry::{Entry, Stored};
use crate::error::{BuildError, Problem};
use crate::group;
use crate::report::{CheckReport, Report};
use crate::status::{CheckResult, Status};
use crate::telemetry::Telemetry;

/// A registry of health checks, cheap to clone (all clones share it).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use lookout_health::{Check, Health, Status, check_fn};
///
/// let health = Health::builder()
///     .check(Check::new("cache", check_fn(|| async { Status::Up })).groups(["liveness", "readiness"]))
///     .build()
///     .unwrap();
/// let ready = health.report("readiness").await.unwrap();
/// assert_eq!(ready.status(), Status::Up);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Health {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    groups: Vec<String>,
    checks: RwLock<BTreeMap<String, Arc<Entry>>>,
    shutting_down: AtomicBool,
    /// Set when the drain delay has passed: open gRPC Watch streams end, so a server's graceful
    /// shutdown is not held open by them.
    drained: AtomicBool,
    drain_delay: Duration,
    /// Bumped on every change of a reported status, registration, removal and shutdown.
    changes: watch::Sender<u64>,
    telemetry: Telemetry,
    /// The latest changes of a check's reported status, oldest first.
    transitions: std::sync::Mutex<std::collections::VecDeque<Transition>>,
}

/// How many status changes [`Health::transitions`] keeps.
pub const TRANSITIONS_KEPT: usize = 100;

/// A change of one check's reported status (after its hysteresis), as kept by
/// [`Health::transitions`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Transition {
    /// The check.
    pub check: String,
    /// The status before.
    pub from: Status,
    /// The status after.
    pub to: Status,
    /// When the run that changed it ended.
    pub at: SystemTime,
    /// The run's message.
    pub message: Option<String>,
}

/// Builds a [`Health`] registry; see [`Health::builder`].
#[derive(Debug, Default)]
#[must_use = "a health builder does nothing until .build() is called"]
pub struct HealthBuilder {
    groups: Vec<String>,
    checks: Vec<Check>,
    meter: Option<Meter>,
    tracer: Option<BoxedTracer>,
    drain_delay: Option<Duration>,
}

/// The default time between the start of shutdown (readiness turns OutOfService) and the end of
/// [`Health::shutdown`], so load balancers notice before the server stops.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(5);

impl HealthBuilder {
    /// Declares a custom group, served at `/health/{name}` and as a gRPC service name.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.groups.push(name.into());
        self
    }

    /// Adds a check.
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// The meter for `health.check.*` metrics (default: the global meter provider's
    /// `lookout-health` meter, so build the registry after `lookout::init`).
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The tracer for spans of failed runs and state changes (default: the global tracer
    /// provider's, looked up at each span).
    pub fn tracer<T>(mut self, tracer: T) -> Self
    where
        T: opentelemetry::trace::Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        self.tracer = Some(BoxedTracer::new(Box::new(tracer)));
        self
    }

    /// How long [`Health::shutdown`] waits after readiness turns OutOfService (default 5 s).
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = Some(delay);
        self
    }

    /// Checks everything and builds the registry; every problem is reported at once. Background
    /// checks start here, so a registry with any must be built inside a Tokio runtime.
    pub fn build(self) -> Result<Health, BuildError> {
        let mut problems = Vec::new();
        let mut groups: Vec<String> = group::BUILT_IN.iter().map(|g| (*g).to_owned()).collect();
        for g in self.groups {
            if !valid_group_name(&g) {
                problems.push(Problem::InvalidGroupName(g));
            } else if groups.contains(&g) {
                problems.push(Problem::DuplicateGroup(g));
            } else {
                groups.push(g);
            }
        }
        let mut names = Vec::new();
        for check in &self.checks {
            problems.extend(validate(check, &groups, &names));
            names.push(check.name.clone());
        }
        if !problems.is_empty() {
            return Err(BuildError::new(problems));
        }
        let meter = self.meter;
        let tracer = self.tracer;
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| Inner {
            groups,
            checks: RwLock::new(BTreeMap::new()),
            shutting_down: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            drain_delay: self.drain_delay.unwrap_or(DEFAULT_DRAIN_DELAY),
            changes: watch::Sender::new(0),
            telemetry: Telemetry::new(meter, weak.clone(), tracer),
            transitions: std::sync::Mutex::default(),
        });
        let health = Health { inner };
        for check in self.checks {
            health.insert(check)?;
        }
        Ok(health)
    }
}

fn valid_group_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

fn validate(check: &Check, groups: &[String], taken: &[String]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let name = &check.name;
    if name.is_empty() {
        problems.push(Problem::EmptyName);
    } else if taken.contains(name) {
        problems.push(Problem::DuplicateCheck(name.clone()));
    }
    for g in &check.groups {
        if !groups.contains(g) {
            problems.push(Problem::UnknownGroup {
                check: name.clone(),
                group: g.clone(),
                known: groups.to_vec(),
            });
        }
    }
    if check.external && check.groups.iter().any(|g| g == group::LIVENESS) {
        problems.push(Problem::ExternalInLiveness(name.clone()));
    }
    let invalid = |setting, reason| Problem::InvalidSetting {
        check: name.clone(),
        setting,
        reason,
    };
    if check.timeout.is_zero() {
        problems.push(invalid(
            "timeout",
            "is zero: give each run some time, e.g. 500 ms",
        ));
    }
    if check.failures_before_down == 0 {
        problems.push(invalid("failures_before_down", "is 0: use 1 or more"));
    }
    if check.successes_before_up == 0 {
        problems.push(invalid("successes_before_up", "is 0: use 1 or more"));
    }
    if check.period.is_some_and(|p| p.is_zero()) {
        problems.push(invalid("background", "period is zero: use e.g. 10 s"));
    }
    problems
}

impl Health {
    /// A builder with no checks and the built-in groups.
    pub fn builder() -> HealthBuilder {
        HealthBuilder::default()
    }

    fn insert(&self, check: Check) -> Result<(), BuildError> {
        let background = check.period.is_some();
        let runtime = tokio::runtime::Handle::try_current();
        if background && runtime.is_err() {
            return Err(BuildError::new(vec![Problem::NoRuntime(check.name)]));
        }
        let name = check.name.clone();
        let entry = Arc::new(Entry::new(check));
        {
            let mut checks = self.inner.checks.write().unwrap_or_else(|e| e.into_inner());
            if checks.contains_key(&name) {
                return Err(BuildError::new(vec![Problem::DuplicateCheck(name)]));
            }
            checks.insert(name, entry.clone());
        }
        if let (true, Ok(rt)) = (background, runtime) {
            let task = rt.spawn(crate::entry::background(
                entry.clone(),
                Arc::downgrade(&self.inner),
            ));
            *entry.background.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        }
        self.inner.changed();
        Ok(())
    }

    /// Registers a check at run time, with the same validation as the builder.
    pub fn register(&self, check: Check) -> Result<(), BuildError> {
        let problems = validate(&check, &self.inner.groups, &[]);
        if !problems.is_empty() {
            return Err(BuildError::new(problems));
        }
        self.insert(check)
    }

    /// Removes a check at run time (its background task stops). Returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        let removed = self
            .inner
            .checks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let Some(entry) = removed else {
            return false;
        };
        if let Some(task) = entry
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        self.inner.changed();
        true
    }

    /// The group names: `liveness`, `readiness`, `startup`, then the custom ones.
    pub fn groups(&self) -> &[String] {
        &self.inner.groups
    }

    /// The names of the registered checks, sorted.
    pub fn check_names(&self) -> Vec<String> {
        self.inner
            .entries()
            .into_iter()
            .map(|e| e.check.name.clone())
            .collect()
    }

    /// The latest changes of a check's reported status (at most [`TRANSITIONS_KEPT`]), oldest
    /// first: what lookout-admin's health page shows as history.
    pub fn transitions(&self) -> Vec<Transition> {
        let kept = self
            .inner
            .transitions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        kept.iter().cloned().collect()
    }

    /// Evaluates a group (`""` for every check), running the checks whose results are older than
    /// their TTL, concurrently. `None` if there is no such group.
    pub async fn report(&self, group: &str) -> Option<Report> {
        if !group.is_empty() && !self.inner.groups.iter().any(|g| g == group) {
            return None;
        }
        let entries: Vec<Arc<Entry>> = self
            .inner
            .entries()
            .into_iter()
            .filter(|e| group.is_empty() || e.check.groups.iter().any(|g| g == group))
            .collect();
        let stopped = self.is_shutting_down() && stops_at_shutdown(group);
        let results: Vec<Option<Arc<Stored>>> = if stopped {
            entries.iter().map(|e| e.peek()).collect()
        } else {
            futures_util::future::join_all(entries.iter().map(|e| e.current(&self.inner))).await
        };
        Some(aggregate(group, &entries, results, stopped))
    }

    /// Evaluates a single check by name (running it if its result is stale).
    pub async fn report_check(&self, name: &str) -> Option<CheckReport> {
        let entry = self.inner.entry(name)?;
        let stored = entry.current(&self.inner).await;
        Some(check_report(&entry, stored.as_deref(), true))
    }

    /// Starts shutting down: readiness (and the all-checks aggregate) turn OutOfService at once,
    /// liveness keeps reporting its checks. Idempotent.
    pub fn begin_shutdown(&self) {
        if !self.inner.shutting_down.swap(true, Ordering::SeqCst) {
            tracing::info!(
                target: "lookout_health",
                "shutting down: readiness is now OUT_OF_SERVICE"
            );
            self.inner.changed();
        }
    }

    /// [`begin_shutdown`](Self::begin_shutdown), then waits the drain delay so load balancers
    /// stop sending traffic before the server stops; then ends open gRPC `Watch` streams (which
    /// would otherwise hold a graceful server shutdown open forever).
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        tokio::time::sleep(self.inner.drain_delay).await;
        self.inner.drained.store(true, Ordering::SeqCst);
        self.inner.changed();
    }

    /// Whether [`shutdown`](Self::shutdown) has finished its drain delay.
    #[cfg(feature = "grpc")]
    pub(crate) fn is_drained(&self) -> bool {
        self.inner.drained.load(Ordering::SeqCst)
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Notified on every change of a reported status, registration, removal and shutdown.
    #[cfg(feature = "grpc")]
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// The shortest TTL or period among the checks: how often watchers re-evaluate.
    #[cfg(feature = "grpc")]
    pub(crate) fn shortest_max_age(&self) -> Option<Duration> {
        self.inner.entries().iter().map(|e| e.check.max_age()).min()
    }
}

/// Groups that turn OutOfService when shutdown begins.
fn stops_at_shutdown(group: &str) -> bool {
    group.is_empty() || group == group::READINESS
}

fn aggregate(
    group: &str,
    entries: &[Arc<Entry>],
    results: Vec<Option<Arc<Stored>>>,
    stopped: bool,
) -> Report {
    let liveness = group == group::LIVENESS;
    let mut status = Status::Up;
    let mut checks = Vec::with_capacity(entries.len());
    for (entry, stored) in entries.iter().zip(results) {
        let reported = stored.as_ref().map_or(Status::Unknown, |s| s.result.status);
        // Liveness ignores checks that have not produced a result yet.
        let counted = !(liveness && reported == Status::Unknown);
        if counted {
            let contribution = if entry.check.critical {
                reported
            } else {
                reported.min(Status::Degraded)
            };
            status = status.worst(contribution);
        }
        checks.push(check_report(entry, stored.as_deref(), counted));
    }
    if stopped {
        status = Status::OutOfService;
    }
    Report {
        group: group.to_owned(),
        status,
        checks,
        max_age: entries.iter().map(|e| e.check.max_age()).min(),
    }
}

fn check_report(entry: &Entry, stored: Option<&Stored>, counted: bool) -> CheckReport {
    CheckReport {
        name: entry.check.name.clone(),
        critical: entry.check.critical,
        result: stored.map_or_else(
            || CheckResult::new(Status::Unknown).with_message("no result yet"),
            |s| s.result.clone(),
        ),
        duration: stored.map(|s| s.duration),
        counted,
    }
}

impl Inner {
    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        self.checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        self.checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Telemetry and notifications after a run.
    pub(crate) fn after_run(
        &self,
        entry: &Entry,
        changed_from: Option<Status>,
        stored: &Stored,
        start_time: SystemTime,
    ) {
        self.telemetry
            .record_run(&entry.check, changed_from, stored, start_time);
        if let Some(from) = changed_from {
            let mut kept = self.transitions.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() >= TRANSITIONS_KEPT {
                kept.pop_front();
            }
            kept.push_back(Transition {
                check: entry.check.name.clone(),
                from,
                to: stored.result.status(),
                at: SystemTime::now(),
                message: stored.result.message().map(str::to_owned),
            });
            drop(kept);
            self.changed();
        }
    }
}
