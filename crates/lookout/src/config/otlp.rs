//! OTLP exporter settings: `OTEL_EXPORTER_OTLP_*` and their per-signal forms.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::{EnvReader, Signal, parse_key_values};

/// The OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC (tonic); default port 4317.
    Grpc,
    /// HTTP with protobuf bodies; default port 4318. The specification's default.
    HttpProtobuf,
    /// HTTP with JSON bodies; default port 4318.
    HttpJson,
}

impl Protocol {
    /// The word used in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }

    fn is_compiled_in(self) -> bool {
        match self {
            Protocol::Grpc => cfg!(feature = "grpc"),
            Protocol::HttpProtobuf | Protocol::HttpJson => cfg!(feature = "http"),
        }
    }

    fn default_compiled() -> Protocol {
        if cfg!(feature = "http") {
            Protocol::HttpProtobuf
        } else {
            Protocol::Grpc
        }
    }
}

/// Payload compression (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed (the default).
    None,
    /// gzip.
    Gzip,
}

/// OTLP settings given in code: for all signals with [`crate::TelemetryBuilder::otlp`], or for
/// one with [`crate::TelemetryBuilder::otlp_for`]. Unset fields fall through to the environment.
#[derive(Debug, Clone, Default)]
#[must_use = "options do nothing until given to the builder"]
pub struct OtlpOptions {
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) compression: Option<Compression>,
    pub(crate) certificate: Option<PathBuf>,
    pub(crate) client_certificate: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
}

impl OtlpOptions {
    /// The collector's URL, e.g. `http://127.0.0.1:4317`. For HTTP, a general endpoint gets
    /// `/v1/{signal}` appended; one given with `otlp_for` is used as it is.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }
    /// The transport.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }
    /// A request header, e.g. an API key. Values never appear in any output.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// The time one export request may take; zero means no limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Payload compression.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }
    /// A PEM file with the CA certificate(s) that sign the collector's certificate.
    pub fn certificate(mut self, path: impl Into<PathBuf>) -> Self {
        self.certificate = Some(path.into());
        self
    }
    /// PEM files with this client's certificate and private key, for mutual TLS.
    pub fn client_identity(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_certificate = Some(certificate.into());
        self.client_key = Some(key.into());
        self
    }
}

/// Resolved OTLP settings for one signal.
#[derive(Clone)]
pub(crate) struct OtlpSettings {
    pub(crate) endpoint: Url,
    pub(crate) protocol: Protocol,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) compression: Compression,
    pub(crate) certificate: Option<PathBuf>,
    pub(crate) client_certificate: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
}

impl std::fmt::Debug for OtlpSettings {
    // Header values are secrets: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint.as_str())
            .field("protocol", &self.protocol)
            .field("headers", &header_names)
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("certificate", &self.certificate)
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .finish()
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves one signal's OTLP settings: builder (signal, then general), then the environment
/// (signal, then general), then the default.
pub(crate) fn resolve_otlp(
    signal: Signal,
    general: &OtlpOptions,
    specific: &OtlpOptions,
    env: &mut EnvReader<'_>,
    problems: &mut Vec<String>,
) -> OtlpSettings {
    let var = |suffix: &str| otlp_vars(signal, suffix);
    let protocol = resolve_protocol(signal, general, specific, env, problems);
    let endpoint = resolve_endpoint(signal, general, specific, protocol, env, problems);
    let headers = resolve_headers(signal, general, specific, env, problems);

    let timeout = specific.timeout.or(general.timeout).unwrap_or_else(|| {
        let [sv, gv] = var("TIMEOUT");
        env.millis(&sv, DEFAULT_TIMEOUT, true)
            .or_else(|| env.millis(&gv, DEFAULT_TIMEOUT, true))
            .unwrap_or(DEFAULT_TIMEOUT)
    });

    let compression = specific
        .compression
        .or(general.compression)
        .unwrap_or_else(|| {
            let options = [("gzip", Compression::Gzip), ("none", Compression::None)];
            let [sv, gv] = var("COMPRESSION");
            let name = if env.raw(&sv).is_some() { sv } else { gv };
            env.choice(&name, &options, "none")
                .unwrap_or(Compression::None)
        });

    let mut tls_file = |code: Option<&PathBuf>, suffix: &str| {
        resolve_tls_file(signal, code, suffix, env, problems)
    };
    let certificate = tls_file(
        specific
            .certificate
            .as_ref()
            .or(general.certificate.as_ref()),
        "CERTIFICATE",
    );
    let client_certificate = tls_file(
        specific
            .client_certificate
            .as_ref()
            .or(general.client_certificate.as_ref()),
        "CLIENT_CERTIFICATE",
    );
    let client_key = tls_file(
        specific.client_key.as_ref().or(general.client_key.as_ref()),
        "CLIENT_KEY",
    );

    OtlpSettings {
        endpoint,
        protocol,
        headers,
        timeout,
        compression,
        certificate,
        client_certificate,
        client_key,
    }
}

/// The two names of an OTLP variable, the signal's own first: `OTEL_EXPORTER_OTLP_TRACES_<suffix>`,
/// `OTEL_EXPORTER_OTLP_<suffix>`.
fn otlp_vars(signal: Signal, suffix: &str) -> [String; 2] {
    let s = signal.upper();
    [
        format!("OTEL_EXPORTER_OTLP_{s}_{suffix}"),
        format!("OTEL_EXPORTER_OTLP_{suffix}"),
    ]
}

/// The protocol: the builder's, else `OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL`, else the default one
/// compiled in. One not compiled in is a problem from code, a warning from the environment.
fn resolve_protocol(
    signal: Signal,
    general: &OtlpOptions,
    specific: &OtlpOptions,
    env: &mut EnvReader<'_>,
    problems: &mut Vec<String>,
) -> Protocol {
    let var = |suffix: &str| otlp_vars(signal, suffix);
    let protocols = [
        ("grpc", Protocol::Grpc),
        ("http/protobuf", Protocol::HttpProtobuf),
        ("http/json", Protocol::HttpJson),
    ];
    match specific.protocol.or(general.protocol) {
        Some(p) if !p.is_compiled_in() => {
            problems.push(format!(
                "protocol {} is not compiled in; enable lookout's `{}` feature",
                p.as_str(),
                if p == Protocol::Grpc { "grpc" } else { "http" }
            ));
            p
        }
        Some(p) => p,
        None => {
            let mut found = None;
            for name in var("PROTOCOL") {
                if env.raw(&name).is_some() {
                    found = env.choice(&name, &protocols, Protocol::default_compiled().as_str());
                    break;
                }
            }
            match found {
                Some(p) if !p.is_compiled_in() => {
                    let fallback = Protocol::default_compiled();
                    env.warn(
                        "OTEL_EXPORTER_OTLP_PROTOCOL",
                        format!(
                            "{} is not compiled into this program; using {}",
                            p.as_str(),
                            fallback.as_str()
                        ),
                    );
                    fallback
                }
                Some(p) => p,
                None => Protocol::default_compiled(),
            }
        }
    }
}

/// The endpoint: the builder's (signal's, then general), else the environment's, else the
/// default for the protocol (`/v1/<signal>` added to a general HTTP endpoint).
fn resolve_endpoint(
    signal: Signal,
    general: &OtlpOptions,
    specific: &OtlpOptions,
    protocol: Protocol,
    env: &mut EnvReader<'_>,
    problems: &mut Vec<String>,
) -> Url {
    let var = |suffix: &str| otlp_vars(signal, suffix);
    let is_http = protocol != Protocol::Grpc;
    let insecure = {
        let [sv, gv] = var("INSECURE");
        env.bool(&sv).or_else(|| env.bool(&gv)).unwrap_or(false)
    };
    let default_endpoint = || {
        let base = if is_http {
            "http://localhost:4318"
        } else {
            "http://localhost:4317"
        };
        let mut url = Url::parse(base).expect("static URL parses");
        if is_http {
            url.set_path(&format!("v1/{}", signal.as_str()));
        }
        url
    };
    // (text, where it came from, is it signal-specific)
    let given: Option<(String, Option<String>, bool)> = specific
        .endpoint
        .clone()
        .map(|e| (e, None, true))
        .or_else(|| general.endpoint.clone().map(|e| (e, None, false)))
        .or_else(|| {
            let [sv, gv] = var("ENDPOINT");
            env.raw(&sv)
                .map(|e| (e, Some(sv), true))
                .or_else(|| env.raw(&gv).map(|e| (e, Some(gv), false)))
        });
    match given {
        None => default_endpoint(),
        Some((text, from_env, is_specific)) => {
            match parse_endpoint(&text, is_http, insecure, signal, is_specific) {
                Ok(url) => url,
                Err(why) => match from_env {
                    Some(name) => {
                        env.warn(
                            &name,
                            format!("{text:?} {why}; using the default {}", default_endpoint()),
                        );
                        default_endpoint()
                    }
                    None => {
                        problems.push(format!(
                            "OTLP endpoint {text:?} for {signal} {why}; give a URL such as http://127.0.0.1:{}",
                            if is_http { 4318 } else { 4317 }
                        ));
                        default_endpoint()
                    }
                },
            }
        }
    }
}

/// The headers, general then signal's own, environment then builder (a later one replaces an
/// earlier one of the same name); a malformed one is a problem that never shows its text.
fn resolve_headers(
    signal: Signal,
    general: &OtlpOptions,
    specific: &OtlpOptions,
    env: &mut EnvReader<'_>,
    problems: &mut Vec<String>,
) -> Vec<(String, String)> {
    let var = |suffix: &str| otlp_vars(signal, suffix);
    let mut headers = Vec::new();
    let [sv, gv] = var("HEADERS");
    for name in [gv, sv] {
        if let Some(text) = env.raw(&name) {
            for (k, v) in parse_key_values(env, &name, &text) {
                set_header(&mut headers, k, v);
            }
        }
    }
    for (k, v) in general.headers.iter().chain(&specific.headers) {
        set_header(&mut headers, k.clone(), v.clone());
    }
    // Neither a bad name nor a value is ever shown: a malformed entry such as
    // `Authorization:Basic SECRET==` puts the secret into the name.
    for (index, (name, value)) in headers.iter().enumerate() {
        if http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() {
            problems.push(format!(
                "OTLP header {} (OTEL_EXPORTER_OTLP_HEADERS or the builder) has a name that is not a \
                 valid HTTP header name; it is not shown, as it may hold a secret. Headers are \
                 `name=value` pairs separated by commas, values percent-encoded, such as \
                 `authorization=Basic%20...`",
                index + 1
            ));
        } else if http::HeaderValue::from_str(value).is_err() {
            problems.push(format!(
                "the value of OTLP header {} has characters a header cannot carry (a line break or \
                 another control character, perhaps a percent-encoded %0A); the value is not shown",
                name.to_ascii_lowercase()
            ));
        }
    }
    headers
}

/// A TLS file: the builder's (must exist: a problem), else the environment's (a missing file is
/// a warning and ignored).
fn resolve_tls_file(
    signal: Signal,
    code: Option<&PathBuf>,
    suffix: &str,
    env: &mut EnvReader<'_>,
    problems: &mut Vec<String>,
) -> Option<PathBuf> {
    if let Some(p) = code {
        if !p.is_file() {
            problems.push(format!("TLS file {} does not exist", p.display()));
        }
        return Some(p.clone());
    }
    let [sv, gv] = otlp_vars(signal, suffix);
    let (name, value) = env
        .raw(&sv)
        .map(|v| (sv, v))
        .or_else(|| env.raw(&gv).map(|v| (gv, v)))?;
    let p = PathBuf::from(value);
    if p.is_file() {
        Some(p)
    } else {
        env.warn(
            &name,
            format!("file {} does not exist; it is ignored", p.display()),
        );
        None
    }
}

fn set_header(headers: &mut Vec<(String, String)>, name: String, value: String) {
    match headers
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case(&name))
    {
        Some(slot) => slot.1 = value,
        None => headers.push((name, value)),
    }
}

fn parse_endpoint(
    text: &str,
    is_http: bool,
    insecure: bool,
    signal: Signal,
    is_specific: bool,
) -> Result<Url, &'static str> {
    // gRPC allows `host:port` without a scheme; OTEL_EXPORTER_OTLP_INSECURE picks http.
    let with_scheme = if !is_http && !text.contains("://") {
        format!("{}://{text}", if insecure { "http" } else { "https" })
    } else {
        text.to_owned()
    };
    let mut url = Url::parse(&with_scheme).map_err(|_| "is not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("does not start with http:// or https://");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if is_http && !is_specific {
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{path}/v1/{}", signal.as_str()));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::super::EnvSource;
    use super::*;

    fn resolve_with(
        vars: &[(&str, &str)],
        signal: Signal,
    ) -> (OtlpSettings, Vec<super::super::ConfigWarning>) {
        let source = EnvSource::Map(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        let mut env = EnvReader::new(&source);
        let mut problems = Vec::new();
        let s = resolve_otlp(
            signal,
            &OtlpOptions::default(),
            &OtlpOptions::default(),
            &mut env,
            &mut problems,
        );
        assert!(problems.is_empty());
        (s, env.warnings)
    }

    #[test]
    fn http_general_endpoint_gets_signal_path_and_specific_is_used_as_is() {
        let (s, _) = resolve_with(
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/base/"),
                (
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    "http://other:9999/custom",
                ),
            ],
            Signal::Traces,
        );
        assert_eq!(s.endpoint.as_str(), "http://collector:4318/base/v1/traces");
        let (s, _) = resolve_with(
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                (
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    "http://other:9999/custom",
                ),
            ],
            Signal::Logs,
        );
        assert_eq!(s.endpoint.as_str(), "http://other:9999/custom");
    }

    #[test]
    fn grpc_endpoint_is_used_as_is_and_insecure_picks_http() {
        let (s, _) = resolve_with(
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
                ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
            ],
            Signal::Metrics,
        );
        assert_eq!(s.endpoint.as_str(), "http://collector:4317/");
    }

    #[test]
    fn bad_endpoint_from_env_warns_without_failing() {
        let (s, w) = resolve_with(
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x")],
            Signal::Traces,
        );
        assert_eq!(s.endpoint.port_or_known_default(), Some(4318));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].variable, "OTEL_EXPORTER_OTLP_ENDPOINT");
    }

    #[test]
    fn headers_merge_signal_over_general_and_never_print_values() {
        let (s, _) = resolve_with(
            &[
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=general,x=1"),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "API-KEY=s3cr3t"),
            ],
            Signal::Traces,
        );
        assert_eq!(
            s.headers,
            vec![
                ("api-key".to_owned(), "s3cr3t".to_owned()),
                ("x".to_owned(), "1".to_owned())
            ]
        );
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }
}
