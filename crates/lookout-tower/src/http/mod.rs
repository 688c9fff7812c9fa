//! HTTP: the server layer ([`HttpServerLayer`]) and the client layer ([`HttpClientLayer`]).

mod client;
mod server;

pub use client::{ClientRequest, ClientResponse, HttpClient, HttpClientLayer};
pub use server::{DEFAULT_SKIP, HttpServer, HttpServerFuture, HttpServerLayer};

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, Method, Version};

/// Header names whose values are never captured, whatever the configuration says.
pub(crate) const NEVER_CAPTURED: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// The `http.request.method` values: the registered methods, then `_OTHER`.
pub(crate) const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "_OTHER",
];

/// A request's `http.request.method`, as its index in [`METHODS`]: classified once per request,
/// then used to index the per-method bindings and span names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct HttpMethod(u8);

impl HttpMethod {
    /// `_OTHER`: not a registered method.
    pub(crate) const OTHER: HttpMethod = HttpMethod(9);

    /// The method when it is one of the registered ones, else `_OTHER` (the original goes to
    /// `http.request.method_original`).
    pub(crate) fn of(method: &Method) -> HttpMethod {
        let m = HttpMethod(match *method {
            Method::GET => 0,
            Method::POST => 1,
            Method::PUT => 2,
            Method::DELETE => 3,
            Method::HEAD => 4,
            Method::OPTIONS => 5,
            Method::PATCH => 6,
            Method::CONNECT => 7,
            Method::TRACE => 8,
            _ => return HttpMethod::OTHER,
        });
        // `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` narrows the list: others are `_OTHER`.
        match known_methods() {
            Some(known) if !known.contains(&m.0) => HttpMethod::OTHER,
            _ => m,
        }
    }

    /// The attribute value.
    pub(crate) fn as_str(self) -> &'static str {
        METHODS[self.index()]
    }

    /// The index in [`METHODS`].
    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` (comma-separated, case-sensitive), read once: the
/// registered methods it lists, as indexes in [`METHODS`]. `None` when unset: all of them. A method
/// it lists that is not one of the nine registered ones is reported as `_OTHER` still (with
/// `http.request.method_original`), so that metric series stay bounded.
fn known_methods() -> Option<&'static [u8]> {
    static KNOWN: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    KNOWN
        .get_or_init(|| {
            let list = std::env::var("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS").ok()?;
            Some(
                list.split(',')
                    .filter_map(|m| METHODS[..9].iter().position(|k| *k == m.trim()))
                    .filter_map(|i| u8::try_from(i).ok())
                    .collect(),
            )
        })
        .as_deref()
}

/// `server.address` and `server.port` from an authority (`host`, `host:port`, `[v6]:port`), as
/// `http::uri::Authority` parses it; `None` when it does not parse.
pub(crate) fn host_and_port(authority: &str) -> Option<(String, Option<u16>)> {
    let a: http::uri::Authority = authority.trim().parse().ok()?;
    let host = a.host();
    // IPv6 literals are recorded without their brackets.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| (host.to_owned(), a.port_u16()))
}

/// Query parameters whose values are secrets (compared in lower case): the semantic conventions'
/// list for `url.query` and `url.full`, and the usual credential names. The same list as lookout's
/// export-side redaction (`crates/lookout/src/redact.rs`), which this crate does not depend on.
const SENSITIVE_QUERY_KEYS: [&str; 16] = [
    "awsaccesskeyid",
    "signature",
    "sig",
    "x-goog-signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "key",
    "password",
    "session",
    "code",
];

fn sensitive(pair: &str) -> bool {
    pair.split_once('=').is_some_and(|(k, _)| {
        SENSITIVE_QUERY_KEYS
            .iter()
            .any(|s| k.eq_ignore_ascii_case(s))
    })
}

/// `url.query` with the values of sensitive parameters replaced by `REDACTED`; borrowed (no
/// allocation) when there are none, as for most requests.
pub(crate) fn redacted_query(query: &str) -> Cow<'_, str> {
    if !query.split('&').any(sensitive) {
        return Cow::Borrowed(query);
    }
    Cow::Owned(
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if sensitive(pair) => format!("{k}=REDACTED"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// The `http.request.method` value of `method`.
pub(crate) fn method_attr(method: &Method) -> &'static str {
    HttpMethod::of(method).as_str()
}

/// The `network.protocol.version` value.
pub(crate) fn protocol_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "_OTHER",
    }
}

/// Lower-cased header names to capture, without the ones that are never captured.
pub(crate) fn capture_list<I, S>(names: I) -> Vec<HeaderName>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    names
        .into_iter()
        .filter_map(|n| {
            HeaderName::from_bytes(n.as_ref().trim().to_ascii_lowercase().as_bytes()).ok()
        })
        .filter(|n| !NEVER_CAPTURED.contains(&n.as_str()))
        .collect()
}

/// The default length limit, in characters, of span attribute values taken from a request (path,
/// user agent, host, captured headers, an unknown method): long enough for any real path, short
/// enough that a client sending 60 kB paths cannot make every export batch exceed the collector's
/// 4 MiB request limit.
pub const DEFAULT_REQUEST_ATTRIBUTE_LIMIT: usize = 2048;

/// The limit a layer starts with: none of its own when `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` or
/// `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT` is set (the SDK's limit then applies to every
/// attribute, these included), else [`DEFAULT_REQUEST_ATTRIBUTE_LIMIT`].
/// Read once per process (the gRPC layers ask on every call).
/// The context a client call is made in: the current `tracing` span's (when it is being traced),
/// else the current OpenTelemetry context.
pub(crate) fn caller_context() -> opentelemetry::Context {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let current = tracing::Span::current();
    if current.is_disabled() || current.is_none() {
        opentelemetry::Context::current()
    } else {
        current.context()
    }
}

pub(crate) fn default_request_attribute_limit() -> Option<usize> {
    static LIMIT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
        if set("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT") || set("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
        {
            None
        } else {
            Some(DEFAULT_REQUEST_ATTRIBUTE_LIMIT)
        }
    })
}

/// `value` cut to at most `limit` characters (never inside a character).
pub(crate) fn bounded(value: &str, limit: Option<usize>) -> String {
    match limit.and_then(|l| value.char_indices().nth(l)) {
        Some((end, _)) => value[..end].to_owned(),
        None => value.to_owned(),
    }
}

/// Pushes `{prefix}.{name}` attributes (string arrays, per the conventions) for the captured
/// headers present, each value cut to `limit` characters.
pub(crate) fn header_attributes(
    attributes: &mut Vec<opentelemetry::KeyValue>,
    prefix: &str,
    names: &[HeaderName],
    headers: &HeaderMap,
    limit: Option<usize>,
) {
    for name in names {
        let values: Vec<opentelemetry::StringValue> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| opentelemetry::StringValue::from(bounded(v, limit)))
            .collect();
        if !values.is_empty() {
            attributes.push(opentelemetry::KeyValue::new(
                format!("{prefix}.{}", name.as_str()),
                opentelemetry::Value::Array(values.into()),
            ));
        }
    }
}

/// `url.full` without credentials: user info becomes `REDACTED:REDACTED`, sensitive query
/// parameters' values `REDACTED`.
pub(crate) fn redacted_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let userinfo = if authority.contains('@') {
                "REDACTED:REDACTED@"
            } else {
                ""
            };
            format!("{scheme}://{userinfo}{host}{path}")
        }
        None => before_query.to_owned(),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(&redacted_query(q));
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn values_are_cut_by_characters_on_a_boundary() {
        assert_eq!(bounded("ééé", Some(2)), "éé");
        assert_eq!(bounded("abc", Some(3)), "abc");
        assert_eq!(bounded("abc", Some(0)), "");
        assert_eq!(bounded(&"x".repeat(10), None).len(), 10);
    }

    use super::*;

    #[test]
    fn urls_lose_credentials_and_signatures() {
        assert_eq!(
            redacted_url("https://user:pw@example.com:8443/a/b?X-Amz-Signature=abc&x=1&sig=s"),
            "https://REDACTED:REDACTED@example.com:8443/a/b?X-Amz-Signature=REDACTED&x=1&sig=REDACTED"
        );
        assert_eq!(redacted_url("http://example.com"), "http://example.com");
    }

    #[test]
    fn authorities_give_host_and_port() {
        assert_eq!(
            host_and_port("example.com:8080"),
            Some(("example.com".into(), Some(8080)))
        );
        assert_eq!(
            host_and_port("example.com"),
            Some(("example.com".into(), None))
        );
        assert_eq!(host_and_port("[::1]"), Some(("::1".into(), None)));
        assert_eq!(
            host_and_port("[::1]:9000"),
            Some(("::1".into(), Some(9000)))
        );
        assert_eq!(host_and_port("a b"), None);
        assert_eq!(host_and_port(""), None);
    }

    #[test]
    fn sensitive_query_values_are_redacted() {
        assert_eq!(
            redacted_query("q=shoes&token=abc&Access_Token=x&page=2&sig=s&code=123"),
            "q=shoes&token=REDACTED&Access_Token=REDACTED&page=2&sig=REDACTED&code=REDACTED"
        );
        assert_eq!(redacted_query("flag&x="), "flag&x=");
    }

    #[test]
    fn unknown_methods_are_other_and_secrets_are_never_captured() {
        assert_eq!(
            method_attr(&Method::from_bytes(b"PURGE").expect("method")),
            "_OTHER"
        );
        assert_eq!(method_attr(&Method::GET), "GET");
        let names = capture_list(["X-Request-Id", "Authorization", "cookie", "Set-Cookie"]);
        assert_eq!(names, [HeaderName::from_static("x-request-id")]);
    }
}
