//! Idle and slow clients cannot hold a server's shutdown: `AdminServer::shutdown` and
//! `lookout_admin::serve` return within their grace period, closing what is still open, and a
//! client that never finishes its request head is cut off by the header-read timeout.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A bound four times the 5 s grace, and under the 30 s that hyper's own header timeout would
/// let a half-sent request hold an unbounded graceful shutdown: only a shutdown that waits for its
/// clients reaches it.
const HANG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_shutdown_closes_idle_and_half_sent_connections_at_the_deadline() {
    let admin = lookout_admin::Admin::builder()
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = admin.local_addr();
    let mut clients = Vec::new();
    // Connections that send nothing at all.
    for _ in 0..5 {
        clients.push(TcpStream::connect(addr).await.unwrap());
    }
    // Connections that send half a request head and stop.
    for _ in 0..3 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        clients.push(c);
    }
    // A kept-alive connection after a complete request.
    let mut keep = TcpStream::connect(addr).await.unwrap();
    keep.write_all(b"GET /monitoring/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = keep.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    clients.push(keep);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stopped = tokio::time::timeout(HANG, admin.shutdown())
        .await
        .expect("shutdown returned: idle and slow clients did not hold it");
    assert!(
        stopped.closed >= 3,
        "the half-sent requests were closed at the deadline: {stopped:?}"
    );
    // Every client sees its connection end.
    for mut c in clients {
        let mut rest = Vec::new();
        let end = tokio::time::timeout(HANG, c.read_to_end(&mut rest)).await;
        assert!(end.is_ok(), "a connection stayed open after shutdown");
    }
    // Shutdown is repeatable: a second call returns the first outcome.
    let again = tokio::time::timeout(HANG, admin.shutdown())
        .await
        .expect("a second shutdown returns at once");
    assert_eq!(again, stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_never_ends_is_cut_off() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let server = tokio::spawn(lookout_admin::serve(
        listener,
        app,
        async {
            let _ = stop_rx.await;
        },
        lookout_admin::ServeOptions::default().header_read_timeout(Duration::from_millis(300)),
    ));
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG, slow.read_to_end(&mut answer))
        .await
        .expect("the server closed the slow connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A normal client is still served.
    let mut ok = TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = Vec::new();
    ok.read_to_end(&mut body).await.unwrap();
    assert!(String::from_utf8_lossy(&body).ends_with("ok"));
    stop_tx.send(()).unwrap();
    let stopped = tokio::time::timeout(HANG, server).await.unwrap().unwrap();
    assert_eq!(stopped.closed, 0, "nothing was left open: {stopped:?}");
}

/// A browser with the local view open holds an event stream; the server's drain ends it, so it
/// finishes on its own instead of being closed at the grace deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_view_event_stream_ends_when_the_server_drains() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = lookout_admin::Admin::builder().build().unwrap().router();
    let server = tokio::spawn(lookout_admin::serve(
        listener,
        app,
        async {
            let _ = stop_rx.await;
        },
        lookout_admin::ServeOptions::default(),
    ));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /view/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 512];
    let n = tokio::time::timeout(HANG, stream.read(&mut first))
        .await
        .expect("the stream's first event")
        .unwrap();
    let head = String::from_utf8_lossy(&first[..n]);
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"),
        "{head}"
    );
    stop_tx.send(()).unwrap();
    let stopped = tokio::time::timeout(HANG, server).await.unwrap().unwrap();
    assert_eq!(
        (stopped.drained, stopped.closed),
        (1, 0),
        "the event stream ended with the drain: {stopped:?}"
    );
}
