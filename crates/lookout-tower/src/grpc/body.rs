//! The response body wrapper that ends the call when the stream ends: the status comes from the
//! trailers, and a stream dropped before its end counts as CANCELLED.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use pin_project_lite::pin_project;

use super::{RPC_GRPC_STATUS_CODE, grpc_status};

/// Everything needed to close a call: its span, start and metric.
pub(crate) struct Finish {
    /// The context holding the call's span.
    pub(crate) cx: opentelemetry::Context,
    pub(crate) start: Instant,
    pub(crate) duration: Arc<Histogram<f64>>,
    pub(crate) attributes: Vec<KeyValue>,
    /// A server span is an error only for the codes that say the server failed.
    pub(crate) server: bool,
}

/// The gRPC codes that make a SERVER span an error (semantic conventions, RPC spans): UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. Any non-OK code makes a
/// CLIENT span one.
const SERVER_ERROR_CODES: [i64; 6] = [2, 4, 12, 13, 14, 15];

impl Finish {
    pub(crate) fn finish(mut self, code: i64) {
        use opentelemetry::trace::{Status, TraceContextExt as _};
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(RPC_GRPC_STATUS_CODE, code));
        let error = if self.server {
            SERVER_ERROR_CODES.contains(&code)
        } else {
            code != 0
        };
        if error {
            span.set_status(Status::error(format!("gRPC status {code}")));
        }
        span.end();
        self.attributes
            .push(KeyValue::new(RPC_GRPC_STATUS_CODE, code));
        self.duration.record(
            self.start.elapsed().as_secs_f64() * 1000.0,
            &self.attributes,
        );
    }
}

pin_project! {
    /// A gRPC response body that records the call's status and duration when it ends.
    pub struct GrpcBody<B> {
        #[pin]
        inner: B,
        finish: Option<Finish>,
    }

    impl<B> PinnedDrop for GrpcBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(f) = this.project().finish.take() {
                f.finish(1); // CANCELLED: the stream was dropped before its end.
            }
        }
    }
}

impl<B> std::fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBody").finish_non_exhaustive()
    }
}

impl<B> GrpcBody<B> {
    pub(crate) fn new(inner: B, finish: Finish) -> Self {
        GrpcBody {
            inner,
            finish: Some(finish),
        }
    }

    pub(crate) fn done(inner: B) -> Self {
        GrpcBody {
            inner,
            finish: None,
        }
    }
}

impl<B: Body> Body for GrpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status)
                    && let Some(f) = this.finish.take()
                {
                    f.finish(code);
                }
            }
            // The stream failed: UNKNOWN (2), as gRPC reports a broken stream.
            Poll::Ready(Some(Err(_))) => {
                if let Some(f) = this.finish.take() {
                    f.finish(2);
                }
            }
            // Ended without a status in the trailers: UNKNOWN.
            Poll::Ready(None) => {
                if let Some(f) = this.finish.take() {
                    f.finish(2);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
