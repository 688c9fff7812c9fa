//! `Telemetry::shutdown().await` flushes off the runtime's threads: on a current-thread runtime,
//! other tasks keep running while the flush waits on a collector that never answers. (With the
//! flush on the runtime's only thread, the ticker below could not tick once before it ended.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lookout::{ConsoleFormat, ExporterKind, Protocol, Signal};

#[test]
fn other_tasks_run_while_shutdown_is_awaited() {
    // A hung collector (a fake, named as such): the port is bound and never accepted from, so the
    // export's request is never answered and the flush waits until the shutdown deadline.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", hung.local_addr().expect("addr"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let telemetry = lookout::Telemetry::builder()
            .otlp(|o| o.endpoint(endpoint).protocol(Protocol::HttpProtobuf))
            .exporter(Signal::Metrics, ExporterKind::None)
            .exporter(Signal::Logs, ExporterKind::None)
            .console(ConsoleFormat::Off)
            .shutdown_timeout(Duration::from_secs(1))
            .init()
            .expect("init");
        tracing::info_span!("unanswered").in_scope(|| {});

        let ticks = Arc::new(AtomicU32::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let outcome = telemetry.shutdown().await;
        ticker.abort();
        // The export gives up at the shutdown deadline (its timeout is cut to what is left) and
        // counts the span lost; whether shutdown returns just before or just after the deadline
        // is a race, and both outcomes report the loss.
        let report = match &outcome {
            Err(
                e @ (lookout::ShutdownError::DeadlineExceeded { .. }
                | lookout::ShutdownError::DataLost { .. }),
            ) => e.report(),
            other => panic!("the hung collector keeps the span: {other:?}"),
        };
        assert_eq!(
            report.traces.exported, 0,
            "the hung collector keeps the span: {outcome:?}"
        );
        assert!(
            report.elapsed >= Duration::from_millis(900),
            "shutdown waited for the export up to its deadline: {outcome:?}"
        );
        assert!(
            ticks.load(Ordering::Relaxed) > 0,
            "no other task ran while shutdown was awaited"
        );
        // A second call returns the first outcome at once.
        assert!(telemetry.shutdown().await.is_err());
        drop(hung);
    });
}
