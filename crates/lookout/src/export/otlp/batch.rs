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
//!
//! Nothing a span's end writes is shared with another sending thread: each thread encodes into a
//! shard of its own ([`Shard`], one per [`stripe`](crate::stats::stripe), on cache lines of its
//! own), takes its places in the queue a few at a time ([`Queue::reserve`]) and tells the worker
//! what is waiting once per as many spans (`Shared::waiting`); the accepted count is striped too.
//! The worker gathers every shard when a batch's worth is told, when the delay has passed, and for
//! a flush or shutdown. One lock and one queue count shared by every thread was the largest part
//! of what a second sending thread added to each span (BENCHMARKS.md, span cost against the
//! peers, `lookout-otlp`).
//!
//! A late worker does not cost spans: when a thread's shard holds a batch's worth the worker was
//! told of and half the queue is taken, the worker has not had a core for a while (a 2-vCPU host
//! under load leaves a thread waiting many milliseconds; at 100,000 spans a second the default
//! queue fills in 20), and the thread ending the spans sends that batch itself
//! (`Shared::send_late`): onto the export runtime, without waiting for anything — not when the
//! exporter is busy being handed a batch, not when every export place is taken (then the queue's
//! bound holds as before). What is in memory stays bounded by the queue and the exports in flight.
//! The local view is shown such a batch on the export runtime.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
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
    /// Where sending threads put their spans, one shard per stripe (a power of two of them).
    shards: Box<[Shard]>,
    /// Spans in the shards that their threads have told the worker about, `step` at a time.
    waiting: AtomicUsize,
    /// Spans the worker gathered and holds for the next batch (fewer than a batch).
    carried: AtomicUsize,
    /// How many spans a shard takes places for at once, and tells the worker about at once.
    step: usize,
    /// Shutdown has begun: spans that end now are dropped (counted). Set under `state`'s lock.
    stopping: AtomicBool,
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
    /// Tests: the worker waits while this is set (a worker the scheduler keeps off the cores).
    #[cfg(test)]
    held: AtomicBool,
    /// Tests: spans sent by the threads that ended them ([`Shared::send_late`]).
    #[cfg(test)]
    sent_late: AtomicUsize,
}

/// One thread's (or a few threads') spans, on cache lines of its own.
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    slot: Mutex<Slot>,
    /// Places in the queue taken ([`Queue::reserve`]) and not yet used. Changed only under the
    /// slot's lock; read without it as a hint (`Shared::reclaim`).
    reserved: AtomicUsize,
}

#[derive(Debug, Default)]
struct Slot {
    batch: Encoded,
    /// Spans in `batch` not yet told to the worker (`Shared::waiting`).
    untold: usize,
    /// The bytes the shard held when last gathered: its next buffer starts that large.
    last_bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Flushes asked for and flushes done: the worker has exported everything queued before the
    /// `done`th request.
    asked: u64,
    done: u64,
    stop: bool,
    stopped: bool,
}

/// The most room an empty shard keeps, in bytes.
const IDLE_ROOM: usize = 256 * 1024;

/// An idle shard does not keep the room a burst gave it (its thread has stopped ending spans, or
/// is one of many): an empty buffer larger than [`IDLE_ROOM`] is replaced by a small one.
fn trim_idle(batch: &mut Encoded) {
    if batch.items.is_empty() && batch.bytes.capacity() > IDLE_ROOM {
        *batch = Encoded::with_capacity(16, IDLE_ROOM / 4);
    }
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
        // Two shards per core: threads rarely share one.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let shards = (2 * cores)
            .next_power_of_two()
            .clamp(2, crate::stats::STRIPES);
        // Few enough that a batch is told in time and places held unused stay a small part of
        // the queue; 1 (exact) for small batches and queues.
        let step = (max_batch / (2 * shards))
            .min(batch.max_queue_size / (4 * shards))
            .clamp(1, 16);
        let shared = Arc::new(Shared {
            // Each shard's first buffer made here, not grown from nothing on the span's path
            // (later ones are made by the worker, sized by what the shard held).
            shards: (0..shards)
                .map(|_| Shard {
                    slot: Mutex::new(Slot {
                        batch: Encoded::with_capacity(
                            (max_batch / shards).clamp(16, 1024),
                            16 * 1024,
                        ),
                        ..Slot::default()
                    }),
                    reserved: AtomicUsize::new(0),
                })
                .collect(),
            waiting: AtomicUsize::new(0),
            carried: AtomicUsize::new(0),
            step,
            stopping: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            settled: Condvar::new(),
            max_batch,
            // Validated above zero; a floor all the same, so that the idle worker never spins.
            delay: batch.scheduled_delay.max(Duration::from_millis(1)),
            queue,
            exporter: Mutex::new(exporter),
            view: runtime.view(),
            runtime,
            #[cfg(test)]
            held: AtomicBool::new(false),
            #[cfg(test)]
            sent_late: AtomicUsize::new(0),
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
        // Spans gathered from the shards and not yet exported (less than a batch, between turns).
        let mut pending = Encoded::default();
        let mut next = Instant::now() + self.delay;
        loop {
            let mut state = lock(&self.state);
            let timed = loop {
                let now = Instant::now();
                let full = pending.items.len() + self.waiting.load(Relaxed) >= self.max_batch;
                if state.stop || state.asked > state.done || full {
                    break false;
                }
                if now >= next {
                    break true;
                }
                state = self
                    .wake
                    .wait_timeout(state, next.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            };
            let (asked, stop) = (state.asked, state.stop);
            // Everything goes on a flush, shutdown or the delay; otherwise whole batches only.
            let all = timed || stop || asked > state.done;
            drop(state);
            #[cfg(test)]
            while self.held.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.gather(&mut pending);
            while pending.items.len() >= self.max_batch || all && !pending.items.is_empty() {
                let batch = if pending.items.len() > self.max_batch {
                    pending.split_off_front(self.max_batch)
                } else {
                    std::mem::take(&mut pending)
                };
                self.queue.leave(batch.items.len());
                if let Some(view) = &self.view {
                    view.encoded_spans(&batch);
                }
                let export = lock(&self.exporter).export_encoded(batch);
                // Bounded by the export timeout (the client's), shortened by shutdown's deadline.
                let _ = self.runtime.block_on(export);
                next = Instant::now() + self.delay;
            }
            self.carried.store(pending.items.len(), Relaxed);
            if timed {
                next = Instant::now() + self.delay;
            }
            if all {
                let mut state = lock(&self.state);
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

    /// `shard` locked with a place in the queue taken for one span; `None` (the span is to be
    /// turned away) when shutdown has begun or the queue is full.
    fn take_place<'a>(&self, shard: &'a Shard) -> Option<MutexGuard<'a, Slot>> {
        let mut slot = lock(&shard.slot);
        if self.stopping.load(Relaxed) {
            return None;
        }
        let mut reserved = shard.reserved.load(Relaxed);
        if reserved == 0 {
            reserved = self.queue.reserve(self.step);
        }
        if reserved == 0 {
            // Full, or other shards hold the last places unused: those are given back, so that
            // a queue of N holds N spans whichever threads end them. Never two shards locked at
            // once.
            drop(slot);
            self.reclaim(shard);
            slot = lock(&shard.slot);
            reserved = shard.reserved.load(Relaxed);
            if reserved == 0 {
                reserved = self.queue.reserve(1);
            }
            if self.stopping.load(Relaxed) {
                shard.reserved.store(reserved, Relaxed);
                return None;
            }
            if reserved == 0 {
                return None;
            }
        }
        shard.reserved.store(reserved - 1, Relaxed);
        Some(slot)
    }

    /// A batch's worth of this shard's spans, told to the worker and not gathered, with half the
    /// queue taken: the worker is late (on a busy machine a thread can wait many milliseconds
    /// for a core, and at 100,000 spans a second the queue fills in 20), so the thread that
    /// ends the spans sends a batch itself, rather than let the queue fill and drop what comes.
    /// Never waits: not when another thread holds the exporter, nor when every export place is
    /// taken (then the worker's turn or the queue's bound decides, as before). Not once shutdown
    /// has begun (the worker exports what is left). The local view is shown the batch on the
    /// export runtime, off the application's threads. Called with the shard locked.
    #[cold]
    fn send_late(&self, slot: &mut Slot) {
        if self.stopping.load(Relaxed) {
            return;
        }
        let Ok(exporter) = self.exporter.try_lock() else {
            return;
        };
        // The front of the shard: spans already told to the worker (`waiting`).
        let Some(sent) = exporter.try_export_encoded(
            || slot.batch.split_off_front(self.max_batch),
            self.view.clone(),
        ) else {
            return;
        };
        drop(exporter);
        self.waiting.fetch_sub(sent, Relaxed);
        self.queue.handed_over(sent);
        #[cfg(test)]
        self.sent_late.fetch_add(sent, Relaxed);
    }

    /// Gives back the places the shards other than `mine` hold unused. Called with no shard
    /// locked; looks only at shards that hold some.
    #[cold]
    fn reclaim(&self, mine: &Shard) {
        for shard in self.shards.iter().filter(|s| !std::ptr::eq(*s, mine)) {
            if shard.reserved.load(Relaxed) > 0 {
                let _slot = lock(&shard.slot);
                self.queue.release(shard.reserved.swap(0, Relaxed));
            }
        }
    }

    /// Moves every shard's spans into `pending`, and gives back the places they hold unused.
    fn gather(&self, pending: &mut Encoded) {
        for shard in self.shards.iter() {
            let mut slot = lock(&shard.slot);
            let told = slot.batch.items.len() - slot.untold;
            slot.untold = 0;
            if told > 0 {
                self.waiting.fetch_sub(told, Relaxed);
            }
            self.queue.release(shard.reserved.swap(0, Relaxed));
            if slot.batch.items.is_empty() {
                trim_idle(&mut slot.batch);
                continue;
            }
            slot.last_bytes = slot.batch.bytes.len();
            // Room for twice what it held: its thread keeps ending spans until the next gathering,
            // which may come late on a busy machine, and a buffer grown on the span's path is a
            // copy of everything in it.
            let fresh = Encoded::with_capacity(
                (2 * slot.batch.items.len()).clamp(16, 8192),
                (2 * slot.last_bytes).max(4096),
            );
            let mut taken = std::mem::replace(&mut slot.batch, fresh);
            drop(slot);
            pending.append(&mut taken);
        }
    }
}

impl SpanProcessor for EncodingBatch {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, mut span: SpanData) {
        let shared = &*self.shared;
        let stripe = crate::stats::stripe();
        COUNTERS.signal(Signal::Traces).accepted.add_at(stripe, 1);
        let shard = &shared.shards[stripe & (shared.shards.len() - 1)];
        let Some(mut slot) = shared.take_place(shard) else {
            shared.queue.turned_away();
            return;
        };
        // A place is taken: the span is fixed up and encoded (a span turned away costs none of it).
        crate::u64_fields::dedup_keep_last(&mut span.attributes);
        if let Some(limit) = self.value_limit {
            crate::export::fixups::truncate_values(&mut span.attributes, limit);
            for event in span.events.events.iter_mut() {
                crate::export::fixups::truncate_values(&mut event.attributes, limit);
            }
        }
        // The scope travels with the bytes (it is not part of the `Span` message).
        let mut scope = std::mem::take(&mut span.instrumentation_scope);
        let fits = slot
            .batch
            .push_span(&self.encoder, &span, || std::mem::take(&mut scope));
        if !fits {
            span.instrumentation_scope = scope;
            slot.batch.items.push(Item::Whole(Box::new(span)));
        }
        slot.untold += 1;
        if slot.batch.items.len() - slot.untold >= shared.max_batch && shared.queue.half_full() {
            shared.send_late(&mut slot);
        }
        if slot.untold < shared.step {
            return;
        }
        slot.untold = 0;
        let before = shared.waiting.fetch_add(shared.step, Relaxed) + shared.carried.load(Relaxed);
        drop(slot);
        if before < shared.max_batch && before + shared.step >= shared.max_batch {
            // Under the lock the worker checks `waiting` with, so the wake-up is not missed.
            drop(lock(&shared.state));
            shared.wake.notify_one();
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
        self.shared.stopping.store(true, Relaxed);
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
        let mut state = lock(&self.shared.state);
        state.stop = true;
        self.shared.stopping.store(true, Relaxed);
        drop(state);
        self.shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_shard_gives_back_the_room_a_burst_gave_it() {
        let mut burst = Encoded::with_capacity(4096, 8 * IDLE_ROOM);
        trim_idle(&mut burst);
        assert!(burst.bytes.capacity() <= IDLE_ROOM, "{}", burst.bytes.capacity());
        assert!(burst.items.capacity() < 4096);

        let mut busy = Encoded::with_capacity(4096, 8 * IDLE_ROOM);
        busy.push_bytes(Default::default(), b"span");
        trim_idle(&mut busy);
        assert_eq!(busy.bytes.capacity(), 8 * IDLE_ROOM, "a shard holding spans keeps its buffer");

        let mut small = Encoded::with_capacity(16, 1024);
        trim_idle(&mut small);
        assert_eq!(small.bytes.capacity(), 1024, "a small buffer is kept");
    }
}

/// A worker kept off the cores: the threads ending spans send its batches, and nothing is lost.
/// The endpoint is a fake OTLP/HTTP receiver (named as such): it counts the spans of each request
/// and answers 200; the worker's lateness is the test's hold (`Shared::held`), which no real
/// scheduler produces on demand.
#[cfg(all(test, feature = "http"))]
mod late_worker {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    use super::*;
    use crate::config::{Compression, OtlpSettings, Protocol};

    /// Fake OTLP/HTTP receiver on loopback: the spans received so far.
    fn receiver() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port on loopback");
        let url = format!("http://{}/v1/traces", listener.local_addr().expect("its address"));
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
                    let mut stream = stream;
                    loop {
                        let mut length = None;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse::<usize>().ok();
                            }
                        }
                        let mut body = vec![0; length.expect("a content-length")];
                        reader.read_exact(&mut body).expect("the body");
                        let request = ExportTraceServiceRequest::decode(&body[..]).expect("OTLP");
                        let spans: usize = request
                            .resource_spans
                            .iter()
                            .flat_map(|r| &r.scope_spans)
                            .map(|s| s.spans.len())
                            .sum();
                        count.fetch_add(spans, Relaxed);
                        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, received)
    }

    fn processor(
        url: &str,
        queue: usize,
        max_batch: usize,
        view: Option<Arc<crate::view::Store>>,
    ) -> EncodingBatch {
        let runtime = Arc::new(ExportRuntime::start(view, 4).expect("the export runtime"));
        let settings = OtlpSettings {
            endpoint: url.parse().expect("a URL"),
            protocol: Protocol::HttpProtobuf,
            headers: Vec::new(),
            timeout: Duration::from_secs(5),
            compression: Compression::None,
            certificate: None,
            client_certificate: None,
            client_key: None,
        };
        let client = super::super::Client::http(
            &settings,
            Signal::Traces,
            url.to_owned(),
            Duration::from_secs(5),
            runtime.clone(),
        )
        .expect("an HTTP client");
        let batch = BatchSettings {
            max_queue_size: queue,
            scheduled_delay: Duration::from_secs(60),
            max_export_batch_size: max_batch,
            export_timeout: Duration::from_secs(5),
        };
        EncodingBatch::new(
            OtlpExporter::new(client),
            &batch,
            None,
            Queue::new(Signal::Traces, queue),
            runtime,
        )
        .expect("the processor")
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Three queues' worth of spans ended while the worker is held; what the endpoint received.
    fn late_worker_run(view: Option<Arc<crate::view::Store>>) -> usize {
        let (url, received) = receiver();
        let processor = processor(&url, 1024, 256, view);
        let shared = processor.shared.clone();
        shared.held.store(true, Relaxed);
        // Without the hand-over 1,024 would be kept and the rest dropped. Paced (a batch's worth,
        // then a pause) as spans come in a service, not faster than the exports in flight can
        // end: with every export place taken they would be dropped.
        let total = 3 * 1024;
        for i in 0..total {
            let n = i as u64 + 1;
            processor.on_end(crate::view::test_span(u128::from(n), n, "late", 0, false));
            if i % 256 == 255 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        assert!(
            wait_for(|| received.load(Relaxed) >= 1024),
            "spans reach the endpoint while the worker is held: {} of {total}",
            received.load(Relaxed)
        );
        let sent = shared.sent_late.load(Relaxed);
        assert!(sent >= total - 1024, "sent by the ending thread: {sent}");
        assert_eq!(sent % 256, 0, "whole batches: {sent}");
        shared.held.store(false, Relaxed);
        processor.shutdown_with_timeout(Duration::from_secs(10)).expect("shutdown");
        assert!(
            wait_for(|| received.load(Relaxed) == total),
            "every span arrives, once: {} of {total}",
            received.load(Relaxed)
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(received.load(Relaxed), total, "no span twice");
        total
    }

    #[test]
    fn the_thread_ending_spans_sends_the_batches_of_a_late_worker() {
        late_worker_run(None);
    }

    #[test]
    fn the_local_view_sees_the_batches_a_late_worker_left() {
        let store = crate::view::Store::new(
            crate::view::ViewOptions::default(),
            crate::redact::Redaction::default(),
            "late".into(),
        );
        let total = late_worker_run(Some(store.clone()));
        let seen = crate::view::View { store }.counts().spans_seen;
        assert_eq!(seen, total as u64, "every span seen by the view");
    }
}
