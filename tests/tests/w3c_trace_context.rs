//! W3C Trace Context (Level 1 and 2) and W3C Baggage through a real lookout-tower service
//! (`w3c-service`, the one the W3C test harness drives): each case sends header lines to it, and
//! reads the headers of the call the service then makes. Written from the specifications; the same
//! cases as the w3c/trace-context harness, which passes 41/41 at every strictness and spec level
//! (lookout-tower's README says how to run it).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;

const TRACE: &str = "12345678901234567890123456789012";
const PARENT: &str = "1234567890123456";

struct Service {
    child: Child,
    addr: String,
    runtime: tokio::runtime::Runtime,
    receiver: SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_w3c-service"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("w3c-service starts");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("LISTENING "))
        .expect("it says where it listens");
    let addr = line.trim_start_matches("LISTENING ").to_owned();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::post(move |headers: HeaderMap| {
            let keep = keep.clone();
            async move {
                keep.lock().expect("seen").push(headers);
                "ok"
            }
        }),
    );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let receiver = listener.local_addr().expect("addr");
    runtime.spawn(async move { axum::serve(listener, app).await });
    Service {
        child,
        addr,
        runtime,
        receiver,
        seen,
    }
}

impl Service {
    /// Sends `lines` (each its own header line) to the service, which calls back; returns the
    /// headers of that call.
    fn hop(&self, lines: &[(&str, String)]) -> HeaderMap {
        self.seen.lock().expect("seen").clear();
        let body = format!(
            r#"[{{"url":"http://{}/callback","arguments":[]}}]"#,
            self.receiver
        );
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in lines {
            headers.append(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        let response = self
            .runtime
            .block_on(
                reqwest::Client::new()
                    .post(format!("http://{}/test", self.addr))
                    .header("content-type", "application/json")
                    .headers(headers)
                    .body(body)
                    .send(),
            )
            .expect("the service answers");
        assert!(response.status().is_success());
        self.seen.lock().expect("seen").pop().expect("a callback")
    }
}

fn tp(flags: &str) -> (&'static str, String) {
    ("traceparent", format!("00-{TRACE}-{PARENT}-{flags}"))
}

fn parent(h: &HeaderMap) -> Vec<String> {
    let all: Vec<&str> = h
        .get_all("traceparent")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(all.len(), 1, "one traceparent out: {all:?}");
    all[0].split('-').map(str::to_owned).collect()
}

fn state(h: &HeaderMap) -> String {
    h.get_all("tracestate")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn trace_context_and_baggage_through_a_lookout_tower_service() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s = start();

    // No traceparent: a new trace, flagged random (lookout's ids are random).
    let out = s.hop(&[]);
    let fields = parent(&out);
    assert_eq!(fields[0], "00");
    assert_ne!(fields[1], TRACE);
    assert_eq!(
        u8::from_str_radix(&fields[3], 16).expect("hex") & 0x02,
        0x02
    );

    // A valid traceparent: continued, a new parent id, header names case-insensitive.
    for name in ["traceparent", "TraceParent", "TRACEPARENT"] {
        let out = s.hop(&[(name, format!("00-{TRACE}-{PARENT}-01"))]);
        let fields = parent(&out);
        assert_eq!(fields[1], TRACE, "{name}");
        assert_ne!(fields[2], PARENT);
        assert_eq!(fields[3], "01");
    }

    // Two traceparent lines: both ignored, a new trace.
    let out = s.hop(&[
        (
            "traceparent",
            format!("00-{}-{PARENT}-01", "12345678901234567890123456789011"),
        ),
        tp("01"),
    ]);
    assert_ne!(parent(&out)[1], TRACE);
    assert_ne!(parent(&out)[1], "12345678901234567890123456789011");

    // Future versions keep their first four fields; version 00 takes no more; ff is invalid.
    assert_eq!(
        parent(&s.hop(&[("traceparent", format!("cc-{TRACE}-{PARENT}-01-future"))]))[1],
        TRACE
    );
    assert_ne!(
        parent(&s.hop(&[("traceparent", format!("00-{TRACE}-{PARENT}-01-future"))]))[1],
        TRACE
    );
    assert_ne!(
        parent(&s.hop(&[("traceparent", format!("ff-{TRACE}-{PARENT}-01"))]))[1],
        TRACE
    );

    // Level 2: the random flag is kept, unsampled too.
    assert_eq!(parent(&s.hop(&[tp("02")]))[3], "02");

    // Several tracestate lines are one list, in order; an empty line adds nothing.
    let out = s.hop(&[
        tp("01"),
        ("tracestate", "foo=1,bar=2".into()),
        ("tracestate", "".into()),
        ("tracestate", "rojo=1,congo=2".into()),
        ("tracestate", "baz=3".into()),
    ]);
    assert_eq!(state(&out), "foo=1,bar=2,rojo=1,congo=2,baz=3");

    // 32 members across lines pass; 33 drop the tracestate (the trace goes on).
    let members: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
    let lines = |n: usize| {
        let mut v = vec![tp("01")];
        v.extend(members[..n].chunks(10).map(|c| ("tracestate", c.join(","))));
        v
    };
    assert_eq!(state(&s.hop(&lines(32))).split(',').count(), 32);
    let out = s.hop(&lines(33));
    assert_eq!(state(&out), "");
    assert_eq!(parent(&out)[1], TRACE);

    // Level 2 keys the SDK refuses, in a second line.
    let key = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    let out = s.hop(&[
        tp("01"),
        ("tracestate", "foo=1".into()),
        ("tracestate", format!("{key}=1")),
    ]);
    assert_eq!(state(&out), format!("foo=1,{key}=1"));
    let out = s.hop(&[tp("01"), ("tracestate", "foo@@bar=1,bar=2".into())]);
    assert_eq!(state(&out), "foo@@bar=1,bar=2");

    // One invalid member (an empty value, a key with a leading @) drops the whole tracestate.
    for bad in ["foo=,bar=3", "@foo=1,bar=2", "foo=bar=baz", "FOO=1"] {
        assert_eq!(
            state(&s.hop(&[tp("01"), ("tracestate", bad.into())])),
            "",
            "{bad}"
        );
    }

    // Baggage: every line counts.
    let mut lines = vec![tp("01")];
    lines.extend((0..3).map(|i| ("baggage", format!("k{i}=v{i}"))));
    let out = s.hop(&lines);
    let baggage = out
        .get("baggage")
        .expect("baggage propagated")
        .to_str()
        .expect("ascii");
    for i in 0..3 {
        assert!(baggage.contains(&format!("k{i}=v{i}")), "{baggage}");
    }
}
