//! deploy/: Prometheus with `deploy/prometheus/prometheus.yml` (its clock shortened by the named
//! transformation `fast_clock`, its rule groups by `fast_alerts`) scrapes the axum example's
//! `/metrics` and the collector's own metrics. After traffic, every PromQL expression of the rule
//! files (as Prometheus loaded them) and of every dashboard panel runs through Prometheus's HTTP
//! API without an error, and every metric selector in them returns data: no rule or panel queries
//! a metric that does not exist. The dashboards' VictoriaLogs panels return records too. The
//! latency histograms' buckets carry exemplars whose traces Jaeger returns.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use lookout_e2e::stack::{
    Prometheus, Service, SingleNode, Targets, deploy, http, new_traceparent, poll, transform,
};
use promql_parser::parser::{self, Expr};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

/// Every vector selector in `expr` (those inside range vectors too), as PromQL text, without its
/// `offset` or `@` (whether the series exists is the question, not whether it did an hour ago).
fn selectors(expr: &Expr, out: &mut BTreeSet<String>) {
    let now = |vs: &promql_parser::parser::VectorSelector| {
        let mut vs = vs.clone();
        vs.offset = None;
        vs.at = None;
        vs.to_string()
    };
    match expr {
        Expr::VectorSelector(vs) => {
            out.insert(now(vs));
        }
        Expr::MatrixSelector(ms) => {
            out.insert(now(&ms.vs));
        }
        Expr::Aggregate(a) => {
            selectors(&a.expr, out);
            if let Some(p) = &a.param {
                selectors(p, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// A dashboard query with Grafana's variables given values that select everything.
fn grafana(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("${service}", ".+")
        .replace("$service", ".+")
}

/// `(dashboard file, panel title, datasource type, expression)` of every panel target.
fn dashboard_queries() -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let dir = deploy("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/grafana/dashboards")
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();
    for path in files {
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("?")
            .to_owned();
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
        let panels = json["panels"].as_array().expect("panels");
        for panel in panels.iter().chain(
            panels
                .iter()
                .flat_map(|p| p["panels"].as_array().into_iter().flatten()),
        ) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let ds = target["datasource"]["type"]
                    .as_str()
                    .or_else(|| panel["datasource"]["type"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                let expr = target["expr"].as_str().unwrap_or_default().to_owned();
                out.push((
                    file.clone(),
                    panel["title"].as_str().unwrap_or("?").to_owned(),
                    ds,
                    expr,
                ));
            }
        }
    }
    out
}

fn has_data(result: &[Value]) -> bool {
    result.iter().any(|r| !r.is_null())
}

#[test]
fn metrics_reach_prometheus_and_every_rule_and_panel_query_has_data() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir: &Path = dir.path();
    let SingleNode {
        mut jaeger,
        mut logs,
        collector,
    } = SingleNode::start(
        dir,
        &[
            // Batches that cannot be delivered are given up (and counted) after 2 s, not 5 min.
            ("OTELCOL_RETRY_INITIAL_INTERVAL", "500ms".into()),
            ("OTELCOL_RETRY_MAX_INTERVAL", "1s".into()),
            ("OTELCOL_RETRY_MAX_ELAPSED", "2s".into()),
        ],
    );
    let fast_cleanup = [("SESSION_CLEANUP_INTERVAL", "1s")];
    let api = Service::start(
        dir,
        "axum-service",
        "example-axum-service",
        Some(&collector),
        &fast_cleanup,
    );
    let failing = Service::start(
        dir,
        "axum-service-failing",
        "example-axum-service",
        Some(&collector),
        &[
            ("SESSIONS_DB_FAIL", "true"),
            ("SESSION_CLEANUP_INTERVAL", "1s"),
        ],
    );
    // An instance whose instruments overflow at once (the cardinality-overflow rule has data),
    // and that also pushes its metrics over OTLP (the collector's metrics pipeline has data).
    let overflowing = Service::start(
        dir,
        "axum-service-overflowing",
        "example-axum-service",
        Some(&collector),
        &[
            ("LOOKOUT_METRICS_CARDINALITY_LIMIT", "2"),
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ],
    );
    let prometheus = Prometheus::start(
        dir,
        &Targets {
            services: vec![
                ("axum-service".into(), api.admin),
                ("axum-service".into(), failing.admin),
                ("axum-service".into(), overflowing.admin),
            ],
            collectors: vec![collector.metrics],
            collector_exporters: vec![collector.exporter],
            ..Targets::default()
        },
        transform::fast_alerts,
    );

    // Traffic of every kind: created, read, missing, deleted, failed; traced requests among them.
    let client = http();
    for round in 0..40 {
        for target in [api.listen, overflowing.listen, failing.listen] {
            let (traceparent, _) = new_traceparent();
            let created = client
                .post(format!("http://{target}/sessions"))
                .header("traceparent", traceparent)
                .body(format!(r#"{{"user":"u{round}"}}"#))
                .send()
                .expect("POST /sessions");
            let id = created
                .json::<Value>()
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "missing".into());
            let _ = client.get(format!("http://{target}/sessions/{id}")).send();
            let _ = client.get(format!("http://{target}/sessions/nope")).send();
            let _ = client
                .delete(format!("http://{target}/sessions/{id}"))
                .send();
        }
        // Health checks run when asked: readiness as a kubelet would.
        for admin in [api.admin, failing.admin, overflowing.admin] {
            let _ = client.get(format!("http://{admin}/health/ready")).send();
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    // Prometheus sees the service, with its service label from file_sd.
    poll(WAIT, "three lookout targets up", || {
        (prometheus
            .query(r#"sum(up{job="lookout", service="axum-service"})"#)
            .first()
            .and_then(|r| r["value"][1].as_str().map(str::to_owned))
            .as_deref()
            == Some("3"))
        .then_some(())
    });

    // The rules as Prometheus loaded them; recording rules need a few evaluations.
    let rules = lookout_e2e::stack::get_json(&format!("http://{}/api/v1/rules", prometheus.addr));
    let mut expressions: Vec<(String, String)> = Vec::new();
    for group in rules["data"]["groups"].as_array().expect("rule groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["name"].as_str().unwrap_or("?").to_owned();
            expressions.push((
                format!("rule {name}"),
                rule["query"].as_str().expect("query").to_owned(),
            ));
        }
    }
    assert!(
        expressions.len() >= 30,
        "the shipped rules loaded: {}",
        expressions.len()
    );
    let mut vl_queries = Vec::new();
    for (file, title, ds, expr) in dashboard_queries() {
        match ds.as_str() {
            "prometheus" => expressions.push((format!("{file}: {title}"), grafana(&expr))),
            "victoriametrics-logs-datasource" => {
                vl_queries.push((format!("{file}: {title}"), grafana(&expr)))
            }
            other => panic!("{file}: {title}: a panel on an unchecked data source {other:?}"),
        }
    }

    // Latency buckets carry exemplars (OpenMetrics, scraped by Prometheus with exemplar storage)
    // whose trace ids Jaeger returns: the click from a latency spike to its trace.
    for histogram in [
        "http_server_request_duration_seconds_bucket",
        "function_duration_seconds_bucket",
    ] {
        let exemplars = poll(WAIT, &format!("exemplars of {histogram}"), || {
            let found: Vec<(String, String)> = prometheus
                .exemplars(histogram, 10)
                .iter()
                .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| {
                    Some((
                        e["labels"]["trace_id"].as_str()?.to_owned(),
                        e["labels"]["span_id"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            (!found.is_empty()).then_some(found)
        });
        let (trace_id, span_id) = &exemplars[0];
        let trace = jaeger.wait_for_trace(trace_id, WAIT, |t| {
            t.spans().iter().any(|s| &s.id == span_id)
        });
        eprintln!(
            "{histogram}: {} exemplars; trace {trace_id} in Jaeger with {} spans",
            exemplars.len(),
            trace.spans().len()
        );
    }

    // The logs panels read VictoriaLogs.
    for (what, query) in &vl_queries {
        poll(WAIT, &format!("records for {what}: {query}"), || {
            (!logs.query(query).is_empty()).then_some(())
        });
    }

    // The backends go away: the collector's export failures (what the pipeline dashboard and
    // LookoutCollectorExportFailing read) are counted.
    jaeger.process.stop(Duration::from_secs(5));
    logs.process.stop(Duration::from_secs(5));
    poll(
        WAIT,
        "failed span and log exports counted by the collector",
        || {
            let (traceparent, _) = new_traceparent();
            let _ = client
                .post(format!("http://{}/sessions", failing.listen))
                .header("traceparent", traceparent)
                .body("{}")
                .send();
            (collector.counter("otelcol_exporter_send_failed_spans_total") > 0.0
                && collector.counter("otelcol_exporter_send_failed_log_records_total") > 0.0)
                .then_some(())
        },
    );

    let mut all_selectors = BTreeSet::new();
    for (what, expr) in &expressions {
        let parsed = parser::parse(expr).unwrap_or_else(|e| panic!("{what}: {expr}: {e}"));
        selectors(&parsed, &mut all_selectors);
        // The whole expression is valid for Prometheus (an alert's may be empty: not firing).
        prometheus.query(expr);
    }
    // Recording rules have been evaluated once their outputs exist.
    poll(WAIT, "the recording rules evaluated", || {
        has_data(&prometheus.query("service:http_server_request_errors:ratio_rate5m")).then_some(())
    });
    let mut missing: Vec<&String> = all_selectors
        .iter()
        .filter(|s| !has_data(&prometheus.query(&format!("count({s})"))))
        .collect();
    // One more look after a few evaluations, for series that appear on a later scrape.
    if !missing.is_empty() {
        std::thread::sleep(Duration::from_secs(5));
        missing.retain(|s| !has_data(&prometheus.query(&format!("count({s})"))));
    }
    assert!(
        missing.is_empty(),
        "selectors in the rules or dashboards with no data in Prometheus: {missing:#?}"
    );
    eprintln!(
        "{} expressions, {} distinct selectors, every one with data",
        expressions.len(),
        all_selectors.len()
    );
}
