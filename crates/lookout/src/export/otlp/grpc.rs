//! OTLP over gRPC: tonic's client with opentelemetry-proto's messages.

use std::error::Error as _;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::{BufMut as _, Bytes};
use tonic::codec::{Codec, CompressionEncoding, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::{Attempt, Failure, MAX_RESPONSE_BYTES, Message};
use crate::config::{Compression, OtlpSettings};

#[derive(Debug)]
pub(super) struct Grpc {
    channel: Channel,
    metadata: MetadataMap,
    gzip: bool,
}

impl Grpc {
    /// Call inside the export runtime: the lazy channel spawns its worker there.
    pub(super) fn new(s: &OtlpSettings) -> Result<Self, String> {
        let metadata = MetadataMap::from_headers(super::header_map(s)?);
        let endpoint = s.endpoint.as_str().trim_end_matches('/').to_owned();
        let endpoint = Endpoint::from_shared(endpoint.clone())
            .map_err(|e| format!("invalid endpoint {endpoint:?}: {e}"))?;
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut endpoint = endpoint
            .connect_timeout(super::connect_timeout(s.timeout))
            .tcp_nodelay(true);
        #[cfg(feature = "tls")]
        if s.endpoint.scheme() == "https" || s.certificate.is_some() {
            endpoint = endpoint
                .tls_config(crate::export::tls::tonic_config(s)?)
                .map_err(|e| format!("TLS setup failed: {e}"))?;
        }
        Ok(Self {
            channel: endpoint.connect_lazy(),
            metadata,
            gzip: s.compression == Compression::Gzip,
        })
    }

    /// Sends `body`, a request already encoded as protobuf (encoded once for every attempt).
    pub(super) async fn attempt<M: Message>(
        &self,
        body: Bytes,
        left: Duration,
    ) -> Attempt<M::Response> {
        let mut client = tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(usize::MAX);
        if self.gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        if let Err(e) = client.ready().await {
            return Attempt::Failed {
                failure: Failure::Unreachable(super::chain(&e)),
                retry: Some(None),
            };
        }
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        if left < Duration::from_secs(365 * 24 * 3600) {
            request.set_timeout(left);
        }
        let path = http::uri::PathAndQuery::from_static(M::GRPC_PATH);
        match client
            .unary(request, path, Encoded::<M::Response>(PhantomData))
            .await
        {
            Ok(response) => Attempt::Delivered(response.into_inner()),
            Err(status) => classify(&status, left),
        }
    }
}

/// A codec whose requests are protobuf bytes already, and whose answers are decoded by prost.
struct Encoded<R>(PhantomData<R>);

impl<R: prost::Message + Default + Send + 'static> Codec for Encoded<R> {
    type Encode = Bytes;
    type Decode = R;
    type Encoder = Written;
    type Decoder = tonic_prost::ProstDecoder<R>;

    fn encoder(&mut self) -> Written {
        Written
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// Copies a request's bytes into tonic's buffer.
struct Written;

impl Encoder for Written {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

/// The OTLP specification's gRPC rules ("Failures", "Throttling").
fn classify<R>(status: &Status, left: Duration) -> Attempt<R> {
    let retry_info = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    let what = describe(status);
    let (failure, retry) = match status.code() {
        // Transport errors (refused, reset) come as UNAVAILABLE with a source.
        Code::Unavailable if status.source().is_some() => {
            (Failure::Unreachable(what), Some(retry_info))
        }
        Code::Unavailable => (Failure::Unavailable(what), Some(retry_info)),
        Code::DeadlineExceeded => (Failure::Timeout(left), Some(retry_info)),
        Code::Cancelled | Code::Aborted | Code::OutOfRange | Code::DataLoss => {
            (Failure::Unavailable(what), Some(retry_info))
        }
        // Retryable only when the server says when (RetryInfo).
        Code::ResourceExhausted if retry_info.is_some() => {
            (Failure::Unavailable(what), Some(retry_info))
        }
        _ => (Failure::Rejected(what), None),
    };
    Attempt::Failed { failure, retry }
}

/// "code: message: source chain", the collector's own words included.
fn describe(status: &Status) -> String {
    let mut out = format!("gRPC {:?}", status.code());
    if !status.message().is_empty() {
        out.push_str(": ");
        out.push_str(status.message());
    }
    if let Some(source) = status.source() {
        out.push_str(": ");
        out.push_str(&super::chain(source));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_of(status: Status) -> (Option<Option<Duration>>, String) {
        match classify::<()>(&status, Duration::from_secs(1)) {
            Attempt::Failed { failure, retry } => (retry, failure.to_string()),
            Attempt::Delivered(()) => unreachable!(),
        }
    }

    #[test]
    fn retryable_codes_are_those_of_the_spec() {
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            assert_eq!(retry_of(Status::new(code, "x")).0, Some(None), "{code:?}");
        }
        for code in [
            Code::Unknown,
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::Internal,
            Code::Unauthenticated,
            Code::ResourceExhausted,
        ] {
            let (retry, text) = retry_of(Status::new(code, "the reason"));
            assert_eq!(retry, None, "{code:?}");
            assert!(
                text.starts_with("rejected") && text.contains("the reason"),
                "{text}"
            );
        }
    }

    #[test]
    fn resource_exhausted_with_retry_info_is_retried_after_the_given_delay() {
        let status = Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_millis(1500))),
        );
        assert_eq!(retry_of(status).0, Some(Some(Duration::from_millis(1500))));
    }
}
