//! The admin routes on a real server, read with a real HTTP client: /metrics in both formats and
//! gzip, the monitoring JSON, reset's authorisation, health mounted; and a real Prometheus server
//! scraping /metrics, queried through its HTTP API, with `promtool check metrics` on the scrape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lookout::measured;
use lookout::metrics::Metrics;
use lookout_admin::{Admin, AdminServer};
use lookout_health::{CheckResult, Health, check_fn};
use serde_json::Value;

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let resource = lookout::opentelemetry_sdk::Resource::builder_empty()
            .with_service_name("admin-test")
            .build();
        let m = Metrics::in_memory(resource);
        m.install();
        // Process metrics, and the runtime metrics of a runtime that lives as long as the test
        // binary (each test's own runtime ends with the test).
        let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap(),
        ));
        let _entered = runtime.enter();
        m.register_process_metrics().unwrap();
        m
    })
}

#[derive(Debug)]
struct Refused;

#[measured]
async fn charge(amount: u32) -> Result<u32, Refused> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    if amount > 100 {
        Err(Refused)
    } else {
        Ok(amount)
    }
}

#[measured]
fn quote(items: u32) -> u32 {
    items * 3
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn serve(admin: Admin) -> (AdminServer, String) {
    let server = admin.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    (server, base)
}

fn health() -> Health {
    Health::builder()
        .check(
            lookout_health::Check::new("database", check_fn(|| async { CheckResult::up() }))
                .groups(["readiness"]),
        )
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_text_openmetrics_and_gzip() {
    let m = metrics();
    for amount in [5, 50, 500, 7] {
        let _ = charge(amount).await;
    }
    let (server, base) = serve(Admin::builder().metrics(m.clone()).build().unwrap()).await;
    let http = client();

    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains("# TYPE function_calls_total counter"),
        "{text}"
    );
    let line = |needle: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(needle)
                    && l.contains("function=\"charge\"")
                    && !l.contains("result=\"error\"")
            })
            .unwrap_or_else(|| panic!("no {needle} for charge in:\n{text}"))
            .to_owned()
    };
    assert!(line("function_calls_total{").contains("result=\"ok\""));
    assert!(
        line("function_calls_total{").ends_with(" 3"),
        "{}",
        line("function_calls_total{")
    );
    assert!(line("function_duration_seconds_count{").ends_with(" 4"));
    assert!(
        text.contains("# TYPE process_memory_usage_bytes gauge"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE process_cpu_time_seconds_total counter"),
        "{text}"
    );
    assert!(text.contains("process_thread_count_threads{"), "{text}");
    assert!(text.contains("tokio_runtime_workers{"), "{text}");
    assert!(
        text.contains("target_info{service_name=\"admin-test\""),
        "{text}"
    );

    // OpenMetrics when asked for, with the counter family named without _total and # EOF
    let r = http
        .get(format!("{base}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    let om = r.text().await.unwrap();
    assert!(om.contains("# TYPE function_calls counter"), "{om}");
    assert!(
        om.contains("# UNIT function_duration_seconds seconds"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"));

    // gzip: the raw body is gzip, and decodes to the same exposition
    let raw = reqwest::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .get(format!("{base}/metrics"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-encoding"], "gzip");
    let bytes = raw.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    let decoded = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        bytes.len() < decoded.len() / 2,
        "{} vs {}",
        bytes.len(),
        decoded.len()
    );

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_json_reset_and_health() {
    let m = metrics();
    for i in 0..10 {
        quote(i);
    }
    let admin = Admin::builder()
        .metrics(m.clone())
        .health(health())
        .reset_token("s3cret")
        .build()
        .unwrap();
    let (server, base) = serve(admin).await;
    let http = client();
    let get = |path: &str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (status, all) = get("/monitoring/metrics").await;
    assert_eq!(status, 200);
    let q = all["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "quote")
        .unwrap()
        .clone();
    assert_eq!(q["calls"], 10);
    assert_eq!(q["errors"], 0);
    assert_eq!(q["module"], "admin_routes");
    assert!(q["duration_ms"]["p99"].as_f64().unwrap() >= 0.0);
    assert!(q["last_call"].as_str().unwrap().ends_with('Z'));

    let (status, one) = get("/monitoring/operation?name=quote").await;
    assert_eq!(status, 200);
    assert_eq!(one["calls"], 10);
    let (status, missing) = get("/monitoring/operation?name=nope").await;
    assert_eq!(status, 404);
    assert!(
        missing["known"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "quote")
    );
    let (status, bad) = get("/monitoring/operation").await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("?name="));

    let (status, sys) = get("/monitoring/system").await;
    assert_eq!(status, 200);
    assert_eq!(sys["service"], "admin-test");
    assert!(sys["operations"]["calls"].as_u64().unwrap() >= 10);
    assert!(sys["metrics"]["series"].as_u64().unwrap() > 0);
    assert!(sys["pipeline"]["traces"].is_object());

    // health: lookout-health's routes and the monitoring aliases
    assert_eq!(get("/monitoring/ready").await.0, 200);
    assert_eq!(get("/monitoring/live").await.0, 200);
    assert_eq!(get("/health/ready").await.0, 200);
    let (_, h) = get("/monitoring/health").await;
    assert_eq!(h["status"], "UP", "{h}");

    // reset: 405 for GET, 401 without or with a wrong token, 200 with it
    assert_eq!(get("/monitoring/reset").await.0, 405);
    let post = |token: Option<&str>| {
        let mut r = http.post(format!("{base}/monitoring/reset"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = post(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(post(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(
        get("/monitoring/operation?name=quote").await.1["calls"],
        10,
        "not reset by a refused request"
    );
    let upper = http
        .post(format!("{base}/monitoring/reset"))
        .header("authorization", "BEARER wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(upper.status(), 401);
    assert_eq!(
        get("/monitoring/operation?name=quote").await.1["calls"],
        10,
        "not reset by a refused request"
    );
    // The scheme is case-insensitive (RFC 9110).
    let upper = http
        .post(format!("{base}/monitoring/reset"))
        .header("authorization", "BEARER s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(upper.status(), 200);
    quote(3);
    assert_eq!(post(Some("s3cret")).await.unwrap().status(), 200);
    assert_eq!(get("/monitoring/operation?name=quote").await.1["calls"], 0);
    quote(1);
    quote(2);
    let (_, after) = get("/monitoring/operation?name=quote").await;
    assert_eq!(after["calls"], 2);
    assert!(after["since_reset"].is_string());
    // /metrics is never reset
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("function_calls_total{")
            && l.contains("function=\"quote\"")
            && l.ends_with(" 13")),
        "{text}"
    );

    server.shutdown().await;

    // without a token the reset route does not exist
    let (server, base) = serve(Admin::builder().metrics(m.clone()).build().unwrap()).await;
    let r = http
        .post(format!("{base}/monitoring/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    server.shutdown().await;
    assert!(matches!(
        Admin::builder().reset_token(" ").build(),
        Err(lookout_admin::AdminError::EmptyToken)
    ));
}

fn tool(name: &str) -> std::path::PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is not installed: run scripts/test (it installs Prometheus 2.42 with apt-get), or `apt-get install -y prometheus`")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_and_promtool_finds_no_problem() {
    let m = metrics();
    let (server, base) = serve(Admin::builder().metrics(m.clone()).build().unwrap()).await;
    for amount in [1, 2, 300] {
        let _ = named_payment(amount).await;
    }
    let http = client();

    // promtool check metrics on the scrape: no warnings at all
    let scrape = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    if let Err(said) = lookout_testing::promtool_check_metrics(&scrape) {
        panic!("{said}\n{scrape}");
    }

    // a real Prometheus scraping every second
    let dir = tempfile::tempdir().unwrap();
    let port = lookout_testing::free_port();
    let target = server.local_addr();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: lookout\n    static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let mut prometheus = tokio::process::Command::new(tool("prometheus"))
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let query = |q: &'static str| {
        let http = http.clone();
        let api = api.clone();
        async move {
            let r = http
                .get(format!(
                    "{api}/query?query={}",
                    url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
                ))
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            v["data"]["result"].as_array().cloned()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let ok = loop {
        let found = query("function_calls_total{function=\"payment\",result=\"ok\"}").await;
        if let Some(r) = found.filter(|r| !r.is_empty()) {
            break r;
        }
        assert!(Instant::now() < deadline, "Prometheus never had the series");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(ok[0]["value"][1], "2");
    assert_eq!(ok[0]["metric"]["job"], "lookout");
    assert_eq!(ok[0]["metric"]["otel_scope_name"], "lookout");
    let err = query("function_calls_total{function=\"payment\",result=\"error\"}")
        .await
        .unwrap();
    assert_eq!(err[0]["value"][1], "1");
    assert_eq!(err[0]["metric"]["error_type"], "admin_routes::Refused");
    let count = query("function_duration_seconds_count{function=\"payment\"}")
        .await
        .unwrap();
    assert_eq!(count[0]["value"][1], "3");
    let buckets = query("function_duration_seconds_bucket{function=\"payment\",le=\"+Inf\"}")
        .await
        .unwrap();
    assert_eq!(buckets[0]["value"][1], "3");
    // the scrape itself was healthy: the target is up with no error
    let targets: Value = http
        .get(format!("{api}/targets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = &targets["data"]["activeTargets"][0];
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["lastError"], "", "{t}");

    prometheus.kill().await.unwrap();
    server.shutdown().await;
}

#[measured(name = "payment")]
async fn named_payment(amount: u32) -> Result<u32, Refused> {
    tokio::task::yield_now().await;
    if amount > 100 {
        Err(Refused)
    } else {
        Ok(amount)
    }
}
