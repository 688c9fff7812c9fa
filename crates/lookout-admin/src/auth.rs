//! Bearer tokens for admin actions: the scheme read as RFC 9110 §11.1 says (case-insensitive,
//! then one or more spaces), the token compared in constant time (`subtle`), so that neither a
//! client's casing nor response timing decides who gets in.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use subtle::ConstantTimeEq as _;

/// The token of an `Authorization: Bearer <token>` header (`BEARER`, `bearer`, … alike); `None`
/// without one or with another scheme.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_matches([' ', '\t']);
    (!token.is_empty()).then_some(token)
}

/// Whether `headers` carry `Authorization: Bearer <expected>`, compared in constant time. An
/// empty `expected` never matches.
pub fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    bearer_token(headers).is_some_and(|given| token_matches(given, expected))
}

/// `given` is `expected`, compared in constant time; an empty `expected` never matches.
pub(crate) fn token_matches(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().expect("a header value"));
        h
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_exact() {
        for ok in [
            "Bearer s3cret",
            "BEARER s3cret",
            "bearer  s3cret",
            "BeArEr\ts3cret ",
            " Bearer s3cret",
        ] {
            assert!(bearer_matches(&with(ok), "s3cret"), "{ok:?}");
        }
        for bad in [
            "Bearer S3CRET",
            "Bearer s3cret2",
            "Bearer s3cre",
            "Basic s3cret",
            "Bearers3cret",
            "Bearer",
            "s3cret",
            "Bearer ",
        ] {
            assert!(!bearer_matches(&with(bad), "s3cret"), "{bad:?}");
        }
        assert!(!bearer_matches(&HeaderMap::new(), "s3cret"));
        assert!(
            !bearer_matches(&with("Bearer x"), ""),
            "an empty token never matches"
        );
    }
}
