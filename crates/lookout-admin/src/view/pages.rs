//! The pages. HTML from `maud` (every value escaped by construction), one layout, a live part
//! (`#live`) that the script redraws when the server-sent events say the page's store changed.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lookout::opentelemetry::trace::{SpanId, TraceId};
use lookout::view::{LogFilter, SeriesKind, SpanRecord, SpanStatus, TraceFilter, View};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::chart::{Line, chart};
use crate::Admin;

const PAGES: [(&str, &str); 7] = [
    ("traces", "Traces"),
    ("spans", "Span summary"),
    ("logs", "Logs"),
    ("metrics", "Metrics"),
    ("health", "Health"),
    ("jobs", "Jobs"),
    ("pipeline", "Pipeline"),
];

/// What a page's live part depends on: `traces`, `logs`, `metrics`, `jobs`, `health`.
fn page(admin: &Admin, active: &str, title: &str, live: &str, body: Markup) -> Response {
    let service = admin
        .view()
        .map(|v| v.service_name().to_owned())
        .unwrap_or_default();
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (service) " · lookout" }
                link rel="stylesheet" href="/view/assets/view.css";
                script src="/view/assets/view.js" defer {}
            }
            body data-live=(live) {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "lookout" @if !service.is_empty() { " · " (service) } }
                    nav aria-label="Views" {
                        @for (path, name) in PAGES {
                            @if path == active {
                                a href=(format!("/view/{path}")) aria-current="page" { (name) }
                            } @else {
                                a href=(format!("/view/{path}")) { (name) }
                            }
                        }
                    }
                    span #live-status role="status" aria-live="polite" {}
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    html_response(StatusCode::OK, markup)
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        ],
        markup.into_string(),
    )
        .into_response()
}

pub(crate) fn token_required() -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "lookout · token required" } }
            body {
                main {
                    h1 { "This view needs its token" }
                    p { "The admin address is not loopback (or this request did not name it), so the local view asks for its token. "
                        "Open the address printed on the service's standard error at start (…/view/?token=…), "
                        "or send " code { "Authorization: Bearer <token>" } ". "
                        "Set " code { "LOOKOUT_VIEW_TOKEN" } " to choose the token." }
                }
            }
        }
    };
    html_response(StatusCode::UNAUTHORIZED, markup)
}

fn no_view() -> Markup {
    html! {
        p.empty { "No local view: lookout is not initialised, was shut down, or runs with LOOKOUT_VIEW=off." }
    }
}

/// `12.3 ms`, `850 µs`, `2.41 s`.
pub(crate) fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// A value with its unit (`s` as a duration).
pub(crate) fn number(v: f64, unit: &str) -> String {
    if unit == "s" {
        return match Duration::try_from_secs_f64(v.max(0.0)) {
            Ok(d) => duration(d),
            Err(_) => format!("{v} s"),
        };
    }
    let n = if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    if unit.is_empty() || unit.starts_with('{') {
        n
    } else {
        format!("{n} {unit}")
    }
}

/// `19:02:11.123`, with the full time as its title.
fn time(t: SystemTime) -> Markup {
    let full = humantime::format_rfc3339_millis(t).to_string();
    let short = full.get(11..23).unwrap_or(&full).to_owned();
    html! { time datetime=(full) title=(full) { (short) } }
}

fn hex_trace(id: TraceId) -> String {
    lookout::view::trace_id_hex(id)
}

fn empty_none(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

// ---- traces ----

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TraceQuery {
    name: Option<String>,
    errors: Option<String>,
    min_ms: Option<String>,
    text: Option<String>,
}

pub(crate) async fn traces(State(admin): State<Admin>, Query(q): Query<TraceQuery>) -> Response {
    let min = empty_none(&q.min_ms).and_then(|m| m.parse::<f64>().ok());
    let filter = TraceFilter {
        name: empty_none(&q.name),
        errors_only: q.errors.is_some(),
        // Out of range (`1e300`, `inf`): no bound rather than a panic.
        min_duration: min.and_then(|m| Duration::try_from_secs_f64(m.max(0.0) / 1e3).ok()),
        text: empty_none(&q.text),
        limit: 200,
    };
    let body = html! {
        form.filters method="get" action="/view/traces" {
            label { "Span name " input type="search" name="name" value=[q.name.as_deref()]; }
            label { "Min duration (ms) " input type="number" name="min_ms" min="0" step="any" value=[q.min_ms.as_deref()]; }
            label { "Text in attributes " input type="search" name="text" value=[q.text.as_deref()]; }
            label.check { input type="checkbox" name="errors" value="1" checked[filter.errors_only]; " Errors only" }
            button type="submit" { "Filter" }
        }
        div #live {
            @match admin.view() {
                None => (no_view()),
                Some(view) => {
                    @let list = view.traces(&filter);
                    @let counts = view.counts();
                    p.note { (list.len()) " shown of " (counts.traces) " traces held (" (counts.spans_seen) " spans seen)." }
                    @if list.is_empty() {
                        p.empty { "No trace matches yet." }
                    } @else {
                        div.scroll {
                            table.traces {
                                thead { tr { th { "Started" } th { "Trace" } th { "Duration" } th { "Spans" } th { "Errors" } th { "Id" } } }
                                tbody {
                                    @for t in &list {
                                        @let id = hex_trace(t.trace_id);
                                        tr.error[t.errors > 0] data-trace-id=(id) {
                                            td { (time(t.start)) }
                                            td { a href=(format!("/view/traces/{id}")) { (t.name) } @if !t.complete { " " span.tag title="its root span is not held" { "partial" } } }
                                            td.num { (duration(t.duration)) }
                                            td.num { (t.spans) }
                                            td.num { @if t.errors > 0 { span.status-error { (t.errors) } } @else { "0" } }
                                            td.id { code { (&id[..8]) "…" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&admin, "traces", "Traces", "traces", body)
}

pub(crate) async fn trace(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let Ok(trace_id) = TraceId::from_hex(&id) else {
        let body = html! { p.empty { "Not a trace id: expected 32 hexadecimal digits." } };
        return page(&admin, "traces", "Trace", "", body);
    };
    let Some(view) = admin.view() else {
        return page(&admin, "traces", "Trace", "", no_view());
    };
    let spans = view.trace(trace_id);
    let hex = hex_trace(trace_id);
    let jaeger = admin
        .jaeger_url()
        .map(|u| format!("{}/trace/{hex}", u.trim_end_matches('/')));
    let body = html! {
        p.meta {
            "Trace " code { (hex) }
            " · " a href=(format!("/view/logs?trace={hex}")) { "its logs" }
            @if let Some(j) = &jaeger { " · " a href=(j) rel="noreferrer" { "open in Jaeger" } }
        }
        div #live {
            @if spans.is_empty() {
                p.empty { "This trace is not held (it may have been evicted, or not exported yet)." }
            } @else {
                (waterfall(&spans))
            }
        }
    };
    page(&admin, "traces", "Trace", "traces", body)
}

/// Spans in tree order (parents before children, siblings by start), with their depth.
fn tree(spans: &[SpanRecord]) -> Vec<(usize, &SpanRecord)> {
    let ids: std::collections::HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
    let mut children: HashMap<SpanId, Vec<&SpanRecord>> = HashMap::new();
    let mut roots = Vec::new();
    for s in spans {
        if s.parent_span_id != SpanId::INVALID && ids.contains(&s.parent_span_id) {
            children.entry(s.parent_span_id).or_default().push(s);
        } else {
            roots.push(s);
        }
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut stack: Vec<(usize, &SpanRecord)> = roots.into_iter().rev().map(|s| (0, s)).collect();
    while let Some((depth, s)) = stack.pop() {
        out.push((depth, s));
        if let Some(kids) = children.get(&s.span_id) {
            for k in kids.iter().rev() {
                stack.push((depth + 1, k));
            }
        }
    }
    out
}

fn waterfall(spans: &[SpanRecord]) -> Markup {
    let start = spans
        .iter()
        .map(|s| s.start)
        .min()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let end = spans
        .iter()
        .map(|s| s.start + s.duration)
        .max()
        .unwrap_or(start);
    let total = end
        .duration_since(start)
        .unwrap_or_default()
        .as_secs_f64()
        .max(1e-9);
    let pct =
        |t: SystemTime| t.duration_since(start).unwrap_or_default().as_secs_f64() / total * 100.0;
    html! {
        p.note { (spans.len()) " spans · " (duration(Duration::try_from_secs_f64(total).unwrap_or_default())) }
        ol.waterfall aria-label="Spans, parents before children" {
            @for (depth, s) in tree(spans) {
                @let sid = lookout::view::span_id_hex(s.span_id);
                @let parent = if s.parent_span_id == SpanId::INVALID { String::new() } else { lookout::view::span_id_hex(s.parent_span_id) };
                @let left = pct(s.start);
                @let width = (s.duration.as_secs_f64() / total * 100.0).max(0.3);
                li.span data-span-id=(sid) data-parent-id=(parent) data-depth=(depth) data-span-name=(s.name) {
                    details id=(format!("span-{sid}")) {
                        summary {
                            span.name style=(format!("padding-left:{}rem", depth as f64 * 1.1)) {
                                (s.name)
                                @if s.is_error() { " " span.tag.status-error { "error" } }
                            }
                            span.dur { (duration(s.duration)) }
                            span.track aria-hidden="true" {
                                span.bar.error[s.is_error()] style=(format!("left:{left:.2}%;width:{:.2}%", width.min(100.0 - left).max(0.3))) {}
                            }
                        }
                        div.detail {
                            dl {
                                dt { "Span id" } dd { code { (sid) } }
                                dt { "Kind" } dd { (s.kind) }
                                dt { "Scope" } dd { (s.scope) }
                                dt { "Started" } dd { (time(s.start)) }
                                dt { "Status" } dd {
                                    @match &s.status {
                                        SpanStatus::Unset => "unset",
                                        SpanStatus::Ok => "ok",
                                        SpanStatus::Error(d) => span.status-error { "error" @if !d.is_empty() { ": " (d) } },
                                    }
                                }
                            }
                            @if !s.attributes.is_empty() {
                                table.attrs { caption { "Attributes" } tbody { @for (k, v) in &s.attributes { tr { th scope="row" { (k) } td { (v) } } } } }
                            }
                            @for e in &s.events {
                                div.event.exception[e.name == "exception"] {
                                    p { strong { (e.name) } " at " (time(e.time)) }
                                    @if !e.attributes.is_empty() {
                                        table.attrs { tbody { @for (k, v) in &e.attributes {
                                            tr { th scope="row" { (k) } td { @if k == "exception.stacktrace" { pre { (v) } } @else { (v) } } }
                                        } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---- span summary ----

pub(crate) async fn spans(State(admin): State<Admin>) -> Response {
    let Some(view) = admin.view() else {
        return page(&admin, "spans", "Span summary", "", no_view());
    };
    // Count running spans while someone looks (and a minute after).
    view.watch_running(Duration::from_secs(60));
    let names = view.span_names();
    let bounds = lookout::view::LATENCY_BUCKETS;
    let label = |i: usize| -> String {
        match i {
            0 => format!("< {}", duration(bounds[0])),
            i if i < bounds.len() => format!("< {}", duration(bounds[i])),
            _ => format!("≥ {}", duration(bounds[bounds.len() - 1])),
        }
    };
    let body = html! {
        p.note { "Every span ended since start, per name and latency bucket (zPages' tracez). Running: spans started and not ended, counted while this page is open." }
        div #live {
            @if names.is_empty() {
                p.empty { "No span has ended yet." }
            } @else {
                div.scroll {
                    table.summary {
                        thead { tr {
                            th { "Span name" } th { "Running" }
                            @for i in 0..9 { th.num { (label(i)) } }
                            th.num { "Errors" } th { "Slowest" }
                        } }
                        tbody {
                            @for n in &names {
                                @let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("name", &n.name).finish();
                                tr data-span-name=(n.name) {
                                    th scope="row" { a href=(format!("/view/traces?{q}")) { (n.name) } }
                                    td.num { (n.running) }
                                    @for (i, c) in n.latency.iter().enumerate() {
                                        td.num {
                                            @if *c > 0 {
                                                @let min_ms = if i == 0 { 0.0 } else { bounds[i - 1].as_secs_f64() * 1e3 };
                                                a href=(format!("/view/traces?{q}&min_ms={min_ms}")) { (c) }
                                            } @else { span.zero { "0" } }
                                        }
                                    }
                                    td.num { @if n.errors > 0 { a.status-error href=(format!("/view/traces?{q}&errors=1")) { (n.errors) } } @else { "0" } }
                                    td { @if let Some((d, t)) = n.slowest { a href=(format!("/view/traces/{}", hex_trace(t))) { (duration(d)) } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&admin, "spans", "Span summary", "traces", body)
}

// ---- logs ----

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogQuery {
    q: Option<String>,
    level: Option<String>,
    target: Option<String>,
    trace: Option<String>,
}

const LEVELS: [(&str, u8); 5] = [
    ("TRACE", 1),
    ("DEBUG", 5),
    ("INFO", 9),
    ("WARN", 13),
    ("ERROR", 17),
];

pub(crate) async fn logs(State(admin): State<Admin>, Query(q): Query<LogQuery>) -> Response {
    let level = q.level.as_deref().unwrap_or("");
    let filter = LogFilter {
        words: empty_none(&q.q),
        min_severity: LEVELS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(level))
            .map_or(0, |(_, s)| *s),
        target: empty_none(&q.target),
        trace_id: empty_none(&q.trace).and_then(|t| TraceId::from_hex(&t).ok()),
        after: 0,
        limit: 300,
    };
    let body = html! {
        form.filters method="get" action="/view/logs" role="search" {
            label { "Words " input type="search" name="q" value=[q.q.as_deref()]; }
            label { "Level at least "
                select name="level" {
                    option value="" selected[level.is_empty()] { "any" }
                    @for (name, _) in LEVELS { option value=(name) selected[name.eq_ignore_ascii_case(level)] { (name) } }
                }
            }
            label { "Target " input type="search" name="target" value=[q.target.as_deref()]; }
            label { "Trace id " input type="search" name="trace" value=[q.trace.as_deref()] pattern="[0-9a-fA-F]{32}"; }
            button type="submit" { "Search" }
        }
        div #live {
            @match admin.view() {
                None => (no_view()),
                Some(view) => {
                    @let list = view.logs(&filter);
                    @let counts = view.counts();
                    p.note { (list.len()) " shown of " (counts.logs) " records held (" (counts.logs_seen) " seen, " (counts.logs_skipped) " not kept at the rate bound), newest first." }
                    @if list.is_empty() {
                        p.empty { "No log record matches." }
                    } @else {
                        div.scroll {
                            table.logs {
                                thead { tr { th { "Time" } th { "Level" } th { "Target" } th { "Message" } th { "Trace" } } }
                                tbody {
                                    @for e in &list {
                                        tr class=(format!("level-{}", e.level.to_ascii_lowercase())) data-seq=(e.seq) {
                                            td { (time(e.time)) }
                                            td { span.level { (e.level) } }
                                            td.target { (e.target) }
                                            td.message {
                                                (e.body)
                                                @for (k, v) in &e.attributes { " " span.field { span.key { (k) "=" } (v) } }
                                            }
                                            td { @if let Some(t) = e.trace_id {
                                                @let hex = hex_trace(t);
                                                a.trace-link href=(format!("/view/traces/{hex}")) title=(hex) { code { (&hex[..8]) "…" } }
                                            } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&admin, "logs", "Logs", "logs", body)
}

// ---- metrics ----

pub(crate) async fn metrics(State(admin): State<Admin>) -> Response {
    let Some(view) = admin.view() else {
        return page(&admin, "metrics", "Metrics", "", no_view());
    };
    let window = view.options().metric_window.as_secs_f64();
    let red = view.red();
    let series = view.series();
    let body = html! {
        p.note { "Sampled every " (humantime::format_duration(view.options().metric_interval)) ", kept for " (humantime::format_duration(view.options().metric_window)) "." }
        div #live {
            h2 { "Routes and measured functions" }
            @if red.is_empty() {
                p.empty { "No HTTP route or #[measured] function has been measured yet." }
            }
            @for r in &red {
                @let last = r.points.last();
                section.red data-red=(r.name) aria-label=(r.name) {
                    h3 { span.tag { (r.what) } " " (r.name) }
                    p.figures {
                        @if let Some(p) = last {
                            (number(p.value, "")) " /s · errors " (number(p.errors.unwrap_or(0.0), "")) " /s"
                            @if let Some([p50, p95, p99]) = p.quantiles { " · p50 " (number(p50, "s")) " · p95 " (number(p95, "s")) " · p99 " (number(p99, "s")) }
                        } @else { "waiting for a second sample" }
                    }
                    div.charts {
                        (chart("Rate", "/s", &[
                            Line { label: "requests", class: "l1", values: r.points.iter().map(|p| (p.time, Some(p.value))).collect() },
                            Line { label: "errors", class: "l-err", values: r.points.iter().map(|p| (p.time, p.errors)).collect() },
                        ], window))
                        (chart("Latency", "s", &[
                            Line { label: "p50", class: "l1", values: r.points.iter().map(|p| (p.time, p.quantiles.map(|q| q[0]))).collect() },
                            Line { label: "p95", class: "l2", values: r.points.iter().map(|p| (p.time, p.quantiles.map(|q| q[1]))).collect() },
                            Line { label: "p99", class: "l3", values: r.points.iter().map(|p| (p.time, p.quantiles.map(|q| q[2]))).collect() },
                        ], window))
                    }
                }
            }
            h2 { "Every instrument" }
            div.scroll {
                table.series {
                    thead { tr { th { "Instrument" } th { "Attributes" } th { "Reads as" } th.num { "Latest" } } }
                    tbody {
                        @for s in &series {
                            @let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("key", &s.key).finish();
                            tr {
                                td { a href=(format!("/view/metrics/series?{q}")) title=(s.description) { (s.name) } }
                                td.attrs { @for (k, v) in &s.attributes { span.field { span.key { (k) "=" } (v) } " " } }
                                td { (kind(s.kind, &s.unit)) }
                                td.num { @if let Some(p) = s.points.last() { (number(p.value, if s.kind == SeriesKind::Value { &s.unit } else { "" })) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&admin, "metrics", "Metrics", "metrics", body)
}

fn kind(k: SeriesKind, unit: &str) -> String {
    match k {
        SeriesKind::Rate => format!("rate /s ({unit})"),
        SeriesKind::Histogram => format!("measurements /s, quantiles ({unit})"),
        _ => format!("value ({unit})"),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SeriesQuery {
    key: String,
}

pub(crate) async fn series(State(admin): State<Admin>, Query(q): Query<SeriesQuery>) -> Response {
    let Some(view) = admin.view() else {
        return page(&admin, "metrics", "Series", "", no_view());
    };
    let window = view.options().metric_window.as_secs_f64();
    let body = html! {
        p.meta { code { (q.key) } }
        div #live {
            @match view.series_by_key(&q.key) {
                None => p.empty { "No such series (it may not have been sampled yet)." },
                Some(s) => {
                    p.note { (s.description) }
                    (chart(&kind(s.kind, &s.unit), if s.kind == SeriesKind::Value { &s.unit } else { "/s" }, &[
                        Line { label: &s.name, class: "l1", values: s.points.iter().map(|p| (p.time, Some(p.value))).collect() },
                    ], window))
                    @if s.kind == SeriesKind::Histogram {
                        (chart("Quantiles", &s.unit, &[
                            Line { label: "p50", class: "l1", values: s.points.iter().map(|p| (p.time, p.quantiles.map(|q| q[0]))).collect() },
                            Line { label: "p95", class: "l2", values: s.points.iter().map(|p| (p.time, p.quantiles.map(|q| q[1]))).collect() },
                            Line { label: "p99", class: "l3", values: s.points.iter().map(|p| (p.time, p.quantiles.map(|q| q[2]))).collect() },
                        ], window))
                    }
                }
            }
        }
    };
    page(&admin, "metrics", "Series", "metrics", body)
}

// ---- health ----

pub(crate) async fn health(State(admin): State<Admin>) -> Response {
    let body = health_body(&admin).await;
    page(&admin, "health", "Health", "health", body)
}

#[cfg(feature = "health")]
async fn health_body(admin: &Admin) -> Markup {
    let Some(health) = admin.health_registry() else {
        return html! { p.empty { "No health registry was given to lookout-admin (AdminBuilder::health)." } };
    };
    let report = health.report("").await;
    let transitions = health.transitions();
    html! {
        div #live {
            @if let Some(report) = &report {
                p.overall { "Overall: " span class=(format!("status status-{}", report.status().as_str().to_ascii_lowercase())) { (report.status().as_str()) } }
                div.scroll {
                    table.health {
                        thead { tr { th { "Check" } th { "Status" } th { "Message" } th.num { "Last run" } th { "Details" } } }
                        tbody {
                            @for c in report.checks() {
                                tr data-check=(c.name()) {
                                    th scope="row" { (c.name()) @if !c.critical() { " " span.tag { "optional" } } }
                                    td { span class=(format!("status status-{}", c.status().as_str().to_ascii_lowercase())) { (c.status().as_str()) } }
                                    td { (c.result().message().unwrap_or("")) }
                                    td.num { @if let Some(d) = c.duration() { (duration(d)) } }
                                    td.attrs { @for (k, v) in c.result().details() { span.field { span.key { (k) "=" } (v.to_string()) } " " } }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "State changes" }
            @if transitions.is_empty() {
                p.empty { "No check has changed state since start." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "When" } th { "Check" } th { "From" } th { "To" } th { "Message" } } }
                    tbody { @for t in transitions.iter().rev() { tr {
                        td { (time(t.at)) } td { (t.check) } td { (t.from.as_str()) } td { (t.to.as_str()) } td { (t.message.as_deref().unwrap_or("")) }
                    } } }
                } }
            }
        }
    }
}

#[cfg(not(feature = "health"))]
async fn health_body(_: &Admin) -> Markup {
    html! { p.empty { "lookout-admin was built without its `health` feature." } }
}

// ---- jobs ----

pub(crate) async fn jobs(State(admin): State<Admin>) -> Response {
    page(&admin, "jobs", "Jobs", "jobs", jobs_body(&admin))
}

#[cfg(feature = "cleanup")]
fn jobs_body(admin: &Admin) -> Markup {
    let jobs = admin.jobs();
    html! {
        div #live {
            @if jobs.is_empty() {
                p.empty { "No cleanup job was given to lookout-admin (AdminBuilder::job)." }
            }
            @for job in jobs {
                @let s = job.stats();
                @let history = job.history();
                @let path = url::form_urlencoded::byte_serialize(job.name().as_bytes()).collect::<String>();
                section.job data-job=(job.name()) aria-label=(job.name()) {
                    h2 { (job.name()) @if s.paused { " " span.tag { "paused" } } @if s.in_progress > 0 { " " span.tag.running { "running" } } }
                    div.actions {
                        form method="post" action=(format!("/view/jobs/{path}/run")) { button type="submit" name="do" value="run" { "Run now" } }
                        @if s.paused {
                            form method="post" action=(format!("/view/jobs/{path}/resume")) { button type="submit" { "Resume" } }
                        } @else {
                            form method="post" action=(format!("/view/jobs/{path}/pause")) { button type="submit" { "Pause" } }
                        }
                    }
                    dl.stats {
                        dt { "Runs" } dd data-stat="runs" { (s.total_runs) }
                        dt { "Success rate" } dd { @if let Some(r) = s.success_rate { (format!("{:.0} %", r * 100.0)) } @else { "–" } }
                        dt { "Removed" } dd { (s.items_removed) } dt { "Backlog" } dd { (s.backlog) }
                        dt { "Mean run" } dd { @if let Some(d) = s.mean_duration { (duration(d)) } @else { "–" } }
                        dt { "Last success" } dd { @if let Some(t) = s.last_success { (time(t)) } @else { "never" } }
                        dt { "Failing in a row" } dd { (s.consecutive_failures) }
                    }
                    div.scroll { table.runs {
                        caption { "Latest runs" }
                        thead { tr { th { "Run" } th { "Trigger" } th { "Outcome" } th { "Started" } th.num { "Took" } th { "Statistics" } th { "Message" } } }
                        tbody { @for r in history.iter().rev().take(20) {
                            tr data-run=(r.id) class=(format!("outcome-{}", r.outcome.as_str())) {
                                td.num { (r.id) } td { (r.trigger.as_str()) } td { (r.outcome.as_str()) }
                                td { (time(r.started_at)) } td.num { (duration(r.duration)) }
                                td.attrs { (format!("scanned {} removed {} failed {}", r.stats.scanned, r.stats.removed, r.stats.failed)) }
                                td { (r.message.as_deref().unwrap_or("")) }
                            }
                        } }
                    } }
                }
            }
        }
    }
}

#[cfg(not(feature = "cleanup"))]
fn jobs_body(_: &Admin) -> Markup {
    html! { p.empty { "lookout-admin was built without its `cleanup` feature." } }
}

pub(crate) async fn job_action(
    State(admin): State<Admin>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    job_action_on(&admin, &name, &action)
}

#[cfg(feature = "cleanup")]
fn job_action_on(admin: &Admin, name: &str, action: &str) -> Response {
    let Some(job) = admin.jobs().into_iter().find(|j| j.name() == name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no cleanup job named {name:?}"),
        )
            .into_response();
    };
    match action {
        "run" => {
            if let Err(e) = job.run_now() {
                return (StatusCode::CONFLICT, e.to_string()).into_response();
            }
        }
        "pause" => job.pause(),
        "resume" => job.resume(),
        other => {
            return (
                StatusCode::NOT_FOUND,
                format!("no action {other:?}: use run, pause or resume"),
            )
                .into_response();
        }
    }
    tracing::info!(target: "lookout_admin", job = name, action, "cleanup job action from the local view");
    axum::response::Redirect::to("/view/jobs").into_response()
}

#[cfg(not(feature = "cleanup"))]
fn job_action_on(_: &Admin, _: &str, _: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        "lookout-admin was built without its `cleanup` feature",
    )
        .into_response()
}

// ---- pipeline ----

pub(crate) async fn pipeline(State(admin): State<Admin>) -> Response {
    let stats = lookout::stats();
    let counts = admin.view().map(|v: View| v.counts());
    let signals = [
        ("Traces (spans)", stats.traces),
        ("Metrics (points)", stats.metrics),
        ("Logs (records)", stats.logs),
    ];
    let body = html! {
        div #live {
            div.scroll { table.pipeline {
                thead { tr { th { "Signal" } th.num { "Accepted" } th.num { "Exported" } th.num { "Failed" } th.num { "Dropped" } th.num { "Rejected" } th.num { "In flight" } th { "State" } } }
                tbody { @for (name, s) in signals { tr {
                    th scope="row" { (name) }
                    td.num { (s.accepted) } td.num { (s.exported) } td.num { (s.failed) } td.num { (s.dropped) } td.num { (s.rejected) } td.num { (s.in_flight) }
                    td { @if s.failing { span.status-error { "failing" } } @else { "ok" } }
                } } }
            } }
            p { "Values redacted before export: " strong data-stat="redacted" { (stats.redacted) } }
            @if let Some(e) = &stats.last_error {
                p { "Last export error (" (e.signal.as_str()) ", " (time(e.at)) @if e.resolved { ", since resolved" } "): " span.status-error { (e.message) } }
            } @else { p { "No export error since start." } }
            @if let Some(c) = counts {
                h2 { "The local view's stores" }
                dl.stats {
                    dt { "Traces held" } dd { (c.traces) " (" (bytes(c.trace_bytes)) ")" }
                    dt { "Spans seen / not kept" } dd { (c.spans_seen) " / " (c.spans_skipped) }
                    dt { "Log records held" } dd { (c.logs) " (" (bytes(c.log_bytes)) ")" }
                    dt { "Records seen / not kept" } dd { (c.logs_seen) " / " (c.logs_skipped) }
                    dt { "Series held / not started" } dd { (c.series) " / " (c.series_skipped) }
                }
            }
        }
    };
    page(&admin, "pipeline", "Pipeline", "traces logs metrics", body)
}

fn bytes(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

// ---- live updates ----

/// What the pages depend on, to tell what changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fingerprint {
    view: [u64; 3],
    jobs: Vec<(u64, usize, bool)>,
    health: (usize, Option<SystemTime>),
}

impl Fingerprint {
    pub(crate) fn changed(&self, now: &Fingerprint) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (i, kind) in ["traces", "logs", "metrics"].into_iter().enumerate() {
            if self.view[i] != now.view[i] {
                out.push(kind);
            }
        }
        if self.jobs != now.jobs {
            out.push("jobs");
        }
        if self.health != now.health {
            out.push("health");
        }
        out
    }
}

pub(crate) async fn fingerprint(admin: &Admin) -> Fingerprint {
    let view = admin.view().map_or([0; 3], |v| v.version());
    #[cfg(feature = "cleanup")]
    let jobs = admin
        .jobs()
        .iter()
        .map(|j| {
            let s = j.stats();
            (
                s.total_runs + s.runs_by_outcome.values().sum::<u64>(),
                s.in_progress,
                s.paused,
            )
        })
        .collect();
    #[cfg(not(feature = "cleanup"))]
    let jobs = Vec::new();
    #[cfg(feature = "health")]
    let health = admin.health_registry().map_or((0, None), |h| {
        let t = h.transitions();
        (t.len(), t.last().map(|t| t.at))
    });
    #[cfg(not(feature = "health"))]
    let health = (0, None);
    Fingerprint { view, jobs, health }
}
