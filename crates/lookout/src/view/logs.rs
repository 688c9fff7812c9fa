//! Recent log records, newest last, searchable by words, level, target and trace id.

use std::collections::VecDeque;
use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, Severity};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::logs::LogBatch;

use super::{ViewCounts, ViewOptions, text_bytes};
use crate::redact::Redaction;

/// One log record as the view keeps it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogEntry {
    /// A number unique in this process, growing with arrival.
    pub seq: u64,
    /// When it happened (or was observed).
    pub time: SystemTime,
    /// Its level: `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`.
    pub level: &'static str,
    /// Its severity number (1-24; 0 when unknown).
    pub severity: u8,
    /// Its target (the module path for `tracing` events).
    pub target: String,
    /// Its message (redacted).
    pub body: String,
    /// Its other fields, values as text (redacted).
    pub attributes: Vec<(String, String)>,
    /// The trace it was recorded in.
    pub trace_id: Option<TraceId>,
    /// The span it was recorded in.
    pub span_id: Option<SpanId>,
}

/// Which log records to list; every field left empty matches all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// Every word appears in the message, target or a field (case-insensitive).
    pub words: Option<String>,
    /// At least this severity number (`Severity::Warn as u8` for warnings and errors).
    pub min_severity: u8,
    /// The target starts with this.
    pub target: Option<String>,
    /// Recorded in this trace.
    pub trace_id: Option<TraceId>,
    /// Only records newer than this [`LogEntry::seq`].
    pub after: u64,
    /// At most this many (default 200 when zero).
    pub limit: usize,
}

pub(crate) struct Logs {
    max: usize,
    max_bytes: usize,
    per_second: u32,
    records: VecDeque<(LogEntry, usize)>,
    bytes: usize,
    seq: u64,
    window: (u64, u32),
    seen: u64,
    skipped: u64,
}

impl Logs {
    pub(crate) fn new(o: &ViewOptions) -> Self {
        Logs {
            max: o.logs.max(1),
            max_bytes: o.log_bytes,
            per_second: o.logs_per_second,
            records: VecDeque::new(),
            bytes: 0,
            seq: 0,
            window: (0, 0),
            seen: 0,
            skipped: 0,
        }
    }

    pub(crate) fn add(&mut self, batch: &LogBatch<'_>, redaction: &Redaction) {
        let second = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if self.window.0 != second {
            self.window = (second, 0);
        }
        for (record, scope) in batch.iter() {
            self.seen += 1;
            let severity = record.severity_number();
            // Warnings and errors are always kept; the rest within this second's share.
            let important = severity.is_some_and(|s| s >= Severity::Warn);
            if !important && self.window.1 >= self.per_second {
                self.skipped += 1;
                continue;
            }
            self.window.1 += 1;
            self.seq += 1;
            let body = record.body().map(text).unwrap_or_default();
            let body = redaction.shown("", body);
            let entry = LogEntry {
                seq: self.seq,
                time: record
                    .timestamp()
                    .or(record.observed_timestamp())
                    .unwrap_or_else(SystemTime::now),
                level: level(severity),
                severity: severity.map_or(0, |s| s as u8),
                target: record
                    .target()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| scope.name().to_owned()),
                body,
                attributes: record
                    .attributes_iter()
                    .map(|(k, v)| (k.to_string(), redaction.shown(k.as_str(), text(v))))
                    .collect(),
                trace_id: record
                    .trace_context()
                    .map(|c| c.trace_id)
                    .filter(|t| *t != TraceId::INVALID),
                span_id: record
                    .trace_context()
                    .map(|c| c.span_id)
                    .filter(|s| *s != SpanId::INVALID),
            };
            let bytes = std::mem::size_of::<LogEntry>()
                + text_bytes(&entry.target)
                + text_bytes(&entry.body)
                + entry
                    .attributes
                    .iter()
                    .map(|(k, v)| text_bytes(k) + text_bytes(v))
                    .sum::<usize>();
            self.bytes += bytes;
            self.records.push_back((entry, bytes));
            while self.records.len() > self.max || self.bytes > self.max_bytes {
                let Some((_, b)) = self.records.pop_front() else { break };
                self.bytes -= b;
            }
        }
    }

    pub(crate) fn list(&self, f: &LogFilter) -> Vec<LogEntry> {
        let limit = if f.limit == 0 { 200 } else { f.limit };
        let words: Vec<String> = f
            .words
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        self.records
            .iter()
            .rev()
            .map(|(e, _)| e)
            .take_while(|e| e.seq > f.after)
            .filter(|e| e.severity >= f.min_severity)
            .filter(|e| f.target.as_deref().is_none_or(|t| e.target.starts_with(t)))
            .filter(|e| f.trace_id.is_none_or(|t| e.trace_id == Some(t)))
            .filter(|e| words.is_empty() || matches_words(e, &words))
            .take(limit)
            .cloned()
            .collect()
    }

    pub(crate) fn count(&self, c: &mut ViewCounts) {
        c.logs_seen = self.seen;
        c.logs_skipped = self.skipped;
        c.logs = self.records.len();
        c.log_bytes = self.bytes;
    }

    pub(crate) fn version(&self) -> u64 {
        self.seq
    }
}

fn matches_words(e: &LogEntry, words: &[String]) -> bool {
    let mut hay = format!("{} {}", e.body, e.target).to_lowercase();
    for (k, v) in &e.attributes {
        hay.push(' ');
        hay.push_str(&k.to_lowercase());
        hay.push('=');
        hay.push_str(&v.to_lowercase());
    }
    words.iter().all(|w| hay.contains(w.as_str()))
}

fn level(s: Option<Severity>) -> &'static str {
    match s.map(|s| s as u8) {
        None | Some(0) => "",
        Some(1..=4) => "TRACE",
        Some(5..=8) => "DEBUG",
        Some(9..=12) => "INFO",
        Some(13..=16) => "WARN",
        Some(_) => "ERROR",
    }
}

/// A log value as text: strings as they are, the rest in a JSON-like form.
fn text(v: &AnyValue) -> String {
    match v {
        AnyValue::String(s) => s.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Boolean(b) => b.to_string(),
        AnyValue::Bytes(b) => format!("<{} bytes>", b.len()),
        AnyValue::ListAny(items) => {
            let items: Vec<String> = items.iter().map(text).collect();
            format!("[{}]", items.join(", "))
        }
        AnyValue::Map(map) => {
            let mut items: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {}", text(v))).collect();
            items.sort();
            format!("{{{}}}", items.join(", "))
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
    use opentelemetry_sdk::logs::{SdkLogRecord, SdkLoggerProvider};

    fn record(body: &str, severity: Severity) -> SdkLogRecord {
        let provider = SdkLoggerProvider::builder().build();
        let mut r = provider.logger("test").create_log_record();
        r.set_body(AnyValue::from(body.to_owned()));
        r.set_severity_number(severity);
        r
    }

    #[test]
    fn count_byte_and_rate_bounds_keep_the_newest_and_every_warning() {
        let o = ViewOptions {
            logs: 1_000,
            log_bytes: 8_000,
            logs_per_second: 50,
            ..ViewOptions::default()
        };
        let mut logs = Logs::new(&o);
        let scope = InstrumentationScope::builder("test").build();
        let redaction = Redaction::default();
        let records: Vec<SdkLogRecord> = (0..100)
            .map(|i| record(&format!("line {i} {}", "y".repeat(100)), Severity::Info))
            .chain([record("the warning", Severity::Warn)])
            .collect();
        let batch: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            records.iter().map(|r| (r, &scope)).collect();
        logs.add(&LogBatch::new(&batch), &redaction);
        let mut c = ViewCounts::default();
        logs.count(&mut c);
        assert_eq!(c.logs_seen, 101);
        assert_eq!(c.logs_skipped, 50, "past the rate bound, warnings aside");
        assert!(c.log_bytes <= 8_000, "{c:?}");
        let all = logs.list(&LogFilter::default());
        assert_eq!(all[0].body, "the warning", "newest first, and warnings always kept");
        assert!(all.len() < 51, "the byte bound dropped the oldest: {}", all.len());
        let f = LogFilter {
            words: Some("LINE 49".into()),
            ..LogFilter::default()
        };
        assert_eq!(logs.list(&f).len(), 1);
    }
}
