//! A library that only annotates its functions (`#[instrument]`, `#[lookout::measured]`) depends on
//! lookout without default features and pulls no exporter, transport, TLS or HTTP stack, and no
//! OpenTelemetry SDK: what `cargo tree -e normal` lists for examples/pricing-library. The count is
//! the one the README gives.

use std::collections::BTreeSet;
use std::process::Command;

/// The crates (name only) in the normal-dependency tree of `package`, itself included.
fn crates_of(package: &str, features: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "tree",
        "--offline",
        "-e",
        "normal",
        "--prefix",
        "none",
        "-p",
        package,
    ])
    .args(features)
    .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let out = cmd.output().expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

const PIPELINE: &[&str] = &[
    "opentelemetry_sdk",
    "opentelemetry-otlp",
    "opentelemetry-proto",
    "opentelemetry-stdout",
    "tonic",
    "reqwest",
    "hyper",
    "h2",
    "rustls",
    "axum",
    "tokio",
    "prost",
    "flate2",
    "chrono",
];

#[test]
fn an_instrumented_library_pulls_no_pipeline() {
    let crates = crates_of("example-pricing-library", &[]);
    let pulled: Vec<&&str> = PIPELINE.iter().filter(|c| crates.contains(**c)).collect();
    assert!(pulled.is_empty(), "{pulled:?} in {crates:?}");
    assert!(crates.contains("lookout") && crates.contains("opentelemetry"));
    // The README's figure ("30 crates, the library itself included"); raise it there when a
    // dependency is added on purpose.
    assert!(crates.len() <= 30, "{} crates: {crates:?}", crates.len());
}

#[test]
fn the_application_side_has_the_pipeline() {
    // The same check would pass on an empty tree: the default build must list the pipeline.
    let crates = crates_of("lookout", &[]);
    for c in ["opentelemetry_sdk", "tonic", "reqwest", "rustls"] {
        assert!(crates.contains(c), "{c} not in lookout's default tree");
    }
}
