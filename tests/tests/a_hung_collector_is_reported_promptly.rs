//! A collector that accepts connections and never answers (hung) is reported within seconds,
//! not after the export timeout: the WARN says the destination has not answered, and the drops it
//! causes are blamed on it, not on CPU or sampling.
//!
//! The "collector" is a real TCP listener that never reads or writes, which is what a hung
//! process looks like from outside.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use lookout_e2e::command;

fn hung_collector() -> (String, Arc<Mutex<Vec<std::net::TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().expect("held").push(stream);
        }
    });
    (format!("http://{addr}"), held)
}

#[test]
fn a_hung_collector_is_said_within_seconds_and_named_as_the_cause_of_drops() {
    for protocol in ["grpc", "http/protobuf"] {
        let (endpoint, held) = hung_collector();
        let mut child = command(
            &env!("CARGO_BIN_EXE_e2e-app").into(),
            // 40 spans, one every 100 ms: the program runs about 4 s.
            &["trickle", "40"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
                ("OTEL_BSP_SCHEDULE_DELAY", "200"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "5"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5"),
                // Two exports held by the hung collector, then the queue: full after 15 spans,
                // while the program runs (16 in flight, the default, would hold all 40).
                ("LOOKOUT_EXPORT_CONCURRENCY", "2"),
                ("OTEL_METRICS_EXPORTER", "none"),
                ("OTEL_LOGS_EXPORTER", "none"),
                ("LOOKOUT_SHUTDOWN_TIMEOUT", "1000"),
                ("LOOKOUT_CONSOLE", "compact"),
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("app starts");
        let stdout = child.stdout.take().expect("stdout");
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect();
        child.wait().expect("app exits");
        let all = lines.join("\n");
        assert!(!held.lock().expect("held").is_empty(), "lookout connected");

        // Said while the program still ran (before its last tick), not after the 30 s timeout.
        let last_tick = lines
            .iter()
            .position(|l| l.starts_with("TICK 39"))
            .unwrap_or_else(|| panic!("{protocol}: the program ran to its end:\n{all}"));
        let slow = lines
            .iter()
            .position(|l| l.contains("has not answered an export of traces"))
            .unwrap_or_else(|| panic!("{protocol}: the hang is said:\n{all}"));
        assert!(slow < last_tick, "{protocol}: said while running:\n{all}");
        assert_eq!(
            all.matches("has not answered an export").count(),
            1,
            "{protocol}: said once:\n{all}"
        );

        let drops = lines
            .iter()
            .position(|l| l.contains("export queue (5 items) was full"))
            .unwrap_or_else(|| panic!("{protocol}: the drops are said:\n{all}"));
        assert!(
            drops < last_tick,
            "{protocol}: drops said while running:\n{all}"
        );
        assert!(
            lines[drops].contains("not taking exports") && !lines[drops].contains("CPU"),
            "{protocol}: the drops are blamed on the destination:\n{}",
            lines[drops]
        );
    }
}
