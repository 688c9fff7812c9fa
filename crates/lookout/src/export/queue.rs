//! lookout's bound on each batch processor's queue: what a full queue turns away is counted, said
//! and seen by the pipeline health check (the intakes on the application thread, the dequeues on
//! the batch worker).

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use super::runtime::InFlight;
use crate::config::Signal;
use crate::stats::COUNTERS;

/// lookout's own bound on a batch processor's queue, so that what a full queue turns away is
/// counted (`lookout::stats().traces.dropped`), said in a WARN and seen by the pipeline health
/// check. The SDK's processor drops silently when its channel is full (its warning needs the
/// `internal-logs` feature and is said once per process); its channel is made larger than this
/// bound, so it never fills and every drop happens, and is counted, here.
#[derive(Debug)]
pub(crate) struct Queue {
    signal: Signal,
    bound: usize,
    /// Items handed to the processor and not yet to the exporter: in its channel or being
    /// batched.
    queued: AtomicUsize,
    /// The dropped count when the last WARN was said, and when.
    warned: Mutex<(u64, Option<Instant>)>,
    /// The exports in flight of this signal, when lookout's OTLP client sends them: their places
    /// all taken is a destination answering late, which the WARN names.
    flight: std::sync::OnceLock<Arc<InFlight>>,
}

/// At most one WARN about a full queue per signal in this interval.
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

impl Queue {
    pub(crate) fn new(signal: Signal, bound: usize) -> Arc<Queue> {
        Arc::new(Queue {
            signal,
            bound,
            queued: AtomicUsize::new(0),
            warned: Mutex::new((0, None)),
            flight: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn signal(&self) -> Signal {
        self.signal
    }

    /// The exports in flight that take this queue's items.
    pub(crate) fn exports_in(&self, flight: Arc<InFlight>) {
        let _ = self.flight.set(flight);
    }

    /// The SDK processor's channel size: room for a batch being taken out on top of the bound.
    pub(crate) fn sdk_capacity(bound: usize, batch: usize) -> usize {
        bound.saturating_add(batch)
    }

    /// Takes a place in the queue; `false` (counted as dropped) when it is full.
    fn enter(&self) -> bool {
        if self.queued.fetch_add(1, Relaxed) < self.bound {
            return true;
        }
        self.queued.fetch_sub(1, Relaxed);
        self.turned_away();
        false
    }

    /// Takes up to `want` places at once, for items to come (a shard of lookout's span processor
    /// takes a few at a time, so that its thread writes the shared count once per few spans):
    /// how many it got, fewer near the bound, 0 when the queue is full. Places not used are
    /// given back ([`release`](Self::release)).
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    pub(crate) fn reserve(&self, want: usize) -> usize {
        let before = self.queued.fetch_add(want, Relaxed);
        let got = self.bound.saturating_sub(before).min(want);
        if got < want {
            self.queued.fetch_sub(want - got, Relaxed);
        }
        got
    }

    /// Places taken by [`reserve`](Self::reserve) and not used.
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            let _ = self
                .queued
                .fetch_update(Relaxed, Relaxed, |q| Some(q.saturating_sub(n)));
        }
    }

    /// Whether half the queue's places are taken.
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    pub(crate) fn half_full(&self) -> bool {
        self.queued.load(Relaxed) >= self.bound / 2
    }

    /// `n` items left the queue for the exporter from an application thread (a batch the worker
    /// was late for, `otlp::batch`): as [`leave`](Self::leave), but drops are said by the worker
    /// and the export runtime, never on the application's thread.
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    pub(crate) fn handed_over(&self, n: usize) {
        self.release(n);
    }

    /// An item turned away from a full queue (or after shutdown): counted as dropped.
    pub(crate) fn turned_away(&self) {
        COUNTERS.signal(self.signal).dropped.fetch_add(1, Relaxed);
    }

    /// `n` items left the queue for the exporter.
    pub(super) fn leave(&self, n: usize) {
        let _ = self
            .queued
            .fetch_update(Relaxed, Relaxed, |q| Some(q.saturating_sub(n)));
        self.say_drops();
    }

    /// Says how many items were dropped since the last time: the first drop at once, then at
    /// most once a minute. Runs on the processor's thread or lookout's export runtime (which
    /// checks every second, so that drops during a hung export are said too), never in the
    /// application's.
    pub(crate) fn say_drops(&self) {
        // Looked at on every call (each batch, and each second), so that it speaks of the time
        // the drops happened in.
        let saturated = self.flight.get().filter(|f| f.saturated());
        let dropped = COUNTERS.signal(self.signal).dropped.load(Relaxed);
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        let (said, at) = *warned;
        if dropped <= said || at.is_some_and(|t| t.elapsed() < DROP_WARNING_INTERVAL) {
            return;
        }
        *warned = (dropped, Some(Instant::now()));
        drop(warned);
        let (variable, knob) = match self.signal {
            Signal::Logs => ("OTEL_BLRP_MAX_QUEUE_SIZE", "raise the log level filter"),
            _ => (
                "OTEL_BSP_MAX_QUEUE_SIZE",
                "lower the sampling ratio (OTEL_TRACES_SAMPLER_ARG)",
            ),
        };
        let outage = COUNTERS.in_outage(self.signal);
        // An export still waiting while the queue overflows: the destination is the bottleneck.
        let waiting = COUNTERS.signal(self.signal).in_flight.load(Relaxed) > 0;
        // Every export place taken while the queue overflowed, and no outage: the destination
        // answers, more slowly than items come.
        if let (false, Some(flight)) = (outage, saturated) {
            tracing::warn!(
                target: "lookout::export",
                signal = %self.signal,
                dropped = dropped - said,
                queue = self.bound,
                exports_in_flight = flight.max,
                "the {} export queue ({} items) was full: {} items were dropped (lookout::stats() counts them) \
                 while all {} exports in flight waited for the destination's answers: it is not taking exports \
                 as fast as they come. Raise LOOKOUT_EXPORT_CONCURRENCY (up to 64) or {variable} to ride out \
                 its slow answers, or {knob}",
                self.signal,
                self.bound,
                dropped - said,
                flight.max,
            );
        } else if outage || waiting {
            let cause = COUNTERS
                .snapshot()
                .last_error
                .filter(|e| e.signal == self.signal && !e.resolved)
                .map_or_else(|| "it has not answered".to_owned(), |e| e.message);
            tracing::warn!(
                target: "lookout::export",
                signal = %self.signal,
                dropped = dropped - said,
                queue = self.bound,
                "the {} export queue ({} items) was full: {} items were dropped (lookout::stats() counts them) \
                 because the destination is not taking exports ({cause}). They will flow again once it is back; \
                 a larger {variable} rides out a longer outage",
                self.signal,
                self.bound,
                dropped - said,
            );
        } else {
            tracing::warn!(
                target: "lookout::export",
                signal = %self.signal,
                dropped = dropped - said,
                queue = self.bound,
                "the {} export queue ({} items) was full: {} items were dropped (lookout::stats() counts them). \
                 The exporter cannot keep up: {knob}, raise {variable}, or give the process more CPU",
                self.signal,
                self.bound,
                dropped - said,
            );
        }
    }
}

/// In front of a batch processor: counts what it is handed, drops it when lookout's bound on the
/// queue is reached, and keeps the exporters' own transport out (`on_export_thread`). Runs in the
/// application thread at every span end and log record, so it does nothing else. Flush and
/// shutdown also wait for the exports still in flight after the processor handed them on.
#[derive(Debug)]
pub(crate) struct Intake<P> {
    inner: P,
    queue: Arc<Queue>,
    flight: Arc<InFlight>,
    timeout: Duration,
    /// The processor counts what it is handed and takes its places in the queue itself (lookout's
    /// span processor, a few places at a time per thread: `export::otlp::batch`).
    counts_itself: bool,
}

/// The span side of [`Intake`].
pub(crate) type SpanIntake<P> = Intake<P>;
/// The log side of [`Intake`].
pub(crate) type LogIntake<P> = Intake<P>;

impl<P> Intake<P> {
    pub(crate) fn new(inner: P, queue: Arc<Queue>, flight: Arc<InFlight>, timeout: Duration) -> Self {
        Self {
            inner,
            queue,
            flight,
            timeout,
            counts_itself: false,
        }
    }

    /// In front of a processor that counts and queues what it is handed itself.
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    pub(crate) fn counting_inside(mut self) -> Self {
        self.counts_itself = true;
        self
    }
}

impl<P: SpanProcessor> SpanProcessor for Intake<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        if super::runtime::on_export_thread() {
            return;
        }
        crate::view::RUNNING.started(span);
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        // The exporters' own transport (see `on_export_thread`): never fed back into the export.
        if super::runtime::on_export_thread() {
            return;
        }
        crate::view::RUNNING.ended(span.span_context.span_id());
        if !span.span_context.is_sampled() {
            return;
        }
        crate::u64_fields::apply_closing(&mut span.attributes);
        if self.counts_itself {
            self.inner.on_end(span);
            return;
        }
        COUNTERS
            .signal(Signal::Traces)
            .accepted
            .add(1);
        if self.queue.enter() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flight.flush(self.timeout, || self.inner.force_flush())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.flight
            .shut_down(timeout, || self.inner.shutdown_with_timeout(timeout))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<P: LogProcessor> LogProcessor for Intake<P> {
    fn emit(&self, data: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        // The exporters' own transport and lookout's export diagnostics (see
        // `on_export_thread`): shown on the console, never fed back into the export.
        if super::runtime::on_export_thread() {
            return;
        }
        COUNTERS.signal(Signal::Logs).accepted.add(1);
        if self.queue.enter() {
            self.inner.emit(data, instrumentation);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flight.flush(self.timeout, || self.inner.force_flush())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.flight
            .shut_down(timeout, || self.inner.shutdown_with_timeout(timeout))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Takes each batch of log records off lookout's count of the export queue, and shows it to the
/// local view.
#[derive(Debug)]
pub(crate) struct LogDequeue<E> {
    inner: E,
    queue: Arc<Queue>,
    view: Option<Arc<crate::view::Store>>,
}

impl<E> LogDequeue<E> {
    pub(crate) fn new(inner: E, queue: Arc<Queue>, view: Option<Arc<crate::view::Store>>) -> Self {
        Self { inner, queue, view }
    }
}

impl<E: LogExporter> LogExporter for LogDequeue<E> {
    fn export(&self, batch: LogBatch<'_>) -> impl Future<Output = OTelSdkResult> + Send {
        self.queue.leave(batch.iter().count());
        if let Some(view) = &self.view {
            view.logs(&batch);
        }
        self.inner.export(batch)
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
