//! lookout's OTLP client: each export request sent over gRPC (tonic) or HTTP (reqwest), retried
//! exactly as the OTLP specification says, kept under the request size limit, and its outcome
//! counted item by item.
//!
//! Why not opentelemetry-otlp's exporters (0.33), whose retry policy this one follows:
//! - a partial success is logged and the export reported as a success, so items the collector
//!   rejected were counted as exported;
//! - the collector's reason is dropped (the gRPC status message, the HTTP response body) and every
//!   HTTP transport failure reads "network error", so a refused connection, a timeout and a
//!   rejected request looked the same in the WARN ("until the destination is reachable");
//! - a batch goes out as one request whatever its size, so one span with a 60 kB attribute made
//!   each batch exceed the collector's 4 MiB limit and every span in it was lost.
//!
//! The messages and their conversion from SDK data are opentelemetry-proto's, except for spans
//! sent as protobuf, which are written straight from the SDK's data ([`encode`], which says why);
//! the transports are tonic and reqwest. What is lookout's own is small: the retry loop, the
//! classification of failures, the split of a request into parts under the size limit
//! ([`split`]), and the span encoder.

#[cfg(feature = "grpc")]
mod grpc;
#[cfg(feature = "http")]
mod http;
pub(crate) mod batch;
pub(crate) mod encode;
mod split;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::runtime::ExportRuntime;
use crate::config::Signal;
use crate::stats::{COUNTERS, Transition};
pub(crate) use split::Message;

/// The largest export request sent, uncompressed: under the 4 MiB (4,194,304 bytes) that the
/// OpenTelemetry Collector's gRPC receiver accepts by default, with room for framing. A larger
/// batch is sent as several requests; a single item larger than this has its longest values cut
/// (see [`split`]).
pub(crate) const MAX_REQUEST_BYTES: usize = 4_000_000;

/// The largest answer read from the collector (OTLP: "at most 4 MiB").
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// After this long without an answer, the export is said to be slow (once per outage), while it
/// goes on waiting up to the export timeout.
const SLOW_ANSWER: Duration = Duration::from_secs(2);

/// Backoff between retries: exponential from `FIRST_BACKOFF`, at most `MAX_BACKOFF`, with jitter;
/// at most `MAX_RETRIES`, and never beyond the export timeout (the OTLP exporters' recommended
/// policy: about 0.7 s of waiting in all, so that a refused connection does not hold shutdown).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);
const MAX_RETRIES: u32 = 3;

/// Why an export request did not deliver its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection could be made (refused, no route, name not resolved, TLS failed).
    Unreachable(String),
    /// No answer within the export timeout.
    Timeout(Duration),
    /// The collector answered and refused the request; sending it again would not help.
    Rejected(String),
    /// The collector answered with a transient error (throttled, unavailable) until the retries
    /// or the time ran out.
    Unavailable(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(why) => write!(f, "unreachable: {why}"),
            Failure::Timeout(limit) => {
                write!(
                    f,
                    "timed out: no answer within {limit:?} (the export timeout)"
                )
            }
            Failure::Rejected(why) => write!(f, "rejected by the destination: {why}"),
            Failure::Unavailable(why) => {
                write!(
                    f,
                    "the destination could not take it, retries ran out: {why}"
                )
            }
        }
    }
}

/// How one attempt ended.
enum Attempt<R> {
    Delivered(R),
    /// Failed; `retry` is `None` when the failure must not be retried, else the delay the
    /// destination asked for (Retry-After, RetryInfo), if any.
    Failed {
        failure: Failure,
        retry: Option<Option<Duration>>,
    },
}

/// A transport: sends one attempt of one request.
#[derive(Debug)]
enum Transport {
    #[cfg(feature = "grpc")]
    Grpc(grpc::Grpc),
    #[cfg(feature = "http")]
    Http(http::Http),
}

/// One signal's OTLP client.
#[derive(Debug)]
pub(crate) struct Client {
    signal: Signal,
    destination: String,
    transport: Transport,
    /// The export timeout: every attempt and every wait of one export fits in it.
    timeout: Duration,
    max_request_bytes: usize,
    runtime: Arc<ExportRuntime>,
    /// Applied to every request before it is sent.
    redaction: crate::redact::Redaction,
}

impl Client {
    #[cfg(feature = "grpc")]
    pub(crate) fn grpc(
        settings: &crate::config::OtlpSettings,
        signal: Signal,
        destination: String,
        timeout: Duration,
        runtime: Arc<ExportRuntime>,
    ) -> Result<Self, String> {
        let transport = {
            // tonic's lazy channel spawns its worker here: inside lookout's runtime.
            let _entered = runtime.handle().enter();
            Transport::Grpc(grpc::Grpc::new(settings)?)
        };
        Ok(Self::with(transport, signal, destination, timeout, runtime))
    }

    #[cfg(feature = "http")]
    pub(crate) fn http(
        settings: &crate::config::OtlpSettings,
        signal: Signal,
        destination: String,
        timeout: Duration,
        runtime: Arc<ExportRuntime>,
    ) -> Result<Self, String> {
        let transport = Transport::Http(http::Http::new(settings)?);
        Ok(Self::with(transport, signal, destination, timeout, runtime))
    }

    fn with(
        transport: Transport,
        signal: Signal,
        destination: String,
        timeout: Duration,
        runtime: Arc<ExportRuntime>,
    ) -> Self {
        Self {
            signal,
            destination,
            transport,
            timeout,
            max_request_bytes: MAX_REQUEST_BYTES,
            runtime,
            redaction: crate::redact::Redaction::default(),
        }
    }

    /// Redacts every request this way (on by default).
    pub(crate) fn with_redaction(mut self, redaction: crate::redact::Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    /// Whether requests go out as protobuf (gRPC, `http/protobuf`), which spans are encoded
    /// into directly ([`encode`]); `http/json` takes opentelemetry-proto's messages.
    fn protobuf(&self) -> bool {
        match &self.transport {
            #[cfg(feature = "http")]
            Transport::Http(http) => !http.json(),
            #[allow(unreachable_patterns)]
            _ => true,
        }
    }

    /// Sends `request` as parts under the size limit, one after another within one export
    /// timeout, and counts each part's items as exported, rejected or failed.
    async fn deliver<M: Message>(&self, mut request: M) -> OTelSdkResult {
        let started = Instant::now();
        request.redact(&self.redaction);
        let split = request.split(self.max_request_bytes);
        let parts = split
            .parts
            .into_iter()
            .map(|(part, items)| (self.body(&part), items))
            .collect();
        self.deliver_parts::<M>(started, parts, split.cut).await
    }

    /// Sends spans encoded already on the threads that ended them ([`batch`]).
    async fn deliver_encoded(
        &self,
        batch: encode::Encoded,
        resource: &encode::EncodedResource,
    ) -> OTelSdkResult {
        let started = Instant::now();
        let encoded = encode::assemble(&batch, resource, &self.redaction, self.max_request_bytes);
        drop(batch);
        let parts = encoded
            .parts
            .into_iter()
            .map(|(part, items)| (self.compressed(part), items))
            .collect();
        self.deliver_parts::<ExportTraceServiceRequest>(started, parts, encoded.cut)
            .await
    }

    /// A part's body as the transport sends it: JSON or protobuf, compressed for HTTP when asked
    /// (tonic compresses gRPC messages itself).
    fn body<M: Message>(&self, part: &M) -> Result<bytes::Bytes, Failure> {
        match &self.transport {
            #[cfg(feature = "http")]
            Transport::Http(http) => http.body(part),
            #[allow(unreachable_patterns)]
            _ => Ok(part.encode_to_vec().into()),
        }
    }

    /// Protobuf bytes as the transport sends them.
    fn compressed(&self, protobuf: bytes::Bytes) -> Result<bytes::Bytes, Failure> {
        match &self.transport {
            #[cfg(feature = "http")]
            Transport::Http(http) => http.compress(protobuf),
            #[allow(unreachable_patterns)]
            _ => Ok(protobuf),
        }
    }

    /// Sends each part's body in turn; a part whose body could not be made (JSON, gzip) is
    /// counted as failed, and the others still go.
    async fn deliver_parts<M: Message>(
        &self,
        started: Instant,
        parts: Vec<(Result<bytes::Bytes, Failure>, u64)>,
        cut: u64,
    ) -> OTelSdkResult {
        let limit = self
            .runtime
            .effective_timeout(self.timeout)
            .unwrap_or(Duration::MAX);
        let deadline = started.checked_add(limit);
        if cut > 0 {
            self.say_cut(cut);
        }
        let mut first_error = None;
        for (body, items) in parts {
            let body = match body {
                Ok(body) => body,
                Err(failure) => {
                    self.settle_failed(items, &failure);
                    first_error.get_or_insert(failure);
                    continue;
                }
            };
            let in_flight = &COUNTERS.signal(self.signal).in_flight;
            in_flight.fetch_add(items, Relaxed);
            let outcome = self.send::<M>(body, deadline, limit).await;
            in_flight.fetch_sub(items, Relaxed);
            match outcome {
                Ok(response) => {
                    let (rejected, why) = M::rejected(&response);
                    self.settle_delivered(items, rejected, why);
                }
                Err(failure) => {
                    self.settle_failed(items, &failure);
                    first_error.get_or_insert(failure);
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(Failure::Timeout(d)) => Err(OTelSdkError::Timeout(d)),
            Some(f) => Err(OTelSdkError::InternalFailure(f.to_string())),
        }
    }

    /// One request, with its retries.
    async fn send<M: Message>(
        &self,
        body: bytes::Bytes,
        deadline: Option<Instant>,
        limit: Duration,
    ) -> Result<M::Response, Failure> {
        let mut backoff = FIRST_BACKOFF;
        let mut retries = 0;
        loop {
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Err(Failure::Timeout(limit));
            }
            let attempt = self.attempt::<M>(body.clone(), left);
            let attempt = match tokio::time::timeout(left, self.watch_slow(attempt, limit)).await {
                Ok(attempt) => attempt,
                Err(_) => return Err(Failure::Timeout(limit)),
            };
            let (failure, hint) = match attempt {
                Attempt::Delivered(response) => return Ok(response),
                Attempt::Failed {
                    failure,
                    retry: None,
                } => return Err(failure),
                Attempt::Failed {
                    failure,
                    retry: Some(hint),
                } => (failure, hint),
            };
            if retries >= MAX_RETRIES {
                return Err(failure);
            }
            // The destination's own delay wins over the backoff (OTLP "Throttling").
            let wait = hint.unwrap_or_else(|| backoff + jitter(backoff / 2));
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if wait >= left {
                // Waiting would outlast the export timeout: give up now, with the real cause.
                return Err(failure);
            }
            self.say_failing_early(&failure);
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            retries += 1;
        }
    }

    async fn attempt<M: Message>(&self, body: bytes::Bytes, left: Duration) -> Attempt<M::Response> {
        match &self.transport {
            #[cfg(feature = "grpc")]
            Transport::Grpc(grpc) => grpc.attempt::<M>(body, left).await,
            #[cfg(feature = "http")]
            Transport::Http(http) => http.attempt::<M>(body, left).await,
        }
    }

    /// Awaits `attempt`; if it has not answered after [`SLOW_ANSWER`], says so once per outage
    /// (a hung collector would otherwise go unreported for the whole export timeout).
    async fn watch_slow<R>(&self, attempt: impl Future<Output = R>, limit: Duration) -> R {
        tokio::pin!(attempt);
        tokio::select! {
            done = &mut attempt => return done,
            () = tokio::time::sleep(SLOW_ANSWER) => {}
        }
        if COUNTERS.announce(self.signal) {
            tracing::warn!(
                target: "lookout::export",
                signal = %self.signal,
                destination = %self.destination,
                "the destination has not answered an export of {} for {:?}; waiting up to the export timeout ({:?}). \
                 Meanwhile {} queue up, and are dropped (counted in lookout::stats()) when the queue is full",
                self.signal,
                SLOW_ANSWER,
                limit,
                self.signal,
            );
        }
        attempt.await
    }

    /// The first failed attempt of an outage is said at once, with its cause, before the retries.
    fn say_failing_early(&self, failure: &Failure) {
        if COUNTERS.announce(self.signal) {
            tracing::warn!(
                target: "lookout::export",
                signal = %self.signal,
                destination = %self.destination,
                error = %failure,
                "exporting {} failed ({failure}); retrying within the export timeout. Data that cannot be sent is dropped and counted in lookout::stats()",
                self.signal,
            );
        }
    }

    fn settle_delivered(&self, items: u64, rejected: u64, why: String) {
        let rejected = rejected.min(items);
        if rejected > 0 {
            COUNTERS.record_rejected(self.signal, rejected, true, why.clone());
            tracing::warn!(
                target: "lookout::export",
                signal = %self.signal,
                destination = %self.destination,
                rejected,
                "the destination took an export of {items} {} but rejected {rejected} of them: {why}",
                self.signal,
            );
        }
        if COUNTERS.record_export(self.signal, items - rejected, None) == Transition::Recovered {
            tracing::info!(
                target: "lookout::export",
                signal = %self.signal,
                destination = %self.destination,
                "exporting {} works again",
                self.signal,
            );
        }
    }

    fn settle_failed(&self, items: u64, failure: &Failure) {
        if let Failure::Rejected(why) = failure {
            COUNTERS.record_rejected(self.signal, items, false, why.clone());
        }
        let message = failure.to_string();
        if COUNTERS.record_export(self.signal, items, Some(message)) == Transition::StartedFailing {
            let advice = match failure {
                Failure::Rejected(_) => "the destination refuses this data; its reason is above",
                Failure::Timeout(_) => {
                    "the destination does not answer in time: is it overloaded, or hung?"
                }
                Failure::Unreachable(_) => "check that the destination runs at that address",
                Failure::Unavailable(_) => "the destination is overloaded or restarting",
            };
            tracing::warn!(
                target: "lookout::export",
                signal = %self.signal,
                destination = %self.destination,
                error = %failure,
                "exporting {} failed ({failure}): {advice}. Data that cannot be sent is dropped and counted in lookout::stats()",
                self.signal,
            );
        }
    }

    fn say_cut(&self, cut: u64) {
        tracing::warn!(
            target: "lookout::export",
            signal = %self.signal,
            cut,
            "{cut} {} were too large for one export request ({} bytes) and had their longest values cut to fit",
            self.signal,
            self.max_request_bytes,
        );
    }
}

/// Connecting may take at most this: the export timeout, at most 10 s.
fn connect_timeout(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        Duration::from_secs(10)
    } else {
        timeout.min(Duration::from_secs(10))
    }
}

/// An error and its sources, joined with ": ", repeats left out.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The configured headers; an error names a bad header, never its value (values are secrets).
fn header_map(s: &crate::config::OtlpSettings) -> Result<::http::HeaderMap, String> {
    let mut headers = ::http::HeaderMap::new();
    for (name, value) in &s.headers {
        let name = ::http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("header name {name:?} is not valid"))?;
        let value = ::http::HeaderValue::from_str(value).map_err(|_| {
            format!("the value of header {name} has characters a header cannot carry")
        })?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Up to `max`, from the clock's low bits: enough to spread retries of several processes.
fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let max_ms = max.as_millis().max(1) as u64;
    Duration::from_millis(u64::from(nanos) % max_ms)
}

/// Spans or log records to OTLP (the two share everything but the conversion).
#[derive(Debug)]
pub(crate) struct OtlpExporter {
    client: Arc<Client>,
    resource: Resource,
    /// The resource as spans are encoded with it.
    encoded_resource: Arc<encode::EncodedResource>,
}

impl OtlpExporter {
    pub(crate) fn new(client: Client) -> Self {
        let resource = Resource::builder_empty().build();
        Self {
            client: Arc::new(client),
            encoded_resource: Arc::new(encode::EncodedResource::new(&resource)),
            resource,
        }
    }

    /// With more than one export allowed in flight (`LOOKOUT_EXPORT_CONCURRENCY`), the request is
    /// sent in the background as soon as a place is free, and the batch worker goes on with the
    /// next batch: a collector that answers late no longer stalls the queue. The client counts
    /// every outcome itself (exported, rejected, failed), so nothing is lost to the accounting;
    /// flush and shutdown wait for what is in flight.
    fn deliver<F>(
        &self,
        send: impl FnOnce(Arc<Client>) -> F + Send + 'static,
    ) -> impl Future<Output = OTelSdkResult> + Send + 'static
    where
        F: Future<Output = OTelSdkResult> + Send + 'static,
    {
        let client = self.client.clone();
        let flight = self.client.runtime.flight(self.client.signal);
        self.client.runtime.enter(async move {
            if flight.max <= 1 {
                return send(client).await;
            }
            let Some(place) = flight.place().await else {
                return send(client).await;
            };
            let runtime = client.runtime.clone();
            runtime.spawn(async move {
                let _ = send(client).await;
                drop(place);
                flight.done();
            });
            Ok(())
        })
    }
}

impl OtlpExporter {
    /// Whether spans go out as protobuf, and so can be encoded as they end ([`batch`]).
    pub(crate) fn protobuf(&self) -> bool {
        self.client.protobuf()
    }

    /// The redaction every request gets.
    pub(crate) fn redaction(&self) -> &crate::redact::Redaction {
        &self.client.redaction
    }

    /// The largest request sent.
    pub(crate) fn request_limit(&self) -> usize {
        self.client.max_request_bytes
    }

    /// Exports spans encoded already ([`batch`]), as [`SpanExporter::export`] does a batch.
    pub(crate) fn export_encoded(
        &self,
        batch: encode::Encoded,
    ) -> impl Future<Output = OTelSdkResult> + Send + 'static {
        let resource = self.encoded_resource.clone();
        self.deliver(move |client: Arc<Client>| async move {
            client.deliver_encoded(batch, &resource).await
        })
    }

    /// Sends a batch of encoded spans on the export runtime without waiting for anything, when an
    /// export place is free now (`take` makes the batch only then): how many spans went, `None`
    /// when none did (every place taken, or exports go one at a time). For spans whose batch
    /// worker is late ([`batch`]): the thread that ends them sends them. The local view is shown
    /// the batch there too, on the export runtime (never on the application's thread).
    pub(crate) fn try_export_encoded(
        &self,
        take: impl FnOnce() -> encode::Encoded,
        view: Option<Arc<crate::view::Store>>,
    ) -> Option<usize> {
        let flight = self.client.runtime.flight(self.client.signal);
        if flight.max <= 1 {
            return None;
        }
        let place = flight.try_place()?;
        let batch = take();
        let spans = batch.items.len();
        let (client, resource) = (self.client.clone(), self.encoded_resource.clone());
        self.client.runtime.spawn(async move {
            if let Some(view) = view {
                view.encoded_spans(&batch);
            }
            let _ = client.deliver_encoded(batch, &resource).await;
            drop(place);
            flight.done();
        });
        Some(spans)
    }
}

impl SpanExporter for OtlpExporter {
    /// `http/json` only: spans sent as protobuf are encoded as they end ([`batch`]).
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let resource = ResourceAttributesWithSchema::from(&self.resource);
        let request = ExportTraceServiceRequest {
            resource_spans:
                opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope(
                    batch, &resource,
                ),
        };
        self.deliver(move |client: Arc<Client>| async move { client.deliver(request).await })
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
        self.encoded_resource = Arc::new(encode::EncodedResource::new(resource));
    }
}

impl LogExporter for OtlpExporter {
    fn export(&self, batch: LogBatch<'_>) -> impl Future<Output = OTelSdkResult> + Send {
        let resource = ResourceAttributesWithSchema::from(&self.resource);
        let request = ExportLogsServiceRequest {
            resource_logs:
                opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope(
                    &batch, &resource,
                ),
        };
        self.deliver(move |client: Arc<Client>| async move { client.deliver(request).await })
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
    }
}

/// Metric data points to OTLP.
#[derive(Debug)]
pub(crate) struct OtlpMetrics {
    client: Arc<Client>,
    temporality: Temporality,
}

impl OtlpMetrics {
    pub(crate) fn new(client: Client, temporality: Temporality) -> Self {
        Self {
            client: Arc::new(client),
            temporality,
        }
    }
}

impl PushMetricExporter for OtlpMetrics {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let request = ExportMetricsServiceRequest::from(metrics);
        let client = self.client.clone();
        self.client
            .runtime
            .enter(async move { client.deliver(request).await })
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        self.temporality
    }
}
