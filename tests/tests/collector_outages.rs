//! A collector that is down never takes the program down: the program runs, says so once, counts
//! the loss, ships once the collector is up, and shutdown returns within its deadline.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::Duration;

use lookout_e2e::{command, run};
use lookout_testing::{Collector, Value, free_port};

#[test]
fn a_collector_that_starts_after_the_program_still_gets_later_spans() {
    let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let endpoint = format!("http://{grpc}");
    let mut child = command(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["trickle", "60"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("LOOKOUT_CONSOLE", "compact"),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("app starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);

    // Wait until the program has failed to export at least once, then start the collector.
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let failed = line.contains("exporting traces failed");
        seen.push(line);
        if failed {
            break;
        }
    }
    let collector = Collector::start_on(grpc, http).expect("collector starts late");
    let rest: Vec<String> = lines.collect();
    let status = child.wait().expect("app exits");
    assert!(status.success());
    let all = [seen, rest].concat().join("\n");

    let failures = all.matches("exporting traces failed").count();
    assert_eq!(failures, 1, "the outage is reported once:\n{all}");
    assert!(all.contains("exporting traces works again"), "{all}");

    assert!(all.contains("RESULT"), "{all}");
    // lookout::stats() saw both the failures and the recovery.
    let stats = all
        .lines()
        .find_map(|l| l.strip_prefix("STATS traces "))
        .expect("stats line");
    let parts: Vec<&str> = stats.split_whitespace().collect();
    let ok: u64 = parts[0].parse().expect("n");
    assert!(ok >= 1, "{stats}");
    // The first export may have been delivered by a retry once the collector was up (then no
    // export failed for good), or failed after its retries (then the error is resolved).
    assert!(matches!(parts[2], "resolved" | "none"), "{stats}");
    let r = collector
        .wait_for(Duration::from_secs(20), |r| {
            r.spans
                .iter()
                .any(|s| s.attributes.get("index") == Some(&Value::Int(59)))
        })
        .unwrap_or_else(|e| panic!("{e}\n{all}"));
    // Spans of exports that failed for good while it was down are lost; the report counts them,
    // and every other span arrived.
    let lost: u64 = all
        .lines()
        .find_map(|l| l.strip_prefix("COUNTS traces "))
        .and_then(|c| c.split_whitespace().nth(1)?.parse().ok())
        .expect("counts line");
    assert_eq!(r.spans.len() as u64 + lost, 60, "{all}");
}

#[test]
fn a_refused_connection_makes_shutdown_report_the_loss() {
    let port = free_port().to_string();
    // tonic inside a current_thread runtime is the case where opentelemetry-rust alone blocks
    // shutdown for its full 5 s and loses the report (#2715).
    for (protocol, runtime) in [
        ("grpc", "none"),
        ("grpc", "current"),
        ("http/protobuf", "none"),
        ("http/protobuf", "current"),
    ] {
        let endpoint = format!("http://127.0.0.1:{port}");
        let app = run(
            &env!("CARGO_BIN_EXE_e2e-app").into(),
            &["tree"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("E2E_RUNTIME", runtime),
            ],
        );
        assert_eq!(app.code, Some(0), "the program itself is unaffected");
        assert_eq!(
            app.result(),
            Some("lost"),
            "{protocol} {runtime}: {}",
            app.stdout
        );
        assert_eq!(app.counts("traces"), Some((0, 3)), "{}", app.stdout);
        assert_eq!(app.counts("logs"), Some((0, 3)), "{}", app.stdout);
        // The app's two points, and lookout's own lookout.spans.dropped, lookout.logs.dropped
        // and lookout.redacted.
        assert_eq!(app.counts("metrics"), Some((0, 5)), "{}", app.stdout);
        let (ok, failed, last) = app.trace_stats().expect("stats");
        // Spans are still queued when stats are read; nothing has succeeded either way.
        assert_eq!(ok, 0);
        assert!(
            matches!(last.as_str(), "none" | "unresolved"),
            "{last} after {failed} failures"
        );
    }
}

#[test]
fn a_collector_that_never_answers_makes_shutdown_hit_its_deadline() {
    // A fake collector: accepts connections and never answers (what a hung peer does), which a
    // real collector cannot be made to do.
    let black_hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", black_hole.local_addr().expect("addr"));
    let held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in black_hole.incoming().take(8).flatten() {
            held.push(stream);
        }
        held
    });
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("LOOKOUT_SHUTDOWN_TIMEOUT", "1500"),
        ],
    );
    drop(held);
    assert_eq!(app.code, Some(0));
    assert_eq!(app.result(), Some("deadline"), "{}", app.stdout);
    // Everything is reported lost, including the metric export abandoned at the deadline.
    assert_eq!(app.counts("traces"), Some((0, 3)), "{}", app.stdout);
    assert_eq!(app.counts("logs"), Some((0, 3)), "{}", app.stdout);
    assert_eq!(app.counts("metrics"), Some((0, 5)), "{}", app.stdout);
}
