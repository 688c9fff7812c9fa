//! lookout's batch span processor for OTLP over protobuf (gRPC and `http/protobuf`): each span is
//! fixed up (a key set twice kept once, the value length limit) and encoded ([`SpanEncoder`]) on
//! the thread that ends it, and only its bytes are queued, one buffer per batch ([`Encoded`]).
//!
//! Why not the SDK's `BatchSpanProcessor` there, as with every other exporter: it hands each
//! span's `SpanData` to its worker thread, which hands the batch to the export. A span of the
//! `#[instrument]` shape is a dozen small allocations (its attribute and event vectors, their
//! strings), made on the application thread and freed on another: the allocator's slow path on
//! both sides (glibc refills the application thread's cache from its arena under a lock, and the
//! freeing thread takes that lock for each one), and the 300-byte `SpanData` copied into the
//! channel, out of it and into the batch. Encoded where it ends, the span is freed where it was
//! allocated and one buffer crosses per batch (BENCHMARKS.md, export ladder: 28 % less CPU per
//! exported span). The cost moves to the span's end: the encoding (about 0.3 µs there).
//!
//! The batching is the SDK's: an export when `max_export_batch_size` spans are waiting or
//! `scheduled_delay` has passed, on a worker thread of its own; force flush exports what is
//! waiting; shutdown exports it and stops. The queue's bound and its accounting are lookout's
//! ([`Queue`]) as for the SDK's processor: a span that arrives after shutdown is counted dropped.
//! The local view is shown each batch from its bytes (`view::traces`: a glance for the summary,
//! decoded when it keeps the span).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use super::OtlpExporter;
use super::encode::{Encoded, Item, SpanEncoder};
use crate::config::{BatchSettings, Signal};
use crate::export::queue::Queue;
use crate::export::runtime::ExportRuntime;
use crate::stats::COUNTERS;

/// The span processor (see the module doc).
#[derive(Debug)]
pub(crate) struct EncodingBatch {
    shared: Arc<Shared>,
    encoder: SpanEncoder,
    value_limit: Option<usize>,
    /// How long force flush waits for the worker.
    flush_limit: Duration,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// The worker waits here for a full batch, a flush or shutdown.
    wake: Condvar,
    /// Flushes and shutdown wait here for the worker.
    settled: Condvar,
    max_batch: usize,
    delay: Duration,
    queue: Arc<Queue>,
    exporter: Mutex<OtlpExporter>,
    runtime: Arc<ExportRuntime>,
    /// The local view, shown each batch.
    view: Option<Arc<crate::view::Store>>,
}

#[derive(Debug, Default)]
struct State {
    /// The spans waiting.
    batch: Encoded,
    /// The bytes the last batch taken held: the next one's buffer starts that large.
    last_bytes: usize,
    /// Flushes asked for and flushes done: the worker has exported everything queued before the
    /// `done`th request.
    asked: u64,
    done: u64,
    stop: bool,
    stopped: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EncodingBatch {
    pub(crate) fn new(
        exporter: OtlpExporter,
        batch: &BatchSettings,
        value_limit: Option<usize>,
        queue: Arc<Queue>,
        runtime: Arc<ExportRuntime>,
    ) -> std::io::Result<Self> {
        let encoder = SpanEncoder::new(exporter.redaction().clone(), exporter.request_limit());
        let max_batch = batch.max_export_batch_size.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                batch: Encoded::with_capacity(max_batch.min(4096), 64 * 1024),
                ..State::default()
            }),
            wake: Condvar::new(),
            settled: Condvar::new(),
            max_batch,
            // Validated above zero; a floor all the same, so that the idle worker never spins.
            delay: batch.scheduled_delay.max(Duration::from_millis(1)),
            queue,
            exporter: Mutex::new(exporter),
            view: runtime.view(),
            runtime,
        });
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("lookout-spans".into())
                .spawn(move || shared.run())?
        };
        let flush_limit = if batch.export_timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            batch.export_timeout + Duration::from_secs(1)
        };
        Ok(Self {
            shared,
            encoder,
            value_limit,
            flush_limit,
            worker: Mutex::new(Some(worker)),
        })
    }
}

impl Shared {
    /// The worker: a batch out when one is full, when the delay has passed with spans waiting, or
    /// when a flush or shutdown asks; until shutdown has exported what was queued.
    fn run(&self) {
        // What the worker does (the export's diagnostics, the transport) is not the program's
        // telemetry.
        struct Suppressed;
        impl Drop for Suppressed {
            fn drop(&mut self) {
                crate::export::runtime::end_suppression();
            }
        }
        crate::export::runtime::suppress_telemetry();
        let _suppressed = Suppressed;
        let mut next = Instant::now() + self.delay;
        loop {
            let mut state = lock(&self.state);
            loop {
                let now = Instant::now();
                let due = state.stop
                    || state.asked > state.done
                    || state.batch.items.len() >= self.max_batch
                    || (now >= next && !state.batch.items.is_empty());
                if due {
                    break;
                }
                if now >= next {
                    next = now + self.delay;
                }
                state = self
                    .wake
                    .wait_timeout(state, next.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let batch = if state.batch.items.len() > self.max_batch {
                state.batch.split_off_front(self.max_batch)
            } else {
                let fresh = Encoded::with_capacity(
                    self.max_batch.min(4096),
                    state.last_bytes.max(4096),
                );
                std::mem::replace(&mut state.batch, fresh)
            };
            state.last_bytes = batch.bytes.len();
            let (asked, stop) = (state.asked, state.stop);
            drop(state);
            if !batch.items.is_empty() {
                self.queue.leave(batch.items.len());
                if let Some(view) = &self.view {
                    view.encoded_spans(&batch);
                }
                let export = lock(&self.exporter).export_encoded(batch);
                // Bounded by the export timeout (the client's), shortened by shutdown's deadline.
                let _ = self.runtime.block_on(export);
                next = Instant::now() + self.delay;
            }
            let mut state = lock(&self.state);
            if state.batch.items.is_empty() {
                if asked > state.done {
                    state.done = asked;
                    self.settled.notify_all();
                }
                if stop {
                    state.stopped = true;
                    self.settled.notify_all();
                    return;
                }
            }
        }
    }
}

impl SpanProcessor for EncodingBatch {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, mut span: SpanData) {
        crate::u64_fields::dedup_keep_last(&mut span.attributes);
        if let Some(limit) = self.value_limit {
            crate::export::fixups::truncate_values(&mut span.attributes, limit);
            for event in span.events.events.iter_mut() {
                crate::export::fixups::truncate_values(&mut event.attributes, limit);
            }
        }
        // The scope travels with the bytes (it is not part of the `Span` message).
        let mut scope = Some(std::mem::take(&mut span.instrumentation_scope));
        let (mut stopped, mut full) = (false, false);
        let max_batch = self.shared.max_batch;
        let mut push = |bytes: &[u8]| {
            let mut state = lock(&self.shared.state);
            if state.stop {
                stopped = true;
                return;
            }
            state.batch.push_bytes(scope.take().unwrap_or_default(), bytes);
            full = state.batch.items.len() == max_batch;
        };
        if !self.encoder.encode(&span, &mut push) {
            span.instrumentation_scope = scope.take().unwrap_or_default();
            let mut state = lock(&self.shared.state);
            if state.stop {
                stopped = true;
            } else {
                state.batch.items.push(Item::Whole(Box::new(span)));
                full = state.batch.items.len() == max_batch;
            }
        }
        if stopped {
            self.shared.queue.leave(1);
            COUNTERS.signal(Signal::Traces).dropped.fetch_add(1, Relaxed);
        } else if full {
            self.shared.wake.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut state = lock(&self.shared.state);
        if state.stopped {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        state.asked += 1;
        let asked = state.asked;
        self.shared.wake.notify_one();
        let (state, waited) = self
            .shared
            .settled
            .wait_timeout_while(state, self.flush_limit, |s| s.done < asked && !s.stopped)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() && state.done < asked {
            return Err(OTelSdkError::Timeout(self.flush_limit));
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let mut state = lock(&self.shared.state);
        if state.stop {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        state.stop = true;
        self.shared.wake.notify_one();
        let (state, _) = self
            .shared
            .settled
            .wait_timeout_while(state, timeout, |s| !s.stopped)
            .unwrap_or_else(|e| e.into_inner());
        if !state.stopped {
            return Err(OTelSdkError::Timeout(timeout));
        }
        drop(state);
        if let Some(worker) = lock(&self.worker).take() {
            let _ = worker.join();
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        use opentelemetry_sdk::trace::SpanExporter as _;
        lock(&self.shared.exporter).set_resource(resource);
    }
}

impl Drop for EncodingBatch {
    /// Dropped without shutdown: the worker exports what is queued and ends, unwaited.
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_one();
    }
}
