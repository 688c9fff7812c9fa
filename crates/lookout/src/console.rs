//! The console: events (and, optionally, span closings) for people or log shippers, each line with
//! the trace and span ids of the span it happened in.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use opentelemetry::trace::TraceContextExt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::{FmtSpan, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::ConsoleFormat;

pub(crate) type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync + 'static>;

pub(crate) fn layer<S>(format: ConsoleFormat, span_closings: bool) -> Option<BoxedLayer<S>>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let spans = if span_closings {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    let base = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_span_events(spans);
    let layer: BoxedLayer<S> = match format {
        ConsoleFormat::Off => return None,
        // tracing-subscriber's `Full` line: each span's fields next to its name
        // (`handle_order{order=1}:reserve_stock{order=1}: stock reserved items=2`). Its `Compact`
        // line appends every span's fields, unnamed, after the event's, so an `#[instrument]`
        // argument logged again read `handling order order=1 order=1`.
        ConsoleFormat::Compact => base
            .event_format(WithTraceIds(
                tracing_subscriber::fmt::format().with_ansi(ansi),
            ))
            .boxed(),
        ConsoleFormat::Pretty => base
            .event_format(WithTraceIds(
                tracing_subscriber::fmt::format().pretty().with_ansi(ansi),
            ))
            .boxed(),
        ConsoleFormat::Json => base.with_ansi(false).event_format(Json).boxed(),
    };
    Some(layer)
}

/// The trace and span ids of the span the current thread is in, if it is being traced.
fn current_ids() -> Option<(String, String)> {
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    })
}

/// Adds `trace_id=… span_id=…` to the end of the wrapped format's line.
#[derive(Debug)]
struct WithTraceIds<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = event.is_contextual().then(current_ids).flatten();
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.strip_suffix('\n').unwrap_or(&line);
        writeln!(writer, "{body} trace_id={trace_id} span_id={span_id}")
    }
}

/// One JSON object a line: `timestamp`, `level`, `target`, `message`, the event's fields, `span`
/// and `spans` (names, root first), `trace_id`, `span_id`.
#[derive(Debug)]
struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut object = serde_json::Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        object.insert("timestamp".into(), timestamp.into());
        let meta = event.metadata();
        object.insert("level".into(), meta.level().as_str().into());
        object.insert("target".into(), meta.target().into());
        let mut fields = JsonFields(serde_json::Map::new());
        event.record(&mut fields);
        if let Some(message) = fields.0.remove("message") {
            object.insert("message".into(), message);
        }
        object.extend(fields.0);
        if let Some(scope) = ctx.event_scope() {
            let names: Vec<serde_json::Value> =
                scope.from_root().map(|s| s.name().into()).collect();
            if let Some(last) = names.last() {
                object.insert("span".into(), last.clone());
            }
            object.insert("spans".into(), names.into());
        }
        if let Some((trace_id, span_id)) = event.is_contextual().then(current_ids).flatten() {
            object.insert("trace_id".into(), trace_id.into());
            object.insert("span_id".into(), span_id.into());
        }
        let text = serde_json::Value::Object(object).to_string();
        writeln!(writer, "{text}")
    }
}

struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.0.insert(field.name().into(), text.into());
    }
}
