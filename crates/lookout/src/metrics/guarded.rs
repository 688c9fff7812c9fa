//! The global meter provider lookout installs: the SDK's own, with every observable instrument's
//! callback wrapped in [`super::contained`]. A callback registered through the OpenTelemetry API
//! (`opentelemetry::global::meter(..)`) that panics then loses only its own values, said once in a
//! WARN, instead of poisoning the SDK's metric pipeline and with it every metric of the process
//! (opentelemetry-rust #3640). Instruments are otherwise the SDK's, created by the SDK's meter:
//! this adds nothing to recording, only to instrument creation.

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::{
    AsyncInstrument, AsyncInstrumentBuilder, Callback, Counter, Gauge, Histogram, HistogramBuilder,
    InstrumentBuilder, InstrumentProvider, Meter, MeterProvider, ObservableCounter,
    ObservableGauge, ObservableUpDownCounter, UpDownCounter,
};
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// The SDK's meter provider, its callbacks guarded.
#[derive(Debug, Clone)]
pub(crate) struct GuardedProvider(pub(crate) SdkMeterProvider);

impl MeterProvider for GuardedProvider {
    fn meter_with_scope(&self, scope: InstrumentationScope) -> Meter {
        Meter::new(Arc::new(GuardedMeter(self.0.meter_with_scope(scope))))
    }
}

struct GuardedMeter(Meter);

/// `callback`, with its panics caught and said once, naming `name`.
fn guard<T: 'static>(name: Cow<'static, str>, callback: Callback<T>) -> Callback<T> {
    let warned = std::sync::atomic::AtomicBool::new(false);
    Box::new(move |observer: &dyn AsyncInstrument<T>| {
        super::run_contained(&name, &warned, || callback(observer));
    })
}

macro_rules! sync_instrument {
    ($method:ident, $instrument:ty) => {
        fn $method(&self, b: InstrumentBuilder<'_, $instrument>) -> $instrument {
            let mut n = self.0.$method(b.name);
            if let Some(d) = b.description {
                n = n.with_description(d);
            }
            if let Some(u) = b.unit {
                n = n.with_unit(u);
            }
            n.build()
        }
    };
}

macro_rules! histogram {
    ($method:ident, $t:ty) => {
        fn $method(&self, b: HistogramBuilder<'_, Histogram<$t>>) -> Histogram<$t> {
            let mut n = self.0.$method(b.name);
            if let Some(d) = b.description {
                n = n.with_description(d);
            }
            if let Some(u) = b.unit {
                n = n.with_unit(u);
            }
            if let Some(bounds) = b.boundaries {
                n = n.with_boundaries(bounds);
            }
            n.build()
        }
    };
}

macro_rules! async_instrument {
    ($method:ident, $instrument:ty, $t:ty) => {
        fn $method(&self, b: AsyncInstrumentBuilder<'_, $instrument, $t>) -> $instrument {
            let name = b.name.clone();
            let mut n = self.0.$method(b.name);
            if let Some(d) = b.description {
                n = n.with_description(d);
            }
            if let Some(u) = b.unit {
                n = n.with_unit(u);
            }
            for callback in b.callbacks {
                let guarded = guard(name.clone(), callback);
                n = n.with_callback(move |o| guarded(o));
            }
            n.build()
        }
    };
}

impl InstrumentProvider for GuardedMeter {
    sync_instrument!(u64_counter, Counter<u64>);
    sync_instrument!(f64_counter, Counter<f64>);
    sync_instrument!(i64_up_down_counter, UpDownCounter<i64>);
    sync_instrument!(f64_up_down_counter, UpDownCounter<f64>);
    sync_instrument!(u64_gauge, Gauge<u64>);
    sync_instrument!(f64_gauge, Gauge<f64>);
    sync_instrument!(i64_gauge, Gauge<i64>);
    histogram!(f64_histogram, f64);
    histogram!(u64_histogram, u64);
    async_instrument!(u64_observable_counter, ObservableCounter<u64>, u64);
    async_instrument!(f64_observable_counter, ObservableCounter<f64>, f64);
    async_instrument!(
        i64_observable_up_down_counter,
        ObservableUpDownCounter<i64>,
        i64
    );
    async_instrument!(
        f64_observable_up_down_counter,
        ObservableUpDownCounter<f64>,
        f64
    );
    async_instrument!(u64_observable_gauge, ObservableGauge<u64>, u64);
    async_instrument!(i64_observable_gauge, ObservableGauge<i64>, i64);
    async_instrument!(f64_observable_gauge, ObservableGauge<f64>, f64);
}
