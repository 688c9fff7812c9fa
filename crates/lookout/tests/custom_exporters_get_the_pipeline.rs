//! Exporters given in code (`span_exporter`, `log_exporter`, `metric_exporter`) receive every
//! signal through lookout's pipeline (counted in `stats()`, said in the start message), and the
//! configured exporter is not used.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout::opentelemetry_sdk::error::OTelSdkResult;
use lookout::opentelemetry_sdk::logs::{LogBatch, LogExporter};
use lookout::opentelemetry_sdk::metrics::Temporality;
use lookout::opentelemetry_sdk::metrics::data::ResourceMetrics;
use lookout::opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use lookout::opentelemetry_sdk::trace::{SpanData, SpanExporter};

#[derive(Debug, Default, Clone)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn push(&self, what: String) {
        self.0.lock().expect("lock").push(what);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

#[derive(Debug)]
struct Spans(Seen);
impl SpanExporter for Spans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        for span in batch {
            self.0.push(format!("span {}", span.name));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Logs(Seen);
impl LogExporter for Logs {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        for (record, _) in batch.iter() {
            self.0.push(format!("log {:?}", record.body()));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Metrics(Seen);
impl PushMetricExporter for Metrics {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        for scope in metrics.scope_metrics() {
            for m in scope.metrics() {
                self.0.push(format!("metric {}", m.name()));
            }
        }
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

#[test]
fn custom_exporters_receive_every_signal_through_the_pipeline() {
    let seen = Seen::default();
    let telemetry = lookout::Telemetry::builder()
        // The configured exporters would fail (nothing listens there); the custom ones replace them.
        .otlp(|o| o.endpoint("http://127.0.0.1:9"))
        .span_exporter(Spans(seen.clone()))
        .log_exporter(Logs(seen.clone()))
        .metric_exporter(Metrics(seen.clone()))
        .console(lookout::ConsoleFormat::Off)
        .init()
        .expect("init");
    assert!(
        format!("{telemetry:?}").contains("custom exporter"),
        "{telemetry:?}"
    );

    tracing::info_span!("work").in_scope(|| tracing::info!("inside the work"));
    lookout::opentelemetry::global::meter_provider()
        .meter("test")
        .u64_counter("custom.count")
        .build()
        .add(2, &[]);

    let report = telemetry.blocking_shutdown().expect("nothing lost");
    let seen = seen.all();
    assert!(seen.iter().any(|s| s == "span work"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|s| s.starts_with("log ") && s.contains("inside the work")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|s| s == "metric custom.count"), "{seen:?}");
    assert_eq!(report.traces.exported, 1, "{report}");
    assert_eq!(lookout::stats().traces.exports_failed, 0);
}
