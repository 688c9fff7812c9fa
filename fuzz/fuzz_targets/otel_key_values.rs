//! `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,...` with
//! percent-decoding, then each pair as an OTLP header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pairs, headers) = lookout::__fuzz::key_values(text);
    assert!(headers <= pairs.len());
    for (key, _) in &pairs {
        assert!(!key.is_empty(), "an empty key is never accepted");
    }
    // Never more pairs than entries.
    assert!(pairs.len() <= text.split(',').count());
});
