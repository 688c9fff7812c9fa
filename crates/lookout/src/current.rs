//! [`Current`]: instruments that follow the meter provider lookout installs.

use std::fmt;
use std::sync::{Arc, RwLock};

use opentelemetry::metrics::Meter;

/// Instruments (`T`) made from the global meter of scope `scope`, and made again on the first use
/// after lookout installed another global meter provider ([`generation`](crate::metrics::generation)
/// changed). Instruments taken from `opentelemetry::global::meter` record into the provider of the
/// time they were made, so a component built before `lookout::init` would otherwise record into
/// the no-op provider, silently. lookout-tower's layers, lookout-health's registry and
/// lookout-cleanup's jobs hold theirs in one, so they work whichever comes first. With a meter
/// given, they are made once, from it.
///
/// `get` reads the generation (one atomic load) and takes the instruments under a read lock that is
/// only written at a change of provider.
///
/// ```
/// use lookout::opentelemetry::metrics::Counter;
/// let requests = lookout::metrics::Current::new("my-component", None, |meter| {
///     meter.u64_counter("my.requests").build()
/// });
/// // ... later, after lookout::init, on every request:
/// let counter: std::sync::Arc<Counter<u64>> = requests.get();
/// counter.add(1, &[]);
/// ```
pub struct Current<T> {
    scope: &'static str,
    given: Option<Meter>,
    make: Arc<dyn Fn(&Meter) -> T + Send + Sync>,
    slot: RwLock<(u64, Arc<T>)>,
}

impl<T> Current<T> {
    /// Makes the instruments now, from `given` or the global meter `scope`.
    pub fn new(
        scope: &'static str,
        given: Option<Meter>,
        make: impl Fn(&Meter) -> T + Send + Sync + 'static,
    ) -> Self {
        let generation = crate::measure::generation();
        let first = match &given {
            Some(meter) => make(meter),
            None => make(&opentelemetry::global::meter(scope)),
        };
        Current {
            scope,
            given,
            make: Arc::new(make),
            slot: RwLock::new((generation, Arc::new(first))),
        }
    }

    /// The instruments of the current meter provider.
    pub fn get(&self) -> Arc<T> {
        let generation = if self.given.is_some() {
            None
        } else {
            Some(crate::measure::generation())
        };
        {
            let slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
            if generation.is_none_or(|g| g == slot.0) {
                return Arc::clone(&slot.1);
            }
        }
        let mut slot = self.slot.write().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = generation
            && g != slot.0
        {
            *slot = (
                g,
                Arc::new((self.make)(&opentelemetry::global::meter(self.scope))),
            );
        }
        Arc::clone(&slot.1)
    }
}

impl<T> Clone for Current<T> {
    fn clone(&self) -> Self {
        Current {
            scope: self.scope,
            given: self.given.clone(),
            make: Arc::clone(&self.make),
            slot: RwLock::new(self.slot.read().unwrap_or_else(|e| e.into_inner()).clone()),
        }
    }
}

impl<T> fmt::Debug for Current<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Current")
            .field("scope", &self.scope)
            .field("given_meter", &self.given.is_some())
            .finish_non_exhaustive()
    }
}
