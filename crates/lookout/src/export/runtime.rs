//! lookout's own small Tokio runtime for export I/O.
//!
//! Exports never run on the application's runtime: a `current_thread` runtime busy in `main`, or
//! no runtime at all, cannot starve or deadlock them (opentelemetry-rust #2715), and shutdown works
//! the same from a sync `main`, an async `main`, and a `Drop`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use tokio::runtime::{Handle, Runtime};

#[derive(Debug)]
pub(crate) struct ExportRuntime {
    runtime: Mutex<Option<Runtime>>,
    handle: Handle,
    /// Set by shutdown: no export may outlast it.
    deadline: Mutex<Option<Instant>>,
    /// The local view's stores, fed by the batch workers.
    view: Option<std::sync::Arc<crate::view::Store>>,
    /// The exports in flight of each signal (traces, metrics, logs).
    flights: [std::sync::Arc<InFlight>; 3],
}

/// The exports of one signal sent in the background by lookout's OTLP client, so that the batch
/// worker starts the next batch without waiting for a slow answer: at most `max` at a time (the
/// worker waits for a free place beyond that; its bounded queue then drops, counts, and says that
/// the destination's answers were the bottleneck: [`saturated`](Self::saturated)), and a way to
/// wait until none is left (force flush, shutdown).
#[derive(Debug)]
#[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
pub(crate) struct InFlight {
    pub(crate) max: usize,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    running: Mutex<usize>,
    idle: std::sync::Condvar,
    /// A place was wanted while every one was taken, since [`saturated`](Self::saturated) last
    /// looked: the destination answers more slowly than batches come.
    full: std::sync::atomic::AtomicBool,
}

#[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
impl InFlight {
    fn new(max: usize) -> Self {
        let max = max.max(1);
        InFlight {
            max,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(max)),
            running: Mutex::new(0),
            idle: std::sync::Condvar::new(),
            full: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Waits for a free place, and takes it until the permit is dropped.
    pub(crate) async fn place(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                self.full.store(true, std::sync::atomic::Ordering::Relaxed);
                self.permits.clone().acquire_owned().await.ok()?
            }
            Err(tokio::sync::TryAcquireError::Closed) => return None,
        };
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Some(permit)
    }

    /// A free place taken now, or `None` when every one is taken (never waits).
    pub(crate) fn try_place(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.full.store(true, std::sync::atomic::Ordering::Relaxed);
            return None;
        };
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Some(permit)
    }

    /// Whether every place is taken now, or a place was wanted while they were since the last
    /// call (which forgets that).
    pub(crate) fn saturated(&self) -> bool {
        let was = self.full.swap(false, std::sync::atomic::Ordering::Relaxed);
        was || *self.running.lock().unwrap_or_else(|e| e.into_inner()) >= self.max
    }

    /// An export started with [`place`](Self::place) ended.
    pub(crate) fn done(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        if *running == 0 {
            self.idle.notify_all();
        }
    }

    /// Runs a processor's `flush`, then waits for the exports it left in flight (each bounded by
    /// `export_timeout`).
    pub(crate) fn flush(
        &self,
        export_timeout: Duration,
        flush: impl FnOnce() -> OTelSdkResult,
    ) -> OTelSdkResult {
        let result = flush();
        let limit = if export_timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            export_timeout + Duration::from_millis(200)
        };
        self.wait_idle(limit);
        result
    }

    /// Runs a processor's `shutdown`, then waits for the exports in flight within what is left
    /// of `timeout`.
    pub(crate) fn shut_down(
        &self,
        timeout: Duration,
        shutdown: impl FnOnce() -> OTelSdkResult,
    ) -> OTelSdkResult {
        let started = Instant::now();
        let result = shutdown();
        self.wait_idle(timeout.saturating_sub(started.elapsed()));
        result
    }

    /// Blocks until no export is in flight, at most `limit`; whether none is.
    pub(crate) fn wait_idle(&self, limit: Duration) -> bool {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let (running, _) = self
            .idle
            .wait_timeout_while(running, limit, |n| *n > 0)
            .unwrap_or_else(|e| e.into_inner());
        *running == 0
    }
}

thread_local! {
    /// Held for the life of each of lookout's export threads.
    static SUPPRESSED: std::cell::RefCell<Option<opentelemetry::ContextGuard>> =
        const { std::cell::RefCell::new(None) };
    /// Whether this thread is exporting: one of lookout's export threads, or an SDK worker while
    /// it runs an export ([`InRuntime`]).
    static EXPORTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is exporting. Spans that end and log records emitted there are the
/// transport's (tonic, h2, hyper, reqwest, rustls, lookout's export diagnostics) and are not taken
/// into the pipeline (`SpanIntake`, `LogIntake`): suppression alone does not cover a span with an
/// explicit `parent: None`, which tracing-opentelemetry starts from an empty context, nor the
/// records inside it.
pub(crate) fn on_export_thread() -> bool {
    EXPORTING.try_with(std::cell::Cell::get).unwrap_or(false)
}

/// Suppresses telemetry on this thread until it ends (or [`SUPPRESSED`] is emptied), and marks it
/// as exporting: lookout's export threads and its span batch worker.
pub(crate) fn suppress_telemetry() {
    let _ = EXPORTING.try_with(|e| e.set(true));
    let _ = SUPPRESSED.try_with(|s| {
        s.borrow_mut()
            .get_or_insert_with(opentelemetry::Context::enter_telemetry_suppressed_scope);
    });
}

/// Ends what [`suppress_telemetry`] began, before the thread's locals are destroyed (the
/// OpenTelemetry context it restores is one of them).
pub(crate) fn end_suppression() {
    let _ = SUPPRESSED.try_with(|s| s.borrow_mut().take());
}

impl ExportRuntime {
    pub(crate) fn start(
        view: Option<std::sync::Arc<crate::view::Store>>,
        concurrency: usize,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lookout-export")
            // What the transport does here (tonic, h2, hyper, reqwest, rustls, lookout's own
            // diagnostics) must never become exported telemetry, or each export would feed the
            // next: the SDK's tracer and logger drop what a suppressed context makes (as its own
            // batch workers do). Test: the_export_does_not_feed_itself.
            .on_thread_start(suppress_telemetry)
            .on_thread_stop(end_suppression)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(Self {
            runtime: Mutex::new(Some(runtime)),
            handle,
            deadline: Mutex::new(None),
            view,
            flights: std::array::from_fn(|_| std::sync::Arc::new(InFlight::new(concurrency))),
        })
    }

    /// The exports in flight of `signal`.
    pub(crate) fn flight(&self, signal: crate::config::Signal) -> std::sync::Arc<InFlight> {
        self.flights[crate::config::signal_index(signal)].clone()
    }

    /// Runs `future` to completion on the calling thread (not one of this runtime's), inside this
    /// runtime's context.
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Spawns `future` on this runtime.
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(future);
    }

    /// The local view's stores, when it is on.
    pub(crate) fn view(&self) -> Option<std::sync::Arc<crate::view::Store>> {
        self.view.clone()
    }

    #[cfg(feature = "grpc")]
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    pub(crate) fn set_deadline(&self, deadline: Instant) {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
    }

    /// The configured timeout (zero = none), shortened to the shutdown deadline when one is set.
    pub(crate) fn effective_timeout(&self, configured: Duration) -> Option<Duration> {
        let configured = (!configured.is_zero()).then_some(configured);
        let deadline = *self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        match (configured, deadline) {
            (c, None) => c,
            (None, Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            (Some(c), Some(d)) => Some(c.min(d.saturating_duration_since(Instant::now()))),
        }
    }

    /// Runs `export` inside this runtime's context (wherever it is polled from) with a time limit.
    pub(crate) fn run<'a>(
        &self,
        timeout: Duration,
        export: impl Future<Output = OTelSdkResult> + Send + 'a,
    ) -> InRuntime<'a> {
        let timeout = self.effective_timeout(timeout);
        InRuntime {
            handle: self.handle.clone(),
            future: Box::pin(async move {
                match timeout {
                    None => export.await,
                    Some(limit) => tokio::time::timeout(limit, export)
                        .await
                        .unwrap_or(Err(OTelSdkError::Timeout(limit))),
                }
            }),
        }
    }

    /// Runs `future` inside this runtime's context (wherever it is polled from), with no limit
    /// of its own: for futures that bound themselves.
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    pub(crate) fn enter<'a>(
        &self,
        future: impl Future<Output = OTelSdkResult> + Send + 'a,
    ) -> InRuntime<'a> {
        InRuntime {
            handle: self.handle.clone(),
            future: Box::pin(future),
        }
    }

    /// Every second, says what `queue` dropped (a hung export holds the processor that would
    /// otherwise say it). Ends with the runtime.
    pub(crate) fn watch(&self, queue: &std::sync::Arc<super::queue::Queue>) {
        queue.exports_in(self.flight(queue.signal()));
        let queue = std::sync::Arc::downgrade(queue);
        self.handle.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match queue.upgrade() {
                    Some(queue) => queue.say_drops(),
                    None => return,
                }
            }
        });
    }

    /// Stops the runtime without waiting for tasks still running (they are abandoned exports).
    pub(crate) fn stop(&self) {
        if let Some(rt) = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            rt.shutdown_background();
        }
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A future that enters the export runtime each time it is polled, so Tokio timers and sockets
/// work even when the SDK's worker thread drives it with a plain executor.
pub(crate) struct InRuntime<'a> {
    handle: Handle,
    future: Pin<Box<dyn Future<Output = OTelSdkResult> + Send + 'a>>,
}

impl Future for InRuntime<'_> {
    type Output = OTelSdkResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<OTelSdkResult> {
        let this = &mut *self;
        let _entered = this.handle.enter();
        // The export runs here for this poll (an SDK worker's thread): what its transport does
        // is not telemetry of the program.
        let was = EXPORTING.try_with(|e| e.replace(true)).unwrap_or(true);
        let poll = this.future.as_mut().poll(cx);
        let _ = EXPORTING.try_with(|e| e.set(was));
        poll
    }
}
