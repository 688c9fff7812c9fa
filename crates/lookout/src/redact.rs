//! Secrets never leave the process: redaction of what is exported, applied by lookout's OTLP
//! client to each export request (span attributes, span event and link attributes, log record
//! bodies and attributes, metric data point attributes), on the export thread, never on the
//! request path.
//!
//! - A value whose key looks secret (`password`, `passwd`, `secret`, `token`, `api_key`/`apikey`,
//!   `authorization`, `cookie`, `set-cookie`, `session`, `private_key`, `credential(s)`, …;
//!   case-insensitive, `-`, `_` and `.` alike, as a whole word of the key) is replaced by
//!   `REDACTED`.
//! - Secrets are found in any value whatever its key, and replaced where they stand: card numbers
//!   (13 to 19 digits, spaces or dashes between, Luhn-checked), `Bearer …` / `Basic …`
//!   credentials, JWTs, AWS access key ids, PEM private-key blocks; e-mail addresses when asked.
//! - `url.full` loses its user info (`REDACTED:REDACTED@`), and `url.full` and `url.query` the
//!   values of sensitive query parameters.
//! - In allow-list mode only the listed keys keep their values: everything else is `REDACTED`
//!   (fails closed).
//!
//! Hand-written scanners rather than regular expressions: each is one pass over the bytes with no
//! allocation unless it finds something, and the rules are few and fixed.

// Without an OTLP transport nothing is exported, so nothing is redacted.
#![cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_semantic_conventions::attribute::{URL_FULL, URL_QUERY};

/// What replaces a secret.
pub const REDACTED: &str = "REDACTED";

/// Values replaced or cut since start-up (`lookout::stats().redacted`, `lookout.redacted`).
pub(crate) static REDACTED_COUNT: AtomicU64 = AtomicU64::new(0);

/// Words that make a key secret.
const SECRET_WORDS: [&str; 14] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "set_cookie",
    "session",
    "private_key",
    "credential",
    "credentials",
];

/// Query parameters whose values are secrets (the semantic conventions' list and usual names).
const SECRET_QUERY_KEYS: [&str; 16] = [
    "awsaccesskeyid",
    "signature",
    "sig",
    "x-goog-signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "key",
    "password",
    "session",
    "code",
];

/// How values are redacted: [`TelemetryBuilder::redaction`](crate::TelemetryBuilder::redaction)
/// and `LOOKOUT_REDACT_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "a redaction does nothing until given to TelemetryBuilder::redaction"]
pub struct Redaction {
    /// Off: nothing is redacted (`LOOKOUT_REDACT=off`). On by default.
    pub enabled: bool,
    /// More key words that make a value secret (`LOOKOUT_REDACT_KEYS`, comma-separated).
    pub extra_keys: Vec<String>,
    /// Allow-list mode (`LOOKOUT_REDACT_ALLOW`, comma-separated keys): only these keys keep their
    /// values; every other attribute value is `REDACTED`. Empty: off.
    pub allow_only: Vec<String>,
    /// E-mail addresses are masked too (`LOOKOUT_REDACT_EMAILS=true`). Off by default.
    pub emails: bool,
    /// Which keys were found secret, so that each distinct key is judged once.
    decided: KeyCache,
}

/// Keys judged so far (at most `KEY_CACHE_CAPACITY`; past that, keys are judged each time).
#[derive(Debug, Clone, Default)]
struct KeyCache(
    std::sync::Arc<
        std::sync::RwLock<std::collections::HashMap<Box<str>, bool, foldhash::fast::RandomState>>,
    >,
);

const KEY_CACHE_CAPACITY: usize = 4096;

impl PartialEq for KeyCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for KeyCache {}

impl Redaction {
    /// Redaction on, with the built-in rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Off: nothing is redacted.
    pub fn off() -> Self {
        Redaction {
            enabled: false,
            ..Self::default()
        }
    }

    /// More key words that make a value secret.
    pub fn extra_keys(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.extra_keys = keys.into_iter().map(Into::into).collect();
        self.decided = KeyCache::default();
        self
    }

    /// Allow-list mode: only these keys keep their values (fails closed).
    pub fn allow_only(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allow_only = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Masks e-mail addresses too.
    pub fn emails(mut self, on: bool) -> Self {
        self.emails = on;
        self
    }
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            enabled: true,
            extra_keys: Vec::new(),
            allow_only: Vec::new(),
            emails: false,
            decided: KeyCache::default(),
        }
    }
}

/// A key's byte as the rules compare it: lower case, `-`, `.` and space as `_`.
fn norm(b: u8) -> u8 {
    match b {
        b'-' | b'.' | b' ' => b'_',
        b => b.to_ascii_lowercase(),
    }
}

/// Whether `word` (lower case, `_` separated) appears in `key` as a whole word, comparing
/// normalized bytes (no allocation: this runs for every attribute of every exported span).
fn has_word(key: &str, word: &str) -> bool {
    let k = key.as_bytes();
    let w = word.as_bytes();
    if w.is_empty() || k.len() < w.len() {
        return false;
    }
    (0..=k.len() - w.len()).any(|start| {
        let end = start + w.len();
        (start == 0 || norm(k[start - 1]) == b'_')
            && (end == k.len() || norm(k[end]) == b'_')
            && k[start..end].iter().zip(w).all(|(a, b)| norm(*a) == *b)
    })
}

impl Redaction {
    fn key_is_secret(&self, key: &str) -> bool {
        if let Some(known) = self
            .decided
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return *known;
        }
        let secret = self.judge(key);
        let mut cache = self.decided.0.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() < KEY_CACHE_CAPACITY {
            cache.insert(key.into(), secret);
        }
        secret
    }

    fn judge(&self, key: &str) -> bool {
        SECRET_WORDS.iter().any(|w| has_word(key, w))
            || self.extra_keys.iter().any(|w| {
                let w: String = w.bytes().map(|b| char::from(norm(b))).collect();
                has_word(key, &w)
            })
    }

    fn key_allowed(&self, key: &str) -> bool {
        self.allow_only.is_empty() || self.allow_only.iter().any(|k| k == key)
    }

    /// Redacts attribute values in place.
    pub(crate) fn attributes(&self, attributes: &mut [KeyValue]) {
        if !self.enabled {
            return;
        }
        for kv in attributes {
            let Some(value) = kv.value.as_mut() else {
                continue;
            };
            if self.hides_key(&kv.key) {
                if !is_redacted(value) {
                    *value = redacted();
                    REDACTED_COUNT.fetch_add(1, Relaxed);
                }
                continue;
            }
            match value.value.as_mut() {
                Some(Value::StringValue(s)) => {
                    let mut count = 0;
                    if let Some(new) = self.string_value(&kv.key, s, &mut count) {
                        *s = new;
                        REDACTED_COUNT.fetch_add(count, Relaxed);
                    }
                }
                // `url.full` and `url.query` are scanned as strings only.
                _ if !self.scans_arrays_of(&kv.key) => {}
                _ => self.value(value),
            }
        }
    }

    /// `text` with the secrets found in it replaced (counted); `None` when there are none or
    /// redaction is off.
    pub(crate) fn text(&self, text: &str) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let new = redact_text(text, self.emails)?;
        REDACTED_COUNT.fetch_add(1, Relaxed);
        Some(new)
    }

    /// Whether `key`'s value is replaced by [`REDACTED`] whatever it is (redaction on and the key
    /// secret, or not on the allow list). For the span encoder, which counts itself.
    pub(crate) fn hides_key(&self, key: &str) -> bool {
        self.enabled && (!self.key_allowed(key) || self.key_is_secret(key))
    }

    /// A string attribute value as the export writes it (`key` not hidden), `None` when unchanged;
    /// each change adds one to `count` (as [`Redaction::attributes`] counts them), which the
    /// caller adds to the total when the value is sent.
    pub(crate) fn string_value(&self, key: &str, s: &str, count: &mut u64) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let (first, emails) = match key {
            URL_FULL => (redact_url(s), false),
            URL_QUERY => (redact_query(s), false),
            _ => (None, self.emails),
        };
        if first.is_some() {
            *count += 1;
        }
        match redact_text(first.as_deref().unwrap_or(s), emails) {
            Some(text) => {
                *count += 1;
                Some(text)
            }
            None => first,
        }
    }

    /// Whether a string inside an array value is scanned: `url.full` and `url.query` are scanned
    /// as strings only (as [`Redaction::attributes`] does).
    pub(crate) fn scans_arrays_of(&self, key: &str) -> bool {
        self.enabled && key != URL_FULL && key != URL_QUERY
    }

    /// Free text (an event name, a status message, an array's string) as the export writes it,
    /// `None` when unchanged; a change adds one to `count`.
    pub(crate) fn free_text(&self, text: &str, count: &mut u64) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let new = redact_text(text, self.emails)?;
        *count += 1;
        Some(new)
    }

    /// `value` as lookout's local view shows it for `key` (`""`: a message or description):
    /// redacted as an export would be, without counting (the export counts).
    pub(crate) fn shown(&self, key: &str, value: String) -> String {
        if !self.enabled {
            return value;
        }
        if !key.is_empty() && (!self.key_allowed(key) || self.key_is_secret(key)) {
            return REDACTED.to_owned();
        }
        let (value, emails) = match key {
            URL_FULL => (redact_url(&value).unwrap_or(value), false),
            URL_QUERY => (redact_query(&value).unwrap_or(value), false),
            _ => (value, self.emails),
        };
        redact_text(&value, emails).unwrap_or(value)
    }

    /// Redacts secrets found in a value (a log body, an attribute's value), whatever its key.
    pub(crate) fn value(&self, value: &mut AnyValue) {
        if !self.enabled {
            return;
        }
        match value.value.as_mut() {
            Some(Value::StringValue(s)) => {
                if let Some(new) = redact_text(s, self.emails) {
                    *s = new;
                    REDACTED_COUNT.fetch_add(1, Relaxed);
                }
            }
            Some(Value::ArrayValue(a)) => {
                for v in &mut a.values {
                    self.value(v);
                }
            }
            Some(Value::KvlistValue(l)) => self.attributes(&mut l.values),
            _ => {}
        }
    }
}

fn redacted() -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(REDACTED.to_owned())),
    }
}

fn is_redacted(v: &AnyValue) -> bool {
    matches!(&v.value, Some(Value::StringValue(s)) if s == REDACTED)
}

/// `url.full` without user info and with sensitive query values redacted; `None` if unchanged.
fn redact_url(url: &str) -> Option<String> {
    let (before, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut changed = false;
    let mut out = match before.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            match authority.rsplit_once('@') {
                Some((userinfo, host)) if userinfo != "REDACTED:REDACTED" => {
                    changed = true;
                    format!("{scheme}://REDACTED:REDACTED@{host}{path}")
                }
                _ => before.to_owned(),
            }
        }
        None => before.to_owned(),
    };
    if let Some(q) = query {
        out.push('?');
        match redact_query(q) {
            Some(new) => {
                changed = true;
                out.push_str(&new);
            }
            None => out.push_str(q),
        }
    }
    changed.then_some(out)
}

/// A query string with sensitive parameters' values redacted; `None` if unchanged.
fn redact_query(query: &str) -> Option<String> {
    let mut changed = false;
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v))
                if v != REDACTED
                    && SECRET_QUERY_KEYS.contains(&k.to_ascii_lowercase().as_str()) =>
            {
                changed = true;
                format!("{k}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    changed.then(|| parts.join("&"))
}

/// What a byte may begin or count for, for [`redact_text`]'s first pass: a trigger letter's bit in
/// the top byte, and counts below it (digits in the low 32 bits, dashes in the next 24), so that
/// one load, one `or` and one add per byte note both.
const LETTER_B: u8 = 1;
const LETTER_J: u8 = 2;
const LETTER_A: u8 = 4;
const AT: u8 = 8;
const CLASS_SHIFT: u32 = 56;
const ONE_DIGIT: u64 = 1;
const ONE_DASH: u64 = 1 << 32;
/// Past this length the packed counts could wrap: every scanner whose trigger letter is present
/// runs, as if the counts were reached.
const COUNTED_LENGTH: usize = 1 << 24;
static TRIGGERS: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = ONE_DIGIT;
        d += 1;
    }
    t[b'-' as usize] = ONE_DASH;
    t[b'b' as usize] = (LETTER_B as u64) << CLASS_SHIFT;
    t[b'B' as usize] = (LETTER_B as u64) << CLASS_SHIFT;
    t[b'J' as usize] = (LETTER_J as u64) << CLASS_SHIFT;
    t[b'A' as usize] = (LETTER_A as u64) << CLASS_SHIFT;
    t[b'@' as usize] = (AT as u64) << CLASS_SHIFT;
    t
};

/// Replaces secrets found in free text; `None` when there are none.
/// The shortest secret [`redact_text`] finds: a credential, `Basic` and six token bytes after a
/// space (a card has 13 digits, a JWT and an AWS key id 20 characters, a key block more).
const SHORTEST_SECRET: usize = "Basic abcdef".len();
/// The shortest e-mail address it masks: `a@b.c`.
const SHORTEST_EMAIL: usize = "a@b.c".len();

pub(crate) fn redact_text(text: &str, emails: bool) -> Option<String> {
    // Most values hold none of what the scanners look for: one branch-free pass over the bytes
    // counts digits (13 for a card) and dashes (a private key's armour has ten) and notes which
    // trigger letters occur (`b`/`B` of `bearer`/`basic`, `J` of `eyJ`, `A` of `AKIA`/`ASIA`,
    // `@`); only then are the triggers themselves looked for, and only their scanners run. (A
    // `match` per byte was an indirect jump per byte, mispredicted on ordinary text: most of the
    // cost of a span's redaction; `e` and a single `-` as triggers sent most words and ids to a
    // window search.)
    // Shorter than the shortest secret looked for: nothing to scan (most field values, levels,
    // names).
    if text.len() < if emails { SHORTEST_EMAIL } else { SHORTEST_SECRET } {
        return None;
    }
    let b = text.as_bytes();
    let (mut seen, mut counts) = (0u64, 0u64);
    for &c in b {
        let t = TRIGGERS[usize::from(c)];
        seen |= t;
        counts = counts.wrapping_add(t);
    }
    let seen = (seen >> CLASS_SHIFT) as u8;
    let (digits, dashes) = if b.len() < COUNTED_LENGTH {
        (
            (counts & 0xFFFF_FFFF) as usize,
            ((counts >> 32) & 0xFF_FFFF) as usize,
        )
    } else {
        (usize::MAX, usize::MAX)
    };
    let has = |class: u8| seen & class != 0;
    // Short needles among short values: a window compare, not `str::contains` (whose searcher
    // costs more to set up than these values take to scan).
    let find = |needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    // The schemes are looked for where a `b`/`B` stands, not at every position (a service's names
    // often hold a `b`: a window compare at each byte was a third of such a value's scan).
    let starts = |rest: &[u8], word: &[u8]| {
        rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word)
    };
    let credentials = has(LETTER_B)
        && (0..b.len()).any(|i| {
            b[i] | 0x20 == b'b' && (starts(&b[i..], b"basic") || starts(&b[i..], b"bearer"))
        });
    let key_block = dashes >= 10 && find(b"-----");
    let jwt = has(LETTER_J) && find(b"eyJ");
    // A key id is the prefix and 16 more characters.
    let aws = has(LETTER_A) && b.len() >= 20 && (find(b"AKIA") || find(b"ASIA"));
    let at = has(AT);
    let emails = emails && at;
    if digits < 13 && !credentials && !key_block && !jwt && !aws && !emails {
        return None;
    }
    let mut spans: Vec<(usize, usize)> = Vec::new();
    if key_block {
        find_private_keys(text, &mut spans);
    }
    if credentials {
        find_credentials(text, &mut spans);
    }
    if jwt {
        find_jwts(text, &mut spans);
    }
    if aws {
        find_aws_keys(text, &mut spans);
    }
    if digits >= 13 {
        find_cards(text, &mut spans);
    }
    if emails {
        find_emails(text, &mut spans);
    }
    if spans.is_empty() {
        return None;
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        if start < at {
            // Overlaps the previous one: extend it.
            at = at.max(end);
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-')
}

/// `Bearer <token>` / `Basic <credentials>` (the scheme kept, the credentials replaced).
fn find_credentials(text: &str, spans: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    for (i, _) in bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'b' || **b == b'B')
    {
        let scheme_len = if bytes.len() >= i + 6 && bytes[i..i + 6].eq_ignore_ascii_case(b"bearer")
        {
            6
        } else if bytes.len() >= i + 5 && bytes[i..i + 5].eq_ignore_ascii_case(b"basic") {
            5
        } else {
            continue;
        };
        if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let from = i + scheme_len;
        let mut j = from;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t' || bytes[j] == b':') {
            j += 1;
        }
        if j == from {
            continue;
        }
        let token_start = j;
        while j < bytes.len() && is_token_byte(bytes[j]) {
            j += 1;
        }
        if j - token_start >= 6 {
            spans.push((token_start, j));
        }
    }
}

/// `eyJ….….…` (a base64url JSON header, payload and signature).
fn find_jwts(text: &str, spans: &mut Vec<(usize, usize)>) {
    let b = text.as_bytes();
    let b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let mut from = 0;
    while let Some(i) = text[from..].find("eyJ") {
        let start = from + i;
        from = start + 3;
        let mut j = start;
        let mut dots = 0;
        while j < b.len() && (b64(b[j]) || (b[j] == b'.' && dots < 2)) {
            if b[j] == b'.' {
                dots += 1;
            }
            j += 1;
        }
        if dots == 2 && j - start >= 20 {
            spans.push((start, j));
            from = j;
        }
    }
}

/// AWS access key ids: `AKIA` or `ASIA` and 16 upper-case letters or digits, alone.
fn find_aws_keys(text: &str, spans: &mut Vec<(usize, usize)>) {
    let b = text.as_bytes();
    for prefix in ["AKIA", "ASIA"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(prefix) {
            let start = from + i;
            from = start + 4;
            let end = start + 20;
            if end > b.len() {
                break;
            }
            let body_ok = b[start + 4..end]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            let alone = (start == 0 || !b[start - 1].is_ascii_alphanumeric())
                && (end == b.len() || !b[end].is_ascii_alphanumeric());
            if body_ok && alone {
                spans.push((start, end));
            }
        }
    }
}

/// `-----BEGIN … PRIVATE KEY-----` to its `-----END … PRIVATE KEY-----` (or the end of the text).
fn find_private_keys(text: &str, spans: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    while let Some(i) = text[from..].find("-----BEGIN ") {
        let start = from + i;
        let header_end = match text[start + 11..].find("-----") {
            Some(e) => start + 11 + e,
            None => break,
        };
        from = header_end;
        if !text[start..header_end].contains("PRIVATE KEY") {
            continue;
        }
        let end = text[header_end..]
            .find("-----END ")
            .and_then(|e| {
                let after = header_end + e + 9;
                text[after..].find("-----").map(|f| after + f + 5)
            })
            .unwrap_or(text.len());
        spans.push((start, end));
        from = end;
    }
}

/// Card numbers: 13 to 19 digits (single spaces or dashes between groups allowed) passing the
/// Luhn check, not part of a longer number.
fn find_cards(text: &str, spans: &mut Vec<(usize, usize)>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.')) {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits: Vec<u8> = Vec::with_capacity(19);
        let mut j = i;
        let mut end = i;
        while j < b.len() && digits.len() < 20 {
            if b[j].is_ascii_digit() {
                digits.push(b[j] - b'0');
                j += 1;
                end = j;
            } else if (b[j] == b' ' || b[j] == b'-')
                && j + 1 < b.len()
                && b[j + 1].is_ascii_digit()
                && j > start
                && b[j - 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
        }
        let followed_by_digit = end < b.len() && b[end].is_ascii_digit();
        if (13..=19).contains(&digits.len()) && !followed_by_digit && luhn(&digits) {
            spans.push((start, end));
        }
        i = end.max(i + 1);
    }
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `local@domain.tld`.
fn find_emails(text: &str, spans: &mut Vec<(usize, usize)>) {
    let b = text.as_bytes();
    let local = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-');
    for (at, _) in text.match_indices('@') {
        let mut s = at;
        while s > 0 && local(b[s - 1]) {
            s -= 1;
        }
        let mut e = at + 1;
        while e < b.len() && domain(b[e]) {
            e += 1;
        }
        while e > at + 1 && b[e - 1] == b'.' {
            e -= 1;
        }
        let host = &text[at + 1..e];
        if s < at && host.contains('.') && !host.starts_with('.') {
            spans.push((s, e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.to_owned())),
            }),
            key_strindex: 0,
        }
    }

    fn text_of(kv: &KeyValue) -> &str {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => s,
            _ => "",
        }
    }

    #[test]
    fn secret_keys_are_masked_case_and_separator_insensitive() {
        let r = Redaction::default();
        let mut attrs = vec![
            kv("password", "hunter2"),
            kv("db.Password", "x"),
            kv("X-API-Key", "k"),
            kv("apikey", "k"),
            kv("http.request.header.authorization", "anything"),
            kv("Set-Cookie", "sid=1"),
            kv("session_id", "abc"),
            kv("user.private-key", "k"),
            kv("aws.credentials", "c"),
            kv("client_secret", "s"),
            kv("gen_ai.usage.input_tokens", "12"),
            kv("keyboard", "qwerty"),
            kv("user.name", "alice"),
        ];
        r.attributes(&mut attrs);
        for a in &attrs[..10] {
            assert_eq!(text_of(a), REDACTED, "{}", a.key);
        }
        assert_eq!(text_of(&attrs[10]), "12");
        assert_eq!(text_of(&attrs[11]), "qwerty");
        assert_eq!(text_of(&attrs[12]), "alice");
    }

    #[test]
    fn secret_values_are_found_whatever_the_key() {
        let cases = [
            (
                "paid with 4111 1111 1111 1111 today",
                "paid with REDACTED today",
            ),
            ("card=4111-1111-1111-1111", "card=REDACTED"),
            ("order 4111111111111112", "order 4111111111111112"),
            (
                "Authorization: Bearer abc.def-ghi_123",
                "Authorization: Bearer REDACTED",
            ),
            ("basic dXNlcjpwYXNzd29yZA==", "basic REDACTED"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature_x end",
                "jwt REDACTED end",
            ),
            ("key AKIAIOSFODNN7EXAMPLE used", "key REDACTED used"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- after",
                "REDACTED after",
            ),
            // The least each trigger needs: a key id of exactly 20 characters, an armour of
            // exactly ten dashes (no end line), a token alone.
            ("AKIAIOSFODNN7EXAMPLE", "REDACTED"),
            ("-----BEGIN PRIVATE KEY-----\nMIIE", "REDACTED"),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "REDACTED"),
            // The shortest secrets (values shorter than these are not scanned): a credential of
            // six token bytes, a card of 13 digits.
            ("Basic abcdef", "Basic REDACTED"),
            ("4222222222222", "REDACTED"),
            (
                "nothing here, 12345 and version 1.2.3",
                "nothing here, 12345 and version 1.2.3",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                redact_text(input, false).as_deref().unwrap_or(input),
                expected,
                "{input}"
            );
        }
        assert_eq!(redact_text("mail alice@example.com now", false), None);
        assert_eq!(
            redact_text("mail alice@example.com now", true).as_deref(),
            Some("mail REDACTED now")
        );
        assert_eq!(redact_text("a@b.c", true).as_deref(), Some("REDACTED"));
    }

    #[test]
    fn urls_lose_user_info_and_sensitive_parameters() {
        let r = Redaction::default();
        let mut attrs = vec![
            kv(
                "url.full",
                "https://bob:pw@api.example.com/x?token=t&page=2&api_key=k",
            ),
            kv("url.query", "code=123&state=ok"),
        ];
        r.attributes(&mut attrs);
        assert_eq!(
            text_of(&attrs[0]),
            "https://REDACTED:REDACTED@api.example.com/x?token=REDACTED&page=2&api_key=REDACTED"
        );
        assert_eq!(text_of(&attrs[1]), "code=REDACTED&state=ok");
    }

    #[test]
    fn allow_list_mode_fails_closed_and_off_changes_nothing() {
        let r = Redaction::new().allow_only(["http.route"]);
        let mut attrs = vec![kv("http.route", "/a"), kv("user.name", "alice")];
        r.attributes(&mut attrs);
        assert_eq!(text_of(&attrs[0]), "/a");
        assert_eq!(text_of(&attrs[1]), REDACTED);
        let off = Redaction::off();
        let mut attrs = vec![kv("password", "p")];
        off.attributes(&mut attrs);
        assert_eq!(text_of(&attrs[0]), "p");
        let extra = Redaction::new().extra_keys(["ssn"]);
        let mut attrs = vec![kv("user.ssn", "123-45-6789")];
        extra.attributes(&mut attrs);
        assert_eq!(text_of(&attrs[0]), REDACTED);
    }
}
