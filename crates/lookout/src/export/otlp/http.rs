//! OTLP over HTTP (protobuf or JSON bodies): reqwest with opentelemetry-proto's messages.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use prost::Message as _;

use super::{Attempt, Failure, MAX_RESPONSE_BYTES, Message};
use crate::config::{Compression, OtlpSettings, Protocol};

#[derive(Debug)]
pub(super) struct Http {
    client: reqwest::Client,
    url: url::Url,
    headers: HeaderMap,
    json: bool,
    gzip: bool,
}

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

impl Http {
    pub(super) fn new(s: &OtlpSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(super::connect_timeout(s.timeout))
            .redirect(reqwest::redirect::Policy::none());
        #[cfg(feature = "tls")]
        let client = client.tls_backend_preconfigured(crate::export::tls::rustls_config(s)?);
        let client = client
            .build()
            .map_err(|e| format!("could not build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            url: s.endpoint.clone(),
            headers: super::header_map(s)?,
            json: s.protocol == Protocol::HttpJson,
            gzip: s.compression == Compression::Gzip,
        })
    }

    /// Whether bodies are JSON (`http/json`) rather than protobuf.
    pub(super) fn json(&self) -> bool {
        self.json
    }

    /// The request body, encoded (and compressed) once for all attempts.
    pub(super) fn body<M: Message>(&self, request: &M) -> Result<Bytes, Failure> {
        let body = if self.json {
            serde_json::to_vec(request)
                .map_err(|e| Failure::Rejected(format!("cannot write the request as JSON: {e}")))?
        } else {
            request.encode_to_vec()
        };
        self.compress(body.into())
    }

    /// `body` compressed when gzip is configured.
    pub(super) fn compress(&self, body: Bytes) -> Result<Bytes, Failure> {
        if !self.gzip {
            return Ok(body);
        }
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        encoder
            .write_all(&body)
            .and_then(|()| encoder.finish())
            .map(Bytes::from)
            .map_err(|e| Failure::Rejected(format!("cannot compress the request: {e}")))
    }

    pub(super) async fn attempt<M: Message>(
        &self,
        body: Bytes,
        left: Duration,
    ) -> Attempt<M::Response> {
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, if self.json { JSON } else { PROTOBUF })
            .body(body);
        if self.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        if left < Duration::from_secs(365 * 24 * 3600) {
            request = request.timeout(left);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return transport_failure(&e, left),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(JSON));
        let body = match read_limited(response).await {
            Ok(body) => body,
            Err(e) => return transport_failure(&e, left),
        };
        if status.is_success() {
            // An empty or unreadable answer to a success is a full success (OTLP/HTTP).
            let decoded = if json {
                serde_json::from_slice(&body).ok()
            } else {
                M::Response::decode(body.as_ref()).ok()
            };
            return Attempt::Delivered(decoded.unwrap_or_default());
        }
        let what = format!("HTTP {status}{}", reason(&body, json));
        match status.as_u16() {
            // OTLP/HTTP: only these are retried; Retry-After honoured.
            429 | 502 | 503 | 504 => Attempt::Failed {
                failure: Failure::Unavailable(what),
                retry: Some(retry_after),
            },
            _ => Attempt::Failed {
                failure: Failure::Rejected(what),
                retry: None,
            },
        }
    }
}

fn transport_failure<R>(e: &reqwest::Error, left: Duration) -> Attempt<R> {
    if e.is_timeout() {
        return Attempt::Failed {
            failure: Failure::Timeout(left),
            retry: Some(None),
        };
    }
    // Refused, reset, no route, TLS: no answer came; sending again may work.
    Attempt::Failed {
        failure: Failure::Unreachable(super::chain(e)),
        retry: Some(None),
    }
}

/// The body, read up to [`MAX_RESPONSE_BYTES`].
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(body)
}

/// The collector's reason: the message of the `google.rpc.Status` an OTLP/HTTP error carries, or
/// the start of a plain-text body.
fn reason(body: &[u8], json: bool) -> String {
    let message = if json {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
    } else {
        tonic_types::pb::Status::decode(body)
            .ok()
            .map(|s| s.message)
            .filter(|m| !m.is_empty())
    };
    let message = message.unwrap_or_else(|| {
        String::from_utf8_lossy(body)
            .chars()
            .filter(|c| !c.is_control())
            .collect()
    });
    let message = message.trim();
    if message.is_empty() {
        return String::new();
    }
    let cut: String = message.chars().take(300).collect();
    format!(": {cut}")
}

/// `Retry-After`: delay seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let soon = SystemTime::now() + Duration::from_secs(30);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(soon)).expect("a date");
        assert!(parsed <= Duration::from_secs(30) && parsed >= Duration::from_secs(28));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn the_reason_is_read_from_a_status_body() {
        let status = tonic_types::pb::Status {
            code: 3,
            message: "invalid span id".to_owned(),
            details: vec![],
        };
        assert_eq!(reason(&status.encode_to_vec(), false), ": invalid span id");
        assert_eq!(
            reason(br#"{"code":3,"message":"bad json"}"#, true),
            ": bad json"
        );
        assert_eq!(reason(b"plain\ntext", false), ": plaintext");
        assert_eq!(reason(b"", false), "");
    }
}
