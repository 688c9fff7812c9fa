//! The local view's stores, fed by the real pipeline with every exporter `none` (the SDK's batch
//! processor feeds it): see `view_checks`.

mod view_checks;

#[test]
fn the_view_keeps_recent_error_and_slowest_traces_logs_series_and_running_spans() {
    view_checks::run(&[("OTEL_TRACES_EXPORTER", "none")], false);
}
