//! A malformed `OTEL_EXPORTER_OTLP_HEADERS` puts secrets where a parser does not expect them (the
//! name of `Authorization:Basic SECRET==`, a value with a percent-encoded line break). Init refuses
//! it with an error that names the header (or its position) and never shows a secret, in Display
//! and Debug alike, said once, and the same over gRPC and HTTP.

use lookout_e2e::run;

#[test]
fn malformed_headers_are_refused_without_showing_the_secret_the_same_on_both_protocols() {
    for headers in [
        "Authorization:Basic SECRETSECRET==",
        "x-api-key SECRETSECRET=1",
        "x-api-key=SECRET%0ASECRET",
        "ok=1,Authorization=Bearer SECRETSECRET%00",
    ] {
        let mut errors = Vec::new();
        for protocol in ["grpc", "http/protobuf", "http/json"] {
            let out = run(
                &env!("CARGO_BIN_EXE_e2e-app").into(),
                &["spans", "1"],
                &[
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                    ("OTEL_EXPORTER_OTLP_HEADERS", headers),
                    ("LOOKOUT_CONSOLE", "compact"),
                ],
            );
            let all = format!("{}{}", out.stdout, out.stderr);
            assert!(
                !all.contains("SECRET"),
                "{protocol} {headers:?}: a secret was shown:\n{all}"
            );
            let error = out
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("INIT_ERROR "))
                .unwrap_or_else(|| panic!("{protocol} {headers:?}: refused at init:\n{all}"))
                .to_owned();
            assert!(error.contains("OTLP header"), "{error}");
            assert_eq!(
                error.matches("OTLP header").count(),
                1,
                "said once, not once per signal: {error}"
            );
            errors.push(error);
        }
        assert!(
            errors.windows(2).all(|w| w[0] == w[1]),
            "the protocols agree: {errors:#?}"
        );
    }
}
