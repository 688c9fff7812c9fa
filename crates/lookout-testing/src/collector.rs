//! A real OpenTelemetry collector process (rotel) on free loopback ports, and what it received.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why the collector could not be started or did not receive what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectorError {
    /// The `rotel-agent` binary was not found.
    #[error(
        "rotel-agent not found ({0}). Install it with `python3 -m pip install rotel==0.0.1a15` and set \
         LOOKOUT_ROTEL_AGENT to .../site-packages/rotel/rotel-agent, or run the README's test command, \
         which does both"
    )]
    NotFound(String),
    /// The process could not be started.
    #[error("could not start {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The collector did not open its ports in time.
    #[error(
        "the collector did not listen on {grpc} and {http} within {waited:?}; it printed:\n{output}"
    )]
    NotReady {
        /// gRPC address.
        grpc: SocketAddr,
        /// HTTP address.
        http: SocketAddr,
        /// How long we waited.
        waited: Duration,
        /// What it printed.
        output: String,
    },
    /// [`Collector::wait_for`] timed out.
    #[error(
        "the collector did not receive what was expected within {waited:?}; it has {spans} spans, {logs} log records, {metrics} metrics"
    )]
    Timeout {
        /// How long we waited.
        waited: Duration,
        /// Spans received.
        spans: usize,
        /// Log records received.
        logs: usize,
        /// Metric data received.
        metrics: usize,
    },
}

/// A running rotel collector that prints what it receives (unless started quiet); killed on drop.
#[derive(Debug)]
pub struct Collector {
    child: Child,
    grpc: SocketAddr,
    http: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// A free TCP port on 127.0.0.1 (free when this returns; bind it soon), never one this process
/// handed out before.
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`, usually 32768-60999) when
/// there is room: a port from `bind(0)` comes from that range, where every outgoing connection of
/// every process on the machine also takes its local port, so between this probe and the server's
/// own bind a client elsewhere could take it (a collector then failed with "address already in
/// use"). Below the range only listeners bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if ephemeral_start > FIRST + 1_000 {
        let span = ephemeral_start - FIRST;
        // Each process starts at its own offset (test binaries run one after another, and the
        // ports of the previous one may linger in TIME_WAIT).
        let _ = NEXT.compare_exchange(
            0,
            std::process::id().wrapping_mul(7_919) % span + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        for _ in 0..span.min(2_000) {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = FIRST + n % span;
            if let Ok(port) = u16::try_from(port)
                && TcpListener::bind(("127.0.0.1", port)).is_ok()
            {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn find_agent() -> Result<PathBuf, CollectorError> {
    if let Some(path) = std::env::var_os("LOOKOUT_ROTEL_AGENT") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(CollectorError::NotFound(format!(
                "LOOKOUT_ROTEL_AGENT={} is not a file",
                path.display()
            )))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("rotel-agent"))
        .find(|p| p.is_file())
        .ok_or_else(|| CollectorError::NotFound("not on PATH, LOOKOUT_ROTEL_AGENT unset".into()))
}

impl Collector {
    /// Starts a collector on two free loopback ports.
    pub fn start() -> Result<Collector, CollectorError> {
        let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Self::start_on(grpc, http)
    }

    /// Starts a collector on the given addresses (to start one where a program already sends).
    pub fn start_on(grpc: SocketAddr, http: SocketAddr) -> Result<Collector, CollectorError> {
        Self::spawn(grpc, http, true)
    }

    /// Starts a collector on two free loopback ports that receives and discards everything
    /// without printing it, as a production collector with a blackhole exporter would: for
    /// benchmarks, where printing every span would cost the machine more CPU than receiving it.
    /// [`Collector::received`] stays empty.
    pub fn start_quiet() -> Result<Collector, CollectorError> {
        let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Self::spawn(grpc, http, false)
    }

    fn spawn(grpc: SocketAddr, http: SocketAddr, print: bool) -> Result<Collector, CollectorError> {
        let agent = find_agent()?;
        let dir = tempfile::tempdir().map_err(|source| CollectorError::Spawn {
            path: agent.clone(),
            source,
        })?;
        let mut command = Command::new(&agent);
        command
            .arg("start")
            .args(["--log-format", "json"])
            .args(["--otlp-grpc-endpoint", &grpc.to_string()])
            .args(["--otlp-http-endpoint", &http.to_string()])
            .args(["--exporter", "blackhole"]);
        if print {
            command
                .args([
                    "--debug-log",
                    "traces",
                    "--debug-log",
                    "metrics",
                    "--debug-log",
                    "logs",
                ])
                .args(["--debug-log-verbosity", "detailed"]);
        }
        let mut child = command
            .args(["--batch-timeout", "50ms"])
            .arg("--pid-file")
            .arg(dir.path().join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.path().join("rotel.log"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| CollectorError::Spawn {
                path: agent.clone(),
                source,
            })?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let collector = Collector {
            child,
            grpc,
            http,
            lines,
            _dir: dir,
        };
        let waited = Duration::from_secs(20);
        let until = Instant::now() + waited;
        while Instant::now() < until {
            let up =
                |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok();
            if up(&grpc) && up(&http) {
                return Ok(collector);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(CollectorError::NotReady {
            grpc,
            http,
            waited,
            output: collector.output(),
        })
    }

    /// `http://127.0.0.1:PORT` of the OTLP/gRPC receiver.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// `http://127.0.0.1:PORT` of the OTLP/HTTP receiver (signal paths `/v1/...`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// What the collector received so far.
    pub fn received(&self) -> Received {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        parse(&lines)
    }

    /// Waits until `done` holds for what was received, polling; errors after `timeout`.
    ///
    /// The collector prints each export line by line, so a poll can see an item half printed.
    /// A state is accepted only when `done` holds and no line arrived since the previous poll.
    pub fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&Received) -> bool,
    ) -> Result<Received, CollectorError> {
        let until = Instant::now() + timeout;
        let mut seen_lines = usize::MAX;
        loop {
            let (received, lines) = {
                let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
                (parse(&lines), lines.len())
            };
            if lines == seen_lines && done(&received) {
                return Ok(received);
            }
            seen_lines = lines;
            if Instant::now() >= until {
                return Err(CollectorError::Timeout {
                    waited: timeout,
                    spans: received.spans.len(),
                    logs: received.logs.len(),
                    metrics: received.metrics.len(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The binary this harness runs.
    pub fn agent_path() -> Result<PathBuf, CollectorError> {
        find_agent()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An attribute value as the collector printed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `Str(...)`
    Str(String),
    /// `Int(...)`
    Int(i64),
    /// `Double(...)`
    Double(f64),
    /// `Bool(...)`
    Bool(bool),
    /// Anything else, as printed.
    Other(String),
}

impl Value {
    fn parse(text: &str) -> Value {
        let (kind, inner) = match (text.find('('), text.rfind(')')) {
            (Some(open), Some(close)) if close > open => (&text[..open], &text[open + 1..close]),
            _ => return Value::Other(text.to_owned()),
        };
        match kind {
            "Str" => Value::Str(inner.to_owned()),
            "Int" => inner
                .parse()
                .map_or_else(|_| Value::Other(text.into()), Value::Int),
            "Double" => inner
                .parse()
                .map_or_else(|_| Value::Other(text.into()), Value::Double),
            "Bool" => inner
                .parse()
                .map_or_else(|_| Value::Other(text.into()), Value::Bool),
            _ => Value::Other(text.to_owned()),
        }
    }

    /// The text of a `Str` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Attributes by key.
pub type Attributes = BTreeMap<String, Value>;

/// A span the collector received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent's span id; `None` for a root span.
    pub parent_id: Option<String>,
    /// The span name.
    pub name: String,
    /// e.g. `SPAN_KIND_INTERNAL`.
    pub kind: String,
    /// e.g. `STATUS_CODE_ERROR`.
    pub status_code: String,
    /// Span attributes.
    pub attributes: Attributes,
    /// Names of the span's events, in order.
    pub events: Vec<String>,
    /// The resource it came with.
    pub resource: Attributes,
}

/// A log record the collector received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRecord {
    /// The body text.
    pub body: String,
    /// e.g. `INFO`.
    pub severity_text: String,
    /// The trace id of the span it was emitted in.
    pub trace_id: Option<String>,
    /// The span id of the span it was emitted in.
    pub span_id: Option<String>,
    /// Record attributes.
    pub attributes: Attributes,
    /// The resource it came with.
    pub resource: Attributes,
}

/// A metric data point the collector received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricPoint {
    /// The instrument name.
    pub name: String,
    /// The unit.
    pub unit: String,
    /// `Sum`, `Gauge`, `Histogram`, ...
    pub data_type: String,
    /// Point attributes.
    pub attributes: Attributes,
    /// A sum or gauge value.
    pub value: Option<f64>,
    /// A histogram's count.
    pub count: Option<u64>,
    /// A histogram's sum.
    pub sum: Option<f64>,
    /// The resource it came with.
    pub resource: Attributes,
}

/// Everything the collector received, parsed from its debug output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Received {
    /// Spans, in arrival order.
    pub spans: Vec<Span>,
    /// Log records, in arrival order.
    pub logs: Vec<LogRecord>,
    /// Metric data points, in arrival order.
    pub metrics: Vec<MetricPoint>,
}

impl Received {
    /// The first span named `name`.
    pub fn span(&self, name: &str) -> Option<&Span> {
        self.spans.iter().find(|s| s.name == name)
    }

    /// Data points of the metric named `name`.
    pub fn points(&self, name: &str) -> Vec<&MetricPoint> {
        self.metrics.iter().filter(|m| m.name == name).collect()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Resource,
    Item,
    ItemAttributes,
    Descriptor,
    PointAttributes,
    Event,
    Other,
}

#[derive(Clone, Copy)]
enum Item {
    None,
    Span,
    Log,
    Metric,
}

fn parse(lines: &[String]) -> Received {
    let mut parser = Parser::default();
    for line in lines.iter().filter(|l| !l.starts_with('{')) {
        parser.line(line);
    }
    parser.out
}

/// The state of reading the debug exporter's output, one line at a time.
struct Parser {
    out: Received,
    resource: Attributes,
    section: Section,
    item: Item,
    /// The metric whose descriptor is being read; each data point starts as a copy of it.
    metric: MetricPoint,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            out: Received::default(),
            resource: Attributes::new(),
            section: Section::Other,
            item: Item::None,
            metric: MetricPoint::default(),
        }
    }
}

/// The value of `name: value` on a trimmed line.
fn field(trimmed: &str, name: &str) -> Option<String> {
    let rest = trimmed.strip_prefix(name)?.trim_start();
    Some(rest.strip_prefix(':')?.trim().to_owned())
}

impl Parser {
    fn line(&mut self, line: &str) {
        let trimmed = line.trim();
        if self.heading(trimmed) {
            return;
        }
        match line.strip_prefix("     -> ") {
            Some(kv) => self.attribute(kv),
            None => self.field(trimmed),
        }
    }

    /// A line that starts a resource, an item, a data point or a section. Returns whether it was
    /// one.
    fn heading(&mut self, trimmed: &str) -> bool {
        if trimmed.starts_with("ResourceSpans #")
            || trimmed.starts_with("ResourceLog #")
            || trimmed.starts_with("ResourceMetrics #")
        {
            self.resource = Attributes::new();
            self.section = Section::Other;
            self.item = Item::None;
        } else if trimmed == "Resource attributes:" {
            self.section = Section::Resource;
        } else if trimmed.starts_with("Span #") {
            self.out.spans.push(Span {
                resource: self.resource.clone(),
                ..Span::default()
            });
            self.item = Item::Span;
            self.section = Section::Item;
        } else if trimmed.starts_with("LogRecord #") {
            self.out.logs.push(LogRecord {
                resource: self.resource.clone(),
                ..LogRecord::default()
            });
            self.item = Item::Log;
            self.section = Section::Item;
        } else if trimmed.starts_with("Metric #") {
            self.metric = MetricPoint {
                resource: self.resource.clone(),
                ..MetricPoint::default()
            };
            self.item = Item::Metric;
            self.section = Section::Other;
        } else if trimmed == "Descriptor:" {
            self.section = Section::Descriptor;
        } else if trimmed.contains("DataPoints #") {
            self.out.metrics.push(MetricPoint {
                attributes: Attributes::new(),
                ..self.metric.clone()
            });
            self.section = Section::Item;
        } else if trimmed == "Data point attributes:" {
            self.section = Section::PointAttributes;
        } else if trimmed == "Attributes:" {
            self.section = Section::ItemAttributes;
        } else if trimmed.starts_with("Events:") || trimmed.starts_with("Links:") {
            self.section = Section::Other;
        } else if trimmed.starts_with("SpanEvent #") {
            if let Some(s) = self.out.spans.last_mut() {
                s.events.push(String::new());
            }
            self.section = Section::Event;
        } else {
            return false;
        }
        true
    }

    /// A `-> key: Type(value)` line: an attribute of the resource, the item or the data point, an
    /// event's name, or a metric descriptor's field.
    fn attribute(&mut self, kv: &str) {
        let Some((key, value)) = kv.split_once(": ") else {
            return;
        };
        let (key, value) = (key.to_owned(), Value::parse(value));
        match (self.section, self.item) {
            (Section::Resource, _) => {
                self.resource.insert(key, value);
            }
            (Section::ItemAttributes, Item::Span) => {
                if let Some(s) = self.out.spans.last_mut() {
                    s.attributes.insert(key, value);
                }
            }
            (Section::ItemAttributes, Item::Log) => {
                if let Some(l) = self.out.logs.last_mut() {
                    l.attributes.insert(key, value);
                }
            }
            (Section::PointAttributes, Item::Metric) => {
                if let Some(p) = self.out.metrics.last_mut() {
                    p.attributes.insert(key, value);
                }
            }
            (Section::Event, Item::Span) if key == "Name" => {
                if let Some(name) = self.out.spans.last_mut().and_then(|s| s.events.last_mut()) {
                    *name = kv[6..].trim().to_owned();
                }
            }
            (Section::Descriptor, Item::Metric) => match key.as_str() {
                "Name" => self.metric.name = kv[6..].trim().to_owned(),
                "Unit" => self.metric.unit = kv[6..].trim().to_owned(),
                "DataType" => self.metric.data_type = kv[10..].trim().to_owned(),
                _ => {}
            },
            _ => {}
        }
    }

    /// A `Name: value` line of the current item.
    fn field(&mut self, trimmed: &str) {
        let field = |name: &str| field(trimmed, name);
        match self.item {
            Item::Span => {
                if let Some(s) = self.out.spans.last_mut() {
                    if let Some(v) = field("Trace ID") {
                        s.trace_id = v;
                    } else if let Some(v) = field("Parent ID") {
                        s.parent_id = (!v.is_empty()).then_some(v);
                    } else if let Some(v) = field("ID") {
                        s.span_id = v;
                    } else if let Some(v) = field("Name") {
                        s.name = v;
                    } else if let Some(v) = field("Kind") {
                        s.kind = v;
                    } else if let Some(v) = field("Status code") {
                        s.status_code = v;
                    }
                }
            }
            Item::Log => {
                if let Some(l) = self.out.logs.last_mut() {
                    if let Some(v) = field("Trace ID") {
                        l.trace_id = (!v.is_empty()).then_some(v);
                    } else if let Some(v) = field("Span ID") {
                        l.span_id = (!v.is_empty()).then_some(v);
                    } else if let Some(v) = field("SeverityText") {
                        l.severity_text = v;
                    } else if let Some(v) = field("Body") {
                        l.body = match Value::parse(&v) {
                            Value::Str(s) => s,
                            _ => v,
                        };
                    }
                }
            }
            Item::Metric => {
                if let Some(p) = self.out.metrics.last_mut() {
                    if let Some(v) = field("Value") {
                        p.value = v.parse().ok();
                    } else if let Some(v) = field("Count") {
                        p.count = v.parse().ok();
                    } else if let Some(v) = field("Sum") {
                        p.sum = v.parse().ok();
                    }
                }
            }
            Item::None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
{\"msg\":\"Starting Rotel.\"}
ResourceSpans #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(svc)
ScopeSpans #0
InstrumentationScope lookout 
Span #0
    Trace ID       : 5b8efff798038103d269b633813fc60c
    Parent ID      : eee19b7ec3c1b173
    ID             : eee19b7ec3c1b174
    Name           : op
    Kind           : SPAN_KIND_INTERNAL
    Status code    : STATUS_CODE_ERROR
Attributes:
     -> a: Int(5)
     -> b: Str(x (y))
Events:
SpanEvent #0
     -> Name: boom
          -> order: Str(2)
ResourceLog #0
Resource attributes:
     -> service.name: Str(svc)
LogRecord #0
SeverityText: INFO
Body: Str(hello)
Attributes:
     -> n: Double(1.5)
    Trace ID       : 5b8efff798038103d269b633813fc60c
    Span ID        : eee19b7ec3c1b174
ResourceMetrics #0
Resource attributes:
     -> service.name: Str(svc)
Metric #0
Descriptor:
     -> Name: orders
     -> Unit: {order}
     -> DataType: Sum
NumberDataPoints #0
Data point attributes:
     -> outcome: Str(ok)
Value: 2
";

    #[test]
    fn parses_spans_logs_and_metrics_from_debug_output() {
        let lines: Vec<String> = SAMPLE.lines().map(str::to_owned).collect();
        let r = parse(&lines);
        assert_eq!(r.spans.len(), 1);
        let s = &r.spans[0];
        assert_eq!(s.parent_id.as_deref(), Some("eee19b7ec3c1b173"));
        assert_eq!(s.span_id, "eee19b7ec3c1b174");
        assert_eq!(s.status_code, "STATUS_CODE_ERROR");
        assert_eq!(s.attributes["a"], Value::Int(5));
        assert_eq!(s.attributes["b"], Value::Str("x (y)".into()));
        assert!(
            !s.attributes.contains_key("Name"),
            "event fields are not span attributes"
        );
        assert_eq!(s.resource["service.name"], Value::Str("svc".into()));
        let l = &r.logs[0];
        assert_eq!(
            (l.body.as_str(), l.severity_text.as_str()),
            ("hello", "INFO")
        );
        assert_eq!(l.span_id.as_deref(), Some("eee19b7ec3c1b174"));
        assert_eq!(l.attributes["n"], Value::Double(1.5));
        let m = &r.metrics[0];
        assert_eq!(
            (m.name.as_str(), m.unit.as_str(), m.value),
            ("orders", "{order}", Some(2.0))
        );
        assert_eq!(m.attributes["outcome"], Value::Str("ok".into()));
    }
}
