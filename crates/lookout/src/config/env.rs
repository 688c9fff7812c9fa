//! Reading `OTEL_*` / `LOOKOUT_*` variables the way the OpenTelemetry specification says:
//! an empty value is unset, a bad value is one warning and the default, an unknown enum value is
//! a warning and ignored.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// Where variables come from: the process environment, or a fixed map (tests, embedding).
#[derive(Debug, Clone, Default)]
pub(crate) enum EnvSource {
    #[default]
    Process,
    Map(HashMap<String, String>),
}

impl EnvSource {
    /// The value of `name`, or `None` when unset or empty (the spec treats empty as unset).
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        let value = match self {
            EnvSource::Process => std::env::var(name).ok(),
            EnvSource::Map(map) => map.get(name).cloned(),
        }?;
        let trimmed = value.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_owned())
    }
}

/// A configuration value that was not usable and was replaced by its default.
///
/// Shown once at start-up (on the console, as a `WARN` from target `lookout::config`) and kept in
/// [`crate::Telemetry::warnings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The variable (or builder setting) that had the bad value.
    pub variable: String,
    /// What was wrong and what is used instead. Never contains a header value or a secret.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Reads variables and collects the warnings for values that could not be used.
#[derive(Debug)]
pub(crate) struct EnvReader<'a> {
    source: &'a EnvSource,
    pub(crate) warnings: Vec<ConfigWarning>,
}

impl<'a> EnvReader<'a> {
    pub(crate) fn new(source: &'a EnvSource) -> Self {
        Self {
            source,
            warnings: Vec::new(),
        }
    }

    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        self.source.get(name)
    }

    /// Records a warning, once: general variables are read for each signal.
    pub(crate) fn warn(&mut self, variable: &str, message: impl Into<String>) {
        let warning = ConfigWarning {
            variable: variable.to_owned(),
            message: message.into(),
        };
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    /// Booleans: `true` (any case) is true, `false` is false, anything else warns and is false.
    pub(crate) fn bool(&mut self, name: &str) -> Option<bool> {
        let value = self.raw(name)?;
        if value.eq_ignore_ascii_case("true") {
            Some(true)
        } else if value.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            self.warn(
                name,
                format!("{value:?} is not `true` or `false`; treating it as false"),
            );
            Some(false)
        }
    }

    /// A whole number within `min..=max`; otherwise a warning and `None` (use the default).
    pub(crate) fn number(&mut self, name: &str, min: u64, max: u64, default: &str) -> Option<u64> {
        let value = self.raw(name)?;
        match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) => {
                self.warn(
                    name,
                    format!("{n} is outside {min}..={max}; using the default {default}"),
                );
                None
            }
            Err(_) => {
                let why = if value.starts_with('-') {
                    "is negative"
                } else {
                    "is not a whole number"
                };
                self.warn(
                    name,
                    format!("{value:?} {why}; using the default {default}"),
                );
                None
            }
        }
    }

    /// Milliseconds. `zero_is_unlimited`: a 0 means "no limit" (timeouts), returned as `Duration::ZERO`.
    pub(crate) fn millis(
        &mut self,
        name: &str,
        default: Duration,
        zero_is_unlimited: bool,
    ) -> Option<Duration> {
        let min = u64::from(!zero_is_unlimited);
        let default = format!("{} ms", default.as_millis());
        self.number(name, min, u64::MAX / 2, &default)
            .map(Duration::from_millis)
    }

    /// A ratio in `0.0..=1.0`.
    pub(crate) fn ratio(&mut self, name: &str, default: f64) -> f64 {
        let Some(value) = self.raw(name) else {
            return default;
        };
        match value.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => {
                self.warn(
                    name,
                    format!("{value:?} is not a number from 0 to 1; using the default {default}"),
                );
                default
            }
        }
    }

    /// One value of a fixed set, matched case-insensitively; unknown values warn and are ignored.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        name: &str,
        options: &[(&str, T)],
        default_text: &str,
    ) -> Option<T> {
        let value = self.raw(name)?;
        let found = options
            .iter()
            .find(|(word, _)| word.eq_ignore_ascii_case(&value))
            .map(|(_, v)| *v);
        if found.is_none() {
            let words: Vec<&str> = options.iter().map(|(w, _)| *w).collect();
            self.warn(
                name,
                format!(
                    "{value:?} is not one of {}; using the default {default_text}",
                    words.join(", ")
                ),
            );
        }
        found
    }
}

/// Parses `key=value,key2=value2` (W3C Baggage-like, values percent-decoded), as used by
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`.
///
/// Bad entries are skipped and reported by key position only, never by value (header values are
/// secrets).
pub(crate) fn parse_key_values(
    reader: &mut EnvReader<'_>,
    name: &str,
    text: &str,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (index, entry) in text.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let parsed = entry.split_once('=').and_then(|(k, v)| {
            let key = percent_decode(k.trim())?;
            let value = percent_decode(v.trim())?;
            (!key.is_empty()).then_some((key, value))
        });
        match parsed {
            Some(kv) => out.push(kv),
            None => reader.warn(
                name,
                format!(
                    "entry {} is not `key=value` with valid percent-encoding; it is ignored",
                    index + 1
                ),
            ),
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
///
/// Not `percent_encoding::percent_decode_str` (already in the dependency graph): it passes a
/// malformed escape (`%+1`, `%G0`, a trailing `%`) through as literal text, so a mistyped
/// header or resource value would be sent on as something else; the entry must be refused, and
/// said, instead (the OTel environment specification: an invalid entry is ignored with a warning).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Exactly two hex digits: `from_str_radix` alone would take `%+1` as byte 0x01.
            let hex = text.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(vars: &[(&str, &str)]) -> EnvSource {
        EnvSource::Map(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn empty_value_is_unset() {
        let src = source(&[("A", "  ")]);
        assert_eq!(src.get("A"), None);
    }

    #[test]
    fn bad_numbers_warn_with_name_and_value_and_fall_back() {
        let src = source(&[("N", "abc"), ("M", "-5"), ("O", "0")]);
        let mut r = EnvReader::new(&src);
        assert_eq!(r.number("N", 1, 10, "3"), None);
        assert_eq!(r.number("M", 1, 10, "3"), None);
        assert_eq!(r.number("O", 1, 10, "3"), None);
        assert_eq!(r.warnings.len(), 3);
        assert!(r.warnings[0].message.contains("\"abc\""));
        assert!(r.warnings[1].message.contains("negative"));
        assert!(r.warnings[2].message.contains("outside 1..=10"));
        assert!(r.warnings.iter().all(|w| w.message.contains("default 3")));
    }

    #[test]
    fn zero_timeout_means_unlimited() {
        let src = source(&[("T", "0")]);
        let mut r = EnvReader::new(&src);
        assert_eq!(
            r.millis("T", Duration::from_secs(10), true),
            Some(Duration::ZERO)
        );
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn booleans_are_true_only_for_true() {
        let src = source(&[("A", "TRUE"), ("B", "yes")]);
        let mut r = EnvReader::new(&src);
        assert_eq!(r.bool("A"), Some(true));
        assert_eq!(r.bool("B"), Some(false));
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn key_values_are_percent_decoded_and_bad_entries_hide_their_value() {
        let src = source(&[]);
        let mut r = EnvReader::new(&src);
        let kvs = parse_key_values(&mut r, "H", "a=b%20c, broken , k=%zzsecret,d=e=f");
        assert_eq!(
            kvs,
            vec![
                ("a".to_owned(), "b c".to_owned()),
                ("d".to_owned(), "e=f".to_owned())
            ]
        );
        assert_eq!(r.warnings.len(), 2);
        assert!(r.warnings.iter().all(|w| !w.message.contains("secret")));
    }

    #[test]
    fn percent_escapes_are_exactly_two_hex_digits() {
        assert_eq!(percent_decode("a%2Fb%2f").as_deref(), Some("a/b/"));
        for bad in ["%+1", "%-1", "% 1", "%1", "%", "%G0", "x%+fy"] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
    }
}
