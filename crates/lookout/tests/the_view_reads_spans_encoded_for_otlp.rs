//! The local view fed by lookout's span processor for OTLP over protobuf, which encodes each span
//! as it ends and shows the view those bytes: the same checks as with the SDK's processor
//! (`view_checks`). The destination is a closed loopback port: the view sees each batch before
//! it is sent, whatever becomes of the export.

mod view_checks;

#[test]
fn the_view_reads_spans_encoded_as_they_end() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = closed.local_addr().expect("its address").port();
    drop(closed);
    let endpoint: &'static str = Box::leak(format!("http://127.0.0.1:{port}").into_boxed_str());
    view_checks::run(
        &[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "500"),
        ],
        true,
    );
}
