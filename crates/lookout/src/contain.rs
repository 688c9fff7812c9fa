//! Panics in callbacks lookout runs for others (observable instruments' callbacks, health checks,
//! cleanup jobs, handlers under the HTTP layer): caught, said once, never taken down with them.

/// Wraps an observable instrument's callback so that a panic inside it is caught: the collection
/// goes on without that instrument's values (and the SDK's pipeline is not poisoned), and the panic
/// is said once in a WARN naming `name`. lookout registers its own callbacks this way.
///
/// ```
/// use lookout::opentelemetry::metrics::MeterProvider as _;
/// let metrics = lookout::metrics::Metrics::in_memory(
///     lookout::opentelemetry_sdk::Resource::builder_empty().build(),
/// );
/// let _queue = metrics
///     .provider()
///     .meter("app")
///     .u64_observable_gauge("queue.depth")
///     .with_callback(lookout::contained("queue.depth", |o| o.observe(3, &[])))
///     .build();
/// assert!(metrics.collect().is_ok());
/// ```
pub fn contained<T, F>(
    name: &'static str,
    callback: F,
) -> impl Fn(&dyn opentelemetry::metrics::AsyncInstrument<T>) + Send + Sync + 'static
where
    F: Fn(&dyn opentelemetry::metrics::AsyncInstrument<T>) + Send + Sync + 'static,
{
    let warned = std::sync::atomic::AtomicBool::new(false);
    move |observer| run_contained(name, &warned, || callback(observer))
}

/// Runs a callback, catching a panic; the first one is said in a WARN naming the instrument.
pub(crate) fn run_contained(name: &str, warned: &std::sync::atomic::AtomicBool, f: impl FnOnce()) {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if let Err(panic) = caught
        && !warned.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        let what = panic_message(&*panic);
        tracing::warn!(
            target: "lookout",
            instrument = %name,
            "the callback of the observable instrument {name} panicked ({what}); its values are \
             left out of this and every collection in which it panics (said once)"
        );
    }
}

/// The message a panic was raised with (`panic!("...")` gives a `&str` or a `String`), or
/// "a panic without a message" for any other payload. What lookout's crates put in their WARNs,
/// health details and job errors when something they ran panicked.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn a_panic_message_is_read_from_str_and_string_payloads() {
        let of = |f: fn()| panic_message(&*std::panic::catch_unwind(f).expect_err("panics"));
        assert_eq!(of(|| panic!("static")), "static");
        assert_eq!(of(|| panic!("formatted {}", 42)), "formatted 42");
        assert_eq!(
            of(|| std::panic::panic_any(7_u8)),
            "a panic without a message"
        );
    }
}
