//! SIGTERM with idle and half-sent connections open on both the API and the admin port: the
//! service still exits (drain, then 5 s for requests in progress, then the rest is closed), and it
//! flushes its telemetry before it goes: the span of the request made before is at the collector.

use std::io::Write as _;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lookout_testing::{Collector, free_port};

/// Far above drain (0 s) + grace (5 s) + the telemetry flush; under what an unbounded drain takes
/// with a half-sent request (hyper's own 30 s header timeout, then more).
const BOUND: Duration = Duration::from_secs(25);

#[test]
fn idle_clients_do_not_hold_the_exit_and_telemetry_is_flushed() {
    let collector = Collector::start().expect("start the collector");
    let (api, admin) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-axum-service"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{api}"))
        .env("LOOKOUT_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("SHUTDOWN_DRAIN", "0s")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.grpc_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("LOOKOUT_CONSOLE", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start example-axum-service");
    let started = Instant::now();
    let connect = |port: u16| loop {
        if let Ok(c) = TcpStream::connect(("127.0.0.1", port)) {
            break c;
        }
        assert!(started.elapsed() < BOUND, "the service did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    // One request, whose span must reach the collector before the process ends.
    let mut request = connect(api);
    request
        .write_all(
            b"POST /sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{\"user\":\"ann\"}",
        )
        .expect("send a request");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut request, &mut answer).expect("its answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    // Idle and half-sent connections on both ports, held open through the shutdown.
    let mut held = Vec::new();
    for port in [api, admin] {
        for _ in 0..3 {
            held.push(connect(port));
        }
        let mut half = connect(port);
        half.write_all(b"GET /sessions/x HTTP/1.1\r\nHost: x\r\n")
            .expect("half a request");
        held.push(half);
    }

    let term = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if term.elapsed() > BOUND {
            let _ = child.kill();
            panic!("still running {BOUND:?} after SIGTERM: clients held the shutdown");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("exited {} ms after SIGTERM", term.elapsed().as_millis());
    assert!(status.success(), "{status}");
    drop(held);
    collector
        .wait_for(Duration::from_secs(10), |r| {
            r.span("POST /sessions").is_some()
        })
        .expect("the request's span was flushed before exit");
}
