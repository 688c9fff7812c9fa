//! The local view's checks, shared by the tests that feed it through each span processor: the
//! SDK's (exporter `none`) and lookout's, which encodes spans as they end (OTLP over protobuf).
//! Recent traces with the error trace and the slowest of a name kept past the count bound,
//! redacted values, nesting, logs searchable and linked to their trace, metric series with
//! rates, spans running now.

use std::time::{Duration, Instant};

use lookout::opentelemetry::trace::TraceId;
use lookout::view::{LogFilter, SeriesKind, TraceFilter, ViewOptions};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

fn trace_id_of(span: &tracing::Span) -> TraceId {
    use lookout::opentelemetry::trace::TraceContextExt as _;
    span.context().span().span_context().trace_id()
}

fn root(tag: &str, sleep: Duration, error: bool) -> TraceId {
    let span = if error {
        tracing::info_span!("request", tag, otel.status_code = "ERROR")
    } else {
        tracing::info_span!("request", tag)
    };
    let id = trace_id_of(&span);
    span.in_scope(|| std::thread::sleep(sleep));
    id
}

fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the checks with `traces` choosing the span exporter; `unreachable`: its destination is
/// closed, so shutdown reports every span lost.
pub(crate) fn run(traces: &[(&'static str, &'static str)], unreachable: bool) {
    let mut options = ViewOptions::default();
    options.traces = 2;
    options.error_traces = 2;
    options.metric_interval = Duration::from_millis(100);
    let telemetry = lookout::Telemetry::builder()
        .env_vars(traces.iter().copied().chain([
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ]))
        .view(options)
        .console(lookout::ConsoleFormat::Off)
        .init()
        .expect("init");
    let view = telemetry.view().expect("the view is on by default");
    assert!(
        lookout::view::global().is_some(),
        "init makes it the global view"
    );

    let slow = root("trace-a", Duration::from_millis(40), false);
    let failed = root("trace-b", Duration::ZERO, true);
    let evicted = root("trace-c", Duration::ZERO, false);
    let _d = root("trace-d", Duration::ZERO, false);
    let span = tracing::info_span!(
        "request",
        tag = "trace-e",
        password = "hunter2",
        url.full = "https://example.com/cb?token=abc123&page=2"
    );
    let latest = trace_id_of(&span);
    span.in_scope(|| {
        tracing::info_span!("db").in_scope(|| {
            tracing::info!(rows = 3, "hello searchable world");
        });
        tracing::warn!("careful now");
    });
    drop(span);

    // Count bound 2: trace-c goes; trace-a stays as the slowest `request`, trace-b as an error.
    let held = eventually("the latest trace to be held", || {
        let held = view.traces(&TraceFilter::default());
        held.iter().any(|t| t.trace_id == latest).then_some(held)
    });
    let ids: Vec<TraceId> = held.iter().map(|t| t.trace_id).collect();
    assert!(
        ids.contains(&slow),
        "the slowest of its name is kept: {held:?}"
    );
    assert!(ids.contains(&failed), "the error trace is kept: {held:?}");
    assert!(
        !ids.contains(&evicted),
        "past the bound and not pinned: {held:?}"
    );
    assert_eq!(held[0].trace_id, latest, "newest first");
    let errors = view.traces(&TraceFilter {
        errors_only: true,
        ..TraceFilter::default()
    });
    assert_eq!(
        errors.iter().map(|t| t.trace_id).collect::<Vec<_>>(),
        [failed]
    );
    let slow_filter = TraceFilter {
        min_duration: Some(Duration::from_millis(30)),
        ..TraceFilter::default()
    };
    assert_eq!(view.traces(&slow_filter).len(), 1);
    let text = TraceFilter {
        text: Some("TRACE-E".into()),
        ..TraceFilter::default()
    };
    assert_eq!(
        view.traces(&text).len(),
        1,
        "text search is case-insensitive"
    );

    // Nesting, and values redacted as an export would redact them.
    let spans = view.trace(latest);
    let (request, db) = (&spans[0], &spans[1]);
    assert_eq!((request.name.as_str(), db.name.as_str()), ("request", "db"));
    assert_eq!(db.parent_span_id, request.span_id);
    let attr = |k: &str| {
        request
            .attributes
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(attr("password").as_deref(), Some(lookout::REDACTED));
    let url = attr("url.full").expect("url.full");
    assert!(!url.contains("abc123") && url.contains("page=2"), "{url}");

    // Logs: words, level, trace.
    let words = LogFilter {
        words: Some("searchable WORLD".into()),
        ..LogFilter::default()
    };
    let found = eventually("the log record", || {
        let found = view.logs(&words);
        (!found.is_empty()).then_some(found)
    });
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].trace_id, Some(latest));
    assert_eq!(found[0].level, "INFO");
    assert!(
        found[0]
            .attributes
            .iter()
            .any(|(k, v)| k == "rows" && v == "3"),
        "{found:?}"
    );
    let warnings = LogFilter {
        min_severity: 13,
        ..LogFilter::default()
    };
    let warned = view.logs(&warnings);
    assert!(
        warned
            .iter()
            .all(|e| e.level == "WARN" || e.level == "ERROR"),
        "{warned:?}"
    );
    assert!(warned.iter().any(|e| e.body == "careful now"), "{warned:?}");
    let by_trace = LogFilter {
        trace_id: Some(latest),
        ..LogFilter::default()
    };
    assert_eq!(view.logs(&by_trace).len(), 2);

    // Metric series: a counter reads as a rate.
    let counter = lookout::opentelemetry::global::meter("test")
        .u64_counter("view.test.count")
        .build();
    let series = eventually("a positive rate for the counter", || {
        counter.add(5, &[]);
        std::thread::sleep(Duration::from_millis(30));
        view.series()
            .into_iter()
            .find(|s| s.name == "view.test.count")
            .filter(|s| s.points.iter().any(|p| p.value > 0.0))
    });
    assert_eq!(series.kind, SeriesKind::Rate);
    assert_eq!(series.key, "view.test.count{}");

    // Spans running now, counted while someone watches.
    view.watch_running(Duration::from_secs(60));
    let open = tracing::info_span!("long.running");
    let entered = open.clone().entered();
    let running = |v: &lookout::view::View| {
        v.span_names()
            .into_iter()
            .find(|n| n.name == "long.running")
            .map_or(0, |n| n.running)
    };
    assert_eq!(running(&view), 1);
    drop(entered);
    drop(open);
    assert_eq!(running(&view), 0);
    let request = view
        .span_names()
        .into_iter()
        .find(|n| n.name == "request")
        .expect("request summarised");
    assert_eq!(
        request.total(),
        5,
        "every span counts in the summary, kept or not"
    );
    assert_eq!(request.errors, 1);
    assert_eq!(request.slowest.map(|(_, t)| t), Some(slow));

    let counts = view.counts();
    assert!(
        counts.trace_bytes > 0 && counts.spans_seen >= 6,
        "{counts:?}"
    );
    match telemetry.blocking_shutdown() {
        Ok(_) => assert!(
            !unreachable,
            "spans sent to a closed port are reported lost"
        ),
        Err(e) => {
            let traces = &e.report().traces;
            assert!(
                unreachable && traces.exported == 0 && traces.lost >= 6,
                "shutdown: {e:?}"
            );
        }
    }
    assert!(
        lookout::view::global().is_none(),
        "shutdown clears the global view"
    );
}
