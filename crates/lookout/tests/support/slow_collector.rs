//! A slow OTLP/HTTP collector, shared by the tests that need a destination answering late.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

/// A slow OTLP/HTTP collector (a fake, named as such: a real one cannot be told to answer late):
/// every request is answered with an empty success after `delay`; it records the most requests
/// it held at once.
pub(crate) struct SlowCollector {
    pub(crate) now: AtomicUsize,
    pub(crate) most: AtomicUsize,
    pub(crate) requests: AtomicU64,
}

impl SlowCollector {
    /// One listening on 127.0.0.1, answering after `delay`: its endpoint and its counts.
    pub(crate) fn start(delay: Duration) -> (String, Arc<SlowCollector>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(SlowCollector {
            now: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        });
        let server = state.clone();
        std::thread::spawn(move || serve(listener, server, delay));
        (endpoint, state)
    }
}

/// lookout's settings for spans only, to `endpoint` over `http/protobuf` in batches of 10, the
/// view off; `more` on top.
pub(crate) fn spans_to<'a>(
    endpoint: &'a str,
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ("LOOKOUT_VIEW", "off"),
    ];
    vars.extend_from_slice(more);
    vars
}

fn serve(listener: TcpListener, state: Arc<SlowCollector>, delay: Duration) {
    for stream in listener.incoming().flatten() {
        let state = state.clone();
        std::thread::spawn(move || connection(stream, &state, delay));
    }
}

fn connection(stream: TcpStream, state: &SlowCollector, delay: Duration) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let held = state.now.fetch_add(1, SeqCst) + 1;
        state.most.fetch_max(held, SeqCst);
        state.requests.fetch_add(1, SeqCst);
        std::thread::sleep(delay);
        state.now.fetch_sub(1, SeqCst);
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
