//! A library that is traced and measured by whichever application uses it, and pays for no
//! pipeline itself: `lookout` without default features (just `macros`) and `tracing`.
//!
//! ```toml
//! [dependencies]
//! lookout = { version = "0.1", default-features = false, features = ["macros"] }
//! tracing = "0.1"
//! ```
//!
//! Its spans go wherever the application's subscriber sends them; its `function.*` metrics are
//! recorded into the global meter provider, which the application's `lookout::init` installs.
//! Before that (or in an application without lookout) both cost next to nothing and go nowhere.

use std::fmt;

/// Why a quote was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteError {
    /// No items: nothing to price.
    Empty,
    /// The total does not fit in a `u64` of cents.
    TooLarge,
}

impl fmt::Display for QuoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuoteError::Empty => f.write_str("a quote needs at least one item"),
            QuoteError::TooLarge => f.write_str("the total is too large to quote"),
        }
    }
}

impl std::error::Error for QuoteError {}

/// The price in cents of `items` items at `unit_cents` each, with 10 % off from 10 items on.
///
/// A span `quote` (with both arguments as fields) and the `function.*` metrics of `quote` in module
/// `example_pricing_library`.
///
/// ```
/// assert_eq!(example_pricing_library::quote(2, 150), Ok(300));
/// assert_eq!(example_pricing_library::quote(10, 100), Ok(900));
/// ```
#[tracing::instrument]
#[lookout::measured]
pub fn quote(items: u32, unit_cents: u64) -> Result<u64, QuoteError> {
    if items == 0 {
        return Err(QuoteError::Empty);
    }
    let total = u64::from(items)
        .checked_mul(unit_cents)
        .ok_or(QuoteError::TooLarge)?;
    let discounted = if items >= 10 { total / 10 * 9 } else { total };
    tracing::debug!(total, discounted, "quoted");
    Ok(discounted)
}
