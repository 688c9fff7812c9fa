//! W3C Trace Context (`traceparent`, `tracestate`), Level 1 and 2, written from the
//! specification because opentelemetry-rust 0.33's propagator departs from it:
//! - several `traceparent` lines are invalid (a new trace starts); the SDK continues the first;
//! - several `tracestate` lines are one list (HTTP list semantics), an empty one among them adds
//!   nothing, and the 32-member limit counts over all of them; the SDK reads the first line only;
//! - one invalid member makes the whole tracestate invalid (it is dropped, the trace continues),
//!   and an empty value is invalid; the SDK forwarded `foo=,bar=3` as it came;
//! - keys follow the Level 2 grammar (`[a-z0-9][a-z0-9_*/@-]{0,255}`): the SDK's
//!   `TraceState` refuses valid keys such as a 256-character `tenant@system` key (an off-by-one)
//!   or `foo@@bar`. Such a list is carried beside the span context, in the context, and injected
//!   as it came; the span context's `TraceState` holds the members the SDK can represent;
//! - the Level 2 random flag (`02`) is kept, and set on traces lookout starts (their ids are
//!   random); the SDK clears every flag but `sampled`.
//!
//! The tracestate is also cut to 512 characters by whole members, longest (over 128) first, as
//! §3.3.1.5 allows.

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The flags lookout keeps: sampled (Level 1) and random (Level 2).
const KNOWN_FLAGS: u8 = 0x01 | 0x02;
const RANDOM: u8 = 0x02;

/// At most this many tracestate members (§3.3.1.1).
const MAX_MEMBERS: usize = 32;
/// The most tracestate characters propagated (§3.3.1.5 asks for at least 512).
const TRACESTATE_MAX_LEN: usize = 512;
/// Members longer than this go first when the tracestate is too long.
const TRACESTATE_LONG_ENTRY: usize = 128;

/// The tracestate as it came (valid, combined, cut to size), for the trace it came with: injected
/// as it is while the span's own `TraceState` is still the one extracted with it.
#[derive(Debug, Clone)]
struct IncomingTraceState {
    trace_id: TraceId,
    /// The members, `key=value`, in order.
    header: String,
    /// What the SDK's `TraceState` made of it, to notice a change made since.
    represented: String,
}

/// The trace id of a span context some propagator took from a request (this trace did not start
/// here, so whether its id is random is not known unless the random flag said so), and whether it
/// did: the SDK drops the flag on spans it does not sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemoteOrigin {
    pub(crate) trace_id: TraceId,
    pub(crate) random: bool,
}

/// lookout's W3C Trace Context propagator.
#[derive(Debug, Default)]
pub(crate) struct TraceContext;

impl TraceContext {
    pub(crate) fn new() -> Self {
        TraceContext
    }
}

/// `traceparent`: version, trace id, parent id, flags (§3.2).
fn parse_traceparent(header: &str) -> Option<(TraceId, SpanId, u8)> {
    let header = header.trim_matches([' ', '\t']);
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let fields: Vec<&str> = header.split('-').collect();
    let [version, trace, parent, flags, ..] = *fields.as_slice() else {
        return None;
    };
    let count_ok = if version == "00" {
        fields.len() == 4
    } else {
        // A later version may append fields after a `-`; the first four keep their meaning.
        fields.len() >= 4
    };
    if !(count_ok
        && lower_hex(version, 2)
        && version != "ff"
        && lower_hex(trace, 32)
        && lower_hex(parent, 16)
        && lower_hex(flags, 2))
    {
        return None;
    }
    let trace = TraceId::from_hex(trace)
        .ok()
        .filter(|t| *t != TraceId::INVALID)?;
    let parent = SpanId::from_hex(parent)
        .ok()
        .filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace, parent, flags))
}

/// A tracestate key (Level 2): `[a-z0-9][a-z0-9_*/@-]{0,255}`.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

/// A tracestate value: 1 to 256 printable characters but `,` and `=`, not ending in a space.
fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

/// Every `tracestate` line as one list; `None` when any member is invalid or there are too many.
/// Duplicate keys keep their first member.
fn parse_tracestate(lines: &[&str]) -> Option<Vec<(String, String)>> {
    let mut members: Vec<(String, String)> = Vec::new();
    for line in lines {
        for member in line.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let (key, value) = member.split_once('=')?;
            if !valid_key(key) || !valid_value(value) {
                return None;
            }
            if members.iter().any(|(k, _)| k == key) {
                continue;
            }
            members.push((key.to_owned(), value.to_owned()));
            if members.len() > MAX_MEMBERS {
                return None;
            }
        }
    }
    Some(members)
}

/// Cuts an over-long list by whole members: first those over 128 characters, then from the right.
fn limit(mut members: Vec<(String, String)>) -> Vec<(String, String)> {
    let len = |m: &[(String, String)]| {
        m.iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
            .saturating_sub(1)
    };
    if len(&members) <= TRACESTATE_MAX_LEN {
        return members;
    }
    members.retain(|(k, v)| k.len() + v.len() < TRACESTATE_LONG_ENTRY);
    while len(&members) > TRACESTATE_MAX_LEN {
        members.pop();
    }
    members
}

fn header_of(members: &[(String, String)]) -> String {
    members
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// All lines of `name` (several header lines), or the one `get` gives.
fn all<'a>(extractor: &'a dyn Extractor, name: &str) -> Vec<&'a str> {
    extractor
        .get_all(name)
        .or_else(|| extractor.get(name).map(|v| vec![v]))
        .unwrap_or_default()
}

impl TextMapPropagator for TraceContext {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let mut flags = sc.trace_flags().to_u8() & KNOWN_FLAGS;
        let random = match cx.get::<RemoteOrigin>() {
            Some(origin) if origin.trace_id == sc.trace_id() => origin.random,
            // Started here: the SDK's trace ids are random (Level 2 §3.2.2.5.2).
            _ => true,
        };
        if random {
            flags |= RANDOM;
        }
        injector.set(
            TRACEPARENT,
            format!("00-{}-{}-{flags:02x}", sc.trace_id(), sc.span_id()),
        );
        let own = sc.trace_state().header();
        let state = match cx.get::<IncomingTraceState>() {
            Some(incoming) if incoming.trace_id == sc.trace_id() && incoming.represented == own => {
                incoming.header.clone()
            }
            _ => own,
        };
        if !state.is_empty() {
            injector.set(TRACESTATE, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let parents = all(extractor, TRACEPARENT);
        // Several traceparent lines: invalid, a new trace starts.
        let [parent] = parents.as_slice() else {
            return cx.clone();
        };
        let Some((trace_id, span_id, flags)) = parse_traceparent(parent) else {
            return cx.clone();
        };
        let members = parse_tracestate(&all(extractor, TRACESTATE))
            .map(limit)
            .unwrap_or_default();
        // What the SDK's TraceState can hold; the rest travels in `IncomingTraceState`.
        let representable = members
            .iter()
            .filter(|(k, v)| TraceState::from_key_value([(k.as_str(), v.as_str())]).is_ok());
        let state =
            TraceState::from_key_value(representable.map(|(k, v)| (k.as_str(), v.as_str())))
                .unwrap_or_default();
        let incoming = IncomingTraceState {
            trace_id,
            header: header_of(&members),
            represented: state.header(),
        };
        let sc = SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::new(flags & KNOWN_FLAGS),
            true,
            state,
        );
        cx.with_remote_span_context(sc)
            .with_value(incoming)
            .with_value(RemoteOrigin {
                trace_id,
                random: flags & RANDOM != 0,
            })
    }

    fn fields(&self) -> FieldIter<'_> {
        static NAMES: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
        FieldIter::new(NAMES.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Header lines as a server receives them (names lowercase, repeats kept).
    struct Lines(Vec<(&'static str, String)>);

    impl Extractor for Lines {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| *k).collect()
        }
        fn get_all(&self, key: &str) -> Option<Vec<&str>> {
            let all: Vec<&str> = self
                .0
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
                .collect();
            (!all.is_empty()).then_some(all)
        }
    }

    const TRACE: &str = "12345678901234567890123456789012";
    const PARENT: &str = "1234567890123456";

    fn tp(flags: &str) -> (&'static str, String) {
        ("traceparent", format!("00-{TRACE}-{PARENT}-{flags}"))
    }

    /// Extracts, starts a child span context under it (as the SDK would, same trace state and
    /// flags), injects it; returns the outgoing headers.
    fn hop(lines: Vec<(&'static str, String)>) -> HashMap<String, String> {
        let p = TraceContext::new();
        let cx = p.extract(&Lines(lines));
        let parent = cx.span().span_context().clone();
        let child_cx = if parent.is_valid() {
            let child = SpanContext::new(
                parent.trace_id(),
                SpanId::from(0xabcd_u64),
                parent.trace_flags(),
                false,
                parent.trace_state().clone(),
            );
            cx.with_remote_span_context(child)
        } else {
            let root = SpanContext::new(
                TraceId::from(0x77_u128),
                SpanId::from(0xabcd_u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            );
            cx.with_remote_span_context(root)
        };
        let mut out = HashMap::new();
        p.inject_context(&child_cx, &mut out);
        out
    }

    fn trace_of(out: &HashMap<String, String>) -> &str {
        out["traceparent"].split('-').nth(1).expect("trace id")
    }

    fn state(out: &HashMap<String, String>) -> &str {
        out.get("tracestate").map_or("", String::as_str)
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_two_start_a_new_trace() {
        let out = hop(vec![tp("01")]);
        assert_eq!(trace_of(&out), TRACE);
        assert_ne!(
            out["traceparent"].split('-').nth(2),
            Some(PARENT),
            "a new parent id"
        );
        let out = hop(vec![
            (
                "traceparent",
                format!("00-{}-{PARENT}-01", "12345678901234567890123456789011"),
            ),
            tp("01"),
        ]);
        assert_ne!(trace_of(&out), TRACE);
        assert_ne!(trace_of(&out), "12345678901234567890123456789011");
    }

    #[test]
    fn traceparent_grammar() {
        for bad in [
            format!("00-{TRACE}-{PARENT}-01."),
            format!("00-{TRACE}-{PARENT}-01-what-the-future-will-be-like"),
            format!("ff-{TRACE}-{PARENT}-01"),
            format!("0x-{TRACE}-{PARENT}-01"),
            format!("000-{TRACE}-{PARENT}-01"),
            format!("0-{TRACE}-{PARENT}-01"),
            format!("00-{}-{PARENT}-01", "0".repeat(32)),
            format!("00-{}-{PARENT}-01", "1234567890123456789012345678901."),
            format!("00-{TRACE}0-{PARENT}-01"),
            format!("00-{}-{PARENT}-01", &TRACE[1..]),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{TRACE}-123456789012345.-01"),
            format!("00-{TRACE}-{PARENT}0-01"),
            format!("00-{TRACE}-{}-01", &PARENT[1..]),
            format!("00-{TRACE}-{PARENT}-.0"),
            format!("00-{TRACE}-{PARENT}-0"),
            format!("00-{TRACE}-{PARENT}-001"),
            format!("00-{}-{PARENT}-01", TRACE.to_uppercase().replace('1', "A")),
            format!("cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like"),
        ] {
            assert_ne!(
                trace_of(&hop(vec![("traceparent", bad.clone())])),
                TRACE,
                "{bad}"
            );
        }
        for good in [
            format!("cc-{TRACE}-{PARENT}-01"),
            format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"),
            format!(" 00-{TRACE}-{PARENT}-01\t"),
        ] {
            assert_eq!(
                trace_of(&hop(vec![("traceparent", good.clone())])),
                TRACE,
                "{good}"
            );
        }
    }

    #[test]
    fn the_random_flag_is_kept_and_set_on_traces_started_here() {
        assert!(hop(vec![tp("02")])["traceparent"].ends_with("-02"));
        assert!(hop(vec![tp("03")])["traceparent"].ends_with("-03"));
        assert!(hop(vec![tp("01")])["traceparent"].ends_with("-01"));
        assert!(
            hop(vec![tp("ff")])["traceparent"].ends_with("-03"),
            "unknown flags dropped"
        );
        assert!(
            hop(vec![])["traceparent"].ends_with("-03"),
            "a new trace: random"
        );
    }

    #[test]
    fn tracestate_lines_are_one_list_in_order() {
        let out = hop(vec![
            tp("00"),
            ("tracestate", "foo=1,bar=2".into()),
            ("tracestate", "rojo=1,congo=2".into()),
            ("tracestate", "baz=3".into()),
        ]);
        assert_eq!(state(&out), "foo=1,bar=2,rojo=1,congo=2,baz=3");
        for lines in [
            vec![
                ("tracestate", "".to_owned()),
                ("tracestate", "foo=1".to_owned()),
            ],
            vec![
                ("tracestate", "foo=1".to_owned()),
                ("tracestate", "".to_owned()),
            ],
        ] {
            let mut all = vec![tp("00")];
            all.extend(lines);
            assert_eq!(state(&hop(all)), "foo=1");
        }
        assert_eq!(state(&hop(vec![tp("00"), ("tracestate", "".into())])), "");
        assert_eq!(
            state(&hop(vec![
                tp("00"),
                ("tracestate", "foo=1 \t , \t bar=2, \t baz=3".into())
            ])),
            "foo=1,bar=2,baz=3"
        );
        assert_eq!(
            state(&hop(vec![tp("00"), ("tracestate", "\t foo=1 \t".into())])),
            "foo=1"
        );
        assert_eq!(
            state(&hop(vec![tp("00"), ("tracestate", "foo=1,foo=2".into())])),
            "foo=1"
        );
    }

    #[test]
    fn one_invalid_member_drops_the_tracestate_not_the_trace() {
        for bad in [
            "foo =1",
            "FOO=1",
            "foo.bar=1",
            "@foo=1,bar=2",
            "foo=bar=baz",
            "foo=,bar=3",
            "foo=1 x,bar=\u{7f}",
        ] {
            let out = hop(vec![tp("00"), ("tracestate", bad.into())]);
            assert_eq!(trace_of(&out), TRACE, "{bad}");
            assert_eq!(state(&out), "", "{bad}");
        }
        let key = "z".repeat(257);
        let out = hop(vec![
            tp("00"),
            ("tracestate", "foo=1".into()),
            ("tracestate", format!("{key}=1")),
        ]);
        assert_eq!(state(&out), "");
    }

    #[test]
    fn level_2_keys_are_kept_even_where_the_sdk_refuses_them() {
        for key in [
            "z".repeat(256),
            format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            format!("{}@v", "t".repeat(242)),
            format!("t@{}", "v".repeat(15)),
            "foo@@bar".to_owned(),
            "foo@bar@baz".to_owned(),
            "foo@".to_owned(),
        ] {
            let out = hop(vec![
                tp("00"),
                ("tracestate", "foo=1".into()),
                ("tracestate", format!("{key}=1")),
            ]);
            assert_eq!(state(&out), format!("foo=1,{key}=1"), "{key}");
        }
    }

    #[test]
    fn thirty_two_members_across_lines_pass_and_thirty_three_do_not() {
        let members: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
        let lines = |n: usize| {
            let mut v = vec![tp("00")];
            for chunk in members[..n].chunks(10) {
                v.push(("tracestate", chunk.join(",")));
            }
            v
        };
        assert_eq!(state(&hop(lines(32))).split(',').count(), 32);
        assert_eq!(state(&hop(lines(33))), "");
    }

    #[test]
    fn all_allowed_characters() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let value: String = (0x20u8..=0x7e)
            .filter(|c| *c != b',' && *c != b'=')
            .map(char::from)
            .collect();
        for key in [key.to_owned(), format!("{key}@a-z0-9_-*/")] {
            let out = hop(vec![tp("00"), ("tracestate", format!("{key}={value}"))]);
            assert_eq!(state(&out), format!("{key}={value}"));
        }
    }

    #[test]
    fn an_over_long_tracestate_is_cut_by_whole_members_long_ones_first() {
        let long = format!("long={}", "x".repeat(200));
        let mut members = vec![long];
        members.extend((0..30).map(|i| format!("k{i:02}={}", "v".repeat(20))));
        let out = hop(vec![tp("00"), ("tracestate", members.join(","))]);
        let s = state(&out);
        assert!(s.len() <= 512, "{}", s.len());
        assert!(!s.contains("long="), "the long member goes first");
        assert!(s.starts_with("k00="), "{s}");
    }
}
