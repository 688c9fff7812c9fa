//! The `deploy/` stack as real processes on free loopback ports, for the end-to-end tests: the
//! OpenTelemetry Collector (our distribution, `deploy/otel-collector/*.yaml`), Jaeger v2
//! (`deploy/jaeger/config.yaml`), VictoriaLogs, Prometheus (`deploy/prometheus/`), Alertmanager
//! (`deploy/alertmanager/`), a webhook receiver, and the example services.
//!
//! The config files are the ones docker compose mounts: the tests give them their ports through the
//! environment (`${env:...}` in the collector and Jaeger configs, `file_sd` targets for
//! Prometheus). Where a test needs a file changed (faster clocks, loopback receivers), the change is
//! a named transformation in [`transform`], applied to a copy.
//!
//! The Go backends are built by `scripts/install-backends` into `.tools/bin` (or
//! `$LOOKOUT_TOOLS_BIN`); Prometheus comes from Debian's `prometheus` package. A missing binary is a
//! failure that says how to install it, never a skipped test.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The workspace root (where `deploy/` is).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file under `deploy/`.
pub fn deploy(rel: &str) -> PathBuf {
    workspace().join("deploy").join(rel)
}

/// A Go-built backend from `scripts/install-backends`: `$LOOKOUT_TOOLS_BIN/<name>`, else
/// `<workspace>/.tools/bin/<name>`. Panics with the command to run when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("LOOKOUT_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".tools/bin"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run ./scripts/install-backends (./scripts/test does) to build the deploy \
         backends from their pinned Go modules",
        path.display()
    );
    path
}

/// A program on PATH (Prometheus and promtool come from Debian's `prometheus` package).
pub fn on_path(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not on PATH: install Debian's prometheus package (./scripts/test does)"
            )
        })
}

/// An example service binary, built by `cargo test --workspace` next to this test's own target
/// directory (`target/debug/example-...`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/debug/deps/<test> -> target/debug/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .expect("the test runs from a target directory");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p {name}` (cargo test --workspace does)",
        path.display()
    );
    path
}

pub use lookout_testing::free_port;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A process of the stack, its output in a log file; stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with its output going to `<dir>/<name>.log`.
    pub fn spawn(name: &str, mut command: Command, dir: &Path) -> Process {
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).expect("create a log file");
        let err = out.try_clone().expect("clone the log file");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({command:?}): {e}"));
        Process {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits up to `grace` before SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if !self.running() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until `ready` holds, or panics after `timeout` with the process's output.
    pub fn wait_ready(&mut self, timeout: Duration, ready: impl Fn() -> bool) {
        let until = Instant::now() + timeout;
        loop {
            if ready() {
                return;
            }
            if !self.running() {
                panic!("{} exited before it was ready:\n{}", self.name, self.log());
            }
            if Instant::now() >= until {
                panic!("{} not ready after {timeout:?}:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// A blocking HTTP client with a short timeout, for the backends' APIs (one per test binary).
pub fn http() -> reqwest::blocking::Client {
    static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // lookout's `tls` feature builds reqwest without a default crypto provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client")
        })
        .clone()
}

/// `GET url` answered 2xx.
pub fn ok(url: &str) -> bool {
    http()
        .get(url)
        .send()
        .is_ok_and(|r| r.status().is_success())
}

/// `GET url` as JSON (panics on a non-2xx answer or a body that is not JSON).
pub fn get_json(url: &str) -> Value {
    let response = http()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let body = response.text().unwrap_or_default();
    assert!(status.is_success(), "GET {url}: {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

/// Polls `f` every 250 ms until it returns `Some`, or panics after `timeout` saying `what`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Jaeger v2 with `deploy/jaeger/config.yaml`.
#[derive(Debug)]
pub struct Jaeger {
    /// OTLP/gRPC receiver.
    pub otlp_grpc: SocketAddr,
    /// Query API and UI.
    pub query: SocketAddr,
    /// The process.
    pub process: Process,
}

impl Jaeger {
    /// Starts Jaeger on free loopback ports.
    pub fn start(dir: &Path) -> Jaeger {
        let otlp_grpc = loopback();
        let query = loopback();
        let mut command = Command::new(tool("jaeger"));
        command
            .arg(format!(
                "--config={}",
                deploy("jaeger/config.yaml").display()
            ))
            .env("JAEGER_OTLP_GRPC_ENDPOINT", otlp_grpc.to_string())
            .env("JAEGER_OTLP_HTTP_ENDPOINT", loopback().to_string())
            .env("JAEGER_QUERY_HTTP_ENDPOINT", query.to_string())
            .env("JAEGER_QUERY_GRPC_ENDPOINT", loopback().to_string())
            .env("JAEGER_HEALTH_ENDPOINT", loopback().to_string())
            .env("JAEGER_METRICS_HOST", "127.0.0.1")
            .env("JAEGER_METRICS_PORT", free_port().to_string());
        let mut process = Process::spawn("jaeger", command, dir);
        let url = format!("http://{query}/api/services");
        process.wait_ready(Duration::from_secs(60), || ok(&url));
        Jaeger {
            otlp_grpc,
            query,
            process,
        }
    }

    /// `GET /api/traces/{id}`: the trace, or `None` while Jaeger does not have it.
    pub fn trace(&self, trace_id: &str) -> Option<Trace> {
        let response = http()
            .get(format!("http://{}/api/traces/{trace_id}", self.query))
            .send()
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().ok()?;
        Some(Trace(body["data"].get(0)?.clone()))
    }

    /// Waits until the trace is there and `done` holds for it.
    pub fn wait_for_trace(
        &self,
        trace_id: &str,
        timeout: Duration,
        done: impl Fn(&Trace) -> bool,
    ) -> Trace {
        poll(timeout, &format!("trace {trace_id} in Jaeger"), || {
            self.trace(trace_id).filter(|t| done(t))
        })
    }

    /// Recent traces of a service (`GET /api/traces?service=`).
    pub fn traces_of(&self, service: &str, limit: usize) -> Vec<Trace> {
        let body = get_json(&format!(
            "http://{}/api/traces?service={service}&lookback=1h&limit={limit}",
            self.query
        ));
        body["data"]
            .as_array()
            .map(|a| a.iter().cloned().map(Trace).collect())
            .unwrap_or_default()
    }
}

/// A trace as Jaeger's query API returns it (`/api/traces/{id}`, `data[0]`).
#[derive(Debug, Clone)]
pub struct Trace(pub Value);

/// One span of a [`Trace`].
#[derive(Debug, Clone)]
pub struct JaegerSpan {
    /// `spanID`.
    pub id: String,
    /// The parent's span id (`CHILD_OF` reference), if any.
    pub parent: Option<String>,
    /// `operationName`.
    pub name: String,
    /// The `serviceName` of its process.
    pub service: String,
    /// Tags, as strings.
    pub tags: BTreeMap<String, String>,
    /// Its events (Jaeger "logs"): each a map of fields, with `event` holding the name.
    pub events: Vec<BTreeMap<String, String>>,
}

fn tag_map(tags: &Value) -> BTreeMap<String, String> {
    tags.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let key = t["key"].as_str()?.to_owned();
            let value = match &t["value"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((key, value))
        })
        .collect()
}

impl Trace {
    /// The trace id.
    pub fn id(&self) -> &str {
        self.0["traceID"].as_str().unwrap_or_default()
    }

    /// Every span, with its service name resolved.
    pub fn spans(&self) -> Vec<JaegerSpan> {
        let processes = &self.0["processes"];
        self.0["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| JaegerSpan {
                id: s["spanID"].as_str().unwrap_or_default().to_owned(),
                parent: s["references"].as_array().and_then(|refs| {
                    refs.iter()
                        .find(|r| r["refType"] == "CHILD_OF")
                        .and_then(|r| r["spanID"].as_str())
                        .map(str::to_owned)
                }),
                name: s["operationName"].as_str().unwrap_or_default().to_owned(),
                service: s["processID"]
                    .as_str()
                    .and_then(|p| processes[p]["serviceName"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                tags: tag_map(&s["tags"]),
                events: s["logs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| tag_map(&l["fields"]))
                    .collect(),
            })
            .collect()
    }

    /// The first span named `name`.
    pub fn span(&self, name: &str) -> Option<JaegerSpan> {
        self.spans().into_iter().find(|s| s.name == name)
    }

    /// The tags of the process (the resource) of the first span of `service`.
    pub fn resource(&self, service: &str) -> BTreeMap<String, String> {
        self.0["processes"]
            .as_object()
            .into_iter()
            .flatten()
            .find(|(_, p)| p["serviceName"] == service)
            .map(|(_, p)| tag_map(&p["tags"]))
            .unwrap_or_default()
    }
}

/// VictoriaLogs, OTLP logs in and LogsQL out.
#[derive(Debug)]
pub struct VictoriaLogs {
    /// HTTP address (ingestion and queries).
    pub addr: SocketAddr,
    /// The process.
    pub process: Process,
}

impl VictoriaLogs {
    /// Starts VictoriaLogs on a free loopback port, its data under `dir`.
    pub fn start(dir: &Path) -> VictoriaLogs {
        let addr = loopback();
        let mut command = Command::new(tool("victorialogs"));
        command
            .arg(format!("-httpListenAddr={addr}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.join("victorialogs").display()
            ))
            .arg("-loggerLevel=WARN");
        let mut process = Process::spawn("victorialogs", command, dir);
        let url = format!("http://{addr}/health");
        process.wait_ready(Duration::from_secs(30), || ok(&url));
        VictoriaLogs { addr, process }
    }

    /// The base URL the collector's `otlphttp/victorialogs` exporter gets (`VICTORIALOGS_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs a LogsQL query; one JSON object per matching record.
    pub fn query(&self, logsql: &str) -> Vec<Value> {
        let response = http()
            .post(format!("http://{}/select/logsql/query", self.addr))
            .form(&[("query", logsql), ("limit", "100")])
            .send();
        let Ok(response) = response else {
            return Vec::new();
        };
        let body = response.text().unwrap_or_default();
        body.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Our OpenTelemetry Collector distribution running one of `deploy/otel-collector/*.yaml`.
#[derive(Debug)]
pub struct OtelCollector {
    /// OTLP/gRPC receiver.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP receiver.
    pub otlp_http: SocketAddr,
    /// The collector's own metrics (`otelcol_*`), Prometheus text.
    pub metrics: SocketAddr,
    /// The prometheus exporter's endpoint (metrics that services pushed).
    pub exporter: SocketAddr,
    /// The process.
    pub process: Process,
}

impl OtelCollector {
    /// Starts `deploy/otel-collector/<config>` with `env` on top of its loopback ports.
    pub fn start(dir: &Path, name: &str, config: &str, env: &[(&str, String)]) -> OtelCollector {
        let otlp_grpc = loopback();
        let otlp_http = loopback();
        let metrics = loopback();
        let exporter = loopback();
        let health = loopback();
        let mut command = Command::new(tool("otelcol"));
        command
            .arg(format!(
                "--config={}",
                deploy(&format!("otel-collector/{config}")).display()
            ))
            .env("OTELCOL_OTLP_GRPC_ENDPOINT", otlp_grpc.to_string())
            .env("OTELCOL_OTLP_HTTP_ENDPOINT", otlp_http.to_string())
            .env("OTELCOL_HEALTH_ENDPOINT", health.to_string())
            .env("OTELCOL_METRICS_HOST", "127.0.0.1")
            .env("OTELCOL_METRICS_PORT", metrics.port().to_string())
            .env("OTELCOL_PROMETHEUS_ENDPOINT", exporter.to_string());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut process = Process::spawn(name, command, dir);
        let url = format!("http://{health}/");
        process.wait_ready(Duration::from_secs(60), || ok(&url));
        OtelCollector {
            otlp_grpc,
            otlp_http,
            metrics,
            exporter,
            process,
        }
    }

    /// The sum of the collector's own counter `name` (e.g. `otelcol_receiver_accepted_spans_total`)
    /// over its series.
    pub fn counter(&self, name: &str) -> f64 {
        let Ok(text) = http()
            .get(format!("http://{}/metrics", self.metrics))
            .send()
            .and_then(|r| r.text())
        else {
            return 0.0;
        };
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// `deploy/otel-collector/config.yaml` with what it exports to: Jaeger and VictoriaLogs.
#[derive(Debug)]
pub struct SingleNode {
    /// Traces end here.
    pub jaeger: Jaeger,
    /// Logs end here.
    pub logs: VictoriaLogs,
    /// The collector the services send to.
    pub collector: OtelCollector,
}

impl SingleNode {
    /// Starts Jaeger, VictoriaLogs and the single-node collector pointed at them, with `env` on
    /// top of the collector's ports.
    pub fn start(dir: &Path, env: &[(&str, String)]) -> SingleNode {
        let jaeger = Jaeger::start(dir);
        let logs = VictoriaLogs::start(dir);
        let mut vars = vec![
            ("JAEGER_OTLP_GRPC_ENDPOINT", jaeger.otlp_grpc.to_string()),
            ("VICTORIALOGS_URL", logs.url()),
        ];
        vars.extend(env.iter().cloned());
        let collector = OtelCollector::start(dir, "otelcol", "config.yaml", &vars);
        SingleNode {
            jaeger,
            logs,
            collector,
        }
    }
}

/// The named transformations the tests apply to copies of shipped files. Each says what it changes
/// and why; nothing else in a file is touched.
pub mod transform {
    /// Prometheus: scrape and evaluate every second (the shipped 15 s would make a test wait
    /// minutes for a few samples).
    pub fn fast_clock(prometheus_yml: &str) -> String {
        let out = prometheus_yml
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
        assert_ne!(out, prometheus_yml, "fast_clock: no interval to shorten");
        out
    }

    /// Alert and recording rules: every `for:` at most 5 s and every group `interval:` 1 s, so an
    /// alert that would page after minutes fires within seconds. Expressions, labels and
    /// annotations are unchanged.
    pub fn fast_alerts(rules_yml: &str) -> String {
        rules_yml
            .lines()
            .map(|line| {
                let trimmed = line.trim_start();
                let indent = &line[..line.len() - trimmed.len()];
                if trimmed.starts_with("for: ") {
                    let for_ = trimmed.trim_start_matches("for: ");
                    if for_ == "0m" || for_ == "0s" {
                        line.to_owned()
                    } else {
                        format!("{indent}for: 5s")
                    }
                } else if trimmed.starts_with("interval: ") {
                    format!("{indent}interval: 1s")
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Alertmanager: secrets and templates read from `dir` instead of `/etc/alertmanager`; the
    /// PagerDuty and SMTP endpoints on loopback (`pagerduty_url`, `smtp_smarthost`), so nothing
    /// leaves the machine; `group_wait` 1 s and `group_interval` 2 s instead of 30 s and 5 m.
    /// Routes, receivers, grouping and inhibition are unchanged.
    pub fn loopback_receivers(
        alertmanager_yml: &str,
        dir: &str,
        pagerduty: &str,
        smtp: &str,
    ) -> String {
        let out = alertmanager_yml
            .replace("/etc/alertmanager", dir)
            .replace(
                "pagerduty_url: https://events.pagerduty.com/v2/enqueue",
                &format!("pagerduty_url: {pagerduty}"),
            )
            .replace(
                "smtp_smarthost: smtp.example.com:587",
                &format!("smtp_smarthost: {smtp}"),
            )
            .replace("group_wait: 30s", "group_wait: 1s")
            .replace("group_interval: 5m", "group_interval: 2s");
        assert!(
            !out.contains("example.com:587") && !out.contains("pagerduty.com"),
            "loopback_receivers: an endpoint was left off loopback"
        );
        out
    }
}

/// Prometheus (Debian's) with a copy of `deploy/prometheus/prometheus.yml` and its rules, its
/// `file_sd` targets pointed at this test's processes.
#[derive(Debug)]
pub struct Prometheus {
    /// Web and API address.
    pub addr: SocketAddr,
    /// The process.
    pub process: Process,
}

/// Where Prometheus scrapes and sends alerts.
#[derive(Debug, Default)]
pub struct Targets {
    /// lookout services: `(service name, admin address)`.
    pub services: Vec<(String, SocketAddr)>,
    /// Collectors' own metrics addresses.
    pub collectors: Vec<SocketAddr>,
    /// Collectors' prometheus exporter addresses.
    pub collector_exporters: Vec<SocketAddr>,
    /// Alertmanagers.
    pub alertmanagers: Vec<SocketAddr>,
}

impl Prometheus {
    /// Starts Prometheus in `dir` with the shipped config under [`transform::fast_clock`] and the
    /// shipped rules, through `rules` (identity, or [`transform::fast_alerts`]).
    pub fn start(dir: &Path, targets: &Targets, rules: impl Fn(&str) -> String) -> Prometheus {
        let home = dir.join("prometheus");
        fs::create_dir_all(home.join("rules")).expect("prometheus dir");
        fs::create_dir_all(home.join("targets")).expect("targets dir");
        let config =
            fs::read_to_string(deploy("prometheus/prometheus.yml")).expect("prometheus.yml");
        fs::write(home.join("prometheus.yml"), transform::fast_clock(&config)).expect("write");
        for entry in fs::read_dir(deploy("prometheus/rules")).expect("rules dir") {
            let path = entry.expect("rules entry").path();
            let text = fs::read_to_string(&path).expect("a rules file");
            fs::write(
                home.join("rules")
                    .join(path.file_name().expect("a file name")),
                rules(&text),
            )
            .expect("write rules");
        }
        let group = |addrs: Vec<(SocketAddr, Option<&str>)>| {
            Value::Array(
                addrs
                    .into_iter()
                    .map(|(a, service)| {
                        let mut v = serde_json::json!({"targets": [a.to_string()]});
                        if let Some(s) = service {
                            v["labels"] = serde_json::json!({"service": s});
                        }
                        v
                    })
                    .collect(),
            )
            .to_string()
        };
        let write = |name: &str, text: String| {
            fs::write(home.join("targets").join(name), text).expect("write targets");
        };
        write(
            "services.json",
            group(
                targets
                    .services
                    .iter()
                    .map(|(s, a)| (*a, Some(s.as_str())))
                    .collect(),
            ),
        );
        write(
            "collector.json",
            group(
                targets
                    .collectors
                    .iter()
                    .map(|a| (*a, Some("otel-collector")))
                    .collect(),
            ),
        );
        write(
            "collector-exporter.json",
            group(
                targets
                    .collector_exporters
                    .iter()
                    .map(|a| (*a, None))
                    .collect(),
            ),
        );
        write(
            "alertmanager.json",
            group(targets.alertmanagers.iter().map(|a| (*a, None)).collect()),
        );
        let addr = loopback();
        let mut command = Command::new(on_path("prometheus"));
        command
            .arg(format!(
                "--config.file={}",
                home.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                home.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn");
        let mut process = Process::spawn("prometheus", command, dir);
        let url = format!("http://{addr}/-/ready");
        process.wait_ready(Duration::from_secs(60), || ok(&url));
        Prometheus { addr, process }
    }

    /// An instant query: the result vector (panics on an error answer, e.g. a bad expression).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let response = http()
            .post(format!("http://{}/api/v1/query", self.addr))
            .form(&[("query", expr)])
            .send()
            .unwrap_or_else(|e| panic!("query {expr}: {e}"));
        let body: Value = response.json().expect("a JSON answer");
        assert_eq!(body["status"], "success", "query {expr}: {body}");
        match &body["data"]["result"] {
            Value::Array(a) => a.clone(),
            // A scalar or string result is one value.
            other => vec![other.clone()],
        }
    }

    /// Exemplars of `expr` over the last `minutes`.
    pub fn exemplars(&self, expr: &str, minutes: u64) -> Vec<Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (start, end) = ((now - minutes * 60).to_string(), (now + 60).to_string());
        let response = http()
            .post(format!("http://{}/api/v1/query_exemplars", self.addr))
            .form(&[("query", expr), ("start", &start), ("end", &end)])
            .send()
            .unwrap_or_else(|e| panic!("query_exemplars {expr}: {e}"));
        let body: Value = response.json().expect("a JSON answer");
        assert_eq!(body["status"], "success", "query_exemplars {expr}: {body}");
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// Alerts in state `firing` (`/api/v1/alerts`).
    pub fn firing(&self) -> Vec<Value> {
        get_json(&format!("http://{}/api/v1/alerts", self.addr))["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .cloned()
            .collect()
    }
}

/// Alertmanager with `deploy/alertmanager/alertmanager.yml` under
/// [`transform::loopback_receivers`], every receiver's webhook pointing at `webhook`.
#[derive(Debug)]
pub struct Alertmanager {
    /// Web and API address.
    pub addr: SocketAddr,
    /// The process.
    pub process: Process,
}

impl Alertmanager {
    /// Starts Alertmanager in `dir`; its receivers deliver to `webhook` (the webhook receiver
    /// directly; Slack and PagerDuty through their URLs, also pointed at `webhook`).
    pub fn start(dir: &Path, webhook: &Webhook) -> Alertmanager {
        let home = dir.join("alertmanager");
        let secrets = home.join("secrets");
        let templates = home.join("templates");
        fs::create_dir_all(&secrets).expect("secrets dir");
        fs::create_dir_all(&templates).expect("templates dir");
        let hook = |path: &str| format!("http://{}/{path}", webhook.addr);
        fs::write(secrets.join("webhook-url"), hook("webhook")).expect("write secret");
        fs::write(secrets.join("slack-api-url"), hook("slack")).expect("write secret");
        fs::write(secrets.join("pagerduty-routing-key"), "test-routing-key").expect("write");
        fs::write(secrets.join("smtp-password"), "unused").expect("write secret");
        for entry in fs::read_dir(deploy("alertmanager/templates")).expect("templates") {
            let path = entry.expect("entry").path();
            fs::copy(&path, templates.join(path.file_name().expect("name"))).expect("copy");
        }
        let shipped =
            fs::read_to_string(deploy("alertmanager/alertmanager.yml")).expect("alertmanager.yml");
        let closed_smtp = loopback();
        let config = transform::loopback_receivers(
            &shipped,
            home.to_str().expect("a UTF-8 path"),
            &hook("pagerduty"),
            &closed_smtp.to_string(),
        );
        fs::write(home.join("alertmanager.yml"), config).expect("write config");
        let addr = loopback();
        let mut command = Command::new(tool("alertmanager"));
        command
            .arg(format!(
                "--config.file={}",
                home.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", home.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn");
        let mut process = Process::spawn("alertmanager", command, dir);
        let url = format!("http://{addr}/-/ready");
        process.wait_ready(Duration::from_secs(30), || ok(&url));
        Alertmanager { addr, process }
    }

    /// Alerts Alertmanager holds, with their status (`/api/v2/alerts`).
    pub fn alerts(&self) -> Vec<Value> {
        get_json(&format!("http://{}/api/v2/alerts", self.addr))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// One request the [`Webhook`] received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The path it was posted to (`/webhook`, `/slack`, `/pagerduty`).
    pub path: String,
    /// When it arrived.
    pub at: Instant,
    /// The body, as JSON (`null` when it was not JSON).
    pub body: Value,
}

type Deliveries = Arc<Mutex<Vec<Delivery>>>;

/// A webhook receiver on loopback (axum) that records every POST and answers 200: what
/// Alertmanager's receivers deliver to in the tests, standing in for Slack and PagerDuty too,
/// whose real endpoints are not reachable from here.
#[derive(Debug)]
pub struct Webhook {
    /// Its address.
    pub addr: SocketAddr,
    received: Deliveries,
    _runtime: tokio::runtime::Runtime,
}

impl Webhook {
    /// Starts it on a free loopback port.
    pub fn start() -> Webhook {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the webhook");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the webhook");
        let addr = listener.local_addr().expect("its address");
        let received = Deliveries::default();
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(record))
            .with_state(received.clone());
        runtime.spawn(axum::serve(listener, app).into_future());
        Webhook {
            addr,
            received,
            _runtime: runtime,
        }
    }

    /// What arrived so far.
    pub fn received(&self) -> Vec<Delivery> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn record(
    axum::extract::State(sink): axum::extract::State<Deliveries>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    sink.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Delivery {
            path: uri.path().to_owned(),
            at: Instant::now(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
    axum::http::StatusCode::OK
}

/// A running example service (`example-axum-service` or `example-tonic-service`).
#[derive(Debug)]
pub struct Service {
    /// `LISTEN_ADDR`.
    pub listen: SocketAddr,
    /// `LOOKOUT_ADMIN_ADDR` (`/metrics`, health).
    pub admin: SocketAddr,
    /// The process.
    pub process: Process,
}

impl Service {
    /// Starts `binary` exporting traces and logs over OTLP/gRPC to `collector` (nothing when
    /// `None`), with `env` on top; ready when its admin address answers `/health/live`.
    pub fn start(
        dir: &Path,
        name: &str,
        binary: &str,
        collector: Option<&OtelCollector>,
        env: &[(&str, &str)],
    ) -> Service {
        let listen = loopback();
        let admin = loopback();
        let mut command = Command::new(example(binary));
        command
            .env("LISTEN_ADDR", listen.to_string())
            .env("LOOKOUT_ADMIN_ADDR", admin.to_string())
            // Metrics are scraped from /metrics (with exemplars), as deploy/ sets it up.
            .env("OTEL_METRICS_EXPORTER", "none");
        match collector {
            Some(c) => command.env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", c.otlp_grpc),
            ),
            None => command
                .env("OTEL_TRACES_EXPORTER", "none")
                .env("OTEL_LOGS_EXPORTER", "none"),
        };
        command
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("OTEL_BLRP_SCHEDULE_DELAY", "200")
            .env("SHUTDOWN_DRAIN", "0s")
            .env("LOOKOUT_CONSOLE", "compact");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut process = Process::spawn(name, command, dir);
        let url = format!("http://{admin}/health/live");
        process.wait_ready(Duration::from_secs(60), || ok(&url));
        Service {
            listen,
            admin,
            process,
        }
    }
}

/// A W3C `traceparent` for a new sampled trace: `(header, trace id)`.
pub fn new_traceparent() -> (String, String) {
    let trace_id = format!("{:032x}", fastrand::u128(1..));
    let span_id = format!("{:016x}", fastrand::u64(1..));
    (format!("00-{trace_id}-{span_id}-01"), trace_id)
}
