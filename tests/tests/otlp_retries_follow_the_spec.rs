//! Retries exactly as the OTLP specification says ("Failures", "Throttling", "Partial Success"),
//! over HTTP and gRPC.
//!
//! The destination here is a FAKE: a scripted OTLP server that answers each export request with
//! the next status of its script. A real collector cannot be made to answer 503 with Retry-After,
//! RESOURCE_EXHAUSTED with RetryInfo, or a partial success on demand; everything else is real (the
//! e2e-app program, lookout's clients, HTTP/2, protobuf). Each scenario runs the program once with
//! 10 spans and reads its counters (`lookout::stats()`) and the fake's log of requests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use lookout_e2e::{Run, run};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// One scripted answer.
#[derive(Clone, Debug)]
enum Answer {
    Ok,
    Partial(i64, &'static str),
    Http(u16, Option<&'static str>, &'static str),
    Grpc(tonic::Code, Option<Duration>, &'static str),
}

/// The fake's log: when each request came and how many spans it held.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Instant, usize)>>>);

impl Log {
    fn requests(&self) -> Vec<(Instant, usize)> {
        self.0.lock().expect("log").clone()
    }
}

#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<Vec<Answer>>>,
    log: Log,
}

impl Script {
    fn new(answers: Vec<Answer>) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers)),
            log: Log::default(),
        }
    }
    /// The next answer; `Ok` once the script is used up.
    fn next(&self, spans: usize) -> Answer {
        self.log
            .0
            .lock()
            .expect("log")
            .push((Instant::now(), spans));
        let mut answers = self.answers.lock().expect("script");
        if answers.is_empty() {
            Answer::Ok
        } else {
            answers.remove(0)
        }
    }
}

fn spans_in(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

fn partial(rejected: i64, why: &str) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: why.to_owned(),
        }),
    }
}

async fn http_export(
    axum::extract::State(script): axum::extract::State<Script>,
    body: Bytes,
) -> axum::response::Response {
    let request = ExportTraceServiceRequest::decode(body).expect("a protobuf request");
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/x-protobuf".parse().expect("v"));
    match script.next(spans_in(&request)) {
        Answer::Ok => (
            headers,
            ExportTraceServiceResponse::default().encode_to_vec(),
        )
            .into_response(),
        Answer::Partial(n, why) => (headers, partial(n, why).encode_to_vec()).into_response(),
        Answer::Http(code, retry_after, why) => {
            if let Some(after) = retry_after {
                headers.insert("retry-after", after.parse().expect("v"));
            }
            let status = tonic_types::pb::Status {
                code: 3,
                message: why.to_owned(),
                details: vec![],
            };
            (
                StatusCode::from_u16(code).expect("code"),
                headers,
                status.encode_to_vec(),
            )
                .into_response()
        }
        Answer::Grpc(..) => unreachable!("a gRPC answer in an HTTP script"),
    }
}

struct GrpcFake(Script);

#[tonic::async_trait]
impl TraceService for GrpcFake {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        match self.0.next(spans_in(request.get_ref())) {
            Answer::Ok => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            Answer::Partial(n, why) => Ok(tonic::Response::new(partial(n, why))),
            Answer::Grpc(code, None, why) => Err(tonic::Status::new(code, why)),
            Answer::Grpc(code, Some(delay), why) => {
                use tonic_types::{ErrorDetails, StatusExt};
                Err(tonic::Status::with_error_details(
                    code,
                    why,
                    ErrorDetails::with_retry_info(Some(delay)),
                ))
            }
            Answer::Http(..) => unreachable!("an HTTP answer in a gRPC script"),
        }
    }
}

enum Protocol {
    Http,
    Grpc,
}

/// Starts the fake, runs the program against it, returns the program's output and the fake's log.
fn scenario(
    protocol: Protocol,
    answers: Vec<Answer>,
    extra: &[(&str, &str)],
) -> (Run, Vec<(Instant, usize)>) {
    let script = Script::new(answers);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    match protocol {
        Protocol::Http => {
            let app = axum::Router::new()
                .route("/v1/traces", axum::routing::post(http_export))
                .with_state(script.clone());
            runtime.spawn(async move { axum::serve(listener, app).await });
        }
        Protocol::Grpc => {
            let service = TraceServiceServer::new(GrpcFake(script.clone()));
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            runtime.spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(incoming),
            );
        }
    }
    let endpoint = format!("http://{addr}");
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            match protocol {
                Protocol::Http => "http/protobuf",
                Protocol::Grpc => "grpc",
            },
        ),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("E2E_FULL_STATS", "1"),
    ];
    vars.extend_from_slice(extra);
    let out = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["spans", "10"],
        &vars,
    );
    // Any retry lookout still had in mind would have come by now (the program has exited).
    std::thread::sleep(Duration::from_millis(300));
    let log = script.log.requests();
    drop(runtime);
    (out, log)
}

/// `FULL traces ...` as numbers.
fn full(out: &Run) -> std::collections::BTreeMap<String, u64> {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("FULL traces "))
        .unwrap_or_else(|| panic!("no FULL line:\n{}\n{}", out.stdout, out.stderr))
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
        .collect()
}

fn last_error(out: &Run) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("LAST_ERROR "))
        .unwrap_or_default()
        .to_owned()
}

fn counts(out: &Run) -> (u64, u64, u64) {
    let f = full(out);
    (f["exported"], f["failed"], f["rejected"])
}

#[test]
fn http_503_with_retry_after_is_retried_after_the_delay_asked_for() {
    let (out, log) = scenario(
        Protocol::Http,
        vec![Answer::Http(503, Some("1"), "overloaded")],
        &[],
    );
    assert_eq!(log.len(), 2, "one retry: {log:?}\n{}", out.stdout);
    let gap = log[1].0 - log[0].0;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 honoured, waited {gap:?}"
    );
    assert_eq!(counts(&out), (10, 0, 0), "{}", out.stdout);
}

#[test]
fn http_429_502_504_are_retried_and_then_delivered() {
    let (out, log) = scenario(
        Protocol::Http,
        vec![
            Answer::Http(429, None, "slow down"),
            Answer::Http(502, None, "bad gateway"),
            Answer::Http(504, None, "gateway timeout"),
        ],
        &[],
    );
    assert_eq!(log.len(), 4, "{log:?}\n{}", out.stdout);
    assert!(
        log.iter().all(|(_, n)| *n == 10),
        "the same request each time: {log:?}"
    );
    assert_eq!(counts(&out), (10, 0, 0), "{}", out.stdout);
}

#[test]
fn http_400_and_500_are_never_retried_and_the_reason_is_kept() {
    for code in [400, 500] {
        let (out, log) = scenario(
            Protocol::Http,
            vec![Answer::Http(code, None, "span 7 has a bad id")],
            &[],
        );
        assert_eq!(log.len(), 1, "HTTP {code} is not retried: {log:?}");
        let (exported, failed, rejected) = counts(&out);
        assert_eq!((exported, failed, rejected), (0, 10, 10), "{}", out.stdout);
        let error = last_error(&out);
        assert!(
            error.contains(&format!("HTTP {code}")) && error.contains("span 7 has a bad id"),
            "{error}"
        );
        assert!(
            out.stdout.contains("rejected by the destination"),
            "the WARN says rejected, not unreachable:\n{}",
            out.stdout
        );
    }
}

#[test]
fn a_retry_after_beyond_the_export_timeout_is_not_waited_for() {
    let (out, log) = scenario(
        Protocol::Http,
        vec![Answer::Http(503, Some("30"), "come back later")],
        &[("OTEL_EXPORTER_OTLP_TIMEOUT", "2000")],
    );
    assert_eq!(log.len(), 1, "{log:?}");
    let (exported, failed, _) = counts(&out);
    assert_eq!((exported, failed), (0, 10), "{}", out.stdout);
    assert!(last_error(&out).contains("503"), "{}", last_error(&out));
}

#[test]
fn an_http_partial_success_is_counted_as_rejected_and_not_retried() {
    let (out, log) = scenario(
        Protocol::Http,
        vec![Answer::Partial(3, "3 spans over quota")],
        &[],
    );
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(counts(&out), (7, 3, 3), "{}", out.stdout);
    assert!(
        last_error(&out).contains("3 spans over quota"),
        "{}",
        last_error(&out)
    );
}

#[test]
fn grpc_retryable_codes_are_retried_and_then_delivered() {
    let (out, log) = scenario(
        Protocol::Grpc,
        vec![
            Answer::Grpc(tonic::Code::Unavailable, None, "restarting"),
            Answer::Grpc(tonic::Code::Aborted, None, "aborted"),
            Answer::Grpc(tonic::Code::DataLoss, None, "data loss"),
        ],
        &[],
    );
    assert_eq!(log.len(), 4, "{log:?}\n{}", out.stdout);
    assert_eq!(counts(&out), (10, 0, 0), "{}", out.stdout);
}

#[test]
fn grpc_resource_exhausted_is_retried_only_with_retry_info_and_after_its_delay() {
    let (out, log) = scenario(
        Protocol::Grpc,
        vec![Answer::Grpc(
            tonic::Code::ResourceExhausted,
            Some(Duration::from_secs(1)),
            "memory limit",
        )],
        &[],
    );
    assert_eq!(log.len(), 2, "{log:?}\n{}", out.stdout);
    let gap = log[1].0 - log[0].0;
    assert!(
        gap >= Duration::from_millis(950),
        "RetryInfo honoured, waited {gap:?}"
    );
    assert_eq!(counts(&out), (10, 0, 0), "{}", out.stdout);

    let (out, log) = scenario(
        Protocol::Grpc,
        vec![Answer::Grpc(
            tonic::Code::ResourceExhausted,
            None,
            "too big",
        )],
        &[],
    );
    assert_eq!(log.len(), 1, "without RetryInfo it is final: {log:?}");
    assert_eq!(counts(&out), (0, 10, 10), "{}", out.stdout);
    assert!(last_error(&out).contains("too big"), "{}", last_error(&out));
}

#[test]
fn grpc_invalid_argument_is_never_retried_and_a_partial_success_is_counted() {
    let (out, log) = scenario(
        Protocol::Grpc,
        vec![Answer::Grpc(
            tonic::Code::InvalidArgument,
            None,
            "bad trace id",
        )],
        &[],
    );
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(counts(&out), (0, 10, 10), "{}", out.stdout);
    let error = last_error(&out);
    assert!(
        error.contains("InvalidArgument") && error.contains("bad trace id"),
        "{error}"
    );

    let (out, log) = scenario(
        Protocol::Grpc,
        vec![Answer::Partial(4, "4 spans too old")],
        &[],
    );
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(counts(&out), (6, 4, 4), "{}", out.stdout);
}
